"""Tokenisation: exact ids and loss labels, built by hand from the pieces of each rendering.

alignlab's template renders a turn as `<|role|>content<|end|>`; special tokens are split off before BPE,
so tokenizing the pieces of a rendering separately and concatenating gives the same ids as tokenizing it
whole. That is what the expected values below are built from.
"""

import copy

import pytest

from alignlab.data.tokenize import (
    IGNORE_INDEX,
    tokenize_preference,
    tokenize_prompts,
    tokenize_sft,
    tokenize_unpaired,
)
from alignlab.errors import UsageError


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


def ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def expected(tok, pieces):
    """(input_ids, labels) from [(text, carries_loss), ...]."""
    input_ids, labels = [], []
    for text, trained in pieces:
        t = ids(tok, text)
        input_ids += t
        labels += t if trained else [IGNORE_INDEX] * len(t)
    return input_ids, labels


CONVERSATION = [S("Be brief."), U("What color is the sky?"), A("Blue."), U("Sure?"), A("Yes, blue.")]
CONVERSATION_PIECES = [
    ("<|system|> Be brief.<|end|><|user|> What color is the sky?<|end|><|assistant|>", False),
    (" Blue.<|end|>", True),
    ("<|user|> Sure?<|end|><|assistant|>", False),
    (" Yes, blue.<|end|>", True),
]


def test_text_gets_eos_and_trains_everywhere(tok):
    [ex] = tokenize_sft([{"text": "the sky is blue"}], tok, max_length=64)
    assert ex.input_ids == ids(tok, "the sky is blue") + [tok.eos_token_id]
    assert ex.labels == ex.input_ids
    assert ex.record == 1


def test_standard_prompt_completion(tok):
    record = {"prompt": "The sky is", "completion": " blue."}
    [ex] = tokenize_sft([record], tok, max_length=64)
    prompt, completion = ids(tok, "The sky is"), ids(tok, " blue.") + [tok.eos_token_id]
    assert ex.input_ids == prompt + completion
    assert ex.labels == [IGNORE_INDEX] * len(prompt) + completion
    [full] = tokenize_sft([record], tok, max_length=64, completion_only_loss=False)
    assert full.labels == full.input_ids


def test_multi_turn_only_assistant_tokens_carry_loss(tok):
    [ex] = tokenize_sft([{"messages": CONVERSATION}], tok, max_length=128)
    assert (ex.input_ids, ex.labels) == expected(tok, CONVERSATION_PIECES)
    # The <|end|> closing each assistant turn is trained (so the model learns to stop); the others are not.
    end = tok.convert_tokens_to_ids("<|end|>")
    trained_ends = [lab == end for i, lab in zip(ex.input_ids, ex.labels, strict=True) if i == end]
    assert trained_ends == [False, False, True, False, True]


def test_mask_matches_hf_generation_tags(tok):
    # alignlab's own template has {% generation %} tags; the prefix-diff method must agree with them.
    [ex] = tokenize_sft([{"messages": CONVERSATION}], tok, max_length=128)
    hf = tok.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    assert hf["input_ids"] == ex.input_ids
    assert hf["assistant_masks"] == [int(lab != IGNORE_INDEX) for lab in ex.labels]


def test_messages_without_completion_only_loss_train_everything(tok):
    [ex] = tokenize_sft([{"messages": CONVERSATION}], tok, max_length=128, completion_only_loss=False)
    assert ex.labels == ex.input_ids


def test_conversational_prompt_completion(tok):
    record = {"prompt": [U("Sky?")], "completion": [A("Blue.")]}
    [ex] = tokenize_sft([record], tok, max_length=64)
    assert (ex.input_ids, ex.labels) == expected(
        tok, [("<|user|> Sky?<|end|><|assistant|>", False), (" Blue.<|end|>", True)]
    )


def test_sequence_over_max_length_is_an_error(tok):
    records = [{"text": "hi"}, {"text": "the sky is blue and the grass is green"}]
    n = len(ids(tok, records[1]["text"])) + 1
    with pytest.raises(UsageError) as e:
        tokenize_sft(records, tok, max_length=5, path="d.jsonl")
    assert str(e.value) == (
        f"d.jsonl: record 2: {n} tokens, longer than max_length 5; raise max_length or set truncation to 'left' or 'right'"
    )


def test_truncation_left_and_right(tok):
    [ex] = tokenize_sft([{"messages": CONVERSATION}], tok, max_length=128)
    [left] = tokenize_sft([{"messages": CONVERSATION}], tok, max_length=6, truncation="left")
    [right] = tokenize_sft([{"messages": CONVERSATION}], tok, max_length=6, truncation="right")
    assert (left.input_ids, left.labels) == (ex.input_ids[-6:], ex.labels[-6:])
    assert (right.input_ids, right.labels) == (ex.input_ids[:6], ex.labels[:6])
    with pytest.raises(UsageError, match="truncation must be one of error, left, right, got 'middle'"):
        tokenize_sft([{"messages": CONVERSATION}], tok, max_length=6, truncation="middle")


def test_sft_refuses_preference_data(tok):
    with pytest.raises(UsageError, match=r"^p.jsonl: dataset is standard_preference; SFT needs one of: "):
        tokenize_sft([{"prompt": "a", "chosen": "b", "rejected": "c"}], tok, 64, path="p.jsonl")


def test_validation_runs_before_tokenizing(tok):
    with pytest.raises(UsageError, match=r"^d.jsonl: record 1: conversation ends on a user turn$"):
        tokenize_sft([{"messages": [U("Sky?")]}], tok, 64, path="d.jsonl")


def test_non_incremental_template_is_refused(tok):
    # This template writes past assistant turns in capitals and the last one as is, so rendering the
    # first turns is not a prefix of rendering the whole conversation.
    odd = copy.deepcopy(tok)
    odd.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>"
        "{% if loop.last %}{{ m['content'] }}{% else %}{{ m['content'] | upper }}{% endif %}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    with pytest.raises(UsageError) as e:
        tokenize_sft([{"messages": [U("hi"), A("yes"), U("sky?"), A("blue")]}], odd, 64, path="d.jsonl")
    assert str(e.value) == (
        "d.jsonl: record 1: the chat template is not incremental: the tokens of the first 1 message plus the"
        " generation prompt are not a prefix of the tokens of the first 2 messages, so the assistant's tokens"
        " cannot be located; use a template that renders earlier turns the same way whatever follows them"
    )


def test_tokenizer_without_chat_template(tok):
    bare = copy.deepcopy(tok)
    bare.chat_template = None
    with pytest.raises(UsageError, match="^d.jsonl: record 1: the tokenizer has no chat template"):
        tokenize_sft([{"messages": [U("hi"), A("yes")]}], bare, 64, path="d.jsonl")


def test_conversational_preference_ends_with_turn_terminator(tok):
    record = {"prompt": [U("Sky?")], "chosen": [A("Blue.")], "rejected": [A("Green.")]}
    [ex] = tokenize_preference([record], tok, max_prompt_length=None, max_completion_length=None)
    assert ex.prompt_ids == ids(tok, "<|user|> Sky?<|end|><|assistant|>")
    assert ex.chosen_ids == ids(tok, " Blue.<|end|>")
    assert ex.rejected_ids == ids(tok, " Green.<|end|>")


def test_implicit_prompt_preference(tok):
    record = {"chosen": CONVERSATION, "rejected": CONVERSATION[:-1] + [A("No, green.")]}
    [ex] = tokenize_preference([record], tok, None, None)
    assert ex.prompt_ids == expected(tok, CONVERSATION_PIECES[:3])[0]
    assert ex.chosen_ids == ids(tok, " Yes, blue.<|end|>")
    assert ex.rejected_ids == ids(tok, " No, green.<|end|>")


def test_standard_preference_ends_with_eos(tok):
    [ex] = tokenize_preference(
        [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}], tok, None, None
    )
    assert ex.prompt_ids == ids(tok, "The sky is")
    assert ex.chosen_ids == ids(tok, " blue.") + [tok.eos_token_id]
    assert ex.rejected_ids == ids(tok, " green.") + [tok.eos_token_id]


def test_preference_limits(tok):
    record = {
        "prompt": [U("What color is the sky?")],
        "chosen": [A("Blue, like the sea.")],
        "rejected": [A("No.")],
    }
    [full] = tokenize_preference([record], tok, None, None)
    with pytest.raises(UsageError) as e:
        tokenize_preference([record], tok, 4, None, path="p.jsonl")
    assert str(e.value) == (
        f"p.jsonl: record 1: field 'prompt': {len(full.prompt_ids)} tokens, longer than max_prompt_length 4;"
        " raise max_prompt_length or set truncation to 'truncate'"
    )
    [cut] = tokenize_preference([record], tok, 4, 3, truncation="truncate")
    assert cut.prompt_ids == full.prompt_ids[-4:]  # the prompt keeps its end, next to the completion
    assert cut.chosen_ids == full.chosen_ids[:3]  # completions keep their start
    assert cut.rejected_ids == full.rejected_ids[:3]


def test_unpaired(tok):
    records = [
        {"prompt": [U("Sky?")], "completion": [A("Blue.")], "label": True},
        {"prompt": [U("Sky?")], "completion": [A("Green.")], "label": False},
    ]
    good, bad = tokenize_unpaired(records, tok, None, None)
    assert good.prompt_ids == bad.prompt_ids == ids(tok, "<|user|> Sky?<|end|><|assistant|>")
    assert (good.completion_ids, good.label) == (ids(tok, " Blue.<|end|>"), True)
    assert (bad.completion_ids, bad.label, bad.record) == (ids(tok, " Green.<|end|>"), False, 2)


def test_prompts_of_any_kind_with_a_prompt(tok):
    gen = ids(tok, "<|user|> Sky?<|end|><|assistant|>")
    assert tokenize_prompts([{"prompt": [U("Sky?")]}], tok, None) == [gen]
    assert tokenize_prompts(
        [{"chosen": [U("Sky?"), A("a")], "rejected": [U("Sky?"), A("b")]}], tok, None
    ) == [gen]
    assert tokenize_prompts([{"prompt": "The sky is"}], tok, None) == [ids(tok, "The sky is")]
    with pytest.raises(UsageError, match="generation from prompts needs one of"):
        tokenize_prompts([{"text": "the sky"}], tok, None)


def test_truncation_is_logged(tok, caplog):
    records = [{"messages": CONVERSATION}, {"messages": [U("Hi"), A("Yes.")]}]
    short = len(ids(tok, "<|user|> Hi<|end|><|assistant|> Yes.<|end|>"))
    system = len(ids(tok, "<|system|> Be brief.<|end|>"))
    assert short <= system  # so record 1, cut to `short` tokens, keeps no assistant token
    with caplog.at_level("WARNING", logger="alignlab.data.tokenize"):
        tokenize_sft(records, tok, max_length=short, truncation="right", path="d.jsonl")
    assert caplog.messages == [
        f"d.jsonl: truncated 1 of 2 records to {short} tokens (right); 1 of them kept no token that carries loss"
    ]


def test_parquet_conversations_tokenize(tok, tmp_path):
    # Arrow gives every message every key seen in the column, filling the gaps with None.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alignlab.data.formats import load_dataset

    rows = [{"messages": [dict(U("Sky?"), name="ann"), A("Blue.")]}, {"messages": CONVERSATION}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    records, kind = load_dataset(tmp_path / "d.parquet")
    assert records[0]["messages"][1] == {"role": "assistant", "content": "Blue.", "name": None}
    first, second = tokenize_sft(records, tok, 128, path="d.parquet", kind=kind)
    assert (first.input_ids, first.labels) == expected(
        tok, [("<|user|> Sky?<|end|><|assistant|>", False), (" Blue.<|end|>", True)]
    )
    assert (second.input_ids, second.labels) == expected(tok, CONVERSATION_PIECES)


def test_assistant_turn_with_weight_zero_carries_no_loss(tok):
    from alignlab.data import tokenize_sft

    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bad.", "weight": 0},
                {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Good."}]
    (ex,) = tokenize_sft([{"messages": messages}], tok, max_length=128)
    trained = tok.decode([t for t in ex.labels if t != -100])
    assert trained == " Good.<|end|>"


def test_weight_must_be_zero_or_one(tmp_path):
    import json

    import pytest

    from alignlab.data import load_dataset
    from alignlab.errors import UsageError

    path = tmp_path / "w.jsonl"
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x", "weight": 2}]}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(UsageError, match="record 1: field 'messages': weight must be 0 or 1, got 2"):
        load_dataset(path)
