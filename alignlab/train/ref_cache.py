"""Reference log-probs for the offline objectives: one no-grad pass over the dataset, cached on disk.

DPO, IPO, KTO ... compare the policy with a frozen reference on a *fixed* dataset, so the reference's
log-probs never change during training. We compute them once, before the first step, and keep them in a
cache file (`<output_dir>/ref_logps.pt` by default, or any `--ref_cache PATH` shared by several runs: a
beta sweep, several loss types, more epochs). Cached, a DPO step on CPU is ~26% cheaper
(`../shared/NOTES-performance.md`), and no second copy of the weights stays in memory.

Which model is the reference (`reference_model`):
- `ref_model_name_or_path` given: that directory, loaded for the pass and freed afterwards;
- LoRA: the policy itself with its adapter disabled (`disable_adapter()`), i.e. the starting weights;
- full fine-tuning: the policy itself before its first step (the pass runs before any checkpoint is
  restored, so a resumed run still gets the starting weights).

The cache file maps a key to tensors, so one file can serve several datasets. The key is a SHA-256 of
(reference directory, and the name, size and mtime of its config and weight files; the digest of the exact
token ids of every scored row — which covers the dataset, its path-independent content, the tokenizer,
max lengths and truncation; the autocast dtype). Changing any of them makes a new entry, never a stale hit.
Deliberately left out: hashing the weight bytes (slow for large models; copying a model directory
elsewhere therefore misses the cache, which is safe).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from alignlab.config import option
from alignlab.errors import UsageError
from alignlab.io import atomic_write_bytes

CACHE_NAME = "ref_logps.pt"
CACHE_VERSION = 1
_MODEL_FILES = ("config.json", "adapter_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
log = logging.getLogger(__name__)

ScoreBatch = Callable[[torch.nn.Module, Tensor], dict[str, Tensor]]


@dataclass
class ReferenceOptions:
    """What the offline objectives with a reference (DPO family, KTO) share: the reference, its cache, and
    the lengths the one-off reference pass and the training forward agree on."""

    ref_model_name_or_path: str | None = option(
        None, "reference model directory; default: the starting model (with LoRA: the adapter disabled)")
    max_prompt_length: int = option(128, "longest tokenized prompt")
    max_completion_length: int = option(128, "longest tokenized completion")
    truncation: str = option("error", "a longer prompt/completion: error, or keep the prompt's end and the "
                             "completion's start", ("error", "truncate"))
    ref_cache: str | None = option(None, f"reference log-prob cache file; default <output_dir>/{CACHE_NAME}")
    precompute_ref_batch_size: int = option(8, "rows per forward in the one-off reference pass "
                                               "(more = faster, more memory)")
    gradient_checkpointing: bool = option(
        False, "recompute each layer's activations in backward: less memory, about a third more compute")

    def ref_cache_path(self) -> Path:
        return Path(self.ref_cache) if self.ref_cache else Path(self.output_dir) / CACHE_NAME


def model_fingerprint(model_dir: str | Path) -> dict:
    """Resolved path plus (name, size, mtime_ns) of the config and weight files of a model directory."""
    p = Path(model_dir).resolve()
    files = sorted(f for f in p.iterdir() if f.is_file() and (f.name in _MODEL_FILES or f.suffix in _WEIGHT_SUFFIXES))
    return {"path": str(p), "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


def rows_digest(columns: dict[str, Sequence[Sequence[int]]]) -> str:
    """SHA-256 of named columns of token-id rows (each row length-prefixed, so boundaries count)."""
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode() + b"\0")
        for row in columns[name]:
            h.update(len(row).to_bytes(4, "little"))
            h.update(np.asarray(row, dtype=np.int64).tobytes())
    return h.hexdigest()


def cache_key(**parts) -> str:
    """SHA-256 of the parts as canonical JSON."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_entry(path: str | Path, key: str) -> dict[str, Tensor] | None:
    """The tensors stored under `key` in a cache file, or None (no file or no such entry)."""
    entries = _read(Path(path))
    return None if key not in entries else entries[key]["tensors"]


def save_entry(path: str | Path, key: str, tensors: dict[str, Tensor], meta: dict) -> None:
    """Add (or replace) one entry; the file is rewritten atomically."""
    path = Path(path)
    entries = _read(path)
    entries[key] = {"tensors": {k: v.detach().cpu().float().contiguous() for k, v in tensors.items()}, "meta": meta}
    buffer = io.BytesIO()
    torch.save(entries, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        entries = torch.load(path, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, do not guess
        raise UsageError(f"--ref_cache: {path} is not a reference log-prob cache ({type(e).__name__}: {e})") from None
    if not isinstance(entries, dict):
        raise UsageError(f"--ref_cache: {path} is not a reference log-prob cache")
    return entries


@contextlib.contextmanager
def reference_model(policy: torch.nn.Module, ref_dir: str | None) -> Iterator[torch.nn.Module]:
    """The reference, in eval mode under no_grad: a loaded directory, or the policy with its adapter off."""
    from alignlab.models import load_causal_lm

    device = next(policy.parameters()).device
    if ref_dir is not None:
        ref = load_causal_lm(ref_dir, what="--ref_model_name_or_path").to(device).eval()
        with torch.no_grad():
            yield ref
        del ref
        return
    # peft's disable_adapter() bypasses every LoRA layer: exactly the base weights, no second copy.
    adapter_off = policy.disable_adapter() if hasattr(policy, "disable_adapter") else contextlib.nullcontext()
    was_training = policy.training
    policy.eval()
    try:
        with adapter_off, torch.no_grad():
            yield policy
    finally:
        policy.train(was_training)


def reference_pass(model: torch.nn.Module, n_items: int, batch_size: int, score_batch: ScoreBatch) -> dict[str, Tensor]:
    """Score items 0..n_items-1 in order, `batch_size` at a time; concatenate each named output (n_items,)."""
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, n_items, batch_size):
        idx = torch.arange(start, min(start + batch_size, n_items))
        for name, value in score_batch(model, idx).items():
            parts.setdefault(name, []).append(value.detach().float().cpu())
    return {name: torch.cat(values) for name, values in parts.items()}


def reference_logps(
    policy: torch.nn.Module,
    *,
    model_dir: str,
    ref_dir: str | None,
    cache_path: str | Path,
    digest: str,
    n_items: int,
    batch_size: int,
    score_batch: ScoreBatch,
    bf16: bool = False,
    meta: dict | None = None,
) -> tuple[dict[str, Tensor], bool]:
    """Reference log-probs of every item: from the cache when the key matches, else one pass, then stored.

    Returns (tensors by name, each (n_items,) float32 on the CPU; whether the cache had them).
    `score_batch(model, idx)` is the stage's own forward (the same code as the policy's), so policy and
    reference log-probs are computed identically.
    """
    source = ref_dir or model_dir
    key = cache_key(model=model_fingerprint(source), rows=digest, bf16=bf16, n_items=n_items)
    found = load_entry(cache_path, key)
    if found is not None:
        log.info("reference log-probs: cache hit in %s", cache_path)
        return found, True
    with reference_model(policy, ref_dir) as ref:
        tensors = reference_pass(ref, n_items, batch_size, score_batch)
    save_entry(cache_path, key, tensors, {"reference": str(Path(source).resolve()), "n_items": n_items,
                                          "bf16": bf16, **(meta or {})})
    return tensors, False
