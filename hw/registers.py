"""Register bits of an Amaranth design, counted from its elaborated fragments (no Yosys).

:func:`register_bits` walks the design's fragment tree once: every signal assigned in a clocked
domain counts its width once (however many statements drive it), and every memory read port in a
clocked domain counts its data width (the read register: a flip-flop row where the memory lands in
LUTRAM, inside the block where it lands in BRAM). The cost model uses it where the registers of a
generator are too many to count by hand (``costmodel.swa``).

It reads Amaranth 0.5's fragment internals (``Fragment.statements``, ``MemoryInstance``), pinned
with the ``amaranth`` requirement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl._ir import Fragment
from amaranth.hdl._mem import MemoryInstance

__all__ = ["RegisterBits", "register_bits"]


@dataclass(frozen=True)
class RegisterBits:
    """Register bits of a design.

    Attributes
    ----------
    logic : int
        Bits of the signals assigned in clocked domains (flip-flops before optimization).
    memory_reads : int
        Data bits of the memories' clocked read ports (read registers).
    """

    logic: int
    memory_reads: int


def register_bits(design: Any) -> RegisterBits:
    """Count the register bits of ``design`` (an elaboratable or a config with ``build()``)."""
    if hasattr(design, "build") and not hasattr(design, "elaborate"):
        design = design.build()
    seen: set[int] = set()
    logic = reads = 0
    stack = [Fragment.get(design, None)]
    while stack:
        frag = stack.pop()
        if isinstance(frag, MemoryInstance):
            reads += sum(len(p._data) for p in frag._read_ports if p._domain != "comb")
        for domain, stmts in getattr(frag, "statements", {}).items():
            if domain == "comb":
                continue
            for stmt in stmts:
                for sig in stmt._lhs_signals():
                    if id(sig) not in seen:
                        seen.add(id(sig))
                        logic += len(sig)
        stack.extend(sub for sub, *_ in getattr(frag, "subfragments", []))
    return RegisterBits(logic, reads)
