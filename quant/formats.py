"""Number formats: integers (2–8 bits) and minifloats ExMy (3–8 bits).

The ground floor of paretofab: ``hw`` builds multipliers for these formats, ``quant`` maps them to
Brevitas quantizers, ``costmodel`` prices them. A format is a frozen, hashable dataclass; its
name parses back to an equal object (``parse_format(str(f)) == f``).

It also owns the one default of ``$PARETOFAB_CACHE`` (:func:`cache_root`), because hw (Yosys and
Verilator builds) and quant (trained digits weights) both cache, and the ground floor is the only
module both may import.

Spellings
---------
``int4``, ``int8``        signed two's complement, ``[-2^(b-1), 2^(b-1)-1]``
``int8n``                 narrow (symmetric) signed range ``[-(2^(b-1)-1), 2^(b-1)-1]``
``uint4``, ``uint8n``     unsigned, ``[0, 2^b-1]`` (narrow: ``[0, 2^b-2]``, as Brevitas)
``e4m3``, ``e2m1``        minifloat: 1 sign, E exponent, M mantissa bits, bias ``2^(E-1)-1``,
                          subnormals, no inf/NaN codes (every code finite), saturating
``e4m3ocp``               OCP FP8 specials: only S.11..1.11..1 is NaN (e4m3ocp: max 448);
                          for E5M2 the OCP spec is IEEE-like, so ``e5m2ocp`` equals ``e5m2ieee``
``e5m2ieee``              IEEE specials: exponent all-ones is inf (M=0) / NaN (M≠0)
suffixes                  ``b<bias>`` non-default bias (``e4m3b11``), ``nosub`` flush subnormals,
                          ``nosat`` overflow to inf/NaN instead of saturating (needs specials)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union

__all__ = [
    "FormatError",
    "IntFormat",
    "MinifloatFormat",
    "Format",
    "parse_format",
    "all_formats",
    "VALID_SPELLINGS",
]

VALID_SPELLINGS = (
    "int2..int8, uint2..uint8 (add 'n' for narrow range: int8n); "
    "eXmY minifloats with 1 sign bit, X>=1 exponent bits, Y>=0 mantissa bits, 3..8 bits in all "
    "(e2m1, e2m3, e3m2, e4m3, e5m2, e1m6 …), optionally with b<bias>, ocp|ieee, nosub, nosat "
    "(e4m3ocp, e5m2ieee, e4m3b11)"
)

Specials = Literal["none", "ocp", "ieee"]


class FormatError(ValueError):
    """An unsupported or malformed number format; the message lists valid spellings."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}. Valid formats: {VALID_SPELLINGS}")
        self.problem = problem


@dataclass(frozen=True)
class IntFormat:
    """Integer format of ``bits`` bits (2–8), two's complement when ``signed``.

    ``narrow`` drops the most negative code (signed, symmetric range) or the largest code
    (unsigned), as Brevitas' ``narrow_range`` does.
    """

    bits: int
    signed: bool = True
    narrow: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or isinstance(self.bits, bool):
            raise FormatError(f"integer bit width must be an int, got {self.bits!r}")
        if not 2 <= self.bits <= 8:
            raise FormatError(f"integer formats have 2..8 bits, got {self.bits}")

    @property
    def min_int(self) -> int:
        """Smallest representable integer."""
        if not self.signed:
            return 0
        return -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def max_int(self) -> int:
        """Largest representable integer."""
        if self.signed:
            return 2 ** (self.bits - 1) - 1
        return 2**self.bits - 1 - (1 if self.narrow else 0)

    @property
    def max_value(self) -> float:
        """Largest representable value (units of the scale); ``-min_int`` may be one larger."""
        return float(self.max_int)

    @property
    def min_normal(self) -> float:
        """Smallest non-zero magnitude (an integer format has no subnormals)."""
        return 1.0

    @property
    def min_subnormal(self) -> float:
        return 1.0

    @property
    def num_values(self) -> int:
        """Number of distinct finite values."""
        return self.max_int - self.min_int + 1

    @property
    def kind(self) -> str:
        return "int"

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}{'n' if self.narrow else ''}"


@dataclass(frozen=True)
class MinifloatFormat:
    """Minifloat with 1 sign bit, ``exponent_bits`` ≥ 1, ``mantissa_bits`` ≥ 0, 3–8 bits in all.

    value = (-1)^s · 2^(e - bias) · 1.m for exponent field e ≥ 1, and (-1)^s · 2^(1 - bias) · 0.m
    for e = 0 (subnormals; flushed to zero when ``subnormals`` is False).

    Parameters
    ----------
    bias : default ``2^(exponent_bits-1) - 1``.
    specials : "none" (every code finite), "ocp" (OCP FP8: S.1..1.1..1 is NaN; IEEE-like for
        E5M2), "ieee" (exponent all-ones holds inf and NaN).
    saturate : out-of-range values clip to ±max; otherwise they become inf (ieee) or NaN (ocp).
    """

    exponent_bits: int
    mantissa_bits: int
    bias: int | None = None
    subnormals: bool = True
    specials: Specials = "none"
    saturate: bool = True

    def __post_init__(self) -> None:
        e, m = self.exponent_bits, self.mantissa_bits
        for name, v in (("exponent_bits", e), ("mantissa_bits", m)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise FormatError(f"{name} must be an int, got {v!r}")
        if e < 1:
            raise FormatError(f"a minifloat needs at least 1 exponent bit, got e{e}m{m}")
        if m < 0:
            raise FormatError(f"mantissa bits must be >= 0, got e{e}m{m}")
        if not 3 <= 1 + e + m <= 8:
            raise FormatError(f"minifloats have 3..8 bits in all (1 sign + E + M), e{e}m{m} has {1 + e + m}")
        if self.specials not in ("none", "ocp", "ieee"):
            raise FormatError(f"specials must be 'none', 'ocp' or 'ieee', got {self.specials!r}")
        if self.bias is None:
            object.__setattr__(self, "bias", 2 ** (e - 1) - 1)
        elif not isinstance(self.bias, int) or isinstance(self.bias, bool):
            raise FormatError(f"bias must be an int, got {self.bias!r}")
        if self.max_normal_field < 1:
            raise FormatError(f"{self.name_without_checks()} has no normal value (its specials take every normal code)")
        # keep every value exactly representable as a normal float32 / subnormal float32
        if self.emin - m < -149 or self.emax > 127:
            raise FormatError(f"bias {self.bias} puts {self.name_without_checks()} outside float32 range")
        if not self.saturate and self.specials == "none":
            raise FormatError(f"{self.name_without_checks()}: 'nosat' needs a format with inf/NaN codes (ocp or ieee)")

    # ---- derived layout -------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def ieee_like(self) -> bool:
        """True when the all-ones exponent holds only inf/NaN (ieee, or ocp E5M2)."""
        return self.specials == "ieee" or (
            self.specials == "ocp" and (self.exponent_bits, self.mantissa_bits) == (5, 2)
        )

    @property
    def has_nan(self) -> bool:
        return self.specials != "none"

    @property
    def has_inf(self) -> bool:
        return self.ieee_like

    @property
    def max_normal_field(self) -> int:
        """Largest exponent field that holds finite normal values."""
        top = 2**self.exponent_bits - 1
        if self.ieee_like:
            return top - 1
        if self.specials == "ocp" and self.mantissa_bits == 0:
            return top - 1  # the only code of the top binade is the NaN code
        return top

    @property
    def max_mantissa_at_top(self) -> int:
        """Largest mantissa field in the top finite binade."""
        full = 2**self.mantissa_bits - 1
        if self.specials == "ocp" and not self.ieee_like and self.max_normal_field == 2**self.exponent_bits - 1:
            return full - 1
        return full

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal binade (also the subnormals' scale)."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite binade."""
        return self.max_normal_field - self.bias

    @property
    def max_value(self) -> float:
        m = self.mantissa_bits
        return float(2.0**self.emax * (1 + self.max_mantissa_at_top / 2**m))

    @property
    def min_normal(self) -> float:
        return float(2.0**self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest non-zero magnitude (min normal when subnormals are off)."""
        if not self.subnormals or self.mantissa_bits == 0:
            return self.min_normal
        return float(2.0 ** (self.emin - self.mantissa_bits))

    @property
    def num_values(self) -> int:
        """Number of distinct finite values (±0 counted once)."""
        m = self.mantissa_bits
        normals = (self.max_normal_field - 1) * 2**m + self.max_mantissa_at_top + 1
        subs = (2**m - 1) if self.subnormals else 0
        return 2 * (normals + subs) + 1

    @property
    def kind(self) -> str:
        return "minifloat"

    @property
    def default_bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    def name_without_checks(self) -> str:
        s = f"e{self.exponent_bits}m{self.mantissa_bits}"
        if self.bias is not None and self.bias != self.default_bias:
            s += f"b{self.bias}"
        if self.specials != "none":
            s += self.specials
        if not self.subnormals:
            s += "nosub"
        if not self.saturate:
            s += "nosat"
        return s

    def __str__(self) -> str:
        return self.name_without_checks()


Format = Union[IntFormat, MinifloatFormat]

_INT_RE = re.compile(r"^(u?)int(\d+)(n?)$")
_MF_RE = re.compile(r"^e(\d+)m(\d+)(?:b(-?\d+))?(ocp|ieee)?(nosub)?(nosat)?$")


def parse_format(name: str | Format) -> Format:
    """Parse a format name (``"int4"``, ``"uint8"``, ``"e4m3"``, ``"e4m3ocp"``, …).

    Format objects pass through unchanged. Raises :class:`FormatError` listing valid spellings.
    """
    if isinstance(name, (IntFormat, MinifloatFormat)):
        return name
    if not isinstance(name, str):
        raise FormatError(f"a format is a name or a format object, got {type(name).__name__}")
    s = name.strip().lower()
    if mi := _INT_RE.match(s):
        return IntFormat(int(mi.group(2)), signed=not mi.group(1), narrow=bool(mi.group(3)))
    if mf := _MF_RE.match(s):
        return MinifloatFormat(
            int(mf.group(1)),
            int(mf.group(2)),
            bias=int(mf.group(3)) if mf.group(3) is not None else None,
            subnormals=not mf.group(5),
            specials=mf.group(4) or "none",
            saturate=not mf.group(6),
        )
    raise FormatError(f"unknown format {name!r}")


def all_formats() -> list[Format]:
    """Every supported format with default options: ints 2–8 (signed, unsigned, narrow) and
    every ExMy minifloat of 3–8 bits, plus the OCP/IEEE FP8 variants."""
    out: list[Format] = []
    for bits in range(2, 9):
        out += [IntFormat(bits), IntFormat(bits, narrow=True), IntFormat(bits, signed=False)]
    for total in range(3, 9):
        for e in range(1, total):
            out.append(MinifloatFormat(e, total - 1 - e))
    out += [parse_format(n) for n in ("e4m3ocp", "e5m2ieee", "e4m3ieee", "e3m4ieee")]
    return out
