"""Pure loss and estimator functions on tensors.

Every function here takes tensors and returns tensors (per-example or per-token losses) plus detached
metrics; none of them owns a model, an optimiser or a config. Stages pick a variant through the small
dicts the modules export (`preference.LOSSES`, `rl.GRPO_AGGREGATIONS`, `kl.KL_ESTIMATORS`) instead of
`if loss_type == ...` chains. The papers each function follows, and what each leaves out, are listed
in docs/papers.md.

Modules:
    lm          token and sequence log-probs, token-level cross-entropy
    preference  DPO family (sigmoid, IPO, hinge, robust, conservative), KTO, ORPO, SimPO, RPO
    reward      Bradley-Terry reward-model loss, Bayes-optimal accuracy of a BT rater
    kl          k1/k2/k3 KL estimators, exact categorical KL
    rl          masked statistics, GAE, PPO policy/value losses, GRPO, RLOO, KL-penalised rewards
    optimum     the exact KL-regularised optimum and best-of-n over an enumerable answer set, and the
                unbiased best-of-n estimator from samples
    online      adaptive KL coefficient, token entropy, explained variance (for the online RL stages)
    judge       AI-feedback preferences from a judge's (A)/(B) log-probs, position bias cancelled
"""
