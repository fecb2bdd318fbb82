"""Structure of the sliding-window attention engine (``hw.swa``, ``SWAConfig``) for the cost
model, vectorized over the distinct configs of a frame: the widths ``hw.swa`` derives (read from
``SWAConfig`` once per distinct config), structural features, the fitted resource terms, memories,
DSP count and action counts. :class:`costmodel.estimators.SWAEstimator` composes them with the
shared rules: DSPs by :func:`costmodel.features.mult_dsp`, buffers by
:func:`costmodel.features.buffer_cost`, multiply energy by :func:`costmodel.energy.mult_pj`.

Memories of the kernel (``hw.swa.kernel``): K and V rings (``buffer_slots · chunks`` words of
``lanes`` codes), Q (``2 · chunks`` words; a ring like K for the dense baseline and symmetric
windows), the score rows (``2 · window`` words of ``score_bits``, read transparently). The exp
table is a ROM read asynchronously (logic, not a RAM cell).

Action counts per sequence (``keys = hw.swa.total_keys(config, n)``: (query, key) pairs computed;
the dense baseline computes all ``n²``)
------------------------------------------------------------------------------------------------
``qk_mult``     keys · head_dim multiplies of two Q/K codes (QKᵀ unit)
``sv_mult``     keys · head_dim multiplies ``p · v`` (``exp_bits + 1``-bit numerator × V operand)
``score_mult``  keys multiplies ``t · c`` (score_bits × scale-constant bits)
``add_bits``    keys · (head_dim · score_bits  [adder tree + accumulate]  +  head_dim · sv_bits
                [SV accumulators]  +  sum_bits [softmax denominator])
``exp_reads``   keys reads of the ``2^lut_bits``-entry exp table (``exp_bits + 1`` bits each)
``buf_read_bits``  keys · head_dim · (2 · qk bits + v bits)  (Q, K and V codes read per key)
                   + 2 · keys · score_bits (score row buffer written and read back)
``buf_write_bits`` n · head_dim · (2 · qk bits + v bits)  (Q, K, V written once per token)
``norm_mult``   n · head_dim wide multiplies ``a · r`` (sv_bits × recip_width) in the normalizer
``div_bits``    n · recip_width · sum_bits subtractor bits (restoring divider)
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import amaranth
import numpy as np
import pandas as pd

import hw
from hw.arith import ConfigError
from hw.registers import register_bits
from hw.rtl import atomic_write, cache_root
from hw.swa import SWAConfig
from quant.formats import IntFormat

from .energy import ERT, mult_pj
from .features import MEMORY_CELLS, buffer_cost, mult_dsp, pair_props, write_port_glue

__all__ = ["SWA_REQUIRED", "SWA_CANDIDATES", "SWA_LUT_TERMS", "SWA_FF_TERMS", "SWA_ACTIONS", "swa_configs", "swa_props",
           "swa_features", "swa_design", "swa_actions", "swa_dynamic_pj"]

#: columns an SWA row needs (besides ``engine = "swa"``); optional ones are the other
#: ``SWAConfig`` fields (``causal``, ``exp_bits``, ``dense``, …)
SWA_REQUIRED = ["head_dim", "window", "lanes", "qk_fmt", "v_fmt", "seq_len"]
#: candidate LUT and FF term sets (:func:`swa_features` columns, plus ``qk_mult_lut`` and
#: ``qk_mult_lut_dsp``), compared
#: by 5-fold cross-validation on the calibration rows only (``python -m costmodel.resources
#: --swa-cv``; :func:`costmodel.resources.swa_cv_table`)
_UNITS = ["one", "qk_mult_lut", "qk_tree_bits", "sv_acc_bits", "score_bits", "sv_shift_bits", "sv_mult_bits"]
SWA_CANDIDATES: dict[str, dict[str, list[str]]] = {
    "lut": {
        "int grid (one, LUT-multiplier bits, accumulator bits)": ["one", "lut_mult_bits", "acc_bits"],
        "multiplier LUTs + accumulator bits": ["one", "qk_mult_lut", "acc_bits"],
        "per unit": _UNITS,
        "per unit + SV negation": [*_UNITS, "sv_lane_bits"],
        "per unit + beat bits": [*_UNITS, "io_bits"],
        "per unit + LUTRAM": [*_UNITS, "lutram"],
        "per unit + divider": [*_UNITS, "div_bits"],
        "per unit + divider + normalizer": [*_UNITS, "div_bits", "norm_bits"],
        "per unit + divider + normalizer + LUTRAM": [*_UNITS, "div_bits", "norm_bits", "lutram"],
        "… + LUT-multiplier bits": [*_UNITS, "div_bits", "norm_bits", "lutram", "lut_mult_bits"],
        "… + beat bits": [*_UNITS, "div_bits", "norm_bits", "lutram", "io_bits"],
        "… + LUT-multiplier bits + beat bits": [*_UNITS, "div_bits", "norm_bits", "lutram", "lut_mult_bits", "io_bits"],
        "… + LUT-multiplier bits + signed-V negation": [*_UNITS, "div_bits", "norm_bits", "lutram", "lut_mult_bits",
                                                        "sv_neg_bits"],
        # a minifloat Q·K multiplier whose significand product is a DSP keeps its aligner,
        # negation and exponent adder in LUTs (its measured primitive LUTs)
        "… + signed-V negation + fabric of DSP multipliers": [*_UNITS, "div_bits", "norm_bits", "lutram",
                                                               "lut_mult_bits", "sv_neg_bits", "qk_mult_lut_dsp"],
        # Xilinx: the DSP48 cascade's post-adders take the QKᵀ tree of full-width int × int DSP
        # products (as in the dot engine); every other tree adds in the fabric
        "… + fabric of DSP multipliers, QKᵀ tree outside the DSP48 cascade": [
            "one", "qk_mult_lut", "qk_tree_fabric_bits", "sv_acc_bits", "score_bits", "sv_shift_bits", "sv_mult_bits",
            "div_bits", "norm_bits", "lutram", "sv_neg_bits", "qk_mult_lut_dsp"],
        # several chunks per key: each SV accumulator has a chunk enable and the normalizer reads
        # them through a chunk mux; one chunk: neither
        "… + QKᵀ tree outside the DSP48 cascade, SV accumulators by chunking": [
            "one", "qk_mult_lut", "qk_tree_fabric_bits", "sv_acc_one_chunk", "sv_acc_chunked", "score_bits",
            "sv_shift_bits", "sv_mult_bits", "div_bits", "norm_bits", "lutram", "sv_neg_bits", "qk_mult_lut_dsp"],
        # the memories' read muxes (ECP5's LUTRAM cells hold 16 words: deeper buffers read
        # through a mux of their address blocks)
        "per unit + divider + fabric of DSP multipliers + read muxes": [*_UNITS, "div_bits", "qk_mult_lut_dsp",
                                                                         "mem_mux_bits"],
    },
    "ff": {
        "int grid (one, accumulator bits, LUTRAM)": ["one", "acc_bits", "lutram"],
        "per unit": ["one", "sv_acc_bits", "score_bits", "qk_tree_bits", "lutram"],
        "per unit + beat bits": ["one", "sv_acc_bits", "score_bits", "qk_tree_bits", "lutram", "io_bits"],
        "per unit, read registers": ["one", "sv_acc_bits", "score_bits", "io_bits", "lutram_ff"],
        "per unit + beat bits + normalizer": ["one", "sv_acc_bits", "score_bits", "qk_tree_bits", "lutram", "io_bits",
                                              "norm_bits", "div_bits"],
        "counted registers": ["ff_counted"],
        "counted registers less a constant": ["ff_counted", "less_one"],
        "counted registers less score bits": ["ff_counted", "less_one", "less_score_bits"],
        "counted registers less score bits and single-chunk": ["ff_counted", "less_one", "less_score_bits",
                                                               "less_one_chunk"],
        # with one chunk the QKᵀ unit's running sum (score_bits) is never read: Yosys drops it
        "counted registers less the single-chunk score sum": ["ff_counted", "less_one", "less_sum_one_chunk"],
        "counted registers less the single-chunk score sum and constant": ["ff_counted", "less_one",
                                                                           "less_sum_one_chunk", "less_one_chunk"],
        # a score row in a block RAM keeps fewer flip-flops in the kernel than buffer_cost's
        # transparent-read glue of a standalone buffer
        "counted registers less a constant and block-RAM score row": ["ff_counted", "less_one", "less_bram_row"],
        "counted registers less the single-chunk score sum, constant and block-RAM score row": [
            "ff_counted", "less_one", "less_sum_one_chunk", "less_one_chunk", "less_bram_row"],
        # the issue loops' row registers a sliding window never uses (causal: loaded with 0;
        # symmetric: only the QKᵀ loop's Q slot is read)
        "counted registers less a constant and unused row registers": ["ff_counted", "less_one", "less_row_bits"],
        "counted registers less the single-chunk score sum, constant and unused row registers": [
            "ff_counted", "less_one", "less_sum_one_chunk", "less_one_chunk", "less_row_bits"],
        "… + block-RAM score row": ["ff_counted", "less_one", "less_sum_one_chunk", "less_one_chunk", "less_row_bits",
                                    "less_bram_row"],
        # every register bit Yosys removes, by rule, and the memories' shared glue: the Lattice flows
        # (:func:`_dead_bits`, :func:`_slot_top_bits`, :func:`_shared_glue`) …
        "counted registers less unused, dead and shared bits": [
            "ff_counted", "less_row_bits", "less_dead_bits", "less_slot_top_bits", "less_shared_glue"],
        # … and synth_xilinx (:func:`_constant_counters`; the single-chunk score sum), with a constant
        # and the single-chunk and block-RAM score row terms for the registers its DSP48s absorb
        "counted registers less unused, dead and constant bits": [
            "ff_counted", "less_row_bits", "less_dead_bits", "less_sum_one_chunk", "less_constant_counters"],
        "… + a constant, single-chunk and block-RAM score row": [
            "ff_counted", "less_row_bits", "less_dead_bits", "less_sum_one_chunk", "less_constant_counters",
            "less_one", "less_one_chunk", "less_bram_row"],
    },
}
#: every LUT term set that prices the Q·K multipliers by their measured LUTs (``qk_mult_lut``), also
#: with int and minifloat multipliers at a coefficient each (``qk_mult_lut_int``, ``qk_mult_lut_mf``):
#: with one coefficient for both, the iCE40 fit over-predicts its int Q/K/V calibration kernels by a
#: median 4.7 % (2026-12-05)
SPLIT_MULT_SUFFIX = ", Q·K multipliers int / minifloat apart"
SWA_CANDIDATES["lut"].update({
    name + SPLIT_MULT_SUFFIX: [c for t in terms
                               for c in (("qk_mult_lut_int", "qk_mult_lut_mf") if t == "qk_mult_lut" else (t,))]
    for name, terms in SWA_CANDIDATES["lut"].items() if "qk_mult_lut" in terms})
#: every LUT term set with the SV negation (``sv_neg_bits``), also with a signed int V's magnitude
#: (``v_abs_bits``: the V decoder negates a negative int code, a minifloat V is sign-magnitude):
#: without it the xc7 fit over-predicts kernels with an unsigned int V by a median 3 % and
#: under-predicts those with a signed one by 2 % (calibration rows, 2026-12-06)
INT_V_ABS_SUFFIX = ", int-V magnitude"
SWA_CANDIDATES["lut"].update({
    name + INT_V_ABS_SUFFIX: [*terms, "v_abs_bits"]
    for name, terms in SWA_CANDIDATES["lut"].items() if "sv_neg_bits" in terms})
#: … and each of those less the SV accumulators' top bits where V is an unsigned int
#: (``less_sv_acc_top_bits``): each SV term is then a non-negative ``exp_bits + 1 + V bits``-bit
#: product, so the accumulator's adder above it only carries (2026-12-06: xc7 CV goal score
#: 0.489 → 0.448)
UNSIGNED_V_ACC_SUFFIX = ", unsigned-V accumulator top"
SWA_CANDIDATES["lut"].update({
    name + UNSIGNED_V_ACC_SUFFIX: [*terms, "less_sv_acc_top_bits"]
    for name, terms in SWA_CANDIDATES["lut"].items() if "v_abs_bits" in terms})
#: the default terms (least CV median + p90 on xc7 until 2026-12-04; FF counted from the elaborated
#: design less what Yosys drops): the other resource's terms while one resource's candidates are
#: cross-validated. Each family's shipped fit picks its own terms and fit by the goal score
#: (:func:`costmodel.resources.fit_swa`, ``lut_terms_chosen`` / ``ff_terms_chosen``)
SWA_LUT_TERMS = SWA_CANDIDATES["lut"]["… + QKᵀ tree outside the DSP48 cascade, SV accumulators by chunking"]
SWA_FF_TERMS = SWA_CANDIDATES["ff"]["… + block-RAM score row"]
SWA_ACTIONS = ["qk_mult", "sv_mult", "score_mult", "add_bits", "exp_reads", "buf_read_bits", "buf_write_bits",
               "norm_mult", "div_bits"]
_FIELDS = [f for f in SWAConfig.__dataclass_fields__]


def _typed(field: str, v: Any) -> Any:
    """A frame cell as the ``SWAConfig`` field wants it (a mixed frame turns ints into floats)."""
    v = v.item() if isinstance(v, np.generic) else v
    kind = str(SWAConfig.__dataclass_fields__[field].type)
    if isinstance(v, float) and v.is_integer() and kind.startswith("int"):
        return int(v)
    if isinstance(v, (int, float)) and kind == "bool" and v in (0, 1):
        return bool(v)
    return v


def swa_configs(df: pd.DataFrame) -> tuple[list[SWAConfig], np.ndarray]:
    """Distinct ``SWAConfig`` of the SWA rows of ``df`` and each row's index into them.

    Raises
    ------
    hw.arith.ConfigError
        naming the missing columns, or what ``SWAConfig`` rejects.
    """
    need = [c for c in SWA_REQUIRED[:-1] if c not in df.columns]
    if need:
        raise ConfigError(f"SWA rows need column(s) {need} (head_dim, window, lanes, qk_fmt, v_fmt and the "
                          f"sequence length seq_len, or estimate_frame(..., seq_len=N))")
    cols = [c for c in _FIELDS if c in df.columns]
    gid = df[cols].astype(object).where(df[cols].notna(), None).groupby(cols, dropna=False, sort=False).ngroup()
    first = df.loc[~gid.duplicated().to_numpy(), cols]
    configs = [SWAConfig.from_dict({c: _typed(c, v) for c, v in zip(cols, vals) if not pd.isna(v)})
               for vals in first.itertuples(index=False, name=None)]
    return configs, gid.to_numpy()


@lru_cache(maxsize=1)
def _generator_hash() -> str:
    """sha256 of every source file of ``hw`` and the Amaranth version: a register count cached on
    disk is taken again whenever the generators (or Amaranth) change."""
    root = Path(hw.__file__).parent
    h = hashlib.sha256(amaranth.__version__.encode())
    for src in sorted(root.rglob("*.py")):
        h.update(src.relative_to(root).as_posix().encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=4096)
def _reg_bits(c: SWAConfig) -> int:
    """Register bits of the kernel's elaborated design (:func:`hw.registers.register_bits`,
    ~0.15 s per config): cached in memory and in ``cache_root()/regbits`` keyed by the config and
    :func:`_generator_hash`."""
    key = hashlib.sha256(json.dumps([c.to_dict(), _generator_hash()], sort_keys=True).encode()).hexdigest()[:32]
    path = cache_root() / "regbits" / f"{key}.json"
    try:
        return int(json.loads(path.read_text())["logic"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not cached yet, or a damaged entry: count again
    bits = register_bits(c).logic
    atomic_write(path, json.dumps({"logic": bits}))
    return bits


def _addr_dsp(c: SWAConfig, target: str) -> int:
    """DSPs of the buffer addresses ``slot · chunks + chunk`` (``hw.swa.ingest``): one product per
    write address, K read and V read, plus the Q read where Q has a slot per token (dense or
    symmetric); a constant multiply by ``chunks`` is a shift when ``chunks`` is a power of two,
    else Yosys maps it like any ``$mul`` (unsigned operands, the address as its product)."""
    C, slots = c.chunks, c.buffer_slots
    tz = (C & -C).bit_length() - 1  # x · (odd << tz) = (x · odd) << tz: the shift is wiring
    odd = C >> tz
    if odd == 1:
        return 0
    y = max(1, (slots * C - 1).bit_length()) - tz
    n = mult_dsp(slots.bit_length(), odd.bit_length(), 1, target, y) * 3
    if c.dense or not c.causal:
        n += mult_dsp(max(c.window, slots).bit_length(), odd.bit_length(), 1, target, y)
    return n


@lru_cache(maxsize=4096)
def _read_sources(depth: int, width: int, target: str, transparent: bool = False) -> int:
    """Words one read port selects among per bit: every word of a memory left in flip-flops,
    else the address blocks ``ceil(depth / words)`` of the cell :func:`buffer_cost` picks (the cell
    of ``MEMORY_CELLS[target]`` whose count of block RAMs and LUTRAM it gives)."""
    got = buffer_cost(depth, width, target, transparent)
    bram, lutram = int(got["bram18"]), int(got["lutram"])
    if bram == lutram == 0:
        return depth
    blocks = []
    for c in MEMORY_CELLS[target]:
        a = -(-depth // c.words)
        b = min(c.byte, c.bits) if c.byte else c.bits
        cells = -(-(a * -(-width // b) * b) // c.bits) if c.byte else a * -(-width // c.bits)
        if (cells * c.bram, cells * c.lutram) == (bram, lutram):
            blocks.append(a)
    return min(blocks, default=1)


def _read_mux_bits(depth: np.ndarray, width: np.ndarray, target: str, transparent: bool = False) -> np.ndarray:
    """2:1 mux bits of the read ports of memories ``depth`` × ``width`` (vectorized):
    ``width · (sources − 1)`` (:func:`_read_sources`)."""
    n = [_read_sources(int(d), int(w), target, transparent) for d, w in zip(depth, width)]
    return np.asarray(width, dtype=np.int64) * (np.asarray(n, dtype=np.int64) - 1)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of each of ``x`` (≥ 1 for 0)."""
    return np.floor(np.log2(np.maximum(x, 1))).astype(np.int64) + 1


def _unused_row_bits(window: np.ndarray, slots: np.ndarray, dense: np.ndarray, symmetric: np.ndarray) -> np.ndarray:
    """Register bits of the row fields of ``hw.swa.kernel``'s issue loops (``qk_row``, ``sv_row``:
    ``range(max(window, slots) + 1)``; their one-cycle copies ``q1_row``, ``s1_row``:
    ``range(window + 1)``) that nothing reads: all four in a causal window (loaded with 0), all
    but ``qk_row`` (the Q slot) in a symmetric one, none in the dense baseline (its mask reads
    them)."""
    wide, narrow = _bit_length(np.maximum(window, slots)), _bit_length(window)
    return np.where(dense > 0, 0, np.where(symmetric > 0, wide, 2 * wide) + 2 * narrow)


def _dead_bits(p: pd.DataFrame) -> np.ndarray:
    """Register bits of the elaborated kernel that Yosys removes on every family (read off the
    netlists of iCE40, ECP5 and Xilinx kernels, 2026-12-06), per :func:`swa_props` row:

    - the divider's dividend register ``nlow`` (``div_steps · div_step_bits`` bits) below bit
      ``z_bits``: zeros shifted in from below, constant (all of it where ``z_bits`` is above it);
    - the quotient register's bits above ``recip_width``: shifted out, never read;
    - ``sv_kstart`` (the SV issue loop's copy of the first key's slot): never read; in the dense
      baseline ``qk_kstart`` too (loaded with 0).
    """
    g = lambda c: p[c].to_numpy(dtype=np.int64)  # noqa: E731
    div, kstart = g("div_reg_bits"), _bit_length(g("slots"))
    return np.minimum(div, g("z_bits")) + div - g("recip_width") + np.where(g("dense") > 0, 2 * kstart, kstart)


def _slot_top_bits(p: pd.DataFrame) -> np.ndarray:
    """Top bits of the slot counters that the Lattice flows remove where both the buffer slots and
    the chunks are powers of two: ``qk_slot``, ``sv_slot`` (``range(slots + 1)``, wrapping at
    ``slots - 1``) and, but in the dense baseline (whose ``wslot`` counts up to ``slots``),
    ``wslot`` and ``qk_kstart`` (every stored iCE40 and ECP5 kernel; not on Xilinx)."""
    g = lambda c: p[c].to_numpy(dtype=np.int64)  # noqa: E731
    slots, chunks = g("slots"), g("chunks")
    p2 = ((slots & (slots - 1)) == 0) & ((chunks & (chunks - 1)) == 0)
    return p2 * np.where(g("dense") > 0, 2, 4)


def _constant_counters(p: pd.DataFrame) -> np.ndarray:
    """Counter bits that ``synth_xilinx`` proves constant (a counter that wraps at 0): with one
    chunk per key the five chunk counters (``qk_c``, ``sv_c``, their one-cycle copies and the
    ingest unit's ``ci``, 1 bit each), with one output group per beat (``lanes = norm_mults``) the
    normalizer's group counter (1 bit)."""
    g = lambda c: p[c].to_numpy(dtype=np.int64)  # noqa: E731
    return 5 * (g("chunks") == 1) + (g("lanes") == g("norm_mults"))


def _shared_glue(bram: np.ndarray, q_ring: np.ndarray, chunks: np.ndarray, ring: np.ndarray,
                 target: str) -> np.ndarray:
    """Flip-flops of the read-first emulation glue (:func:`costmodel.features.write_port_glue`)
    that ``opt_merge`` shares among the K, V and Q block RAMs (``bram``: 3 × rows, K / V / Q), per
    row: K, V and a Q ring are written at one address with one enable (one copy of the glue for
    all); the causal Q (``2 · chunks`` words, at ``bank · chunks + chunk``) has that enable and the
    low ``tz(chunks)`` address bits (``chunk``'s, where ``slot · chunks`` has only zeros) in common
    with a K or V block RAM's."""
    k, v, q = bram
    rings = k.astype(np.int64) + v + (q & q_ring)
    tz = np.log2(chunks & -chunks).astype(np.int64)
    q_part = np.where(q & ~q_ring & (k | v), np.minimum(1 + tz, write_port_glue(2 * chunks, target)), 0)
    return np.maximum(rings - 1, 0) * write_port_glue(ring, target) + q_part


def swa_props(configs: Sequence[SWAConfig], target: str) -> pd.DataFrame:
    """One row per config: the widths ``hw.swa`` derives and what the estimator needs of them."""
    def one(c: SWAConfig) -> dict:
        qk = pair_props(str(c.qk_fmt), str(c.qk_fmt), target)
        vv = pair_props(str(c.v_fmt), str(c.v_fmt), target)
        vf = c.v_fmt
        # stages of the V decoder's alignment shift (0 for an int V): shifts 0..max_normal_field - 1
        v_stages = 0 if isinstance(vf, IntFormat) else max(1, (vf.max_normal_field - 1).bit_length())
        return dict(qk_fmt=str(c.qk_fmt), v_fmt=str(vf), v_shift_stages=v_stages, dense=int(c.dense),
                    v_signed=int(getattr(vf, "signed", True)),
                    symmetric=int(not c.causal),
                    head_dim=c.head_dim, window=c.window, lanes=c.lanes, chunks=c.chunks, slots=c.buffer_slots,
                    qk_bits=c.qk_fmt.bits, v_bits=c.v_fmt.bits, score_bits=c.score_bits, sv_bits=c.sv_bits,
                    sum_bits=c.sum_bits, recip_width=c.recip_width, norm_mults=c.norm_mults, exp_bits=c.exp_bits,
                    div_step_bits=c.div_step_bits, div_reg_bits=c.div_steps * c.div_step_bits, z_bits=c.z_bits,
                    out_bits=c.out_bits, reg_bits=_reg_bits(c),
                    c_bits=int(c.scale_const).bit_length(), q_ring=int(c.dense or not c.causal),
                    qk_mul_a=qk["mul_a"], qk_mul_b=qk["mul_b"], qk_dsp=qk["mult_dsp"], qk_prod=qk["prod_bits"],
                    qk_levels=qk["mult_levels"], qk_mf=qk["mf"], qk_exp=qk["exp_bits"], qk_shift=qk["shift_bits"],
                    qk_full=qk["full_product"],
                    v_mul_a=vv["mul_a"], v_mf=vv["mf"], v_exp=vv["exp_bits"], v_shift=vv["shift_bits"],
                    # p·v: unsigned (exp_bits + 1)-bit numerator × the V operand (sign bit added)
                    sv_dsp=mult_dsp(c.exp_bits + 1, vv["mul_a"], 1, target),
                    # t·c: the saturated score gap (unsigned, t_sat's bits) × the constant c
                    score_dsp=mult_dsp(int(c.t_sat).bit_length(), int(c.scale_const).bit_length(), 1, target),
                    # a·r: a signed sv_bits accumulator × the unsigned reciprocal (gains a sign bit),
                    # read only up to its out_bits-bit field at z_bits - out_frac_bits
                    norm_dsp=mult_dsp(c.sv_bits, c.recip_width + 1, 0, target,
                                      used_bits=c.z_bits - c.out_frac_bits + c.out_bits),
                    addr_dsp=_addr_dsp(c, target))
    return pd.DataFrame([one(c) for c in configs])


def swa_features(p: pd.DataFrame, target: str = "xc7") -> pd.DataFrame:
    """Structural features of :func:`swa_props` rows of ``target``: candidate fitted terms,
    memories (by the family's memory rule) and DSPs.

    ``lut_mult_bits``  lanes · Q·K operand bits (``mul_a · mul_b``) of multipliers in LUTs
    ``acc_bits``       head_dim · sv_bits + lanes · score_bits (SV accumulators, adder tree width)
    ``sv_acc_bits``    head_dim · sv_bits (the SV accumulators, their restart mux and adders)
    ``sv_acc_one_chunk``, ``sv_acc_chunked``  the same where chunks = 1 and where chunks > 1
                       (then each accumulator has a chunk enable and the normalizer's chunk mux)
    ``qk_tree_bits``   lanes · Q·K product bits (the QKᵀ adder tree's inputs)
    ``qk_tree_fabric_bits``  the same, 0 where the products are full-width int × int DSP
                       products (``pair_props``' ``full_product``): on Xilinx the DSP48 cascade's
                       post-adders sum those
    ``sv_shift_bits``  lanes · sv_bits · V alignment stages (minifloat V: the log shifter)
    ``sv_mult_bits``   lanes · (exp_bits + 1) · V magnitude bits of p·v multipliers in LUTs
    ``sv_lane_bits``   lanes · sv_bits (each SV term's negation)
    ``sv_neg_bits``    the same where V is signed (an unsigned V's sign is constant 0: no negation)
    ``v_abs_bits``     lanes · V bits where V is a signed int (the V decoder's ``|v|``, a negation;
                       a minifloat V is sign-magnitude, an unsigned one its own magnitude)
    ``less_sv_acc_top_bits``  −head_dim · (sv_bits − (exp_bits + 1 + V bits)) where V is an unsigned
                       int: the accumulator bits above a non-negative SV term, whose adder only
                       carries there (a negative term: a positive coefficient subtracts)
    ``io_bits``        lanes · (2 · Q/K bits + V bits) (a beat of codes)
    ``ff_counted``     the kernel's register bits (:func:`hw.registers.register_bits`, from the
                       elaborated design) + the memories' flip-flops (``lutram_ff``)
    ``less_one``, ``less_score_bits``, ``less_one_chunk``  −1, −score_bits, −[chunks = 1]: the
                       registers Yosys removes (constant and duplicate bits of the score path;
                       with one chunk the SV accumulators meet their DSP48s), as negative terms
    ``less_sum_one_chunk``  −score_bits · [chunks = 1]: with one chunk per key the QKᵀ unit's
                       running sum ``sacc`` is never read (its chunk index is constant 0), so
                       Yosys removes its register
    ``less_bram_row``  −[score row in block RAM]: its transparent-read glue, counted by
                       :func:`costmodel.features.buffer_cost` from standalone buffers, comes out
                       smaller inside the kernel (a constant per family, fitted)
    ``less_row_bits``  −(row registers of the issue loops a sliding window never reads,
                       :func:`_unused_row_bits`), which Yosys removes
    ``less_dead_bits`` −(the other register bits Yosys removes, :func:`_dead_bits`)
    ``less_slot_top_bits``  −(the slot counters' top bits the Lattice flows remove, :func:`_slot_top_bits`)
    ``less_constant_counters``  −(counter bits ``synth_xilinx`` proves constant, :func:`_constant_counters`)
    ``less_shared_glue``  −(the write-port glue of the read-first emulation that the K, V and Q
                       block RAMs share, :func:`_shared_glue`)
    ``div_bits``       quotient bits per divider cycle · sum_bits (the reciprocal's subtractors)
    ``norm_bits``      norm_mults · (sv_bits + out_bits) (normalizer operand select and rounding)
    ``lutram_ff``      flip-flops of the memories: read registers of LUTRAM, every bit of a
                       memory Yosys leaves in flip-flops
    ``bram18``, ``lutram``  the memories by :func:`costmodel.features.buffer_cost`
    ``mem_mux_bits``   2:1 mux bits of the memories' read ports: a memory deeper than one cell
                       (ECP5's DPR16X4 holds 16 words) reads through a mux of its address
                       blocks, one left in flip-flops through a mux of every word
    ``dsp``            lanes Q·K + lanes p·v + 1 score (t·c) + norm_mults normalizer (a·r)
                       multipliers + the buffer-address products (:func:`_addr_dsp`), each by
                       :func:`costmodel.features.mult_dsp`

    Terms may also name :func:`swa_props` columns (``score_bits``: one exact score, the row
    maximum, subtractor and exp-unit input). ``qk_mult_lut`` (LUTs of the Q·K multipliers: lanes ×
    the family's multiplier estimate) and ``qk_mult_lut_dsp`` (the same for multipliers whose
    significand product is a DSP: their fabric part) are added by
    :func:`costmodel.resources.predict_swa`, which knows the family's multiplier model.
    """
    g = lambda c: p[c].to_numpy(dtype=np.int64)  # noqa: E731
    lanes, chunks = g("lanes"), g("chunks")
    ring = g("slots") * chunks
    # K, V and Q buffers; the score row (its read port transparent to its write port)
    rings = buffer_cost(np.stack([ring, ring, np.where(g("q_ring") > 0, ring, 2 * chunks)]),
                        np.stack([lanes * g("qk_bits"), lanes * g("v_bits"), lanes * g("qk_bits")]), target)
    row = buffer_cost(2 * g("window"), g("score_bits"), target, transparent=True)
    mem = {k: rings[k].sum(axis=0) + row[k] for k in ("ff", "bram18", "lutram")}
    q_depth = np.where(g("q_ring") > 0, ring, 2 * chunks)
    mem_mux = (_read_mux_bits(ring, lanes * g("qk_bits"), target) + _read_mux_bits(ring, lanes * g("v_bits"), target)
               + _read_mux_bits(q_depth, lanes * g("qk_bits"), target)
               + _read_mux_bits(2 * g("window"), g("score_bits"), target, transparent=True))
    return pd.DataFrame({
        "one": np.ones(len(p)),
        "lut_mult_bits": lanes * g("qk_mul_a") * g("qk_mul_b") * (g("qk_dsp") == 0),
        "acc_bits": g("head_dim") * g("sv_bits") + lanes * g("score_bits"),
        "sv_acc_bits": g("head_dim") * g("sv_bits"),
        "sv_acc_one_chunk": g("head_dim") * g("sv_bits") * (chunks == 1),
        "sv_acc_chunked": g("head_dim") * g("sv_bits") * (chunks > 1),
        "qk_tree_bits": lanes * g("qk_prod"),
        "qk_tree_fabric_bits": lanes * g("qk_prod") * ~((g("qk_mf") == 0) & (g("qk_dsp") > 0) & (g("qk_full") > 0)),
        "sv_shift_bits": lanes * g("sv_bits") * g("v_shift_stages"),
        "sv_mult_bits": lanes * (g("exp_bits") + 1) * g("v_mul_a") * (g("sv_dsp") == 0),
        "sv_lane_bits": lanes * g("sv_bits"),
        "sv_neg_bits": lanes * g("sv_bits") * g("v_signed"),
        "v_abs_bits": lanes * g("v_bits") * g("v_signed") * (g("v_mf") == 0),
        "less_sv_acc_top_bits": -g("head_dim") * np.maximum(g("sv_bits") - g("exp_bits") - 1 - g("v_bits"), 0)
        * ((g("v_signed") == 0) & (g("v_mf") == 0)),
        "io_bits": lanes * (2 * g("qk_bits") + g("v_bits")),
        "ff_counted": g("reg_bits") + mem["ff"],
        # what Yosys drops of them, as negative terms (a positive coefficient subtracts):
        "less_one": -np.ones(len(p)),
        "less_score_bits": -g("score_bits"),
        "less_one_chunk": -(chunks == 1).astype(np.int64),
        "less_sum_one_chunk": -g("score_bits") * (chunks == 1),
        "less_bram_row": -(row["bram18"] > 0).astype(np.int64),
        "less_row_bits": -_unused_row_bits(g("window"), g("slots"), g("dense"), g("symmetric")),
        "less_dead_bits": -_dead_bits(p),
        "less_slot_top_bits": -_slot_top_bits(p),
        "less_constant_counters": -_constant_counters(p),
        "less_shared_glue": -_shared_glue(rings["bram18"] > 0, g("q_ring") > 0, chunks, ring, target),
        "div_bits": g("div_step_bits") * g("sum_bits"),
        "norm_bits": g("norm_mults") * (g("sv_bits") + g("out_bits")),
        "lutram_ff": mem["ff"],
        "bram18": mem["bram18"],
        "lutram": mem["lutram"],
        "mem_mux_bits": mem_mux,
        "dsp": lanes * (g("qk_dsp") + g("sv_dsp")) + g("score_dsp") + g("norm_mults") * g("norm_dsp") + g("addr_dsp"),
    }, index=p.index)


def swa_design(features: pd.DataFrame, lut_terms: Sequence[str] = SWA_LUT_TERMS,
               ff_terms: Sequence[str] = SWA_FF_TERMS) -> dict[str, np.ndarray]:
    """LUT and FF design matrices (columns ``lut_terms``, ``ff_terms`` of :func:`swa_features`
    rows) and the counted DSP and BRAM18."""
    return {"lut": features[list(lut_terms)].to_numpy(dtype=float),
            "ff": features[list(ff_terms)].to_numpy(dtype=float),
            "dsp": features["dsp"].to_numpy(), "bram18": features["bram18"].to_numpy()}


def swa_actions(p: pd.DataFrame, n: np.ndarray, keys: np.ndarray) -> pd.DataFrame:
    """Action counts (module docstring) of one sequence of ``n`` tokens with ``keys`` (query, key)
    pairs (``hw.swa.total_keys``), per row of ``p``."""
    n, keys = np.asarray(n, dtype=float), np.asarray(keys, dtype=float)
    g = lambda c: p[c].to_numpy(dtype=float)  # noqa: E731
    D = g("head_dim")
    io_bits = D * (2 * g("qk_bits") + g("v_bits"))
    return pd.DataFrame({
        "qk_mult": keys * D, "sv_mult": keys * D, "score_mult": keys,
        "add_bits": keys * (D * g("score_bits") + D * g("sv_bits") + g("sum_bits")),
        "exp_reads": keys,
        "buf_read_bits": keys * io_bits + 2 * keys * g("score_bits"),
        "buf_write_bits": n * io_bits,
        "norm_mult": n * D,
        "div_bits": n * g("recip_width") * g("sum_bits"),
    }, index=p.index)


def swa_dynamic_pj(actions: pd.DataFrame, p: pd.DataFrame) -> np.ndarray:
    """Dynamic energy (pJ, ASIC figures of :data:`costmodel.energy.ERT`) of the action counts;
    every multiply priced by :func:`costmodel.energy.mult_pj`."""
    g = lambda c: p[c].to_numpy(dtype=float)  # noqa: E731
    zero = np.zeros(len(p))
    e_qk = mult_pj(g("qk_mul_a"), g("qk_mul_b"), g("qk_mf"), g("qk_exp"), g("qk_prod"), g("qk_shift"))
    # p (exp_bits + 1 bits, unsigned) × V operand (integer code, or significand + alignment shift)
    e_sv = mult_pj(g("exp_bits") + 1, g("v_mul_a"), g("v_mf"), g("v_exp") // 2, g("sv_bits"), g("v_shift"))
    e_score = mult_pj(g("score_bits"), g("c_bits"), zero, zero, zero, zero)
    e_norm = mult_pj(g("sv_bits"), g("recip_width"), zero, zero, zero, zero)
    exp_read_pj = (g("exp_bits") + 1) * ERT["sram_read_bit"]["pJ"]
    a = {c: actions[c].to_numpy(dtype=float) for c in SWA_ACTIONS}
    return (a["qk_mult"] * e_qk + a["sv_mult"] * e_sv + a["score_mult"] * e_score
            + (a["add_bits"] + a["div_bits"]) * ERT["add_bit"]["pJ"] + a["exp_reads"] * exp_read_pj
            + a["buf_read_bits"] * ERT["sram_read_bit"]["pJ"] + a["buf_write_bits"] * ERT["sram_write_bit"]["pJ"]
            + a["norm_mult"] * e_norm)
