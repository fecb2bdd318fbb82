"""Integer requantization in RTL: a layer's accumulator (plus bias) to the next layer's integer
format, with per-channel fixed-point scales — the step between two engines of a whole-network
accelerator.

``code = clamp(rne((acc + bias_c) · M_c / 2^s_c) + zero_point)`` for channel ``c``: the product
is exact, the rounding is to nearest with ties to even on the bits shifted out, the clamp is to the
output format's range (with a fused ReLU from the code of 0). Scales become (``M_c``, ``s_c``)
by :func:`quant.reference.fixed_point_multiplier` (``mult_bits``-bit multipliers, relative error
at most ``2^-mult_bits``). The numpy semantics are :func:`quant.reference.requantize`.
Combinational; the caller registers the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.formats import IntFormat, parse_format
from quant.reference import fixed_point_multiplier

from .arith import ConfigError

__all__ = ["RequantSpec", "IntRequantizer"]


@dataclass(frozen=True)
class RequantSpec:
    """What one requantizer does.

    Attributes
    ----------
    acc_bits : width of the signed accumulator input, bits.
    multipliers, shifts : per output channel, ``M_c`` (unsigned) and ``s_c`` (>= 0); one entry:
        a per-tensor scale.
    fmt : the output integer format (e.g. ``"int8"``, ``"uint4"``).
    zero_point : the output code of real 0.
    relu : a fused ReLU (nothing below the code of 0).
    biases : per channel, an integer added to the accumulator first (``None``: none).
    """

    acc_bits: int
    multipliers: tuple[int, ...]
    shifts: tuple[int, ...]
    fmt: str
    zero_point: int = 0
    relu: bool = False
    biases: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        fmt = parse_format(self.fmt)
        if not isinstance(fmt, IntFormat):
            raise ConfigError(f"requantization to {self.fmt}: only integer formats (minifloats: not yet)")
        if not 2 <= self.acc_bits <= 64:
            raise ConfigError(f"acc_bits must be in 2..64, got {self.acc_bits}")
        n = len(self.multipliers)
        if n < 1 or len(self.shifts) != n or (self.biases is not None and len(self.biases) != n):
            raise ConfigError("multipliers, shifts (and biases) need one entry per channel, at least one")
        if min(self.multipliers) < 0 or min(self.shifts) < 0:
            raise ConfigError("multipliers and shifts must be >= 0")
        if not fmt.min_int <= self.zero_point <= fmt.max_int:
            raise ConfigError(f"zero point {self.zero_point} outside {self.fmt}'s range")

    @classmethod
    def from_scales(cls, acc_bits: int, scales, fmt: str, mult_bits: int = 16, **kw) -> "RequantSpec":
        """The spec of real per-channel ``scales`` (input units per output unit) with
        ``mult_bits``-bit fixed-point multipliers."""
        pairs = [fixed_point_multiplier(float(s), mult_bits) for s in scales]
        return cls(acc_bits, tuple(m for m, _ in pairs), tuple(s for _, s in pairs), fmt, **kw)

    @property
    def channels(self) -> int:
        return len(self.multipliers)


class IntRequantizer(wiring.Component):
    """:class:`RequantSpec` in hardware (module docstring).

    Ports
    -----
    acc : In(signed(acc_bits))
        The accumulator.
    channel : In(range(channels))
        Its output channel (selects ``M_c``, ``s_c``, ``bias_c``).
    code : Out(bits)
        The output code, two's complement for signed formats.
    """

    def __init__(self, spec: RequantSpec) -> None:
        self.spec = spec
        self.out_fmt = parse_format(spec.fmt)
        super().__init__({"acc": In(signed(spec.acc_bits)), "channel": In(range(max(2, spec.channels))),
                          "code": Out(self.out_fmt.bits)})

    def elaborate(self, platform):
        sp, fmt = self.spec, self.out_fmt
        m = Module()
        bias_bits = max([abs(b).bit_length() + 1 for b in sp.biases or (0,)])
        summed_bits = max(sp.acc_bits, bias_bits) + 1
        mult_bits = max(x.bit_length() for x in sp.multipliers) + 1  # signed room for an unsigned M
        shift_bits = max(1, max(sp.shifts).bit_length())
        pick = lambda values, shape: Array(Const(v, shape) for v in values)[self.channel]  # noqa: E731
        acc = Signal(signed(summed_bits))
        bias = pick(sp.biases or (0,) * sp.channels, signed(bias_bits))
        m.d.comb += acc.eq(self.acc + bias)
        prod = Signal(signed(summed_bits + mult_bits))
        m.d.comb += prod.eq(acc * pick(sp.multipliers, signed(mult_bits)))
        shift = Signal(shift_bits)
        m.d.comb += shift.eq(pick(sp.shifts, shift_bits))
        q = Signal.like(prod)  # floor(prod / 2^shift): arithmetic right shift
        m.d.comb += q.eq(prod >> shift)
        width = max(len(prod), max(sp.shifts) + 1)  # the bits shifted out, and 2^shift / 2
        rem = Signal(width)  # prod - q·2^shift, in [0, 2^shift)
        m.d.comb += rem.eq((prod - (q << shift))[:width])
        half = Signal(width)
        m.d.comb += half.eq((Const(1, 1) << shift) >> 1)
        up = (shift != 0) & ((rem > half) | ((rem == half) & q[0]))
        lo = max(fmt.min_int, sp.zero_point) if sp.relu else fmt.min_int
        rounded = Signal(signed(len(q) + 2))
        m.d.comb += rounded.eq(q + up + sp.zero_point)
        m.d.comb += self.code.eq(Mux(rounded < lo, lo, Mux(rounded > fmt.max_int, fmt.max_int, rounded)))
        return m
