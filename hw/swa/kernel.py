"""Amaranth hardware of the sliding-window attention kernel (see :mod:`hw.swa` for the window
convention, the arithmetic and the stream framing).

Datapath
--------
- K and V sliding buffers: ``amaranth.lib.memory.Memory`` of ``(window + 2)·chunks`` words of
  ``lanes`` codes (token ``t`` in slot ``t mod (window + 2)``); each K/V row is written once from
  the input stream and read by every query row whose window holds it (input-stationary). The two
  spare slots let the next tokens arrive while older rows are still being finished. Q sits in a
  two-row ping-pong memory (causal) or in a ring like K/V (symmetric: a row waits for
  token ``i + h``). The dense baseline keeps the whole sequence (``window`` = max n).
- QKᵀ unit: ``lanes`` exact multipliers (``hw.arith.multiplier``) and an adder tree; scores go
  into a two-bank ``window``-entry row buffer (one row per bank, never an n×w matrix) while a
  running max per bank is kept.
- Softmax + SV unit: per key, ``t = max - s``, ``u = t·c``, base-2 split into an integer shift
  and a ``2^lut_bits``-entry fraction table, ``p``; ``S += p``; ``lanes`` multipliers ``p·v``
  (``hw.arith.OperandDecoder`` + shift) into ``head_dim`` exact accumulators.
- Normalizer: copies the accumulators and ``S``, computes one reciprocal per row with a
  restoring divider (``div_step_bits`` quotient bits per cycle), then ``norm_mults`` wide
  multipliers ``a·r``, ``lanes / norm_mults`` cycles per output beat.

Schedule
--------
The four units work in lockstep on consecutive rows: in slot ``k`` the ingest unit takes token
``k``, the QKᵀ unit computes row ``k-d-1``, the SV unit row ``k-d-2`` and the normalizer row
``k-d-3`` (``d = 0`` causal, ``min(h, n-1)`` symmetric). A slot ends in the cycle in which every
unit has finished (or is finishing) its part, so slot ``k`` lasts the longest of ``chunks``
(ingest), ``nk·chunks`` (QKᵀ, SV) and ``norm_cycles = 2 + ceil(recip_width / div_step_bits) +
chunks·lanes/norm_mults`` cycles; with ``window·chunks >= norm_cycles`` (the automatic choice
where possible) the MAC units never idle in the steady state. After a sequence's last token the
ingest unit pauses until the pipeline has drained. The dense baseline first takes the whole
sequence, then feeds one row per slot, each over all ``n`` keys with the upper triangle masked.
Back-pressure on either stream only stretches the slot it falls in.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..arith import OperandDecoder, multiplier

__all__ = ["SWAKernel"]


def _tree(m: Module, terms: list, name: str):
    """Combinational adder tree over signed terms."""
    level = 0
    while len(terms) > 1:
        nxt = []
        for n in range(0, len(terms) - 1, 2):
            s = terms[n] + terms[n + 1]
            sig = Signal(signed(len(s)), name=f"{name}_l{level}_{n // 2}")
            m.d.comb += sig.eq(s)
            nxt.append(sig)
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms, level = nxt, level + 1
    return terms[0]


class _Issue:
    """Registers of one unit's (key, chunk) issue loop over a row of ``nk`` keys."""

    def __init__(self, name: str, W: int, Wd: int, C: int):
        self.active = Signal(name=f"{name}_iss")
        self.ki = Signal(range(W + 1), name=f"{name}_ki")        # key index within the row
        self.c = Signal(range(C + 1), name=f"{name}_c")          # chunk
        self.slot = Signal(range(Wd + 1), name=f"{name}_slot")   # K/V buffer slot of the key
        self.nk = Signal(range(W + 1), name=f"{name}_nk")
        self.row = Signal(range(max(W, Wd) + 1), name=f"{name}_row")  # dense: row; symmetric: Q slot
        self.bank = Signal(name=f"{name}_bank")
        self.kstart = Signal(range(Wd + 1), name=f"{name}_kstart")  # slot of the row's first key
        self.W, self.Wd, self.C = W, Wd, C

    @property
    def end(self):
        return (self.ki == self.nk - 1) & (self.c == self.C - 1)

    def advance(self, m: Module) -> None:
        with m.If(self.active):
            m.d.sync += self.c.eq(Mux(self.c == self.C - 1, 0, self.c + 1))
            with m.If(self.c == self.C - 1):
                m.d.sync += [self.ki.eq(self.ki + 1),
                             self.slot.eq(Mux(self.slot == self.Wd - 1, 0, self.slot + 1))]
            with m.If(self.end):
                m.d.sync += self.active.eq(0)

    def load(self, m: Module, valid, nk, kstart, row, bank) -> None:
        m.d.sync += [self.active.eq(valid), self.ki.eq(0), self.c.eq(0), self.slot.eq(kstart),
                     self.kstart.eq(kstart), self.nk.eq(nk), self.row.eq(row), self.bank.eq(bank)]


class SWAKernel(wiring.Component):
    """Sliding-window (or dense causal) attention kernel built from an :class:`hw.swa.SWAConfig`.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    i : In(stream.Signature(config.in_layout()))
        One chunk of one token per beat: ``lanes`` codes each of q, k, v; ``last`` ends a sequence.
    o : Out(stream.Signature(config.out_layout()))
        ``lanes`` outputs per beat, ``chunks`` beats per row, units ``2^output_exponent``.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "i": In(stream.Signature(config.in_layout())),
            "o": Out(stream.Signature(config.out_layout())),
        })

    def elaborate(self, platform):  # noqa: C901 (one datapath, read top to bottom)
        cfg = self.config
        m = Module()
        L, C, W, D = cfg.lanes, cfg.chunks, cfg.window, cfg.head_dim
        E, T, F = cfg.exp_bits, cfg.lut_bits, cfg.scale_frac
        dense = cfg.dense
        Wd = cfg.buffer_slots
        qk_row = data.ArrayLayout(unsigned(cfg.qk_fmt.bits), L)
        v_row = data.ArrayLayout(unsigned(cfg.v_fmt.bits), L)

        # ---- memories ------------------------------------------------------------------------
        m.submodules.kmem = kmem = Memory(shape=qk_row, depth=Wd * C, init=[])
        m.submodules.vmem = vmem = Memory(shape=v_row, depth=Wd * C, init=[])
        sym = not cfg.causal
        h = cfg.half
        q_ring = dense or sym               # Q kept per token slot (else two ping-pong rows)
        m.submodules.qmem = qmem = Memory(shape=qk_row, depth=(Wd * C if q_ring else 2 * C), init=[])
        m.submodules.smem = smem = Memory(shape=signed(cfg.score_bits), depth=2 * W, init=[])
        m.submodules.lut = lut = Memory(shape=unsigned(E + 1), depth=2**T,
                                        init=[int(x) for x in cfg.exp_table])
        kw, vw, qw, sw = kmem.write_port(), vmem.write_port(), qmem.write_port(), smem.write_port()
        kr, vr, qr = kmem.read_port(), vmem.read_port(), qmem.read_port()
        sr = smem.read_port(transparent_for=(sw,))
        lr = lut.read_port(domain="comb")

        go = Signal()                       # the current slot ends with this cycle
        qk = _Issue("qk", W, Wd, C)
        sv = _Issue("sv", W, Wd, C)
        qk.advance(m)
        sv.advance(m)

        # ---- ingest unit -----------------------------------------------------------------------
        # pos / wslot describe the token of the current slot and advance at ``go``
        ing_act = Signal(init=1)           # this slot takes a token
        ing_done = Signal()                # ... and has taken it
        ci = Signal(range(C + 1))
        wslot = Signal(range(Wd + 1))      # K/V slot of this slot's token (dense: its index)
        pos = Signal(range(W + 1))         # SWA: min(position in sequence, W-1)
        tok_last = Signal()
        m.d.comb += self.i.ready.eq(ing_act & ~ing_done)
        take = self.i.valid & self.i.ready
        ing_fin = take & (ci == C - 1)
        last_now = Mux(ing_done, tok_last, self.i.payload.last)
        waddr = wslot * C + ci
        for port, f in ((kw, "k"), (vw, "v"), (qw, "q")):
            m.d.comb += [port.data.eq(self.i.payload[f]), port.en.eq(take)]
        # SWA: Q goes to the bank that the QKᵀ unit will use for this row (banks alternate)
        m.d.comb += [kw.addr.eq(waddr), vw.addr.eq(waddr),
                     qw.addr.eq(waddr if q_ring else (~qk.bank) * C + ci)]
        with m.If(take):
            m.d.sync += ci.eq(Mux(ci == C - 1, 0, ci + 1))
        with m.If(ing_fin):
            m.d.sync += [ing_done.eq(1), tok_last.eq(self.i.payload.last)]
        ing_ok = ~ing_act | ing_done | ing_fin

        # ---- dense row generator ------------------------------------------------------------------
        rg_act = Signal()
        rg_row = Signal(range(W + 1))
        dn = Signal(range(W + 1))           # dense: sequence length

        # ---- QKᵀ unit ------------------------------------------------------------------------
        m.d.comb += [kr.addr.eq(qk.slot * C + qk.c),
                     qr.addr.eq((qk.row * C + qk.c) if q_ring else (qk.bank * C + qk.c))]
        q1_valid, q1_ki, q1_c, q1_bank, q1_row = (
            Signal(), Signal(range(W + 1)), Signal(range(C + 1)), Signal(), Signal(range(W + 1)))
        m.d.sync += [q1_valid.eq(qk.active), q1_ki.eq(qk.ki), q1_c.eq(qk.c), q1_bank.eq(qk.bank),
                     q1_row.eq(qk.row)]
        prods = []
        for l in range(L):
            mul = multiplier(cfg.qk_fmt, cfg.qk_fmt)
            m.submodules[f"qk{l}"] = mul
            m.d.comb += [mul.w.eq(kr.data[l]), mul.a.eq(qr.data[l])]
            prods.append(mul.p)
        part = _tree(m, prods, "qk")
        sacc = Signal(signed(cfg.score_bits))
        score = Signal(signed(cfg.score_bits))
        smax = Array(Signal(signed(cfg.score_bits), name=f"smax{b}") for b in range(2))
        m.d.comb += score.eq(Mux(q1_c == 0, part, sacc + part))
        m.d.comb += [sw.addr.eq(q1_bank * W + q1_ki), sw.data.eq(score)]
        q1_masked = Signal()
        if dense:
            m.d.comb += q1_masked.eq(q1_ki > q1_row)
        with m.If(q1_valid):
            m.d.sync += sacc.eq(score)
            with m.If(q1_c == C - 1):
                m.d.comb += sw.en.eq(1)
                with m.If(~q1_masked & ((q1_ki == 0) | (score > smax[q1_bank]))):
                    m.d.sync += smax[q1_bank].eq(score)
        qk_ok = ~qk.active | qk.end

        # ---- softmax numerator p (SV stage 1) ------------------------------------------------------
        m.d.comb += [sr.addr.eq(sv.bank * W + sv.ki), vr.addr.eq(sv.slot * C + sv.c)]
        s1_valid, s1_ki, s1_c, s1_bank, s1_row = (
            Signal(), Signal(range(W + 1)), Signal(range(C + 1)), Signal(), Signal(range(W + 1)))
        m.d.sync += [s1_valid.eq(sv.active), s1_ki.eq(sv.ki), s1_c.eq(sv.c), s1_bank.eq(sv.bank),
                     s1_row.eq(sv.row)]
        s1_masked = Signal()
        if dense:
            m.d.comb += s1_masked.eq(s1_ki > s1_row)
        t = Signal(cfg.score_bits + 1)
        m.d.comb += t.eq(smax[s1_bank] - sr.data)
        tc = Signal(range(cfg.t_sat + 1))
        m.d.comb += tc.eq(Mux(t >= cfg.t_sat, cfg.t_sat, t))
        u = Signal(len(tc) + cfg.scale_const.bit_length())
        m.d.comb += u.eq(tc * cfg.scale_const)
        e = u[F:]
        if T:
            m.d.comb += lr.addr.eq(u[F - T:F])
        pnum = Signal(E + 1)
        m.d.comb += pnum.eq(Mux(s1_masked | (e > E + 1), 0, lr.data >> e[:(E + 1).bit_length()]))

        # ---- SV unit -------------------------------------------------------------------------
        ssum = Signal(cfg.sum_bits)
        acc = [Signal(signed(cfg.sv_bits), name=f"acc{d}") for d in range(D)]
        terms = []
        for l in range(L):
            dec = OperandDecoder(cfg.v_fmt)
            m.submodules[f"vdec{l}"] = dec
            m.d.comb += dec.code.eq(vr.data[l])
            mag = Signal(cfg.sv_bits, name=f"pv{l}")
            m.d.comb += mag.eq((pnum * dec.mag) << dec.shift)
            term = Signal(signed(cfg.sv_bits), name=f"sv{l}")
            m.d.comb += term.eq(Mux(dec.sign, -mag, mag))
            terms.append(term)
        with m.If(s1_valid):
            with m.If(s1_c == 0):
                m.d.sync += ssum.eq(Mux(s1_ki == 0, pnum, ssum + pnum))
            for cc in range(C):
                with m.If(s1_c == cc):
                    for l in range(L):
                        a = acc[cc * L + l]
                        m.d.sync += a.eq(Mux(s1_ki == 0, terms[l], a + terms[l]))
        sv_ok = ~sv.active | sv.end

        # ---- normalizer ----------------------------------------------------------------------
        nacc = [Signal(signed(cfg.sv_bits), name=f"nacc{d}") for d in range(D)]
        nsum = Signal(cfg.sum_bits)
        steps = cfg.div_steps * cfg.div_step_bits       # quotient bits computed (>= recip_width)
        low0 = (1 << cfg.z_bits) & ((1 << steps) - 1)
        rem = Signal(cfg.sum_bits + 1)
        nlow = Signal(steps)                         # dividend bits still to shift in
        quo = Signal(steps)
        dk = Signal(range(cfg.div_steps + 1))
        r_next, n_next, q_next = rem, nlow, quo
        for b in range(cfg.div_step_bits):           # div_step_bits restoring steps per cycle
            r2 = Signal(len(rem) + 1, name=f"div_r2_{b}")
            ge = Signal(name=f"div_ge_{b}")
            rn, qn = Signal.like(rem, name=f"div_r_{b}"), Signal.like(quo, name=f"div_q_{b}")
            m.d.comb += [r2.eq(Cat(n_next[-1], r_next)), ge.eq(r2 >= nsum),
                         rn.eq(Mux(ge, r2 - nsum, r2)), qn.eq(Cat(ge, q_next[:-1]))]
            r_next, n_next, q_next = rn, Cat(0, n_next[:-1]), qn
        oc = Signal(range(C + 1))
        NL = cfg.norm_mults
        SB = L // NL                                 # cycles per output beat
        sb = Signal(range(SB + 1))
        chunk_vals = Array(Cat(*nacc[cc * L:(cc + 1) * L]) for cc in range(C))
        sel = Signal(L * cfg.sv_bits)
        m.d.comb += sel.eq(chunk_vals[oc])
        groups = Array(sel[g * NL * cfg.sv_bits:(g + 1) * NL * cfg.sv_bits] for g in range(SB))
        gsel = Signal(NL * cfg.sv_bits)
        m.d.comb += gsel.eq(groups[sb])
        sh = cfg.z_bits - cfg.out_frac_bits
        recip = quo[:cfg.recip_width]
        ob = cfg.out_bits
        obuf = Signal(max(1, (SB - 1) * NL * ob))   # the beat's earlier groups
        normed = []
        for l in range(NL):
            a = gsel[l * cfg.sv_bits:(l + 1) * cfg.sv_bits].as_signed()
            prod = Signal(signed(cfg.sv_bits + cfg.recip_width + 1), name=f"norm{l}")
            o = Signal(signed(ob), name=f"normo{l}")
            m.d.comb += [prod.eq(a * recip), o.eq(prod >> sh)]
            normed.append(o)
        m.d.comb += Value.cast(self.o.payload).eq(Cat(obuf[:(SB - 1) * NL * ob], *normed) if SB > 1 else Cat(*normed))
        if SB > 1:
            shifted = Cat(obuf, *normed)[NL * ob:]   # shift register: the newest group on top
        nm_fin = Signal()
        nm_idle = Signal()
        sv_has = Signal()                    # the SV unit holds a row in this slot
        qk_has = Signal()                    # the QKᵀ unit holds a row in this slot
        with m.FSM(name="norm"):
            with m.State("IDLE"):
                m.d.comb += nm_idle.eq(1)
                with m.If(go & sv_has):
                    m.next = "WAIT"
            with m.State("WAIT"):              # slot cycle 0: SV's last stage-1 update lands
                m.next = "LATCH"
            with m.State("LATCH"):             # slot cycle 1: accumulators are final
                m.d.sync += [nsum.eq(ssum), rem.eq((1 << cfg.z_bits) >> steps), nlow.eq(low0),
                             quo.eq(0), dk.eq(cfg.div_steps - 1)]
                m.d.sync += [n.eq(a) for n, a in zip(nacc, acc)]
                m.next = "DIV"
            with m.State("DIV"):
                m.d.sync += [rem.eq(r_next), nlow.eq(n_next), quo.eq(q_next), dk.eq(dk - 1)]
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
                        m.d.comb += nm_fin.eq(1)
                        m.next = "IDLE"
                        with m.If(go & sv_has):
                            m.next = "WAIT"
        nm_ok = nm_idle | nm_fin

        # ---- slot sequencing -------------------------------------------------------------------
        m.d.comb += go.eq(ing_ok & qk_ok & sv_ok & nm_ok)
        with m.If(go):
            # the QKᵀ unit's row moves on to the SV unit (the SV unit's to the normalizer, above)
            sv.load(m, qk_has, qk.nk, qk.kstart, qk.row, qk.bank)
            m.d.sync += [sv_has.eq(qk_has), ing_done.eq(0)]
            if dense:
                m.d.sync += qk_has.eq(rg_act)
                qk.load(m, rg_act, dn, 0, rg_row, ~qk.bank)
                with m.If(rg_act):
                    m.d.sync += rg_row.eq(rg_row + 1)
                    with m.If(rg_row == dn - 1):
                        m.d.sync += rg_act.eq(0)
                with m.If(ing_act):
                    with m.If(last_now):
                        m.d.sync += [ing_act.eq(0), rg_act.eq(1), rg_row.eq(0), dn.eq(wslot + 1),
                                     wslot.eq(0)]
                    with m.Else():
                        m.d.sync += wslot.eq(wslot + 1)
                with m.Else():
                    m.d.sync += ing_act.eq(~rg_act & ~qk_has & ~sv_has)
            elif sym:
                # row r waits for token r + h (or the sequence's end); keys [r - behind, r + ahead]
                have = Signal(range(h + 3))     # tokens of the sequence at or after row r
                behind = Signal(range(h + 1))   # keys before row r: min(r, h)
                rslot = Signal(range(Wd + 1))   # slot of row r
                ended = Signal()
                have_new = Signal(range(h + 3))
                ended_new = Signal()
                issue = Signal()
                m.d.comb += [have_new.eq(have + ing_act), ended_new.eq(ended | (ing_act & last_now)),
                             issue.eq((have_new >= h + 1) | (ended_new & (have_new >= 1)))]
                ahead = Mux(have_new >= h + 1, h, have_new - 1)
                kstart = Mux(rslot >= behind, rslot - behind, rslot + Wd - behind)
                done = ended_new & (have_new == 1)
                m.d.sync += qk_has.eq(issue)
                qk.load(m, issue, behind + ahead + 1, kstart, rslot, ~qk.bank)
                with m.If(issue):
                    m.d.sync += [have.eq(have_new - 1), behind.eq(Mux(behind == h, h, behind + 1)),
                                 rslot.eq(Mux(rslot == Wd - 1, 0, rslot + 1)), ended.eq(ended_new)]
                    with m.If(done):
                        m.d.sync += [have.eq(0), behind.eq(0), ended.eq(0)]
                with m.Else():
                    m.d.sync += [have.eq(have_new), ended.eq(ended_new)]
                with m.If(ing_act):
                    m.d.sync += [wslot.eq(Mux(wslot == Wd - 1, 0, wslot + 1)), ing_act.eq(~last_now)]
                with m.Else():
                    m.d.sync += ing_act.eq(~(ended_new & ~(issue & done)) & ~issue & ~qk_has & ~sv_has)
            else:
                kstart = Mux(wslot >= pos, wslot - pos, wslot + Wd - pos)
                m.d.sync += qk_has.eq(ing_act)
                qk.load(m, ing_act, pos + 1, kstart, 0, ~qk.bank)
                with m.If(ing_act):
                    m.d.sync += [
                        wslot.eq(Mux(wslot == Wd - 1, 0, wslot + 1)),
                        pos.eq(Mux(last_now, 0, Mux(pos == W - 1, pos, pos + 1))),
                        ing_act.eq(~last_now),
                    ]
                with m.Else():
                    m.d.sync += ing_act.eq(~qk_has & ~sv_has)
        return m
