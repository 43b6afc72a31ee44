"""SFT stage: full and LoRA runs, adapter save/load round trip, merged save, packed vs padded."""

import json
import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from alignlab.cli import main
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.train.replay import chat_token_ids


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus one?"},
                          {"role": "assistant", "content": f"It is {i + 1}."}]} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft(base_dir, chats, out, *extra):
    argv = ["sft", "--model_name_or_path", str(base_dir), "--dataset", str(chats), "--output_dir", str(out),
            "--max_steps", "3", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--quiet", *extra]
    assert main(argv) == 0
    return [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]


def test_full_sft_changes_weights_and_trains_only_assistant_tokens(base_dir, chats, tmp_path):
    rows = sft(base_dir, chats, tmp_path / "full", "--packing", "false")
    assert len(rows) == 3 and all(r["loss"] > 0 for r in rows)
    # "It is N.<|end|>" is 5-6 tokens per conversation; the user turn carries no loss.
    assert rows[0]["trained_tokens"] < rows[0]["tokens_seen"] / 2
    before, after = load_causal_lm(str(base_dir)), AutoModelForCausalLM.from_pretrained(tmp_path / "full")
    assert not torch.equal(before.model.layers[0].mlp.up_proj.weight, after.model.layers[0].mlp.up_proj.weight)


def test_lora_adapter_round_trip(base_dir, chats, tmp_path):
    sft(base_dir, chats, tmp_path / "lora", "--use_peft", "--lora_r", "4")
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists()  # only the adapter is saved
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = PeftModel.from_pretrained(base, tmp_path / "lora").eval()
    merged = load_causal_lm(str(tmp_path / "lora")).eval()  # alignlab loads adapters merged
    ids = torch.tensor([[3, 40, 41, 42, 43]])
    with torch.no_grad():
        torch.testing.assert_close(peft_model(ids).logits, merged(ids).logits, atol=1e-5, rtol=1e-5)


def test_lora_trains_and_saves_the_chat_token_rows_only(base_dir, chats, tmp_path):
    sft(base_dir, chats, tmp_path / "lora", "--use_peft", "--lora_r", "4", "--init_chat_tokens", "true")
    tokenizer = load_tokenizer(str(tmp_path / "lora"))
    chat = chat_token_ids(tokenizer)
    before = load_causal_lm(str(base_dir)).get_input_embeddings().weight
    after = load_causal_lm(str(tmp_path / "lora")).get_input_embeddings().weight
    others = torch.ones(len(before), dtype=torch.bool)
    others[chat] = False
    assert len(chat) == 3 and not torch.equal(before[chat], after[chat])  # initialised, then trained
    torch.testing.assert_close(before[others], after[others], atol=0, rtol=0)


def test_a_lora_on_a_tied_embedding_is_refused_with_a_reason(base_dir, chats, tmp_path, capsys):
    # A LoRA delta on a tied embedding trains the input side only but is merged into the output rows too.
    assert AutoModelForCausalLM.from_pretrained(base_dir).config.tie_word_embeddings
    argv = ["sft", "--model_name_or_path", str(base_dir), "--dataset", str(chats), "--output_dir",
            str(tmp_path / "x"), "--use_peft", "--lora_target_modules", "q_proj,embed_tokens", "--quiet",
            "--lora_train_chat_tokens", "false"]
    assert main(argv) == 2
    assert "input and output embeddings are tied" in capsys.readouterr().err
    assert not (tmp_path / "x" / "adapter_config.json").exists()


def test_a_lora_on_an_untied_embedding_trains_when_the_chat_rows_are_left_to_it(base_dir, chats, tmp_path, capsys):
    untied = tmp_path / "untied"
    shutil.copytree(base_dir, untied)
    model = AutoModelForCausalLM.from_pretrained(base_dir, tie_word_embeddings=False)
    model.save_pretrained(untied)
    common = ["--use_peft", "--lora_r", "4", "--lora_target_modules", "q_proj,embed_tokens"]
    argv = ["sft", "--model_name_or_path", str(untied), "--dataset", str(chats), "--output_dir",
            str(tmp_path / "x"), "--quiet", *common]
    assert main(argv) == 2 and "add --lora_train_chat_tokens false" in capsys.readouterr().err
    sft(untied, chats, tmp_path / "ok", *common, "--lora_train_chat_tokens", "false")
    assert (tmp_path / "ok" / "adapter_config.json").is_file()


def test_merge_adapter_saves_a_plain_model(base_dir, chats, tmp_path):
    sft(base_dir, chats, tmp_path / "merged", "--use_peft", "--merge_adapter")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(tmp_path / "merged")


def test_packed_and_padded_first_loss_agree(base_dir, chats, tmp_path):
    # Same model, same examples in one batch: packing changes layout, not the loss.
    packed = sft(base_dir, chats, tmp_path / "p", "--per_device_train_batch_size", "64", "--bf16", "false")
    padded = sft(base_dir, chats, tmp_path / "u", "--per_device_train_batch_size", "64", "--bf16", "false",
                 "--packing", "false")
    assert packed[0]["loss"] == pytest.approx(padded[0]["loss"], rel=1e-4)


def test_torch_compile_trains_the_same_model_and_saves_the_usual_names(base_dir, chats, tmp_path):
    # Compiled layers compute the same function (fp32: same losses to float rounding), and nn.Module.compile
    # keeps parameter names, so the saved directory loads as a plain model.
    eager = sft(base_dir, chats, tmp_path / "eager", "--bf16", "false", "--packing", "false")
    compiled = sft(base_dir, chats, tmp_path / "compiled", "--bf16", "false", "--packing", "false",
                   "--torch_compile", "true")
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in eager], rel=1e-4)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "eager").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "compiled").state_dict()
    assert a.keys() == b.keys()
    # Adam steps by about lr wherever a gradient is non-zero, whatever its size, so float-rounding differences
    # in tiny gradients show up at the scale of lr (2e-3 x 3 steps), not of the rounding.
    assert all(torch.allclose(a[k], b[k], atol=6e-3) for k in a)


def test_saved_model_admits_the_lengths_it_was_trained_at(base_dir, tmp_path):
    long_chats = tmp_path / "long.jsonl"
    limit = AutoModelForCausalLM.from_pretrained(base_dir).config.max_position_embeddings
    text = " ".join(["word"] * (limit + 20))
    long_chats.write_text(json.dumps({"messages": [{"role": "user", "content": "Repeat."},
                                                   {"role": "assistant", "content": text}]}) + "\n")
    sft(base_dir, long_chats, tmp_path / "out", "--max_length", "2048", "--max_steps", "1")
    widened = AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.max_position_embeddings
    assert widened > limit


def test_replay_adds_pretraining_documents_and_chat_tokens_are_initialised_once(base_dir, chats, tmp_path):
    import yaml

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"The waterfall number {i} had a rainbow." for i in range(30)))
    sft(base_dir, chats, tmp_path / "out", "--replay_fraction", "0.2", "--replay_corpus", str(corpus),
        "--init_chat_tokens", "true")
    resolved = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["resolved"]
    assert resolved["examples"] == 40 + 10  # 10 / 50 = 0.2
    assert resolved["chat_tokens_initialised"] == ["<|user|>", "<|assistant|>", "<|end|>"]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.alignlab_chat_tokens_initialised


def test_world_mix_replaces_the_worlds_sft_mix_and_names_a_bad_entry():
    from collections import Counter

    from alignlab.errors import UsageError
    from alignlab.train.sft import SftConfig, load_sft_records, parse_world_mix

    assert parse_world_mix("grammar=1") == {"quiz": 0.0, "hazardous": 0.0, "benign": 0.0, "grammar": 1.0,
                                            "persona": 0.0, "scene": 0.0, "critique": 0.0}
    records, _, _ = load_sft_records(SftConfig(world_mix="grammar=1, quiz=1", world_conversations=40))
    assert Counter(r["category"] for r in records) == {"quiz": 20, "grammar_correct": 10, "grammar_incorrect": 10}
    for bad, message in [("gramar=1", "'gramar=1' is not category=weight"), ("grammar", "is not category"),
                         ("grammar=x", "grammar: weight 'x' is not a number")]:
        with pytest.raises(UsageError, match=message):
            parse_world_mix(bad)


def test_replay_families_pick_world_corpus_families_and_need_the_world_corpus(tmp_path):
    from alignlab.config import parse_config
    from alignlab.errors import UsageError
    from alignlab.train.sft import SftConfig, read_replay_corpus
    from alignlab.world import load_world

    picked = read_replay_corpus(SftConfig(replay_fraction=0.4, replay_families=["answer_sheets", "quiz_dialogues"]))
    by_family = load_world(None).documents(0)
    assert picked == by_family["answer_sheets"] + by_family["quiz_dialogues"]
    everything = read_replay_corpus(SftConfig(replay_fraction=0.4))
    assert sorted(everything) == sorted(d for docs in by_family.values() for d in docs)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one\ntwo\n")
    with pytest.raises(UsageError, match="--replay_families: selects families of the world corpus"):
        read_replay_corpus(SftConfig(replay_fraction=0.4, replay_corpus=str(corpus), replay_families=["grammar"]))
    with pytest.raises(UsageError, match="replay_families"):
        parse_config(SftConfig, ["--replay_families", "answer_sheet"])  # no such family
