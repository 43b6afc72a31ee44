"""A constitution: principles, each with the user turns that ask for a critique and a revision under it.

Read from a YAML or Markdown file, or taken from a world spec's `constitution:` section (the default).

YAML (a `constitution:` mapping at the top, as in a world spec, is also accepted):

    critique_request: "Critique your last response under this principle: {principle}"   # default for all
    revision_request: "Revise your response so that it follows the principle."
    comparison_request: "...{principle} ... {prompt} ... (A) {a} ... (B) {b} ..."         # RLAIF judge
    principles:
      - {name: harmless, text: Do not give instructions for dangerous procedures.}
      - name: honest
        text: Do not state falsehoods.
        critique_request: "Point out anything false in your last response."          # per principle

Markdown: `Critique request:` / `Revision request:` / `Comparison request:` lines before the first `## `
heading set the defaults; each `## name` section is a principle whose text is its prose, and may override
the requests with the same `Key: value` lines. Templates use the world's `{slot}` syntax.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from alignlab.errors import UsageError
from alignlab.world.text import fill, rng, slots

DEFAULT_COMPARISON = (
    "Here is a request and two responses to it.\nRequest: {prompt}\n(A) {a}\n(B) {b}\n"
    "Which response follows this principle better: {principle} Answer (A) or (B)."
)
CHOICES = ("(A)", "(B)")  # the judge's answer continuations
REQUEST_KEYS = ("critique_request", "revision_request", "comparison_request")
SLOTS = {"critique_request": {"principle"}, "revision_request": {"principle"},
         "comparison_request": {"principle", "prompt", "a", "b"}}


@dataclass(frozen=True)
class Principle:
    name: str
    text: str
    critique_request: str  # the user turn, principle already filled in
    revision_request: str


@dataclass(frozen=True)
class Constitution:
    principles: tuple[Principle, ...]
    comparison_request: str  # slots {principle} {prompt} {a} {b}
    source: str

    def named(self, names: list[str] | None) -> tuple[Principle, ...]:
        """The principles called `names` (all of them when None or empty); an unknown name is an error."""
        if not names:
            return self.principles
        known = {p.name: p for p in self.principles}
        for name in names:
            if name not in known:
                raise UsageError(f"--principles: {self.source} has no principle {name!r} (known: {', '.join(known)})")
        return tuple(known[n] for n in names)

    def comparison(self, principle: Principle, prompt: str, a: str, b: str) -> str:
        return fill(self.comparison_request, principle=principle.text, prompt=prompt, a=a, b=b)


def draw_principles(pool: tuple[Principle, ...], n: int, rounds: int, seed: int) -> list[list[Principle]]:
    """n lists of `rounds` principles drawn uniformly with replacement from one seeded stream (Bai et al.
    draw a principle at random for every critique)."""
    if not pool:
        raise UsageError("constitution: no principles to draw from")
    rnd: random.Random = rng(seed, "principles")
    return [[rnd.choice(pool) for _ in range(rounds)] for _ in range(n)]


def build_constitution(data: dict, source: str) -> Constitution:
    """A Constitution from a mapping {principles: [...], critique_request, revision_request, ...}."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a mapping with 'principles', got {type(data).__name__}")
    world_only = {"critiques", "no_change_critique", "no_change_fraction"}  # a world's SFT demos, unused here
    extra = set(data) - {"principles", *world_only, *REQUEST_KEYS}
    if extra:
        raise UsageError(f"{source}: unknown key '{sorted(extra)[0]}' (known: principles, {', '.join(REQUEST_KEYS)})")
    items = data.get("principles")
    if not isinstance(items, list) or not items:
        raise UsageError(f"{source}: 'principles' must be a non-empty list")
    defaults = {k: data.get(k) for k in REQUEST_KEYS}
    defaults["comparison_request"] = defaults["comparison_request"] or DEFAULT_COMPARISON
    _check_template(source, "comparison_request", defaults["comparison_request"])
    principles = tuple(_principle(item, defaults, f"{source}: principles[{i}]") for i, item in enumerate(items))
    names = [p.name for p in principles]
    if len(set(names)) != len(names):
        raise UsageError(f"{source}: principle names must be unique, got {names}")
    return Constitution(principles, defaults["comparison_request"], source)


def _principle(item, defaults: dict, where: str) -> Principle:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected a mapping with name and text, got {type(item).__name__}")
    unknown = set(item) - {"name", "text", "critique_request", "revision_request"}
    if unknown:
        raise UsageError(f"{where}: unknown key '{sorted(unknown)[0]}'")
    values = {}
    for key in ("name", "text", "critique_request", "revision_request"):
        value = item.get(key, defaults.get(key))
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{where}: '{key}' must be a non-empty string (give it here or at the top level)")
        values[key] = value.strip()
    for key in ("critique_request", "revision_request"):
        _check_template(where, key, values[key])
        values[key] = fill(values[key], principle=values["text"])
    return Principle(**values)


def _check_template(where: str, key: str, template: str) -> None:
    unknown = set(slots(template)) - SLOTS[key]
    if unknown:
        raise UsageError(f"{where}: {key}: unknown slot {{{sorted(unknown)[0]}}} (allowed: {sorted(SLOTS[key])})")


def parse_markdown(text: str, source: str) -> dict:
    """The mapping a Markdown constitution describes (see the module docstring)."""
    key_line = re.compile(r"^(critique|revision|comparison) request:\s*(.+)$", re.IGNORECASE)
    top: dict = {"principles": []}
    current: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("## "):
            current = {"name": line[3:].strip(), "text": ""}
            top["principles"].append(current)
        elif m := key_line.match(line):
            (current if current is not None else top)[f"{m.group(1).lower()}_request"] = m.group(2).strip()
        elif current is not None and line and not line.startswith("#"):
            current["text"] = f"{current['text']} {line}".strip()
    if not top["principles"]:
        raise UsageError(f"{source}: no principles found (each principle is a '## name' section)")
    return top


def load_constitution(path: str | None, world_path: str | None = None) -> Constitution:
    """The constitution in `path` (.yaml/.yml/.md), or the world's own section when `path` is None."""
    if path is None:
        from dataclasses import asdict

        from alignlab.world import load_spec

        section = asdict(load_spec(world_path).constitution)
        return build_constitution(section, f"{world_path or 'default.yaml'}: constitution")
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--constitution: no such file {path}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".md", ".markdown"):
        return build_constitution(parse_markdown(text, path), path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        raise UsageError(f"--constitution: {path}: expected a .yaml, .yml or .md file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if isinstance(data, dict) and "constitution" in data:
        data = data["constitution"]  # a world spec, or a file with the section at the top
    return build_constitution(data, path)
