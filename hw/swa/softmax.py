"""Softmax units of the sliding-window attention kernel (steps 2, 3 and 5 of the arithmetic in
:mod:`hw.swa.model`): the numerator ``p`` of one score, the per-row reciprocal ``floor(2^Z / S)``
by a restoring divider, and the normalizer that turns a row's accumulators into output beats."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SoftmaxNumerator", "ReciprocalDivider", "SWANormalizer"]


class SoftmaxNumerator(wiring.Component):
    """Softmax numerator of one score (combinational).

    ``t = max - score`` clamped to ``t_sat``; ``u = t·scale_const``; ``e = u >> scale_frac``,
    ``x`` = the top ``lut_bits`` fraction bits of ``u``; ``p = exp_table[x] >> e`` (0 when
    ``e > exp_bits + 1`` or ``masked``): units ``2^-exp_bits``, ``2^exp_bits`` for the maximum.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    max : In(signed(score_bits))
        The row's maximum score (``>= score``).
    score : In(signed(score_bits))
    masked : In(1)
        The key is outside the row's window: ``p = 0``.
    p : Out(exp_bits + 1)
        Numerator, unsigned, units ``2^-exp_bits``.
    """

    def __init__(self, config):
        self.config = config
        sb = config.score_bits
        super().__init__({"max": In(signed(sb)), "score": In(signed(sb)), "masked": In(1),
                          "p": Out(config.exp_bits + 1)})

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        E, T, F = cfg.exp_bits, cfg.lut_bits, cfg.scale_frac
        m.submodules.lut = lut = Memory(shape=unsigned(E + 1), depth=2**T,
                                        init=[int(x) for x in cfg.exp_table])
        lr = lut.read_port(domain="comb")
        t = Signal(cfg.score_bits + 1)
        m.d.comb += t.eq(self.max - self.score)
        tc = Signal(unsigned(cfg.t_sat.bit_length()))  # 0..t_sat (may exceed 64 bits: no range())
        m.d.comb += tc.eq(Mux(t >= cfg.t_sat, cfg.t_sat, t))
        u = tc * cfg.scale_const  # an expression, not a signal: its low F - T bits are dropped
        e = u[F:]
        if T:
            m.d.comb += lr.addr.eq(u[F - T:F])
        m.d.comb += self.p.eq(Mux(self.masked | (e > E + 1), 0, lr.data >> e[:(E + 1).bit_length()]))
        return m


class ReciprocalDivider(wiring.Component):
    """One cycle of the restoring divider for the row reciprocal ``r = floor(2^z_bits / S)``:
    ``div_step_bits`` restoring steps (combinational; the :class:`SWANormalizer` holds the
    registers and iterates it ``div_steps`` times).

    The dividend ``2^z_bits`` is split into the initial remainder :attr:`init_rem` (its bits
    above the low ``bits``) and :attr:`init_low` (its low ``bits``, shifted in one per step); the
    quotient register starts at 0 and after ``div_steps`` cycles its low ``recip_width`` bits are
    ``floor(2^z_bits / S)``.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    bits : int
        ``div_steps · div_step_bits``: width of ``low`` and ``quo``, bits (``>= recip_width``).
    init_rem, init_low : int
        Register values that start a division.
    divisor : In(sum_bits)
        ``S``, unsigned; ``2^exp_bits <= S <= window·2^exp_bits`` (the row's numerator sum).
    rem, low, quo : In(sum_bits + 1), In(bits), In(bits)
        Partial remainder, dividend bits still to shift in (top first), quotient so far.
    rem_next, low_next, quo_next : Out(sum_bits + 1), Out(bits), Out(bits)
        The same after ``div_step_bits`` more quotient bits.
    """

    def __init__(self, config):
        self.config = config
        self.bits = config.div_steps * config.div_step_bits
        self.init_rem = (1 << config.z_bits) >> self.bits
        self.init_low = (1 << config.z_bits) & ((1 << self.bits) - 1)
        rb = config.sum_bits + 1
        super().__init__({"divisor": In(config.sum_bits),
                          "rem": In(rb), "low": In(self.bits), "quo": In(self.bits),
                          "rem_next": Out(rb), "low_next": Out(self.bits), "quo_next": Out(self.bits)})

    def elaborate(self, platform):
        m = Module()
        r_next, n_next, q_next = self.rem, self.low, self.quo
        for b in range(self.config.div_step_bits):
            r2 = Signal(len(self.rem) + 1, name=f"div_r2_{b}")
            ge = Signal(name=f"div_ge_{b}")
            rn, qn = Signal.like(self.rem, name=f"div_r_{b}"), Signal.like(self.quo, name=f"div_q_{b}")
            m.d.comb += [r2.eq(Cat(n_next[-1], r_next)), ge.eq(r2 >= self.divisor),
                         rn.eq(Mux(ge, r2 - self.divisor, r2)), qn.eq(Cat(ge, q_next[:-1]))]
            r_next, n_next, q_next = rn, Cat(0, n_next[:-1]), qn
        m.d.comb += [self.rem_next.eq(r_next), self.low_next.eq(n_next), self.quo_next.eq(q_next)]
        return m


class SWANormalizer(wiring.Component):
    """Normalizer: ``o[d] = floor(a[d]·r / 2^(z_bits - out_frac_bits))`` with the row
    reciprocal ``r = floor(2^z_bits / S)``, as ``chunks`` output beats of ``lanes`` outputs.

    After ``start`` it waits one cycle, copies ``acc`` and ``sum`` (cycle 2), runs the
    :class:`ReciprocalDivider` (``div_steps`` cycles), then emits each beat over
    ``lanes / norm_mults`` cycles with ``norm_mults`` wide multipliers ``a·r``: ``norm_cycles``
    cycles per row with an always-ready sink.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    start : In(1)
        A row's accumulators will be final two cycles later; taken when idle or in the cycle
        the previous row finishes (``ok``).
    acc : In(ArrayLayout(signed(sv_bits), head_dim))
        ``a[d] = Σ_j p_j·v_j[d]``, units ``2^(k_v - exp_bits)``.
    sum : In(sum_bits)
        ``S = Σ_j p_j``, units ``2^-exp_bits``.
    o : Out(stream.Signature(config.out_layout()))
        Output beats, units ``2^(k_v - out_frac_bits)``.
    ok : Out(1)
        Idle, or the row's last beat transfers in this cycle.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "start": In(1),
            "acc": In(data.ArrayLayout(signed(config.sv_bits), config.head_dim)),
            "sum": In(config.sum_bits),
            "o": Out(stream.Signature(config.out_layout())),
            "ok": Out(1),
        })

    def _multipliers(self, m: Module, nacc: list, oc: Signal, sb: Signal, recip) -> list:
        """``norm_mults`` products ``a·r >> (z_bits - out_frac_bits)`` of output group ``sb`` of
        beat ``oc`` (combinational)."""
        cfg = self.config
        L, C, NL, sv = cfg.lanes, cfg.chunks, cfg.norm_mults, cfg.sv_bits
        chunk_vals = Array(Cat(*nacc[cc * L:(cc + 1) * L]) for cc in range(C))
        sel = Signal(L * sv)
        m.d.comb += sel.eq(chunk_vals[oc])
        groups = Array(sel[g * NL * sv:(g + 1) * NL * sv] for g in range(L // NL))
        gsel = Signal(NL * sv)
        m.d.comb += gsel.eq(groups[sb])
        sh = cfg.z_bits - cfg.out_frac_bits
        normed = []
        for l in range(NL):
            a = gsel[l * sv:(l + 1) * sv].as_signed()
            prod = Signal(signed(sv + cfg.recip_width + 1), name=f"norm{l}")
            o = Signal(signed(cfg.out_bits), name=f"normo{l}")
            m.d.comb += [prod.eq(a * recip), o.eq(prod >> sh)]
            normed.append(o)
        return normed

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        C, NL, ob = cfg.chunks, cfg.norm_mults, cfg.out_bits
        SB = cfg.lanes // NL                         # cycles per output beat
        nacc = [Signal(signed(cfg.sv_bits), name=f"nacc{d}") for d in range(cfg.head_dim)]
        m.submodules.div = div = ReciprocalDivider(cfg)
        nsum = Signal(cfg.sum_bits)
        rem = Signal(cfg.sum_bits + 1)
        nlow = Signal(div.bits)                      # dividend bits still to shift in
        quo = Signal(div.bits)
        dk = Signal(range(cfg.div_steps + 1))
        m.d.comb += [div.divisor.eq(nsum), div.rem.eq(rem), div.low.eq(nlow), div.quo.eq(quo)]
        oc = Signal(range(C + 1))
        sb = Signal(range(SB + 1))
        normed = self._multipliers(m, nacc, oc, sb, quo[:cfg.recip_width])
        obuf = Signal(max(1, (SB - 1) * NL * ob))    # the beat's earlier groups
        m.d.comb += Value.cast(self.o.payload).eq(
            Cat(obuf[:(SB - 1) * NL * ob], *normed) if SB > 1 else Cat(*normed))
        if SB > 1:
            shifted = Cat(obuf, *normed)[NL * ob:]   # shift register: the newest group on top
        fin = Signal()
        idle = Signal()
        with m.FSM(name="norm"):
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(self.start):
                    m.next = "WAIT"
            with m.State("WAIT"):              # the row's last accumulator update lands
                m.next = "LATCH"
            with m.State("LATCH"):             # accumulators are final
                m.d.sync += [nsum.eq(self.sum), rem.eq(div.init_rem), nlow.eq(div.init_low),
                             quo.eq(0), dk.eq(cfg.div_steps - 1)]
                m.d.sync += [n.eq(self.acc[d]) for d, n in enumerate(nacc)]
                m.next = "DIV"
            with m.State("DIV"):
                m.d.sync += [rem.eq(div.rem_next), nlow.eq(div.low_next), quo.eq(div.quo_next), dk.eq(dk - 1)]
                with m.If(dk == 0):
                    m.d.sync += [oc.eq(0), sb.eq(0)]
                    m.next = "OUT"
            with m.State("OUT"):
                with m.If(sb != SB - 1):
                    m.d.sync += sb.eq(sb + 1)
                    if SB > 1:
                        m.d.sync += obuf.eq(shifted)
                with m.Else():
                    m.d.comb += self.o.valid.eq(1)
                with m.If((sb == SB - 1) & self.o.ready):
                    m.d.sync += sb.eq(0)
                    m.d.sync += oc.eq(oc + 1)
                    with m.If(oc == C - 1):
                        m.d.comb += fin.eq(1)
                        m.next = "IDLE"
                        with m.If(self.start):
                            m.next = "WAIT"
        m.d.comb += self.ok.eq(idle | fin)
        return m
