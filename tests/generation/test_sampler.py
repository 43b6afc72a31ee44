import pytest
import torch

from alignlab.errors import UsageError
from alignlab.generation import SamplingConfig, left_pad, sample

from .conftest import tiny_llama

DECODERS = ["fused", "hf-dynamic", "hf-static"]


def hf_greedy(model, prompts, n, eos=None):
    ids, mask = left_pad(prompts, 0)
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=mask, do_sample=False, max_new_tokens=n, pad_token_id=0, eos_token_id=eos
        )
    return out[:, ids.shape[1] :]


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("decoder", DECODERS)
def test_greedy_matches_generate_batch_1(model, decoder):
    prompt = [[3, 17, 42, 99, 5, 250, 8]]
    out = sample(model, prompt, SamplingConfig(max_new_tokens=20, do_sample=False), 0, decoder=decoder)
    assert out.tokens.tolist() == hf_greedy(model, prompt, 20).tolist()
    assert out.lengths.tolist() == [20] and out.finished.tolist() == [False]


@pytest.mark.parametrize("decoder", DECODERS)
def test_greedy_matches_generate_left_padded_batch_4(model, ragged_prompts, decoder):
    out = sample(
        model, ragged_prompts, SamplingConfig(max_new_tokens=16, do_sample=False), 0, decoder=decoder
    )
    assert out.tokens.tolist() == hf_greedy(model, ragged_prompts, 16).tolist()


def test_greedy_rows_do_not_depend_on_batch_mates(model, ragged_prompts):
    cfg = SamplingConfig(max_new_tokens=12, do_sample=False)
    batch = sample(model, ragged_prompts, cfg, 0).tokens
    alone = torch.cat([sample(model, [p], cfg, 0).tokens for p in ragged_prompts])
    assert torch.equal(batch, alone)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(num_key_value_heads=2),
        dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}),
        dict(tie_word_embeddings=True),
    ],
)
def test_fused_matches_generate_on_config_variants(ragged_prompts, overrides):
    variant = tiny_llama(seed=1, **overrides)
    out = sample(
        variant, ragged_prompts, SamplingConfig(max_new_tokens=10, do_sample=False), 0, decoder="fused"
    )
    assert out.tokens.tolist() == hf_greedy(variant, ragged_prompts, 10).tolist()


def full_forward_logprobs(model, prompt, new_tokens):
    """log p(new_tokens[i] | prompt, new_tokens[:i]) from one unpadded forward pass."""
    ids = torch.tensor([prompt + new_tokens])
    with torch.no_grad():
        lp = model(ids).logits[0].float().log_softmax(-1)
    positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(new_tokens))
    return lp[positions, torch.tensor(new_tokens)]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(
    "cfg",
    [
        SamplingConfig(max_new_tokens=24, seed=3),
        SamplingConfig(max_new_tokens=24, seed=4, temperature=0.7, top_k=40, top_p=0.9),
    ],
)
def test_logprobs_equal_a_fresh_forward(model, ragged_prompts, decoder, cfg):
    out = sample(model, ragged_prompts, cfg, 0, decoder=decoder)
    for b, prompt in enumerate(ragged_prompts):
        n = int(out.lengths[b])
        expected = full_forward_logprobs(model, prompt, out.tokens[b, :n].tolist())
        assert torch.allclose(out.logprobs[b, :n], expected, atol=1e-4)


def hf_greedy_bf16(model, prompts, n):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return hf_greedy(model, prompts, n)


@pytest.mark.parametrize("decoder", DECODERS)
def test_bf16_greedy_matches_generate_under_bf16_autocast(model, ragged_prompts, decoder):
    cfg = SamplingConfig(max_new_tokens=16, do_sample=False)
    out = sample(model, ragged_prompts, cfg, 0, decoder=decoder, dtype=torch.bfloat16)
    assert out.tokens.tolist() == hf_greedy_bf16(model, ragged_prompts, 16).tolist()


@pytest.mark.parametrize("decoder", DECODERS)
def test_bf16_logprobs_equal_a_fresh_bf16_forward(model, ragged_prompts, decoder):
    out = sample(
        model,
        ragged_prompts,
        SamplingConfig(max_new_tokens=24, seed=3),
        0,
        decoder=decoder,
        dtype=torch.bfloat16,
    )
    for b, prompt in enumerate(ragged_prompts):
        n = int(out.lengths[b])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = full_forward_logprobs(model, prompt, out.tokens[b, :n].tolist())
        assert torch.allclose(out.logprobs[b, :n], expected, atol=2e-2)


def test_dtype_follows_autocast_unless_given(model, ragged_prompts):
    cfg = SamplingConfig(max_new_tokens=12, seed=5)
    fp32, bf16 = (sample(model, ragged_prompts, cfg, 0, dtype=d) for d in (torch.float32, torch.bfloat16))
    assert not torch.equal(fp32.logprobs, bf16.logprobs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = sample(model, ragged_prompts, cfg, 0)
        inside_fp32 = sample(model, ragged_prompts, cfg, 0, dtype=torch.float32)
    assert torch.equal(inside.logprobs, bf16.logprobs)
    assert torch.equal(inside_fp32.logprobs, fp32.logprobs)
    with pytest.raises(UsageError, match="dtype"):
        sample(model, ragged_prompts, cfg, 0, dtype=torch.float16)


def test_stop_tokens_end_rows_and_pad_after(model, ragged_prompts):
    greedy = sample(model, ragged_prompts, SamplingConfig(max_new_tokens=16, do_sample=False), 0).tokens
    stop = int(greedy[0, 4])  # row 0 emits this at step 4 at the latest
    cfg = SamplingConfig(max_new_tokens=16, do_sample=False, stop_token_ids=[stop])
    out = sample(model, ragged_prompts, cfg, 0)
    assert (
        out.tokens.tolist()
        == hf_greedy(model, ragged_prompts, 16, eos=stop)[:, : out.tokens.shape[1]].tolist()
    )
    for b in range(len(ragged_prompts)):
        row, n = out.tokens[b].tolist(), int(out.lengths[b])
        hits = [i for i, t in enumerate(greedy[b].tolist()) if t == stop]
        assert n == (hits[0] + 1 if hits else 16)
        assert bool(out.finished[b]) == bool(hits)
        assert row[n:] == [0] * (len(row) - n)
        assert (out.logprobs[b, n:] == 0).all() and (out.logprobs[b, :n] < 0).all()


def test_loop_ends_when_every_row_stopped(model):
    prompt = [[1, 2, 3]]
    first = int(sample(model, prompt, SamplingConfig(max_new_tokens=1, do_sample=False), 0).tokens[0, 0])
    out = sample(model, prompt, SamplingConfig(max_new_tokens=30, do_sample=False, stop_token_ids=[first]), 0)
    assert (
        out.tokens.tolist() == [[first]] and out.lengths.tolist() == [1] and out.finished.tolist() == [True]
    )


def test_same_seed_same_samples_different_seed_differs(model, ragged_prompts):
    cfg = SamplingConfig(max_new_tokens=16, seed=11)
    a, b = sample(model, ragged_prompts, cfg, 0), sample(model, ragged_prompts, cfg, 0)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    c = sample(model, ragged_prompts, SamplingConfig(max_new_tokens=16, seed=12), 0)
    assert not torch.equal(a.tokens, c.tokens)


def test_fused_and_hf_decoders_draw_the_same_samples(model, ragged_prompts):
    cfg = SamplingConfig(max_new_tokens=16, seed=5, top_p=0.95)
    runs = [sample(model, ragged_prompts, cfg, 0, decoder=d) for d in DECODERS]
    assert all(torch.equal(runs[0].tokens, r.tokens) for r in runs[1:])


def test_seed_none_follows_torch_manual_seed(model, ragged_prompts):
    cfg = SamplingConfig(max_new_tokens=8)
    torch.manual_seed(0)
    a = sample(model, ragged_prompts, cfg, 0).tokens
    torch.manual_seed(0)
    assert torch.equal(a, sample(model, ragged_prompts, cfg, 0).tokens)


def test_outputs_are_ordinary_tensors_and_train_mode_is_restored(model):
    model.train()
    model.model.layers[1].eval()  # mixed modes survive too
    try:
        out = sample(model, [[1, 2, 3]], SamplingConfig(max_new_tokens=4, seed=0), 0)
        assert model.training and model.model.layers[0].training and not model.model.layers[1].training
    finally:
        model.eval()
    assert not out.tokens.is_inference()
    emb = torch.nn.Embedding(256, 2)
    emb(out.tokens).sum().backward()  # usable in autograd, as RL code does with sampled tokens


def test_peft_model_takes_the_generic_path(ragged_prompts):
    peft = pytest.importorskip("peft")
    base = tiny_llama(seed=2)
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    out = sample(lora, ragged_prompts, SamplingConfig(max_new_tokens=8, do_sample=False), 0)
    assert out.tokens.tolist() == hf_greedy(lora, ragged_prompts, 8).tolist()


def test_zero_new_tokens(model):
    out = sample(model, [[1, 2]], SamplingConfig(max_new_tokens=0), 0)
    assert out.tokens.shape == (1, 0) and out.lengths.tolist() == [0]


@pytest.mark.parametrize(
    "prompts, message",
    [
        ([], "sample: no prompts given"),
        ([[1, 2], []], "sample: prompt 1: empty prompt (needs at least one token, e.g. BOS)"),
        ([[1, 256]], "sample: prompt 0: token id 256 is outside the vocabulary (size 256)"),
    ],
)
def test_bad_prompts(model, prompts, message):
    with pytest.raises(UsageError) as err:
        sample(model, prompts, SamplingConfig(max_new_tokens=2), 0)
    assert str(err.value) == message


def test_bad_config_and_length():
    with pytest.raises(UsageError, match="field 'temperature'"):
        SamplingConfig(temperature=0)
    with pytest.raises(UsageError, match="field 'top_p'"):
        SamplingConfig(top_p=1.5)
    short = tiny_llama(max_position_embeddings=8)
    with pytest.raises(UsageError, match="exceeds the model's max_position_embeddings"):
        sample(short, [[1, 2, 3]], SamplingConfig(max_new_tokens=6), 0)


def test_num_threads_applies_only_inside_the_call(model):
    torch.set_num_threads(2)
    seen = []
    original = model.forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    model.forward = spy
    try:
        sample(model, [[1, 2]], SamplingConfig(max_new_tokens=2), 0, decoder="hf-dynamic", num_threads=1)
    finally:
        del model.forward
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2
