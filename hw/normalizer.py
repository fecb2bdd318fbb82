"""LayerNorm's normalizer in RTL: one row of ``d`` signed integers in, ``(x - mean) / sqrt(var +
eps)`` of each with ``frac_bits`` fractional bits out — bit for bit
:func:`quant.reference.normalize` (its docstring gives the arithmetic).

One row at a time: the row streams in (``d`` beats; the row is kept, ``S1 = Σk`` and ``S2 = Σk²``
accumulate), then ``V = d·S2 - S1² + extra`` (one cycle), its even normalization ``V = m · 4^e``
(one cycle), ``q = 2^(2F) // m`` by restoring division (``2R + 1`` cycles), ``r = isqrt(q)`` by
the digit-by-digit square root (``R + 1`` cycles), then the ``d`` outputs ``rne((d·k_i - S1) · r /
2^(F + e - frac_bits))`` stream out. With a valid source and a ready sink a row takes
:attr:`Normalizer.row_cycles` = ``2d + 3R + 4`` cycles (``R`` = NORM_RSQRT_BITS).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.reference import NORM_FRAC_BITS, NORM_RSQRT_BITS, NORM_VAR_BITS

from .arith import ConfigError
from .requant import _shift_rne

__all__ = ["Normalizer", "NORM_VAR_BITS", "NORM_RSQRT_BITS"]  # the precision (bits) it is built for


class Normalizer(wiring.Component):
    """The normalizer of rows of ``d`` signed ``in_bits``-bit integers (module docstring).

    Parameters
    ----------
    d : row length (≥ 2).
    in_bits : width of an input integer, bits (signed).
    extra : the epsilon on the row's integer grid, ``round(d² · eps / u²)`` (≥ 0).
    frac_bits : fractional bits of the outputs (at most NORM_RSQRT_BITS).

    Ports
    -----
    i : In(stream.Signature(signed(in_bits))), the rows, one integer per beat.
    o : Out(stream.Signature(signed(out_bits))), the normalized integers in the same order.
    """

    def __init__(self, d: int, in_bits: int, extra: int = 0, frac_bits: int = NORM_FRAC_BITS) -> None:
        if d < 2 or in_bits < 2 or extra < 0:
            raise ConfigError(f"normalizer: need d >= 2, in_bits >= 2, extra >= 0 (got {d}, {in_bits}, {extra})")
        if not 0 <= frac_bits <= NORM_RSQRT_BITS:
            raise ConfigError(f"normalizer: frac_bits must be in 0..{NORM_RSQRT_BITS}, got {frac_bits}")
        self.d, self.in_bits, self.extra, self.frac_bits = d, in_bits, extra, frac_bits
        #: bits of a normalized output: |t / sqrt(V)| <= sqrt(d - 1), plus rounding and sign
        self.out_bits = math.isqrt((d - 1) << (2 * frac_bits)).bit_length() + 2
        super().__init__({"i": In(stream.Signature(signed(in_bits))), "o": Out(stream.Signature(signed(self.out_bits)))})

    @property
    def row_cycles(self) -> int:
        """Cycles per row with a valid source and a ready sink."""
        return 2 * self.d + 3 * NORM_RSQRT_BITS + 4

    def elaborate(self, platform):
        d, P, R = self.d, NORM_VAR_BITS, NORM_RSQRT_BITS
        F = P + R
        m = Module()
        lg = max(1, (d - 1).bit_length())
        s1 = Signal(signed(self.in_bits + lg + 1))
        s2 = Signal(2 * self.in_bits + lg)
        v_bits = max((d * d << (2 * self.in_bits - 2)).bit_length(), self.extra.bit_length()) + 1
        v = Signal(v_bits)
        e = Signal(signed(max(P, v_bits).bit_length() + 2))
        mant = Signal(2 * P + 2)
        rem = Signal(2 * P + 3)  # the division's partial remainder
        q = Signal(2 * R + 1)
        root, srem, one = Signal(2 * R + 2), Signal(2 * R + 2), Signal(2 * R + 1)
        row = Array(Signal(signed(self.in_bits), name=f"k{j}") for j in range(d))
        count = Signal(range(max(d, 2 * R + 2)))

        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [row[count].eq(self.i.payload), s1.eq(s1 + self.i.payload),
                                 s2.eq(s2 + self.i.payload * self.i.payload), count.eq(count + 1)]
                    with m.If(count == d - 1):
                        m.d.sync += count.eq(0)
                        m.next = "VAR"
            with m.State("VAR"):
                m.d.sync += v.eq(d * s2 - s1 * s1 + self.extra)
                m.next = "NORM"
            with m.State("NORM"):  # V = m · 4^e, m in [2^(2P), 2^(2P+2))
                length = Signal(range(v_bits + 1))
                m.d.comb += length.eq(1)  # V = 0: any e (every t is 0)
                for j in range(v_bits):
                    with m.If(v[j]):
                        m.d.comb += length.eq(j + 1)
                ee = Signal.like(e)
                m.d.comb += ee.eq((length - 1 - 2 * P) >> 1)
                right, left = Signal(range(v_bits + 1)), Signal(range(2 * P + 3))
                m.d.comb += [right.eq(Mux(ee > 0, ee << 1, 0)), left.eq(Mux(ee < 0, -(ee << 1), 0))]
                m.d.sync += [e.eq(ee), rem.eq(1 << (2 * P)), q.eq(0), count.eq(2 * R),
                             mant.eq((v << left) >> right)]
                m.next = "DIV"
            with m.State("DIV"):  # q = 2^(2F) // m, one quotient bit per cycle from bit 2R down
                ge = rem >= mant
                m.d.sync += q.eq((q << 1) | ge)
                with m.If(count == 0):
                    m.d.sync += [srem.eq((q << 1) | ge), root.eq(0), one.eq(1 << (2 * R)), count.eq(R)]
                    m.next = "SQRT"
                with m.Else():
                    m.d.sync += [rem.eq(Mux(ge, rem - mant, rem) << 1), count.eq(count - 1)]
            with m.State("SQRT"):  # r = isqrt(q), digit by digit
                trial = root + one
                with m.If(srem >= trial):
                    m.d.sync += [srem.eq(srem - trial), root.eq((root >> 1) + one)]
                with m.Else():
                    m.d.sync += root.eq(root >> 1)
                m.d.sync += one.eq(one >> 2)
                with m.If(count == 0):
                    m.next = "OUT"
                with m.Else():
                    m.d.sync += count.eq(count - 1)
            with m.State("OUT"):
                t = Signal(signed(self.in_bits + lg + 3))
                m.d.comb += t.eq(d * row[count] - s1)
                prod = Signal(signed(len(t) + R + 2))
                m.d.comb += prod.eq(t * root[:R + 1].as_unsigned())
                shift = Signal(range(F + max(P, v_bits) + 2))
                m.d.comb += shift.eq((e + (F - self.frac_bits)).as_unsigned())
                floor, up = _shift_rne(m, prod, shift, max(len(prod), F + v_bits) + 1)
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(floor + up)]
                with m.If(self.o.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == d - 1):
                        m.d.sync += [count.eq(0), s1.eq(0), s2.eq(0)]
                        m.next = "LOAD"
        return m
