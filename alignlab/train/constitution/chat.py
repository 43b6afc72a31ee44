"""What revise and label share: the prompt set (the world's probes or a TRL prompt file) and chat sampling.

A prompt is a conversation ending on a user turn; a TRL string prompt becomes one user turn. Prompts from
the world, or from a file whose records carry the world's `probe` column (as `alignlab preferences` and
this stage write them), keep their probe so that the gold rater can score the responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alignlab.config import option
from alignlab.data import PREFERENCE_KINDS, PROMPT_KINDS, load_dataset, split_preference
from alignlab.errors import UsageError
from alignlab.world.probes import Probe

WORLD_CATEGORIES = ("hazardous", "benign", "quiz", "grammar_correct", "grammar_incorrect")


@dataclass
class PromptOptions:
    prompts: str = option("world", "'world' (the world's probes) or a TRL prompt-only .jsonl/.json/.parquet file")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    split: str = option("heldout", "world probe phrasings: held out of the SFT data, or those it used",
                        ("heldout", "train"))
    categories: list[str] = option(list(WORLD_CATEGORIES), "world probe categories",
                                   ("quiz", "hazardous", "benign", "grammar_correct", "grammar_incorrect",
                                    "persona", "scene"))
    prompts_per_category: int = option(8, "distinct world prompts per category (fewer if it has fewer)")
    samples_per_prompt: int = option(1, "independent runs per prompt (each prompt repeated this many times)")


@dataclass
class SamplingOptions:
    max_new_tokens: int = option(48, "tokens sampled per response, critique, or revision")
    temperature: float = option(0.7, "sampling temperature")
    top_p: float = option(1.0, "nucleus sampling mass")
    batch_size: int = option(64, "conversations sampled together")


@dataclass
class PromptItem:
    messages: list[dict]  # the conversation so far, ending on a user turn
    probe: Probe | None  # the world's record of the prompt, when known (gold scoring)

    def record(self) -> dict:
        extra = {"category": self.probe.category, "probe": self.probe.to_record()} if self.probe else {}
        return {"prompt": self.messages, **extra}


def load_prompts(opts: PromptOptions, seed: int) -> list[PromptItem]:
    """The prompt set of `opts`, each prompt repeated samples_per_prompt times (adjacent)."""
    if opts.samples_per_prompt < 1:
        raise UsageError(f"--samples_per_prompt: must be >= 1, got {opts.samples_per_prompt}")
    items = _world_prompts(opts, seed) if opts.prompts == "world" else _file_prompts(opts.prompts)
    return [item for item in items for _ in range(opts.samples_per_prompt)]


def _world_prompts(opts: PromptOptions, seed: int) -> list[PromptItem]:
    from alignlab.world import load_world

    if not opts.categories:
        raise UsageError("--categories: give at least one probe category")
    if opts.prompts_per_category < 1:
        raise UsageError(f"--prompts_per_category: must be >= 1, got {opts.prompts_per_category}")
    probes = load_world(opts.world).behaviour_probes(opts.split, seed, opts.prompts_per_category,
                                                     tuple(opts.categories))
    return [PromptItem([{"role": "user", "content": p.prompt}], p) for p in probes]


def _file_prompts(path: str) -> list[PromptItem]:
    records, kind = load_dataset(path, allowed=PROMPT_KINDS, purpose="constitution --prompts")
    out = []
    for record in records:
        prompt = split_preference(record)[0] if kind in PREFERENCE_KINDS else record["prompt"]
        out.append(PromptItem(as_messages(prompt), record_probe(record)))
    if any(i.probe is None for i in out) and any(i.probe is not None for i in out):
        raise UsageError(f"{path}: some records have a 'probe' column and some do not; gold scoring needs all or none")
    return out


def as_messages(prompt: str | list[dict]) -> list[dict]:
    """A TRL prompt as messages (a string is one user turn), without extra keys such as weight."""
    if isinstance(prompt, str):
        return [turn("user", prompt)]
    return [turn(m["role"], m["content"]) for m in prompt]


def record_probe(record: dict) -> Probe | None:
    """The world's probe a record carries in its `probe` column, if any."""
    probe = record.get("probe")
    return Probe.from_record(probe) if isinstance(probe, dict) else None


def prompt_text(messages: list[dict]) -> str:
    """A conversation as one block of text for the judge: the user turn alone, or 'role: content' lines."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


class ChatModel:
    """A local HF chat model that answers conversations: `reply(conversations, seed) -> [text, ...]`."""

    def __init__(self, path: str, what: str, opts: SamplingOptions):
        from alignlab.models import load_causal_lm, load_tokenizer

        self.path = path
        self.model = load_causal_lm(path, what=what).eval()
        self.tokenizer = load_tokenizer(path, what=what)
        if not getattr(self.tokenizer, "chat_template", None):
            raise UsageError(f"{what}: {path} has no chat template; the constitutional stage talks to a chat model")
        self.opts = opts

    def render(self, conversation: list[dict], generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def reply(self, conversations: list[list[dict]], seed: int) -> list[str]:
        """One sampled assistant turn per conversation, cut at the end-of-turn token and stripped."""
        from alignlab.generation import SamplingConfig, generate_text
        from alignlab.models import stop_token_ids

        o = self.opts
        sampling = SamplingConfig(max_new_tokens=o.max_new_tokens, temperature=o.temperature, top_p=o.top_p,
                                  stop_token_ids=stop_token_ids(self.tokenizer), seed=seed)
        texts = [self.render(c) for c in conversations]
        with torch.inference_mode():
            out = generate_text(self.model, self.tokenizer, texts, sampling, o.batch_size, add_special_tokens=False)
        return [t.strip() for t in out]
