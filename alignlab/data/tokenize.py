"""Turn validated records into token ids: SFT examples with loss labels, preference and KTO triples, prompts.

Conventions (shared with TRL):
- plain `text` gets eos appended, so the model learns where a document ends;
- a standard completion (or chosen/rejected) is tokenized on its own, without special tokens, and gets eos
  appended; the prompt is tokenized on its own with the tokenizer's special tokens (a bos, if it adds one).
  Tokenizing the two separately is what makes the training sequence the one the model produces at
  generation time, when it is given the prompt's ids and continues them;
- conversations go through the chat template; a conversational completion is what the template renders
  after the prompt and its generation prompt, turn terminator (`<|end|>`) included (see chat.py).

Labels are -100 where no loss is taken (the ignore index of `torch.nn.functional.cross_entropy`). They are
aligned with `input_ids` (not shifted): the model shifts them, so `labels[0]` is never predicted.

Nothing is cut silently: a sequence longer than its limit is an error unless truncation was asked for,
and then the number of truncated records is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alignlab.data import formats as F
from alignlab.data.chat import assistant_token_mask, prompt_completion_ids, render_ids
from alignlab.errors import UsageError

IGNORE_INDEX = -100
TRUNCATION_MODES = ("error", "left", "right")
log = logging.getLogger(__name__)


@dataclass
class TokenizedExample:
    """One SFT sequence: `labels[i]` is `input_ids[i]` where the token carries loss, else -100."""

    input_ids: list[int]
    labels: list[int]
    record: int = 0  # 1-based record number in its file, for messages

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class PreferenceExample:
    """One preference pair: the completions continue `prompt_ids` (they do not repeat it)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    record: int = 0


@dataclass
class UnpairedExample:
    """One KTO example: a completion of `prompt_ids` labelled desirable (True) or not."""

    prompt_ids: list[int]
    completion_ids: list[int]
    label: bool
    record: int = 0


def tokenize_sft(
    records: list[dict],
    tokenizer,
    max_length: int,
    completion_only_loss: bool = True,
    truncation: str = "error",
    *,
    path: str | Path = "<records>",
    kind: str | None = None,
) -> list[TokenizedExample]:
    """Tokenize text, conversations or prompt/completion records for SFT.

    With `completion_only_loss`, only assistant turns (conversations) or the completion carry loss; the
    `<|end|>` closing each assistant turn does too, so the model learns to stop. Otherwise every token
    does. `truncation`: "error" (default), "left" (keep the end) or "right" (keep the start).
    """
    if truncation not in TRUNCATION_MODES:
        raise UsageError(f"truncation must be one of {', '.join(TRUNCATION_MODES)}, got {truncation!r}")
    kind = _checked_kind(records, path, kind, F.SFT_KINDS, "SFT")
    examples, n_truncated, n_untrained = [], 0, 0
    for number, record in enumerate(records, start=1):
        where = f"{path}: record {number}"
        ids, trained = _SFT_BUILDERS[kind](record, tokenizer, where)
        labels = [
            t if (keep or not completion_only_loss) else IGNORE_INDEX
            for t, keep in zip(ids, trained, strict=True)
        ]
        if len(ids) > max_length:
            if truncation == "error":
                raise UsageError(
                    f"{where}: {len(ids)} tokens, longer than max_length {max_length};"
                    " raise max_length or set truncation to 'left' or 'right'"
                )
            cut = slice(len(ids) - max_length, None) if truncation == "left" else slice(0, max_length)
            ids, labels, n_truncated = ids[cut], labels[cut], n_truncated + 1
            n_untrained += all(label == IGNORE_INDEX for label in labels[1:])
        examples.append(TokenizedExample(ids, labels, number))
    if n_truncated:
        log.warning(
            "%s: truncated %d of %d records to %d tokens (%s); %d of them kept no token that carries loss",
            path,
            n_truncated,
            len(records),
            max_length,
            truncation,
            n_untrained,
        )
    return examples


def tokenize_preference(
    records: list[dict],
    tokenizer,
    max_prompt_length: int | None,
    max_completion_length: int | None,
    truncation: str = "error",
    *,
    path: str | Path = "<records>",
    kind: str | None = None,
) -> list[PreferenceExample]:
    """Tokenize preference records (explicit or implicit prompt, standard or conversational).

    `truncation`: "error", or "truncate" to keep the end of a long prompt (the part next to the completion)
    and the start of a long completion (the part generated first).
    """
    kind = _checked_kind(records, path, kind, F.PREFERENCE_KINDS, "preference training")
    limits = _Limits(max_prompt_length, max_completion_length, truncation, path)
    out = []
    for number, record in enumerate(records, start=1):
        where = f"{path}: record {number}"
        prompt, chosen, rejected = F.split_preference(record)
        prompt_ids, chosen_ids = _prompt_and_completion(tokenizer, prompt, chosen, where)
        _, rejected_ids = _prompt_and_completion(tokenizer, prompt, rejected, where)
        out.append(
            PreferenceExample(
                limits.prompt(prompt_ids, where),
                limits.completion(chosen_ids, where, "chosen"),
                limits.completion(rejected_ids, where, "rejected"),
                number,
            )
        )
    limits.report(len(records))
    return out


def tokenize_unpaired(
    records: list[dict],
    tokenizer,
    max_prompt_length: int | None,
    max_completion_length: int | None,
    truncation: str = "error",
    *,
    path: str | Path = "<records>",
    kind: str | None = None,
) -> list[UnpairedExample]:
    """Tokenize unpaired preference (KTO) records; truncation as in `tokenize_preference`."""
    kind = _checked_kind(records, path, kind, F.UNPAIRED_KINDS, "KTO")
    limits = _Limits(max_prompt_length, max_completion_length, truncation, path)
    out = []
    for number, record in enumerate(records, start=1):
        where = f"{path}: record {number}"
        prompt_ids, completion_ids = _prompt_and_completion(
            tokenizer, record["prompt"], record["completion"], where
        )
        out.append(
            UnpairedExample(
                limits.prompt(prompt_ids, where),
                limits.completion(completion_ids, where, "completion"),
                record["label"],
                number,
            )
        )
    limits.report(len(records))
    return out


def tokenize_prompts(
    records: list[dict],
    tokenizer,
    max_prompt_length: int | None,
    truncation: str = "error",
    *,
    path: str | Path = "<records>",
    kind: str | None = None,
) -> list[list[int]]:
    """The prompt of every record, ready to generate from (online RL, best-of-n); any kind with a prompt."""
    kind = _checked_kind(records, path, kind, F.PROMPT_KINDS, "generation from prompts")
    limits = _Limits(max_prompt_length, None, truncation, path)
    out = []
    for number, record in enumerate(records, start=1):
        where = f"{path}: record {number}"
        prompt = F.split_preference(record)[0] if kind in F.PREFERENCE_KINDS else record["prompt"]
        ids = _prompt_ids(tokenizer, prompt, where)
        out.append(limits.prompt(ids, where))
    limits.report(len(records))
    return out


def _checked_kind(records, path, kind, allowed, purpose) -> str:
    kind = kind or F.detect_format(records, path)
    if kind not in allowed:
        raise UsageError(f"{path}: dataset is {kind}; {purpose} needs one of: {', '.join(allowed)}")
    F.validate_records(records, kind, path)
    return kind


def _prompt_ids(tokenizer, prompt, where: str) -> list[int]:
    if isinstance(prompt, list):
        return render_ids(tokenizer, prompt, add_generation_prompt=True, where=where)
    return tokenizer(prompt).input_ids


def _prompt_and_completion(tokenizer, prompt, completion, where: str) -> tuple[list[int], list[int]]:
    if isinstance(prompt, list):
        return prompt_completion_ids(tokenizer, prompt, completion, where)
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [_eos_id(tokenizer, where)]
    return tokenizer(prompt).input_ids, completion_ids


def _eos_id(tokenizer, where: str) -> int:
    if tokenizer.eos_token_id is None:
        raise UsageError(
            f"{where}: the tokenizer has no eos token, which ends every standard completion and text"
        )
    return tokenizer.eos_token_id


def _sft_text(record, tokenizer, where):
    ids = tokenizer(record["text"]).input_ids + [_eos_id(tokenizer, where)]
    return ids, [True] * len(ids)


def _sft_messages(record, tokenizer, where):
    return assistant_token_mask(tokenizer, record["messages"], where)


def _sft_prompt_completion(record, tokenizer, where):
    prompt_ids, completion_ids = _prompt_and_completion(
        tokenizer, record["prompt"], record["completion"], where
    )
    return prompt_ids + completion_ids, [False] * len(prompt_ids) + [True] * len(completion_ids)


_SFT_BUILDERS = {
    F.STANDARD_LM: _sft_text,
    F.CONVERSATIONAL_LM: _sft_messages,
    F.STANDARD_PROMPT_COMPLETION: _sft_prompt_completion,
    F.CONVERSATIONAL_PROMPT_COMPLETION: _sft_prompt_completion,
}


class _Limits:
    """Length limits of prompts and completions: raise, or keep the prompt's end and the completion's start."""

    def __init__(self, max_prompt: int | None, max_completion: int | None, truncation: str, path):
        if truncation not in ("error", "truncate"):
            raise UsageError(f"truncation must be 'error' or 'truncate', got {truncation!r}")
        self.max_prompt, self.max_completion, self.truncation, self.path = (
            max_prompt,
            max_completion,
            truncation,
            path,
        )
        self.n_truncated = 0

    def prompt(self, ids: list[int], where: str) -> list[int]:
        if self.max_prompt is None or len(ids) <= self.max_prompt:
            return ids
        self._over(where, "prompt", len(ids), "max_prompt_length", self.max_prompt)
        return ids[len(ids) - self.max_prompt :]

    def completion(self, ids: list[int], where: str, field: str) -> list[int]:
        if self.max_completion is None or len(ids) <= self.max_completion:
            return ids
        self._over(where, field, len(ids), "max_completion_length", self.max_completion)
        return ids[: self.max_completion]

    def _over(self, where: str, field: str, length: int, limit_name: str, limit: int) -> None:
        if self.truncation == "error":
            raise UsageError(
                f"{where}: field '{field}': {length} tokens, longer than {limit_name} {limit};"
                f" raise {limit_name} or set truncation to 'truncate'"
            )
        self.n_truncated += 1

    def report(self, n_records: int) -> None:
        if self.n_truncated:
            log.warning(
                "%s: truncated %d prompts/completions of %d records", self.path, self.n_truncated, n_records
            )
