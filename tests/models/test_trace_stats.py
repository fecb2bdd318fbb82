"""Trace statistics against brute-force loops on a hand-built stream, and the degenerate-trace gate
on real generated traces (scale 16 refused, scale 18 accepted)."""

import numpy as np
import pytest

from models import map_data
from models.trace_stats import DegenerateTraceError, TraceStats, check_workload, trace_stats
from models.workload import TraceSpec


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def _baseline_bruteforce(prob_of_row, sp) -> float:
    """Fit nothing: ``prob_of_row(split, i)`` gives a row's 256 probabilities; threshold = the lowest
    of 0.05..0.95 that maximizes validation F1; score test at it."""
    def f1_at(split, thr):
        y = sp[f"y_{split}"]
        pred = np.array([prob_of_row(split, i) >= thr for i in range(len(y))])
        return _f1(pred, y)
    thrs = [round(0.05 * k, 2) for k in range(1, 20)]
    vals = [f1_at("val", t) for t in thrs]
    return f1_at("test", thrs[int(np.argmax(vals))])


@pytest.fixture(scope="module")
def hand_splits():
    # two load sites far apart: IP A walks +1 blocks, IP B strides +3; a few random jumps
    rng = np.random.default_rng(7)
    blocks, ips, pos = [], [], {0xA0: 10**6, 0xB0: 5 * 10**6}
    for _ in range(3000):
        ip = 0xA0 if rng.random() < 0.5 else 0xB0
        pos[ip] += 1 if ip == 0xA0 else 3
        blocks.append(pos[ip] if rng.random() < 0.9 else int(rng.integers(0, 10**7)))
        ips.append(ip)
    addr = np.array(blocks, np.uint64) << np.uint64(6)
    return map_data.make_splits(addr, np.array(ips), seed=1)


def test_statistics_equal_brute_force(hand_splits):
    sp = hand_splits
    st = trace_stats(sp)
    rows = [sp[f"block_{s}"][i] for s in ("train", "val", "test") for i in range(len(sp[f"y_{s}"]))]
    assert st.plus1_share == pytest.approx(sum(r[-1] - r[-2] == 1 for r in rows) / len(rows))
    ytr = sp["y_train"]
    assert st.density_train == pytest.approx(sum(map(int, ytr.ravel())) / ytr.size)
    assert st.density_test == pytest.approx(sp["y_test"].sum() / sp["y_test"].size)
    freq = [sum(int(ytr[i, b]) for i in range(len(ytr))) / len(ytr) for b in range(256)]
    assert st.freq_f1 == pytest.approx(_baseline_bruteforce(lambda s, i: np.array(freq), sp))
    by_ip: dict[int, list] = {}
    for i in range(len(ytr)):
        by_ip.setdefault(int(sp["ip_train"][i, -1]), []).append(ytr[i])
    table = {k: np.mean(v, axis=0) for k, v in by_ip.items()}
    ip_ref = _baseline_bruteforce(lambda s, i: table.get(int(sp[f"ip_{s}"][i, -1]), np.array(freq)), sp)
    assert st.ip_f1 == pytest.approx(ip_ref)
    assert st.ip_f1 > st.freq_f1 + 0.05  # the load site tells the sequential stream apart


def test_verdict_names_each_problem():
    ok = TraceStats({"train": 1, "val": 1, "test": 1}, 0.1, 0.05, 0.05, 0.3, 0.4)
    assert not ok.degenerate and ok.verdict().startswith("ok")
    check_workload(ok)
    bad = TraceStats({"train": 1, "val": 1, "test": 1}, 0.7, 0.3, 0.3, 0.93, 0.94)
    assert len(bad.problems()) == 3
    with pytest.raises(DegenerateTraceError, match=r"\+1-delta share 0.70.*--allow-degenerate"):
        check_workload(bad)
    check_workload(bad, allow_degenerate=True)


def test_gate_refuses_scale_16_pr_and_accepts_scale_18():
    with pytest.raises(DegenerateTraceError, match="degenerate trace"):
        TraceSpec(app="pr", scale=16, max_loads=2_000_000, max_rows=10_000).splits()
    sp, info = TraceSpec(app="pr", scale=18, max_loads=2_000_000, max_rows=10_000).splits()
    assert not info["trace_stats"]["degenerate"], info["trace_stats"]
