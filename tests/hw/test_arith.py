# amaranth: UnusedElaboratable=no
"""Exact multipliers, operand decoding and accumulator widths, against ``quant.reference``'s
float64 decode (exact for every product of two ≤8-bit formats) and brute force."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.arith import (
    ConfigError,
    IntMultiplier,
    MinifloatMultiplier,
    OperandDecoder,
    a2q_bits,
    acc_bits,
    finite_codes,
    kulisch_bits,
    multiplier,
    output_exponent,
    product_bits,
    product_range,
    unit_exponent,
)
from quant.formats import IntFormat, all_formats, parse_format
from quant.reference import all_codes, decode


def evaluate(dut, inputs: dict[str, list[int]], outputs: list[str]) -> dict[str, list[int]]:
    """Drive a combinational component with each row of ``inputs``; read ``outputs`` (ints,
    signed as their signals)."""
    n = len(next(iter(inputs.values())))
    got: dict[str, list[int]] = {k: [] for k in outputs}

    async def tb(ctx):
        for j in range(n):
            for name, vals in inputs.items():
                ctx.set(getattr(dut, name), int(vals[j]))
            for name in outputs:
                got[name].append(int(ctx.get(getattr(dut, name))))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return got


DECODER_FORMATS = ["int2", "int5", "int8", "int8n", "uint3", "uint8", "e1m2", "e2m1", "e2m3", "e3m2",
                   "e4m3", "e5m2", "e4m3ocp", "e5m2ieee", "e4m3b11", "e3m2nosub", "e6m1", "e7m0"]


@pytest.mark.parametrize("name", DECODER_FORMATS)
def test_operand_decoder_matches_decode(name):
    fmt = parse_format(name)
    codes = finite_codes(fmt)
    got = evaluate(OperandDecoder(fmt), {"code": codes}, ["sign", "mag", "shift"])
    k = unit_exponent(fmt)
    want = decode(codes, fmt)
    for c, s, mag, sh, w in zip(codes, got["sign"], got["mag"], got["shift"], want):
        value = Fraction(-1 if s else 1) * mag * Fraction(2) ** (sh + k)
        assert value == Fraction(w), f"{fmt} code {c:#x}: ({s}, {mag}, {sh}) is {value}, decode says {w}"


def _check_products(wfmt, afmt, w_codes, a_codes, dut=None):
    dut = dut if dut is not None else multiplier(wfmt, afmt)
    got = evaluate(dut, {"w": w_codes, "a": a_codes}, ["p"])["p"]
    want = decode(w_codes, wfmt) * decode(a_codes, afmt)  # exact: ≤ 2x5 significant bits
    scale = 2.0 ** output_exponent(wfmt, afmt)
    lo, hi = product_range(wfmt, afmt)
    for w, a, p, ref in zip(w_codes, a_codes, got, want):
        assert p * scale == ref, f"{wfmt} x {afmt}: codes {w:#x} x {a:#x} gave {p}·2^{output_exponent(wfmt, afmt)}, want {ref}"
        assert lo <= p <= hi


EXHAUSTIVE_PAIRS = [("int4", "int4"), ("uint4", "int3"), ("int2", "uint2"), ("e2m1", "e2m1"),
                    ("e2m1", "int4"), ("uint3", "e3m2"), ("e1m2", "e2m1nosub"), ("e4m3ocp", "e2m1"),
                    ("int4n", "e3m1")]


@pytest.mark.parametrize("wname,aname", EXHAUSTIVE_PAIRS)
def test_multiplier_exhaustive(wname, aname):
    wfmt, afmt = parse_format(wname), parse_format(aname)
    wc, ac = np.meshgrid(finite_codes(wfmt), finite_codes(afmt), indexing="ij")
    _check_products(wfmt, afmt, wc.ravel(), ac.ravel())


WIDE_PAIRS = [("int8", "int8"), ("uint8", "int8"), ("int8n", "uint7"), ("e4m3", "e4m3"),
              ("e5m2", "e5m2"), ("e4m3", "int8"), ("int8", "e2m3"), ("e5m2ieee", "e4m3ocp"),
              ("e3m4", "uint8"), ("e7m0", "e6m1"), ("e4m3b11", "e3m2nosub")]


@pytest.mark.parametrize("wname,aname", WIDE_PAIRS)
def test_multiplier_random_with_extremes(wname, aname):
    wfmt, afmt = parse_format(wname), parse_format(aname)
    rng = np.random.default_rng(7)
    wcodes, acodes = finite_codes(wfmt), finite_codes(afmt)
    # all-extreme corners plus random pairs
    ext_w = [c for c in wcodes if abs(decode(np.array([c]), wfmt)[0]) == np.abs(decode(wcodes, wfmt)).max()]
    ext_a = [c for c in acodes if abs(decode(np.array([c]), afmt)[0]) == np.abs(decode(acodes, afmt)).max()]
    w = np.concatenate([np.repeat(ext_w, len(ext_a)), rng.choice(wcodes, 300)]).astype(np.uint8)
    a = np.concatenate([np.tile(ext_a, len(ext_w)), rng.choice(acodes, 300)]).astype(np.uint8)
    _check_products(wfmt, afmt, w, a)


def test_multiplier_kinds_and_errors():
    for pair, kind in ((("int8", "uint4"), IntMultiplier), (("int8", "e4m3"), MinifloatMultiplier)):
        dut = multiplier(*pair)
        assert isinstance(dut, kind)
        _check_products(*map(parse_format, pair), np.array([1], np.uint8), np.array([1], np.uint8), dut)
    with pytest.raises(ConfigError, match="MinifloatMultiplier"):
        IntMultiplier(parse_format("int8"), parse_format("e4m3"))
    with pytest.raises(ConfigError, match="IntMultiplier"):
        MinifloatMultiplier(parse_format("int8"), parse_format("int4"))
    with pytest.raises(ValueError, match="Valid formats"):
        multiplier("int9", "int8")


@pytest.mark.parametrize("wname,aname", EXHAUSTIVE_PAIRS + WIDE_PAIRS)
def test_product_range_brute_force(wname, aname):
    wfmt, afmt = parse_format(wname), parse_format(aname)
    wv = [Fraction(v) for v in decode(finite_codes(wfmt), wfmt)]
    av = [Fraction(v) for v in decode(finite_codes(afmt), afmt)]
    prods = [x * y for x in wv for y in av]
    unit = Fraction(2) ** output_exponent(wfmt, afmt)
    lo, hi = product_range(wfmt, afmt)
    assert (lo * unit, hi * unit) == (min(prods), max(prods))
    b = product_bits(wfmt, afmt)
    assert -(2 ** (b - 1)) <= lo and hi < 2 ** (b - 1)
    assert lo < -(2 ** (b - 2)) or hi >= 2 ** (b - 2), "product_bits is not the fewest bits"


@pytest.mark.parametrize("wname,aname", EXHAUSTIVE_PAIRS + WIDE_PAIRS)
@pytest.mark.parametrize("k", [1, 3, 64, 4608])
def test_acc_bits_tight_and_within_published(wname, aname, k):
    wfmt, afmt = parse_format(wname), parse_format(aname)
    lo, hi = product_range(wfmt, afmt)
    bits = acc_bits(wfmt, afmt, k)
    # sufficient: every sum of k products lies in [k*min(lo,0), k*hi]
    assert -(2 ** (bits - 1)) <= k * min(lo, 0) and k * hi <= 2 ** (bits - 1) - 1
    # necessary: one bit fewer cannot hold one of the all-extreme sums
    assert k * min(lo, 0) < -(2 ** (bits - 2)) or k * hi > 2 ** (bits - 2) - 1
    # never wider than the published widths (ANCHORS.md)
    assert bits <= kulisch_bits(wfmt, afmt, k)
    if isinstance(wfmt, IntFormat) and isinstance(afmt, IntFormat):
        assert bits <= a2q_bits(wfmt, afmt, k) == kulisch_bits(wfmt, afmt, k)


def test_acc_bits_never_above_published_for_every_format_pair():
    formats = all_formats()
    over = [(str(w), str(a), k) for w in formats for a in formats for k in (1, 3, 4608)
            if acc_bits(w, a, k) > kulisch_bits(w, a, k)]
    assert not over, f"acc_bits wider than the published width for {over[:5]}"


def test_published_formula_values():
    # ANCHORS.md: e4m3 x e4m3 at n = 4608 needs ~50 bits (Kulisch), e2m3 ~26
    assert kulisch_bits("e4m3", "e4m3", 4608) == 50
    assert kulisch_bits("e2m3", "e2m3", 4608) == 26
    assert a2q_bits("int8", "int8", 4608) == 8 + 8 + 13 + 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_acc_bits_rejects_bad_k(bad):
    with pytest.raises(ConfigError, match="k must be an integer"):
        acc_bits("int8", "int8", bad)


def test_finite_codes_drop_specials():
    assert len(finite_codes(parse_format("e4m3ocp"))) == 254  # two NaN codes
    assert len(finite_codes(parse_format("int8n"))) == 255  # -128 unused
    assert len(finite_codes(parse_format("e4m3"))) == 256
    assert np.isfinite(decode(finite_codes(parse_format("e5m2ieee")), "e5m2ieee")).all()
    assert len(all_codes("e5m2ieee")) - len(finite_codes(parse_format("e5m2ieee"))) == 8
