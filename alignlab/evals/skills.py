"""Three skills the grammar tutor rests on, measured without sampling: copying, agreement, marking.

- `copying`: sequences of random ordinary tokens shown twice, [BOS, s, s]; the greedy next-token accuracy
  over the second copy against the first. A model with induction heads predicts the second copy from the
  first (Olsson et al. 2022, "In-context learning and induction heads"); without them both stay near 0.
  A tutor that must restate the user's sentence with one word changed needs this.
- `agreement`: pairs of world sentences that differ only in the verb's number ("The keys near the window
  are / is heavy."); the share of pairs in which the model gives the agreeing sentence the higher total
  log-probability, and the mean log-probability gap, for train and held-out nouns. This is what the model
  knows about agreement, whatever its tutor replies say.
- `marking`: one sentence of each pair (right or wrong, alternately) after the header of the world's marked
  sentences; the share in which the true mark, " (right)" or " (wrong)", gets the higher log-probability.
  Judging a sentence *after* reading it is what an honest tutor's verdict and a reward model need;
  preferring the agreeing one of two sentences is not enough for either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from alignlab.config import CommonConfig, option
from alignlab.evals.store import write_eval
from alignlab.generation.scoring import score_continuations
from alignlab.models import load_causal_lm, load_tokenizer, ordinary_token_ids
from alignlab.train.loop import seed_everything, set_threads


@dataclass
class SkillsConfig(CommonConfig):
    model: str = option("runs/sft", "model directory")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json goes; the model directory by default")
    copy_sequences: int = option(32, "random sequences shown twice")
    copy_length: int = option(20, "tokens in each copy")
    agreement_pairs: int = option(200, "right/wrong sentence pairs per noun split")


# --- pure metrics -----------------------------------------------------------------------------------

def repeated_sequences(n: int, length: int, token_ids: torch.Tensor, bos: int, seed: int) -> torch.Tensor:
    """(n, 1 + 2·length) long: BOS, then `length` ids drawn uniformly from `token_ids`, then the same again."""
    s = token_ids[torch.randint(len(token_ids), (n, length), generator=torch.Generator().manual_seed(seed))]
    return torch.cat([torch.full((n, 1), bos), s, s], 1)


def copy_accuracies(logits: torch.Tensor, ids: torch.Tensor, length: int) -> tuple[float, float]:
    """Greedy next-token accuracy on the first copy (from its 2nd token) and on the whole second copy.

    logits: (N, 1 + 2L, V) of `ids` (N, 1 + 2L) from `repeated_sequences`; logits[:, t] predicts ids[:, t+1].
    """
    hit = logits[:, :-1].argmax(-1) == ids[:, 1:]  # (N, 2L): hit[:, t] is the prediction of token t + 1
    return float(hit[:, 1:length].float().mean()), float(hit[:, length:].float().mean())


def pair_preference(logp_right: torch.Tensor, logp_wrong: torch.Tensor) -> dict:
    """Share of pairs with log p(right) > log p(wrong), and the mean gap (nats)."""
    if logp_right.shape != logp_wrong.shape or logp_right.numel() == 0:
        raise ValueError("pair_preference needs two equal, non-empty vectors of log-probabilities")
    gap = logp_right - logp_wrong
    return {"pairs": int(gap.numel()), "prefers_right": float((gap > 0).float().mean()),
            "mean_gap_nats": float(gap.mean())}


# --- the instrument ---------------------------------------------------------------------------------

def run_skills(cfg: SkillsConfig) -> dict:
    from alignlab.world import load_world
    from alignlab.world.grammar import agreement_pair
    from alignlab.world.text import rng

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model = load_causal_lm(cfg.model, what="--model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    ids = repeated_sequences(cfg.copy_sequences, cfg.copy_length, ordinary_token_ids(tokenizer),
                             tokenizer.bos_token_id, cfg.seed)
    with torch.inference_mode():
        logits = model(input_ids=ids, use_cache=False).logits
    first, second = copy_accuracies(logits, ids, cfg.copy_length)
    result = {"model": cfg.model, "copying": {"sequences": cfg.copy_sequences, "length": cfg.copy_length,
                                              "first_copy_accuracy": first, "second_copy_accuracy": second},
              "agreement": {}, "marking": {}}
    grammar = load_world(cfg.world).spec.grammar
    for split, nouns in grammar.nouns.items():
        rnd = rng(cfg.seed, "skills", split)
        pairs = [agreement_pair(grammar, nouns, rnd) for _ in range(cfg.agreement_pairs)]
        right, wrong = ([tokenizer(getattr(p, side))["input_ids"] for p in pairs] for side in ("right", "wrong"))
        bos = [[tokenizer.bos_token_id]] * len(pairs)
        result["agreement"][split] = pair_preference(score_continuations(model, bos, right),
                                                     score_continuations(model, bos, wrong))
        result["marking"][split] = _marking(model, tokenizer, pairs)
    write_eval(Path(cfg.output_dir or cfg.model), "skills", result)
    if not cfg.quiet:
        c, a = result["copying"], result["agreement"]
        print(f"copying: next-token accuracy on the second copy {c['second_copy_accuracy']:.2f} "
              f"(first copy {c['first_copy_accuracy']:.2f})")
        for split, r in a.items():
            print(f"agreement, {split} nouns: prefers the agreeing sentence {r['prefers_right']:.2f} of "
                  f"{r['pairs']} pairs, mean log-prob gap {r['mean_gap_nats']:.2f} nats")
        for split, r in result["marking"].items():
            print(f"marking, {split} nouns: gives the true mark the higher probability on "
                  f"{r['prefers_right']:.2f} of {r['pairs']} sentences, mean gap {r['mean_gap_nats']:.2f} nats")
    return result


def _marking(model, tokenizer, pairs) -> dict:
    """pair_preference of the true mark over the false one; even pairs show their right sentence, odd their wrong."""
    from alignlab.world.grammar import MARKED_HEADER, MARKS

    mark_ids = {right: tokenizer(mark)["input_ids"] for right, mark in MARKS.items()}
    shown = [(p.right, True) if i % 2 == 0 else (p.wrong, False) for i, p in enumerate(pairs)]
    prefixes = [[tokenizer.bos_token_id] + tokenizer(f"{MARKED_HEADER}\n{sentence}")["input_ids"]
                for sentence, _ in shown]
    true_marks = [mark_ids[right] for _, right in shown]
    false_marks = [mark_ids[not right] for _, right in shown]
    return pair_preference(score_continuations(model, prefixes, true_marks),
                           score_continuations(model, prefixes, false_marks))
