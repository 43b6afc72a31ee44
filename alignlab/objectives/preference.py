"""Offline preference objectives: the DPO family, SimPO, ORPO, RPO (paired) and KTO (unpaired).

Every paired loss has the same shape: `loss(batch: PairedLogps, *, beta, <its own hyperparameters>)
-> PreferenceLoss(losses (B,), chosen_rewards (B,), rejected_rewards (B,))`. The stage picks one with
`LOSSES[loss_type]` and passes the extra hyperparameters named in `LOSS_HPARAMS[loss_type]` (the names
are TRL's config field names, so `getattr(config, name)` works):

    fn = LOSSES[cfg.loss_type]
    out = fn(batch, beta=cfg.beta, **{k: getattr(cfg, k) for k in LOSS_HPARAMS[cfg.loss_type]})
    out.losses.mean().backward()

Log-probs in `PairedLogps` are *summed* over completion tokens; functions that need the per-token
average (IPO as TRL computes it, SimPO, ORPO, the NLL of RPO/ORPO) divide by the lengths themselves.
Rewards are detached and follow TRL's logging: beta * log-ratio for reference-based losses, beta *
average log-prob for the reference-free ones. Differences from the papers and from TRL 1.16 are
listed in docs/papers.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class PairedLogps:
    """Summed completion log-probs for B (chosen, rejected) pairs; every field is (B,).

    `ref_*` may be None for reference-free losses (SimPO, ORPO); `*_lengths` (completion token counts)
    may be None for losses that do not normalise by length.
    """

    policy_chosen: Tensor
    policy_rejected: Tensor
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None

    def need(self, *names: str) -> tuple[Tensor, ...]:
        """The named fields, or a ValueError naming the first one that is missing."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"PairedLogps.{missing[0]} is required by this loss but is None")
        return tuple(getattr(self, n) for n in names)

    def chosen_mean(self) -> Tensor:
        """(B,) per-token average log-prob of the chosen completions."""
        lp, n = self.need("policy_chosen", "chosen_lengths")
        return lp / n.clamp(min=1)

    def rejected_mean(self) -> Tensor:
        lp, n = self.need("policy_rejected", "rejected_lengths")
        return lp / n.clamp(min=1)


class PreferenceLoss(NamedTuple):
    losses: Tensor  # (B,) per-pair loss; the training loss is losses.mean()
    chosen_rewards: Tensor  # (B,) detached implicit reward of the chosen completion
    rejected_rewards: Tensor  # (B,) detached implicit reward of the rejected completion


def _logratios(b: PairedLogps) -> tuple[Tensor, Tensor]:
    pc, pr, rc, rr = b.need("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")
    return pc - rc, pr - rr


def _dpo_rewards(b: PairedLogps, beta: float) -> tuple[Tensor, Tensor]:
    chosen, rejected = _logratios(b)
    return beta * chosen.detach(), beta * rejected.detach()


def _h(b: PairedLogps) -> Tensor:
    """(B,) DPO's h = log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l)."""
    chosen, rejected = _logratios(b)
    return chosen - rejected


def dpo_sigmoid_loss(b: PairedLogps, *, beta: float) -> PreferenceLoss:
    """DPO: -log sigmoid(beta * h). Rafailov et al. 2023, eq. 7."""
    return PreferenceLoss(-F.logsigmoid(beta * _h(b)), *_dpo_rewards(b, beta))


def cdpo_loss(b: PairedLogps, *, beta: float, label_smoothing: float) -> PreferenceLoss:
    """Conservative DPO: the DPO loss against labels flipped with probability eps (Mitchell 2023).

    -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h): cross-entropy with a smoothed target.
    """
    z = beta * _h(b)
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return PreferenceLoss(losses, *_dpo_rewards(b, beta))


def robust_dpo_loss(b: PairedLogps, *, beta: float, label_smoothing: float) -> PreferenceLoss:
    """Robust DPO (rDPO): the loss de-biased for labels flipped with rate eps (Chowdhury et al. 2024).

    [(1 - eps) l(y_w, y_l) - eps l(y_l, y_w)] / (1 - 2 eps) with l the DPO loss; unbiased for the
    clean-label loss, unlike cDPO. Requires 0 <= eps < 0.5.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    eps, z = label_smoothing, beta * _h(b)
    as_labelled, as_flipped = -F.logsigmoid(z), -F.logsigmoid(-z)
    losses = ((1 - eps) * as_labelled - eps * as_flipped) / (1 - 2 * eps)
    return PreferenceLoss(losses, *_dpo_rewards(b, beta))


def hinge_loss(b: PairedLogps, *, beta: float) -> PreferenceLoss:
    """Hinge / SLiC: relu(1 - beta h) (Zhao et al. 2023, calibration loss with margin 1/beta).

    As in TRL, the margin is applied to reference-normalised log-ratios, not raw log-probs.
    """
    return PreferenceLoss(torch.relu(1 - beta * _h(b)), *_dpo_rewards(b, beta))


def ipo_loss(b: PairedLogps, *, beta: float) -> PreferenceLoss:
    """IPO: (h_avg - 1/(2 beta))^2, Azar et al. 2023 eq. 17 with tau = beta.

    h_avg uses per-token *average* log-ratios (TRL's form, which the IPO authors confirmed matches the
    paper's experiments); so IPO needs `chosen_lengths` and `rejected_lengths`. At h = 0 the loss is
    1/(4 beta^2).
    """
    chosen, rejected = _logratios(b)
    lc, lr = b.need("chosen_lengths", "rejected_lengths")
    h_avg = chosen / lc.clamp(min=1) - rejected / lr.clamp(min=1)
    return PreferenceLoss((h_avg - 1 / (2 * beta)) ** 2, *_dpo_rewards(b, beta))


def rpo_loss(b: PairedLogps, *, beta: float, rpo_alpha: float) -> PreferenceLoss:
    """RPO: DPO plus rpo_alpha * the length-normalised NLL of the chosen completion (Pang et al. 2024).

    The paper's L_DPO+NLL with alpha = 1; following TRL's `rpo_alpha`, the weight sits on the NLL term.
    """
    losses = -F.logsigmoid(beta * _h(b)) - rpo_alpha * b.chosen_mean()
    return PreferenceLoss(losses, *_dpo_rewards(b, beta))


def simpo_loss(b: PairedLogps, *, beta: float, simpo_gamma: float) -> PreferenceLoss:
    """SimPO: -log sigmoid(beta (avg_w - avg_l) - gamma), reference-free. Meng et al. 2024, eq. 6.

    avg_* are per-token average policy log-probs; gamma is the target reward margin (TRL's
    `simpo_gamma`; the paper tunes gamma/beta). Rewards are beta * avg log-prob.
    """
    avg_w, avg_l = b.chosen_mean(), b.rejected_mean()
    losses = -F.logsigmoid(beta * (avg_w - avg_l) - simpo_gamma)
    return PreferenceLoss(losses, beta * avg_w.detach(), beta * avg_l.detach())


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -log 2 (Maechler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_log_odds_ratio(b: PairedLogps) -> Tensor:
    """(B,) log [odds(y_w) / odds(y_l)] with odds(y) = P(y) / (1 - P(y)), P the per-token average
    probability exp(avg log-prob). Hong et al. 2024, eqs. 4-5."""
    avg_w, avg_l = b.chosen_mean(), b.rejected_mean()
    return (avg_w - avg_l) - (log1mexp(avg_w) - log1mexp(avg_l))


def orpo_loss(b: PairedLogps, *, beta: float) -> PreferenceLoss:
    """ORPO: NLL(y_w) - beta log sigmoid(log odds ratio). Hong et al. 2024, eqs. 6-7 (lambda = beta).

    Reference-free. The NLL is the per-example token average (TRL averages over all chosen tokens of
    the batch instead; the two agree when lengths are equal). Rewards are beta * avg log-prob.
    """
    ratio = F.logsigmoid(orpo_log_odds_ratio(b))
    losses = -b.chosen_mean() - beta * ratio
    return PreferenceLoss(losses, beta * b.chosen_mean().detach(), beta * b.rejected_mean().detach())


LOSSES = {
    "sigmoid": dpo_sigmoid_loss,
    "cdpo": cdpo_loss,
    "robust": robust_dpo_loss,
    "hinge": hinge_loss,
    "ipo": ipo_loss,
    "rpo": rpo_loss,
    "simpo": simpo_loss,
    "orpo": orpo_loss,
}

# Hyperparameters each loss takes besides `beta`, by TRL config field name.
LOSS_HPARAMS: dict[str, tuple[str, ...]] = {
    "sigmoid": (),
    "cdpo": ("label_smoothing",),
    "robust": ("label_smoothing",),
    "hinge": (),
    "ipo": (),
    "rpo": ("rpo_alpha",),
    "simpo": ("simpo_gamma",),
    "orpo": (),
}

# Losses that never read the reference model: the stage can skip computing reference log-probs.
REFERENCE_FREE = frozenset({"simpo", "orpo"})


def preference_metrics(out: PreferenceLoss, b: PairedLogps) -> dict[str, float]:
    """Batch means under TRL's metric names (DPOTrainer logs exactly these keys)."""
    chosen, rejected = out.chosen_rewards, out.rejected_rewards
    return {
        "rewards/chosen": chosen.mean().item(),
        "rewards/rejected": rejected.mean().item(),
        "rewards/accuracies": (chosen > rejected).float().mean().item(),
        "rewards/margins": (chosen - rejected).mean().item(),
        "logps/chosen": b.policy_chosen.detach().mean().item(),
        "logps/rejected": b.policy_rejected.detach().mean().item(),
    }


# --- KTO: unpaired ---------------------------------------------------------------------------------


class UnpairedLoss(NamedTuple):
    losses: Tensor  # (B,) per-example loss, weights already applied
    rewards: Tensor  # (B,) detached beta * log-ratio
    kl: Tensor  # () the reference point z0 that was used


def kto_kl_reference(policy_kl_logps: Tensor, ref_kl_logps: Tensor) -> Tensor:
    """KTO's reference point z0: mean log-ratio on mismatched (x, y') pairs, clamped at 0, detached.

    Args: (B,) summed log-probs of completions paired with the wrong prompts, under policy and reference.
    Returns: () scalar. Ethayarajh et al. 2024 estimate KL(pi || pi_ref) this way and pass no gradient
    through it; under data parallelism average it over ranks before use.
    """
    return (policy_kl_logps - ref_kl_logps).detach().mean().clamp(min=0)


def kto_loss(
    policy_logps: Tensor,
    ref_logps: Tensor,
    desirable: Tensor,
    kl: Tensor,
    *,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> UnpairedLoss:
    """KTO. Ethayarajh et al. 2024, eq. 7.

    desirable:   lambda_D (1 - sigmoid(beta (r - z0)))
    undesirable: lambda_U (1 - sigmoid(beta (z0 - r)))     with r = log pi(y|x) - log pi_ref(y|x)

    Args:
        policy_logps, ref_logps: (B,) summed completion log-probs.
        desirable: (B,) bool label.
        kl: () reference point z0 (see `kto_kl_reference`).
    Returns losses in input order; their mean equals TRL's KTOTrainer loss.
    """
    r = policy_logps - ref_logps
    sign = torch.where(desirable, 1.0, -1.0).to(r.dtype)
    weight = torch.where(desirable, desirable_weight, undesirable_weight).to(r.dtype)
    losses = weight * (1 - torch.sigmoid(beta * sign * (r - kl)))
    return UnpairedLoss(losses, beta * r.detach(), kl.detach())


def kto_metrics(out: UnpairedLoss, policy_logps: Tensor, desirable: Tensor) -> dict[str, float]:
    """TRL KTOTrainer's metric names; a side with no examples in the batch is left out."""
    metrics = {"kl": out.kl.item()}
    for name, sel in (("chosen", desirable), ("rejected", ~desirable)):
        if sel.any():
            metrics[f"rewards/{name}"] = out.rewards[sel].mean().item()
            metrics[f"logps/{name}"] = policy_logps.detach()[sel].mean().item()
    if "rewards/chosen" in metrics and "rewards/rejected" in metrics:
        metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
    return metrics
