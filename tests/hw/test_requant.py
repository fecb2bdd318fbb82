"""Requantization (issue 16, item 2): hw.requant.IntRequantizer against the numpy semantics
quant.reference.requantize, exhaustively over the accumulator range of random specs, and that
numpy semantics against exact rational arithmetic (fractions.Fraction, whose round() is
round-half-even); MinifloatRequantizer against encode(quantize(...)), and requantize's minifloat
branch against a brute-force nearest-value search over exact rationals."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.arith import ConfigError
from hw.portable import lint, portable_verilog, waivers
from hw.requant import IntRequantizer, MinifloatRequantizer, RequantSpec, requantizer
from quant.formats import MinifloatFormat, all_formats, parse_format
from quant.reference import encode, fixed_point_multiplier, quantize, requantize, values
from tests.hw.conftest import sweep_channels

FORMATS = ["int8", "int4", "uint4", "int5n", "uint8", "int2", "uint3n"]


def _rational(acc: int, m: int, s: int, fmt: str, zp: int, relu: bool) -> int:
    f = parse_format(fmt)
    q = round(Fraction(acc * m, 2**s) + zp)  # Python rounds a Fraction half to even; QONNX adds zp first
    lo = max(f.min_int, zp) if relu else f.min_int
    return min(max(q, lo), f.max_int)


def _random_spec(rng: random.Random, acc_bits: int = 9) -> RequantSpec:
    fmt = rng.choice(FORMATS)
    f = parse_format(fmt)
    ch = rng.choice([1, 2, 5])
    return RequantSpec(acc_bits, tuple(rng.randrange(0, 2**rng.randint(1, 12)) for _ in range(ch)),
                       tuple(rng.randrange(0, 16) for _ in range(ch)), fmt,
                       zero_point=rng.randint(f.min_int, f.max_int), relu=rng.random() < 0.5,
                       biases=tuple(rng.randrange(-300, 300) for _ in range(ch)) if rng.random() < 0.7 else None)


def test_numpy_semantics_equal_exact_rationals():
    rng = random.Random(0)
    for _ in range(300):
        fmt, m, s = rng.choice(FORMATS), rng.randrange(0, 70000), rng.randrange(0, 24)
        f = parse_format(fmt)
        zp, relu = rng.randint(f.min_int, f.max_int), rng.random() < 0.5
        acc = [rng.randrange(-2**20, 2**20) for _ in range(20)] + [k * 2 ** max(s - 1, 0) for k in range(-5, 6)]
        got = requantize(np.array(acc), m, s, fmt, zp, relu)
        assert [int(g) for g in got] == [_rational(a, m, s, fmt, zp, relu) for a in acc]


def _nearest_minifloat(x: Fraction, fmt: str) -> int:
    """Brute force: the code of the grid value nearest to ``x`` (ties: the even code; beyond the
    largest value: it; without subnormals, below the smallest normal: it or 0, ties to 0; zero
    keeps the sign of ``x``)."""
    f = parse_format(fmt)
    grid = sorted({Fraction(float(v)) for v in np.abs(values(f)) if np.isfinite(v)})
    mag = abs(x)
    if not f.subnormals and 0 < mag < Fraction(f.min_normal):
        best = Fraction(f.min_normal) if mag > Fraction(f.min_normal) / 2 else Fraction(0)
    else:
        dist = min(abs(g - mag) for g in grid)
        ties = [g for g in grid if abs(g - mag) == dist]
        best = next(g for g in ties if int(encode(np.array([float(g)]), f)[0]) % 2 == 0) if len(ties) > 1 else ties[0]
    return int(encode(np.array([-float(best) if x < 0 else float(best)]), f)[0])


def test_minifloat_numpy_semantics_equal_exact_rationals():
    """requantize to a minifloat (Python-int arithmetic: exact for any accumulator width) equals
    the nearest grid value found by brute force over exact rationals, and, where float64 holds
    the product exactly, encode(quantize(...))."""
    rng = random.Random(3)
    fmts = ["e4m3", "e2m3", "e3m2", "e5m2", "e4m3ocp", "e2m1", "e3m0", "e4m3nosub", "e2m2b0", "e5m2ieee"]
    for _ in range(400):
        fmt = rng.choice(fmts)
        acc, m, s = rng.randrange(-2**30, 2**30) >> rng.randrange(0, 30), rng.randrange(1 << 23, 1 << 24), \
            rng.randrange(0, 60)
        got = int(requantize(acc, m, s, fmt))
        assert got == _nearest_minifloat(Fraction(acc * m, 2**s), fmt), (fmt, acc, m, s)
        if abs(acc * m) < 2**53:
            assert got == int(encode(np.array([acc * m / 2.0**s]), fmt)[0])
    assert int(requantize(-5, 1, 0, "e4m3", relu=True)) == 0  # a fused ReLU gives +0
    assert int(requantize(-1, 1, 40, "e4m3")) == 0x80  # a negative value that rounds to zero is -0


@pytest.mark.parametrize("seed", range(8))
def test_rtl_equals_numpy_on_every_accumulator(seed):
    spec = _random_spec(random.Random(seed))
    dut = IntRequantizer(spec)
    accs = range(-(2 ** (spec.acc_bits - 1)), 2 ** (spec.acc_bits - 1))
    got = sweep_channels(dut, spec.channels, accs)
    mask = (1 << parse_format(spec.fmt).bits) - 1
    for c in range(spec.channels):
        bias = spec.biases[c] if spec.biases else 0
        want = requantize(np.array(accs) + bias, spec.multipliers[c], spec.shifts[c], spec.fmt, spec.zero_point,
                          spec.relu) & mask
        bad = [a for a, w in zip(accs, want) if got[c, a] != w]
        assert not bad, (spec, c, bad[:5])


def test_fixed_point_multiplier():
    rng = random.Random(2)
    for _ in range(500):
        scale, bits = 10 ** rng.uniform(-6, 1), rng.randint(4, 24)
        m, s = fixed_point_multiplier(scale, bits)
        assert 2 ** (bits - 1) <= m < 2**bits and s >= 0
        assert abs(Fraction(m, 2**s) / Fraction(scale) - 1) <= Fraction(1, 2**bits)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive and finite"):
            fixed_point_multiplier(bad, 16)
    with pytest.raises(ValueError, match="left shift"):
        fixed_point_multiplier(1e9, 8)


def test_spec_from_scales_and_bad_specs():
    spec = RequantSpec.from_scales(20, [0.01, 0.5], "int8", mult_bits=12)
    assert spec.channels == 2 and all(2**11 <= m < 2**12 for m in spec.multipliers)
    with pytest.raises(ConfigError, match="only saturating minifloats"):
        RequantSpec(16, (1,), (0,), "e4m3ocpnosat")
    with pytest.raises(ConfigError, match="no zero point"):
        RequantSpec(16, (1,), (0,), "e4m3", zero_point=1)
    assert isinstance(requantizer(RequantSpec(16, (1,), (0,), "e4m3")), MinifloatRequantizer)
    with pytest.raises(ConfigError, match="one entry per channel"):
        RequantSpec(16, (1, 2), (0,), "int8")
    with pytest.raises(ConfigError, match="zero point"):
        RequantSpec(16, (1,), (0,), "uint4", zero_point=-1)


def test_requantizer_verilog_is_lint_clean(tmp_path):
    spec = RequantSpec.from_scales(24, [0.003, 0.02, 0.7], "int8", zero_point=3, relu=True, biases=(5, -7, 100))
    v, vlt = tmp_path / "rq.v", tmp_path / "rq.vlt"
    v.write_text(portable_verilog(IntRequantizer(spec), "rq"))
    vlt.write_text(waivers("rq"))
    assert lint(v, vlt) == []


#: every default minifloat, and variants: other biases, no subnormals, OCP / IEEE specials
MINIFLOATS = [str(f) for f in all_formats() if isinstance(f, MinifloatFormat)] + [
    "e3m2nosub", "e4m3ocp", "e5m2ieee", "e2m1nosub", "e4m0nosub", "e3m2b1", "e2m3b5nosub", "e5m2ocp", "e4m0ocp"]


@pytest.mark.parametrize("seed", range(12))
def test_minifloat_rtl_equals_quantize_on_every_accumulator(seed):
    """MinifloatRequantizer == encode(quantize((acc + b)·M·2^-s)) (quant.reference, float64 exact
    here) on every 8-bit accumulator: rounding, subnormals or flush, saturation, -0, fused ReLU."""
    rng = random.Random(f"mf {seed}")
    ch = rng.choice([1, 2])
    fmt = MINIFLOATS[seed * 7 % len(MINIFLOATS)] if seed < 6 else rng.choice(MINIFLOATS)
    spec = RequantSpec(8, tuple(rng.randrange(1, 2 ** rng.randint(1, 10)) for _ in range(ch)),
                       tuple(rng.randrange(0, 20) for _ in range(ch)), fmt, relu=rng.random() < 0.3,
                       biases=tuple(rng.randrange(-40, 40) for _ in range(ch)) if rng.random() < 0.5 else None)
    dut = MinifloatRequantizer(spec)
    got: dict[tuple[int, int], int] = {}

    async def bench(ctx):
        for c in range(ch):
            ctx.set(dut.channel, c)
            for a in range(-128, 128):
                ctx.set(dut.acc, a)
                got[c, a] = ctx.get(dut.code)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    for c in range(ch):
        b = spec.biases[c] if spec.biases else 0
        v = (np.arange(-128, 128) + b) * spec.multipliers[c] * 2.0 ** -spec.shifts[c]
        want = encode(quantize(np.maximum(v, 0.0) if spec.relu else v, fmt), fmt)
        bad = [(a, float(x), int(w), got[c, a]) for a, x, w in zip(range(-128, 128), v, want) if got[c, a] != int(w)]
        assert not bad, (spec, c, bad[:4])
