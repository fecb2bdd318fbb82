"""Row stages in whole-network dataflow accelerators (hw.dataflow.row_engine, issue 16's Mixer):
random chains of MAC stages (integer and minifloat formats, raw outputs mid-chain) and row stages
(residual joins with a skip frame of an earlier stage, multipliers, LayerNorm with ``extra`` from
0 to huge, gains negative and zero, biases, the mean over rows, requantization to integer and
minifloat formats or raw output), and the MLP-Mixer shape. The RTL equals the numpy model
(:func:`hw.dataflow.plan.run_plan`, built on quant.reference's normalize and requantize) on every
stage's output, in exactly the closed-form cycles of :func:`hw.dataflow.plan.schedule`, for one to
three frames; under back-pressure and input gaps too; with one skip bank it throttles but does
not deadlock."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest

from hw.dataflow.plan import NetworkPlan, Stage, run_plan, schedule
from hw.dataflow.row import RowStage
from hw.dataflow.sim import element_values, simulate_plan
from hw.dataflow.top import AXIStreamAccelerator
from hw.portable import lint, portable_verilog, waivers
from hw.requant import RequantSpec
from quant.formats import IntFormat, parse_format

from .conftest import SIM_BACKENDS
from .test_dataflow import INTS, MIXED, _elements, axis_run


def _fit(values: np.ndarray, fmt: str, rng: random.Random) -> tuple[int, int]:
    """A fixed-point scale ``(M, s)`` that maps the largest magnitude of ``values`` to about the
    largest value of ``fmt`` (a random factor of 2^-1 .. 2^0.5: some saturation, most codes
    used)."""
    peak = max([1] + [abs(int(v)) for v in np.asarray(values).flat])
    ratio = parse_format(fmt).max_value * 2 ** rng.uniform(-1, 0.5) / peak
    s = max(0, 12 - math.floor(math.log2(ratio)))
    return max(1, round(ratio * 2**s)), s


def _spec(values: np.ndarray, channels: int, acc_bits: int, fmt: str, rng: random.Random, **kw) -> RequantSpec:
    """A requantization of ``values`` (frames, channels, …) to ``fmt``: per channel, or half the
    time one scale for all; a random zero point and ReLU for integer formats."""
    values = np.asarray(values, dtype=object)
    per = rng.random() < 0.5 and channels > 1
    pairs = [_fit(values[:, c], fmt, rng) for c in range(channels)] if per else [_fit(values, fmt, rng)]
    if kw.get("biases") is not None:  # biases are per channel
        pairs = pairs * (channels // len(pairs))
    f = parse_format(fmt)
    zp = rng.randint(f.min_int, f.max_int) // 2 if isinstance(f, IntFormat) and rng.random() < 0.3 else 0
    return RequantSpec(acc_bits, tuple(m for m, _ in pairs), tuple(s for _, s in pairs), fmt, zero_point=zp,
                       relu=isinstance(f, IntFormat) and rng.random() < 0.2, **kw)


class _Chain:
    """A plan built stage by stage, each requantization fitted to what the numpy model gives on
    the test's inputs ``x``."""

    def __init__(self, name: str, x: np.ndarray, in_fmt: str, seed: int) -> None:
        self.name, self.x, self.in_fmt, self.stages = name, x, in_fmt, []
        self.rng, self.nrng = random.Random(seed), np.random.default_rng(seed)

    def _out(self, st) -> np.ndarray:
        return run_plan(NetworkPlan(self.name, self.stages + [st]), self.x)[-1]

    @property
    def last(self):
        return self.stages[-1]

    def mac(self, name: str, windows: np.ndarray, channels: int, out: str | None, wfmt: str | None = None) -> Stage:
        """A MAC stage on the last stage's output (or the input), random weights, lanes and
        pipeline; requantized to ``out`` or raw (accumulator plus bias)."""
        rng = self.rng
        in_fmt, size = (self.last.out_fmt, self.last.out_size) if self.stages else (self.in_fmt, self.x.shape[1])
        wfmt = wfmt or rng.choice(MIXED)
        k = windows.shape[1]
        lanes = rng.randint(1, k)
        bias = tuple(rng.randint(-40, 40) for _ in range(channels))
        st = Stage(name, "mac", in_fmt, size, windows, _elements(self.nrng, wfmt, (channels, k)), wfmt, lanes,
                   rng.randint(0, 1 + (lanes - 1).bit_length()), bias=bias, relu=out is None and rng.random() < 0.3)
        if out is not None and st.acc_bits <= 64:  # fitted to the accumulators plus bias (wider: raw)
            raw = self._out(st).reshape(len(self.x), channels, -1)
            st = replace(st, requant=_spec(raw, channels, st.acc_bits, out, rng, biases=bias), bias=None)
        self.stages.append(st)
        return st

    def row(self, name: str, windows: np.ndarray, out: str | None, extra: int | None = None, mean: bool = False,
            skip: int | None = None, skip_windows: np.ndarray | None = None, skip_depth: int = 2) -> RowStage:
        """A row stage on the last stage's output (``skip``: also on stage ``skip``'s), random
        multipliers, gains (negative and zero among them) and biases."""
        rng, nrng = self.rng, self.nrng
        a = self.last
        shape = windows.shape
        mults = np.ones(shape, int) if rng.random() < 0.4 else nrng.integers(0, 4, shape)
        d = shape[1]
        gains = (rng.randint(-3, 3),) * d if rng.random() < 0.2 else tuple(rng.choice([0, -1, 1, 2, -7, 13, 100])
                                                                           for _ in range(d))
        biases = tuple(rng.randint(-300, 300) for _ in range(d)) if rng.random() < 0.7 else (0,) * d
        kw = {}
        if skip is not None:
            b = self.stages[skip]
            kw = dict(skip=skip, skip_fmt=b.out_fmt, skip_bits=b.out_bits, skip_size=b.out_size,
                      skip_windows=skip_windows, skip_depth=skip_depth,
                      skip_mults=np.ones(shape, int) if rng.random() < 0.4 else nrng.integers(0, 5, shape))
        st = RowStage(name, a.out_fmt, a.out_bits, a.out_size, windows, mults, gains, biases, extra=extra, mean=mean,
                      **kw)
        if out is not None and st.value_bits <= 64:  # (wider: raw)
            y = self._out(st).reshape(len(self.x), -1, d)  # raw: (frames, rows or 1, D)
            st = replace(st, requant=_spec(np.moveaxis(y, 2, 1), d, st.value_bits, out, rng))
        self.stages.append(st)
        return st

    def plan(self) -> NetworkPlan:
        return NetworkPlan(self.name, self.stages)


def _extra(rng: random.Random) -> int | None:
    return rng.choice([None, None, 0, rng.randint(1, 60), 1 << rng.randint(20, 70)])


def _tokens(p: int, d: int) -> np.ndarray:
    """Rows of a (channel, token)-ordered frame (a MAC stage's output: element ``j · P + p``)
    taken token by token: row ``p`` holds the ``d`` channels of token ``p``."""
    return np.arange(d)[None, :] * p + np.arange(p)[:, None]


def random_row_plan(seed: int) -> tuple[NetworkPlan, np.ndarray]:
    """A per-token fully connected stage (codes or raw), a row stage on its tokens (random
    options), a row stage joining that with the first stage's output (random addresses, a random
    ``skip_depth``), and a fully connected stage when that gives codes; plus 3 frames of inputs."""
    rng = random.Random(seed)
    fmt = rng.choice(MIXED)
    p, c, d = rng.randint(1, 3), rng.randint(1, 3), rng.randint(2, 4)
    x = _elements(np.random.default_rng(seed), fmt, (3, p * c))
    ch = _Chain(f"row{seed}", x, fmt, seed)
    s0 = ch.mac("fc0", np.arange(p * c).reshape(p, c), d, rng.choice([None, *MIXED]))
    mean1 = rng.random() < 0.3
    ch.row("row1", _tokens(p, d), rng.choice([None, *MIXED]), _extra(rng), mean1)
    n1 = ch.last.out_size
    p2, d2 = rng.randint(1, 3), rng.randint(2, 4)
    nrng = np.random.default_rng(seed + 1)
    ch.row("row2", nrng.integers(0, n1, (p2, d2)), rng.choice([None, *MIXED]), _extra(rng), rng.random() < 0.3,
           skip=0, skip_windows=nrng.integers(0, s0.out_size, (p2, d2)), skip_depth=rng.randint(1, 3))
    if ch.last.out_fmt is not None:
        ch.mac("fc3", np.arange(ch.last.out_size)[None], rng.randint(1, 3), None)
    return ch.plan(), x


def mixer_plan(seed: int, skip_depth: int = 2, formats: list[str] = MIXED) -> tuple[NetworkPlan, np.ndarray]:
    """The MLP-Mixer shape: a patch embedding (raw) → its bias as a row stage (raw; the residual
    stream) → LayerNorm, requantized → a per-token fully connected stage (raw) → LayerNorm of the
    residual join with the embedding, the mean over tokens, requantized → the classifier (raw)."""
    rng = random.Random(seed)
    fmt = rng.choice(formats)
    p, c, d = rng.randint(2, 3), rng.randint(2, 4), rng.randint(2, 4)
    x = _elements(np.random.default_rng(seed), fmt, (3, p * c))
    ch = _Chain(f"mixer{seed}", x, fmt, seed)
    ch.mac("embed", np.arange(p * c).reshape(p, c), d, None)
    ch.row("add", _tokens(p, d), None)  # the residual stream, token rows: element p · D + j
    ch.row("norm1", np.arange(p * d).reshape(p, d), rng.choice(formats), rng.choice([0, 5, 1 << 40]))
    ch.mac("mlp", np.arange(p * d).reshape(p, d), d, None)  # (channel, token) order again
    ch.row("norm2", _tokens(p, d), rng.choice(formats), rng.choice([0, 1, 1 << 33]), mean=True, skip=1,
           skip_windows=np.arange(p * d).reshape(p, d), skip_depth=skip_depth)
    ch.mac("head", np.arange(d)[None], rng.randint(1, 3), None)
    return ch.plan(), x


def _check_rtl(plan: NetworkPlan, x: np.ndarray, **kw):
    """pysim of ``x`` through the plan's RTL: every stage equal to the numpy model; returns the
    run."""
    run = simulate_plan(plan, x, "pysim", **kw)
    ref = run_plan(plan, x)
    assert len(run.stages) == len(plan.stages)
    for st, got, want in zip(plan.stages, run.stages, ref):
        assert np.array_equal(got, np.asarray(want).astype(got.dtype)) and got.shape == want.shape, \
            f"stage {st.name} of {[s.name for s in plan.stages]}"
    return run


@pytest.mark.parametrize("seed", range(12))
def test_random_row_plans_equal_numpy_model_in_closed_form_cycles(seed):
    plan, x = random_row_plan(seed)
    frames = 1 + seed % 3
    run = _check_rtl(plan, x[:frames])
    assert run.cycles == schedule(plan, frames).cycles


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 140))
def test_many_random_row_plans_three_frames(seed):
    plan, x = random_row_plan(seed)
    run = _check_rtl(plan, x)
    assert run.cycles == schedule(plan, 3).cycles
    plan, x = mixer_plan(seed)
    run = _check_rtl(plan, x)
    assert run.cycles == schedule(plan, 3).cycles


@pytest.mark.parametrize("seed", range(3))
def test_mixer_shape_equals_numpy_model_in_closed_form_cycles(seed):
    plan, x = mixer_plan(seed)
    assert [type(st).__name__ for st in plan.stages] == ["Stage", "RowStage", "RowStage", "Stage", "RowStage",
                                                         "Stage"]
    frames = 3 - seed % 3
    run = _check_rtl(plan, x[:frames])
    assert run.cycles == schedule(plan, frames).cycles


def test_mixer_shape_with_integer_formats():
    plan, x = mixer_plan(7, formats=INTS)
    run = _check_rtl(plan, x)
    assert run.cycles == schedule(plan, 3).cycles


def test_one_skip_bank_throttles_without_deadlock():
    """skip_depth=1: the skip source waits for the reader to free its only skip bank; the RTL is
    exact, its cycles the closed form's, and no fewer than with two banks."""
    plan1, x = mixer_plan(4, skip_depth=1)
    plan2, _ = mixer_plan(4, skip_depth=2)
    run = _check_rtl(plan1, x)
    assert run.cycles == schedule(plan1, 3).cycles
    assert run.cycles > schedule(plan2, 3).cycles


@pytest.mark.parametrize("depths", [(2, 1), (1, 3)])
def test_two_skip_readers_of_one_stage(depths):
    """Two row stages read the first stage's frames as their skip input (one credit counter each,
    a broadcast stream): exact, in the closed-form cycles."""
    rng = random.Random(sum(depths))
    p, c, d = 2, 3, 3
    x = _elements(np.random.default_rng(1), "int4", (3, p * c))
    ch = _Chain("two", x, "int4", 11)
    ch.mac("fc0", np.arange(p * c).reshape(p, c), d, "int5n")
    ch.row("row1", _tokens(p, d), None, extra=None)
    ch.row("row2", np.arange(p * d).reshape(p, d), "e3m2", extra=3, skip=0, skip_windows=_tokens(p, d),
           skip_depth=depths[0])
    ch.row("row3", np.arange(p * d).reshape(p, d)[::-1], rng.choice(["int8", "e4m3"]), mean=True, skip=0,
           skip_windows=_tokens(p, d), skip_depth=depths[1])
    plan = ch.plan()
    assert plan.skip_readers(0) == [2, 3]
    run = _check_rtl(plan, x)
    assert run.cycles == schedule(plan, 3).cycles


def test_axi_stream_top_with_row_stages():
    """AXIStreamAccelerator of the Mixer shape under amaranth.sim with input gaps and
    back-pressure: the raw signed outputs (sign-extended tdata) equal the numpy model, tlast marks
    each frame's last element."""
    plan, x = mixer_plan(1)
    want = run_plan(plan, x)[-1]
    last = plan.stages[-1]
    got, tl, flag = axis_run(plan, x, [int((k + 1) % plan.in_size == 0) for k in range(x.size)], want.size)
    assert not flag
    assert np.array_equal(element_values(got, last.out_fmt, last.out_bits).reshape(want.shape), want.astype(np.int64))
    assert tl == [int((j + 1) % plan.out_size == 0) for j in range(want.size)]


@pytest.mark.parametrize("which", ["mixer", "random"])
def test_back_pressure_and_input_gaps_keep_every_stage_exact(which):
    plan, x = mixer_plan(5) if which == "mixer" else random_row_plan(3)
    run = _check_rtl(plan, x, out_ready=[1, 0, 0, 1, 0], in_valid=[0, 1, 1])
    assert run.cycles > run.schedule.cycles  # the sink stalls it


def test_row_stage_alone_closed_form_by_hand():
    """A row stage first in the plan, on raw signed inputs: ``in_size`` input cycles, then ``P ·
    D`` elements one per cycle (with LayerNorm a row every ``max(D, 3R + 4)`` cycles, the last
    row's outputs ``2D + 3R + 4`` cycles after its first element entered the normalizer), then the
    beat and output registers; its requantized codes feed a fully connected stage."""
    rng = np.random.default_rng(3)
    x = rng.integers(-(1 << 11), 1 << 11, (3, 12))
    for extra in (None, 9):
        st = RowStage("r", None, 12, 12, np.arange(12).reshape(3, 4)[:, ::-1], np.ones((3, 4), int), (1, -2, 0, 3),
                      (7, 0, -5, 1), extra=extra)
        alone = NetworkPlan("alone", [st])
        if extra is None:
            assert schedule(alone, 1).cycles == 12 + st.busy_cycles + 2 and st.busy_cycles == 12
        else:  # rows issue at 12 + 52·p; the last enters the normalizer at 12 + 104 + 1
            assert st.busy_cycles == 3 * (3 * 16 + 4) and st.release == 2 * 52 + 4
            assert schedule(alone, 1).cycles == 12 + 2 * 52 + 1 + (2 * 4 + 3 * 16 + 4) + 1
        run = _check_rtl(alone, x)
        assert run.cycles == schedule(alone, 3).cycles
        rq = replace(st, requant=RequantSpec(st.value_bits, (3, 1, 2, 5), (4, 12, 9, 2), "e4m3"))
        fc = Stage("fc", "mac", "e4m3", 12, np.arange(12)[None], rng.integers(-7, 8, (2, 12)), "int4", 3, 1, bias=(0, 1))
        plan = NetworkPlan("two", [rq, fc])
        run = _check_rtl(plan, x)
        assert run.cycles == schedule(plan, 3).cycles


def test_integer_mixer_verilog_is_lint_clean(tmp_path):
    """The AXI4-Stream top of an integer Mixer-shaped plan, as ``paretofab accel --axis`` writes
    it: ``verilator --lint-only -Wall`` with the generator's waivers is silent."""
    plan, _ = mixer_plan(7, formats=INTS)
    (tmp_path / "mix.v").write_text(portable_verilog(AXIStreamAccelerator(plan), "mix"))
    (tmp_path / "mix.vlt").write_text(waivers("mix", axis=True))
    assert lint(tmp_path / "mix.v", tmp_path / "mix.vlt") == []


@pytest.mark.parametrize("seed", [3, 7, 11])
def test_minifloat_mixer_verilog_is_lint_clean(tmp_path, seed):
    """The same with minifloat and mixed formats (requantizers to minifloats whose top mantissa
    is all ones among them): silent too."""
    plan, _ = mixer_plan(seed)
    (tmp_path / "mix.v").write_text(portable_verilog(AXIStreamAccelerator(plan), "mix"))
    (tmp_path / "mix.vlt").write_text(waivers("mix", axis=True))
    assert lint(tmp_path / "mix.v", tmp_path / "mix.vlt") == []


@pytest.mark.skipif("verilator" not in SIM_BACKENDS, reason="verilator backend not in git")
def test_verilator_backend_equals_numpy_model_and_closed_form():
    plan, x = mixer_plan(2)
    run = simulate_plan(plan, x, "verilator")
    assert np.array_equal(run.outputs, np.asarray(run_plan(plan, x)[-1]).astype(run.outputs.dtype))
    assert run.cycles == run.schedule.cycles


def test_long_rows_issue_back_to_back():
    """Rows longer than the normalizer's computation (``D > 3R + 4``): the row period is ``D``, no
    gap between rows or frames, and the RTL still lands on the closed form exactly."""
    rng = np.random.default_rng(9)
    p, d = 2, 56
    x = rng.integers(-(1 << 9), 1 << 9, (3, p * d))
    st = RowStage("long", None, 10, p * d, np.arange(p * d).reshape(p, d), np.ones((p, d), int),
                  tuple(int(g) for g in rng.integers(-3, 4, d)), (0,) * d, extra=5)
    assert st.row_cycles == d and st.busy_cycles == p * d and st.latency == 2 + d + 3 * 16 + 4
    plan = NetworkPlan("long", [st])
    run = _check_rtl(plan, x)
    assert run.cycles == schedule(plan, 3).cycles
