"""Exact multiply-accumulate arithmetic for the number formats of :mod:`quant.formats`.

Every finite code of a format is an integer times a fixed power of two (``quant.reference.
fixed_point``): ``value = n · 2^k`` with ``k = 0`` for integers and ``k = emin - M`` (the step of
the subnormals) for minifloats. A product of a weight and an activation is therefore an exact
integer in units of ``2^(k_w + k_a)`` (:func:`output_exponent`), and a dot product of K of them is
an exact integer that fits :func:`acc_bits` signed bits. Nothing is ever rounded.

Minifloat datapath (:class:`MinifloatMultiplier`): each operand is split by an
:class:`OperandDecoder` into sign, significand (with the hidden bit, 0 for subnormals) and shift
(``max(exponent field, 1) - 1``); the significands multiply, the shifts add, an :class:`Aligner`
shifts the magnitude into accumulator units and applies the sign. Integer × integer goes through
an :class:`IntMultiplier` (one signed/unsigned multiply). Inf/NaN codes are outside the contract:
the engines' ``pack_inputs`` rejects them.

Published accumulator widths for comparison (ANCHORS.md): :func:`a2q_bits` and
:func:`kulisch_bits`. :func:`acc_bits` is computed from the exact extreme products and is never
larger than either; the all-max test shows it is also never too small.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Shape, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.formats import Format, IntFormat, MinifloatFormat, parse_format
from quant.reference import all_codes, decode, fixed_point

__all__ = [
    "ConfigError",
    "WorkloadError",
    "finite_codes",
    "unit_exponent",
    "output_exponent",
    "element_bits",
    "product_range",
    "product_bits",
    "acc_bits",
    "a2q_bits",
    "kulisch_bits",
    "signed_bits",
    "IntMultiplier",
    "OperandDecoder",
    "Aligner",
    "MinifloatMultiplier",
    "multiplier",
]


class ConfigError(ValueError):
    """An engine configuration that cannot be built; the message names the fix."""


class WorkloadError(ValueError):
    """A workload that does not fit its engine configuration; the message names the fix."""


# ---- exact ranges (pure Python, no hardware) -------------------------------------------------


@lru_cache(maxsize=None)
def finite_codes(fmt: Format) -> np.ndarray:
    """Every code of ``fmt`` that decodes to a finite value (uint8); inf/NaN codes and the
    unused code of narrow integers are left out."""
    codes = all_codes(fmt)
    keep = np.isfinite(decode(codes, fmt))
    out = codes[keep]
    out.setflags(write=False)
    return out


def unit_exponent(fmt: Format) -> int:
    """Exponent of the format's smallest step: 0 for integers, ``emin - M`` for minifloats."""
    if isinstance(fmt, IntFormat):
        return 0
    return fmt.emin - fmt.mantissa_bits


def output_exponent(wfmt: Format | str, afmt: Format | str) -> int:
    """Exponent of the accumulator's least significant bit: outputs are integers times
    ``2^output_exponent``."""
    return unit_exponent(parse_format(wfmt)) + unit_exponent(parse_format(afmt))


def _int_extremes(fmt: Format) -> tuple[int, int]:
    ints, _ = fixed_point(finite_codes(fmt), fmt)
    return int(min(int(x) for x in ints)), int(max(int(x) for x in ints))


def element_bits(fmt: Format | str) -> int:
    """Width (bits, signed) of the exact integers of a format's values (units of
    ``2^unit_exponent``: an int's value, a minifloat's ``mag << shift``)."""
    return signed_bits(*_int_extremes(parse_format(fmt)))


@lru_cache(maxsize=None)
def _product_range(wfmt: Format, afmt: Format) -> tuple[int, int]:
    wlo, whi = _int_extremes(wfmt)
    alo, ahi = _int_extremes(afmt)
    corners = [wlo * alo, wlo * ahi, whi * alo, whi * ahi]
    return min(corners), max(corners)


def product_range(wfmt: Format | str, afmt: Format | str) -> tuple[int, int]:
    """Smallest and largest exact product (integers, units of ``2^output_exponent``)."""
    return _product_range(parse_format(wfmt), parse_format(afmt))


def signed_bits(lo: int, hi: int) -> int:
    """Fewest bits of a two's complement number that holds every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def product_bits(wfmt: Format | str, afmt: Format | str) -> int:
    """Width (bits, signed) of one exact product."""
    return signed_bits(*product_range(wfmt, afmt))


def acc_bits(wfmt: Format | str, afmt: Format | str, k: int) -> int:
    """Width (bits, signed) of an accumulator that holds any sum of ``k`` exact products.

    The sum lies in ``[k·p_min, k·p_max]`` with ``p_min``/``p_max`` the exact extreme products
    (:func:`product_range`); this is the fewest two's complement bits holding that interval, so
    all-max inputs of either sign reach it and nothing can overflow.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"the reduction length k must be an integer >= 1, got {k!r}")
    lo, hi = product_range(wfmt, afmt)
    return signed_bits(int(k) * min(lo, 0), int(k) * hi)


def a2q_bits(wfmt: Format | str, afmt: Format | str, k: int) -> int:
    """Published integer accumulator width ``W + A + ceil(log2 k) + 1`` (A2Q; ANCHORS.md)."""
    w, a = parse_format(wfmt), parse_format(afmt)
    return w.bits + a.bits + int(np.ceil(np.log2(k))) + 1


def kulisch_bits(wfmt: Format | str, afmt: Format | str, k: int) -> int:
    """Published exact-accumulator width ``2^Ea + Ma + 2^Eb + Mb + ceil(log2 k) - 1`` (Kulisch,
    Uguen & de Dinechin; ANCHORS.md). An integer operand of ``b`` bits counts ``b + 1`` in place
    of ``2^E + M``, so that int × int gives A2Q's ``W + A + ceil(log2 k) + 1``."""

    def term(f: Format) -> int:
        if isinstance(f, IntFormat):
            return f.bits + 1
        return 2**f.exponent_bits + f.mantissa_bits

    return term(parse_format(wfmt)) + term(parse_format(afmt)) + int(np.ceil(np.log2(k))) - 1


# ---- hardware ---------------------------------------------------------------------------------


def _multiplier_ports(wfmt: Format, afmt: Format) -> dict:
    """Ports of a multiplier: weight and activation codes in, exact product (units of 1) out."""
    return {"w": In(wfmt.bits), "a": In(afmt.bits), "p": Out(signed(product_bits(wfmt, afmt)))}


class IntMultiplier(wiring.Component):
    """Exact product of two integer codes (combinational).

    Parameters
    ----------
    wfmt, afmt : IntFormat
        Operand formats (signed two's complement or unsigned, 2–8 bits).

    Attributes
    ----------
    w : Signal(wfmt.bits), in
        Weight code.
    a : Signal(afmt.bits), in
        Activation code.
    p : Signal(signed(product_bits(wfmt, afmt))), out
        Exact product, units of 1.
    """

    def __init__(self, wfmt: IntFormat, afmt: IntFormat):
        if not (isinstance(wfmt, IntFormat) and isinstance(afmt, IntFormat)):
            raise ConfigError("IntMultiplier takes two integer formats; use MinifloatMultiplier for minifloats")
        self.wfmt, self.afmt = wfmt, afmt
        super().__init__(_multiplier_ports(wfmt, afmt))

    def elaborate(self, platform):
        m = Module()
        w = self.w.as_signed() if self.wfmt.signed else self.w
        a = self.a.as_signed() if self.afmt.signed else self.a
        m.d.comb += self.p.eq(w * a)
        return m


class OperandDecoder(wiring.Component):
    """Split a code into sign, magnitude and shift: ``value = (-1)^sign · mag · 2^(shift + k)``,
    ``k`` the format's :func:`unit_exponent` (combinational).

    For a minifloat, ``mag`` is the significand with its hidden bit (``M+1`` bits; 0 for
    subnormals when the format flushes them) and ``shift = max(exponent field, 1) - 1``. For an
    integer, ``mag = |value|`` (``bits`` bits) and ``shift = 0``.

    Parameters
    ----------
    fmt : Format

    Attributes
    ----------
    code : Signal(fmt.bits), in
    sign : Signal(1), out
    mag : Signal(mag_bits), out
        Unsigned magnitude, bits.
    shift : Signal(shift_bits), out
        Left shift into units of ``2^k``, bits.
    """

    def __init__(self, fmt: Format):
        self.fmt = fmt
        if isinstance(fmt, IntFormat):
            mag_bits, self.max_shift = fmt.bits, 0
        else:
            mag_bits, self.max_shift = fmt.mantissa_bits + 1, fmt.max_normal_field - 1
        super().__init__({
            "code": In(fmt.bits),
            "sign": Out(1),
            "mag": Out(mag_bits),
            "shift": Out(max(1, self.max_shift.bit_length())),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, code = self.fmt, self.code
        if isinstance(fmt, IntFormat):
            if fmt.signed:
                neg = code[-1]
                m.d.comb += [self.sign.eq(neg), self.mag.eq(Mux(neg, -code.as_signed(), code))]
            else:
                m.d.comb += self.mag.eq(code)
            return m
        e, mb = fmt.exponent_bits, fmt.mantissa_bits
        field = code[mb:mb + e]
        normal = field != 0
        mant = code[:mb] if mb else None
        m.d.comb += [
            self.sign.eq(code[-1]),
            self.shift.eq(Mux(normal, field - 1, 0)),
        ]
        if fmt.subnormals:
            m.d.comb += self.mag.eq(Cat(mant, normal) if mant is not None else normal)
        else:
            m.d.comb += self.mag.eq(Mux(normal, Cat(mant, 1) if mant is not None else 1, 0))
        return m


class Aligner(wiring.Component):
    """Shift an unsigned magnitude left and apply a sign: ``p = (-1)^sign · (mag << shift)``
    (combinational). This places a product into the accumulator's fixed-point grid.

    Parameters
    ----------
    mag_bits, shift_bits : int
        Input widths, bits.
    out_bits : int
        Output width, bits (signed); must hold every reachable result.

    Attributes
    ----------
    sign : Signal(1), in
    mag : Signal(mag_bits), in
    shift : Signal(shift_bits), in
    p : Signal(signed(out_bits)), out
    """

    def __init__(self, mag_bits: int, shift_bits: int, out_bits: int):
        self.out_bits = out_bits
        super().__init__({
            "sign": In(1),
            "mag": In(mag_bits),
            "shift": In(shift_bits),
            "p": Out(signed(out_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        aligned = (self.mag << self.shift)[:self.out_bits]
        m.d.comb += self.p.eq(Mux(self.sign, -aligned, aligned))
        return m


class MinifloatMultiplier(wiring.Component):
    """Exact product of a minifloat and a minifloat or integer (either operand may be the
    integer): sign xor, exponent (shift) add, significand product including subnormals, no
    rounding, aligned to units of ``2^output_exponent(wfmt, afmt)`` (combinational).

    Parameters
    ----------
    wfmt, afmt : Format
        At least one is a :class:`~quant.formats.MinifloatFormat`.

    Attributes
    ----------
    w : Signal(wfmt.bits), in
    a : Signal(afmt.bits), in
    p : Signal(signed(product_bits(wfmt, afmt))), out
    """

    def __init__(self, wfmt: Format, afmt: Format):
        if not (isinstance(wfmt, MinifloatFormat) or isinstance(afmt, MinifloatFormat)):
            raise ConfigError("MinifloatMultiplier needs at least one minifloat operand; use IntMultiplier for int x int")
        self.wfmt, self.afmt = wfmt, afmt
        super().__init__(_multiplier_ports(wfmt, afmt))

    def elaborate(self, platform):
        m = Module()
        m.submodules.wdec = wdec = OperandDecoder(self.wfmt)
        m.submodules.adec = adec = OperandDecoder(self.afmt)
        out_bits = Shape.cast(self.p.shape()).width
        shift_bits = (wdec.max_shift + adec.max_shift).bit_length() or 1
        m.submodules.align = align = Aligner(len(wdec.mag) + len(adec.mag), shift_bits, out_bits)
        m.d.comb += [
            wdec.code.eq(self.w),
            adec.code.eq(self.a),
            align.sign.eq(wdec.sign ^ adec.sign),
            align.mag.eq(wdec.mag * adec.mag),
            align.shift.eq(wdec.shift + adec.shift),
            self.p.eq(align.p),
        ]
        return m


def multiplier(wfmt: Format | str, afmt: Format | str) -> wiring.Component:
    """The exact multiplier for a format pair: :class:`IntMultiplier` for int × int, else
    :class:`MinifloatMultiplier`. Its ``p`` is in units of ``2^output_exponent(wfmt, afmt)``."""
    wfmt, afmt = parse_format(wfmt), parse_format(afmt)
    if isinstance(wfmt, IntFormat) and isinstance(afmt, IntFormat):
        return IntMultiplier(wfmt, afmt)
    return MinifloatMultiplier(wfmt, afmt)
