"""The rollout of the online stages: sample completions, score them, and compute per-token log-probs.

A rollout is R rows (prompt + sampled completion). `roll_out` samples one completion per row with the
KV-cache sampler (each stopping at a stop token or `max_new_tokens`) and scores it with a
`online.Rewarder`. Rows are then kept as right-padded prompt+completion sequences (causal attention never
looks right, so no mask or position ids are needed); `completion_logps` gathers the hidden state that
predicts each completion token and applies the LM head only there, at the sampling temperature (the policy
is softmax(logits / T)), so one function gives the policy's, the old policy's and the reference's
log-probs, computed identically.

Reference: with LoRA, the policy with its adapter disabled (no second copy); otherwise a frozen copy of
`ref_model_name_or_path` (default: the starting model).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignlab.generation import SamplingConfig, sample
from alignlab.io import atomic_write_text
from alignlab.models import load_causal_lm, stop_token_ids
from alignlab.objectives.lm import label_logps
from alignlab.objectives.online import token_entropy
from alignlab.train.lm_loss import hidden_states, unwrap_causal_lm
from alignlab.train.online import OnlineConfig, PromptSet, Rewarder

# --- per-token log-probs ---------------------------------------------------------------------------

@dataclass
class CompletionBatch:
    """Right-padded rows and where their completion tokens sit.

    input_ids (B, L) long; positions (B, T) long: the position whose hidden state predicts completion
    token t; tokens (B, T) long; mask (B, T) float, 1 on completion tokens.
    """

    input_ids: Tensor
    positions: Tensor
    tokens: Tensor
    mask: Tensor

    def to(self, device: torch.device) -> CompletionBatch:
        return CompletionBatch(*(t.to(device) for t in (self.input_ids, self.positions, self.tokens, self.mask)))


def completion_batch(prompts: list[list[int]], tokens: Tensor, lengths: Tensor, pad_id: int) -> CompletionBatch:
    """Rows prompt_b + tokens[b, :lengths[b]]; tokens (B, T) as the sampler returns them."""
    b, t = tokens.shape
    prompt_len = torch.tensor([len(p) for p in prompts])
    width = int((prompt_len + lengths).max())
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    for row, p in enumerate(prompts):
        n = int(lengths[row])
        input_ids[row, : len(p) + n] = torch.cat([torch.tensor(p, dtype=torch.long), tokens[row, :n]])
    mask = (torch.arange(t)[None] < lengths[:, None]).float()
    positions = (prompt_len[:, None] - 1 + torch.arange(t)[None]).clamp(max=width - 1)
    return CompletionBatch(input_ids, positions, tokens, mask)


def completion_hidden(model, batch: CompletionBatch) -> Tensor:
    """(B, T, H) hidden states that predict each completion token."""
    hidden = hidden_states(model, batch.input_ids)  # (B, L, H)
    return hidden.gather(1, batch.positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))


def completion_logps(model, hidden: Tensor, batch: CompletionBatch, temperature: float) -> tuple[Tensor, Tensor]:
    """log pi(token_t) (B, T) with grad, and the policy's entropy per token (B, T) detached; 0 where masked."""
    logits = unwrap_causal_lm(model).get_output_embeddings()(hidden).float() / temperature  # (B, T, V)
    logps = label_logps(logits, batch.tokens)
    with torch.no_grad():
        entropy = token_entropy(logits) * batch.mask
    return logps * batch.mask, entropy


class Reference:
    """Per-token reference log-probs: a frozen loaded copy, or the LoRA policy with its adapter disabled."""

    def __init__(self, cfg: OnlineConfig, policy, device: torch.device):
        self.policy, self.model = policy, None
        if not cfg.use_peft or cfg.ref_model_name_or_path:
            path = cfg.ref_model_name_or_path or cfg.model_name_or_path
            self.model = load_causal_lm(path, what="--ref_model_name_or_path").to(device).eval()
            self.model.requires_grad_(False)

    @torch.no_grad()
    def logps(self, batch: CompletionBatch, temperature: float) -> Tensor:
        with self._model() as ref:
            return completion_logps(ref, completion_hidden(ref, batch), batch, temperature)[0]

    @contextlib.contextmanager
    def _model(self):
        if self.model is not None:
            yield self.model
            return
        # peft's disable_adapter() bypasses every LoRA layer: exactly the starting weights, no second copy.
        with self.policy.disable_adapter():
            yield self.policy


# --- the rollout ---------------------------------------------------------------------------------

@dataclass
class Rollout:
    """R sampled rows; tensors are on the CPU, (R, T) ones 0 after each completion."""

    prompt_index: list[int]
    batch: CompletionBatch
    finished: Tensor  # (R,) bool: ended on a stop token
    texts: list[str]
    scores: Tensor  # (R,) what trains (missing_eos_penalty applied)
    gold: Tensor | None  # (R,) the rater's taste, on world probes

    def rows(self, idx: Tensor) -> CompletionBatch:
        b = self.batch
        cut = int(b.mask[idx].sum(1).max())  # drop columns that are padding for every selected row
        return CompletionBatch(b.input_ids[idx], b.positions[idx, :cut], b.tokens[idx, :cut], b.mask[idx, :cut])


def rollout_generator(seed: int, rollout: int) -> torch.Generator:
    """The sampling stream of rollout r: a function of (seed, r) only, so a resumed run samples the same."""
    return torch.Generator().manual_seed(seed * 1_000_003 + rollout)


def roll_out(cfg: OnlineConfig, policy, tokenizer, prompts: PromptSet, index: list[int], rewarder: Rewarder,
             generator: torch.Generator) -> Rollout:
    """Sample one completion per entry of `index` (repeat an entry for a group) and score it."""
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              stop_token_ids=stop_token_ids(tokenizer))
    rows = [prompts.ids[i] for i in index]
    # Sample at the training dtype (under bf16 the policy being trained is the bf16-autocast one); evaluations
    # that roll out (best-of-n) have no training dtype and sample in fp32.
    dtype = torch.bfloat16 if getattr(cfg, "bf16", False) else torch.float32
    out = sample(policy, rows, sampling, tokenizer.pad_token_id, generator=generator, dtype=dtype)
    completions = [out.tokens[b, : out.lengths[b]].tolist() for b in range(len(rows))]
    # The text a rater reads stops before the stop token, as `generate_text` returns it.
    texts = [tokenizer.decode(c[: len(c) - int(f)], skip_special_tokens=False)
             for c, f in zip(completions, out.finished.tolist(), strict=True)]
    scores, gold = rewarder(prompts, index, completions, texts)
    if cfg.missing_eos_penalty is not None:
        scores = scores - cfg.missing_eos_penalty * (~out.finished).float()
    batch = completion_batch(rows, out.tokens, out.lengths, tokenizer.pad_token_id)
    return Rollout(list(index), batch, out.finished, texts, scores.float(), gold)


def rollout_metrics(r: Rollout) -> dict[str, float]:
    """Reward, gold and length statistics of one rollout (the stage adds its own)."""
    out = {"reward": float(r.scores.mean()), "reward_std": float(r.scores.std()) if len(r.scores) > 1 else 0.0,
           "completion_length": float(r.batch.mask.sum(1).mean()), "eos_rate": float(r.finished.float().mean())}
    if r.gold is not None:
        out["gold"] = float(r.gold.mean())
    return out


def minibatches(n_rows: int, num_mini_batches: int, seed: int) -> list[Tensor]:
    """A seeded permutation of the rows cut into num_mini_batches equal parts (n_rows divides evenly)."""
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed))
    return list(perm.view(num_mini_batches, -1))


def log_completions(run_path: Path, step: int, prompts: PromptSet, r: Rollout, n: int) -> None:
    """Append the first n completions of a rollout to completions.jsonl (dropping rows of a rerun step)."""
    path = run_path / "completions.jsonl"
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] < step] \
        if path.is_file() else []
    for i in range(min(n, len(r.texts))):
        row = {"step": step, "prompt": prompts.texts[r.prompt_index[i]], "completion": r.texts[i],
               "score": float(r.scores[i])}
        if r.gold is not None:
            row["gold"] = float(r.gold[i])
        kept.append(json.dumps(row))
    atomic_write_text(path, "".join(line + "\n" for line in kept))

