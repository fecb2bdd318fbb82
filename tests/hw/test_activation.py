"""hw.activation (threshold tables, issue 16's GELU): the tables of quant.reference.breakpoints
equal the step function they come from on every integer of its range (GELU into int and minifloat
codes, against direct evaluation), and the RTL equals quant.reference.apply_breakpoints on every
accumulator and channel; lint-clean Verilog."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from hw.activation import ActivationSpec, TableActivation, thresholds
from hw.arith import ConfigError, element_bits
from hw.portable import lint, portable_verilog, waivers
from hw.requant import RequantSpec
from quant.formats import parse_format
from quant.reference import apply_breakpoints, breakpoints, element_ints, encode, quantize, requantize
from tests.hw.conftest import sweep_channels

#: where GELU (the exact form) has its minimum
GELU_MIN = -0.7517915246


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _gelu_code(fmt: str, unit: float, scale: float):
    """GELU of ``x · unit`` into ``fmt`` at ``scale``, for int64 arrays ``x``."""
    f = parse_format(fmt)
    if fmt.startswith("e"):
        return lambda x: encode(quantize(_gelu(np.asarray(x) * unit) / scale, f), f).astype(np.int64)
    return lambda x: np.clip(np.round(_gelu(np.asarray(x) * unit) / scale), f.min_int, f.max_int).astype(np.int64)


@pytest.mark.parametrize("fmt, unit, scale", [("int8", 1.3e-3, 0.021), ("uint4", 2e-3, 0.2), ("e4m3", 7e-4, 0.01),
                                              ("int4", 0.05, 0.3), ("e2m3", 3e-3, 0.5)])
def test_breakpoints_of_gelu_equal_direct_evaluation(fmt, unit, scale):
    f = _gelu_code(fmt, unit, scale)
    lo, hi = -int(40 / unit), int(40 / unit)
    breaks, values = breakpoints(f, lo, hi, (round(GELU_MIN / unit),))
    xs = np.arange(lo - 50, hi + 50, max(1, (hi - lo) // 40000))
    assert np.array_equal(apply_breakpoints(xs, breaks, values), f(xs))
    assert np.all(f(np.array(breaks) - 1) != f(np.array(breaks)))  # every breakpoint is a change


def _random_spec(rng: random.Random) -> ActivationSpec:
    acc_bits, channels = rng.randint(4, 9), rng.randint(1, 3)
    lo, hi = -(1 << (acc_bits - 1)), 1 << (acc_bits - 1)
    breaks, values = [], []
    for _ in range(channels):
        n = rng.randint(0, 20)
        b = sorted(rng.sample(range(lo - 5, hi + 5), n))  # some beyond the accumulator's range
        breaks.append(tuple(b))
        values.append(tuple(rng.randint(-128, 127) for _ in range(n + 1)))
    return ActivationSpec(acc_bits, tuple(breaks), tuple(values), "int8")


@pytest.mark.parametrize("seed", range(6))
def test_rtl_equals_the_table_on_every_accumulator(seed):
    spec = _random_spec(random.Random(seed))
    dut = TableActivation(spec)
    accs = range(-(1 << (spec.acc_bits - 1)), 1 << (spec.acc_bits - 1))
    got = sweep_channels(dut, spec.channels, accs)
    for c in range(spec.channels):
        want = apply_breakpoints(np.array(accs), list(spec.breaks[c]), list(spec.values[c])) & 0xFF
        assert [got[c, a] for a in accs] == list(want), (spec, c)


def test_bad_specs_are_refused():
    with pytest.raises(ConfigError):
        ActivationSpec(8, ((3, 1),), ((0, 1, 2),), "int8")
    with pytest.raises(ConfigError):
        ActivationSpec(8, ((1, 3),), ((0, 1),), "int8")
    with pytest.raises(ConfigError):
        ActivationSpec(1, ((),), ((0,),), "int8")


def test_verilog_is_lint_clean(tmp_path):
    f = _gelu_code("int8", 0.01, 0.05)
    b, v = breakpoints(f, -4000, 4000, (round(GELU_MIN / 0.01),))
    spec = ActivationSpec(14, (tuple(b), tuple(b[:5])), (tuple(v), tuple(v[:6])), "int8")
    path, vlt = tmp_path / "act.v", tmp_path / "act.vlt"
    path.write_text(portable_verilog(TableActivation(spec), "act"))
    vlt.write_text(waivers("act"))
    assert lint(path, vlt) == []


@pytest.mark.parametrize("seed", range(6))
def test_thresholds_equal_the_requantizers_on_every_accumulator(seed):
    """hw.activation.thresholds of a random multiplier requantizer (integer or minifloat output,
    per-channel scales, bias, ReLU, zero point) and of it followed by a rescale (with its bias):
    equal to quant.reference.requantize (twice) on every accumulator."""
    rng = random.Random(seed)
    fmt = rng.choice(["int4", "uint8", "int8n", "e4m3", "e2m3", "int2"])
    zp = rng.randint(-3, 3) if fmt in ("int4", "int8n") else 0
    spec = RequantSpec.from_scales(rng.randint(6, 13), [2 ** rng.uniform(-9, -1) for _ in range(rng.randint(1, 3))],
                                   fmt, 24, relu=rng.random() < 0.5, zero_point=zp)
    spec = RequantSpec(spec.acc_bits, spec.multipliers, spec.shifts, fmt, zp, spec.relu,
                       tuple(rng.randint(-40, 40) for _ in range(spec.channels)))
    rescale = RequantSpec.from_scales(element_bits(fmt), [2 ** rng.uniform(-3, 1)], rng.choice(["int4", "int3", "e2m1"]),
                                      24, biases=(rng.randint(-5, 5),))
    accs = np.arange(-(1 << (spec.acc_bits - 1)), 1 << (spec.acc_bits - 1))
    for rs in (None, rescale):
        table = thresholds(spec, rs)
        for c in range(spec.channels):
            want = requantize(accs + spec.biases[c], spec.multipliers[c], spec.shifts[c], fmt, zp, spec.relu)
            if rs is not None:
                want = requantize(element_ints(want, fmt) + rs.biases[0], rs.multipliers[0], rs.shifts[0], rs.fmt)
            assert np.array_equal(apply_breakpoints(accs, table.breaks[c], table.values[c]), want), (spec, rs, c)
        assert table.fmt == (rs.fmt if rs else fmt)
