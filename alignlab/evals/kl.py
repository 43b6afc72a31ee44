"""The KL instrument: how far has a policy moved from its reference, in nats and bits?

Two measurements, written to eval.json under "kl":

- **sampled**: completions are sampled from the policy (temperature 1, no top-k/top-p: the estimators need
  samples from pi itself), then every completion token is scored under the policy and the reference, and
  KL(pi || pi_ref) is estimated with k1, k2 and k3 (Schulman 2020; `objectives/kl.py`), per token (total
  over all sampled tokens / their number) and per sequence (mean over completions of the per-sequence sum,
  with its standard error). k1 and k3 are unbiased for the per-sequence KL; k2 is biased but low-variance.
  Completions stop at a stop token or `max_new_tokens`, so this is the KL between the two distributions
  of completions cut at `max_new_tokens` tokens.
- **answer_sets** (exact, no sampling): on the world's fact probes, whose continuations are enumerable, the
  KL between the policy's and the reference's distributions over each probe's answers (each normalised
  over the answer set, as in the calibration instrument); mean and max over probes.

Prompts: `--prompts world` uses the world's behaviour probes (quiz, hazardous, benign, grammar, persona
requests), rendered with the chat template when the tokenizer has one; or a prompt file in any TRL format
with a prompt (tokenized like the training stages do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignlab.config import CommonConfig, option
from alignlab.data import PROMPT_KINDS, load_dataset, tokenize_prompts
from alignlab.data.chat import render_ids
from alignlab.errors import UsageError
from alignlab.evals.calibration import exact_probabilities
from alignlab.evals.store import write_eval
from alignlab.generation import SamplingConfig, sample, score_continuations_per_token
from alignlab.models import load_causal_lm, load_tokenizer, stop_token_ids
from alignlab.objectives.kl import KL_ESTIMATORS, categorical_kl
from alignlab.train.loop import seed_everything, set_threads

LN2 = math.log(2)


@dataclass
class KlConfig(CommonConfig):
    model: str = option("runs/dpo", "policy model directory")
    ref_model: str = option("runs/sft", "reference model directory (same tokenizer)")
    prompts: str = option("world", "'world' (the world's behaviour prompts) or a prompt file in TRL format")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    split: str = option("heldout", "world prompts and fact phrasings to use", ("seen", "heldout"))
    n_prompts: int = option(10, "world: prompts per behaviour category; file: the first N records (0 = all)")
    samples_per_prompt: int = option(4, "completions sampled from the policy per prompt")
    max_new_tokens: int = option(48, "longest sampled completion")
    probes_per_fact: int = option(4, "fact-probe phrasings per fact for the exact answer-set KL (0 = skip)")
    batch_size: int = option(64, "sequences per sampling / scoring batch")
    output_dir: str | None = option(None, "where eval.json goes; the policy's directory by default")


# --- pure summaries ---------------------------------------------------------------------------------

def pad_rows(rows: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad 1-D tensors: values (N, T) float64 (0 where padded), mask (N, T) bool."""
    width = max((len(r) for r in rows), default=0)
    values = torch.zeros(len(rows), width, dtype=torch.float64)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        values[i, : len(r)] = r.double()
        mask[i, : len(r)] = True
    return values, mask


def sampled_kl(policy_logps: list[Tensor], ref_logps: list[Tensor]) -> dict:
    """k1/k2/k3 estimates of KL(pi || pi_ref) from completions sampled from pi.

    Args: per completion, the (C_i,) log-probs of its tokens under the policy and under the reference.
    Returns {"sequences", "tokens", "k1": {...}, "k2": ..., "k3": ...}, each estimator with per_token and
    per_sequence values in nats and bits and the per-sequence standard error.
    """
    if len(policy_logps) != len(ref_logps) or not policy_logps:
        raise ValueError(f"need as many policy as reference rows (> 0), got {len(policy_logps)} and {len(ref_logps)}")
    pol, mask = pad_rows(policy_logps)
    ref, ref_mask = pad_rows(ref_logps)
    if not torch.equal(mask, ref_mask):
        raise ValueError("policy and reference log-prob rows differ in length")
    n_seq, n_tok = len(policy_logps), int(mask.sum())
    out: dict = {"sequences": n_seq, "tokens": n_tok, "mean_length": n_tok / n_seq}
    for name, estimator in KL_ESTIMATORS.items():
        per_token_terms = estimator(pol, ref, mask.double())  # (N, T), 0 where padded
        per_seq = per_token_terms.sum(1)  # (N,)
        per_token = float(per_token_terms.sum()) / max(n_tok, 1)
        stderr = float(per_seq.std(unbiased=True)) / math.sqrt(n_seq) if n_seq > 1 else float("nan")
        out[name] = {
            "per_token_nats": per_token, "per_token_bits": per_token / LN2,
            "per_sequence_nats": float(per_seq.mean()), "per_sequence_bits": float(per_seq.mean()) / LN2,
            "per_sequence_stderr_nats": stderr,
        }
    return out


def answer_set_kl(q_policy: Tensor, q_ref: Tensor) -> dict:
    """Exact KL(policy || reference) over each probe's answer set: (N, K) normalised rows -> summary."""
    kl = categorical_kl(q_policy.double(), q_ref.double())  # (N,)
    return {"probes": len(kl), "mean_nats": float(kl.mean()), "mean_bits": float(kl.mean()) / LN2,
            "max_nats": float(kl.max()), "max_bits": float(kl.max()) / LN2}


# --- prompts, sampling, scoring -------------------------------------------------------------------

def world_prompt_ids(cfg: KlConfig, tokenizer) -> list[list[int]]:
    from alignlab.world import load_world

    probes = load_world(cfg.world).behaviour_probes(split=cfg.split, seed=cfg.seed, n_per_category=cfg.n_prompts)
    if getattr(tokenizer, "chat_template", None):
        return [render_ids(tokenizer, [{"role": "user", "content": p.prompt}], True, "world prompts") for p in probes]
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return [prefix + tokenizer(p.prompt, add_special_tokens=False).input_ids for p in probes]


def prompt_ids(cfg: KlConfig, tokenizer) -> list[list[int]]:
    if cfg.prompts == "world":
        return world_prompt_ids(cfg, tokenizer)
    records, kind = load_dataset(cfg.prompts, allowed=PROMPT_KINDS, purpose="eval kl")
    if cfg.n_prompts > 0:
        records = records[: cfg.n_prompts]
    return tokenize_prompts(records, tokenizer, None, path=cfg.prompts, kind=kind)


def sample_and_score(policy, ref, tokenizer, prompts: list[list[int]], cfg: KlConfig):
    """Sample from the policy, then score each completion under both: two lists of (C_i,) log-probs."""
    if cfg.max_new_tokens < 1 or cfg.samples_per_prompt < 1:
        raise UsageError("--max_new_tokens and --samples_per_prompt must be >= 1")
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=1.0, do_sample=True,
                              stop_token_ids=stop_token_ids(tokenizer))
    generator = torch.Generator().manual_seed(cfg.seed)
    repeated = [p for p in prompts for _ in range(cfg.samples_per_prompt)]
    completions: list[list[int]] = []
    for start in range(0, len(repeated), cfg.batch_size):
        out = sample(policy, repeated[start : start + cfg.batch_size], sampling, tokenizer.pad_token_id,
                     generator=generator)
        completions += [out.tokens[b, : out.lengths[b]].tolist() for b in range(len(out.tokens))]
    # Score both with the same full-forward scorer, so identical models give identical numbers.
    pol = score_continuations_per_token(policy, repeated, completions, cfg.batch_size)
    ref_rows = score_continuations_per_token(ref, repeated, completions, cfg.batch_size)
    return pol, ref_rows


def check_same_tokenizer(tok_a, tok_b, where: str) -> None:
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise UsageError(f"{where}: the policy and the reference have different tokenizers; KL over token "
                         "sequences needs one vocabulary")


def run_kl(cfg: KlConfig) -> dict:
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    policy = load_causal_lm(cfg.model, what="--model").eval()
    ref = load_causal_lm(cfg.ref_model, what="--ref_model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    check_same_tokenizer(tokenizer, load_tokenizer(cfg.ref_model, what="--ref_model"), "--ref_model")
    prompts = prompt_ids(cfg, tokenizer)
    pol_rows, ref_rows = sample_and_score(policy, ref, tokenizer, prompts, cfg)
    result = {"model": cfg.model, "ref_model": cfg.ref_model, "prompts": cfg.prompts, "n_prompts": len(prompts),
              "samples_per_prompt": cfg.samples_per_prompt, "max_new_tokens": cfg.max_new_tokens,
              "sampled": sampled_kl(pol_rows, ref_rows)}
    if cfg.probes_per_fact > 0:
        from alignlab.world import load_world

        probes = load_world(cfg.world).fact_probes(split=cfg.split, n_per_fact=cfg.probes_per_fact, seed=cfg.seed)
        with torch.inference_mode():
            q_pol, _ = exact_probabilities(policy, tokenizer, probes)
            q_ref, _ = exact_probabilities(ref, tokenizer, probes)
        result["answer_sets"] = answer_set_kl(torch.from_numpy(q_pol), torch.from_numpy(q_ref))
    write_eval(Path(cfg.output_dir or cfg.model), "kl", result)
    if not cfg.quiet:
        print_kl(result)
    return result


def print_kl(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result["sampled"]
    table = Table(title=f"KL({result['model']} || {result['ref_model']}), {s['sequences']} samples")
    for col in ("estimator", "nats/token", "bits/token", "nats/sequence", "± s.e.", "bits/sequence"):
        table.add_column(col)
    for name in KL_ESTIMATORS:
        e = s[name]
        table.add_row(name, f"{e['per_token_nats']:.4g}", f"{e['per_token_bits']:.4g}", f"{e['per_sequence_nats']:.4g}",
                      f"{e['per_sequence_stderr_nats']:.4g}", f"{e['per_sequence_bits']:.4g}")
    Console().print(table)
    if "answer_sets" in result:
        a = result["answer_sets"]
        Console().print(f"exact over {a['probes']} fact answer sets: mean {a['mean_nats']:.4g} nats "
                        f"({a['mean_bits']:.4g} bits), max {a['max_nats']:.4g} nats")
