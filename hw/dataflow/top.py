"""The whole-network accelerator (:class:`Accelerator`): one :class:`~hw.dataflow.stage.StageEngine`
per stage of a :class:`~hw.dataflow.plan.NetworkPlan`, chained by their streams, each stage's
``release`` returning a credit to the stage before it.

Ports: ``i`` — the network's input codes, one per beat, a frame (``in_size`` beats, C, H, W
order) per inference; ``o`` — the last stage's output elements, one per beat, ``out_size`` per
inference (codes, or the raw accumulator plus bias, signed). Frames follow each other without
gaps or framing bits: the counts delimit them.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from .plan import NetworkPlan
from .stage import StageEngine

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """A :class:`NetworkPlan` in hardware (module docstring).

    Parameters
    ----------
    plan : NetworkPlan
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.engines = [StageEngine(st, credited=s + 1 < len(plan.stages)) for s, st in enumerate(plan.stages)]
        super().__init__({"i": self.engines[0].signature.members["i"],
                          "o": self.engines[-1].signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        for s, eng in enumerate(self.engines):
            m.submodules[f"s{s}_{_ident(self.plan.stages[s].name)}"] = eng
        wiring.connect(m, wiring.flipped(self.i), self.engines[0].i)
        for a, b in zip(self.engines, self.engines[1:]):
            wiring.connect(m, a.o, b.i)
            m.d.comb += a.credit.eq(b.release)
        wiring.connect(m, self.engines[-1].o, wiring.flipped(self.o))
        return m


def _ident(name: str) -> str:
    """``name`` as a Verilog-friendly identifier fragment."""
    return "".join(c if c.isalnum() else "_" for c in name)[:32] or "stage"
