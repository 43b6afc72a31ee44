"""Skills instrument: repeated sequences, copy accuracy and pair preference by hand; a tiny run end to end."""

import json

import pytest
import torch

from alignlab.cli import main
from alignlab.evals.skills import copy_accuracies, pair_preference, repeated_sequences


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_repeated_sequences_show_the_same_tokens_twice_after_bos():
    ids = repeated_sequences(3, 5, torch.arange(10, 20), bos=1, seed=0)
    assert ids.shape == (3, 11) and (ids[:, 0] == 1).all()
    assert torch.equal(ids[:, 1:6], ids[:, 6:]) and ((ids[:, 1:] >= 10) & (ids[:, 1:] < 20)).all()


def test_copy_accuracies_of_a_perfect_copier_and_of_a_model_that_cannot_copy():
    length, vocab = 4, 30
    ids = repeated_sequences(2, length, torch.arange(10, 30), bos=1, seed=0)
    perfect = torch.nn.functional.one_hot(torch.cat([ids[:, 1:], ids[:, :1]], 1), vocab).float()
    assert copy_accuracies(perfect, ids, length) == (1.0, 1.0)
    # Knows the second copy only: predicts token t + 1 correctly from position `length` on.
    half = perfect.clone()
    half[:, :length] = 0.0
    half[:, :length, 0] = 1.0  # always token 0, never in the sequences
    assert copy_accuracies(half, ids, length) == (0.0, 1.0)


def test_pair_preference_by_hand():
    result = pair_preference(torch.tensor([-5.0, -3.0, -4.0]), torch.tensor([-6.0, -2.0, -7.0]))
    assert result == {"pairs": 3, "prefers_right": pytest.approx(2 / 3), "mean_gap_nats": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="non-empty"):
        pair_preference(torch.tensor([]), torch.tensor([]))


def test_eval_skills_end_to_end(base_dir, tmp_path):
    argv = ["eval", "skills", "--model", str(base_dir), "--output_dir", str(tmp_path), "--copy_sequences", "4",
            "--copy_length", "6", "--agreement_pairs", "5", "--quiet", "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["skills"]
    assert 0 <= result["copying"]["second_copy_accuracy"] <= 1 and result["copying"]["length"] == 6
    assert set(result["agreement"]) == {"train", "heldout"}
    assert all(r["pairs"] == 5 and 0 <= r["prefers_right"] <= 1 for r in result["agreement"].values())
    assert set(result["marking"]) == {"train", "heldout"}
    assert all(r["pairs"] == 5 and 0 <= r["prefers_right"] <= 1 for r in result["marking"].values())
