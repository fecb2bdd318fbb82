"""SV unit of the sliding-window attention kernel (step 4 of the arithmetic in
:mod:`hw.swa.model`): the softmax-weighted sum of V rows and the numerators' sum.

Per cycle the unit takes one chunk of one key: its numerator ``p`` (units ``2^-exp_bits``) and
``lanes`` V codes. Each code is split by :class:`hw.arith.OperandDecoder` into sign, magnitude and
shift; the exact product ``p·v = ±(p·mag) << shift`` (units ``2^(k_v - exp_bits)``) goes into
accumulator ``chunk·lanes + lane`` of ``head_dim`` (``sv_bits`` signed), which restarts on the
row's first key. ``S = Σ p`` is accumulated on each key's chunk 0.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith import OperandDecoder

__all__ = ["SWAWeightedSum"]


class SWAWeightedSum(wiring.Component):
    """SV unit: ``a[d] = Σ_j p_j·v_j[d]`` and ``S = Σ_j p_j`` over the keys of one row.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    valid : In(1)
        ``p`` and ``v`` hold chunk ``chunk`` of key ``key`` of a row.
    key : In(range(window + 1))
        Key index within the row (0 restarts the sums).
    chunk : In(range(chunks + 1))
    p : In(exp_bits + 1)
        The key's softmax numerator, units ``2^-exp_bits``.
    v : In(ArrayLayout(unsigned(v_fmt.bits), lanes))
        V codes of the chunk.
    acc : Out(ArrayLayout(signed(sv_bits), head_dim))
        Exact weighted sums (registered), units ``2^(k_v - exp_bits)``.
    sum : Out(sum_bits)
        ``S`` (registered), units ``2^-exp_bits``.
    """

    def __init__(self, config):
        self.config = config
        W, C = config.window, config.chunks
        super().__init__({
            "valid": In(1), "key": In(range(W + 1)), "chunk": In(range(C + 1)),
            "p": In(config.exp_bits + 1),
            "v": In(data.ArrayLayout(unsigned(config.v_fmt.bits), config.lanes)),
            "acc": Out(data.ArrayLayout(signed(config.sv_bits), config.head_dim)),
            "sum": Out(config.sum_bits),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        L, C = cfg.lanes, cfg.chunks
        ssum = Signal(cfg.sum_bits)
        acc = [Signal(signed(cfg.sv_bits), name=f"acc{d}") for d in range(cfg.head_dim)]
        m.d.comb += [self.sum.eq(ssum), *(self.acc[d].eq(a) for d, a in enumerate(acc))]
        terms = []
        for l in range(L):
            dec = OperandDecoder(cfg.v_fmt)
            m.submodules[f"vdec{l}"] = dec
            m.d.comb += dec.code.eq(self.v[l])
            mag = Signal(cfg.sv_bits, name=f"pv{l}")
            m.d.comb += mag.eq((self.p * dec.mag) << dec.shift)
            term = Signal(signed(cfg.sv_bits), name=f"sv{l}")
            m.d.comb += term.eq(Mux(dec.sign, -mag, mag))
            terms.append(term)
        with m.If(self.valid):
            with m.If(self.chunk == 0):
                m.d.sync += ssum.eq(Mux(self.key == 0, self.p, ssum + self.p))
            for cc in range(C):
                with m.If(self.chunk == cc):
                    for l in range(L):
                        a = acc[cc * L + l]
                        m.d.sync += a.eq(Mux(self.key == 0, terms[l], a + terms[l]))
        return m
