"""models.prune: pattern spelling, masks checked by brute force (N:M groups, balanced blocks,
hybrid), class saliency against an analytic gradient, SR-STE's backward, and SR-STE fine-tuning
beating one-shot pruning on a real MAP student."""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from models import metrics
from models import prune as P
from models.distill import predict
from tests.students import trained_student

torch.set_num_threads(1)


# ---- patterns -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,want", [
    ("dense", P.Pattern()), ("2:4", P.Pattern(2, 4)), ("1:4", P.Pattern(1, 4)),
    ("b8k0.5", P.Pattern(block=8, keep=0.5)), ("2:4+b8k0.5", P.Pattern(2, 4, 8, 0.5)),
    ("1:8+b16k0.25", P.Pattern(1, 8, 16, 0.25)),
])
def test_parse_and_str_round_trip(spec, want):
    assert P.parse_pattern(spec) == want
    assert str(want) == spec
    assert P.parse_pattern(want) is want


@pytest.mark.parametrize("spec,word", [
    ("5:4", "N=5 > M=4"), ("0:4", "N >= 1"), ("2:1", "M >= 2"), ("2:4+b6k0.5", "multiple of M=4"),
    ("b8k0", "(0, 1]"), ("b8k1.5", "(0, 1]"), ("2:4+x", "cannot read"), ("b0k0.5", "positive"),
    ("2:4+2:4", "cannot read"),
])
def test_bad_patterns_raise_clear_value_errors(spec, word):
    with pytest.raises(ValueError, match=None) as e:
        P.parse_pattern(spec)
    assert isinstance(e.value, P.PruneError) and word in str(e.value)


def test_keep_without_block_and_half_nm_rejected():
    with pytest.raises(P.PruneError, match="block size"):
        P.Pattern(keep=0.5)
    with pytest.raises(P.PruneError, match="both N and M"):
        P.Pattern(n=2)


# ---- masks by brute force ---------------------------------------------------------------------


class Tiny(nn.Module):
    """Reduction lengths 27 (conv, not a multiple of 4 or 8), 10 and 40."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.fc1 = nn.Linear(10, 40)
        self.fc2 = nn.Linear(40, 6)


def _groups(k: int, size: int) -> list[range]:
    return [range(s, min(k, s + size)) for s in range(0, k, size)]


def _brute_check(w: np.ndarray, score: np.ndarray, mask: np.ndarray, p: P.Pattern) -> None:
    """Plain loops: N:M keeps the top-n of every group, blocks keep the top ceil(keep·nb) sums."""
    rows, k = w.shape
    nm = np.ones_like(mask)
    if p.has_nm:
        for r in range(rows):
            for g in _groups(k, p.m):
                kept = [j for j in g if mask[r, j]] if not p.has_blocks else None
                if kept is not None:
                    assert len(kept) == min(p.n, len(g)), (r, g)
                    dropped = [j for j in g if not mask[r, j]]
                    if dropped:
                        assert min(score[r, j] for j in kept) >= max(score[r, j] for j in dropped)
                order = sorted(g, key=lambda j: -score[r, j])
                for j in g:
                    nm[r, j] = j in order[:p.n]
    if p.has_blocks:
        blocks = _groups(k, p.block)
        want = max(1, math.ceil(p.keep * len(blocks) - 1e-9))
        for r in range(rows):
            live = [b for b in blocks if any(mask[r, j] for j in b)]
            assert len(live) == want, (r, len(live), want)
            sums = {b.start: sum(score[r, j] for j in b if nm[r, j]) for b in blocks}
            live_s = {b.start for b in live}
            assert min(sums[s] for s in live_s) >= max([sums[s] for s in sums if s not in live_s], default=-1)
            for b in live:  # inside a kept block, exactly the N:M survivors
                for j in b:
                    assert mask[r, j] == nm[r, j]


@pytest.mark.parametrize("spec", ["2:4", "1:4", "3:8", "b8k0.5", "2:4+b8k0.5", "1:4+b16k0.3"])
def test_magnitude_masks_match_brute_force(spec):
    torch.manual_seed(0)
    model = Tiny()
    p = P.parse_pattern(spec)
    ms = P.masks(model, p)
    assert set(ms) == {"conv", "fc1", "fc2"}
    for name, mod in P.prunable_layers(model):
        w = mod.weight.detach().numpy().reshape(mod.weight.shape[0], -1)
        mk = ms[name].numpy().reshape(w.shape)
        assert ms[name].shape == mod.weight.shape and ms[name].dtype == torch.bool
        _brute_check(w, np.abs(w), mk, p)


@pytest.mark.parametrize("spec", ["2:4", "1:4", "2:4+b8k0.5", "b8k0.25"])
def test_prune_zeroes_exactly_the_mask_and_check_pattern(spec):
    torch.manual_seed(1)
    model = Tiny()
    before = copy.deepcopy(model)
    ms = P.masks(model, spec)
    P.prune(model, spec)
    for (name, mod), (_, old) in zip(P.prunable_layers(model), P.prunable_layers(before)):
        w, w0, mk = mod.weight.detach(), old.weight.detach(), ms[name]
        assert torch.equal(w[mk], w0[mk]) and (w[~mk] == 0).all()
        P.check_pattern(w, spec)
        P.check_pattern(w.numpy(), spec)
    assert torch.equal(model.fc1.bias, before.fc1.bias)


def test_check_pattern_names_the_broken_group_and_row():
    w = np.zeros((3, 16))
    w[1, [4, 5, 6]] = 1.0  # 3 non-zeros in group 1 of row 1
    with pytest.raises(P.PruneError, match=r"row 1, group 1 \(columns 4..7\)"):
        P.check_pattern(w, "2:4")
    P.check_pattern(w, "3:4")
    w2 = np.zeros((2, 24))
    w2[0, [0, 9, 17]] = 1.0  # 3 live blocks of 8; b8k0.5 allows ceil(1.5) = 2
    with pytest.raises(P.PruneError, match="row 0 has 3 non-zero blocks"):
        P.check_pattern(w2, "b8k0.5")
    P.check_pattern(w2, "b8k0.75")
    tail = np.zeros((1, 9))
    tail[0, [0, 1, 8]] = 1.0  # tail group {8} of a 9-long row
    P.check_pattern(tail, "2:4")


def test_skip_first_and_last_leave_layers_dense():
    model = Tiny()
    assert [n for n, _ in P.prunable_layers(model, ["first"])] == ["fc1", "fc2"]
    assert [n for n, _ in P.prunable_layers(model, ["first", "last"])] == ["fc1"]
    w0 = model.conv.weight.detach().clone()
    P.prune(model, "1:4", skip=["first"])
    assert torch.equal(model.conv.weight, w0)
    with pytest.raises(P.PruneError, match="no prunable layer 'nope'"):
        P.prunable_layers(model, ["nope"])


# ---- classes and class saliency -------------------------------------------------------------------


def test_top_k_classes_are_the_most_frequent_bits():
    rng = np.random.default_rng(3)
    y = (rng.random((500, 40)) < rng.random(40)[None, :]).astype(np.float32)
    got = P.resolve_classes("top7", y)
    counts = Counter({j: int(y[:, j].sum()) for j in range(40)})
    want = sorted(j for j, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:7])
    assert list(got) == want
    # uint8 labels as map_data stores them, with never-set bits (they must come last)
    y8 = y.astype(np.uint8)
    y8[:, :10] = 0
    assert list(P.resolve_classes("top7", y8)) == sorted(
        j for j, _ in sorted(Counter({j: int(y8[:, j].sum()) for j in range(40)}).items(),
                             key=lambda t: (-t[1], t[0]))[:7])
    assert not set(P.resolve_classes("top30", y8)) & set(range(10))
    assert P.resolve_classes(None, y) is None and P.resolve_classes("all", y) is None
    assert list(P.resolve_classes("5,3,5", y)) == [3, 5]
    with pytest.raises(P.PruneError, match="1..40"):
        P.resolve_classes("top41", y)
    with pytest.raises(P.PruneError, match="topK"):
        P.resolve_classes("best", y)


def test_class_saliency_equals_analytic_gradient():
    """One Linear layer: dL/dW of the mean BCE over the preferred outputs, by hand."""
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    lin = nn.Sequential(nn.Linear(6, 5))
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (rng.random((300, 5)) < 0.3).astype(np.float32)
    y[:40, [1, 3]] = 0  # rows without a preferred label are not used
    cls = [1, 3]
    s = P.scores(lin, "class", data=(x, y), classes=cls)["0"].numpy()
    W, b = lin[0].weight.detach().double().numpy(), lin[0].bias.detach().double().numpy()
    use = np.flatnonzero(y[:, cls].sum(1) > 0)
    sal = np.zeros_like(W)
    for i in range(0, len(use), 256):  # the same batches as class_saliency
        r = use[i:i + 256]
        z = x[r].astype(np.float64) @ W.T + b
        g = np.zeros_like(W)
        err = (1 / (1 + np.exp(-z)) - y[r]) / (len(r) * len(cls))
        g[cls] = err[:, cls].T @ x[r]
        sal += np.abs(g * W)
    want = sal / sal.max() + P.TIE_BREAK * np.abs(W) / np.abs(W).max()
    np.testing.assert_allclose(s, want, rtol=1e-5, atol=1e-9)
    # rows of other classes are ranked by magnitude alone
    assert (sal[[0, 2, 4]] == 0).all()


def test_class_saliency_needs_data():
    with pytest.raises(P.PruneError, match="data"):
        P.masks(Tiny(), "2:4", saliency="class")
    with pytest.raises(P.PruneError, match="unknown saliency"):
        P.masks(Tiny(), "2:4", saliency="taylor")


def test_srste_backward_is_straight_through_plus_decay():
    w = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(4, 8) < 0.5
    g = torch.randn(4, 8, dtype=torch.float64)
    out = P.SRSTE(mask, 0.25)(w)
    assert torch.equal(out, w.detach() * mask)
    out.backward(g)
    assert torch.allclose(w.grad, g + 0.25 * (~mask) * w.detach())


# ---- a real MAP student --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def student():
    return trained_student(rows=3000, epochs=4)


def _val_f1(model, sp) -> float:
    return metrics.best_threshold(predict(model, sp["x_val"]), sp["y_val"], logits=True)[1]


def test_srste_beats_one_shot_on_a_student(student):
    base, sp = student
    one = P.prune(copy.deepcopy(base), "1:4")
    ft = P.finetune(copy.deepcopy(base), "1:4", sp, P.PruneConfig(epochs=3, progress=False, seed=0))
    for _, mod in P.prunable_layers(ft):
        P.check_pattern(mod.weight, "1:4")
        assert not P.parametrize.is_parametrized(mod, "weight")
    f_dense, f_one, f_ft = _val_f1(base, sp), _val_f1(one, sp), _val_f1(ft, sp)
    assert f_one < f_dense, "1:4 one-shot should cost something"
    print("val micro-F1 dense, one-shot, SR-STE:", f_dense, f_one, f_ft)
    assert f_ft > f_one + 0.002, (f_dense, f_one, f_ft)
    assert P.sparsity(ft)["total"] >= 0.74


def test_class_aware_hybrid_finetune_obeys_pattern(student):
    base, sp = student
    p = "2:4+b8k0.5"
    ft = P.finetune(copy.deepcopy(base), p, sp,
                    P.PruneConfig("class", "top32", epochs=1, progress=False, mask_every=10))
    for name, mod in P.prunable_layers(ft):
        P.check_pattern(mod.weight, p, name)
    head = ft.head.weight.detach().numpy()
    assert ((head != 0).reshape(256, 4, 8).any(-1).sum(-1) == 2).all(), "2 of 4 blocks in every head row"
    assert _val_f1(ft, sp) > 0.5


def test_negative_seed_is_refused_by_prune_config():
    with pytest.raises(P.PruneError, match=r"--seed -1: use a non-negative integer"):
        P.PruneConfig(seed=-1)
