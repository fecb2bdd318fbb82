"""Amaranth hardware of the sliding-window attention kernel (see :mod:`hw.swa` for the window
convention, the arithmetic and the stream framing).

Datapath
--------
- K and V sliding buffers: ``amaranth.lib.memory.Memory`` of ``window·chunks`` words of ``lanes``
  codes (slot ``t mod window`` holds token ``t``); each K/V row is written once from the input
  stream and read by every query row whose window holds it (input-stationary). Q of the current
  row sits in a ``chunks``-word memory (the dense baseline keeps all of Q, K, V: ``n·chunks``).
- QKᵀ unit: ``lanes`` exact multipliers (``hw.arith.multiplier``) and an adder tree; scores go
  into a ``window``-entry row buffer (one row only; no n×w score matrix) while a running max is
  kept.
- Softmax + SV unit: per key, ``t = max - s``, ``u = t·c``, base-2 split into an integer shift
  and a ``2^lut_bits``-entry fraction table, ``p``; ``S += p``; ``lanes`` multipliers
  ``p·v`` (``hw.arith.OperandDecoder`` + shift) into ``head_dim`` exact accumulators.
- Normalization: one reciprocal per row by a restoring divider (``recip_width`` cycles), then
  ``lanes`` multipliers ``a·r`` per output beat.

Schedule (FSM): INGEST (``chunks`` beats of one token; the dense baseline takes the whole
sequence) → QK (``nk·chunks + 1``) → SV (``nk·chunks + 1``) → DIV (``recip_width``) → OUT
(``chunks`` beats). Back-pressure on either stream only stretches INGEST / OUT.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import OperandDecoder, multiplier

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

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        L, C, W = cfg.lanes, cfg.chunks, cfg.window
        D = cfg.head_dim
        E, T, F = cfg.exp_bits, cfg.lut_bits, cfg.scale_frac
        dense = cfg.dense
        qk_row = data.ArrayLayout(unsigned(cfg.qk_fmt.bits), L)
        v_row = data.ArrayLayout(unsigned(cfg.v_fmt.bits), L)

        # ---- memories ------------------------------------------------------------------------
        m.submodules.kmem = kmem = Memory(shape=qk_row, depth=W * C, init=[])
        m.submodules.vmem = vmem = Memory(shape=v_row, depth=W * C, init=[])
        m.submodules.qmem = qmem = Memory(shape=qk_row, depth=(W * C if dense else C), init=[])
        m.submodules.smem = smem = Memory(shape=signed(cfg.score_bits), depth=W, init=[])
        m.submodules.lut = lut = Memory(shape=unsigned(E + 1), depth=2**T,
                                        init=[int(x) for x in cfg.exp_table])
        kw, vw, qw, sw = kmem.write_port(), vmem.write_port(), qmem.write_port(), smem.write_port()
        kr, vr, qr, sr = kmem.read_port(), vmem.read_port(), qmem.read_port(), smem.read_port()
        lr = lut.read_port(domain="comb")

        # ---- control state -------------------------------------------------------------------
        head = Signal(range(W + 1))        # SWA: slot of the next token; dense: tokens taken in
        count = Signal(range(W + 1))       # keys in the window (SWA) / sequence length (dense)
        row = Signal(range(W + 1))         # dense: current row
        ci = Signal(range(C + 1))          # chunk of the beat being taken in / sent out
        seq_last = Signal()
        nk = Signal(range(W + 1))          # keys of the current row
        js = Signal(range(W + 1))          # issue: key slot
        jc = Signal(range(C + 1))          # issue: chunk
        iss = Signal()                     # issue active
        p1_valid, p1_s, p1_c = Signal(), Signal(range(W + 1)), Signal(range(C + 1))
        p1_end = Signal()                  # stage 1 holds the row's last (key, chunk)
        in_sv = Signal()

        iss_end = (js == nk - 1) & (jc == C - 1)
        m.d.sync += [p1_valid.eq(iss), p1_s.eq(js), p1_c.eq(jc), p1_end.eq(iss & iss_end)]
        with m.If(iss):
            m.d.sync += jc.eq(Mux(jc == C - 1, 0, jc + 1))
            with m.If(jc == C - 1):
                m.d.sync += js.eq(js + 1)
            with m.If(iss_end):
                m.d.sync += iss.eq(0)

        def start_issue():
            m.d.sync += [iss.eq(1), js.eq(0), jc.eq(0)]

        # read addresses (sync ports: data arrive with stage 1)
        m.d.comb += [
            kr.addr.eq(js * C + jc),
            vr.addr.eq(js * C + jc),
            sr.addr.eq(js),
            qr.addr.eq((row * C + jc) if dense else jc),
        ]
        masked = Signal()
        m.d.comb += masked.eq((p1_s > row) if dense else 0)

        # ---- QKᵀ unit ------------------------------------------------------------------------
        prods = []
        for l in range(L):
            mul = multiplier(cfg.qk_fmt, cfg.qk_fmt)
            m.submodules[f"qk{l}"] = mul
            m.d.comb += [mul.w.eq(kr.data[l]), mul.a.eq(qr.data[l])]
            prods.append(mul.p)
        part = _tree(m, prods, "qk")
        sacc = Signal(signed(cfg.score_bits))
        score = Signal(signed(cfg.score_bits))
        smax = Signal(signed(cfg.score_bits))
        m.d.comb += score.eq(Mux(p1_c == 0, part, sacc + part))
        m.d.comb += [sw.addr.eq(p1_s), sw.data.eq(score)]
        with m.If(p1_valid & ~in_sv):
            m.d.sync += sacc.eq(score)
            with m.If(p1_c == C - 1):
                m.d.comb += sw.en.eq(1)
                with m.If(~masked & ((p1_s == 0) | (score > smax))):
                    m.d.sync += smax.eq(score)

        # ---- softmax numerator p ---------------------------------------------------------------
        t = Signal(cfg.score_bits + 1)
        m.d.comb += t.eq(smax - sr.data)
        tc = Signal(range(cfg.t_sat + 1))
        m.d.comb += tc.eq(Mux(t >= cfg.t_sat, cfg.t_sat, t))
        u = Signal(len(tc) + cfg.scale_const.bit_length())
        m.d.comb += u.eq(tc * cfg.scale_const)
        e = u[F:]
        if T:
            m.d.comb += lr.addr.eq(u[F - T:F])
        pnum = Signal(E + 1)
        m.d.comb += pnum.eq(Mux(masked | (e > E + 1), 0, lr.data >> e[:max(1, (E + 1).bit_length())]))

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
        with m.If(p1_valid & in_sv):
            with m.If(p1_c == 0):
                m.d.sync += ssum.eq(Mux(p1_s == 0, pnum, ssum + pnum))
            for cc in range(C):
                with m.If(p1_c == cc):
                    for l in range(L):
                        a = acc[cc * L + l]
                        m.d.sync += a.eq(Mux(p1_s == 0, terms[l], a + terms[l]))

        # ---- reciprocal (restoring divider) and normalization ---------------------------------
        rem = Signal(cfg.sum_bits + 1)
        quo = Signal(cfg.recip_width)
        dk = Signal(range(cfg.recip_width + 1))
        rem2 = Signal(cfg.sum_bits + 2)
        m.d.comb += rem2.eq(rem << 1)
        ge = rem2 >= ssum
        oc = Signal(range(C + 1))
        chunk_vals = Array(Cat(*acc[cc * L:(cc + 1) * L]) for cc in range(C))
        sel = Signal(L * cfg.sv_bits)
        m.d.comb += sel.eq(chunk_vals[oc])
        sh = cfg.z_bits - cfg.out_frac_bits
        for l in range(L):
            a = sel[l * cfg.sv_bits:(l + 1) * cfg.sv_bits].as_signed()
            prod = Signal(signed(cfg.sv_bits + cfg.recip_width + 1), name=f"norm{l}")
            m.d.comb += prod.eq(a * quo)
            m.d.comb += self.o.payload[l].eq(prod >> sh)

        # ---- FSM -----------------------------------------------------------------------------
        with m.FSM():
            with m.State("INGEST"):
                m.d.comb += self.i.ready.eq(1)
                waddr = head * C + ci
                for port, f in ((kw, "k"), (vw, "v")):
                    m.d.comb += [port.addr.eq(waddr), port.data.eq(self.i.payload[f])]
                m.d.comb += [qw.addr.eq(waddr if dense else ci), qw.data.eq(self.i.payload.q)]
                with m.If(self.i.valid):
                    m.d.comb += [kw.en.eq(1), vw.en.eq(1), qw.en.eq(1)]
                    m.d.sync += ci.eq(ci + 1)
                    with m.If(ci == C - 1):
                        m.d.sync += ci.eq(0)
                        if dense:
                            m.d.sync += head.eq(head + 1)
                            with m.If(self.i.payload.last):
                                m.d.sync += [count.eq(head + 1), nk.eq(head + 1), row.eq(0)]
                                start_issue()
                                m.next = "QK"
                        else:
                            new_count = Mux(count == W, W, count + 1)
                            m.d.sync += [
                                count.eq(new_count), nk.eq(new_count),
                                head.eq(Mux(head == W - 1, 0, head + 1)),
                                seq_last.eq(self.i.payload.last),
                            ]
                            start_issue()
                            m.next = "QK"
            with m.State("QK"):
                with m.If(p1_end):
                    m.d.sync += in_sv.eq(1)
                    start_issue()
                    m.next = "SV"
            with m.State("SV"):
                with m.If(p1_end):
                    m.d.sync += [in_sv.eq(0), rem.eq(1 << (E - 1)), quo.eq(0), dk.eq(cfg.recip_width - 1)]
                    m.next = "DIV"
            with m.State("DIV"):
                m.d.sync += [rem.eq(Mux(ge, rem2 - ssum, rem2)), quo.eq(Cat(ge, quo[:-1])), dk.eq(dk - 1)]
                with m.If(dk == 0):
                    m.d.sync += oc.eq(0)
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += oc.eq(oc + 1)
                    with m.If(oc == C - 1):
                        if dense:
                            with m.If(row == count - 1):
                                m.d.sync += [head.eq(0), count.eq(0), row.eq(0)]
                                m.next = "INGEST"
                            with m.Else():
                                m.d.sync += row.eq(row + 1)
                                start_issue()
                                m.next = "QK"
                        else:
                            with m.If(seq_last):
                                m.d.sync += [head.eq(0), count.eq(0)]
                            m.next = "INGEST"
        return m
