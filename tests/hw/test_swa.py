"""Sliding-window attention kernel: RTL == exact reference bit for bit (pysim, verilator), the
reference == an independent vectorized model of the documented arithmetic, error vs float64
attention, measured cycles == cycles(), bad configs raise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hw import swa
from hw.arith import ConfigError, WorkloadError
from hw.sim import simulate
from quant.reference import decode, fixed_point

FORMATS = ["int8", "int4", "e4m3", "e2m3"]


def spread_scale(cfg: swa.SWAConfig, wl: swa.SWAWorkload, spread: float = 2.0) -> float:
    """A softmax scale giving scores of about ``spread`` standard deviations (non-degenerate)."""
    sq = decode(wl.q, cfg.qk_fmt).std() or 1.0
    sk = decode(wl.k, cfg.qk_fmt).std() or 1.0
    return spread / (sq * sk * math.sqrt(cfg.head_dim))


def with_scale(cfg: swa.SWAConfig, scale: float | None) -> swa.SWAConfig:
    d = cfg.to_dict()
    d["score_scale"] = scale
    return swa.SWAConfig.from_dict(d)


def run(cfg, wl, backend="pysim", **kw):
    res = simulate(cfg, swa.pack_inputs(cfg, wl), swa.n_outputs(cfg, wl), backend=backend,
                   max_cycles=4 * swa.cycles(cfg, wl) + 1000, **kw)
    return swa.unpack_outputs(cfg, res.outputs), res


# ---- independent model of the documented arithmetic (vectorized, from the module docstring) ----


def model(cfg: swa.SWAConfig, wl: swa.SWAWorkload) -> np.ndarray:
    q, kq = fixed_point(wl.q, cfg.qk_fmt)
    k, _ = fixed_point(wl.k, cfg.qk_fmt)
    v, kv = fixed_point(wl.v, cfg.v_fmt)
    q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
    n = wl.n
    w = n if cfg.dense else cfg.window
    E, T = cfg.exp_bits, cfg.lut_bits
    g = math.log2(math.e) * cfg.scale * 2.0 ** (2 * kq)
    F = max(cfg.scale_bits - 1 - math.floor(math.log2(g)), T)
    c = round(g * 2**F)
    lut = np.round(2.0 ** (E - np.arange(2**T) / 2**T)).astype(np.int64)
    s = q @ k.T                                              # all scores, masked below
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    inwin = (j <= i) & (j > i - w) if cfg.causal else np.abs(i - j) <= (cfg.window - 1) // 2
    mx = np.where(inwin, s, np.iinfo(np.int64).min).max(axis=1, keepdims=True)
    t = np.where(inwin, mx - s, 0)
    tsat = math.ceil((E + 1) * 2**F / c)
    u = [[int(x) * c for x in row] for row in np.minimum(t, tsat)]
    p = np.array([[(int(lut[(x % 2**F) >> (F - T)]) >> (x >> F)) if (x >> F) <= E + 1 else 0 for x in row]
                  for row in u], dtype=np.int64)
    p = np.where(inwin, p, 0)
    S = p.sum(axis=1)
    wz = cfg.window  # a hardware constant: the dense baseline's is its max n
    Z = E + math.ceil(math.log2(wz)) + cfg.recip_bits if wz > 1 else E + cfg.recip_bits
    a = p @ v
    r = [(1 << Z) // int(x) for x in S]
    out = [[(int(x) * ri) >> (Z - cfg.out_frac_bits) for x in row] for row, ri in zip(a, r)]
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("window,n", [(5, 3), (5, 5), (4, 23), (1, 6)])
def test_reference_matches_documented_arithmetic(fmt, window, n):
    base = swa.SWAConfig(8, window, 4, fmt, fmt)
    wl = swa.random_workload(base, n, seed=window * 100 + n)
    for scale in (None, spread_scale(base, wl, 3.0)):
        cfg = with_scale(base, scale)
        assert np.array_equal(swa.reference(cfg, wl), model(cfg, wl))
    dense = swa.dense_baseline(with_scale(base, spread_scale(base, wl)), n + 3)
    assert np.array_equal(swa.reference(dense, wl), model(dense, wl))


# ---- numerical error vs float64 attention ------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("qk_v", ["same", "int8v"])
def test_error_vs_float64_below_documented_bound(fmt, qk_v):
    vfmt = fmt if qk_v == "same" else "int8"
    worst = 0.0
    for seed, (d, w) in enumerate([(16, 16), (32, 8), (64, 64)]):
        base = swa.SWAConfig(d, w, 8, fmt, vfmt)
        wl = swa.random_workload(base, 96, seed=seed, special_fraction=0.0)
        for spread in (0.5, 2.0, 6.0):
            cfg = with_scale(base, spread_scale(base, wl, spread))
            err = swa.relative_error(cfg, swa.reference(cfg, wl), swa.attention_float(cfg, wl))
            worst = max(worst, err)
    assert worst < swa.ERROR_BOUND, worst
    assert worst > 0  # the kernel does round: a zero error would mean the float side is wrong


def test_error_grows_with_coarser_exp_table():
    base = swa.SWAConfig(16, 16, 8, "int8", "int8")
    wl = swa.random_workload(base, 64, seed=4, special_fraction=0.0)
    s = spread_scale(base, wl, 2.0)
    errs = []
    for t in (2, 5, 8):
        cfg = swa.SWAConfig(16, 16, 8, "int8", "int8", lut_bits=t, score_scale=s)
        errs.append(swa.relative_error(cfg, swa.reference(cfg, wl), swa.attention_float(cfg, wl)))
    assert errs[0] > errs[1] > errs[2]


# ---- RTL bit-exactness and cycles through pysim -------------------------------------------------

SHAPES = [  # head_dim, window, lanes, n: n < w, n = w, n >> w, lanes = head_dim, window 1
    (8, 6, 4, 4),
    (8, 4, 8, 4),
    (4, 3, 2, 17),
    (8, 1, 4, 5),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "d{}w{}l{}n{}".format(*s))
def test_kernel_bit_exact_pysim(fmt, shape):
    d, w, lanes, n = shape
    base = swa.SWAConfig(d, w, lanes, fmt, "int4" if fmt == "e4m3" else fmt)
    wl = swa.random_workload(base, n, seed=sum(shape))
    cfg = with_scale(base, spread_scale(base, wl))
    got, res = run(cfg, wl)
    assert np.array_equal(got, swa.reference(cfg, wl))
    assert np.array_equal(got, model(cfg, wl))
    assert res.cycles == swa.cycles(cfg, n)


@pytest.mark.parametrize("fmt", ["int8", "e2m3"])
def test_dense_baseline_bit_exact_pysim(fmt):
    base = swa.SWAConfig(8, 4, 4, fmt, fmt)
    wl = swa.random_workload(base, 7, seed=9)
    cfg = swa.dense_baseline(with_scale(base, spread_scale(base, wl)), 9)
    got, res = run(cfg, wl)
    assert np.array_equal(got, model(cfg, wl))
    assert res.cycles == swa.cycles(cfg, 7)


def test_back_pressure_and_two_sequences_pysim():
    cfg0 = swa.SWAConfig(8, 3, 4, "int8", "int8", div_bits=2)
    a, b = swa.random_workload(cfg0, 5, seed=1), swa.random_workload(cfg0, 4, seed=2)
    cfg = with_scale(cfg0, spread_scale(cfg0, a))
    inputs = swa.pack_inputs(cfg, a) + swa.pack_inputs(cfg, b)
    want = np.concatenate([model(cfg, a), model(cfg, b)])
    res = simulate(cfg, inputs, 2 * (a.n + b.n), in_valid=[1, 0, 1, 1, 0], out_ready=[0, 1, 1],
                   max_cycles=4000)
    assert np.array_equal(swa.unpack_outputs(cfg, res.outputs), want)
    dense = swa.dense_baseline(cfg, 6)
    res = simulate(dense, inputs, 2 * (a.n + b.n), in_valid=[1, 1, 0], out_ready=[1, 0], max_cycles=4000)
    assert np.array_equal(swa.unpack_outputs(dense, res.outputs),
                          np.concatenate([model(dense, a), model(dense, b)]))


# ---- verilator -----------------------------------------------------------------------------------


def test_kernel_bit_exact_verilator():
    base = swa.SWAConfig(8, 5, 4, "e4m3", "e4m3")
    wl = swa.random_workload(base, 12, seed=12)
    cfg = with_scale(base, spread_scale(base, wl))
    got, res = run(cfg, wl, backend="verilator")
    assert np.array_equal(got, model(cfg, wl))
    assert res.cycles == swa.cycles(cfg, 12)
    pys = simulate(cfg, swa.pack_inputs(cfg, wl), swa.n_outputs(cfg, wl), in_valid=[1, 0], out_ready=[1, 1, 0])
    ver = simulate(cfg, swa.pack_inputs(cfg, wl), swa.n_outputs(cfg, wl), in_valid=[1, 0], out_ready=[1, 1, 0],
                   backend="verilator")
    assert ver.outputs == pys.outputs and ver.cycles == pys.cycles


@pytest.mark.slow
@pytest.mark.parametrize("fmt,shape", [("int8", (16, 8, 8, 40)), ("e2m3", (8, 5, 4, 12))])
def test_dense_bit_exact_verilator(fmt, shape):
    d, w, lanes, n = shape
    base = swa.SWAConfig(d, w, lanes, fmt, fmt)
    wl = swa.random_workload(base, n, seed=n)
    dense = swa.dense_baseline(with_scale(base, spread_scale(base, wl)), n)
    got, res = run(dense, wl, backend="verilator")
    assert np.array_equal(got, model(dense, wl))
    assert res.cycles == swa.cycles(dense, n)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_bit_exact_verilator_long(fmt):
    base = swa.SWAConfig(32, 16, 8, fmt, fmt)
    wl = swa.random_workload(base, 300, seed=3)
    cfg = with_scale(base, spread_scale(base, wl))
    got, res = run(cfg, wl, backend="verilator")
    assert np.array_equal(got, model(cfg, wl))
    assert res.cycles == swa.cycles(cfg, 300)
    got, res = run(cfg, wl, backend="verilator", in_valid=[1, 0, 1], out_ready=[1, 1, 0])
    assert np.array_equal(got, model(cfg, wl))


# ---- timing model ----------------------------------------------------------------------------------


def test_cycles_linear_for_swa_and_quadratic_for_dense():
    cfg = swa.SWAConfig(64, 64, 16, "int8", "int8")
    per = [swa.cycles(cfg, n) / n for n in (1024, 2048, 4096)]
    assert max(per) / min(per) < 1.05
    assert abs(per[-1] - swa.steady_row_cycles(cfg)) / per[-1] < 0.05
    dense = swa.dense_baseline(cfg, 4096)
    assert 3.8 < swa.cycles(dense, 4096) / swa.cycles(dense, 2048) < 4.2


@pytest.mark.parametrize("d,w,lanes", [(16, 16, 16), (32, 64, 16), (64, 256, 16), (64, 16, 64)])
def test_steady_state_mac_utilization(d, w, lanes):
    cfg = swa.SWAConfig(d, w, lanes, "int8", "int8")
    assert swa.steady_row_cycles(cfg) == w * cfg.chunks
    assert swa.mac_utilization(cfg, 4096) >= 0.95


# ---- configuration and workload errors -------------------------------------------------------------


@pytest.mark.parametrize("kw,match", [
    (dict(window=0), "window"),
    (dict(window=swa.MAX_WINDOW + 1), "window"),
    (dict(head_dim=12, lanes=8), "multiple of lanes"),
    (dict(lanes=0), "lanes"),
    (dict(causal=False), "odd"),
    (dict(causal=False, window=15, dense=True), "dense"),
    (dict(qk_fmt="int99"), None),
    (dict(exp_bits=1), "exp_bits"),
    (dict(div_bits=0), "div_bits"),
    (dict(score_scale=-1.0), "score_scale"),
    (dict(out_frac_bits=32, recip_bits=1), "out_frac_bits"),
    (dict(head_dim=True), "head_dim"),
])
def test_bad_configs_raise(kw, match):
    args = dict(head_dim=16, window=16, lanes=8, qk_fmt="int8", v_fmt="int8")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        swa.SWAConfig(**args)


def test_config_round_trip_and_errors():
    cfg = swa.SWAConfig(16, 32, 8, "e4m3", "int4", score_scale=0.01, div_bits=3)
    assert swa.SWAConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(hash(cfg), int)
    with pytest.raises(ConfigError, match="unknown"):
        swa.SWAConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="engine"):
        swa.SWAConfig.from_dict({**cfg.to_dict(), "engine": "dot"})
    with pytest.raises(ConfigError, match="window"):
        swa.dense_baseline(cfg, swa.MAX_DENSE_N + 1)


def test_bad_workloads_raise():
    cfg = swa.SWAConfig(8, 4, 4, "e4m3ocp", "int8")
    wl = swa.random_workload(cfg, 5, seed=0)
    wl.q[2, 3] = 0x7F  # NaN in OCP e4m3
    with pytest.raises(WorkloadError, match="finite"):
        swa.pack_inputs(cfg, wl)
    with pytest.raises(WorkloadError, match="head_dim"):
        swa.reference(cfg, np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8))
    with pytest.raises(WorkloadError, match="shape"):
        swa.SWAWorkload(np.zeros((3, 8)), np.zeros((3, 8)), np.zeros((4, 8)))
    with pytest.raises(WorkloadError, match="exceeds"):
        swa.cycles(swa.dense_baseline(cfg, 8), 9)
    with pytest.raises(WorkloadError, match="n must"):
        swa.random_workload(cfg, 0, seed=0)


@pytest.mark.parametrize("norm_lanes,div_bits", [(1, 1), (2, 5), (4, None)])
def test_normalizer_lanes_and_divider_radix_pysim(norm_lanes, div_bits):
    cfg0 = swa.SWAConfig(8, 3, 4, "int8", "e2m3", norm_lanes=norm_lanes, div_bits=div_bits)
    wl = swa.random_workload(cfg0, 9, seed=norm_lanes)
    cfg = with_scale(cfg0, spread_scale(cfg0, wl))
    got, res = run(cfg, wl)
    assert np.array_equal(got, model(cfg, wl))
    assert res.cycles == swa.cycles(cfg, 9)
    assert cfg.norm_cycles == 2 + -(-cfg.recip_width // cfg.div_step_bits) + cfg.chunks * 4 // norm_lanes
    res = simulate(cfg, swa.pack_inputs(cfg, wl), swa.n_outputs(cfg, wl), out_ready=[1, 0, 0, 1, 0],
                   max_cycles=5000)
    assert np.array_equal(swa.unpack_outputs(cfg, res.outputs), model(cfg, wl))


def test_auto_normalizer_fits_a_steady_row():
    for d, w, lanes in [(32, 16, 16), (64, 64, 16), (16, 16, 16), (64, 256, 16), (8, 4, 8)]:
        cfg = swa.SWAConfig(d, w, lanes, "int8", "int8")
        assert cfg.norm_cycles <= w * cfg.chunks
        assert lanes % cfg.norm_mults == 0
    with pytest.raises(ConfigError, match="norm_lanes"):
        swa.SWAConfig(16, 16, 8, "int8", "int8", norm_lanes=3)


# ---- symmetric windows ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["int8", "e4m3"])
@pytest.mark.parametrize("shape", [(8, 5, 4, 2), (8, 5, 4, 5), (4, 7, 2, 19), (8, 1, 8, 4), (8, 9, 4, 4)],
                         ids=lambda s: "d{}w{}l{}n{}".format(*s))
def test_symmetric_window_bit_exact_pysim(fmt, shape):
    d, w, lanes, n = shape
    base = swa.SWAConfig(d, w, lanes, fmt, fmt, causal=False)
    wl = swa.random_workload(base, n, seed=n + w)
    cfg = with_scale(base, spread_scale(base, wl))
    got, res = run(cfg, wl)
    assert np.array_equal(got, model(cfg, wl))
    assert np.array_equal(got, swa.reference(cfg, wl))
    assert res.cycles == swa.cycles(cfg, n)


def test_symmetric_two_sequences_with_back_pressure_pysim():
    cfg0 = swa.SWAConfig(8, 5, 4, "int4", "int4", causal=False)
    a, b = swa.random_workload(cfg0, 6, seed=1), swa.random_workload(cfg0, 3, seed=2)
    cfg = with_scale(cfg0, spread_scale(cfg0, a))
    res = simulate(cfg, swa.pack_inputs(cfg, a) + swa.pack_inputs(cfg, b), 2 * 9, in_valid=[1, 0, 1],
                   out_ready=[1, 0], max_cycles=5000)
    assert np.array_equal(swa.unpack_outputs(cfg, res.outputs), np.concatenate([model(cfg, a), model(cfg, b)]))


def test_symmetric_error_and_linear_cycles():
    base = swa.SWAConfig(32, 33, 8, "e2m3", "e2m3", causal=False)
    wl = swa.random_workload(base, 80, seed=5, special_fraction=0.0)
    cfg = with_scale(base, spread_scale(base, wl))
    assert swa.relative_error(cfg, swa.reference(cfg, wl), swa.attention_float(cfg, wl)) < swa.ERROR_BOUND
    per = [swa.cycles(cfg, n) / n for n in (1024, 4096)]
    assert max(per) / min(per) < 1.05 and swa.mac_utilization(cfg, 4096) > 0.95


@pytest.mark.slow
def test_symmetric_bit_exact_verilator():
    base = swa.SWAConfig(16, 9, 8, "e2m3", "int8", causal=False)
    wl = swa.random_workload(base, 60, seed=7)
    cfg = with_scale(base, spread_scale(base, wl))
    got, res = run(cfg, wl, backend="verilator")
    assert np.array_equal(got, model(cfg, wl))
    assert res.cycles == swa.cycles(cfg, 60)
