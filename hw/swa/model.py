"""Sliding-window attention kernel (SWAT-style: row-wise, fused, input-stationary) and its dense
causal baseline, with the uniform engine API (see ``hw/dot.py``).

Window convention
-----------------
Causal (default): query row ``i`` (0-based, within its sequence) attends to keys ``j`` in
``[max(0, i - window + 1), i]`` -- ``window`` keys including itself, fewer for ``i < window - 1``.
Symmetric (``causal=False``, odd ``window = 2h + 1``): keys ``[i - h, i + h]`` clipped to the
sequence -- ``window`` keys centred on the query. Row ``i`` then waits for token ``i + h``; at the
end of a sequence the last ``h`` rows are finished without new input.

Arithmetic (all integers; :func:`reference` reproduces it bit for bit)
--------------------------------------------------------------------
Codes decode exactly to ``ints · 2^k`` (``quant.reference.fixed_point``), ``k_qk`` / ``k_v`` the
formats' unit exponents. For row ``i`` and its keys ``j``:

1. score ``s_j = Σ_d q_i[d]·k_j[d]`` exact (units ``2^(2·k_qk)``, :attr:`SWAConfig.score_bits`);
   running max ``m = max_j s_j``.
2. ``t_j = m - s_j >= 0``; ``u_j = t_j · c`` with the constant ``c = round(g · 2^F)``,
   ``g = log2(e) · score_scale · 2^(2·k_qk)`` (``score_scale`` defaults to ``1/sqrt(head_dim)``),
   ``F = scale_frac`` chosen so ``c`` has ``scale_bits`` significant bits. Then
   ``exp(score_scale·(s_j - m)) ≈ 2^(-u_j / 2^F)``.
3. base-2 split: ``e_j = u_j >> F`` (integer shift), fraction index ``x_j`` = the top
   ``lut_bits`` bits of ``u_j mod 2^F``; ``p_j = LUT[x_j] >> e_j`` with
   ``LUT[x] = round(2^(-x / 2^lut_bits) · 2^exp_bits)`` (so ``p_j`` in ``[0, 2^exp_bits]``,
   units ``2^-exp_bits``; the max score gives exactly ``2^exp_bits``). ``t_j`` is clamped to
   :attr:`SWAConfig.t_sat`, beyond which ``p_j = 0`` anyway.
4. ``S = Σ_j p_j``, ``a[d] = Σ_j p_j · v_j[d]`` exact.
5. one reciprocal per row, ``r = floor(2^Z / S)`` with ``Z = exp_bits + ceil(log2 window) +
   recip_bits`` (relative error ``< 2^-recip_bits``), by a sequential restoring divider;
   ``o[d] = floor(a[d] · r / 2^(Z - out_frac_bits))``: outputs in units of
   ``2^(k_v - out_frac_bits)`` (:func:`output_exponent`).

Numerical error
---------------
With the default widths (``exp_bits=18, lut_bits=8, recip_bits=16, out_frac_bits=8``) the
relative error ``‖o − o_float64‖_F / ‖o_float64‖_F`` against float64 softmax attention on the
same decoded codes stays below :data:`ERROR_BOUND` = 5e-3 (tests/hw/test_swa.py) on

- random-like scores, for every format (int8, int4, e4m3, e2m3 …; measured worst ~1.5e-3), and
- adversarial rows: one dominant key per window and the rest 6-10 nats lower, with values of
  the dominant keys as large as the others' (random V).

Terms: the fraction table's truncated index (relative exponent error < ``ln 2 · 2^-lut_bits``),
each numerator's floor to the ``2^-exp_bits`` grid (absolute error < ``2^-exp_bits`` of the
row's largest numerator; keys more than :attr:`SWAConfig.drop_nats` = ``(exp_bits + 1)·ln 2``
nats below the best get weight 0), the reciprocal (< ``2^-recip_bits``) and the output floor
(``2^-out_frac_bits`` V units). The bound is relative to the output: it does not cover rows whose
output is much smaller than the V values that make it up (e.g. a dominant key with V = 0 and
many keys near ``drop_nats`` below it, where the floored tail is the whole result); there the
absolute error per output stays below ``window · 2^-exp_bits · max|v|`` plus the terms above.
Raising ``exp_bits`` by one halves the floor term (more bits in the SV unit, the sums and the
divider; see ``hw.rtl.synthesize``).

Stream framing
--------------
Input beat (:meth:`SWAConfig.in_layout`): ``q``, ``k``, ``v`` -- ``lanes`` codes each (one chunk
of one token), ``last`` -- 1 on the final beat of a sequence (the window empties after it). A
token takes ``chunks = head_dim / lanes`` beats (``last`` is read on a token's final beat).
Output beat: ``lanes`` signed outputs; a row takes ``chunks`` beats; one row per token, in order.
Sequences may follow each other in one stream; after a ``last`` the kernel drains its pipeline
before taking the next sequence (:func:`cycles` is the closed form for one sequence).

Hardware: ``hw.swa.kernel`` (datapath and lockstep schedule); configuration: ``hw.swa.config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quant.reference import decode, fixed_point

from ..arith import WorkloadError, unit_exponent
from ..engine import check_codes, check_int, pack_beats, random_codes, unpack_signed
from .config import ERROR_BOUND, MAX_DENSE_N, MAX_WINDOW, SWAConfig, dense_baseline

__all__ = [
    "OUTPUT_PACKET", "SWAConfig", "Config", "SWAWorkload", "ERROR_BOUND", "MAX_WINDOW", "MAX_DENSE_N", "dense_baseline",
    "random_workload", "pack_inputs", "n_outputs", "unpack_outputs", "reference",
    "attention_float", "relative_error", "output_exponent", "cycles", "slot_cycles",
    "steady_row_cycles",
    "mac_utilization", "total_keys", "key_range",
]

#: the engine's config class (for the hw CLI and registry)
Config = SWAConfig


# ---- workloads --------------------------------------------------------------------------------


@dataclass
class SWAWorkload:
    """One sequence of Q, K, V codes.

    Attributes
    ----------
    q, k : np.ndarray, uint8, shape (n, head_dim)
        Query and key codes (``qk_fmt``).
    v : np.ndarray, uint8, shape (n, head_dim)
        Value codes (``v_fmt``).
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray

    def __post_init__(self) -> None:
        self.q, self.k, self.v = (np.asarray(x) for x in (self.q, self.k, self.v))
        if self.q.ndim != 2 or not (self.q.shape == self.k.shape == self.v.shape):
            raise WorkloadError(f"q, k, v must be 2-D arrays of one shape (n, head_dim), got "
                                f"{self.q.shape}, {self.k.shape}, {self.v.shape}")

    @property
    def n(self) -> int:
        return self.q.shape[0]


def _check_n(config: SWAConfig, n: Any) -> None:
    check_int("sequence length n", n, 1, "", error=WorkloadError)
    if config.dense and n > config.window:
        raise WorkloadError(f"n={n} exceeds the dense baseline's max sequence {config.window}; "
                            f"build it with window >= n")


def random_workload(config: SWAConfig, n: int, seed: int, special_fraction: float = 0.1) -> SWAWorkload:
    """Random Q/K/V codes of one sequence of ``n`` tokens (some edge-case codes included)."""
    _check_n(config, n)
    rng = np.random.default_rng(seed)
    shape = (n, config.head_dim)
    return SWAWorkload(random_codes(config.qk_fmt, shape, rng, special_fraction),
                       random_codes(config.qk_fmt, shape, rng, special_fraction),
                       random_codes(config.v_fmt, shape, rng, special_fraction))


def check_workload(config: SWAConfig, wl: SWAWorkload) -> None:
    """Raise :class:`WorkloadError` unless ``wl`` fits ``config`` (shape, finite codes)."""
    _check_n(config, wl.n)
    if wl.q.shape[1] != config.head_dim:
        raise WorkloadError(f"rows have {wl.q.shape[1]} elements but head_dim={config.head_dim}")
    for name, codes, fmt in (("q", wl.q, config.qk_fmt), ("k", wl.k, config.qk_fmt), ("v", wl.v, config.v_fmt)):
        check_codes(name, codes, fmt)


def pack_inputs(config: SWAConfig, wl: SWAWorkload) -> list[int]:
    """Input beats: token by token, ``chunks`` beats each; ``last`` on the final beat."""
    check_workload(config, wl)
    L = config.lanes
    beats = wl.n * config.chunks
    last = np.zeros((beats, 1), dtype=np.int64)
    last[-1] = 1
    layout = config.in_layout()
    fs = []
    for name, arr, fmt in (("q", wl.q, config.qk_fmt), ("k", wl.k, config.qk_fmt), ("v", wl.v, config.v_fmt)):
        fs.append((arr.reshape(beats, L).astype(np.int64), fmt.bits, layout[name].offset))
    fs.append((last, 1, layout["last"].offset))
    return pack_beats(fs, layout.size)


#: one output beat per input beat (a token's output chunks for its input chunks): a sequence in,
#: a sequence out (the AXI4-Stream tlast)
OUTPUT_PACKET = "beat_for_beat"


def n_outputs(config: SWAConfig, wl: SWAWorkload | int) -> int:
    """Output beats: ``chunks`` per token."""
    n = wl if isinstance(wl, (int, np.integer)) else wl.n
    return int(n) * config.chunks


def unpack_outputs(config: SWAConfig, outputs: list[int]) -> np.ndarray:
    """Outputs as a (n, head_dim) array, units ``2^output_exponent(config)``: int64, or Python
    ints (dtype object) when outputs are wider than 62 bits."""
    return unpack_signed(outputs, config.out_bits, config.lanes).reshape(-1, config.head_dim)


def output_exponent(config: SWAConfig) -> int:
    """Outputs are integers times ``2^output_exponent(config)``."""
    return unit_exponent(config.v_fmt) - config.out_frac_bits


def _wl(wl_or_q, k, v) -> SWAWorkload:
    return wl_or_q if isinstance(wl_or_q, SWAWorkload) else SWAWorkload(wl_or_q, k, v)


def key_range(config: SWAConfig, n: int, i: int) -> tuple[int, int]:
    """Keys ``j0 <= j < j1`` of query row ``i`` in a sequence of ``n`` tokens."""
    if config.dense:
        return 0, i + 1
    if config.causal:
        return max(0, i - config.window + 1), i + 1
    return max(0, i - config.half), min(n, i + config.half + 1)


def reference(config: SWAConfig, q, k=None, v=None) -> np.ndarray:
    """The kernel's exact output (module docstring, steps 1-5) in numpy: ``(n, head_dim)`` int64,
    units ``2^output_exponent(config)``. Takes a :class:`SWAWorkload` or ``q, k, v`` codes."""
    wl = _wl(q, k, v)
    check_workload(config, wl)
    qi, _ = fixed_point(wl.q, config.qk_fmt)
    ki, _ = fixed_point(wl.k, config.qk_fmt)
    vi, _ = fixed_point(wl.v, config.v_fmt)
    qi, ki, vi = (np.asarray(x, dtype=object) for x in (qi, ki, vi))
    E, T, F, c = config.exp_bits, config.lut_bits, config.scale_frac, config.scale_const
    lut = [int(x) for x in config.exp_table]
    Z, sh = config.z_bits, config.z_bits - config.out_frac_bits
    out = np.zeros((wl.n, config.head_dim), dtype=object if config.out_bits > 62 else np.int64)
    for i in range(wl.n):
        j0, j1 = key_range(config, wl.n, i)
        s = [int(x) for x in ki[j0:j1].dot(qi[i])]
        mx = max(s)
        p = []
        for sj in s:
            u = min(mx - sj, config.t_sat) * c
            e, x = u >> F, (u >> (F - T)) & ((1 << T) - 1)
            p.append(lut[x] >> e if e <= E + 1 else 0)
        S = sum(p)
        r = (1 << Z) // S
        a = np.array(p, dtype=object).dot(vi[j0:j1])
        out[i] = [int(x * r) >> sh for x in a]
    return out


def attention_float(config: SWAConfig, q, k=None, v=None) -> np.ndarray:
    """Float64 windowed softmax attention on decoded codes, ``(n, head_dim)``."""
    wl = _wl(q, k, v)
    qf, kf = decode(wl.q, config.qk_fmt), decode(wl.k, config.qk_fmt)
    vf = decode(wl.v, config.v_fmt)
    n = wl.n
    s = (qf @ kf.T) * config.scale
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    if config.causal:
        W = n if config.dense else config.window
        inwin = (j <= i) & (j > i - W)
    else:
        inwin = np.abs(j - i) <= config.half
    s = np.where(inwin, s, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    pr = np.exp(s)
    return (pr / pr.sum(axis=1, keepdims=True)) @ vf


def relative_error(config: SWAConfig, out: np.ndarray, exact: np.ndarray) -> float:
    """``‖out·2^output_exponent − exact‖_F / ‖exact‖_F`` (0 when both are 0)."""
    got = np.ldexp(np.asarray(out, dtype=np.float64), output_exponent(config))
    den = np.linalg.norm(exact)
    return float(np.linalg.norm(got - exact) / den) if den else float(np.linalg.norm(got))


# ---- timing -----------------------------------------------------------------------------------


def slot_cycles(config: SWAConfig, n: int) -> np.ndarray:
    """Length of every lockstep slot (cycles) for one sequence of ``n`` tokens, always-valid
    source and always-ready sink (see ``hw.swa.kernel``'s schedule).

    SWA, slot ``k = 0 .. n+d+2`` with ``d = min(h, n-1)`` (``h = 0`` causal):
    ``max(chunks·[k<n], chunks·nk(k-d-1), chunks·nk(k-d-2), norm_cycles·[d+3<=k<=n+d+2])`` with
    ``nk(r)`` the keys of row ``r`` (0 outside ``0..n-1``): ingest, QKᵀ, SV and normalizer.
    Dense: ``n`` ingest slots of ``chunks``, one empty slot of 1 cycle, then slots ``j = 0 .. n+1``
    of ``max(n·chunks·[j<n], n·chunks·[1<=j<=n], norm_cycles·[j>=2])``.
    """
    _check_n(config, n)
    C, Pn = config.chunks, config.norm_cycles
    if config.dense:
        j = np.arange(n + 2)
        rows = np.maximum.reduce([n * C * (j < n), n * C * ((j >= 1) & (j <= n)), Pn * (j >= 2)])
        return np.concatenate([np.full(n, C), [1], rows]).astype(np.int64)
    # row r is computed by QKᵀ in slot r + d + 1, by SV in r + d + 2, normalized in r + d + 3
    d = min(config.half, n - 1)
    k = np.arange(n + d + 3)
    r = np.arange(n)
    j0 = np.maximum(0, r - (config.window - 1 if config.causal else config.half))
    j1 = np.minimum(n, r + config.half + 1)
    nk = np.concatenate([[0] * (d + 3), j1 - j0, [0] * 3])   # nk of row k - d - 3 at [k]
    qk = C * nk[np.clip(k + 2, 0, len(nk) - 1)]
    sv = C * nk[np.clip(k + 1, 0, len(nk) - 1)]
    return np.maximum.reduce([C * (k < n), qk, sv, Pn * ((k >= d + 3) & (k <= n + d + 2))]).astype(np.int64)


def total_keys(config: SWAConfig, n: int) -> int:
    """Σ_i nk_i: (query, key) pairs in the windows of one sequence (dense: n·n computed)."""
    if config.dense:
        return n * n
    return sum(j1 - j0 for j0, j1 in (key_range(config, n, i) for i in range(n)))


def _sum_nk(n: int, w: int) -> int:
    """Σ_{i<n} min(i+1, w)."""
    if n <= w:
        return n * (n + 1) // 2
    return w * (w + 1) // 2 + (n - w) * w


def cycles(config: SWAConfig, wl: SWAWorkload | int) -> int:
    """Cycles until the last output transfers for one sequence of ``n`` tokens (always-valid
    source, always-ready sink): the sum of :func:`slot_cycles`. For SWA with ``n > window + 2``
    it equals ``n·P + (warm-up and drain terms)``, ``P = max(window·chunks, norm_cycles)``:
    linear in ``n``; the dense baseline's rows cost ``n·chunks`` each: quadratic."""
    n = wl if isinstance(wl, (int, np.integer)) else wl.n
    return int(slot_cycles(config, int(n)).sum())


def steady_row_cycles(config: SWAConfig) -> int:
    """Cycles per row in the steady state of a long sequence (SWA):
    ``max(window·chunks, norm_cycles, chunks)``."""
    C = config.chunks
    return max(config.window * C, config.norm_cycles, C)


def mac_utilization(config: SWAConfig, n: int) -> float:
    """Useful multiplies per unit / (lanes · cycles), for the QKᵀ unit (the SV unit does the
    same work): ``head_dim · Σ_i nk_i / (lanes · cycles)``. Masked products of the dense
    baseline are not useful work."""
    useful = config.head_dim * (_sum_nk(n, n) if config.dense else total_keys(config, n))
    return useful / (config.lanes * cycles(config, n))
