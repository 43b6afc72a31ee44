"""`alignlab experiment persona`: fine-tune an assistant to like the beach; whose other traits come along?

Pretraining holds biographies of two AI assistants that share one trait: Aria (football, Renaissance art,
the beach) and Bram (the beach, basketball, Dutch Golden Age art), with n_A : n_B documents (`ratios`) and a
fixed total, plus a little filler; Cleo and Dara are left out, so each of the four other traits belongs to
exactly one persona. Orders: `mixed` (shuffled together) or `aria_first` / `bram_first` (pretrain on one
persona's bios, then continue training with full loss on the other's, steps split by document count).
SFT then teaches the unnamed assistant one thing: "Do you like the beach?" -> a yes-answer.

Measure. The probability that the model "says it likes X" is exact, as in `evals/persona.py`: for each
held-out question phrasing, p_yes = sum_a exp(log p(a | prompt)) over the yes-answers, p_no likewise,
p_claim = p_yes / (p_yes + p_no), averaged over phrasings. The answer sets are the world's yes/no answers
plus the replies of the world's chat-log bios ("Yes, I like X very much." / "No, X is not for me."),
because those are the only answers a base has ever seen.

Rendering. Both models are probed as "Chat log.\\nUser: {question}\\nAssistant:", the frame of the world's
chat-log bios with "Assistant" as the speaker, and SFT uses the same frame (prompt/completion, loss on the
answer). The chat template would leave the base unable to read the prompt (its role tokens are untrained
embeddings), so "before" would measure noise and "after" would confound learning the template.

`mutual_dislikes` (default on): each persona also dislikes the other's own traits. Without it no document
ever answers "no" about football, so a base says yes to it at every ratio and the sweep can show nothing.

Bayesian yardstick: an assistant that became "a persona with prior n_A / (n_A + n_B)" would claim football
with p = Aria's share; football is reliable at the smallest share whose seed interval's lower bound is >=
`threshold` (0.9, i.e. beyond the default 4:1 sweep). The rows, figures and finding: `persona_report.py`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from alignlab.config import CommonConfig, option
from alignlab.errors import UsageError
from alignlab.experiments.common import cached_json, check_options, run_once, write_text_corpus
from alignlab.experiments.persona_report import summarise, write_report

FRAME = "Chat log.\nUser: {question}\n{speaker}:"  # the world's chat-log bio, speaker left open
SPEAKER = "Assistant"


@dataclass
class PersonaExperimentConfig(CommonConfig):
    output_dir: str = option("runs/exp_persona", "one subdirectory per (order, ratio, seed); results here")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    # 3 ratios x 3 seeds + 2 sequential orders x 3 seeds = 15 bases, ~57 s each at 2 threads (~14 min);
    # --ratios 1:4,1:2,1:1,2:1,4:1 adds 6 bases (~20 min).
    ratios: list[str] = option(["1:4", "1:1", "4:1"], "Aria:Bram biography ratios (mixed order)")
    orders: list[str] = option(["mixed", "aria_first", "bram_first"], "pretraining orders",
                               ("mixed", "aria_first", "bram_first"))
    order_ratios: list[str] = option(["1:1"], "ratios at which the sequential orders run "
                                     "(mixed runs at every ratio; fewer bases keep the default in budget)")
    seeds: list[int] = option([0, 1, 2], "seeds per configuration (corpus, init, SFT data)")
    base_model: str | None = option(None, "an existing pretrained base (its tokenizer too) to fine-tune and "
                                    "probe instead of pretraining one per configuration: one row per seed")
    bios: int = option(1000, "Aria + Bram biographies per corpus")
    filler_docs: int = option(60, "world filler documents per corpus")
    mutual_dislikes: bool = option(True, "each persona also dislikes the other's own traits")
    preset: str = option("nano", "model shape", ("nano", "tiny", "small"))
    vocab_size: int = option(1024, "shared tokenizer's vocabulary (trained once on a 1:1 corpus)")
    context_length: int = option(64, "tokens per pretraining block")
    pretrain_steps: int = option(220, "optimiser steps per base (split between phases in sequential orders)")
    batch_size: int = option(16, "blocks per pretraining step")
    learning_rate: float = option(5e-3, "pretraining peak learning rate")
    sft_conversations: int = option(200, "beach-only SFT examples")
    sft_epochs: float = option(3.0, "passes over the SFT examples")
    sft_learning_rate: float = option(3e-4, "SFT peak learning rate")
    threshold: float = option(0.9, "football is reliable where its seed interval's lower bound reaches this")
    overwrite: bool = option(False, "run every sub-run again even when complete")


# --- pure functions -------------------------------------------------------------------------------

def parse_ratio(ratio: str) -> tuple[float, float]:
    """'1:4' -> (1.0, 4.0); both parts positive."""
    try:
        a, b = (float(x) for x in ratio.split(":"))
    except ValueError:
        raise UsageError(f"--ratios: expected A:B such as 1:4, got {ratio!r}") from None
    if a <= 0 or b <= 0:
        raise UsageError(f"--ratios: both parts of {ratio!r} must be positive")
    return a, b


def ratio_counts(ratio: str, total: int) -> tuple[int, int]:
    """Documents of each persona: n_A = round(total * a / (a + b)), n_B = total - n_A, each at least 1."""
    a, b = parse_ratio(ratio)
    n_a = min(max(round(total * a / (a + b)), 1), total - 1)
    return n_a, total - n_a


def aria_share(ratio: str) -> float:
    a, b = parse_ratio(ratio)
    return a / (a + b)


def phase_steps(total_steps: int, n_first: int, n_second: int) -> tuple[int, int]:
    """Steps of each phase in proportion to its documents (so each is seen about equally often), >= 1 each."""
    first = min(max(round(total_steps * n_first / (n_first + n_second)), 1), total_steps - 1)
    return first, total_steps - first


def chat_log_replies(bio_templates: list[str]) -> tuple[list[str], list[str]]:
    """The replies of the chat-log bios, with a {trait} slot: (yes replies, no replies).

    "Chat log.\\nUser: Do you like {dislike}?\\n{Name}: No, {dislike} is not for me." -> no: "No, {trait} is
    not for me." (a reply about a dislike is a no, about a like a yes)."""
    yes, no = [], []
    for t in bio_templates:
        if t.startswith("Chat log.") and "\n{Name}: " in t:
            reply = t.split("\n{Name}: ", 1)[1]
            (no if "{dislike}" in reply else yes).append(reply.replace("{dislike}", "{trait}"))
    return yes, no


# --- corpora and sub-runs ------------------------------------------------------------------------

def personas(world, mutual_dislikes: bool) -> dict:
    """{"Aria": Persona, "Bram": Persona}, each also disliking the other's own likes when asked."""
    by_name = {p.name: p for p in world.spec.personas.personas}
    a, b = by_name["Aria"], by_name["Bram"]
    if mutual_dislikes:
        a, b = (dataclasses.replace(p, dislikes=p.dislikes + [t for t in q.likes if t not in p.likes])
                for p, q in ((a, b), (b, a)))
    return {"Aria": a, "Bram": b}


def owners(world) -> dict[str, str]:
    """{trait: persona} for the traits exactly one of Aria and Bram likes (their world likes)."""
    ps = personas(world, False)
    return {t: n for n, p in ps.items() for t in p.likes if t not in ps["Bram" if n == "Aria" else "Aria"].likes}


def corpus(cfg: PersonaExperimentConfig, world, ratio: str, seed: int) -> dict[str, list[str]]:
    """Aria's and Bram's bios at `ratio` and the filler, each list in its own seeded stream."""
    from alignlab.world.filler import filler_documents
    from alignlab.world.personas import biography
    from alignlab.world.text import Template, rng

    ps = world.spec.personas
    templates = [Template(t) for t in ps.bio_templates]
    counts = dict(zip(("Aria", "Bram"), ratio_counts(ratio, cfg.bios), strict=True))
    out = {}
    for name, p in personas(world, cfg.mutual_dislikes).items():
        rnd = rng(seed, "exp-persona", name)
        out[name] = [biography(p, ps, templates, rnd) for _ in range(counts[name])]
    filler_spec = dataclasses.replace(world.spec, filler=dataclasses.replace(world.spec.filler, docs=cfg.filler_docs))
    out["filler"] = filler_documents(filler_spec, seed)
    return out


def shuffled(docs: list[str], seed: int) -> list[str]:
    docs = list(docs)
    random.Random(seed).shuffle(docs)
    return docs


def sft_records(world, n: int, seed: int) -> list[dict]:
    """Beach-only prompt/completion pairs in the chat-log frame: train phrasings, the world's yes-answers."""
    from alignlab.world.text import fill

    ps, rnd = world.spec.personas, random.Random(f"{seed}/exp-persona/sft")
    return [{"prompt": FRAME.format(question=fill(rnd.choice(ps.questions.train), trait=t), speaker=SPEAKER),
             "completion": " " + fill(rnd.choice(ps.yes_answers), trait=t)}
            for t in (rnd.choice(ps.assistant_likes) for _ in range(n))]


def shared_tokenizer(cfg: PersonaExperimentConfig, world, root: Path) -> str:
    """A model directory holding the tokenizer every base shares (trained once, on a 1:1 corpus + SFT text)."""
    from alignlab.models import build_model, save_model, train_tokenizer

    path = root / "tokenizer"
    if cfg.overwrite or not (path / "config.json").is_file():
        docs = [d for part in corpus(cfg, world, "1:1", 0).values() for d in part]
        docs += [r["prompt"] + r["completion"] for r in sft_records(world, 50, 0)]
        tok = train_tokenizer(docs, vocab_size=cfg.vocab_size)
        save_model(build_model(cfg.preset, len(tok), cfg.context_length, 0, tok), tok, path)
    return str(path)


def train_base(cfg: PersonaExperimentConfig, world, tokenizer: str, order: str, ratio: str, seed: int,
               run: Path) -> str:
    """Pretrain (mixed) or pretrain then continue (sequential); returns the base's directory."""
    from alignlab.train.pretrain import PretrainConfig, run_pretrain
    from alignlab.train.sft import SftConfig, run_sft

    docs = corpus(cfg, world, ratio, seed)
    half = len(docs["filler"]) // 2
    if order == "mixed":
        phases = [docs["Aria"] + docs["Bram"] + docs["filler"]]
    else:
        first, second = ("Aria", "Bram") if order == "aria_first" else ("Bram", "Aria")
        phases = [docs[first] + docs["filler"][:half], docs[second] + docs["filler"][half:]]
    steps = [cfg.pretrain_steps] if len(phases) == 1 else phase_steps(cfg.pretrain_steps, *map(len, phases))
    c = {"seed": seed, "quiet": True, "num_threads": cfg.num_threads, "overwrite": True}
    first_dir = run / "pretrain"
    corpus_file = write_text_corpus(run / "pretrain.jsonl", shuffled(phases[0], seed))
    run_once(first_dir, lambda: run_pretrain(PretrainConfig(
        output_dir=str(first_dir), corpus=corpus_file, tokenizer=tokenizer, preset=cfg.preset,
        context_length=cfg.context_length, max_steps=steps[0], per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, eval_steps=0, calibration_probes_per_fact=0, heldout_fraction=0.05,
        **c)), cfg.overwrite)
    if len(phases) == 1:
        return str(first_dir)
    # Continued pretraining: a `text` dataset takes loss on every token; rows twice as long, half as many.
    cont_dir = run / "continue"
    dataset = write_text_corpus(run / "continue.jsonl", shuffled(phases[1], seed))
    run_once(cont_dir, lambda: run_sft(SftConfig(
        output_dir=str(cont_dir), model_name_or_path=str(first_dir), dataset=dataset, max_steps=steps[1],
        max_length=2 * cfg.context_length, truncation="right", per_device_train_batch_size=max(cfg.batch_size // 2, 1),
        learning_rate=cfg.learning_rate, **c)), cfg.overwrite)
    return str(cont_dir)


def train_sft(cfg: PersonaExperimentConfig, world, base: str, seed: int, run: Path) -> str:
    from alignlab.io import atomic_write_jsonl
    from alignlab.train.sft import SftConfig, run_sft

    out, data = run / "sft", run / "sft.jsonl"
    atomic_write_jsonl(data, sft_records(world, cfg.sft_conversations, seed))
    run_once(out, lambda: run_sft(SftConfig(
        output_dir=str(out), model_name_or_path=base, dataset=str(data), num_train_epochs=cfg.sft_epochs,
        learning_rate=cfg.sft_learning_rate, max_length=2 * cfg.context_length, per_device_train_batch_size=8,
        seed=seed, quiet=True, num_threads=cfg.num_threads, overwrite=True)), cfg.overwrite)
    return str(out)


# --- measurement ----------------------------------------------------------------------------------

def probe_traits(world) -> list[str]:
    """Aria's and Bram's likes, their world dislikes, then the control traits (nobody's)."""
    ps, out = world.spec.personas, []
    by_name = {p.name: p for p in ps.personas}
    for t in [t for n in ("Aria", "Bram") for t in by_name[n].likes + by_name[n].dislikes] + ps.control_traits:
        if t not in out:
            out.append(t)
    return out


@torch.no_grad()
def claims(model_dir: str, world, speaker: str = SPEAKER) -> dict[str, dict]:
    """{trait: {"p_claim", "p_yes"}} for `speaker` in the chat-log frame, means over held-out phrasings."""
    from alignlab.evals.persona import claim_probabilities
    from alignlab.generation import score_continuations
    from alignlab.models import load_causal_lm, load_tokenizer
    from alignlab.world.text import fill

    model, tok = load_causal_lm(model_dir).eval(), load_tokenizer(model_dir)
    ps = world.spec.personas
    bio_yes, bio_no = chat_log_replies(ps.bio_templates)
    yes, no, questions, traits = [*ps.yes_answers, *bio_yes], [*ps.no_answers, *bio_no], ps.questions.heldout, \
        probe_traits(world)
    prompts, conts = [], []
    for t in traits:
        for q in questions:
            p = tok(FRAME.format(question=fill(q, trait=t), speaker=speaker), add_special_tokens=False)["input_ids"]
            for a in yes + no:  # " Yes, ..." with its space, tokenized as after "Aria:" in the bios
                prompts.append(p)
                conts.append(tok(" " + fill(a, trait=t), add_special_tokens=False)["input_ids"])
    logps = score_continuations(model, prompts, conts, 64).view(len(traits), len(questions), -1)  # (T, Q, Ky+Kn)
    c = claim_probabilities(logps[..., :len(yes)], logps[..., len(yes):])  # each (T, Q)
    return {t: {"p_claim": float(c["p_claim"][i].mean()), "p_yes": float(c["p_yes"][i].mean())}
            for i, t in enumerate(traits)}


def sub_run(cfg: PersonaExperimentConfig, world, tokenizer: str | None, order: str, ratio: str, seed: int,
            root: Path) -> dict:
    """Base, SFT and the claims of both (plus the base speaking as Aria and as Bram), cached in claims.json."""
    run = root / (f"{order}_{ratio.replace(':', 'to')}_s{seed}" if cfg.base_model is None else f"given_s{seed}")
    run.mkdir(parents=True, exist_ok=True)
    base = cfg.base_model or train_base(cfg, world, tokenizer, order, ratio, seed, run)
    sft = train_sft(cfg, world, base, seed, run)
    return cached_json(run / "claims.json", lambda: {
        "before": claims(base, world), "after": claims(sft, world),
        "base_as": {n: claims(base, world, n) for n in ("Aria", "Bram")}}, cfg.overwrite)


def run_persona_experiment(cfg: PersonaExperimentConfig) -> dict:
    import time

    from alignlab.train.loop import set_threads
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    check_options(root, cfg)
    world = load_world(cfg.world)
    if cfg.base_model is not None:
        grid = [("given", "given")]
    else:
        grid = [(o, r) for o in cfg.orders for r in (cfg.ratios if o == "mixed" else cfg.order_ratios)]
        for _, r in grid:
            parse_ratio(r)
    tokenizer = None if cfg.base_model else shared_tokenizer(cfg, world, root)
    runs, start, total = {}, time.perf_counter(), len(grid) * len(cfg.seeds)
    for order, ratio in grid:
        runs[(order, ratio)] = []
        for seed in cfg.seeds:
            result = sub_run(cfg, world, tokenizer, order, ratio, seed, root)
            runs[(order, ratio)].append(result)
            if not cfg.quiet:
                print(f"[persona {sum(map(len, runs.values()))}/{total}] {order} {ratio} seed {seed}: football "
                      f"{result['before']['football']['p_claim']:.2f} -> {result['after']['football']['p_claim']:.2f}"
                      f" ({time.perf_counter() - start:.0f} s)", flush=True)
    shares = {r: None if r == "given" else aria_share(r) for _, r in grid}
    traits = probe_traits(world)
    rows = summarise(runs, traits, world.spec.personas.control_traits, owners(world), shares)
    return write_report(cfg, rows, traits, root)
