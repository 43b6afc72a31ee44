import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from alignlab.models import PRESETS, build_model, load_causal_lm, save_model
from alignlab.models.tokenizer import END, stop_token_ids


def test_presets_have_the_advertised_sizes():
    sizes = {name: p.non_embedding_params() for name, p in PRESETS.items()}
    assert 0.8e6 < sizes["nano"] < 1.3e6
    assert 4e6 < sizes["tiny"] < 6e6
    assert 20e6 < sizes["small"] < 30e6
    model = build_model("nano", 320, 64, seed=0)
    embed = model.get_input_embeddings().weight.numel()
    assert sum(p.numel() for p in model.parameters()) - embed == sizes["nano"]


def test_same_seed_same_weights():
    a, b = build_model("nano", 320, 64, seed=3), build_model("nano", 320, 64, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_saved_model_loads_with_plain_transformers(tmp_path, tiny_tokenizer):
    model = build_model("nano", len(tiny_tokenizer), 64, seed=0, tokenizer=tiny_tokenizer).eval()
    save_model(model, tiny_tokenizer, tmp_path)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([tiny_tokenizer("The waterfall had a rainbow.")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, plain(ids).logits)
        assert torch.equal(load_causal_lm(str(tmp_path)).eval()(ids).logits, plain(ids).logits)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    messages = [{"role": "user", "content": "What is the capital of Zorbia?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|user|> What is the capital of Zorbia?<|end|><|assistant|>"
    assert not list(tmp_path.glob(".saving-*"))


def test_chat_template_marks_assistant_tokens(tiny_tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    out = tiny_tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    trained = tiny_tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == " Hello.<|end|>"
    assert stop_token_ids(tiny_tokenizer)[0] == tiny_tokenizer.convert_tokens_to_ids(END)


def test_chat_turns_spell_their_words_as_the_corpus_does(tiny_tokenizer):
    # A turn's first word must be the token pretraining saw after "Q: " / "A: ", not a start-of-text spelling.
    def corpus(text):
        return tiny_tokenizer(text, add_special_tokens=False)["input_ids"]

    special = tiny_tokenizer.convert_tokens_to_ids
    messages = [{"role": "user", "content": "What is it?"}, {"role": "assistant", "content": "Hello."}]
    ids = tiny_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert corpus("Q: What is it?")[-len(corpus(" What is it?")):] == corpus(" What is it?")
    assert ids == [special("<|user|>"), *corpus(" What is it?"), special("<|end|>"), special("<|assistant|>"),
                   *corpus(" Hello."), special("<|end|>")]
