"""A pruned, then quantized MAP student's head layer on the N:M (+ block) sparse engine: exported
codes keep the pruning structure (a pruned weight quantizes to a zero code), the compressed form
reconstructs the dense codes, and the simulated engine (pysim, Verilator) gives exactly the
integers of an independent fixed-point matmul of the dense pruned codes, in the closed-form cycles
with blocks skipped."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hw import sparse
from models import prune as P
from paretofab import mapping
from quant.export import capture_inputs, export_activation, export_layer
from quant.ptq import quant_layers, quantize_model
from quant.reference import decode, fixed_point

from tests.students import trained_student

from .conftest import SIM_BACKENDS, assert_exact, run_engine

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def student():
    return trained_student(rows=2000, epochs=1)


def _exported_head(student, pattern, wfmt, afmt, samples):
    model, sp = student
    pruned = P.finetune(copy.deepcopy(model), pattern, sp, P.PruneConfig("class", "top32", epochs=1, progress=False))
    q = quantize_model(pruned, wfmt, afmt, calib_data=sp["x_train"][:256])
    head = dict(quant_layers(q))["head"]
    inp = capture_inputs(q, torch.as_tensor(sp["x_test"][:samples]), {"head": head})["head"]
    return pruned, export_layer(head, inp, name="head"), export_activation(inp)


CASES = [("2:4+b8k0.5", "int8", "int8", 8, 3), ("1:4", "e4m3", "e2m3", 16, 2), ("2:4+b8k0.5", "int4", "e2m1", 4, 2)]


@pytest.fixture(scope="module")
def exported(student):
    return {c: _exported_head(student, *c[:3], c[4]) for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}")
def test_pruned_quantized_head_on_sparse_engine_is_exact(exported, case):
    pattern, wfmt, afmt, lanes, samples = case
    pruned, ex, act = exported[case]
    w_float = pruned.head.weight.detach().numpy()
    wv = decode(ex.w_codes, ex.wfmt)
    assert (wv[w_float == 0] == 0).all(), "a pruned weight must quantize to a zero code"
    assert (wv != 0).sum() > 0.8 * (w_float != 0).sum(), "most kept weights survive quantization"
    P.check_pattern(wv, pattern)

    config = mapping.engine_config(pattern, ex.wfmt, ex.afmt, k_max=ex.w_codes.shape[1], lanes=lanes, pipeline=2)
    p = P.parse_pattern(pattern)
    assert (config.n, config.m, config.block) == (p.n, p.m, p.block if p.has_blocks else None)
    wl, out_ch = mapping.sparse_workload(ex.w_codes, ex.wfmt, act.codes, pattern)

    # the compressed form holds the dense codes: scatter values back to their indices
    vals, idx = sparse.compress(wl.w_codes, config.n, config.m, config.wfmt)
    back = np.zeros(wl.w_codes.shape, np.float64)
    groups = np.repeat(np.arange(wl.k // config.m) * config.m, config.n)
    np.put_along_axis(back, groups[None, :] + idx.astype(np.int64), decode(vals, config.wfmt), axis=1)
    np.testing.assert_array_equal(back, decode(wl.w_codes, config.wfmt))

    got, res = run_engine(sparse, config, wl, "pysim")
    # independent reference: integer matmul of the dense pruned codes
    wi, kw = fixed_point(ex.w_codes, ex.wfmt)
    ai, ka = fixed_point(act.codes.reshape(samples, -1), ex.afmt)
    e = sparse.output_exponent(config)
    want = (ai.astype(object) @ wi.astype(object).T).reshape(-1) * (2 ** (kw + ka - e))
    assert_exact(got, want)
    assert_exact(got, sparse.reference(config, wl))
    assert np.count_nonzero(got) > len(got) // 2
    assert res.cycles == sparse.cycles(config, wl)
    if p.has_blocks:  # 2 of 4 blocks of 8 per row, span 8: 2 beats per vector instead of 4
        assert config.span == 8
        assert res.cycles == wl.vectors * 2 + config.pipeline + 1
    # dequantized, the engine's integers give the quantized layer's float output (the float32
    # weights Brevitas holds: within float32 rounding of each product)
    y = ex.dequantize(got, e, out_ch)
    w = ex.weight_values().astype(np.float64)
    a = act.values().reshape(samples, -1).astype(np.float64)
    mag = (np.abs(a) @ np.abs(w).T).reshape(-1) + np.abs(np.tile(ex.bias, samples))
    err = np.abs(y - (a @ w.T + ex.bias[None, :]).reshape(-1))
    assert (err <= (wl.k + 2) * 2.0**-24 * mag).all(), err.max()


@pytest.mark.skipif("verilator" not in SIM_BACKENDS, reason="hw/verilator.py not in git")
def test_pruned_head_on_verilator_equals_pysim(exported):
    case = CASES[0]
    pattern, _, _, lanes, _ = case
    _, ex, act = exported[case]
    config = mapping.engine_config(pattern, ex.wfmt, ex.afmt, k_max=ex.w_codes.shape[1], lanes=lanes, pipeline=2)
    wl, _ = mapping.sparse_workload(ex.w_codes[:64], ex.wfmt, act.codes[:1], pattern)
    got_v, res_v = run_engine(sparse, config, wl, "verilator")
    got_p, res_p = run_engine(sparse, config, wl, "pysim")
    assert_exact(got_v, got_p)
    assert_exact(got_v, sparse.reference(config, wl))
    assert res_v.cycles == res_p.cycles == sparse.cycles(config, wl)


def test_engine_config_picks_lanes_whose_span_divides_the_block():
    c = mapping.engine_config("2:4+b8k0.5", "int8", "int8", 36, lanes=16)
    assert (c.lanes, c.span, c.block, c.k_max) == (4, 8, 8, 40)
    c = mapping.engine_config("1:4+b16k0.5", "int8", "int8", 36, lanes=16)
    assert (c.lanes, c.span, c.block) == (4, 16, 16)
    c = mapping.engine_config("2:4", "int8", "int8", 36, lanes=16)
    assert (c.lanes, c.span, c.block, c.k_max) == (16, 32, None, 64)
    c = mapping.engine_config("2:4+b8k1", "int8", "int8", 36, lanes=16)  # keep 1: nothing to skip
    assert (c.lanes, c.block) == (16, None)
    with pytest.raises(P.PruneError, match="multiple of M"):
        mapping.engine_config("2:4+b6k0.5", "int8", "int8", 36)


def test_export_refuses_codes_that_break_the_pattern():
    w = np.zeros((2, 8), np.uint8)
    w[0, :3] = 1
    with pytest.raises(P.PruneError, match="exported weight codes breaks 2:4"):
        mapping.sparse_workload(w, "int8", np.ones((1, 8), np.uint8), "2:4")
