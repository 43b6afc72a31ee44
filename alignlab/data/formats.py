"""Detect and validate TRL's dataset formats.

Follows https://huggingface.co/docs/trl/dataset_formats: a dataset has a *type* (language modelling,
prompt-only, prompt-completion, preference, unpaired preference) and a *format* (standard strings, or
conversational lists of `{"role", "content"}` messages). A kind names both, as TRL's own test datasets
(`trl-internal-testing/zen`) do: `conversational_preference`, `standard_prompt_completion`, ...

Detection looks at the fields of the first record; validation then checks every record and raises
`UsageError("<file>: record N: field 'x': ...")` at the first problem. Records are numbered from 1 (the
line number of a .jsonl file). Extra columns (rater scores, ids) are allowed and left alone.

Deliberately left out: TRL's stepwise-supervision type, and implicit prompts for *standard* preference
data (TRL cuts the strings at the first differing character, which splits words; give a `prompt` field).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from alignlab.data.load import load_records
from alignlab.errors import UsageError

STANDARD_LM = "standard_language_modeling"  # {"text": str}
CONVERSATIONAL_LM = "conversational_language_modeling"  # {"messages": [...]}
STANDARD_PROMPT_ONLY = "standard_prompt_only"  # {"prompt": str}
CONVERSATIONAL_PROMPT_ONLY = "conversational_prompt_only"
STANDARD_PROMPT_COMPLETION = "standard_prompt_completion"  # {"prompt", "completion"}
CONVERSATIONAL_PROMPT_COMPLETION = "conversational_prompt_completion"
STANDARD_PREFERENCE = "standard_preference"  # {"prompt", "chosen", "rejected"}
CONVERSATIONAL_PREFERENCE = "conversational_preference"
IMPLICIT_PROMPT_PREFERENCE = "conversational_implicit_prompt_preference"  # {"chosen", "rejected"}
STANDARD_UNPAIRED = "standard_unpaired_preference"  # {"prompt", "completion", "label"} (KTO)
CONVERSATIONAL_UNPAIRED = "conversational_unpaired_preference"

SFT_KINDS = (STANDARD_LM, CONVERSATIONAL_LM, STANDARD_PROMPT_COMPLETION, CONVERSATIONAL_PROMPT_COMPLETION)
PREFERENCE_KINDS = (STANDARD_PREFERENCE, CONVERSATIONAL_PREFERENCE, IMPLICIT_PROMPT_PREFERENCE)
UNPAIRED_KINDS = (STANDARD_UNPAIRED, CONVERSATIONAL_UNPAIRED)
PROMPT_ONLY_KINDS = (STANDARD_PROMPT_ONLY, CONVERSATIONAL_PROMPT_ONLY)
# Kinds with an explicit or implicit prompt: usable as the prompt set of online RL / best-of-n.
PROMPT_KINDS = PROMPT_ONLY_KINDS + PREFERENCE_KINDS + UNPAIRED_KINDS + SFT_KINDS[2:]
KINDS = SFT_KINDS + PROMPT_ONLY_KINDS + PREFERENCE_KINDS + UNPAIRED_KINDS

ROLES = ("system", "user", "assistant")

_EXPECTED_FIELDS = (
    "text | messages | prompt | prompt+completion | prompt+chosen+rejected | chosen+rejected"
    " | prompt+completion+label"
)


def is_conversational(kind: str) -> bool:
    return kind.startswith("conversational_")


def detect_format(records: list[dict], path: str | Path) -> str:
    """The kind of a dataset, from the fields of its first record (see the module docstring)."""
    if not records:
        raise UsageError(f"{path}: the dataset has no records")
    first = records[0]
    keys = {k for k, v in first.items() if v is not None}
    if {"chosen", "rejected"} <= keys:
        if isinstance(first["chosen"], list):
            # A string prompt next to conversational chosen/rejected repeats the shared prefix; TRL's
            # maybe_extract_prompt ignores it the same way.
            prompt_is_messages = isinstance(first.get("prompt"), list)
            return CONVERSATIONAL_PREFERENCE if prompt_is_messages else IMPLICIT_PROMPT_PREFERENCE
        if "prompt" in keys:
            return STANDARD_PREFERENCE
        raise UsageError(
            f"{path}: record 1: fields 'chosen' and 'rejected' are strings and there is no 'prompt' field;"
            " implicit prompts are supported only for conversations, so add a 'prompt' column"
        )
    if "messages" in keys:
        return CONVERSATIONAL_LM
    conversational = isinstance(first.get("prompt"), list)
    if {"prompt", "completion", "label"} <= keys:
        return CONVERSATIONAL_UNPAIRED if conversational else STANDARD_UNPAIRED
    if {"prompt", "completion"} <= keys:
        return CONVERSATIONAL_PROMPT_COMPLETION if conversational else STANDARD_PROMPT_COMPLETION
    if "prompt" in keys:
        return CONVERSATIONAL_PROMPT_ONLY if conversational else STANDARD_PROMPT_ONLY
    if "text" in keys:
        return STANDARD_LM
    raise UsageError(
        f"{path}: record 1: cannot tell the dataset format from fields {sorted(first)}; expected one of: "
        + _EXPECTED_FIELDS
    )


def validate_records(records: list[dict], kind: str, path: str | Path) -> None:
    """Check every record against `kind`; raise UsageError naming file, record and field at the first fault."""
    if kind not in _CHECKS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(KINDS)}")
    for number, record in enumerate(records, start=1):
        try:
            if not isinstance(record, dict):
                raise _Fault(f"expected an object, got {type(record).__name__}")
            for field, check in _CHECKS[kind]:
                value = record.get(field)
                if value is None:
                    raise _Fault(f"missing field '{field}'")
                check(value, field)
            if kind == IMPLICIT_PROMPT_PREFERENCE:
                _split_implicit_prompt(record)
        except _Fault as fault:
            raise UsageError(f"{path}: record {number}: {fault}") from None


def load_dataset(
    path: str | Path, allowed: Collection[str] | None = None, purpose: str = "this stage"
) -> tuple[list[dict], str]:
    """Load, detect and validate: (records, kind). `allowed` restricts the kinds `purpose` accepts."""
    records = load_records(path)
    kind = detect_format(records, path)
    if allowed is not None and kind not in allowed:
        raise UsageError(f"{path}: dataset is {kind}; {purpose} needs one of: {', '.join(allowed)}")
    validate_records(records, kind, path)
    return records, kind


def split_preference(record: dict) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected) of a validated preference record of any kind.

    An implicit prompt is the longest run of messages chosen and rejected share (as TRL's `extract_prompt`).
    """
    if "prompt" in record and isinstance(record["prompt"], list) == isinstance(record["chosen"], list):
        return record["prompt"], record["chosen"], record["rejected"]
    try:
        return _split_implicit_prompt(record)
    except _Fault as fault:
        raise ValueError(f"record not validated: {fault}") from None


def completion_text(completion) -> str:
    """A completion as text: the string itself, or its messages' contents joined by newlines."""
    return completion if isinstance(completion, str) else "\n".join(m["content"] for m in completion)


def _split_implicit_prompt(record: dict) -> tuple[list[dict], list[dict], list[dict]]:
    chosen, rejected = record["chosen"], record["rejected"]
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise _Fault("chosen and rejected share no prompt (their first messages differ)")
    if n == len(chosen) == len(rejected):
        raise _Fault("chosen and rejected are identical")
    for field, rest in (("chosen", chosen[n:]), ("rejected", rejected[n:])):
        if not rest:
            raise _Fault(f"field '{field}': nothing after the prompt it shares with the other completion")
    if chosen[n - 1]["role"] != "user":
        raise _Fault(
            f"the prompt shared by chosen and rejected must end on a user turn, got {chosen[n - 1]['role']}"
        )
    _check_completion(chosen[n:], "chosen")
    _check_completion(rejected[n:], "rejected")
    return chosen[:n], chosen[n:], rejected[n:]


class _Fault(Exception):
    """A problem with one record; validate_records adds the file and record number."""


def _check_string(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise _Fault(f"field '{field}': expected a string, got {_type_name(value)}")


def _check_text(value: Any, field: str) -> None:
    _check_string(value, field)
    if not value:
        raise _Fault(f"field '{field}': empty text")


def _check_label(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise _Fault(f"field '{field}': expected true or false, got {value!r}")


def _check_messages(value: Any, field: str) -> None:
    if not isinstance(value, list):
        raise _Fault(f"field '{field}': expected a list of messages, got {_type_name(value)}")
    if not value:
        raise _Fault(f"field '{field}': empty list of messages")
    for message in value:
        if not isinstance(message, dict) or message.get("role") is None or "content" not in message:
            hint = ""
            if isinstance(message, dict) and {"from", "value"} <= set(message):
                hint = " (ShareGPT-style 'from'/'value': rename them to 'role'/'content')"
            raise _Fault(f"field '{field}': each message needs 'role' and 'content', got {message!r}{hint}")
        if message["role"] not in ROLES:
            raise _Fault(f"field '{field}': role must be system, user or assistant, got {message['role']!r}")
        if not isinstance(message["content"], str):
            raise _Fault(f"field '{field}': content must be a string, got {_type_name(message['content'])}")
        if message.get("weight", 1) not in (0, 1) or isinstance(message.get("weight"), bool):
            raise _Fault(f"field '{field}': weight must be 0 or 1, got {message.get('weight')!r}")


def _check_conversation(value: Any, field: str) -> None:
    _check_messages(value, field)
    _check_ends_on_assistant(value)


def _check_prompt(value: Any, field: str) -> None:
    _check_messages(value, field)
    if value[-1]["role"] != "user":
        raise _Fault(f"field '{field}': the prompt must end on a user turn, got {value[-1]['role']}")


def _check_completion(value: Any, field: str) -> None:
    _check_messages(value, field)
    if value[0]["role"] != "assistant":
        raise _Fault(
            f"field '{field}': the completion must start with an assistant turn, got {value[0]['role']}"
        )
    _check_ends_on_assistant(value)


def _check_ends_on_assistant(messages: list[dict]) -> None:
    if messages[-1]["role"] != "assistant":
        raise _Fault(f"conversation ends on a {messages[-1]['role']} turn")


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


_Check = Callable[[Any, str], None]
_CHECKS: dict[str, list[tuple[str, _Check]]] = {
    STANDARD_LM: [("text", _check_text)],
    CONVERSATIONAL_LM: [("messages", _check_conversation)],
    STANDARD_PROMPT_ONLY: [("prompt", _check_string)],
    CONVERSATIONAL_PROMPT_ONLY: [("prompt", _check_prompt)],
    STANDARD_PROMPT_COMPLETION: [("prompt", _check_string), ("completion", _check_string)],
    CONVERSATIONAL_PROMPT_COMPLETION: [("prompt", _check_prompt), ("completion", _check_completion)],
    STANDARD_PREFERENCE: [("prompt", _check_string), ("chosen", _check_string), ("rejected", _check_string)],
    CONVERSATIONAL_PREFERENCE: [
        ("prompt", _check_prompt),
        ("chosen", _check_completion),
        ("rejected", _check_completion),
    ],
    IMPLICIT_PROMPT_PREFERENCE: [("chosen", _check_messages), ("rejected", _check_messages)],
    STANDARD_UNPAIRED: [("prompt", _check_string), ("completion", _check_string), ("label", _check_label)],
    CONVERSATIONAL_UNPAIRED: [
        ("prompt", _check_prompt),
        ("completion", _check_completion),
        ("label", _check_label),
    ],
}
