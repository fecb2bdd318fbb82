"""Whole-network dataflow accelerators (issue 16, items 3-4): random chains of convolution, pool
and fully connected stages in random integer and minifloat formats, lanes, pipelines and
per-channel requantizers. The RTL equals the numpy model of the plan on every stage's output, under
back-pressure too; the cycles equal the closed-form schedule; the numpy model's convolution
equals a brute-force loop over output positions and kernel taps."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from hw.arith import acc_bits, finite_codes
from hw.dataflow.plan import NetworkPlan, Stage, conv_windows, pool_windows, run_plan, schedule
from hw.dataflow.sim import simulate_plan
from hw.activation import ActivationSpec, thresholds
from hw.requant import RequantSpec
from quant.reference import requantize
from quant.formats import parse_format

from .conftest import SIM_BACKENDS

INTS = ["int2", "int3", "int4", "int5n", "int8", "uint3", "uint4", "uint8"]
#: integer and minifloat formats (subnormals, flush, OCP, a non-default bias, a wide exponent)
MIXED = [*INTS, "e2m1", "e3m2", "e4m3", "e2m3", "e4m3ocp", "e3m2nosub", "e3m1b1", "e5m2"]


def _requant(rng: random.Random, wfmt: str, afmt: str, k: int, channels: int, out: str, relu: bool) -> RequantSpec:
    """Per-channel multipliers and shifts that map the accumulator's typical range onto ``out``."""
    ab = acc_bits(wfmt, afmt, k)
    spread = max(1, ab - 2 - parse_format(out).bits)  # typical sums use a few bits less than the worst case
    mults = tuple(rng.randint(1 << 11, (1 << 12) - 1) for _ in range(channels))
    shifts = tuple(12 + spread + rng.randint(-2, 1) for _ in range(channels))
    biases = tuple(rng.randint(-(1 << spread), 1 << spread) for _ in range(channels)) if rng.random() < 0.7 else None
    return RequantSpec(ab, mults, shifts, out, relu=relu, biases=biases)


def _elements(rng: np.random.Generator, fmt: str, shape) -> np.ndarray:
    """Random elements: integer values, or finite minifloat codes (-0 included)."""
    f = parse_format(fmt)
    if f.kind == "minifloat":
        return rng.choice(finite_codes(f).astype(np.int64), shape)
    return rng.integers(f.min_int, f.max_int + 1, shape)


def _prune(rng: random.Random, w: np.ndarray, lanes: int) -> tuple[np.ndarray, tuple[int, int] | None, int]:
    """Half the time: ``w`` pruned to a random N:M pattern along K (the largest magnitudes of
    each group kept, K zero-padded to whole groups) and lanes a multiple of N."""
    if rng.random() < 0.5:
        return w, None, lanes
    n, m = rng.choice([(1, 2), (2, 4), (1, 4), (3, 8)])
    return _nm_prune(w, n, m), (n, m), n * rng.randint(1, 3)


def _nm_prune(w: np.ndarray, n: int, m: int, segments: tuple[int, ...] | None = None) -> np.ndarray:
    """``w`` with the ``n`` largest magnitudes of every group of ``m`` kept, groups counted from
    the start of each segment (segments pad to whole beats, hence whole groups)."""
    if segments is not None:
        cuts = np.cumsum((0, *segments))
        return np.concatenate([_nm_prune(w[:, a:b], n, m) for a, b in zip(cuts, cuts[1:])], axis=1)
    k = w.shape[1]
    g = np.pad(w, ((0, 0), (0, -k % m))).reshape(w.shape[0], -1, m)
    order = np.argsort(-np.abs(g), axis=2, kind="stable")
    keep = np.zeros_like(g, dtype=bool)
    np.put_along_axis(keep, order[:, :, :n], True, axis=2)
    return np.where(keep, g, 0).reshape(w.shape[0], -1)[:, :k]


def random_plan(seed: int, formats: list[str] = INTS) -> NetworkPlan:
    """A random conv (→ pool) → fully connected chain, small enough for pysim; MAC stages dense
    or N:M sparse; every format drawn from ``formats``."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    fmt = rng.choice(formats)
    c, h, w = rng.randint(1, 2), rng.randint(3, 6), rng.randint(3, 6)
    stages, size = [], c * h * w
    if rng.random() < 0.8:
        kh, kw = rng.randint(1, 3), rng.randint(1, 3)
        stride = (rng.randint(1, 2), rng.randint(1, 2))
        pads = tuple(rng.randint(0, 1) for _ in range(4))
        win = conv_windows((c, h, w), (kh, kw), stride, pads)
        oc, wfmt, out = rng.randint(1, 3), rng.choice(formats), rng.choice(formats)
        wt, nm, lanes = _prune(rng, _elements(nrng, wfmt, (oc, win.shape[1])), rng.randint(1, win.shape[1]))
        stages.append(Stage("conv", "mac", fmt, size, win, wt, wfmt, lanes,
                            rng.randint(0, 1 + (lanes - 1).bit_length()),
                            _requant(rng, wfmt, fmt, win.shape[1], oc, out, rng.random() < 0.5), nm=nm))
        oh = (h + pads[0] + pads[2] - kh) // stride[0] + 1
        ow = (w + pads[1] + pads[3] - kw) // stride[1] + 1
        c, h, w, size, fmt = oc, oh, ow, stages[-1].out_size, out
        if h >= 2 and w >= 2 and rng.random() < 0.6:
            stages.append(Stage("pool", "pool", fmt, size, pool_windows((c, h, w), (2, 2), (rng.randint(1, 2),) * 2)))
            size = stages[-1].out_size
    n_out, wfmt = rng.randint(1, 4), rng.choice(formats)
    wt, nm, lanes = _prune(rng, _elements(nrng, wfmt, (n_out, size)), rng.randint(1, size))
    stages.append(Stage("fc", "mac", fmt, size, np.arange(size)[None], wt, wfmt, lanes,
                        rng.randint(0, 1 + (lanes - 1).bit_length()),
                        bias=tuple(rng.randint(-50, 50) for _ in range(n_out)), relu=rng.random() < 0.3, nm=nm))
    return NetworkPlan(f"rand{seed}", stages)


def random_residual_plan(seed: int) -> NetworkPlan:
    """A combining stage as a residual join makes it: its input is two tensors side by side (the
    body's output and the carried skip tensor), its window two segments (a conv over the first,
    a 1x1 over the second) with random per-channel multipliers, bias, ReLU, and half the time a
    global sum over positions; then a fully connected stage. Dense or N:M."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    fmt, wfmt = rng.choice(INTS), rng.choice(INTS)
    c1, c2, h, w = rng.randint(1, 3), rng.randint(1, 3), rng.randint(2, 4), rng.randint(2, 4)
    kh = rng.choice([1, 3])
    main = conv_windows((c1, h, w), (kh, kh), (1, 1), (kh // 2,) * 4)
    skip = conv_windows((c2, h, w), (1, 1), (1, 1), (0,) * 4) + c1 * h * w
    win, oc = np.concatenate([main, skip], axis=1), rng.randint(1, 3)
    segments = (main.shape[1], c2)
    wt, nm, lanes = _prune(rng, _elements(nrng, wfmt, (oc, win.shape[1])), rng.randint(1, win.shape[1]))
    if nm is not None:
        wt = _nm_prune(_elements(nrng, wfmt, (oc, win.shape[1])), *nm, segments)
    mults = tuple(tuple(rng.randint(1, 1 << rng.randint(0, 17)) for _ in range(oc)) for _ in range(2))
    mean = rng.random() < 0.5
    st = Stage("res", "mac", fmt, (c1 + c2) * h * w, win, wt, wfmt, lanes, rng.randint(0, 1 + (lanes - 1).bit_length()),
               None, bias=tuple(rng.randint(-1 << 12, 1 << 12) for _ in range(oc)), relu=rng.random() < 0.6, nm=nm,
               segments=segments, seg_mults=mults, mean=mean)
    out = rng.choice(INTS)
    width = st.combined_bits
    st.requant = RequantSpec(width, tuple(rng.randint(1 << 11, (1 << 12) - 1) for _ in range(oc)),
                             tuple(12 + max(1, width - 6 - parse_format(out).bits) + rng.randint(-2, 1) for _ in range(oc)),
                             out)
    st.__post_init__()
    n_out, wfmt2 = rng.randint(1, 3), rng.choice(INTS)
    fc = Stage("fc", "mac", out, st.out_size, np.arange(st.out_size)[None], _elements(nrng, wfmt2, (n_out, st.out_size)),
               wfmt2, rng.randint(1, st.out_size), 0, bias=(0,) * n_out)
    return NetworkPlan(f"res{seed}", [st, fc])


@pytest.mark.parametrize("seed", range(8))
def test_residual_join_stage_equals_numpy_model(seed):
    """Segments with per-channel multipliers, bias, ReLU and the sum over positions: RTL == numpy
    model on every stage, in the closed-form cycles; and the numpy model == a brute-force loop."""
    plan = random_residual_plan(seed)
    x = _inputs(plan, 2, seed)
    ref = _check_rtl(plan, x)
    st = plan.stages[0]
    for f in range(len(x)):
        vals = []
        for o in range(st.channels):
            per_p = []
            for p in range(st.positions):
                k0 = st.segments[0]
                elem = [x[f, a] if a >= 0 else 0 for a in st.windows[p]]
                t = sum(int(st.weights[o, k]) * int(elem[k]) for k in range(k0)) * st.seg_mults[0][o] + \
                    sum(int(st.weights[o, k]) * int(elem[k]) for k in range(k0, st.k)) * st.seg_mults[1][o] + st.bias[o]
                per_p.append(max(t, 0) if st.relu else t)
            rq = st.requant
            for t in ([sum(per_p)] if st.mean else per_p):
                vals.append(int(requantize(t, rq.multipliers[o], rq.shifts[o], rq.fmt)))
        assert vals == list(ref[0][f])


def _inputs(plan: NetworkPlan, frames: int, seed: int) -> np.ndarray:
    return _elements(np.random.default_rng(seed), plan.stages[0].in_fmt, (frames, plan.in_size))


def _check_rtl(plan: NetworkPlan, x: np.ndarray) -> list[np.ndarray]:
    """pysim of ``x`` through the plan's RTL: every stage equal to the numpy model, cycles to the
    closed form; returns the model's outputs."""
    run = simulate_plan(plan, x, "pysim")
    ref = run_plan(plan, x)
    for st, got, want in zip(plan.stages, run.stages, ref):
        assert np.array_equal(got, want), f"stage {st.name} of {[s.name for s in plan.stages]}"
    assert run.cycles == run.schedule.cycles
    return ref


@pytest.mark.parametrize("seed,formats", [(s, INTS) for s in range(16)] + [(s, MIXED) for s in range(100, 110)])
def test_rtl_equals_numpy_model_on_every_stage_and_cycles_equal_closed_form(seed, formats):
    plan = random_plan(seed, formats)
    _check_rtl(plan, _inputs(plan, 3, seed))


def _thresholded(plan: NetworkPlan) -> NetworkPlan:
    """``plan`` with every requantizer (and rescale, folded in) as a threshold table."""
    stages = [replace(st, requant=thresholds(st.requant, st.rescale), rescale=None)
              if isinstance(st.requant, RequantSpec) else st for st in plan.stages]
    return NetworkPlan(plan.name + "_thr", stages)


@pytest.mark.parametrize("seed,formats", [(1, INTS), (4, INTS), (7, INTS), (103, MIXED), (3, "residual")])
def test_threshold_tables_in_place_of_multipliers_give_the_same_codes(seed, formats):
    """FINN-style thresholds (hw.activation.thresholds) instead of each stage's multiplier
    requantizer: the RTL equals its numpy model, in the closed-form cycles, and every stage's
    codes equal the multiplier plan's."""
    plan = random_residual_plan(seed) if formats == "residual" else random_plan(seed, formats)
    th = _thresholded(plan)
    assert any(isinstance(st.requant, ActivationSpec) for st in th.stages)
    x = _inputs(plan, 2, seed)
    for got, want in zip(_check_rtl(th, x), run_plan(plan, x)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", [0, 5])
def test_back_pressure_and_input_gaps_keep_outputs_exact(seed):
    plan = random_plan(seed)
    x = _inputs(plan, 3, seed + 100)
    run = simulate_plan(plan, x, "pysim", out_ready=[1, 0, 0, 1, 0], in_valid=[0, 1, 1])
    assert np.array_equal(run.outputs, run_plan(plan, x)[-1])
    assert run.cycles > run.schedule.cycles  # the sink stalls it


@pytest.mark.skipif("verilator" not in SIM_BACKENDS, reason="verilator backend not in git")
@pytest.mark.parametrize("seed,formats", [(3, INTS), (104, MIXED), (6, "residual")])
def test_verilator_backend_equals_numpy_model_and_closed_form(seed, formats):
    plan = random_residual_plan(seed) if formats == "residual" else random_plan(seed, formats)
    x = _inputs(plan, 4, 9)
    run = simulate_plan(plan, x, "verilator")
    assert np.array_equal(run.outputs, run_plan(plan, x)[-1]) and run.cycles == run.schedule.cycles


def test_conv_windows_equal_brute_force_convolution():
    """run_plan's convolution through conv_windows equals a loop over positions and taps."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        c, h, w = rng.integers(1, 4), rng.integers(2, 7), rng.integers(2, 7)
        kh, kw = rng.integers(1, 4, 2)
        sh, sw = rng.integers(1, 3, 2)
        pads = tuple(int(p) for p in rng.integers(0, 2, 4))
        oc = int(rng.integers(1, 4))
        x = rng.integers(-8, 8, (2, c, h, w))
        wt = rng.integers(-8, 8, (oc, c, kh, kw))
        win = conv_windows((c, h, w), (kh, kw), (sh, sw), pads)
        st = Stage("c", "mac", "int4", c * h * w, win, wt.reshape(oc, -1), "int4", 1, 0, bias=(0,) * oc)
        got = run_plan(NetworkPlan("c", [st]), x.reshape(2, -1))[0]
        xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
        oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
        want = np.zeros((2, oc, oh, ow), dtype=np.int64)
        for o in range(oc):
            for y in range(oh):
                for z in range(ow):
                    want[:, o, y, z] = (xp[:, :, y * sh:y * sh + kh, z * sw:z * sw + kw] * wt[o]).sum(axis=(1, 2, 3))
        assert np.array_equal(got.astype(np.int64), want.reshape(2, -1))


def test_one_stage_closed_form_by_hand():
    """One fully connected stage, one frame: in_size input cycles, then O·ceil(K/lanes) beats,
    then the pipeline and its three registers."""
    st = Stage("fc", "mac", "int8", 10, np.arange(10)[None], np.ones((3, 10), int), "int8", 4, 2, bias=(0, 0, 0))
    sch = schedule(NetworkPlan("one", [st]), 1)
    assert sch.cycles == 10 + 3 * 3 + 2 + 3


def test_bad_plans_are_refused():
    from hw.arith import ConfigError

    with pytest.raises(ConfigError, match="addresses"):
        Stage("p", "pool", "int4", 4, np.array([[0, 4]]))
    with pytest.raises(ConfigError, match="lanes"):
        Stage("f", "mac", "int4", 4, np.arange(4)[None], np.ones((1, 4), int), "int4", 5, bias=(0,))
    a = Stage("f", "mac", "int4", 4, np.arange(4)[None], np.ones((2, 4), int), "int4", 2, bias=(0, 0))
    b = Stage("g", "mac", "int4", 2, np.arange(2)[None], np.ones((1, 2), int), "int4", 1, bias=(0,))
    with pytest.raises(ConfigError, match="raw integers"):
        NetworkPlan("n", [a, b])
    from hw.sparse import NMPatternError

    with pytest.raises(NMPatternError, match="2:4"):
        Stage("s", "mac", "int4", 4, np.arange(4)[None], np.array([[1, 1, 1, 0]]), "int4", 2, bias=(0,), nm=(2, 4))


def axis_run(plan: NetworkPlan, x: np.ndarray, lasts: list[int], n_out: int) -> tuple[list[int], list[int], int]:
    """``n_out`` output beats of ``plan``'s AXIStreamAccelerator under amaranth.sim, the input
    ``x`` (integer values) sent with ``tlast`` bits ``lasts``, input gaps (tvalid low every third
    cycle) and back-pressure (tready low every fourth): the output tdata, masked to the element's
    bits, their tlast bits, and framing_error at the end; tkeep all ones on every output."""
    from amaranth.sim import Simulator

    from hw.dataflow.stage import code_bits
    from hw.dataflow.top import AXIStreamAccelerator

    dut = AXIStreamAccelerator(plan)
    codes = code_bits(x.ravel(), plan.stages[0].in_fmt)
    got, tl, flags = [], [], []

    async def bench(ctx):
        k, c = 0, 0
        while len(got) < n_out and c < 20000:
            ctx.set(dut.s_axis_tvalid, int(k < len(codes) and c % 3 != 1))
            if k < len(codes):
                ctx.set(dut.s_axis_tdata, codes[k])
                ctx.set(dut.s_axis_tlast, lasts[k])
            ctx.set(dut.m_axis_tready, int(c % 4 != 2))
            if ctx.get(dut.m_axis_tvalid) and ctx.get(dut.m_axis_tready):
                got.append(ctx.get(dut.m_axis_tdata) & ((1 << dut.out_bits) - 1))
                tl.append(ctx.get(dut.m_axis_tlast))
                assert ctx.get(dut.m_axis_tkeep) == (1 << len(dut.m_axis_tkeep)) - 1
            fire = k < len(codes) and ctx.get(dut.s_axis_tvalid) and ctx.get(dut.s_axis_tready)
            await ctx.tick()
            k += bool(fire)
            c += 1
        flags.append(ctx.get(dut.framing_error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, tl, flags[0]


def test_axi_stream_top_frames_tlast_and_flags_a_misplaced_input_tlast():
    """AXIStreamAccelerator under amaranth.sim with gaps and back-pressure: the outputs equal the
    numpy model, m_axis_tlast marks each frame's last element, tkeep is all ones, and
    framing_error rises only after an input tlast that disagrees with the frame count."""
    from hw.dataflow.sim import element_values

    plan = random_plan(4)
    x = _inputs(plan, 2, 1)
    want = run_plan(plan, x)[-1]
    last = plan.stages[-1]
    for bad in (False, True):
        lasts = [int((j + 1) % plan.in_size == 0) for j in range(x.size)]
        if bad:
            lasts[3] ^= 1
        got, tl, flag = axis_run(plan, x, lasts, want.size)
        assert np.array_equal(element_values(got, last.out_fmt, last.out_bits).reshape(want.shape), want)
        assert tl == [int((j + 1) % plan.out_size == 0) for j in range(want.size)]
        assert flag == int(bad)
