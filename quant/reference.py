"""Bit-exact numpy golden model of the number formats.

Every function is vectorized (no Python loop per element) and takes/returns numpy arrays.

Rounding and special values
---------------------------
- Round to nearest, ties to even: the even integer, or the even significand at the precision of
  the lower neighbour's binade (= the even code whenever M ≥ 1), as IEEE 754 and Brevitas do.
  For M = 0 formats a tie between two powers of two therefore rounds to the larger one
  (1.5·2^e -> 2^(e+1)), which is what Brevitas' ``round(x / 2^(e-M))`` gives.
- Saturating formats clip to ±max before rounding (inf included). Non-saturating ones (``nosat``)
  send values beyond the rounding range to ±inf (ieee) or NaN (ocp), as ml_dtypes does.
- Without subnormals, magnitudes below the smallest normal round to 0 or to it, ties to 0.
- NaN policy: ``quantize`` propagates NaN (its output is float). ``encode`` maps NaN to the
  format's NaN code (exponent and mantissa all ones, sign kept) and raises ``ValueError`` for a
  format with no NaN code (ints, specials="none"): clean the data first (``np.nan_to_num``).
- Negative values that round to zero keep their sign as -0.0 (code 1000…0), as in IEEE.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .formats import Format, IntFormat, MinifloatFormat, parse_format

__all__ = ["values", "quantize", "encode", "decode", "all_codes", "fixed_point", "code_dtype",
           "fixed_point_multiplier", "requantize", "element_ints", "normalize", "NORM_VAR_BITS", "NORM_RSQRT_BITS",
           "NORM_FRAC_BITS", "breakpoints", "apply_breakpoints"]


def code_dtype() -> np.dtype:
    """Unsigned dtype that holds a code of any supported format (all are ≤ 8 bits)."""
    return np.dtype(np.uint8)


def all_codes(fmt: Format | str) -> np.ndarray:
    """Every bit pattern of the format, ``0 .. 2^bits - 1``."""
    fmt = parse_format(fmt)
    return np.arange(2**fmt.bits, dtype=code_dtype())


@lru_cache(maxsize=None)
def _decode_table(fmt: Format) -> np.ndarray:
    """float64 value of every code (inf/NaN where the format has them)."""
    codes = np.arange(2**fmt.bits, dtype=np.int64)
    if isinstance(fmt, IntFormat):
        v = codes.astype(np.float64)
        if fmt.signed:
            v = np.where(codes >= 2 ** (fmt.bits - 1), v - 2**fmt.bits, v)
        # codes outside a narrow range decode to NaN (never produced by encode)
        v = np.where((v < fmt.min_int) | (v > fmt.max_int), np.nan, v)
        v.setflags(write=False)
        return v
    e, m = fmt.exponent_bits, fmt.mantissa_bits
    sign = (codes >> (e + m)) & 1
    ef = (codes >> m) & (2**e - 1)
    mf = codes & (2**m - 1)
    normal = np.ldexp(1.0 + mf / 2.0**m, (ef - fmt.bias).astype(np.int32))
    sub = np.ldexp(mf / 2.0**m, fmt.emin) if fmt.subnormals else np.zeros(len(codes))
    mag = np.where(ef == 0, sub, normal)
    top = 2**e - 1
    if fmt.ieee_like:
        mag = np.where(ef == top, np.where(mf == 0, np.inf, np.nan), mag)
    elif fmt.specials == "ocp":
        mag = np.where((ef == top) & (mf == 2**m - 1), np.nan, mag)
    v = np.where(sign == 1, -mag, mag)
    v.setflags(write=False)
    return v


@lru_cache(maxsize=None)
def _positive_grid(fmt: Format) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique finite magnitudes ≥ 0 and the (sign 0) code of each."""
    table = _decode_table(fmt)
    codes = np.arange(len(table))
    keep = np.isfinite(table) & (table >= 0) & ~np.signbit(table)
    vals, first = np.unique(table[keep], return_index=True)
    grid_codes = codes[keep][first].astype(code_dtype())
    vals.setflags(write=False)
    grid_codes.setflags(write=False)
    return vals, grid_codes


def values(fmt: Format | str) -> np.ndarray:
    """Sorted grid of every distinct finite value (float64, ±0 once, as +0)."""
    fmt = parse_format(fmt)
    if isinstance(fmt, IntFormat):
        return np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.float64)
    pos, _ = _positive_grid(fmt)
    return np.concatenate([-pos[:0:-1], pos])


def decode(codes: np.ndarray, fmt: Format | str) -> np.ndarray:
    """Value (float64) of each code. Raises ``ValueError`` for codes wider than the format."""
    fmt = parse_format(fmt)
    c = np.asarray(codes)
    if c.size and (c.min() < 0 or c.max() >= 2**fmt.bits):
        raise ValueError(f"codes must lie in 0..{2**fmt.bits - 1} for {fmt}")
    return _decode_table(fmt)[c.astype(np.intp)]


def _quantize_magnitude(mag: np.ndarray, fmt: MinifloatFormat) -> np.ndarray:
    """Round non-negative magnitudes (already clipped to ≤ max) onto the minifloat grid."""
    m = fmt.mantissa_bits
    _, e2 = np.frexp(mag)  # mag = f · 2^e2, f in [0.5, 1)
    e_eff = np.maximum(e2 - 1, fmt.emin)  # binade exponent; subnormals share emin's step
    shift = (m - e_eff).astype(np.int32)
    q = np.ldexp(np.rint(np.ldexp(mag, shift)), -shift)  # np.rint: ties to even
    if not fmt.subnormals:
        mn = fmt.min_normal
        q = np.where(mag < mn, np.where(mag > mn / 2, mn, 0.0).astype(mag.dtype), q)
    return q


def quantize(x: np.ndarray, fmt: Format | str, scale: float | np.ndarray = 1.0) -> np.ndarray:
    """Nearest value of ``values(fmt) · scale`` to each ``x`` (round half to even, saturating).

    ``scale`` broadcasts against ``x`` (per-tensor scalar or per-channel array). The result has
    the floating dtype of ``x`` (float32 stays float32; exact, since every format value fits).
    """
    fmt = parse_format(fmt)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    unit = np.isscalar(scale) and scale == 1.0
    y = x if unit else x / scale
    if isinstance(fmt, IntFormat):
        q = np.clip(np.rint(y), fmt.min_int, fmt.max_int)
    else:
        mag = np.abs(y)
        mx = y.dtype.type(fmt.max_value)
        if fmt.saturate:
            q = _quantize_magnitude(np.minimum(mag, mx), fmt)
        else:
            # IEEE overflow: round with an unbounded top binade (2·max stands in for anything
            # larger), then whatever lands above max becomes inf (ieee) or NaN (ocp).
            q = _quantize_magnitude(np.minimum(mag, 2 * mx), fmt)
            q = np.where(q > mx, np.inf if fmt.has_inf else np.nan, q).astype(y.dtype, copy=False)
        q = np.copysign(q, y)
    return q if unit else q * scale


def encode(x: np.ndarray, fmt: Format | str) -> np.ndarray:
    """Code (uint8, sign|exponent|mantissa or two's complement) of ``quantize(x, fmt)``."""
    fmt = parse_format(fmt)
    x = np.asarray(x)
    q = quantize(x, fmt)
    if isinstance(fmt, IntFormat):
        if np.isnan(q).any():
            raise ValueError(f"{int(np.isnan(q).sum())} NaN inputs: {fmt} has no NaN code; clean the data first (np.nan_to_num)")
        return (q.astype(np.int64) & (2**fmt.bits - 1)).astype(code_dtype())
    nan = np.isnan(q)
    has_nan = bool(nan.any())
    if has_nan and not fmt.has_nan:
        raise ValueError(f"{int(nan.sum())} NaN inputs: {fmt} has no NaN code; clean the data first (np.nan_to_num)")
    shift, table = _code_table(fmt)
    codes = table[q.astype(np.float32, copy=False).view(np.uint32) >> shift]
    if has_nan:
        e, m = fmt.exponent_bits, fmt.mantissa_bits
        nan_code = (((2**e - 1) << m) | (2**m - 1)) | (np.signbit(q) << (e + m))
        codes = np.where(nan, nan_code, codes).astype(code_dtype())
    return codes


@lru_cache(maxsize=None)
def _code_table(fmt: MinifloatFormat) -> tuple[int, np.ndarray]:
    """Code of every grid value keyed by the top ``1 + 8 + M`` bits of its float32 pattern.

    Every value of the format (subnormals included) has at most M+1 significant bits and fits
    float32, so those bits identify it uniquely: encoding is a shift and a table lookup.
    """
    shift = 23 - fmt.mantissa_bits
    table = np.zeros(2 ** (32 - shift), dtype=code_dtype())
    codes = all_codes(fmt)
    v = _decode_table(fmt)
    finite = ~np.isnan(v)  # inf keys land on the float32 inf pattern
    # write codes in descending order so that, where several codes share a value (the flushed
    # subnormal codes of 'nosub' formats), the smallest code wins
    for c, val in zip(codes[finite][::-1], v[finite][::-1].astype(np.float32)):
        table[int(np.array(val).view(np.uint32)) >> shift] = c
    table.setflags(write=False)
    return shift, table


def fixed_point(codes: np.ndarray, fmt: Format | str) -> tuple[np.ndarray, int]:
    """Exact integers ``n`` and an exponent ``k`` such that ``decode(codes) == n · 2^k``.

    ``k`` is the exponent of the format's smallest step (min subnormal). ``n`` is int64 when it
    fits in 62 bits, else a Python-int object array (wide formats such as e6m1, e7m0).
    Raises ``ValueError`` on inf/NaN codes.
    """
    fmt = parse_format(fmt)
    v = decode(codes, fmt)
    if not np.isfinite(v).all():
        raise ValueError(f"fixed_point: codes include inf/NaN of {fmt}")
    if isinstance(fmt, IntFormat):
        return v.astype(np.int64), 0
    k = fmt.emin - fmt.mantissa_bits
    span = fmt.emax + 1 - k
    if span <= 62:
        return np.ldexp(v, -k).astype(np.int64), k
    # wide: exact Python ints per code (at most 256), then gather
    table = np.array([_exact_int(t, k) for t in _decode_table(fmt)], dtype=object)
    return table[np.asarray(codes).astype(np.intp)], k


def _exact_int(t: float, k: int) -> int:
    """``t / 2^k`` as an exact Python int (``t`` a finite multiple of ``2^k``; NaN/inf -> 0)."""
    if not np.isfinite(t):
        return 0
    f, e = np.frexp(t)  # t = f·2^e, f has ≤ 53 significant bits
    n = int(np.ldexp(f, 53))
    sh = int(e) - 53 - int(k)
    return n << sh if sh >= 0 else n >> -sh


def fixed_point_multiplier(scale: float, bits: int) -> tuple[int, int]:
    """A positive real ``scale`` as ``multiplier · 2^-shift`` with an unsigned ``bits``-bit
    multiplier whose top bit is set (the most precision ``bits`` allow; relative error at most
    ``2^-bits``) and ``shift >= 0``; ``ValueError`` for a scale that is not positive and finite,
    or one too large (> ``2^bits - 1``) for a non-negative shift."""
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"requantization scale must be positive and finite, got {scale}")
    if not 2 <= int(bits) <= 32:
        raise ValueError(f"multiplier bits must be in 2..32, got {bits}")
    _, e = np.frexp(scale)  # scale = f·2^e, 0.5 <= f < 1
    shift = int(bits) - int(e)
    m = int(round(np.ldexp(scale, shift)))
    if m == 2 ** int(bits):  # rounded up to the next power of two
        m, shift = m >> 1, shift - 1
    if shift < 0:
        raise ValueError(f"scale {scale} needs a left shift with a {bits}-bit multiplier; use more bits")
    return m, shift


def element_ints(elements: np.ndarray, fmt: Format | str) -> np.ndarray:
    """The exact integers ``n`` (value ``n · 2^k``, ``k`` as in :func:`fixed_point`) of the elements
    a dataflow carries: an integer format's elements are its integer values (``k = 0``), a
    minifloat's are its codes (bit patterns, sign bit on top)."""
    fmt = parse_format(fmt)
    if isinstance(fmt, IntFormat):
        return np.asarray(elements, dtype=np.int64)
    return fixed_point(np.asarray(elements), fmt)[0]


def requantize(acc: np.ndarray, multiplier: int | np.ndarray, shift: int | np.ndarray, fmt: Format | str,
               zero_point: int = 0, relu: bool = False) -> np.ndarray:
    """Exact requantization of integers ``acc`` by the real factor ``multiplier / 2^shift``.

    Integer ``fmt``: ``clamp(rne(acc · multiplier / 2^shift + zero_point))`` (the zero point added
    before rounding, as QONNX's ``Quant`` and Brevitas do); ``rne`` rounds to nearest, ties to
    even; the clamp is to the format's integer range, and with ``relu`` from
    ``max(min_int, zero_point)`` (the code of 0: a fused ReLU). Returns the output integers (int64;
    two's complement codes are these ``& (2^bits - 1)``).

    Minifloat ``fmt`` (saturating, no zero point): the value ``acc · multiplier / 2^shift`` rounded
    exactly as :func:`quantize` rounds (nearest, ties to even at the binade's precision,
    subnormals or flush with ties to 0, saturation to ±max), negative results that round to zero
    as -0 (with ``relu``: every negative value gives +0). Returns the codes (int64 bit patterns).

    ``acc``, ``multiplier`` and ``shift`` broadcast (per-channel scales: arrays along the channel
    axis); the arithmetic is on Python integers, so any accumulator width is exact.
    """
    fmt = parse_format(fmt)
    if isinstance(fmt, MinifloatFormat):
        if zero_point:
            raise ValueError(f"requantize: {fmt} has no zero point")
        if not fmt.saturate:
            raise ValueError(f"requantize: only saturating minifloats (drop 'nosat' from {fmt})")
        acc, m, sh = np.broadcast_arrays(*(np.asarray(v, dtype=object) for v in (acc, multiplier, shift)))
        out = []
        for a, mm, s in zip(acc.ravel(), m.ravel(), sh.ravel()):
            x = int(a) * int(mm)
            out.append(0.0 if relu and x < 0 else math.copysign(_round_to_minifloat(abs(x), int(s), fmt), x))
        return encode(np.array(out, dtype=np.float64), fmt).astype(np.int64).reshape(acc.shape)
    acc, m, sh = (np.asarray(v, dtype=object) for v in (acc, multiplier, shift))
    zp = int(zero_point)
    q = np.vectorize(lambda xi, si: _shift_rne(int(xi), int(si), zp), otypes=[object])(acc * m, sh) + zp
    lo = max(fmt.min_int, zp) if relu else fmt.min_int
    return np.clip(q, lo, fmt.max_int).astype(np.int64)


def _shift_rne(x: int, shift: int, offset: int = 0) -> int:
    """``x / 2^shift`` (Python ints: exact) rounded to nearest, ties to the quotient whose sum with
    ``offset`` is even (``offset``: an integer added after rounding, as a zero point is); a
    negative ``shift`` shifts left, exactly."""
    if shift <= 0:
        return x << -shift
    q, rem, half = x >> shift, x & ((1 << shift) - 1), 1 << (shift - 1)
    return q + (rem > half or (rem == half and (q + offset) & 1 == 1))



#: a LayerNorm normalizer's widths (bits): the normalized variance ``m`` lies in [2^(2P), 2^(2P+2))
#: for ``P`` = NORM_VAR_BITS; its reciprocal square root has NORM_RSQRT_BITS bits; the normalized
#: outputs have NORM_FRAC_BITS fractional bits
NORM_VAR_BITS, NORM_RSQRT_BITS, NORM_FRAC_BITS = 15, 16, 16


def normalize(row: list[int], extra: int, frac_bits: int = NORM_FRAC_BITS) -> list[int]:
    """A LayerNorm normalizer's exact integer semantics: ``(x - mean) / sqrt(var + eps)`` of one
    row of integers ``k`` (``x = k · u``) with ``frac_bits`` fractional bits.

    With ``D`` = len(row), ``S1 = Σk``, ``S2 = Σk²``, ``t_i = D·k_i - S1`` and
    ``V = D·S2 - S1² + extra`` (``extra`` = ``D²·eps / u²`` rounded: the epsilon on the row's
    integer grid), the exact normalized value is ``t_i / sqrt(V)``. The normalizer computes one
    reciprocal square root per row: ``V = m · 4^e`` with ``m`` in [2^(2P), 2^(2P+2)) (truncated
    when ``e > 0``), ``r = isqrt(2^(2F) // m)`` with ``F = P + R`` (``R`` bits), and returns
    ``rne(t_i · r / 2^(F + e - frac_bits))`` (round half to even; exact when the shift is ≤ 0).
    The relative error of ``r · 2^-(F+e)`` against ``1/sqrt(V)`` is below ``2^-(R-1)``;
    ``|t_i / sqrt(V)| <= sqrt(D - 1)`` bounds the outputs. A row with ``V = 0`` gives zeros.
    """
    d, s1 = len(row), sum(int(k) for k in row)
    v = d * sum(int(k) * int(k) for k in row) - s1 * s1 + int(extra)
    if v <= 0:
        return [0] * d
    p, f = NORM_VAR_BITS, NORM_VAR_BITS + NORM_RSQRT_BITS
    e = (v.bit_length() - 1 - 2 * p) // 2
    m = v >> (2 * e) if e >= 0 else v << (-2 * e)
    r = math.isqrt((1 << (2 * f)) // m)
    return [_shift_rne((d * int(k) - s1) * r, f + e - frac_bits) for k in row]


def breakpoints(f, lo: int, hi: int, turns: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
    """A step function of the integers as a table: ``f`` (vectorized: an int64 array of integers
    → their codes) constant below ``lo`` and above ``hi`` and monotone between consecutive points
    of ``turns`` (its turning points; none for a monotone ``f``) gives ``breaks`` (ascending) and
    ``values`` (one more) with ``f(x) = values[#{b in breaks: b <= x}]`` for every integer ``x`` —
    what a threshold unit (:class:`hw.activation.TableActivation`) stores. Every change is found by
    bisection inside a monotone piece, all at once: ``log2(hi - lo)`` calls of ``f``."""
    cuts = np.array(sorted({int(lo), int(hi), *(int(t) for t in turns if lo < t < hi)}), dtype=np.int64)
    ends = np.asarray(f(cuts))
    a, b, fa, fb = cuts[:-1], cuts[1:], ends[:-1], ends[1:]
    keep = fa != fb
    a, b, fa, fb = a[keep], b[keep], fa[keep], fb[keep]
    found = []
    while len(a):
        done = b == a + 1
        found.append(b[done])
        a, b, fa, fb = a[~done], b[~done], fa[~done], fb[~done]
        mid = (a + b) // 2
        fm = np.asarray(f(mid)) if len(mid) else fa
        left, right = fm != fa, fm != fb  # a change in [a, mid], in [mid, b]
        a, b, fa, fb = (np.concatenate(v) for v in ((a[left], mid[right]), (mid[left], b[right]),
                                                     (fa[left], fm[right]), (fm[left], fb[right])))
    breaks = np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)
    values = [int(ends[0])] + [int(v) for v in np.asarray(f(breaks))] if len(breaks) else [int(ends[0])]
    return [int(x) for x in breaks], values


def apply_breakpoints(x: np.ndarray, breaks: list[int], values: list[int]) -> np.ndarray:
    """``values[#{b in breaks: b <= x}]`` per element of the integers ``x`` (int64)."""
    idx = np.searchsorted(np.asarray(breaks, dtype=object), np.asarray(x, dtype=object), side="right")
    return np.asarray(values, dtype=np.int64)[idx]


def _round_to_minifloat(mag: int, shift: int, fmt: MinifloatFormat) -> float:
    """``mag / 2^shift`` (``mag`` >= 0, Python ints: exact) rounded to ``fmt``'s magnitudes as
    :func:`quantize` rounds, saturated to ``fmt.max_value``; the result is exact in float64."""
    if mag == 0:
        return 0.0
    mb = fmt.mantissa_bits
    e = max(mag.bit_length() - 1 - shift, fmt.emin)  # the binade; subnormals share emin's step
    n = _shift_rne(mag, e - mb + shift)  # quanta of the binade, 2^(e - mb + shift) units of mag each
    if not fmt.subnormals and n < (1 << mb):  # below the smallest normal: it or 0, ties to 0
        t = fmt.emin + shift  # the smallest normal is 2^t units of mag
        n = 1 << mb if t < 0 or 2 * mag > 1 << t else 0
    value = float(np.ldexp(float(n), e - mb))
    return min(value, fmt.max_value)
