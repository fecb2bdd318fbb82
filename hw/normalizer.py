"""LayerNorm's normalizer in RTL: one row of ``d`` signed integers in, ``(x - mean) / sqrt(var +
eps)`` of each with ``frac_bits`` fractional bits out — bit for bit
:func:`quant.reference.normalize` (its docstring gives the arithmetic).

Three rows at a time, in a pipeline of three parts, each with its own row register:

- **load**: a row streams in (``d`` beats; the row is kept, ``S1 = Σk`` and ``S2 = Σk²``
  accumulate); full, it waits until the computation is free, then hands the row and ``S1`` over
  with ``V = d·S2 - S1² + extra`` (that cycle may already take the next row's first beat);
- **compute**: ``V``'s even normalization ``V = m · 4^e`` (one cycle), ``q = 2^(2F) // m`` by
  restoring division (``2R + 1`` cycles), ``r = isqrt(q)`` by the digit-by-digit square root
  (``R + 1`` cycles; its last cycle hands the row, ``S1``, ``e`` and ``r`` to the output when that
  is free, else the row waits);
- **output**: the ``d`` outputs ``rne((d·k_i - S1) · r / 2^(F + e - frac_bits))`` stream out.

The computation is busy ``3R + 3`` cycles with a row (it takes the next ``3R + 4`` cycles after
taking one at the earliest). A row with everything free before it has its last output
:attr:`Normalizer.row_span` = ``2d + 3R + 4`` cycles after its first input (both counted); rows at
least :attr:`Normalizer.row_cycles` = ``max(d, 3R + 4)`` apart (``R`` = NORM_RSQRT_BITS) never
find the input not ready and leave in the same cycles as alone; a valid source and a ready sink
get a row every ``row_cycles`` in steady state.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.reference import NORM_FRAC_BITS, NORM_RSQRT_BITS, NORM_VAR_BITS

from .arith import ConfigError
from .requant import shift_rne

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
        """Cycles per row in steady state (rows arriving this far apart, or a valid source, and a
        ready sink): ``max(d, 3R + 4)``."""
        return max(self.d, 3 * NORM_RSQRT_BITS + 4)

    @property
    def row_span(self) -> int:
        """Cycles from a row's first input transfer to its last output transfer, both counted,
        when the row finds the loader, the computation and the output free (rows ``row_cycles``
        apart or more, a ready sink): ``2d + 3R + 4``."""
        return 2 * self.d + 3 * NORM_RSQRT_BITS + 4

    def elaborate(self, platform):
        d, P, R = self.d, NORM_VAR_BITS, NORM_RSQRT_BITS
        F = P + R
        m = Module()
        lg = max(1, (d - 1).bit_length())
        s1_shape, s2_shape = signed(self.in_bits + lg + 1), 2 * self.in_bits + lg
        v_bits = max((d * d << (2 * self.in_bits - 2)).bit_length(), self.extra.bit_length()) + 1
        e_shape = signed(max(P, v_bits).bit_length() + 2)

        # ---- load: the row into lrow, S1 and S2 accumulate; full until handed to compute ----
        lrow = Array(Signal(signed(self.in_bits), name=f"l{j}") for j in range(d))
        ls1, ls2 = Signal(s1_shape), Signal(s2_shape)
        lcount, lfull = Signal(range(d)), Signal()
        # ---- compute: V, its normalization, the division, the square root ----
        crow = [Signal(signed(self.in_bits), name=f"c{j}") for j in range(d)]
        cs1 = Signal(s1_shape)
        v = Signal(v_bits)
        e = Signal(e_shape)
        mant = Signal(2 * P + 2)
        rem = Signal(2 * P + 3)  # the division's partial remainder
        q = Signal(2 * R + 1)
        root, srem, one = Signal(2 * R + 2), Signal(2 * R + 2), Signal(2 * R + 1)
        ccount = Signal(range(2 * R + 1))
        # ---- output: (d·k_i - S1) · r, rounded, one per beat ----
        orow = Array(Signal(signed(self.in_bits), name=f"o{j}") for j in range(d))
        os1, oe, oroot = Signal(s1_shape), Signal(e_shape), Signal(R + 1)
        ocount, obusy = Signal(range(d)), Signal()

        cidle = Signal()
        handoff = lfull & cidle  # load -> compute
        ofree = ~obusy | (self.o.ready & (ocount == d - 1))  # the output takes a row this cycle

        def to_output(r):  # compute -> output (ofree)
            return [oroot.eq(r[:R + 1]), oe.eq(e), os1.eq(cs1), obusy.eq(1), ocount.eq(0)] + \
                   [orow[j].eq(crow[j]) for j in range(d)]

        # load
        take = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~lfull | cidle)
        with m.If(take):
            m.d.sync += [lrow[lcount].eq(self.i.payload), ls1.eq(Mux(handoff, 0, ls1) + self.i.payload),
                         ls2.eq(Mux(handoff, 0, ls2) + self.i.payload * self.i.payload),
                         lcount.eq(Mux(lcount == d - 1, 0, lcount + 1))]
        with m.Elif(handoff):
            m.d.sync += [ls1.eq(0), ls2.eq(0)]
        with m.If(handoff):
            m.d.sync += lfull.eq(0)
        with m.If(take & (lcount == d - 1)):
            m.d.sync += lfull.eq(1)

        # output: a beat taken (before the hand-off below, which overrides it)
        with m.If(obusy & self.o.ready):
            m.d.sync += ocount.eq(ocount + 1)
            with m.If(ocount == d - 1):
                m.d.sync += [ocount.eq(0), obusy.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += cidle.eq(1)
                with m.If(handoff):  # V = d·S2 - S1² + extra
                    m.d.sync += [v.eq(d * ls2 - ls1 * ls1 + self.extra), cs1.eq(ls1)]
                    m.d.sync += [crow[j].eq(lrow[j]) for j in range(d)]
                    m.next = "NORM"
            with m.State("NORM"):  # V = m · 4^e, m in [2^(2P), 2^(2P+2))
                length = Signal(range(v_bits + 1))
                m.d.comb += length.eq(1)  # V = 0: any e (every t is 0)
                for j in range(v_bits):
                    with m.If(v[j]):
                        m.d.comb += length.eq(j + 1)
                ee = Signal(e_shape)
                m.d.comb += ee.eq((length - 1 - 2 * P) >> 1)
                right, left = Signal(range(v_bits + 1)), Signal(range(2 * P + 3))
                m.d.comb += [right.eq(Mux(ee > 0, ee << 1, 0)), left.eq(Mux(ee < 0, -(ee << 1), 0))]
                m.d.sync += [e.eq(ee), rem.eq(1 << (2 * P)), q.eq(0), ccount.eq(2 * R),
                             mant.eq((v << left) >> right)]
                m.next = "DIV"
            with m.State("DIV"):  # q = 2^(2F) // m, one quotient bit per cycle from bit 2R down
                ge = rem >= mant
                m.d.sync += q.eq((q << 1) | ge)
                with m.If(ccount == 0):
                    m.d.sync += [srem.eq((q << 1) | ge), root.eq(0), one.eq(1 << (2 * R)), ccount.eq(R)]
                    m.next = "SQRT"
                with m.Else():
                    m.d.sync += [rem.eq(Mux(ge, rem - mant, rem) << 1), ccount.eq(ccount - 1)]
            with m.State("SQRT"):  # r = isqrt(q), digit by digit
                trial = root + one
                root_next = Signal.like(root)
                m.d.comb += root_next.eq(Mux(srem >= trial, (root >> 1) + one, root >> 1))
                with m.If(srem >= trial):
                    m.d.sync += srem.eq(srem - trial)
                m.d.sync += [root.eq(root_next), one.eq(one >> 2)]
                with m.If(ccount == 0):
                    with m.If(ofree):
                        m.d.sync += to_output(root_next)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DONE"
                with m.Else():
                    m.d.sync += ccount.eq(ccount - 1)
            with m.State("DONE"):  # the output still busy with the previous row
                with m.If(ofree):
                    m.d.sync += to_output(root)
                    m.next = "IDLE"

        # output
        t = Signal(signed(self.in_bits + lg + 3))
        m.d.comb += t.eq(d * orow[ocount] - os1)
        prod = Signal(signed(len(t) + R + 2))
        m.d.comb += prod.eq(t * oroot.as_unsigned())
        shift = Signal(range(F + max(P, v_bits) + 2))
        m.d.comb += shift.eq((oe + (F - self.frac_bits)).as_unsigned())
        floor, up = shift_rne(m, prod, shift, max(len(prod), F + v_bits) + 1)
        m.d.comb += [self.o.valid.eq(obusy), self.o.payload.eq(floor + up)]
        return m
