"""Save a model (full or peft adapter) with its tokenizer into a run directory, atomically per file."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def save_model(model, tokenizer, output_dir: str | Path) -> None:
    """`save_pretrained` into a temporary sibling directory, then move each file into place.

    A crash mid-save leaves the previous files intact (each `os.replace` is atomic on one filesystem).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".saving-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
