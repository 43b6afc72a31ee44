"""Format detection for every TRL kind, and the exact one-line validation errors."""

import pytest

from alignlab.data import formats as F
from alignlab.errors import UsageError


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


EXAMPLES = {
    F.STANDARD_LM: {"text": "The sky is blue."},
    F.CONVERSATIONAL_LM: {"messages": [U("Sky?"), A("Blue.")]},
    F.STANDARD_PROMPT_ONLY: {"prompt": "The sky is"},
    F.CONVERSATIONAL_PROMPT_ONLY: {"prompt": [U("Sky?")]},
    F.STANDARD_PROMPT_COMPLETION: {"prompt": "The sky is", "completion": " blue."},
    F.CONVERSATIONAL_PROMPT_COMPLETION: {"prompt": [U("Sky?")], "completion": [A("Blue.")]},
    F.STANDARD_PREFERENCE: {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
    F.CONVERSATIONAL_PREFERENCE: {"prompt": [U("Sky?")], "chosen": [A("Blue.")], "rejected": [A("Green.")]},
    F.IMPLICIT_PROMPT_PREFERENCE: {"chosen": [U("Sky?"), A("Blue.")], "rejected": [U("Sky?"), A("Green.")]},
    F.STANDARD_UNPAIRED: {"prompt": "The sky is", "completion": " blue.", "label": True},
    F.CONVERSATIONAL_UNPAIRED: {"prompt": [U("Sky?")], "completion": [A("Green.")], "label": False},
}


@pytest.mark.parametrize("kind", F.KINDS)
def test_each_kind_is_detected_and_valid(kind):
    records = [EXAMPLES[kind], dict(EXAMPLES[kind], rater_score=0.7)]  # extra columns are allowed
    assert F.detect_format(records, "d.jsonl") == kind
    F.validate_records(records, kind, "d.jsonl")
    assert records[1]["rater_score"] == 0.7


def test_every_kind_has_an_example():
    assert set(EXAMPLES) == set(F.KINDS)


def test_detection_prefers_the_task_columns_over_extras():
    # UltraChat-style rows carry a 'prompt' next to 'messages'; UltraFeedback-style rows carry 'messages'
    # next to prompt/chosen/rejected.
    assert (
        F.detect_format([{"prompt": "Sky?", "messages": [U("Sky?"), A("Blue.")]}], "d") == F.CONVERSATIONAL_LM
    )
    pref = dict(EXAMPLES[F.CONVERSATIONAL_PREFERENCE], messages=[U("Sky?"), A("Blue.")])
    assert F.detect_format([pref], "d") == F.CONVERSATIONAL_PREFERENCE


def test_string_prompt_beside_conversations_is_an_implicit_prompt():
    record = dict(EXAMPLES[F.IMPLICIT_PROMPT_PREFERENCE], prompt="Sky?")
    assert F.detect_format([record], "d") == F.IMPLICIT_PROMPT_PREFERENCE
    assert F.split_preference(record) == ([U("Sky?")], [A("Blue.")], [A("Green.")])


def test_split_preference_of_every_preference_kind():
    std = EXAMPLES[F.STANDARD_PREFERENCE]
    assert F.split_preference(std) == ("The sky is", " blue.", " green.")
    conv = EXAMPLES[F.CONVERSATIONAL_PREFERENCE]
    assert F.split_preference(conv) == ([U("Sky?")], [A("Blue.")], [A("Green.")])
    multi = {
        "chosen": [S("Be brief."), U("Sky?"), A("Blue."), U("Sure?"), A("Yes.")],
        "rejected": [S("Be brief."), U("Sky?"), A("Blue."), U("Sure?"), A("No, green.")],
    }
    assert F.split_preference(multi) == (multi["chosen"][:4], [A("Yes.")], [A("No, green.")])


def _error(records, kind=None, path="data.jsonl") -> str:
    with pytest.raises(UsageError) as e:
        F.validate_records(records, kind or F.detect_format(records, path), path)
    return str(e.value)


def _with_bad(record_number, bad, kind):
    """Six good records of `kind` with `bad` as record number `record_number` (numbered from 1)."""
    records = [EXAMPLES[kind]] * 6
    records[record_number - 1] = bad
    return records


def test_bad_role():
    bad = {"messages": [U("Sky?"), {"role": "bot", "content": "Blue."}]}
    records = [EXAMPLES[F.CONVERSATIONAL_LM]] * 6 + [bad]
    assert _error(records) == (
        "data.jsonl: record 7: field 'messages': role must be system, user or assistant, got 'bot'"
    )


def test_missing_field():
    records = _with_bad(3, {"prompt": "The sky is"}, F.STANDARD_PROMPT_COMPLETION)
    assert _error(records) == "data.jsonl: record 3: missing field 'completion'"


def test_null_counts_as_missing():
    # Arrow fills absent values with None when a parquet / datasets column is missing in some rows.
    records = _with_bad(2, {"prompt": "The sky is", "completion": None}, F.STANDARD_PROMPT_COMPLETION)
    assert _error(records) == "data.jsonl: record 2: missing field 'completion'"


def test_conversation_ends_on_user_turn():
    records = _with_bad(5, {"messages": [U("Sky?"), A("Blue."), U("Sure?")]}, F.CONVERSATIONAL_LM)
    assert _error(records) == "data.jsonl: record 5: conversation ends on a user turn"


@pytest.mark.parametrize(
    "kind, bad, message",
    [
        (F.STANDARD_LM, {"text": ""}, "field 'text': empty text"),
        (F.STANDARD_LM, {"text": 3}, "field 'text': expected a string, got int"),
        (F.CONVERSATIONAL_LM, {"messages": []}, "field 'messages': empty list of messages"),
        (
            F.CONVERSATIONAL_LM,
            {"messages": "Sky? Blue."},
            "field 'messages': expected a list of messages, got string",
        ),
        (
            F.CONVERSATIONAL_LM,
            {"messages": [U("Sky?"), {"role": "assistant", "content": ["Blue."]}]},
            "field 'messages': content must be a string, got list",
        ),
        (
            F.CONVERSATIONAL_LM,
            {"messages": [{"from": "human", "value": "Sky?"}]},
            "field 'messages': each message needs 'role' and 'content', got {'from': 'human', 'value': 'Sky?'}"
            " (ShareGPT-style 'from'/'value': rename them to 'role'/'content')",
        ),
        (
            F.STANDARD_PROMPT_COMPLETION,
            {"prompt": [U("Sky?")], "completion": "Blue."},
            "field 'prompt': expected a string, got list",
        ),
        (
            F.CONVERSATIONAL_PROMPT_ONLY,
            {"prompt": [U("Sky?"), A("Blue.")]},
            "field 'prompt': the prompt must end on a user turn, got assistant",
        ),
        (
            F.CONVERSATIONAL_PROMPT_COMPLETION,
            {"prompt": [U("Sky?")], "completion": [U("Blue.")]},
            "field 'completion': the completion must start with an assistant turn, got user",
        ),
        (
            F.CONVERSATIONAL_PREFERENCE,
            {"prompt": [U("Sky?")], "chosen": [A("Blue.")], "rejected": "Green."},
            "field 'rejected': expected a list of messages, got string",
        ),
        (
            F.STANDARD_UNPAIRED,
            {"prompt": "Sky", "completion": " blue", "label": 1},
            "field 'label': expected true or false, got 1",
        ),
        (
            F.IMPLICIT_PROMPT_PREFERENCE,
            {"chosen": [U("Sky?"), A("Blue.")], "rejected": [U("Grass?"), A("Green.")]},
            "chosen and rejected share no prompt (their first messages differ)",
        ),
        (
            F.IMPLICIT_PROMPT_PREFERENCE,
            {"chosen": [U("Sky?"), A("Blue.")], "rejected": [U("Sky?"), A("Blue.")]},
            "chosen and rejected are identical",
        ),
        (
            F.IMPLICIT_PROMPT_PREFERENCE,
            {"chosen": [U("Sky?"), A("Blue."), U("Sure?"), A("Yes.")], "rejected": [U("Sky?"), A("Blue.")]},
            "field 'rejected': nothing after the prompt it shares with the other completion",
        ),
        (
            F.IMPLICIT_PROMPT_PREFERENCE,
            {"chosen": [U("Sky?"), A("Blue."), A("Yes.")], "rejected": [U("Sky?"), A("Blue."), A("No.")]},
            "the prompt shared by chosen and rejected must end on a user turn, got assistant",
        ),
    ],
)
def test_validation_messages(kind, bad, message):
    assert _error(_with_bad(4, bad, kind), kind) == f"data.jsonl: record 4: {message}"


def test_unrecognised_fields():
    with pytest.raises(UsageError) as e:
        F.detect_format([{"question": "Sky?", "answer": "Blue."}], "q.json")
    assert str(e.value) == (
        "q.json: record 1: cannot tell the dataset format from fields ['answer', 'question']; expected one of:"
        " text | messages | prompt | prompt+completion | prompt+chosen+rejected | chosen+rejected"
        " | prompt+completion+label"
    )


def test_standard_chosen_rejected_need_a_prompt():
    with pytest.raises(UsageError, match="implicit prompts are supported only for conversations"):
        F.detect_format([{"chosen": "The sky is blue.", "rejected": "The sky is green."}], "p.jsonl")


def test_load_dataset_checks_the_kind(write_jsonl):
    path = write_jsonl([EXAMPLES[F.STANDARD_PREFERENCE]])
    records, kind = F.load_dataset(path, allowed=F.PREFERENCE_KINDS, purpose="dpo")
    assert kind == F.STANDARD_PREFERENCE and records == [EXAMPLES[F.STANDARD_PREFERENCE]]
    with pytest.raises(UsageError) as e:
        F.load_dataset(path, allowed=F.SFT_KINDS, purpose="sft")
    assert str(e.value) == f"{path}: dataset is standard_preference; sft needs one of: " + ", ".join(
        F.SFT_KINDS
    )


def test_jsonl_record_number_is_the_line_number(write_jsonl):
    records = [EXAMPLES[F.CONVERSATIONAL_LM]] * 6 + [{"messages": [U("x"), {"role": "bot", "content": "y"}]}]
    path = write_jsonl(records)
    with pytest.raises(UsageError) as e:
        F.load_dataset(path)
    assert (
        str(e.value)
        == f"{path}: record 7: field 'messages': role must be system, user or assistant, got 'bot'"
    )
