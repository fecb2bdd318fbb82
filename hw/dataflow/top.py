"""The whole-network accelerator (:class:`Accelerator`): one :class:`~hw.dataflow.stage.StageEngine`
per stage of a :class:`~hw.dataflow.plan.NetworkPlan` (a :class:`~hw.dataflow.row_engine.RowEngine`
per row stage), chained by their streams, each stage's ``release`` returning a credit to the stage
before it. A stage whose frames a later row stage also reads (its ``skip``) broadcasts its output
stream to the next stage and to each such reader's ``skip_i`` (a beat goes to all at once, when
all are ready — with credits they always are), and each reader's ``skip_release`` returns a skip credit
to it.

Ports: ``i`` — the network's input codes, one per beat, a frame (``in_size`` beats, C, H, W
order) per inference; ``o`` — the last stage's output elements, one per beat, ``out_size`` per
inference (codes, or the raw accumulator plus bias, signed). Frames follow each other without
gaps or framing bits: the counts delimit them.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..axis import byte_width

from .plan import NetworkPlan
from .row import RowStage
from .row_engine import RowEngine
from .stage import StageEngine

__all__ = ["Accelerator", "AXIStreamAccelerator", "PlanKey"]


@dataclass(frozen=True)
class PlanKey:
    """The identity of an accelerator's hardware (:meth:`NetworkPlan.digest`): as ``config``, it
    lets the Verilator backend reuse a model built from an equal plan without exporting again."""

    digest: str


class Accelerator(wiring.Component):
    """A :class:`NetworkPlan` in hardware (module docstring).

    Parameters
    ----------
    plan : NetworkPlan
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.config = PlanKey(plan.digest())
        self.readers = [plan.skip_readers(s) for s in range(len(plan.stages))]
        self.engines = []
        for s, st in enumerate(plan.stages):
            depths = tuple(plan.stages[t].skip_depth for t in self.readers[s])
            engine = RowEngine if isinstance(st, RowStage) else StageEngine
            self.engines.append(engine(st, credited=s + 1 < len(plan.stages), skip_depths=depths))
        super().__init__({"i": self.engines[0].signature.members["i"],
                          "o": self.engines[-1].signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        for s, eng in enumerate(self.engines):
            m.submodules[f"s{s}_{_ident(self.plan.stages[s].name)}"] = eng
        wiring.connect(m, wiring.flipped(self.i), self.engines[0].i)
        for s, (a, b) in enumerate(zip(self.engines, self.engines[1:])):
            sinks = [b.i] + [self.engines[t].skip_i for t in self.readers[s]]
            ready = Cat(*(sink.ready for sink in sinks)).all()
            for k, sink in enumerate(sinks):  # a beat goes to all sinks at once, or to none
                others = Cat(*(x.ready for j, x in enumerate(sinks) if j != k)).all() if len(sinks) > 1 else 1
                m.d.comb += [sink.valid.eq(a.o.valid & others), sink.payload.eq(a.o.payload)]
            m.d.comb += [a.o.ready.eq(ready), a.credit.eq(b.release)]
            for k, t in enumerate(self.readers[s]):
                m.d.comb += a.skip_credit[k].eq(self.engines[t].skip_release)
        wiring.connect(m, self.engines[-1].o, wiring.flipped(self.o))
        return m


def _ident(name: str) -> str:
    """``name`` as a Verilog-friendly identifier fragment."""
    return "".join(c if c.isalnum() else "_" for c in name)[:32] or "stage"


class AXIStreamAccelerator(wiring.Component):
    """An :class:`Accelerator` behind AXI4-Stream ports (``paretofab accel … -o DIR --axis``).

    Slave ``s_axis_*``: ``tdata`` an input code, zero-padded to whole bytes; ``tlast`` on a
    frame's last code. Master ``m_axis_*``: ``tdata`` an output element padded to whole bytes
    (the raw signed accumulator sign-extended, codes zero-padded), ``tkeep`` all ones, ``tlast`` on
    every frame's last element. Frames are counted, so ``tlast`` is not needed to delimit them:
    ``framing_error`` (sticky) rises when an input ``tlast`` disagrees with the count. Clock
    ``clk``, synchronous active-high reset ``rst``.
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.accelerator = Accelerator(plan)
        self.plan = plan
        self.in_bits = Shape.cast(self.accelerator.i.payload.shape()).width
        self.out_bits = Shape.cast(self.accelerator.o.payload.shape()).width
        ob = byte_width(self.out_bits)
        super().__init__({
            "s_axis_tdata": In(byte_width(self.in_bits)), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(ob), "m_axis_tkeep": Out(ob // 8), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1), "framing_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self.accelerator
        n_in, n_out = Signal(range(max(2, self.plan.in_size))), Signal(range(max(2, self.plan.out_size)))
        in_last, out_last = n_in == self.plan.in_size - 1, n_out == self.plan.out_size - 1
        m.d.comb += [
            acc.i.payload.eq(self.s_axis_tdata[:self.in_bits]), acc.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(acc.i.ready),
            self.m_axis_tdata.eq(acc.o.payload), self.m_axis_tkeep.eq(Const(-1, len(self.m_axis_tkeep))),
            self.m_axis_tvalid.eq(acc.o.valid), acc.o.ready.eq(self.m_axis_tready), self.m_axis_tlast.eq(out_last),
        ]
        with m.If(self.s_axis_tvalid & self.s_axis_tready):
            m.d.sync += n_in.eq(Mux(in_last, 0, n_in + 1))
            with m.If(self.s_axis_tlast != in_last):
                m.d.sync += self.framing_error.eq(1)
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += n_out.eq(Mux(out_last, 0, n_out + 1))
        return m
