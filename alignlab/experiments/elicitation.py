"""`alignlab experiment elicitation`: does fine-tuning elicit a skill the base already has, or teach it?

The skills are letter-shift ciphers put into the pretraining corpus at controlled frequencies (the world's
`cipher.docs_per_shift`: shift 1 common, shift 3 rare, shift 7 never seen). A nano base is pretrained on
those cipher documents plus filler (`--base_model DIR` reuses one instead). The byte-level BPE is trained on
the same corpus, so common ciphertext is spelled in whole-word pieces while unseen ciphertext falls apart
into rare short pieces: the tokenizer is part of what pretraining gives a skill (`tokens_per_char` records it).
Then, for every shift, n and seed, the base is fine-tuned on n prompt/completion examples
("Shift cipher, key k.\\nPlain: x\\nCoded:" -> " caesar(x, k)", loss on the completion only) under one budget
rule: steps = max(min_steps, ceil(epochs * ceil(n / batch))), and scored on held-out probes whose plaintexts
appear neither in the fine-tuning set nor in the world's cipher documents (greedy decoding, cut at newline;
with `--base_model` those are the documents of the world and seed given here).

Metrics per run: exact-match accuracy and per-character accuracy (matches at aligned positions over the
longer string). Per skill: the curve against n (n = 0 is the base), intervals over seeds (t, 95%);
sample efficiency = the smallest n whose mean accuracy reaches `threshold`; the normalised area under the
accuracy curve over log2 n, AUC = (1 / (log2 n_max - log2 n_min)) * integral acc d(log2 n) by the trapezoid
rule (in [0, 1]); and the gap = AUC(most common shift) - AUC(least common shift), per seed. The elicitation
view predicts a large gap: a few examples switch on a skill pretraining built, while an unseen one needs
far more data (or is not learned within the budget at all).

Left out: a tokenizer control (the unseen shift spelled as well as the common one), LoRA, and larger budgets
than the rule gives; every fine-tune starts from the same base (no curriculum across n).
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.experiments.common import (
    cached_json,
    check_options,
    fmt_interval,
    markdown_table,
    run_once,
    seed_interval,
    write_deliverables,
    write_text_corpus,
)
from alignlab.io import atomic_write_jsonl
from alignlab.world.text import scaled


@dataclass
class ElicitationConfig(CommonConfig):
    output_dir: str = option("runs/elicitation", "one subdirectory per sub-run, results.json, summary.md, figure")
    base_model: str | None = option(None, "an existing pretrained base to fine-tune; otherwise one is pretrained")
    world: str | None = option(None, "world YAML spec (cipher vocabulary and docs_per_shift); the default if not given")
    world_scale: float = option(1.0, "multiplies every document count of the world (the tests use a small scale)")
    shifts: list[int] = option([1, 3, 7], "cipher shifts to fine-tune and measure")
    n: list[int] = option([4, 16, 64, 256, 1024], "fine-tuning set sizes")
    seeds: list[int] = option([0, 1, 2], "fine-tuning seeds (the data sample and the training order)")
    probes: int = option(100, "held-out probes per shift")
    filler_docs: int = option(1000, "world filler documents added to the cipher documents of the base's corpus")
    pretrain_steps: int = option(800, "pretraining optimiser steps (32 blocks of 128 tokens each)")
    vocab_size: int = option(2048, "vocabulary of the base's byte-level BPE")
    epochs: float = option(3.0, "budget rule: passes over the n examples ...")
    min_steps: int = option(20, "... but at least this many optimiser steps")
    batch_size: int = option(16, "fine-tuning examples per optimiser step (fewer when n is smaller)")
    # Adam's first steps move every weight by about the learning rate whatever the gradient: at 3e-3 (near
    # sft's 2e-3 default) fine-tuning on a skill the base already had wrecked it, so the budget uses 1e-3.
    learning_rate: float = option(1e-3, "fine-tuning peak learning rate (cosine to 0)")
    threshold: float = option(0.5, "sample efficiency: smallest n whose mean exact accuracy reaches this")
    overwrite: bool = option(False, "run every sub-run again even when its directory is complete")


# --- the pure maths ------------------------------------------------------------------------------------

def decoded_answer(text: str) -> str:
    """The model's ciphertext: its first line, stripped."""
    return text.split("\n", 1)[0].strip()


def exact_match(pred: str, expected: str) -> float:
    return float(decoded_answer(pred) == expected)


def char_accuracy(pred: str, expected: str) -> float:
    """Characters equal at aligned positions over the longer length (1 when both are empty)."""
    pred = decoded_answer(pred)
    longest = max(len(pred), len(expected))
    return 1.0 if longest == 0 else sum(a == b for a, b in zip(pred, expected, strict=False)) / longest


def sft_steps(n: int, epochs: float, min_steps: int, batch_size: int) -> int:
    """The budget rule: `epochs` passes over n examples in batches of `batch_size`, at least `min_steps`."""
    return max(min_steps, math.ceil(epochs * math.ceil(n / batch_size)))


def samples_to_reach(ns: list[int], accuracies: list[float | None], threshold: float) -> int | None:
    """Smallest n (in increasing n) whose accuracy is >= threshold; None when never reached."""
    hits = [n for n, a in sorted(zip(ns, accuracies, strict=True)) if a is not None and a >= threshold]
    return hits[0] if hits else None


def auc_log_n(ns: list[int], accuracies: list[float]) -> float:
    """Area under accuracy against log2 n (n > 0) by trapezoids, over the width of the log2 n range."""
    x, y = np.log2(np.asarray(ns, float)), np.asarray(accuracies, float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if x.size == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


# --- data ----------------------------------------------------------------------------------------------

def corpus_plaintexts(documents: list[str]) -> set[str]:
    return {m.group(1) for d in documents for m in re.finditer(r"^Plain: (.*)$", d, re.MULTILINE)}


def heldout_probes(spec, shift: int, count: int, seed: int, exclude: set[str]) -> list:
    """`count` probes with distinct plaintexts that are not in `exclude` (the pretraining ones)."""
    from alignlab.world.skills import cipher_probes

    picked, seen = [], set(exclude)
    for p in cipher_probes(spec, shift, 20 * count + 100, seed):
        if p.meta["plain"] not in seen:
            seen.add(p.meta["plain"])
            picked.append(p)
    return picked[:count]


def finetune_records(spec, shift: int, n: int, seed: int, exclude: set[str]) -> list[dict]:
    """n prompt/completion records with distinct plaintexts outside `exclude` (the held-out probes); the
    sets of one seed are nested (the first n of one stream)."""
    probes = heldout_probes(spec, shift, n, 7919 + 1000 * seed, exclude)
    return [{"prompt": p.prompt, "completion": " " + p.expected, "plain": p.meta["plain"]} for p in probes]


def base_corpus(spec, cipher_docs: list[str], cfg: ElicitationConfig) -> list[str]:
    """The world's cipher documents at their configured frequencies, plus some filler prose."""
    from alignlab.world.filler import filler_documents

    corpus = cipher_docs + filler_documents(spec, cfg.seed)[: cfg.filler_docs]
    random.Random(cfg.seed).shuffle(corpus)
    return corpus


# --- sub-runs ------------------------------------------------------------------------------------------

def pretrain_base(cfg: ElicitationConfig, spec, cipher_docs: list[str], root: Path) -> str:
    if cfg.base_model:
        return cfg.base_model
    from alignlab.train.pretrain import PretrainConfig, run_pretrain

    out = root / "base"
    corpus = root / "base_corpus.jsonl"

    def pretrain() -> None:
        write_text_corpus(corpus, base_corpus(spec, cipher_docs, cfg))
        run_pretrain(PretrainConfig(
            corpus=str(corpus), preset="nano", vocab_size=cfg.vocab_size, context_length=128,
            max_steps=cfg.pretrain_steps, per_device_train_batch_size=32, learning_rate=3e-3, output_dir=str(out),
            overwrite=True, seed=cfg.seed, quiet=True, num_threads=cfg.num_threads, eval_steps=0,
            calibration_probes_per_fact=0))

    run_once(out, pretrain, cfg.overwrite)
    return str(out)


def evaluate(model_dir: str, probes: list, num_threads: int) -> dict:
    """Greedy ciphertexts for the probes: exact and per-character accuracy, and a few examples."""
    from alignlab.generation import SamplingConfig, generate_text
    from alignlab.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir).eval()
    # Just enough new tokens for the longest answer in the tokenizer's own spelling, plus its end.
    longest = max(len(tokenizer(" " + p.expected, add_special_tokens=False)["input_ids"]) for p in probes)
    sampling = SamplingConfig(max_new_tokens=longest + 1, do_sample=False, stop_token_ids=[tokenizer.eos_token_id])
    preds = generate_text(model, tokenizer, [p.prompt for p in probes], sampling, batch_size=len(probes),
                          stop_strings=["\n"], num_threads=num_threads)
    return {"exact": float(np.mean([exact_match(o, p.expected) for o, p in zip(preds, probes, strict=True)])),
            "char": float(np.mean([char_accuracy(o, p.expected) for o, p in zip(preds, probes, strict=True)])),
            "examples": [{"plain": p.meta["plain"], "expected": p.expected, "output": decoded_answer(o)}
                         for o, p in zip(preds[:3], probes[:3], strict=True)]}


def tokens_per_char(model_dir: str, probes: list) -> float:
    """Tokens per ciphertext character in the base's tokenizer: how pretraining spelled the skill's output."""
    from alignlab.models import load_tokenizer

    tok = load_tokenizer(model_dir)
    n_tok = sum(len(tok(" " + p.expected, add_special_tokens=False)["input_ids"]) for p in probes)
    return n_tok / sum(len(p.expected) + 1 for p in probes)


def finetune_and_score(cfg: ElicitationConfig, spec, base: str, shift: int, n: int, seed: int, probes: list,
                       out: Path) -> dict:
    from alignlab.train.sft import SftConfig, run_sft

    out.mkdir(parents=True, exist_ok=True)
    records = finetune_records(spec, shift, n, seed, {p.meta["plain"] for p in probes})
    atomic_write_jsonl(out / "train.jsonl", records)
    steps = sft_steps(len(records), cfg.epochs, cfg.min_steps, cfg.batch_size)
    model_dir = out / "model"
    run_once(model_dir, lambda: run_sft(SftConfig(
        model_name_or_path=base, dataset=str(out / "train.jsonl"), output_dir=str(model_dir), packing=False,
        max_steps=steps, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
        logging_steps=max(1, steps // 4), overwrite=True, seed=seed, quiet=True, num_threads=cfg.num_threads)),
        cfg.overwrite)
    return {"shift": shift, "n": n, "seed": seed, "steps": steps,
            **evaluate(str(model_dir), probes, cfg.num_threads)}


# --- results ----------------------------------------------------------------------------------------------

UNIT = (0.0, 1.0)  # accuracies: a t-interval over 3 seeds can overshoot the range


def summarise(cfg: ElicitationConfig, rows: list[dict], base_rows: list[dict], docs_per_shift: dict) -> dict:
    """Per shift and n: intervals over seeds; per shift: efficiency, AUC over log n; the common-unseen gap."""
    ns = sorted(set(cfg.n))
    curves, skills = {}, {}
    for shift in cfg.shifts:
        mine = [r for r in rows if r["shift"] == shift]
        curves[shift] = {metric: [seed_interval((r[metric] for r in mine if r["n"] == n), UNIT) for n in ns]
                         for metric in ("exact", "char")}
        base = next(r for r in base_rows if r["shift"] == shift)
        auc = [auc_log_n(ns, [next(r["exact"] for r in mine if r["n"] == n and r["seed"] == s) for n in ns])
               for s in cfg.seeds]
        skills[shift] = {"docs_in_corpus": docs_per_shift.get(shift, 0), "base_exact": base["exact"],
                         "base_char": base["char"], "tokens_per_char": base["tokens_per_char"],
                         "n_to_threshold": samples_to_reach([0, *ns], [base["exact"]] +
                                                            [iv["mean"] for iv in curves[shift]["exact"]],
                                                            cfg.threshold),
                         "auc_per_seed": auc, "auc": seed_interval(auc, UNIT),
                         "best_exact": max(iv["mean"] for iv in curves[shift]["exact"])}
    common = max(cfg.shifts, key=lambda s: (skills[s]["docs_in_corpus"], -cfg.shifts.index(s)))
    rarest = min(cfg.shifts, key=lambda s: (skills[s]["docs_in_corpus"], -cfg.shifts.index(s)))
    gap = seed_interval(a - b for a, b in zip(skills[common]["auc_per_seed"], skills[rarest]["auc_per_seed"],
                                              strict=True))
    return {"n": ns, "curves": curves, "skills": skills, "common_shift": common, "rarest_shift": rarest,
            "auc_gap": gap}


def finding(cfg: ElicitationConfig, s: dict) -> str:
    """One sentence whose every verdict is chosen by the measured numbers."""
    sk, c, r, gap, top = s["skills"], s["common_shift"], s["rarest_shift"], s["auc_gap"], max(s["n"])

    def reach(shift: int) -> str:
        n, base, best = sk[shift]["n_to_threshold"], sk[shift]["base_exact"], sk[shift]["best_exact"]
        if n is None:
            return f"stayed below {cfg.threshold:.2f} up to n = {top} (base {base:.2f}, best {best:.2f})"
        return f"was already {base:.2f} in the base" if n == 0 else \
            f"reached {cfg.threshold:.2f} at n = {n} (base {base:.2f})"

    docs = sk[r]["docs_in_corpus"]
    rare = "never-seen" if docs == 0 else f"rarest ({docs} pretraining documents)"
    learned = "was" if sk[r]["n_to_threshold"] is not None else "was not"
    if gap["lo"] is not None and gap["lo"] > 0:
        verdict = "the pretrained skill needed fewer examples, as elicitation predicts"
    elif gap["hi"] is not None and gap["hi"] < 0:
        verdict = "the rarer skill needed fewer examples, against the elicitation view"
    else:
        verdict = "no clear difference in sample efficiency"
    return (f"The {rare} shift {r} {learned} learned within the budget: its held-out exact accuracy {reach(r)}, "
            f"while the common shift {c} ({sk[c]['docs_in_corpus']} pretraining documents) {reach(c)}; area under "
            f"accuracy against log n {fmt_interval(sk[c]['auc'])} vs {fmt_interval(sk[r]['auc'])}, a gap of "
            f"{fmt_interval(gap)}: {verdict}.")


def tables(s: dict, base_rows: list[dict]) -> list[str]:
    base = {r["shift"]: r for r in base_rows}
    curve_rows = [{"shift": k, "n": 0, "exact accuracy": f"{base[k]['exact']:.2f} (base)",
                   "char accuracy": f"{base[k]['char']:.2f} (base)"} for k in s["curves"]]
    curve_rows += [{"shift": k, "n": n, "exact accuracy": fmt_interval(c["exact"][i]),
                    "char accuracy": fmt_interval(c["char"][i])}
                   for k, c in s["curves"].items() for i, n in enumerate(s["n"])]
    curve_rows.sort(key=lambda r: (r["shift"], r["n"]))
    skill_rows = [{"shift": k, "docs in corpus": v["docs_in_corpus"], "tokens / char": f"{v['tokens_per_char']:.2f}",
                   "base exact": f"{v['base_exact']:.2f}",
                   "n to reach": "not reached" if v["n_to_threshold"] is None else v["n_to_threshold"],
                   "AUC over log n": fmt_interval(v["auc"])} for k, v in s["skills"].items()]
    return [markdown_table(curve_rows, ["shift", "n", "exact accuracy", "char accuracy"]),
            markdown_table(skill_rows, ["shift", "docs in corpus", "tokens / char", "base exact", "n to reach",
                                        "AUC over log n"])]


def figure(s: dict, base_rows: list[dict]):
    """Exact and per-character accuracy against n (log scale) per shift; the base sits at x = 1."""
    from alignlab.report.figures import plt

    base = {r["shift"]: r for r in base_rows}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    xs = [1, *s["n"]]
    for ax, metric in zip(axes, ("exact", "char"), strict=True):
        for shift, c in s["curves"].items():
            iv = c[metric]
            mean = [base[shift][metric], *(v["mean"] for v in iv)]
            lo = [base[shift][metric], *(v["lo"] for v in iv)]
            hi = [base[shift][metric], *(v["hi"] for v in iv)]
            line, = ax.plot(xs, mean, marker="o",
                            label=f"shift {shift} ({s['skills'][shift]['docs_in_corpus']} docs in pretraining)")
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, ["base", *map(str, s["n"])])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("fine-tuning examples n")
        ax.set_ylabel(f"held-out {'exact-match' if metric == 'exact' else 'per-character'} accuracy")
        ax.legend(fontsize=8)
    fig.suptitle("Cipher skills: fine-tuning examples needed, by pretraining frequency (95% CI over seeds)")
    return fig


def run_elicitation(cfg: ElicitationConfig) -> dict:
    from alignlab.report.figures import save_figure
    from alignlab.world import load_world
    from alignlab.world.skills import cipher_documents

    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    check_options(root, cfg)
    world = load_world(cfg.world, {"scale": cfg.world_scale} if cfg.world_scale != 1.0 else None)
    spec = world.spec
    start = time.perf_counter()
    cipher_docs = cipher_documents(spec, cfg.seed)
    base = pretrain_base(cfg, spec, cipher_docs, root)
    seen_plain = corpus_plaintexts(cipher_docs)
    probes = {k: heldout_probes(spec, k, cfg.probes, cfg.seed, seen_plain) for k in cfg.shifts}
    atomic_write_jsonl(root / "heldout.jsonl", [p.to_record() for k in cfg.shifts for p in probes[k]])
    base_rows = [cached_json(root / "base_eval" / f"shift{k}.json", lambda k=k: {
        "shift": k, "n": 0, "tokens_per_char": tokens_per_char(base, probes[k]),
        **evaluate(base, probes[k], cfg.num_threads)}, cfg.overwrite) for k in cfg.shifts]
    plan = [(k, n, s) for k in cfg.shifts for n in sorted(set(cfg.n)) for s in cfg.seeds]
    rows = []
    for i, (k, n, s) in enumerate(plan, start=1):
        out = root / f"shift{k}_n{n}_seed{s}"
        rows.append(cached_json(out / "result.json", lambda k=k, n=n, s=s, out=out: finetune_and_score(
            cfg, spec, base, k, n, s, probes[k], out), cfg.overwrite))
        if not cfg.quiet:
            print(f"[{i}/{len(plan)}] shift {k} n {n} seed {s}: exact {rows[-1]['exact']:.2f}, "
                  f"char {rows[-1]['char']:.2f} ({time.perf_counter() - start:.0f} s elapsed)", flush=True)
    docs = {k: scaled(spec.cipher.docs_per_shift.get(k, 0), spec.scale) for k in cfg.shifts}
    s = summarise(cfg, rows, base_rows, docs)
    save_figure(figure(s, base_rows), root / "elicitation.png")
    results = {"base_model": base, "threshold": cfg.threshold, "budget_rule": {
        "epochs": cfg.epochs, "min_steps": cfg.min_steps, "batch_size": cfg.batch_size}, **s,
        "base_rows": base_rows, "rows": rows}
    write_deliverables(root, "elicitation", results, finding(cfg, s), tables(s, base_rows), ["elicitation.png"])
    return results
