"""Requantization in RTL: a layer's accumulator (plus bias) to the next layer's integer or
minifloat format, with per-channel fixed-point scales — the step between two engines of a
whole-network accelerator (:class:`IntRequantizer`, :class:`MinifloatRequantizer`; pick one with
:func:`requantizer`).

``code = clamp(rne((acc + bias_c) · M_c / 2^s_c + zero_point))`` for channel ``c`` (the zero point
added before rounding, as QONNX's ``Quant`` and Brevitas do): the product is exact, the rounding is
to nearest with ties to even, the clamp is to the
output format's range (with a fused ReLU from the code of 0). Scales become (``M_c``, ``s_c``)
by :func:`quant.reference.fixed_point_multiplier` (``mult_bits``-bit multipliers, relative error
at most ``2^-mult_bits``). The numpy semantics are :func:`quant.reference.requantize`.
Combinational; the caller registers the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.formats import IntFormat, MinifloatFormat, parse_format
from quant.reference import fixed_point_multiplier

from .arith import ConfigError

__all__ = ["RequantSpec", "IntRequantizer", "MinifloatRequantizer", "requantizer", "shift_rne"]


@dataclass(frozen=True)
class RequantSpec:
    """What one requantizer does.

    Attributes
    ----------
    acc_bits : width of the signed accumulator input, bits.
    multipliers, shifts : per output channel, ``M_c`` (unsigned) and ``s_c`` (>= 0); one entry:
        a per-tensor scale.
    fmt : the output integer format (e.g. ``"int8"``, ``"uint4"``).
    zero_point : the output code of real 0.
    relu : a fused ReLU (nothing below the code of 0).
    biases : per channel, an integer added to the accumulator first (``None``: none).
    """

    acc_bits: int
    multipliers: tuple[int, ...]
    shifts: tuple[int, ...]
    fmt: str
    zero_point: int = 0
    relu: bool = False
    biases: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        fmt = parse_format(self.fmt)
        if isinstance(fmt, MinifloatFormat) and not fmt.saturate:
            raise ConfigError(f"requantization to {self.fmt}: only saturating minifloats (drop 'nosat')")
        if isinstance(fmt, MinifloatFormat) and self.zero_point:
            raise ConfigError(f"requantization to {self.fmt}: a minifloat has no zero point; use 0")
        if not 2 <= self.acc_bits <= 64:
            raise ConfigError(f"acc_bits must be in 2..64, got {self.acc_bits}")
        n = len(self.multipliers)
        if n < 1 or len(self.shifts) != n or (self.biases is not None and len(self.biases) != n):
            raise ConfigError("multipliers, shifts (and biases) need one entry per channel, at least one")
        if min(self.multipliers) < 0 or min(self.shifts) < 0:
            raise ConfigError("multipliers and shifts must be >= 0")
        if isinstance(fmt, IntFormat) and not fmt.min_int <= self.zero_point <= fmt.max_int:
            raise ConfigError(f"zero point {self.zero_point} outside {self.fmt}'s range")

    @classmethod
    def from_scales(cls, acc_bits: int, scales, fmt: str, mult_bits: int = 16, **kw) -> "RequantSpec":
        """The spec of real per-channel ``scales`` (input units per output unit) with
        ``mult_bits``-bit fixed-point multipliers."""
        pairs = [fixed_point_multiplier(float(s), mult_bits) for s in scales]
        return cls(acc_bits, tuple(m for m, _ in pairs), tuple(s for _, s in pairs), fmt, **kw)

    @property
    def channels(self) -> int:
        return len(self.multipliers)


def _scaled(m: Module, spec: RequantSpec, channel, acc_in) -> tuple[Signal, Signal]:
    """``(acc + bias_c) · M_c`` exactly, and ``s_c``, for the selected channel."""
    bias_bits = max([abs(b).bit_length() + 1 for b in spec.biases or (0,)])
    summed_bits = max(spec.acc_bits, bias_bits) + 1
    mult_bits = max(x.bit_length() for x in spec.multipliers) + 1  # signed room for an unsigned M
    shift_bits = max(1, max(spec.shifts).bit_length())
    pick = lambda values, shape: Array(Const(v, shape) for v in values)[channel]  # noqa: E731
    acc = Signal(signed(summed_bits))
    m.d.comb += acc.eq(acc_in + pick(spec.biases or (0,) * spec.channels, signed(bias_bits)))
    prod = Signal(signed(summed_bits + mult_bits))
    m.d.comb += prod.eq(acc * pick(spec.multipliers, signed(mult_bits)))
    shift = Signal(shift_bits)
    m.d.comb += shift.eq(pick(spec.shifts, shift_bits))
    return prod, shift


def shift_rne(m: Module, value: Signal, amount: Signal, width: int, offset_odd: bool = False):
    """``value / 2^amount`` rounded to nearest, ties to even: ``(floor, up)`` with ``floor`` the
    arithmetic right shift and ``up`` set when the bits shifted out exceed half a step, or equal it
    and ``floor`` is odd (``offset_odd``: even — the tie is broken on ``floor`` plus an odd integer
    added after the shift, such as a zero point). ``width``: bits of the shifted-out remainder
    (``> len(value)`` and ``> amount``'s largest value)."""
    q = Signal.like(value)  # floor(value / 2^amount)
    m.d.comb += q.eq(value >> amount)
    rem = Signal(width)  # value - q·2^amount, in [0, 2^amount)
    m.d.comb += rem.eq((value - (q << amount))[:width])
    half = Signal(width)
    m.d.comb += half.eq((Const(1, 1) << amount) >> 1)
    return q, (amount != 0) & ((rem > half) | ((rem == half) & (q[0] ^ offset_odd)))


class _Requantizer(wiring.Component):
    """Ports shared by the requantizers: ``acc`` In(signed(acc_bits)), ``channel``
    In(range(channels)), ``code`` Out(bits) (two's complement for signed integers; sign,
    exponent, mantissa fields for minifloats)."""

    def __init__(self, spec: RequantSpec) -> None:
        self.spec = spec
        self.out_fmt = parse_format(spec.fmt)
        super().__init__({"acc": In(signed(spec.acc_bits)), "channel": In(range(max(2, spec.channels))),
                          "code": Out(self.out_fmt.bits)})


class IntRequantizer(_Requantizer):
    """:class:`RequantSpec` with an integer output format, in hardware (module docstring)."""

    def elaborate(self, platform):
        sp, fmt = self.spec, self.out_fmt
        m = Module()
        prod, shift = _scaled(m, sp, self.channel, self.acc)
        q, up = shift_rne(m, prod, shift, max(len(prod), max(sp.shifts) + 1), offset_odd=bool(sp.zero_point % 2))
        lo = max(fmt.min_int, sp.zero_point) if sp.relu else fmt.min_int
        rounded = Signal(signed(len(q) + 2))
        m.d.comb += rounded.eq(q + up + sp.zero_point)
        m.d.comb += self.code.eq(Mux(rounded < lo, lo, Mux(rounded > fmt.max_int, fmt.max_int, rounded)))
        return m


class MinifloatRequantizer(_Requantizer):
    """:class:`RequantSpec` with a saturating minifloat output format: ``value = (acc + bias_c) ·
    M_c · 2^-s_c`` encoded as :func:`quant.reference.quantize` does (round to nearest, ties to
    even at the binade's precision, subnormals or flush with ties to 0, saturation to ±max,
    negative values that round to zero as -0; with ``relu`` negative values give +0).

    Normalization: the leading one ``p`` of ``|value · 2^s|`` gives the binade ``e = max(p - s,
    emin)``; the magnitude is rounded to ``n`` quanta of ``2^(e - M)`` (a right shift with
    round-half-even, or an exact left shift), a carry out of the binade moves to the next one,
    ``n < 2^M`` is a subnormal."""

    def elaborate(self, platform):
        sp, fmt = self.spec, self.out_fmt
        mb, bias = fmt.mantissa_bits, fmt.bias
        m = Module()
        prod, shift = _scaled(m, sp, self.channel, self.acc)
        wp = len(prod)
        neg = prod < 0
        mag = Signal(wp)
        m.d.comb += mag.eq(Mux(neg, -prod, prod))
        p = Signal(range(wp))  # leading one of mag (0 when mag is 0)
        for i in range(wp):
            with m.If(mag[i]):
                m.d.comb += p.eq(i)
        ew = max(wp, max(sp.shifts) + abs(fmt.emin) + abs(fmt.emax) + mb + 4).bit_length() + 2
        floor_p = Signal(signed(ew))  # emin + s: the lowest leading-one position of a normal
        m.d.comb += floor_p.eq(fmt.emin + shift)
        base = Signal(signed(ew))
        m.d.comb += base.eq(Mux(p > floor_p, p, floor_p))
        t = Signal(signed(ew))  # quanta are 2^t units of mag
        m.d.comb += t.eq(base - mb)
        tr = Signal(range(max(2, wp + 1)))
        m.d.comb += tr.eq(Mux(t > wp, wp, Mux(t > 0, t, 0)))
        tl = Signal(range(mb + 2))
        m.d.comb += tl.eq(Mux(t < 0, -t, 0))
        q, up = shift_rne(m, mag, tr, wp + 1)
        n = Signal(mb + 2)  # quanta: at most 2^(M+1)
        m.d.comb += n.eq(Mux(t > 0, q + up, mag << tl))
        e = Signal(signed(ew))  # the binade's unbiased exponent, after a rounding carry
        frac = Signal(mb + 1)
        carry = n[mb + 1]
        m.d.comb += [e.eq(base - shift + carry), frac.eq(Mux(carry, 1 << mb, n))]
        normal = frac[mb]  # n >= 2^M
        expf = Signal(range(2**fmt.exponent_bits))
        mant = Signal(max(1, mb))
        m.d.comb += [expf.eq(Mux(normal, e + bias, 0)), mant.eq(frac[:mb] if mb else 0)]
        if not fmt.subnormals:  # below the smallest normal: 0 or it, ties to 0
            thr = fmt.emin - 1 + shift  # mag > 2^thr
            above = Mux(thr < 0, mag != 0, mag > (Const(1, 1) << Mux(thr < 0, 0, thr)[:ew - 1]))
            with m.If(~normal):
                m.d.comb += [expf.eq(Mux(above, 1, 0)), mant.eq(0)]
        top, top_mant = fmt.max_normal_field, fmt.max_mantissa_at_top
        over = e > fmt.emax
        if mb and top_mant < (1 << mb) - 1:  # an all-ones top mantissa is never exceeded (no constant compare)
            over = over | ((e == fmt.emax) & (frac[:mb] > top_mant))
        with m.If(over & normal):
            m.d.comb += [expf.eq(top), mant.eq(top_mant)]
        sign = neg & ~Const(int(sp.relu))
        zero_out = Const(int(sp.relu)) & neg
        body = Signal(fmt.bits - 1)
        m.d.comb += body.eq(Mux(zero_out, 0, (expf << mb) | mant if mb else expf))
        m.d.comb += self.code.eq(Cat(body, sign))
        return m


def requantizer(spec: RequantSpec) -> _Requantizer:
    """The requantizer of a spec's output format (integer or minifloat)."""
    return MinifloatRequantizer(spec) if isinstance(parse_format(spec.fmt), MinifloatFormat) else IntRequantizer(spec)
