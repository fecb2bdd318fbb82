"""Dense engine: simulated outputs equal the exact reference bit for bit, measured cycles equal
the closed form, back-pressure changes nothing but time, the accumulator never overflows; the
reference itself is checked against exact rational arithmetic on decoded values."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from hw import dot
from hw.arith import ConfigError, WorkloadError, acc_bits, finite_codes, product_range
from hw.engine import tree_levels
from hw.engines import ENGINES, config_from_dict
from quant.reference import decode

from .conftest import SIM_BACKENDS, assert_exact, backend_params, run_engine

INT_FORMATS = [f"{u}int{b}" for b in range(2, 9) for u in ("", "u")] + ["int8n", "int4n"]
MF_FORMATS = ["e2m1", "e2m3", "e3m2", "e4m3", "e5m2", "e4m3ocp", "e5m2ieee", "e3m4", "e1m2",
              "e2m1nosub", "e4m3b11", "e3m0"]


def format_pairs(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    """``count`` (weight, activation) format names that together use every format of
    INT_FORMATS + MF_FORMATS once before any repeats (for ``count`` >= half their number)."""
    names = np.array(INT_FORMATS + MF_FORMATS)
    order = rng.permutation(names)
    wnames = list(order[:count])
    anames = list(order[count:]) + list(rng.choice(names, max(0, 2 * count - len(names))))
    return wnames, anames


def random_dense_cases(count: int, seed: int) -> list[tuple]:
    """(config, k, vectors, seed) tuples covering every format of INT_FORMATS + MF_FORMATS."""
    rng = np.random.default_rng(seed)
    wnames, anames = format_pairs(rng, count)
    cases = []
    for j in range(count):
        lanes = int(rng.integers(1, 9))
        pipeline = int(rng.integers(0, tree_levels(lanes) + 2))
        k = int(rng.integers(1, 30))
        k_max = k + int(rng.choice([0, 1, 100, 4000]))
        cfg = dot.DotConfig(lanes, wnames[j], anames[j], k_max, pipeline)
        cases.append((cfg, k, 4, 100 + j))
    return cases


CASES = random_dense_cases(22, seed=3)


def _case_id(case) -> str:
    c, k = case[0], case[1]
    return f"{c.lanes}x{c.wfmt}x{c.afmt}-p{c.pipeline}-k{k}"


def test_cases_cover_every_format():
    used = {str(c[0].wfmt) for c in CASES} | {str(c[0].afmt) for c in CASES}
    assert used >= set(INT_FORMATS + MF_FORMATS)


@pytest.mark.parametrize("case,backend", backend_params(CASES, 2, _case_id))
def test_dense_matches_reference_and_cycles(case, backend):
    config, k, vectors, seed = case
    wl = dot.random_workload(config, k, vectors, seed)
    got, res = run_engine(dot, config, wl, backend)
    assert_exact(got, dot.reference(config, wl))
    assert res.cycles == dot.cycles(config, wl)


# ---- the reference, grounded independently ------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_reference_equals_rational_sum_of_decoded_products(case):
    config, k, vectors, seed = case
    wl = dot.random_workload(config, k, vectors, seed)
    ref = dot.reference(config, wl)
    unit = Fraction(2) ** dot.output_exponent(config)
    wv = decode(wl.w_codes, config.wfmt)
    av = decode(wl.a_codes, config.afmt)
    for r in range(vectors):
        exact = sum(Fraction(x) * Fraction(y) for x, y in zip(wv[r], av[r]))
        assert int(ref[r]) * unit == exact


@pytest.mark.parametrize("wname,aname", [("int8", "int8"), ("uint4", "e2m1"), ("e4m3", "e4m3"), ("e2m3", "int8")])
def test_reference_equals_float64_for_small_k(wname, aname):
    config = dot.DotConfig(4, wname, aname, 16)
    wl = dot.random_workload(config, 16, 50, seed=11)
    want = (decode(wl.w_codes, wname) * decode(wl.a_codes, aname)).sum(axis=1)  # exact in float64 here
    got = dot.reference(config, wl).astype(np.float64) * 2.0 ** dot.output_exponent(config)
    np.testing.assert_array_equal(got, want)


def test_random_workload_has_edge_codes():
    config = dot.DotConfig(4, "e4m3", "int8", 64)
    wl = dot.random_workload(config, 64, 8, seed=0)
    w = decode(wl.w_codes, "e4m3")
    assert (np.abs(w) == 480).any(), "max magnitude"
    assert (np.abs(w) == 2.0**-9).any(), "smallest subnormal"
    assert ((w == 0) & np.signbit(w)).any() and ((w == 0) & ~np.signbit(w)).any(), "+0 and -0"
    a = decode(wl.a_codes, "int8")
    assert (a == -128).any() and (a == 127).any() and (a == 0).any()
    again = dot.random_workload(config, 64, 8, seed=0)
    np.testing.assert_array_equal(wl.w_codes, again.w_codes)


# ---- accumulator: all-max inputs of both signs -------------------------------------------------


def _extreme_codes(fmt_w, fmt_a, want_max: bool) -> tuple[int, int]:
    """Codes whose exact product is the largest (or most negative), by brute force."""
    wc, ac = finite_codes(fmt_w), finite_codes(fmt_a)
    prods = np.multiply.outer(decode(wc, fmt_w), decode(ac, fmt_a))
    j = np.argmax(prods) if want_max else np.argmin(prods)
    return int(wc[j // len(ac)]), int(ac[j % len(ac)])


ALL_MAX_PAIRS = [("int8", "int8"), ("uint8", "int8"), ("int2", "uint2"), ("e4m3", "e4m3"),
                 ("e5m2", "e5m2"), ("e2m1", "int4"), ("e4m3ocp", "uint8"), ("int8n", "e3m2")]


@pytest.mark.parametrize("pair,backend", backend_params(ALL_MAX_PAIRS, 0, "x".join))
def test_all_max_inputs_fill_but_never_overflow_the_accumulator(pair, backend):
    wname, aname = pair
    k = 13
    config = dot.DotConfig(4, wname, aname, k_max=k, pipeline=1)
    rows_w, rows_a, want = [], [], []
    for want_max in (True, False):
        wcode, acode = _extreme_codes(config.wfmt, config.afmt, want_max)
        rows_w.append([wcode] * k)
        rows_a.append([acode] * k)
        value = k * Fraction(decode(np.array([wcode]), wname)[0]) * Fraction(decode(np.array([acode]), aname)[0])
        want.append(value / Fraction(2) ** dot.output_exponent(config))
    wl = dot.Workload(np.array(rows_w, np.uint8), np.array(rows_a, np.uint8))
    got, _ = run_engine(dot, config, wl, backend)
    assert [int(g) for g in got] == [int(w) for w in want]
    bits = config.acc_bits
    lo, hi = product_range(wname, aname)
    assert (hi * k, min(lo, 0) * k) == (int(want[0]), int(want[1])) or lo >= 0
    # the extremes need every accumulator bit: one fewer would overflow
    assert int(want[0]) > 2 ** (bits - 2) - 1 or int(want[1]) < -(2 ** (bits - 2))


@pytest.mark.slow
@pytest.mark.skipif("verilator" not in SIM_BACKENDS, reason="needs hw/verilator.py")
@pytest.mark.parametrize("wname,aname", [("e4m3", "e4m3"), ("int8", "int8")])
def test_all_max_at_k_4608_verilator(wname, aname):
    k = 4608
    config = dot.DotConfig(16, wname, aname, k_max=k, pipeline=2)
    wcode, acode = _extreme_codes(config.wfmt, config.afmt, True)
    ncode, mcode = _extreme_codes(config.wfmt, config.afmt, False)
    wl = dot.Workload(np.array([[wcode] * k, [ncode] * k], np.uint8), np.array([[acode] * k, [mcode] * k], np.uint8))
    got, res = run_engine(dot, config, wl, "verilator")
    lo, hi = product_range(wname, aname)
    assert [int(g) for g in got] == [k * hi, k * lo]
    assert res.cycles == dot.cycles(config, wl)


# ---- back-pressure --------------------------------------------------------------------------------


def stalled_cycles(pipeline: int, lasts: list[int], in_valid: list[bool], out_ready: list[bool]) -> int:
    """Behavioural model of the documented timing (stall-all pipeline, one output register):
    cycles until the last output transfers, for beats ending reductions where ``lasts`` is 1."""
    stages: list[tuple[bool, int]] = [(False, 0)] * pipeline
    out_valid, k, done, c = False, 0, 0, 0
    n_out = sum(lasts)
    while True:
        ready = out_ready[c % len(out_ready)]
        if out_valid and ready:
            done += 1
            if done == n_out:
                return c + 1
        if not out_valid or ready:  # the pipeline advances
            fire = k < len(lasts) and in_valid[c % len(in_valid)]
            new = (fire, lasts[k] if fire else 0)
            k += fire
            tail = stages[-1] if pipeline else new
            out_valid = tail[0] and bool(tail[1])
            stages = [new] + stages[:-1] if pipeline else stages
        c += 1
        assert c < 10**6


PATTERNS = [([True], [True, False, False]), ([True, False, True, True, False], [True]),
            ([False, True, True], [True, True, False, True, False, False, False])]


BP_CASES = [(4, "e4m3", "int8", 2, 9), (1, "int4", "uint4", 0, 3), (3, "e2m1", "e5m2", 3, 1)]


@pytest.mark.parametrize("in_valid,out_ready", PATTERNS)
@pytest.mark.parametrize("case,backend", backend_params(BP_CASES, 1, lambda c: "-".join(map(str, c))))
def test_backpressure_changes_only_time(case, backend, in_valid, out_ready):
    lanes, wname, aname, pipeline, k = case
    config = dot.DotConfig(lanes, wname, aname, 64, pipeline)
    wl = dot.random_workload(config, k, 5, seed=5)
    got, res = run_engine(dot, config, wl, backend, in_valid=in_valid, out_ready=out_ready)
    assert_exact(got, dot.reference(config, wl))
    _, _, lasts = dot.dense_beats(config, wl)
    assert res.cycles == stalled_cycles(pipeline, list(lasts), in_valid, out_ready)
    assert res.cycles >= dot.cycles(config, wl)


def test_stall_model_matches_closed_form():
    for p in range(4):
        lasts = [0, 0, 1] * 5
        assert stalled_cycles(p, lasts, [True], [True]) == len(lasts) + p + 1


# ---- configuration errors and (de)serialization ---------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(lanes=0), "lanes must be an integer >= 1"),
    (dict(lanes=-2), "lanes must be an integer >= 1"),
    (dict(lanes=2.5), "lanes must be an integer >= 1"),
    (dict(k_max=0), "k_max must be an integer >= 1"),
    (dict(pipeline=-1), "pipeline must be an integer >= 0"),
    (dict(pipeline=5), "use pipeline <= 4"),
    (dict(wfmt="int9"), "Valid formats"),
    (dict(afmt="e9m9"), "Valid formats"),
])
def test_bad_configs_raise_clear_errors(kwargs, match):
    base = dict(lanes=8, wfmt="int8", afmt="int8", k_max=64, pipeline=1)
    with pytest.raises(ValueError, match=match):
        dot.DotConfig(**{**base, **kwargs})


def test_bad_workloads_raise_clear_errors():
    config = dot.DotConfig(4, "e4m3ocp", "int8n", 16)
    with pytest.raises(WorkloadError, match="K=17 exceeds k_max=16"):
        dot.random_workload(config, 17, 2, seed=0)
    wl = dot.Workload(np.zeros((2, 17), np.uint8), np.zeros((2, 17), np.uint8))
    for fn in (dot.pack_inputs, dot.reference, dot.cycles):
        with pytest.raises(WorkloadError, match="exceeds k_max"):
            fn(config, wl)
    nan = dot.Workload(np.array([[0x7F, 0]], np.uint8), np.zeros((1, 2), np.uint8))
    with pytest.raises(WorkloadError, match=r"w_codes\[0, 0\] = 127 is not a finite e4m3ocp value"):
        dot.pack_inputs(config, nan)
    narrow = dot.Workload(np.zeros((1, 2), np.uint8), np.array([[0, 0x80]], np.uint8))
    with pytest.raises(WorkloadError, match=r"a_codes\[0, 1\] = 128 is not a finite int8n value"):
        dot.reference(config, narrow)
    with pytest.raises(WorkloadError, match="same shape"):
        dot.Workload(np.zeros((2, 3), np.uint8), np.zeros((2, 4), np.uint8))


def test_config_round_trips_through_json():
    assert json.dumps(dot.DotConfig(np.int64(4), "int8", "int8", np.int32(9)).to_dict())  # numpy ints normalized
    config = dot.DotConfig(8, "e4m3ocp", "uint4", 512, 2)
    d = json.loads(json.dumps(config.to_dict()))
    assert d["wfmt"] == "e4m3ocp" and d["engine"] == "dot"
    assert dot.DotConfig.from_dict(d) == config == config_from_dict(d)
    assert ENGINES["dot"] is dot
    with pytest.raises(ConfigError, match="unknown DotConfig keys"):
        dot.DotConfig.from_dict({**d, "lane": 3})
    with pytest.raises(ConfigError, match="not 'dot'"):
        dot.DotConfig.from_dict({**d, "engine": "sparse"})


def test_output_width_is_acc_bits():
    config = dot.DotConfig(8, "e5m2", "e5m2", 4608)
    assert config.acc_bits == acc_bits("e5m2", "e5m2", 4608) > 62
    assert dot.unpack_outputs(config, [(1 << config.acc_bits) - 1]).tolist() == [-1]
    assert dot.unpack_outputs(config, [1 << (config.acc_bits - 1)])[0] == -(1 << (config.acc_bits - 1))


# ---- long random runs through Verilator ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif("verilator" not in SIM_BACKENDS, reason="needs hw/verilator.py")
def test_10k_random_vectors_verilator():
    config = dot.DotConfig(8, "e4m3", "int8", 256, 2)
    wl = dot.random_workload(config, 61, 10_000, seed=2026)
    got, res = run_engine(dot, config, wl, "verilator", in_valid=[True, True, False], out_ready=[True, False])
    assert_exact(got, dot.reference(config, wl))
    got2, res2 = run_engine(dot, config, wl, "verilator")
    assert_exact(got2, dot.reference(config, wl))
    assert res2.cycles == dot.cycles(config, wl)
