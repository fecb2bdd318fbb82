"""A pipelined binary adder tree: the one reduction unit every engine uses.

Level ``l`` (1 .. ``tree_levels(count)``) adds neighbouring pairs; each sum is
``signed(len(a + b))`` wide, i.e. one bit wider than its wider operand, and an odd last term
passes through unchanged. A register stage can sit after any level (level 0 = on the inputs,
before any adder); all stages advance together when ``en`` is 1, so a stalled tree keeps its
contents. A sideband ``tag`` (e.g. valid and last of a stream beat) travels through the same
register stages, so it stays aligned with the sum it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .engine import tree_levels

__all__ = ["AdderTree", "tree_width"]


def tree_width(width: int, count: int) -> int:
    """Width of the tree's sum, bits (signed): ``width + tree_levels(count)``.

    Exactly the width the pairwise ``signed(len(a + b))`` sums reach at the root, since the
    widest term of every level sits in its first pair.
    """
    return int(width) + tree_levels(count)


class AdderTree(wiring.Component):
    """Sum of ``count`` signed terms of ``width`` bits, with optional register stages.

    Parameters
    ----------
    width : int
        Term width, bits (signed).
    count : int
        Number of terms, >= 1.
    register_levels : iterable of int
        Levels after which a register stage sits, each in ``0 .. tree_levels(count)``
        (0 = on the inputs, before any adder). Latency = their number of cycles.
    tag_bits : int
        Width of the sideband registered alongside the sums (0 = none), bits.

    Attributes
    ----------
    terms : In(ArrayLayout(signed(width), count))
    en : In(1)
        Register stages load when 1 and hold otherwise.
    tag_in : In(tag_bits), tag_out : Out(tag_bits)
        Present only when ``tag_bits > 0``; ``tag_out`` is ``tag_in`` delayed like the sum.
    total : Out(signed(out_bits))
        The exact sum, ``out_bits = width + tree_levels(count)``.
    """

    def __init__(self, width: int, count: int, register_levels: Iterable[int] = (), tag_bits: int = 0):
        if count < 1 or width < 1:
            raise ValueError(f"an adder tree needs count >= 1 and width >= 1, got count={count}, width={width}")
        self.width, self.count, self.tag_bits = int(width), int(count), int(tag_bits)
        self.levels = tree_levels(count)
        self.register_levels = frozenset(int(x) for x in register_levels)
        bad = sorted(x for x in self.register_levels if not 0 <= x <= self.levels)
        if bad:
            raise ValueError(f"register levels {bad} outside 0..{self.levels} of a {count}-term tree")
        self.out_bits = tree_width(width, count)
        ports = {
            "terms": In(data.ArrayLayout(signed(self.width), self.count)),
            "en": In(1),
            "total": Out(signed(self.out_bits)),
        }
        if self.tag_bits:
            ports |= {"tag_in": In(self.tag_bits), "tag_out": Out(self.tag_bits)}
        super().__init__(ports)

    @property
    def latency(self) -> int:
        """Cycles from ``terms`` to ``total`` (with ``en`` held at 1)."""
        return len(self.register_levels)

    def elaborate(self, platform):
        m = Module()
        terms = [self.terms[n] for n in range(self.count)]
        tag = self.tag_in if self.tag_bits else None

        def stage(level: int, terms: list, tag):
            if level not in self.register_levels:
                return terms, tag
            regs = [Signal.like(t, name=f"s{level}_t{n}") for n, t in enumerate(terms)]
            with m.If(self.en):
                m.d.sync += [r.eq(t) for r, t in zip(regs, terms)]
            if tag is None:
                return regs, None
            r_tag = Signal(self.tag_bits, name=f"s{level}_tag")
            with m.If(self.en):
                m.d.sync += r_tag.eq(tag)
            return regs, r_tag

        terms, tag = stage(0, terms, tag)
        for level in range(1, self.levels + 1):
            nxt = []
            for n in range(len(terms) // 2):
                s = terms[2 * n] + terms[2 * n + 1]
                sig = Signal(signed(len(s)), name=f"l{level}_sum{n}")
                m.d.comb += sig.eq(s)
                nxt.append(sig)
            terms = nxt + ([terms[-1]] if len(terms) % 2 else [])
            terms, tag = stage(level, terms, tag)
        m.d.comb += self.total.eq(terms[0])
        if self.tag_bits:
            m.d.comb += self.tag_out.eq(tag)
        return m
