"""Any activation of an accumulator followed by a quantizer, in RTL: a step function stored as
thresholds (:class:`TableActivation`) — what FINN's MultiThreshold does for monotone activations,
here for any function with a table of breakpoints (GELU dips below zero before it rises, so its
codes fall, then climb).

``code = values_c[#{b in breaks_c: b <= acc}]`` for channel ``c``: the numpy semantics are
:func:`quant.reference.apply_breakpoints`, the tables come from
:func:`quant.reference.breakpoints`. The count is a binary search of ``L = ceil(log2(n + 1))``
comparisons (``n`` the most breakpoints of a channel, padded with thresholds no accumulator
reaches): level ``l`` compares ``acc`` with the breakpoints its ``2^(L-1-l)`` possible positions
hold. Combinational, as :mod:`hw.requant`'s requantizers (same ports); the caller registers the
output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amaranth.hdl import Array, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.formats import parse_format
from quant.reference import breakpoints, element_ints, requantize

from .arith import ConfigError
from .requant import RequantSpec

__all__ = ["ActivationSpec", "TableActivation", "thresholds"]


@dataclass(frozen=True)
class ActivationSpec:
    """What one threshold unit computes.

    Attributes
    ----------
    acc_bits : width of the signed accumulator input, bits.
    breaks : per channel, ascending breakpoints (accumulator values where the code changes).
    values : per channel, the codes (``fmt``'s bit patterns, or integer values of an integer
        format), one more than its breakpoints.
    fmt : the output format.
    """

    acc_bits: int
    breaks: tuple[tuple[int, ...], ...]
    values: tuple[tuple[int, ...], ...]
    fmt: str

    def __post_init__(self) -> None:
        if not 2 <= self.acc_bits <= 64:
            raise ConfigError(f"acc_bits must be in 2..64, got {self.acc_bits}")
        if not self.breaks or len(self.breaks) != len(self.values):
            raise ConfigError("breaks and values need one table per channel, at least one")
        for b, v in zip(self.breaks, self.values):
            if len(v) != len(b) + 1 or any(x >= y for x, y in zip(b, b[1:])):
                raise ConfigError("each channel needs ascending breakpoints and one more value than breakpoints")

    @property
    def channels(self) -> int:
        return len(self.breaks)

    @property
    def levels(self) -> int:
        """Comparisons per lookup, ``L``."""
        return max(len(b) for b in self.breaks).bit_length()


class TableActivation(wiring.Component):
    """An :class:`ActivationSpec` in hardware (module docstring). Ports: ``acc``
    In(signed(acc_bits)), ``channel`` In(range(channels)), ``code`` Out(bits)."""

    def __init__(self, spec: ActivationSpec) -> None:
        self.spec = spec
        self.bits = parse_format(spec.fmt).bits
        super().__init__({"acc": In(signed(spec.acc_bits)), "channel": In(range(max(2, spec.channels))),
                          "code": Out(self.bits)})

    def elaborate(self, platform):
        sp, L = self.spec, self.spec.levels
        m = Module()
        lo, hi = -(1 << (sp.acc_bits - 1)), 1 << (sp.acc_bits - 1)  # hi: no accumulator reaches it
        width = signed(sp.acc_bits + 1)
        padded = [[min(max(int(b), lo), hi) for b in brk] + [hi] * ((1 << L) - 1 - len(brk)) for brk in sp.breaks]
        count = Const(0, L) if L else Const(0, 1)
        for level in reversed(range(L)):  # bit `level` of the count: compare with padded[j + 2^level - 1]
            table = Array(Array(Const(row[(j << (level + 1)) + (1 << level) - 1], width)
                                for j in range(1 << (L - 1 - level))) for row in padded)
            here = Signal(L, name=f"count{level}")
            m.d.comb += here.eq(count | ((self.acc >= table[self.channel][count >> (level + 1)]) << level))
            count = here
        mask = (1 << self.bits) - 1
        codes = Array(Array(Const(int(v) & mask, self.bits) for v in row + [row[-1]] * ((1 << L) - len(row)))
                      for row in (list(v) for v in sp.values))
        m.d.comb += self.code.eq(codes[self.channel][count])
        return m


def thresholds(spec: RequantSpec, rescale: RequantSpec | None = None) -> ActivationSpec:
    """The threshold table of a requantizer (and of a ``rescale`` requantizing its codes once more,
    folded in): per channel, the breakpoints of ``acc → code`` over every ``acc_bits``-bit
    accumulator (:func:`quant.reference.breakpoints`; a requantization is monotone), so the
    table's codes equal the requantizer's on every accumulator. FINN's MultiThreshold in place of
    a multiplier: a ``b``-bit output needs at most ``2^b - 1`` thresholds per channel."""
    lo, hi = -(1 << (spec.acc_bits - 1)), (1 << (spec.acc_bits - 1)) - 1
    biases = spec.biases or (0,) * spec.channels
    breaks, values = [], []
    for c in range(spec.channels):
        def code(acc, c=c):
            out = requantize(np.asarray(acc, dtype=object) + biases[c], spec.multipliers[c], spec.shifts[c], spec.fmt,
                             spec.zero_point, spec.relu)
            if rescale is not None:
                out = requantize(element_ints(out, spec.fmt) + (rescale.biases or (0,))[0], rescale.multipliers[0],
                                 rescale.shifts[0], rescale.fmt, rescale.zero_point, rescale.relu)
            return np.asarray(out, dtype=np.int64)
        b, v = breakpoints(code, lo, hi)
        breaks.append(tuple(b))
        values.append(tuple(v))
    return ActivationSpec(spec.acc_bits, tuple(breaks), tuple(values), rescale.fmt if rescale else spec.fmt)
