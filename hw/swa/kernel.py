"""Amaranth hardware of the sliding-window attention kernel (see :mod:`hw.swa` for the window
convention, the arithmetic and the stream framing): the units' composition and their lockstep
schedule.

Units (one component each)
--------------------------
- :class:`~hw.swa.ingest.SWAIngest`: the input stream and the K and V sliding buffers
  (``amaranth.lib.memory.Memory`` of ``(window + 2)·chunks`` words of ``lanes`` codes, token ``t``
  in slot ``t mod (window + 2)``); each K/V row is written once and read by every query row whose
  window holds it (input-stationary). The two spare slots let the next tokens arrive while older
  rows are still being finished. Q sits in a two-row ping-pong memory (causal) or in a ring like
  K/V (symmetric: a row waits for token ``i + h``). The dense baseline keeps the whole sequence
  (``window`` = max n).
- :class:`~hw.swa.scores.SWAScores` (QKᵀ): ``lanes`` exact multipliers (``hw.arith.multiplier``)
  and an adder tree (``hw.adder_tree.AdderTree``); scores go into a two-bank ``window``-entry row
  buffer (one row per bank, never an n×w matrix) while a running max per bank is kept.
- :class:`~hw.swa.softmax.SoftmaxNumerator`: per key, ``t = max - s``, ``u = t·c``, base-2 split
  into an integer shift and a ``2^lut_bits``-entry fraction table, ``p``.
- :class:`~hw.swa.sv.SWAWeightedSum` (SV): ``S += p``; ``lanes`` multipliers ``p·v``
  (``hw.arith.OperandDecoder`` + shift) into ``head_dim`` exact accumulators.
- :class:`~hw.swa.softmax.SWANormalizer`: copies the accumulators and ``S``, computes one
  reciprocal per row with a restoring divider (:class:`~hw.swa.softmax.ReciprocalDivider`,
  ``div_step_bits`` quotient bits per cycle), then ``norm_mults`` wide multipliers ``a·r``,
  ``lanes / norm_mults`` cycles per output beat.

Schedule
--------
The units work in lockstep on consecutive rows: in slot ``k`` the ingest unit takes token
``k``, the QKᵀ unit computes row ``k-d-1``, the SV unit (with the numerator) row ``k-d-2`` and the
normalizer row ``k-d-3`` (``d = 0`` causal, ``min(h, n-1)`` symmetric). A slot ends in the cycle
in which every unit has finished (or is finishing) its part, so slot ``k`` lasts the longest of
``chunks`` (ingest), ``nk·chunks`` (QKᵀ, SV) and ``norm_cycles = 2 + ceil(recip_width /
div_step_bits) + chunks·lanes/norm_mults`` cycles; with ``window·chunks >= norm_cycles`` (the
automatic choice where possible) the MAC units never idle in the steady state. After a sequence's
last token the ingest unit pauses until the pipeline has drained. The dense baseline first takes
the whole sequence, then feeds one row per slot, each over all ``n`` keys with the upper triangle
masked. Back-pressure on either stream only stretches the slot it falls in.

The QKᵀ and SV units see their (key, chunk) issue one cycle after it (:class:`_Issue`), together
with the buffer words read at its address.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .ingest import SWAIngest, q_per_slot
from .scores import SWAScores
from .softmax import SoftmaxNumerator, SWANormalizer
from .sv import SWAWeightedSum

__all__ = ["SWAKernel"]


@dataclass
class _Stage:
    """An issue registered for one cycle: aligned with the buffer words read at its address."""

    valid: Signal
    ki: Signal
    c: Signal
    bank: Signal
    row: Signal


class _Issue:
    """Registers of one unit's (key, chunk) issue loop over a row of ``nk`` keys.

    Parameters
    ----------
    name : str
    W : int
        Keys per row at most (``window``).
    Wd : int
        K/V buffer slots.
    C : int
        Chunks per key.
    """

    def __init__(self, name: str, W: int, Wd: int, C: int):
        self.name = name
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
    def end(self) -> Value:
        """The issue of the row's last (key, chunk) is in this cycle."""
        return (self.ki == self.nk - 1) & (self.c == self.C - 1)

    def advance(self, m: Module) -> None:
        """Step through the row's keys and chunks while active."""
        with m.If(self.active):
            m.d.sync += self.c.eq(Mux(self.c == self.C - 1, 0, self.c + 1))
            with m.If(self.c == self.C - 1):
                m.d.sync += [self.ki.eq(self.ki + 1),
                             self.slot.eq(Mux(self.slot == self.Wd - 1, 0, self.slot + 1))]
            with m.If(self.end):
                m.d.sync += self.active.eq(0)

    def load(self, m: Module, valid, nk, kstart, row, bank) -> None:
        """Start a row of ``nk`` keys from buffer slot ``kstart`` (if ``valid``)."""
        m.d.sync += [self.active.eq(valid), self.ki.eq(0), self.c.eq(0), self.slot.eq(kstart),
                     self.kstart.eq(kstart), self.nk.eq(nk), self.row.eq(row), self.bank.eq(bank)]

    def stage(self, m: Module, name: str) -> _Stage:
        """The issue delayed by one cycle (the buffers' read latency)."""
        W, C = self.W, self.C
        st = _Stage(Signal(name=f"{name}_valid"), Signal(range(W + 1), name=f"{name}_ki"),
                    Signal(range(C + 1), name=f"{name}_c"), Signal(name=f"{name}_bank"),
                    Signal(range(W + 1), name=f"{name}_row"))
        m.d.sync += [st.valid.eq(self.active), st.ki.eq(self.ki), st.c.eq(self.c), st.bank.eq(self.bank),
                     st.row.eq(self.row)]
        return st


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
        W, Wd, C = cfg.window, cfg.buffer_slots, cfg.chunks
        m.submodules.ingest = ing = SWAIngest(cfg)
        m.submodules.scores = qku = SWAScores(cfg)
        m.submodules.numerator = num = SoftmaxNumerator(cfg)
        m.submodules.sv = svu = SWAWeightedSum(cfg)
        m.submodules.norm = norm = SWANormalizer(cfg)
        wiring.connect(m, wiring.flipped(self.i), ing.i)
        wiring.connect(m, norm.o, wiring.flipped(self.o))

        qk = _Issue("qk", W, Wd, C)
        sv = _Issue("sv", W, Wd, C)
        qk.advance(m)
        sv.advance(m)
        q1, s1 = qk.stage(m, "q1"), sv.stage(m, "s1")
        q1_masked, s1_masked = Signal(), Signal()   # dense: keys after the row (upper triangle)
        if cfg.dense:
            m.d.comb += [q1_masked.eq(q1.ki > q1.row), s1_masked.eq(s1.ki > s1.row)]

        # QKᵀ: reads K and Q at the issue, scores one cycle later
        m.d.comb += [ing.k_slot.eq(qk.slot), ing.k_chunk.eq(qk.c), ing.q_chunk.eq(qk.c),
                     ing.q_index.eq(qk.row if q_per_slot(cfg) else qk.bank),
                     qku.valid.eq(q1.valid), qku.key.eq(q1.ki), qku.chunk.eq(q1.c), qku.bank.eq(q1.bank),
                     qku.masked.eq(q1_masked), qku.q.eq(ing.q), qku.k.eq(ing.k)]
        # softmax numerator and SV: read the score and V at the issue, accumulate one cycle later
        row_max = Array(qku.row_max[b] for b in range(2))
        m.d.comb += [qku.rd_bank.eq(sv.bank), qku.rd_key.eq(sv.ki), ing.v_slot.eq(sv.slot), ing.v_chunk.eq(sv.c),
                     num.max.eq(row_max[s1.bank]), num.score.eq(qku.rd_score), num.masked.eq(s1_masked),
                     svu.valid.eq(s1.valid), svu.key.eq(s1.ki), svu.chunk.eq(s1.c), svu.p.eq(num.p),
                     svu.v.eq(ing.v)]

        # slot sequencing
        go = Signal()                       # the current slot ends with this cycle
        seq = _Sequencer(cfg, qk)
        m.d.comb += [norm.acc.eq(svu.acc), norm.sum.eq(svu.sum), norm.start.eq(go & seq.sv_has),
                     ing.active.eq(seq.ing_act), ing.slot.eq(seq.wslot), ing.q_bank.eq(~qk.bank), ing.go.eq(go)]
        m.d.comb += go.eq(ing.ok & (~qk.active | qk.end) & (~sv.active | sv.end) & norm.ok)
        with m.If(go):
            # the QKᵀ unit's row moves on to the SV unit (the SV unit's to the normalizer)
            sv.load(m, seq.qk_has, qk.nk, qk.kstart, qk.row, qk.bank)
            m.d.sync += seq.sv_has.eq(seq.qk_has)
            if cfg.dense:
                seq.dense(m, ing.last)
            elif not cfg.causal:
                seq.symmetric(m, ing.last)
            else:
                seq.causal(m, ing.last)
        return m


class _Sequencer:
    """State of the lockstep schedule: which token the ingest unit takes and which row the QKᵀ
    unit starts at the end of a slot (``dense``, ``symmetric``, ``causal``: called under ``go``).

    Parameters
    ----------
    config : SWAConfig
    qk : _Issue
        The QKᵀ unit's issue loop (loaded here).
    """

    def __init__(self, config, qk: _Issue):
        W, Wd = config.window, config.buffer_slots
        self.config, self.qk = config, qk
        self.ing_act = Signal(init=1)           # this slot takes a token
        self.wslot = Signal(range(Wd + 1))      # K/V slot of this slot's token (dense: its index)
        self.pos = Signal(range(W + 1))         # SWA: min(position in sequence, W-1)
        self.qk_has = Signal()                  # the QKᵀ unit holds a row in this slot
        self.sv_has = Signal()                  # the SV unit holds a row in this slot

    def dense(self, m: Module, last_now: Value) -> None:
        """Dense baseline: take the whole sequence, then issue rows 0 .. n-1 over all n keys."""
        W, qk = self.config.window, self.qk
        ing_act, wslot = self.ing_act, self.wslot
        rg_act = Signal()                   # the row generator issues rows
        rg_row = Signal(range(W + 1))
        dn = Signal(range(W + 1))           # sequence length
        m.d.sync += self.qk_has.eq(rg_act)
        qk.load(m, rg_act, dn, 0, rg_row, ~qk.bank)
        with m.If(rg_act):
            m.d.sync += rg_row.eq(rg_row + 1)
            with m.If(rg_row == dn - 1):
                m.d.sync += rg_act.eq(0)
        with m.If(ing_act):
            with m.If(last_now):
                m.d.sync += [ing_act.eq(0), rg_act.eq(1), rg_row.eq(0), dn.eq(wslot + 1), wslot.eq(0)]
            with m.Else():
                m.d.sync += wslot.eq(wslot + 1)
        with m.Else():
            m.d.sync += ing_act.eq(~rg_act & ~self.qk_has & ~self.sv_has)

    def symmetric(self, m: Module, last_now: Value) -> None:
        """Symmetric window: row r waits for token r + h (or the sequence's end); its keys are
        [r - behind, r + ahead]."""
        cfg, qk = self.config, self.qk
        h, Wd = cfg.half, cfg.buffer_slots
        ing_act, wslot = self.ing_act, self.wslot
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
        m.d.sync += self.qk_has.eq(issue)
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
            m.d.sync += ing_act.eq(~(ended_new & ~(issue & done)) & ~issue & ~self.qk_has & ~self.sv_has)

    def causal(self, m: Module, last_now: Value) -> None:
        """Causal window: the slot's token is the next row, over its last min(pos + 1, W) keys."""
        W, Wd, qk = self.config.window, self.config.buffer_slots, self.qk
        ing_act, wslot, pos = self.ing_act, self.wslot, self.pos
        kstart = Mux(wslot >= pos, wslot - pos, wslot + Wd - pos)
        m.d.sync += self.qk_has.eq(ing_act)
        qk.load(m, ing_act, pos + 1, kstart, 0, ~qk.bank)
        with m.If(ing_act):
            m.d.sync += [
                wslot.eq(Mux(wslot == Wd - 1, 0, wslot + 1)),
                pos.eq(Mux(last_now, 0, Mux(pos == W - 1, pos, pos + 1))),
                ing_act.eq(~last_now),
            ]
        with m.Else():
            m.d.sync += ing_act.eq(~self.qk_has & ~self.sv_has)
