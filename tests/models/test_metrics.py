"""Metrics against sklearn and hand-worked examples."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from models import metrics as M


def test_micro_f1_hand_worked():
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0]])
    p = np.array([[0.9, 0.6, 0.4, 0.1], [0.2, 0.7, 0.3, 0.55]])
    # at 0.5: predicted (0,0),(0,1),(1,1),(1,3): TP 2, FP 2, FN 1 -> 4 / 7
    assert M.micro_f1(p, y, 0.5) == pytest.approx(4 / 7)
    # at 0.35: adds (0,2) (TP): TP 3, FP 2, FN 0 -> 6/8
    assert M.micro_f1(p, y, 0.35) == pytest.approx(6 / 8)


def test_micro_f1_matches_sklearn_and_logits():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 256)) < 0.1).astype(np.uint8)
    z = rng.normal(size=(200, 256)) + 2 * y
    for thr in (0.2, 0.5, 0.8):
        ref = f1_score(y, (1 / (1 + np.exp(-z)) >= thr).astype(int), average="micro")
        assert M.micro_f1(z, y, thr) == pytest.approx(ref)
        assert M.micro_f1(torch.tensor(z), y, thr, logits=True) == pytest.approx(ref)
    curve = M.f1_curve(z, y)
    thr, best = M.best_threshold(z, y)
    assert best == pytest.approx(curve.max()) and thr in M.THRESHOLDS


def test_floor_is_f1_of_all_ones():
    rng = np.random.default_rng(1)
    y = (rng.random((100, 256)) < 0.07).astype(np.uint8)
    ref = f1_score(y, np.ones_like(y), average="micro")
    assert M.all_ones_floor(y) == pytest.approx(ref)
    p = y.mean()
    assert M.all_ones_floor(y) == pytest.approx(2 * p / (1 + p))


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        M.micro_f1(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="threshold"):
        M.micro_f1(np.zeros((2, 3)), np.zeros((2, 3)), 1.5)


def test_frequency_baseline_hand_worked():
    y_train = np.array([[1, 1, 0], [1, 0, 0]])  # bit frequencies 1, 0.5, 0
    y_val = np.array([[1, 0, 0], [1, 0, 0]])  # best: predict bit 0 only -> lowest thr above 0.5
    y_test = np.array([[1, 1, 0]])  # predicts [1, 0, 0]: TP 1, FN 1 -> 2/3
    r = M.frequency_baseline(y_train, y_val, y_test)
    assert r["threshold"] == pytest.approx(0.55)
    assert r["f1"] == pytest.approx(2 / 3)


def test_summary_reports_test_optimal_f1_beside_the_validation_threshold():
    """The paper's protocol (threshold best on test) is reported beside ours, never instead."""
    rng = np.random.default_rng(4)
    y_val, y_te = rng.random((50, 8)) < 0.3, rng.random((60, 8)) < 0.3
    lv, lt = rng.normal(size=(50, 8)), rng.normal(size=(60, 8)) + y_te
    s = M.summarize(lv, y_val, lt, y_te)
    brute = max(M.micro_f1(lt, y_te, t, logits=True) for t in M.THRESHOLDS)
    assert s["f1_test_opt"] == pytest.approx(brute) and s["f1_test_opt"] >= s["f1"]
    assert s["f1"] == pytest.approx(M.micro_f1(lt, y_te, s["threshold"], logits=True))
