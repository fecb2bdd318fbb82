"""QKᵀ unit of the sliding-window attention kernel: exact scores of one query row, a two-bank
score row buffer and the running maximum of each bank.

Per cycle the unit takes one chunk (``lanes`` codes each of q and k) of one key: ``lanes`` exact
multipliers (:func:`hw.arith.multiplier`) and a combinational :class:`hw.adder_tree.AdderTree`
give the chunk's partial dot product, added to the key's running sum over its ``chunks`` chunks.
On a key's last chunk the exact score ``s = Σ_d q[d]·k[d]`` (units ``2^(2·k_qk)``,
``score_bits`` signed) is written at entry ``key`` of the row buffer bank ``bank`` (two banks of
``window`` entries, one row each: the SV unit reads one bank while this unit fills the other), and
the bank's maximum becomes ``s`` on the row's first key, else ``max(max, s)``; masked keys (dense
baseline, upper triangle) are stored but leave the maximum alone.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..adder_tree import AdderTree
from ..arith import multiplier, product_bits

__all__ = ["SWAScores"]


class SWAScores(wiring.Component):
    """QKᵀ unit: exact scores into a two-bank row buffer, with a running max per bank.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    valid : In(1)
        ``q`` and ``k`` hold chunk ``chunk`` of key ``key`` of a row.
    key : In(range(window + 1))
        Key index within the row (0 starts the row's maximum).
    chunk : In(range(chunks + 1))
        Chunk index within the key (0 starts the key's sum; ``chunks - 1`` ends it).
    bank : In(1)
        Row buffer bank of the row.
    masked : In(1)
        The key is outside the row's window (dense baseline): stored, but not in the maximum.
    q, k : In(ArrayLayout(unsigned(qk_fmt.bits), lanes))
        Query and key codes of the chunk.
    row_max : Out(ArrayLayout(signed(score_bits), 2))
        Running maximum of each bank's row (registered).
    rd_bank : In(1), rd_key : In(range(window + 1))
        Read address of the row buffer; ``rd_score`` holds the entry one cycle later (a score
        written in the same cycle is read through).
    rd_score : Out(signed(score_bits))
    """

    def __init__(self, config):
        self.config = config
        W, C = config.window, config.chunks
        qk_row = data.ArrayLayout(unsigned(config.qk_fmt.bits), config.lanes)
        super().__init__({
            "valid": In(1), "key": In(range(W + 1)), "chunk": In(range(C + 1)), "bank": In(1),
            "masked": In(1), "q": In(qk_row), "k": In(qk_row),
            "row_max": Out(data.ArrayLayout(signed(config.score_bits), 2)),
            "rd_bank": In(1), "rd_key": In(range(W + 1)), "rd_score": Out(signed(config.score_bits)),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        L, C, W = cfg.lanes, cfg.chunks, cfg.window
        m.submodules.smem = smem = Memory(shape=signed(cfg.score_bits), depth=2 * W, init=[])
        sw = smem.write_port()
        sr = smem.read_port(transparent_for=(sw,))
        m.d.comb += [sr.addr.eq(self.rd_bank * W + self.rd_key), self.rd_score.eq(sr.data)]

        m.submodules.tree = tree = AdderTree(product_bits(cfg.qk_fmt, cfg.qk_fmt), L)
        for l in range(L):
            mul = multiplier(cfg.qk_fmt, cfg.qk_fmt)
            m.submodules[f"qk{l}"] = mul
            m.d.comb += [mul.w.eq(self.k[l]), mul.a.eq(self.q[l]), tree.terms[l].eq(mul.p)]
        sacc = Signal(signed(cfg.score_bits))
        score = Signal(signed(cfg.score_bits))
        smax = Array(Signal(signed(cfg.score_bits), name=f"smax{b}") for b in range(2))
        m.d.comb += [self.row_max[b].eq(smax[b]) for b in range(2)]
        m.d.comb += score.eq(Mux(self.chunk == 0, tree.total, sacc + tree.total))
        m.d.comb += [sw.addr.eq(self.bank * W + self.key), sw.data.eq(score)]
        with m.If(self.valid):
            m.d.sync += sacc.eq(score)
            with m.If(self.chunk == C - 1):
                m.d.comb += sw.en.eq(1)
                with m.If(~self.masked & ((self.key == 0) | (score > smax[self.bank]))):
                    m.d.sync += smax[self.bank].eq(score)
        return m
