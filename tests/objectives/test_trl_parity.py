"""Parity of alignlab.objectives with TRL 1.16 on random inputs (tolerance 1e-6).

TRL's losses live inside trainer methods. We call those methods unbound with a stand-in `self`
(a SimpleNamespace holding only the attributes the method reads) and a stand-in model that returns
fixed per-token log-probs, so no trainer, model or dataset is built. TRL is imported only here.
Where TRL 1.16 defines a variant differently, docs/papers.md says how and the variant is checked
against a hand-computed value in the module's own test file instead.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # CPO and ORPO live in trl.experimental

import types  # noqa: E402
from collections import defaultdict  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("trl")

from trl.experimental.cpo.cpo_trainer import CPOTrainer  # noqa: E402
from trl.experimental.orpo.orpo_trainer import ORPOTrainer  # noqa: E402
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402
from trl.trainer.kto_trainer import KTOTrainer  # noqa: E402
from trl.trainer.reward_trainer import RewardTrainer  # noqa: E402
from trl.trainer.utils import nanstd  # noqa: E402

from alignlab.objectives.preference import (  # noqa: E402
    LOSSES,
    PairedLogps,
    kto_kl_reference,
    kto_loss,
    orpo_log_odds_ratio,
    orpo_loss,
    preference_metrics,
    simpo_loss,
)
from alignlab.objectives.reward import bradley_terry_loss  # noqa: E402
from alignlab.objectives.rl import GRPO_AGGREGATIONS, grpo_advantages, grpo_per_token_loss  # noqa: E402

ATOL = 1e-6
F64 = torch.float64


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), atol=atol, rtol=0
    )


# --- stand-ins -----------------------------------------------------------------------------------

ACCELERATOR = SimpleNamespace(
    device="cpu",
    num_processes=1,
    sync_gradients=True,
    gather=lambda x: x,
    gather_for_metrics=lambda x: x,
    reduce=lambda x, reduction="sum": x,
)


def fake_lm(per_token_by_width: dict[int, torch.Tensor]):
    """A callable 'model' returning TRL's fused-LM-head outputs: per-token log-probs chosen by the width
    of `input_ids` (T -> (B, T - 1)), zero entropy and logits (only logged)."""

    def forward(**kwargs):
        lp = per_token_by_width[kwargs["input_ids"].shape[1]]
        z = torch.zeros_like(lp)
        return SimpleNamespace(log_probs=lp, entropy=z, mean_logits=z, is_top1=z.bool())

    return forward


def trainer_self(**attrs):
    base = dict(
        accelerator=ACCELERATOR,
        model=SimpleNamespace(training=True),
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    return SimpleNamespace(**{**base, **attrs})


def random_completions(gen, B, T, prompt_len=2):
    """(completion_mask (B, T), per-token log-probs (B, T - 1) zero off the shifted mask)."""
    lengths = torch.randint(1, T - prompt_len + 1, (B,), generator=gen)
    pos = torch.arange(T)
    mask = ((pos >= prompt_len) & (pos < prompt_len + lengths[:, None])).long()
    per_token = -torch.rand(B, T - 1, generator=gen, dtype=F64) * 3 * mask[:, 1:]
    return mask, per_token


# --- DPO family: DPOTrainer._compute_loss ----------------------------------------------------------

# alignlab loss_type -> (TRL loss_type list, loss_weights or None, our hyperparameters)
DPO_VARIANTS = {
    "sigmoid": (["sigmoid"], None, {}),
    "hinge": (["hinge"], None, {}),
    "ipo": (["ipo"], None, {}),
    "robust": (["robust"], None, {"label_smoothing": 0.2}),
    # TRL 1.16's "sigmoid" ignores label_smoothing; its "aot" on a single pair is exactly cDPO
    "cdpo": (["aot"], None, {"label_smoothing": 0.2}),
    # RPO = DPO + alpha * NLL: TRL 1.16 composes it as loss_type=["sigmoid", "sft"], weights [1, alpha]
    "rpo": (["sigmoid", "sft"], [1.0, 0.7], {"rpo_alpha": 0.7}),
}


def trl_dpo(loss_types, loss_weights, beta, label_smoothing, pairs):
    """TRL's loss and metrics for one batch; pairs = (mask_c, tok_c, mask_r, tok_r, ref_c, ref_r)."""
    mask_c, tok_c, mask_r, tok_r, ref_c, ref_r = pairs
    completion_mask = torch.cat([mask_c, mask_r])
    model = fake_lm({completion_mask.shape[1]: torch.cat([tok_c, tok_r])})
    ns = trainer_self(
        beta=beta,
        label_smoothing=label_smoothing,
        loss_types=loss_types,
        loss_weights=loss_weights or [1.0] * len(loss_types),
        precompute_ref_logps=True,
        ld_alpha=None,
        f_divergence_type="reverse_kl",
        use_weighting=False,
        args=SimpleNamespace(),
    )
    inputs = {
        "input_ids": torch.zeros_like(completion_mask),
        "attention_mask": torch.ones_like(completion_mask),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_c,
        "ref_rejected_logps": ref_r,
    }
    loss = DPOTrainer._compute_loss(ns, model, inputs, return_outputs=False)
    return loss, {k: v[-1] for k, v in ns._metrics["train"].items()}


@pytest.fixture(scope="module")
def dpo_batch():
    gen = torch.Generator().manual_seed(0)
    B, T = 8, 12
    mask_c, tok_c = random_completions(gen, B, T)
    mask_r, tok_r = random_completions(gen, B, T)
    ref_c = tok_c.sum(1) + torch.randn(B, generator=gen, dtype=F64)
    ref_r = tok_r.sum(1) + torch.randn(B, generator=gen, dtype=F64)
    return mask_c, tok_c, mask_r, tok_r, ref_c, ref_r


def ours(pairs):
    mask_c, tok_c, mask_r, tok_r, ref_c, ref_r = pairs
    return PairedLogps(tok_c.sum(1), tok_r.sum(1), ref_c, ref_r, mask_c.sum(1), mask_r.sum(1))


@pytest.mark.parametrize("name", list(DPO_VARIANTS))
def test_dpo_family_matches_trl_per_pair(name, dpo_batch):
    trl_types, weights, hparams = DPO_VARIANTS[name]
    beta = 0.3
    out = LOSSES[name](ours(dpo_batch), beta=beta, **hparams)
    for i in range(out.losses.numel()):  # one pair per call: per-example parity, and "aot" sorts a batch
        single = tuple(x[i : i + 1] for x in dpo_batch)
        trl_loss, _ = trl_dpo(trl_types, weights, beta, hparams.get("label_smoothing", 0.0), single)
        close(out.losses[i], trl_loss)


def test_dpo_batch_loss_and_metrics_match_trl(dpo_batch):
    b = ours(dpo_batch)
    out = LOSSES["sigmoid"](b, beta=0.1)
    trl_loss, trl_metrics = trl_dpo(["sigmoid"], None, 0.1, 0.0, dpo_batch)
    close(out.losses.mean(), trl_loss)
    for key, value in preference_metrics(out, b).items():
        close(value, trl_metrics[key])


# --- SimPO (CPOTrainer.cpo_loss) and ORPO (ORPOTrainer.odds_ratio_loss) -----------------------------


def test_simpo_matches_trl_cpo_simpo(dpo_batch):
    b = ours(dpo_batch)
    beta, gamma = 2.0, 0.5
    ns = trainer_self(alpha=0.0, beta=beta, simpo_gamma=gamma, label_smoothing=0.0, loss_type="simpo")
    # CPOTrainer feeds average log-probs for simpo (average_log_prob=True)
    trl_losses, trl_chosen, trl_rejected = CPOTrainer.cpo_loss(ns, b.chosen_mean(), b.rejected_mean())
    out = simpo_loss(b, beta=beta, simpo_gamma=gamma)
    close(out.losses, trl_losses)
    close(out.chosen_rewards, trl_chosen)
    close(out.rejected_rewards, trl_rejected)


def test_orpo_odds_ratio_matches_trl(dpo_batch):
    mask_c, tok_c, mask_r, tok_r, _, _ = dpo_batch
    b = PairedLogps(
        tok_c.sum(1).float(),
        tok_r.sum(1).float(),
        chosen_lengths=mask_c.sum(1),
        rejected_lengths=mask_r.sum(1),
    )
    beta = 0.1
    ns = trainer_self(beta=beta)
    trl_ratio_term, trl_chosen, trl_rejected, _, trl_log_odds = ORPOTrainer.odds_ratio_loss(
        ns, b.chosen_mean(), b.rejected_mean()
    )
    close(orpo_log_odds_ratio(b).mean(), trl_log_odds)
    out = orpo_loss(b, beta=beta)
    # TRL: loss = nll - mean(beta * log sigmoid(log odds)); our per-pair NLL is -avg chosen log-prob
    close(out.losses, -b.chosen_mean() - trl_ratio_term)
    close(out.chosen_rewards, trl_chosen)
    close(out.rejected_rewards, trl_rejected)


# --- KTO: KTOTrainer._compute_loss ---------------------------------------------------------------


@pytest.mark.parametrize("kl_shift", [0.7, -5.0])  # a positive KL estimate, and one clamped to 0
def test_kto_matches_trl(kl_shift):
    gen = torch.Generator().manual_seed(1)
    B, T, T_kl = 8, 10, 11
    mask, tok = random_completions(gen, B, T)
    kl_mask, kl_tok = random_completions(gen, B, T_kl)
    label = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    ref_logps = tok.sum(1) + torch.randn(B, generator=gen, dtype=F64)
    ref_kl_logps = kl_tok.sum(1) - kl_shift + 0.1 * torch.randn(B, generator=gen, dtype=F64)
    beta, w_d, w_u = 0.2, 1.3, 0.8
    ns = trainer_self(
        beta=beta,
        loss_type="kto",
        desirable_weight=w_d,
        undesirable_weight=w_u,
        calculate_KL=True,
        precompute_ref_logps=True,
    )
    ns._compute_kl_logps = types.MethodType(KTOTrainer._compute_kl_logps, ns)
    inputs = {
        "input_ids": torch.zeros(B, T, dtype=torch.long),
        "attention_mask": torch.ones(B, T, dtype=torch.long),
        "completion_mask": mask,
        "KL_input_ids": torch.zeros(B, T_kl, dtype=torch.long),
        "KL_attention_mask": torch.ones(B, T_kl, dtype=torch.long),
        "KL_completion_mask": kl_mask,
        "label": label,
        "ref_logps": ref_logps,
        "ref_KL_logps": ref_kl_logps,
    }
    trl_loss = KTOTrainer._compute_loss(ns, fake_lm({T: tok, T_kl: kl_tok}), inputs, return_outputs=False)

    z0 = kto_kl_reference(kl_tok.sum(1), ref_kl_logps)
    out = kto_loss(tok.sum(1), ref_logps, label, z0, beta=beta, desirable_weight=w_d, undesirable_weight=w_u)
    close(out.losses.mean(), trl_loss)
    close(z0, ns._metrics["train"]["kl"][-1])
    close(out.rewards[label].mean(), ns._metrics["train"]["rewards/chosen"][-1])


# --- Bradley-Terry: RewardTrainer.compute_loss -----------------------------------------------------


def test_bradley_terry_matches_trl_reward_trainer():
    gen = torch.Generator().manual_seed(2)
    B = 16
    rewards = torch.randn(2 * B, 1, generator=gen, dtype=F64) * 2
    margin = torch.rand(B, generator=gen, dtype=F64)
    ns = trainer_self(args=SimpleNamespace(center_rewards_coefficient=0.01))
    inputs = {
        "input_ids": torch.zeros(2 * B, 3, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, 3, dtype=torch.long),
        "margin": margin,
    }
    trl_loss = RewardTrainer.compute_loss(ns, lambda **kw: SimpleNamespace(logits=rewards), inputs)
    losses, metrics = bradley_terry_loss(
        rewards[:B, 0], rewards[B:, 0], margin=margin, center_rewards_coefficient=0.01
    )
    close(losses.mean(), trl_loss)
    close(metrics["accuracy"], ns._metrics["train"]["accuracy"][-1])
    close(metrics["margin"], ns._metrics["train"]["margin"][-1])


# --- GRPO: GRPOTrainer._compute_loss ---------------------------------------------------------------


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_grpo_loss_matches_trl(loss_type):
    gen = torch.Generator().manual_seed(3)
    B, T, P = 6, 9, 4
    mask, _ = random_completions(gen, B, T, prompt_len=0)
    logps = -torch.rand(B, T, generator=gen, dtype=F64) * 2
    old = logps + 0.3 * torch.randn(B, T, generator=gen, dtype=F64)  # off-policy enough to clip
    ref = logps + 0.2 * torch.randn(B, T, generator=gen, dtype=F64)
    rewards = torch.randn(B, generator=gen, dtype=F64)
    advantages = grpo_advantages(rewards, group_size=3)
    num_items = mask.sum() + 5  # as if other micro-batches of the step held 5 more tokens
    eps_low, eps_high, beta, max_len = 0.2, 0.28, 0.04, 12

    ns = trainer_self(
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        max_completion_length=max_len,
        current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
    )
    inputs = {
        "prompt_ids": torch.zeros(B, P, dtype=torch.long),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": num_items,
    }
    trl_loss = GRPOTrainer._compute_loss(ns, None, inputs)

    per_token, metrics = grpo_per_token_loss(
        logps, old, advantages, mask, epsilon_low=eps_low, epsilon_high=eps_high, beta=beta, ref_logps=ref
    )
    loss = GRPO_AGGREGATIONS[loss_type](
        per_token, mask, num_items_in_batch=num_items, max_completion_length=max_len
    )
    close(loss, trl_loss)
    logged = ns._metrics["train"]
    assert logged["clip_ratio/region_mean"][-1] > 0  # the comparison exercised clipping
    for key in ("kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
        close(metrics[key], logged[key][-1])


def test_grpo_advantages_match_trl_formula():
    rewards = torch.randn(12, generator=torch.Generator().manual_seed(4), dtype=F64)
    grouped = rewards.view(-1, 4)
    expected = (grouped - grouped.mean(1, keepdim=True)) / (nanstd(grouped, dim=1).unsqueeze(1) + 1e-4)
    close(grpo_advantages(rewards, group_size=4), expected.reshape(-1))
