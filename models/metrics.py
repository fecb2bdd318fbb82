"""Micro-F1 of multi-label bitmap predictions, the validation-chosen threshold, and the floor.

Micro-F1 pools true positives, false positives and false negatives over every (row, bit) pair:
``F1 = 2·TP / (2·TP + FP + FN)``. The all-ones floor is the F1 of predicting every bit set:
precision p (the label density), recall 1, so ``F1 = 2p / (1 + p)``. Every results table shows it
next to the scores: a model below it is worse than a trivial predictor.
"""

from __future__ import annotations

import sys

import numpy as np

#: thresholds searched on the validation split
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


class MetricsError(ValueError):
    """Mismatched shapes or an invalid threshold."""


def to_probs(logits_or_probs, logits: bool | None = None) -> np.ndarray:
    """Probabilities as float64 numpy. ``logits=None`` decides by range: values outside [0, 1]
    mean logits (pass ``logits=True`` when logits may all lie inside [0, 1])."""
    torch = sys.modules.get("torch")  # a tensor means torch is loaded: no need to import it here
    if torch is not None and isinstance(logits_or_probs, torch.Tensor):
        logits_or_probs = logits_or_probs.detach().cpu().numpy()
    z = np.asarray(logits_or_probs, np.float64)
    if logits is None:
        logits = bool(z.size) and (z.min() < 0 or z.max() > 1)
    return 1.0 / (1.0 + np.exp(-z)) if logits else z


def _counts(p: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN per threshold (vectorized via a sorted scan)."""
    pf, yf = p.ravel(), y.ravel().astype(bool)
    pos = yf.sum()
    # predictions are p >= threshold: count positives / negatives with p >= thr
    pp, pn = np.sort(pf[yf]), np.sort(pf[~yf])
    tp = pp.size - np.searchsorted(pp, thresholds, side="left")
    fp = pn.size - np.searchsorted(pn, thresholds, side="left")
    return tp.astype(np.int64), fp.astype(np.int64), (pos - tp).astype(np.int64)


def micro_f1(logits_or_probs, labels, threshold: float = 0.5, logits: bool | None = None) -> float:
    """Micro-F1 of ``prob >= threshold`` against 0/1 ``labels`` (same shape)."""
    p = to_probs(logits_or_probs, logits)
    y = np.asarray(labels)
    if p.shape != y.shape:
        raise MetricsError(f"predictions {p.shape} and labels {y.shape} differ in shape")
    if not 0.0 <= threshold <= 1.0:
        raise MetricsError(f"threshold {threshold} must lie in [0, 1]")
    tp, fp, fn = (c[0] for c in _counts(p, y, np.array([threshold])))
    den = 2 * tp + fp + fn
    return float(2 * tp / den) if den else 0.0


def f1_curve(logits_or_probs, labels, thresholds: np.ndarray = THRESHOLDS,
             logits: bool | None = None) -> np.ndarray:
    """Micro-F1 at each threshold."""
    p = to_probs(logits_or_probs, logits)
    y = np.asarray(labels)
    if p.shape != y.shape:
        raise MetricsError(f"predictions {p.shape} and labels {y.shape} differ in shape")
    tp, fp, fn = _counts(p, y, np.asarray(thresholds, float))
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def best_threshold(logits_or_probs, labels, thresholds: np.ndarray = THRESHOLDS,
                   logits: bool | None = None) -> tuple[float, float]:
    """(threshold, micro-F1) maximizing micro-F1 (on the validation split); ties -> lowest."""
    f = f1_curve(logits_or_probs, labels, thresholds, logits)
    i = int(np.argmax(f))
    return float(thresholds[i]), float(f[i])


def label_density(labels) -> float:
    """Fraction of set bits p."""
    y = np.asarray(labels)
    return float(y.mean()) if y.size else 0.0


def all_ones_floor(labels) -> float:
    """F1 of predicting every bit set: 2p / (1 + p) with p the label density."""
    p = label_density(labels)
    return 2 * p / (1 + p)


def frequency_baseline(train_labels, val_labels, test_labels) -> dict[str, float]:
    """Input-blind predictor: each bit's training frequency as its probability, threshold chosen on
    validation. A model that does not beat it has learned only which deltas are common."""
    freq = np.asarray(train_labels, np.float64).mean(axis=0)
    val = np.broadcast_to(freq, np.shape(val_labels))
    thr, _ = best_threshold(val, val_labels, logits=False)
    test = np.broadcast_to(freq, np.shape(test_labels))
    return {"threshold": thr, "f1": micro_f1(test, test_labels, thr, logits=False)}


def conditional_frequency_baseline(keys_train, train_labels, keys_val, val_labels, keys_test,
                                   test_labels) -> dict[str, float]:
    """Per-bit training frequency conditioned on a key per row (e.g. the current load's IP); keys
    unseen in training fall back to the overall frequency; threshold chosen on validation.

    The IP-conditioned baseline: what a model learns from the load site alone. A trace on which it
    is no better than :func:`frequency_baseline` gives a model nothing in its input to learn from.
    """
    y = np.asarray(train_labels, np.float64)
    keys, inv = np.unique(np.asarray(keys_train), return_inverse=True)
    table = np.zeros((keys.size + 1, y.shape[1]))
    np.add.at(table, inv, y)
    table[:-1] /= np.bincount(inv, minlength=keys.size)[:, None]
    table[-1] = y.mean(axis=0)  # unseen keys

    def probs(k):
        k = np.asarray(k)
        pos = np.clip(np.searchsorted(keys, k), 0, keys.size - 1)
        return table[np.where(keys[pos] == k, pos, keys.size)]

    thr, _ = best_threshold(probs(keys_val), val_labels, logits=False)
    return {"threshold": thr, "f1": micro_f1(probs(keys_test), test_labels, thr, logits=False)}


def summarize(val_logits, val_labels, test_logits, test_labels) -> dict[str, float]:
    """Test micro-F1 at the validation-chosen threshold (``f1``), at 0.5, at the threshold best on
    test itself (``f1_test_opt``: the paper's protocol, optimistic), and the test all-ones floor."""
    thr, f_val = best_threshold(val_logits, val_labels, logits=True)
    return {
        "threshold": thr,
        "val_f1": f_val,
        "f1": micro_f1(test_logits, test_labels, thr, logits=True),
        "f1_at_0.5": micro_f1(test_logits, test_labels, 0.5, logits=True),
        "f1_test_opt": best_threshold(test_logits, test_labels, logits=True)[1],
        "floor": all_ones_floor(test_labels),
        "density": label_density(test_labels),
    }
