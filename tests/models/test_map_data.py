"""MAP preprocessing against hand-worked examples."""

import numpy as np
import pytest

from models import map_data as M


def test_tokens_hand_worked():
    # 0x1040 = 0b 000001 000001 000000: the three lowest 6-bit groups are 1, 1, 0
    t = M.tokens(np.array([0x1040, 0xFFF_FFFF_FFFF_FFFF], np.uint64))
    assert t.shape == (2, 10)
    assert (t[0] * 64).tolist() == [0] * 7 + [1, 1, 0]
    assert (t[1] * 64).tolist() == [63] * 10
    assert t.dtype == np.float32 and t.max() < 1


def _hand_blocks() -> np.ndarray:
    # row 0 sees, within the next 128 accesses: +1, -2, +128, -129 (too far), 0 (ignored), -128
    b = [1000, 1001, 998, 1128, 871, 1000, 872]
    b += [10**6 + 1000 * i for i in range(len(b), 129)]  # far away: no deltas
    b += [1003]  # j = 129 > look-ahead: ignored
    return np.array(b, np.int64)


def test_delta_labels_hand_worked():
    y = M.delta_labels(_hand_blocks())
    assert y.shape == (2, 256)
    # +1 -> bit 0, +128 -> bit 127, -128 -> bit 256-128 = 128, -2 -> bit 254
    assert np.flatnonzero(y[0]).tolist() == [0, 127, 128, 254]
    # row 1 (block 1001): -3 -> 253, +127 -> 126, -130 ignored, -1 -> 255, -129 ignored; +2 (1003) at j=128 -> 1
    assert np.flatnonzero(y[1]).tolist() == [1, 126, 253, 255]


def test_history_and_split_layout():
    rng = np.random.default_rng(0)
    n = 3000
    block = np.cumsum(rng.integers(-3, 4, n)) + 10**6
    block[rng.random(n) < 0.05] += 10**5  # some jumps make a few empty labels
    addr = (block.astype(np.uint64) << np.uint64(6)) + np.uint64(8)
    ip = rng.integers(0x400000, 0x400100, n)
    sp = M.make_splits(addr, ip, test_fraction=0.2, val_fraction=0.1, seed=3)
    y_all = M.delta_labels(block)
    for s in M.SPLITS:
        t = sp[f"t_{s}"]
        assert (np.diff(t) > 0).all()
        assert (t >= M.HISTORY - 1).all()
        assert sp[f"y_{s}"].any(axis=1).all()  # no empty labels
        assert np.array_equal(sp[f"y_{s}"], y_all[t])
        k = len(t) // 2
        exp_x = M.tokens(addr[t[k] - 9: t[k] + 1])
        assert np.array_equal(sp[f"x_{s}"][k], exp_x)
        assert sp[f"block_{s}"][k].tolist() == block[t[k] - 9: t[k] + 1].tolist()
        assert sp[f"ip_{s}"][k].tolist() == ip[t[k] - 9: t[k] + 1].tolist()
    # brute force: usable rows in time order; the last 20% are test, the rest is the training
    # window minus the rows whose look-ahead reaches the first test access
    usable = [t for t in range(M.HISTORY - 1, len(block) - M.LOOKAHEAD) if y_all[t].any()]
    cut = round(0.8 * len(usable))
    assert sp["t_test"].tolist() == usable[cut:]
    window = [t for t in usable[:cut] if t + M.LOOKAHEAD < usable[cut]]
    assert len(window) < cut  # rows near the test boundary were dropped
    train, val = set(sp["t_train"].tolist()), set(sp["t_val"].tolist())
    assert not train & val and train | val == set(window)  # disjoint, and exactly the window
    assert len(val) == round(0.1 * len(window))
    # validation is a random subset of the window, not a later time slice
    assert min(val) < np.median(window) < max(val)
    # seeded: the same seed draws the same rows, another seed others; test never moves
    again = M.make_splits(addr, ip, seed=3)
    other = M.make_splits(addr, ip, seed=4)
    assert np.array_equal(again["t_val"], sp["t_val"]) and not np.array_equal(other["t_val"], sp["t_val"])
    assert np.array_equal(other["t_test"], sp["t_test"])


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    block = np.cumsum(rng.integers(-2, 3, 1500)) + 5000
    sp = M.make_splits(block.astype(np.uint64) << np.uint64(6), max_rows=600)
    assert sum(len(sp[f"y_{s}"]) for s in M.SPLITS) <= 600
    M.save_splits(tmp_path / "d.npz", sp)
    back = M.load_splits(tmp_path / "d.npz")
    assert set(back) == set(sp)
    for k in sp:
        assert np.array_equal(sp[k], back[k]), k


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        M.load_splits(tmp_path / "none.npz")
    with pytest.raises(ValueError, match="too short"):
        M.make_splits(np.arange(100, dtype=np.uint64) << np.uint64(6))
    with pytest.raises(ValueError, match="test_fraction"):
        M.make_splits(np.arange(1000, dtype=np.uint64), test_fraction=1.0)
    with pytest.raises(ValueError, match="val_fraction"):
        M.make_splits(np.arange(1000, dtype=np.uint64), val_fraction=0.0)
