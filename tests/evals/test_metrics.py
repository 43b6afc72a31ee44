import math

import numpy as np
import pytest

from alignlab.evals.metrics import (
    brier_score,
    brier_truth,
    distinct_n,
    entropy,
    expected_calibration_error,
    expected_calibration_error_outcomes,
    mean_absolute_error,
    pearson,
    rank_average,
    reliability_table,
    sample_entropy,
    spearman,
    wilson_interval,
)


def test_mean_absolute_error_hand_value():
    assert mean_absolute_error([0.1, 0.5, 0.9], [0.2, 0.5, 0.6]) == pytest.approx(0.4 / 3)


def test_perfectly_calibrated_predictor_has_zero_ece():
    p = np.random.default_rng(0).uniform(size=500)
    assert expected_calibration_error(p, p) == 0.0


def test_ece_hand_value_and_bin_edges():
    # bin 1: mean q 0.1 vs mean p 0.1 -> 0; bin 9: 0.9 vs 1.0 -> gap 0.1 on 2 of 4 items
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0.2, 0.0, 1.0, 1.0]) == pytest.approx(0.05)
    # one bin only (n_bins = 1): |mean q - mean p| over everything
    assert expected_calibration_error([0.1, 0.9], [0.3, 0.3], n_bins=1) == pytest.approx(0.2)


def test_reliability_table_rows():
    rows = reliability_table([0.05, 0.15, 0.12, 1.0], [0.0, 1.0, 0.0, 1.0], n_bins=10)
    assert [(r["bin_lo"], r["count"]) for r in rows] == [(0.0, 1), (0.1, 2), (0.9, 1)]  # q = 1 -> last bin
    assert rows[1]["mean_pred"] == pytest.approx(0.135) and rows[1]["mean_target"] == pytest.approx(0.5)
    assert rows[1]["gap"] == pytest.approx(0.365)


def test_outcome_ece_hand_value_and_validation():
    # bin 7: q 0.7 x 4, outcomes 3/4 -> gap 0.05 over all items
    assert expected_calibration_error_outcomes([0.7] * 4, [1, 1, 1, 0]) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="0 or 1"):
        expected_calibration_error_outcomes([0.5], [0.5])


def test_probabilities_and_lengths_are_validated():
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error([1.2], [0.5])
    with pytest.raises(ValueError, match="length"):
        mean_absolute_error([0.1, 0.2], [0.1])


def test_brier_scores_and_their_decomposition():
    assert brier_score([0.8, 0.3], [1, 0]) == pytest.approx((0.04 + 0.09) / 2)
    assert brier_truth([0.8, 0.3], [0.6, 0.3]) == pytest.approx(0.02)
    # E_y[(q - y)^2] = (q - p)^2 + p (1 - p), checked by enumerating the outcome
    q, p = 0.8, 0.6
    expected_brier = p * brier_score([q], [1]) + (1 - p) * brier_score([q], [0])
    assert expected_brier == pytest.approx(brier_truth([q], [p]) + p * (1 - p))


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_pearson_hand_values():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_spearman_with_ties():
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)  # monotone, not linear
    assert rank_average([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_distinct_n_hand_values():
    assert distinct_n(["a b a b"], 1) == pytest.approx(0.5)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n([[1, 2], [1, 2]], 2) == pytest.approx(0.5)
    assert distinct_n(["a"], 2) == 0.0


def test_entropy_hand_values():
    assert entropy([0.25] * 4) == pytest.approx(math.log(4))
    assert entropy([1, 1, 1, 1], base=2) == pytest.approx(2.0)  # counts are normalised
    assert entropy([1.0, 0.0]) == 0.0
    assert sample_entropy("aabb", base=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive sum"):
        entropy([0.0, 0.0])
