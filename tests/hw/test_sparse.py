"""N:M (+ block) sparse engine: exact outputs and closed-form cycles on random configs, the same
outputs as the dense engine on the same problem, compression checked by brute force, clear
errors for configs and weight matrices that break the pattern."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from hw import dot, sparse
from hw.arith import WorkloadError
from hw.engine import tree_levels
from hw.engines import ENGINES, config_from_dict
from quant.reference import decode

from .conftest import SIM_BACKENDS, assert_exact, backend_params, run_engine
from .test_dot import INT_FORMATS, MF_FORMATS, PATTERNS, format_pairs, stalled_cycles

NM = [(1, 2), (1, 4), (2, 4), (2, 8), (4, 8), (3, 4), (1, 8), (4, 4)]


def random_sparse_cases(count: int, seed: int) -> list[tuple]:
    """(config, k, vectors, seed) tuples over every format, several n:m, with and without block."""
    rng = np.random.default_rng(seed)
    wnames, anames = format_pairs(rng, count)
    cases = []
    for j in range(count):
        n, m = NM[j % len(NM)]
        lanes = n * int(rng.integers(1, max(2, 8 // n + 1)))
        span = lanes // n * m
        block = None if j % 3 == 0 else span * int(rng.integers(1, 3))
        pipeline = int(rng.integers(0, tree_levels(lanes) + 2))
        k = int(rng.integers(1, 50))
        cfg = sparse.SparseConfig(lanes, n, m, wnames[j], anames[j], k + int(rng.choice([0, 7, 3000])),
                                  block, pipeline)
        cases.append((cfg, k, 5, 200 + j))
    return cases


CASES = random_sparse_cases(24, seed=4)


def _case_id(case) -> str:
    c, k = case[0], case[1]
    return f"{c.lanes}l{c.n}of{c.m}b{c.block}x{c.wfmt}x{c.afmt}-p{c.pipeline}-k{k}"


def test_cases_cover_formats_nm_and_blocks():
    used = {str(c[0].wfmt) for c in CASES} | {str(c[0].afmt) for c in CASES}
    assert used >= set(INT_FORMATS + MF_FORMATS)
    assert {(c[0].n, c[0].m) for c in CASES} == set(NM)
    assert any(c[0].block for c in CASES) and any(c[0].block is None for c in CASES)


@pytest.mark.parametrize("case,backend", backend_params(CASES, 2, _case_id))
def test_sparse_matches_reference_and_cycles(case, backend):
    config, k, vectors, seed = case
    wl = sparse.random_workload(config, k, vectors, seed)
    got, res = run_engine(sparse, config, wl, backend)
    assert_exact(got, sparse.reference(config, wl))
    assert res.cycles == sparse.cycles(config, wl)


@pytest.mark.parametrize("case", CASES[:12], ids=_case_id)
def test_sparse_equals_dense_engine_on_the_same_problem(case):
    config, k, vectors, seed = case
    wl = sparse.random_workload(config, k, vectors, seed)
    dense_cfg = dot.DotConfig(config.lanes, config.wfmt, config.afmt, config.k_max, pipeline=1)
    got_sparse, _ = run_engine(sparse, config, wl)
    got_dense, _ = run_engine(dot, dense_cfg, wl)
    assert_exact(got_sparse, got_dense)


def test_dense_weights_through_an_m_of_m_engine_equal_the_dense_engine():
    config = sparse.SparseConfig(4, 4, 4, "e4m3", "int8", 64)
    dense_cfg = dot.DotConfig(4, "e4m3", "int8", 64)
    wl = dot.random_workload(dense_cfg, 23, 6, seed=9)  # fully dense weights
    assert_exact(run_engine(sparse, config, wl)[0], run_engine(dot, dense_cfg, wl)[0])


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_reference_equals_rational_sum(case):
    config, k, vectors, seed = case
    wl = sparse.random_workload(config, k, vectors, seed)
    unit = Fraction(2) ** sparse.output_exponent(config)
    wv, av = decode(wl.w_codes, config.wfmt), decode(wl.a_codes, config.afmt)
    ref = sparse.reference(config, wl)
    for r in range(vectors):
        assert int(ref[r]) * unit == sum(Fraction(x) * Fraction(y) for x, y in zip(wv[r], av[r]))


def test_random_workload_obeys_pattern_and_has_edge_codes():
    config = sparse.SparseConfig(4, 2, 4, "e4m3", "e2m1", 256, block=32)
    wl = sparse.random_workload(config, 256, 8, seed=1)
    w = decode(wl.w_codes, "e4m3")
    nz = (w != 0).reshape(8, -1, 4).sum(axis=2)
    assert nz.max() == 2, "at most n per group, and groups that use all n"
    assert ((w == 0) & np.signbit(w)).any(), "negative zero weights"
    assert (np.abs(w) == 480).any() and (np.abs(w) == 2.0**-9).any()
    blocks = (w != 0).reshape(8, -1, 32).any(axis=2)
    assert (~blocks).any() and blocks.any(), "some all-zero blocks, some live ones"


# ---- block skipping: cycles counted by hand ---------------------------------------------------------


def test_block_skipping_cycles_by_hand(backend):
    # 2:4, 4 lanes -> span 8 dense weights per beat; block 16 = 2 beats; K = 48 = 3 blocks
    config = sparse.SparseConfig(4, 2, 4, "int8", "int8", 64, block=16, pipeline=2)
    w = np.zeros((4, 48), np.uint8)
    w[1, 20] = 3  # vector 1: block 1 only
    w[2, 0], w[2, 47] = 1, 0xFF  # vector 2: blocks 0 and 2
    w[3, ::2] = 5  # vector 3: every block, 2 non-zeros in each group of 4
    a = np.random.default_rng(0).integers(0, 256, (4, 48)).astype(np.uint8)
    wl = dot.Workload(w, a)
    beats = [1, 2, 4, 6]  # an all-zero vector still sends one beat
    assert sparse.cycles(config, wl) == sum(beats) + 2 + 1
    got, res = run_engine(sparse, config, wl, backend)
    assert res.cycles == sum(beats) + 3
    want = (w.astype(np.int64) - 256 * (w >= 128)) @ np.eye(48, dtype=np.int64) * (a.astype(np.int64) - 256 * (a >= 128))
    assert_exact(got, want.sum(axis=1))
    no_block = sparse.SparseConfig(4, 2, 4, "int8", "int8", 64, pipeline=2)
    assert sparse.cycles(no_block, wl) == 4 * 6 + 3


@pytest.mark.parametrize("in_valid,out_ready", PATTERNS)
@pytest.mark.parametrize("case,backend", backend_params(CASES[:1] + CASES[4:6], 1, _case_id))
def test_backpressure_changes_only_time(case, backend, in_valid, out_ready):
    config, k, vectors, seed = case
    wl = sparse.random_workload(config, k, vectors, seed)
    got, res = run_engine(sparse, config, wl, backend, in_valid=in_valid, out_ready=out_ready)
    assert_exact(got, sparse.reference(config, wl))
    lasts = list(sparse.sparse_beats(config, wl)[3])
    assert res.cycles == stalled_cycles(config.pipeline, lasts, in_valid, out_ready)
    assert res.cycles >= sparse.cycles(config, wl)


# ---- compression ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n,m", NM)
def test_compress_round_trip_brute_force(n, m):
    rng = np.random.default_rng(n * 10 + m)
    rows, k = 5, 4 * m
    w = np.zeros((rows, k))
    for r in range(rows):
        for g in range(k // m):
            cnt = rng.integers(0, n + 1)
            pos = rng.choice(m, cnt, replace=False)
            w[r, g * m + pos] = rng.normal(size=cnt)
    vals, idx = sparse.compress(w, n, m)
    assert vals.shape == idx.shape == (rows, k // m * n)
    back = np.zeros_like(w)
    for r in range(rows):
        for j in range(vals.shape[1]):
            g = j // n
            back[r, g * m + idx[r, j]] += vals[r, j]
            assert 0 <= idx[r, j] < m
    np.testing.assert_array_equal(back, w)


def test_compress_codes_treat_negative_zero_as_zero():
    w = np.array([[0x80, 0x38, 0x80, 0x00]], np.uint8)  # e4m3: -0, 1.0, -0, +0
    vals, idx = sparse.compress(w, 1, 4, "e4m3")
    assert vals.tolist() == [[0x38]] and idx.tolist() == [[1]]
    with pytest.raises(sparse.NMPatternError):
        sparse.compress(w, 1, 4, "int8")  # as int8, 0x80 is -128


def test_compress_names_the_first_violating_group():
    w = np.zeros((3, 16))
    w[1, 8:11] = 1.0  # row 1, group 2: three non-zeros
    w[2, 0:4] = 1.0  # a later row also breaks it
    with pytest.raises(sparse.NMPatternError, match=r"2:4 sparsity: row 1, group 2 \(columns 8..11\) has 3 non-zeros"):
        sparse.compress(w, 2, 4)
    with pytest.raises(WorkloadError, match="multiple of m=4"):
        sparse.compress(np.zeros((1, 6)), 2, 4)


def test_weights_breaking_nm_are_rejected_by_the_engine_api():
    config = sparse.SparseConfig(4, 2, 4, "int8", "int8", 64)
    w = np.zeros((2, 12), np.uint8)
    w[1, 5:8] = 1
    wl = dot.Workload(w, np.ones((2, 12), np.uint8))
    for fn in (sparse.pack_inputs, sparse.reference):
        with pytest.raises(sparse.NMPatternError, match=r"row 1, group 1 \(columns 4..7\) has 3 non-zeros"):
            fn(config, wl)


# ---- configuration errors and (de)serialization ------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(lanes=0), "lanes must be an integer >= 1"),
    (dict(n=5), "n=5 > m=4"),
    (dict(n=0), "n must be an integer >= 1"),
    (dict(m=6, n=2), "m=6 is not a power of two"),
    (dict(m=1, n=1), "m must be an integer >= 2"),
    (dict(lanes=6, n=4, m=8), "lanes=6 is not a multiple of n=4"),
    (dict(block=12), "block=12 is not a multiple of the beat span lanes/n\\*m = 16"),
    (dict(block=0), "block must be an integer >= 1"),
    (dict(k_max=0), "k_max must be an integer >= 1"),
    (dict(pipeline=9), "pipeline <= 4"),
    (dict(wfmt="fp8"), "Valid formats"),
])
def test_bad_configs_raise_clear_errors(kwargs, match):
    base = dict(lanes=8, n=2, m=4, wfmt="int8", afmt="int8", k_max=64)
    with pytest.raises(ValueError, match=match):
        sparse.SparseConfig(**{**base, **kwargs})


def test_k_above_k_max_is_rejected():
    config = sparse.SparseConfig(4, 2, 4, "e2m1", "e2m1", 16)
    with pytest.raises(WorkloadError, match="K=17 exceeds k_max=16"):
        sparse.random_workload(config, 17, 1, seed=0)
    wl = dot.Workload(np.zeros((1, 17), np.uint8), np.zeros((1, 17), np.uint8))
    for fn in (sparse.pack_inputs, sparse.reference, sparse.cycles):
        with pytest.raises(WorkloadError, match="exceeds k_max"):
            fn(config, wl)


def test_config_round_trips_through_json():
    config = sparse.SparseConfig(8, 2, 8, "e5m2", "uint8", 1024, block=64, pipeline=3)
    d = json.loads(json.dumps(config.to_dict()))
    assert d["engine"] == "sparse" and d["block"] == 64
    assert sparse.SparseConfig.from_dict(d) == config == config_from_dict(d)
    assert ENGINES["sparse"] is sparse and set(ENGINES) == {"dot", "sparse", "swa"}
    with pytest.raises(ValueError, match="unknown engine 'conv'"):
        config_from_dict({**d, "engine": "conv"})


# ---- long random runs through Verilator ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif("verilator" not in SIM_BACKENDS, reason="needs hw/verilator.py")
@pytest.mark.parametrize("block", [None, 64])
def test_10k_random_vectors_verilator(block):
    config = sparse.SparseConfig(8, 2, 4, "e4m3", "int8", 256, block=block, pipeline=2)
    wl = sparse.random_workload(config, 128, 10_000, seed=2026)
    got, res = run_engine(sparse, config, wl, "verilator")
    assert_exact(got, sparse.reference(config, wl))
    assert res.cycles == sparse.cycles(config, wl)
    got2, _ = run_engine(sparse, config, wl, "verilator", in_valid=[True, False, True], out_ready=[False, True])
    assert_exact(got2, sparse.reference(config, wl))
