"""Structure of the sliding-window attention engine (``hw.swa``, ``SWAConfig``) for the cost
model, vectorized over the distinct configs of a frame: the widths ``hw.swa`` derives (read from
``SWAConfig`` once per distinct config), structural features, the fitted resource terms, memories,
DSP count and action counts. :class:`costmodel.estimators.SWAEstimator` composes them with the
shared rules: DSPs by :func:`costmodel.features.mult_dsp`, buffers by
:func:`costmodel.features.buffer_cost`, multiply energy by :func:`costmodel.energy.mult_pj`.

Memories of the kernel (``hw.swa.kernel``): K and V rings (``buffer_slots · chunks`` words of
``lanes`` codes), Q (``2 · chunks`` words; a ring like K for the dense baseline and symmetric
windows), the score rows (``2 · window`` words of ``score_bits``). The exp table is a ROM read
asynchronously (logic, not a RAM cell).

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

from typing import Any, Sequence

import numpy as np
import pandas as pd

from hw.arith import ConfigError
from hw.swa import SWAConfig
from quant.formats import IntFormat

from .energy import ERT, mult_pj
from .features import buffer_cost, mult_dsp, pair_props

__all__ = ["SWA_REQUIRED", "SWA_LUT_TERMS", "SWA_FF_TERMS", "SWA_ACTIONS", "swa_configs", "swa_props",
           "swa_features", "swa_design", "swa_actions", "swa_dynamic_pj"]

#: columns an SWA row needs (besides ``engine = "swa"``); optional ones are the other
#: ``SWAConfig`` fields (``causal``, ``exp_bits``, ``dense``, …)
SWA_REQUIRED = ["head_dim", "window", "lanes", "qk_fmt", "v_fmt", "seq_len"]
#: fitted terms: LUT = c · [1, LUT-multiplier operand bits of Q·K, accumulator bits];
#: FF = c · [1, accumulator bits, LUTs of the LUTRAM memories (their read registers and address
#: logic grow with them)]. Chosen by leave-one-out on the calibration rows only (FF: median 1.9 %
#: with ``lutram``, 4.0 % with the read-register bits ``lutram_ff``, 2.8 % with neither).
SWA_LUT_TERMS = ["one", "lut_mult_bits", "acc_bits"]
SWA_FF_TERMS = ["one", "acc_bits", "lutram"]
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


def swa_props(configs: Sequence[SWAConfig], target: str) -> pd.DataFrame:
    """One row per config: the widths ``hw.swa`` derives and what the estimator needs of them."""
    def one(c: SWAConfig) -> dict:
        qk = pair_props(str(c.qk_fmt), str(c.qk_fmt), target)
        vv = pair_props(str(c.v_fmt), str(c.v_fmt), target)
        return dict(head_dim=c.head_dim, window=c.window, lanes=c.lanes, chunks=c.chunks, slots=c.buffer_slots,
                    qk_bits=c.qk_fmt.bits, v_bits=c.v_fmt.bits, score_bits=c.score_bits, sv_bits=c.sv_bits,
                    sum_bits=c.sum_bits, recip_width=c.recip_width, norm_mults=c.norm_mults, exp_bits=c.exp_bits,
                    c_bits=int(c.scale_const).bit_length(), q_ring=int(c.dense or not c.causal),
                    calibrated=int(isinstance(c.qk_fmt, IntFormat) and isinstance(c.v_fmt, IntFormat)
                                   and c.causal and not c.dense),
                    qk_mul_a=qk["mul_a"], qk_mul_b=qk["mul_b"], qk_dsp=qk["mult_dsp"], qk_prod=qk["prod_bits"],
                    qk_levels=qk["mult_levels"], qk_mf=qk["mf"], qk_exp=qk["exp_bits"], qk_shift=qk["shift_bits"],
                    v_mul_a=vv["mul_a"], v_mf=vv["mf"], v_exp=vv["exp_bits"], v_shift=vv["shift_bits"],
                    # p·v: unsigned (exp_bits + 1)-bit numerator × the V operand (sign bit added)
                    sv_dsp=mult_dsp(c.exp_bits + 1, vv["mul_a"], 1, target),
                    score_dsp=mult_dsp(c.score_bits, int(c.scale_const).bit_length(), 0, target),
                    norm_dsp=mult_dsp(c.sv_bits, c.recip_width, 0, target))
    return pd.DataFrame([one(c) for c in configs])


def swa_features(p: pd.DataFrame) -> pd.DataFrame:
    """Structural features of :func:`swa_props` rows: fitted terms, memories and DSPs.

    ``lut_mult_bits``  lanes · Q·K operand bits (``mul_a · mul_b``) of multipliers in LUTs
    ``acc_bits``       head_dim · sv_bits + lanes · score_bits (SV accumulators, adder tree width)
    ``lutram_ff``      read-register bits of the memories Yosys keeps in LUTRAM
    ``bram18``, ``lutram``  the memories by :func:`costmodel.features.buffer_cost`
    ``dsp``            lanes Q·K + lanes p·v + 1 score + norm_mults normalizer multipliers,
                       each by :func:`costmodel.features.mult_dsp`
    """
    g = lambda c: p[c].to_numpy(dtype=np.int64)  # noqa: E731
    lanes, chunks = g("lanes"), g("chunks")
    ring = g("slots") * chunks
    depth = np.stack([ring, ring, np.where(g("q_ring") > 0, ring, 2 * chunks), 2 * g("window")])
    width = np.stack([lanes * g("qk_bits"), lanes * g("v_bits"), lanes * g("qk_bits"), g("score_bits")])
    mem = buffer_cost(depth, width)
    return pd.DataFrame({
        "one": np.ones(len(p)),
        "lut_mult_bits": lanes * g("qk_mul_a") * g("qk_mul_b") * (g("qk_dsp") == 0),
        "acc_bits": g("head_dim") * g("sv_bits") + lanes * g("score_bits"),
        "lutram_ff": mem["ff"].sum(axis=0),
        "bram18": mem["bram18"].sum(axis=0),
        "lutram": mem["lutram"].sum(axis=0),
        "dsp": lanes * (g("qk_dsp") + g("sv_dsp")) + g("score_dsp") + g("norm_mults") * g("norm_dsp"),
    }, index=p.index)


def swa_design(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """LUT and FF design matrices (:data:`SWA_LUT_TERMS`, :data:`SWA_FF_TERMS`) and the counted DSP
    and BRAM18 of :func:`swa_features` rows."""
    return {"lut": features[SWA_LUT_TERMS].to_numpy(dtype=float), "ff": features[SWA_FF_TERMS].to_numpy(dtype=float),
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
