"""`alignlab experiment conditioning`: is fine-tuning on n documents of one hidden author Bayesian conditioning?

The world's `authors` section is a mixture: a document's author a is drawn from prior(a), and each sentence
"The <subject> was <option>." draws its option from P(o | a). Given evidence E (option counts c_o of the
sentences of n documents, all by the target author) Bayes' rule gives the exact posterior
    log P(a | E) = log prior(a) + sum_o c_o log P(o | a) - log Z        (in log space: n = 256 documents are
and the posterior predictive P(o | E) = sum_a P(a | E) P(o | a).        ~1,300 sentences; 0.5^1300 underflows)

A nano base is pretrained on the author documents plus filler (`--base_model DIR` reuses one); its predictive
with no evidence is checked against the prior predictive, and with k observed sentences in context against
the exact P(o | k sentences) beside a predictor that ignores the context (is the base an in-context Bayesian?).
Then, per (learning rate, epochs, seed, n), the base is fine-tuned on the first n documents of a seeded pool
of the target author's documents (`text` records: full-sequence loss, i.e. continued pretraining; no packing,
constant lr, no warmup, no weight decay, so steps = epochs * ceil(n / batch_size): the update n examples buy).
What the model now believes is read off held-out prompts with NO evidence in context ("Notes. The soup was"):
its predictive q over the 4 options, exact from log-probs, averaged over prompts. Its implied posterior is the
mixture that explains q best, w = argmin_{w in simplex} KL(q || sum_a w_a P(. | a)) (3 authors, 4 options:
identifiable; exact, by a Newton solve on every face of the simplex), floored at FLOOR: a model at the floor
shows its ~20-bit cap, a lower bound. Bits of evidence, bits = log2 odds(target | after) - log2 odds(target |
before), for Bayes (exact posterior vs prior) and for the model (implied posterior after fine-tuning vs the
base's); per example = bits / n. Per cell (lr, epochs, n) the verdict comes from the seed interval of
model bits - Bayes bits: "over" above 0, "under" below 0 ("saturated" when the model sits at its cap),
else "matches". Also reported: TV and KL(exact || q) to the exact posterior predictive, TV to the evidence's
raw option frequencies (a model that memorises the n documents moves there, not into the mixture), and the
fit's KL (q's distance from every mixture of the authors).

KL-regularised arm: reward r(o) = beta log P(E | o), whose KL-regularised optimum pi* is the exact posterior
predictive when pi_ref is the prior predictive (the derivation is in `bayes`). The base's predictive (pi
renormalised over the 4 continuations at each prompt) is trained on it with the exact objective by full-batch
Adam on `kl_prompts` zero-evidence prompts, and compared with SFT by TV to the exact posterior predictive on the
held-out prompts (TV(pi*, exact) is what the base's distance from the prior predictive leaves).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignlab.config import CommonConfig, option
from alignlab.errors import UsageError
from alignlab.experiments.bayes import (
    FLOOR,
    bits_of_evidence,
    evidence_log_likelihood,
    implied_posterior,
    kl_divergence,
    kl_optimum,
    kl_regularised_loss,
    log_posterior,
    total_variation,
)
from alignlab.experiments.common import cached_json, check_options, run_once, seed_interval, write_text_corpus
from alignlab.experiments.conditioning_report import write_report
from alignlab.io import read_json


@dataclass
class ConditioningConfig(CommonConfig):
    output_dir: str = option("runs/exp_conditioning", "one subdirectory per sub-run, results.json, summary.md, figure")
    base_model: str | None = option(None, "an existing pretrained base to fine-tune; otherwise one is pretrained")
    world: str | None = option(None, "world YAML spec (its `authors` section); the built-in default when not given")
    author: str = option("grumpy", "the hidden author whose documents are the evidence")
    n: list[int] = option([1, 2, 4, 8, 16, 32, 64, 128, 256], "fine-tuning set sizes (documents of the author)")
    seeds: list[int] = option([0, 1, 2], "evidence pools and training orders")
    learning_rates: list[float] = option([3e-4, 1e-3], "fine-tuning learning rates (constant)")
    epochs: list[int] = option([1, 4], "passes over the n documents")
    batch_size: int = option(16, "documents per fine-tuning step")
    probes: int = option(64, "held-out zero-evidence prompts the predictive is averaged over")
    icl_k: list[int] = option([0, 1, 2, 4, 8], "observed sentences of the base's in-context check")
    pretrain_docs: int = option(8000, "author documents in the base's corpus")
    filler_docs: int = option(2000, "world filler documents added to the base's corpus")
    pretrain_steps: int = option(300, "pretraining optimiser steps (32 blocks of 128 tokens each)")
    vocab_size: int = option(512, "vocabulary of the base's byte-level BPE")
    kl_n: list[int] = option([1, 4, 16], "evidence sizes of the KL-regularised arm")
    kl_beta: float = option(1.0, "beta of r = beta log P(E | o) (it cancels in the optimum)")
    kl_steps: int = option(40, "full-batch Adam steps of the KL-regularised arm")
    kl_learning_rate: float = option(1e-3, "Adam learning rate of the KL-regularised arm")
    kl_prompts: int = option(32, "zero-evidence prompts the KL-regularised arm trains on")
    keep_models: bool = option(False, "keep each fine-tuned model's weights once measured (4 MB each)")
    overwrite: bool = option(False, "run every sub-run again even when its directory is complete")


# --- the world's author mixture and the evidence ----------------------------------------------------------

def author_tables(au) -> tuple[np.ndarray, np.ndarray]:
    """log prior (A,) and P(o | a) (A, K) of the world's authors."""
    return np.log([a.prior for a in au.authors]), np.array([a.probs for a in au.authors], dtype=np.float64)


def evidence_pool(au, author, size: int, seed: int) -> list[dict]:
    """`size` documents of one author, as the world writes them (`author_document` with the author fixed)."""
    from alignlab.world.skills import author_document

    rnd = random.Random(f"conditioning/{seed}/{author.name}")
    pool = []
    for _ in range(size):
        text, options = author_document(au, rnd, author)
        pool.append({"text": text, "options": options})
    return pool


def option_counts(au, pool: list[dict], n: int) -> np.ndarray:
    seen = Counter(o for doc in pool[:n] for o in doc["options"])
    return np.array([seen[o] for o in au.options], dtype=np.float64)


# --- model-side measurements ------------------------------------------------------------------------------

def option_logprobs(model, prompt_ids: list[list[int]], cont_ids: list[list[int]]) -> torch.Tensor:
    """(P, K) summed log p(continuation k | prompt p), with gradients (score_continuations runs without)."""
    from alignlab.generation.scoring import right_pad

    ids, mask = right_pad([p + c for p in prompt_ids for c in cont_ids])  # (P*K, T), padding on the right
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    token_lp = logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)  # (P*K, T-1): predicts token t+1
    is_cont = torch.zeros_like(token_lp)
    for row, (p, c) in enumerate((p, c) for p in prompt_ids for c in cont_ids):
        is_cont[row, len(p) - 1 : len(p) - 1 + len(c)] = 1.0
    return (token_lp * is_cont).sum(-1).view(len(prompt_ids), len(cont_ids))


def predictive(model_dir_or_model, tokenizer, probes) -> np.ndarray:
    """(N, K): the model's distribution over each probe's continuations, exact from log-probs."""
    from alignlab.evals.calibration import exact_probabilities
    from alignlab.models import load_causal_lm

    model = load_causal_lm(model_dir_or_model) if isinstance(model_dir_or_model, str | Path) else model_dir_or_model
    return exact_probabilities(model, tokenizer, probes)[0]


def describe(q: np.ndarray, probs: np.ndarray) -> dict:
    """Mean predictive over prompts, its implied posterior over authors and the misfit of that posterior."""
    mean = q.mean(0)
    w, misfit = implied_posterior(mean, probs)
    return {"q": mean.tolist(), "implied": w.tolist(), "fit_kl": misfit}


def base_check(cfg: ConditioningConfig, base: str, tokenizer, spec, probs: np.ndarray) -> dict:
    """The base at zero evidence against the prior predictive, and after k observed sentences against the
    exact posterior predictive (is it an in-context Bayesian?), beside the MAE of ignoring the context."""
    from alignlab.world.skills import author_probes

    prior_pred = np.exp(author_tables(spec.authors)[0]) @ probs
    rows = []
    for k in cfg.icl_k:
        probes = author_probes(spec, k, cfg.probes, cfg.seed + 1000)
        q, truth = predictive(base, tokenizer, probes), np.array([p.truth for p in probes])
        rows.append({"k": k, "mae_base": float(np.abs(q - truth).mean()),
                     "mae_prior_only": float(np.abs(prior_pred - truth).mean())})
    zero = predictive(base, tokenizer, author_probes(spec, 0, cfg.probes, cfg.seed))
    return {"prior_predictive": prior_pred.tolist(), **describe(zero, probs),
            "mae_zero_evidence": float(np.abs(zero - prior_pred).mean()), "in_context": rows}


def kl_arm_point(cfg: ConditioningConfig, base: str, tokenizer, counts: np.ndarray, tables, train_probes,
                 eval_probes, q_base_eval: np.ndarray) -> dict:
    """Train the base's option distribution towards pi* with the exact KL-regularised objective; measure it."""
    from alignlab.models import load_causal_lm

    (log_prior, probs), beta = tables, cfg.kl_beta
    model = load_causal_lm(base)
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []  # as exact_probabilities
    prompts = [prefix + tokenizer(p.prompt, add_special_tokens=False)["input_ids"] for p in train_probes]
    conts = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in train_probes[0].continuations]
    # A constant shift of r leaves pi* and the gradient unchanged (sum_o pi(o) = 1) and keeps float64 happy.
    reward = beta * evidence_log_likelihood(log_prior, probs, counts)
    reward = reward - reward.max()
    with torch.no_grad():
        log_ref = torch.log_softmax(option_logprobs(model, prompts, conts).double(), -1)  # (P, K)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.kl_learning_rate)
    model.train()
    for _ in range(cfg.kl_steps):
        log_pi = torch.log_softmax(option_logprobs(model, prompts, conts).double(), -1)
        loss = kl_regularised_loss(log_pi, log_ref, torch.as_tensor(reward), beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    log_z = torch.logsumexp(log_ref + torch.as_tensor(reward) / beta, -1).mean().item()
    q = predictive(model, tokenizer, eval_probes).mean(0)
    optimum = kl_optimum(q_base_eval, reward, beta).mean(0)
    exact = np.exp(log_posterior(log_prior, probs, counts)) @ probs
    return {"q": q.tolist(), "optimum": optimum.tolist(), "tv_exact": total_variation(q, exact),
            "tv_optimum": total_variation(q, optimum), "tv_optimum_exact": total_variation(optimum, exact),
            "kl_to_optimum_train": loss.item() + log_z}  # KL(pi || pi*) before the last step


# --- the experiment -----------------------------------------------------------------------------------

def pretrain_base(cfg: ConditioningConfig, root: Path) -> str:
    from alignlab.train.pretrain import PretrainConfig, run_pretrain
    from alignlab.world import load_world

    def pretrain() -> None:
        world = load_world(cfg.world, {"authors.docs": cfg.pretrain_docs, "filler.docs": cfg.filler_docs})
        docs = world.documents(cfg.seed)
        corpus = docs["authors"] + docs["filler"]
        random.Random(cfg.seed).shuffle(corpus)
        run_pretrain(PretrainConfig(
            corpus=write_text_corpus(root / "corpus.jsonl", corpus), preset="nano", vocab_size=cfg.vocab_size,
            context_length=128, max_steps=cfg.pretrain_steps, output_dir=str(root / "base"), overwrite=True,
            eval_steps=0, calibration_probes_per_fact=0, seed=cfg.seed, quiet=cfg.quiet, num_threads=cfg.num_threads))

    return cfg.base_model or str(run_once(root / "base", pretrain, cfg.overwrite))


def finetune_point(cfg: ConditioningConfig, base: str, tokenizer, probes, probs, pool: list[dict],
                   lr: float, epochs: int, seed: int, n: int, root: Path) -> dict:
    """Fine-tune the base on the first n documents of the pool; the implied posterior at zero evidence."""
    from alignlab.train.sft import SftConfig, run_sft

    out = root / "sft" / f"lr{lr:g}_ep{epochs}" / f"seed{seed}_n{n}"

    def train() -> None:
        data = write_text_corpus(root / "evidence" / f"seed{seed}_n{n}.jsonl", [d["text"] for d in pool[:n]])
        run_sft(SftConfig(
            model_name_or_path=base, dataset=data, output_dir=str(out), overwrite=True, learning_rate=lr,
            num_train_epochs=epochs, per_device_train_batch_size=cfg.batch_size, packing=False,
            completion_only_loss=False, lr_scheduler_type="constant", warmup_ratio=0.0, weight_decay=0.0,
            seed=seed, quiet=True, num_threads=cfg.num_threads))

    def train_and_measure() -> dict:
        run_once(out, train, cfg.overwrite)
        return {"steps": read_json(out / "summary.json")["steps"], **describe(predictive(out, tokenizer, probes), probs)}

    measured = cached_json(out / "measure.json", train_and_measure, cfg.overwrite)
    if not cfg.keep_models:  # the measurement is what is kept; 108 models x 17 MB (with Adam state) is not
        (out / "model.safetensors").unlink(missing_ok=True)
    return measured


def seed_numbers(au, tables, target: int, base: dict, pool: list[dict], n: int, m: dict) -> dict:
    """Bayes against the model for one seed's evidence: posteriors, bits, predictive distances."""
    log_prior, probs = tables
    counts = option_counts(au, pool, n)
    post = log_posterior(log_prior, probs, counts)
    exact = np.exp(post) @ probs
    bayes = bits_of_evidence(post, log_prior, target)
    model = bits_of_evidence(np.log(m["implied"]), np.log(base["implied"]), target)
    others = np.delete(np.asarray(m["implied"]), target)
    return {"sentences": int(counts.sum()), "bayes_p": float(np.exp(post[target])), "model_p": m["implied"][target],
            "bayes_bits": bayes, "model_bits": model, "diff": model - bayes, "capped": bool(others.max() < 2 * FLOOR),
            "tv": total_variation(m["q"], exact), "kl": kl_divergence(exact, m["q"]), "fit_kl": m["fit_kl"],
            "tv_empirical": total_variation(m["q"], counts / counts.sum()),  # to the evidence's raw frequencies
            "steps": m["steps"]}


def verdict(diff: dict, capped: bool) -> str:
    """over / under / saturated / matches, from the seed interval of model bits - Bayes bits."""
    if diff["lo"] > 0:
        return "over"
    if diff["hi"] < 0:
        return "saturated" if capped else "under"
    return "matches"


def aggregate(per_seed: list[dict], n: int, lr: float, epochs: int) -> dict:
    bounds = {"bayes_p": (0, 1), "model_p": (0, 1), "tv": (0, 1), "tv_empirical": (0, 1), "kl": (0, math.inf),
              "fit_kl": (0, math.inf)}
    iv = {k: seed_interval((r[k] for r in per_seed), bounds.get(k))
          for k in ("bayes_p", "model_p", "bayes_bits", "model_bits", "diff", "tv", "tv_empirical", "kl", "fit_kl")}
    iv["model_bits_per_example"] = seed_interval(r["model_bits"] / n for r in per_seed)
    iv["bayes_bits_per_example"] = seed_interval(r["bayes_bits"] / n for r in per_seed)
    return {"lr": lr, "epochs": epochs, "n": n, "steps": per_seed[0]["steps"],
            "verdict": verdict(iv["diff"], any(r["capped"] for r in per_seed)), **iv, "per_seed": per_seed}


def kl_arm(cfg: ConditioningConfig, base: str, tokenizer, spec, tables, pools: dict, probes, rows: list[dict],
           root: Path) -> list[dict]:
    from alignlab.world.skills import author_probes

    if not cfg.kl_n or cfg.kl_steps <= 0:
        return []
    train_probes = author_probes(spec, 0, cfg.kl_prompts, cfg.seed + 1)
    q_base = predictive(base, tokenizer, probes)
    out = []
    for n in cfg.kl_n:
        per_seed = []
        for s in cfg.seeds:
            counts = option_counts(spec.authors, pools[s], n)
            per_seed.append(cached_json(root / "kl" / f"seed{s}_n{n}.json", lambda c=counts: kl_arm_point(
                cfg, base, tokenizer, c, tables, train_probes, probes, q_base), cfg.overwrite))
            _progress(cfg, f"kl arm n {n} seed {s}: TV to the exact predictive {per_seed[-1]['tv_exact']:.3f}")
        sft = {f"lr {r['lr']:g}, {r['epochs']} ep": r["tv"] for r in rows if r["n"] == n}
        out.append({"n": n, **{k: seed_interval((r[k] for r in per_seed), (0, 1)) for k in
                               ("tv_exact", "tv_optimum", "tv_optimum_exact", "kl_to_optimum_train")},
                    "sft_tv": sft, "per_seed": per_seed})
    return out


def _progress(cfg: ConditioningConfig, text: str) -> None:
    if not cfg.quiet:
        print(f"conditioning: {text}", flush=True)


def run_conditioning(cfg: ConditioningConfig) -> dict:
    from alignlab.models import load_tokenizer
    from alignlab.train.loop import set_threads
    from alignlab.world import load_world
    from alignlab.world.skills import author_probes

    spec = load_world(cfg.world).spec
    au, names = spec.authors, [a.name for a in spec.authors.authors]
    if cfg.author not in names:
        raise UsageError(f"--author: must be one of {', '.join(names)}; got {cfg.author!r}")
    if not cfg.n or min(cfg.n + cfg.kl_n) < 1 or not cfg.seeds:
        raise UsageError("--n and --kl_n: sizes must be >= 1, and --n and --seeds must not be empty")
    set_threads(cfg.num_threads)
    target, tables = names.index(cfg.author), author_tables(au)
    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    check_options(root, cfg)
    base = pretrain_base(cfg, root)
    tokenizer = load_tokenizer(base)
    base_info = cached_json(root / "base_check.json", lambda: base_check(cfg, base, tokenizer, spec, tables[1]),
                            cfg.overwrite)
    _progress(cfg, f"base: zero-evidence MAE to the prior predictive {base_info['mae_zero_evidence']:.4f}")
    probes = author_probes(spec, 0, cfg.probes, cfg.seed)
    # One pool per seed; the first n documents are the evidence, so larger n extends smaller n.
    pools = {s: evidence_pool(au, au.authors[target], max(cfg.n + cfg.kl_n), s) for s in cfg.seeds}
    settings = [(lr, ep) for lr in cfg.learning_rates for ep in cfg.epochs]
    rows, done, total = [], 0, len(settings) * len(cfg.n) * len(cfg.seeds)
    for lr, ep in settings:
        for n in sorted(cfg.n):
            per_seed = []
            for s in cfg.seeds:
                m = finetune_point(cfg, base, tokenizer, probes, tables[1], pools[s], lr, ep, s, n, root)
                per_seed.append(seed_numbers(au, tables, target, base_info, pools[s], n, m))
                done += 1
                _progress(cfg, f"[{done}/{total}] lr {lr:g}, {ep} ep, seed {s}, n {n}: P({cfg.author}) model "
                               f"{per_seed[-1]['model_p']:.3f} vs Bayes {per_seed[-1]['bayes_p']:.3f}")
            rows.append(aggregate(per_seed, n, lr, ep))
    kl_rows = kl_arm(cfg, base, tokenizer, spec, tables, pools, probes, rows, root)
    results = {"author": cfg.author, "authors": names, "prior": np.exp(tables[0]).tolist(), "base_model": base,
               "base": base_info, "rows": rows, "kl": kl_rows}
    write_report(cfg, results, root)
    return results

