"""Cost of the sliding-window attention engine (``hw.swa``, ``SWAConfig``) for one sequence of
``n`` tokens.

- **cycles**: the engine's own closed form ``hw.swa.cycles(config, n)`` (sum of the lockstep
  slots; the hw tests and ``tests/costmodel/test_swa.py`` check it against simulation).
- **fmax**: the analytic logic-depth model of :mod:`costmodel.latency` applied to the QKᵀ unit
  only (``lanes`` multipliers + the combinational adder tree + the score register, i.e. a dot
  datapath with ``pipeline = 0``). The softmax, SV and divider paths are not modelled, so the
  figure is an *upper bound* on the clock; the label (:data:`SWA_FMAX_SOURCE`) says so.
- **energy**: action counts of one sequence (below) × the per-action table
  :data:`costmodel.energy.ERT` (ASIC figures, labelled there) + device static power × latency.
- **resources**: a small least-squares model fitted on Yosys xc7 syntheses of SWA configs
  (``data/swa_calibration.csv``, fitted coefficients and held-out errors in
  ``data/swa_coefficients.json``, see :mod:`costmodel.swa_fit`): LUT and FF fitted, DSP and
  BRAM18 counted by rules checked against the same syntheses. Other targets and the dense
  baseline: not calibrated; the resource fields are then ``None`` and ``resource_source`` says so.

Action counts per sequence (``keys = hw.swa.total_keys(config, n)``: (query, key) pairs computed;
the dense baseline computes all ``n²``)
------------------------------------------------------------------------------------------------
``qk_mult``     keys · head_dim multiplies of two Q/K codes (QKᵀ unit)
``sv_mult``     keys · head_dim multiplies ``p · v`` (``exp_bits + 1``-bit numerator × V operand)
``add_bits``    keys · (head_dim · score_bits  [adder tree + accumulate]  +  head_dim · sv_bits
                [SV accumulators]  +  sum_bits [softmax denominator])
``exp_reads``   keys reads of the ``2^lut_bits``-entry exp table (``exp_bits + 1`` bits each)
``score_mult``  keys multiplies ``t · c`` (score_bits × scale-constant bits)
``buf_read_bits``  keys · head_dim · (2 · qk bits + v bits)  (Q, K and V codes read per key)
                   + 2 · keys · score_bits (score row buffer written and read back)
``buf_write_bits`` n · head_dim · (2 · qk bits + v bits)  (Q, K, V written once per token)
``norm_mult``   n · head_dim wide multiplies ``a · r`` (sv_bits × recip_width) in the normalizer
``div_bits``    n · recip_width · sum_bits subtractor bits (restoring divider)
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hw import swa as hw_swa
from hw.arith import ConfigError
from quant.formats import IntFormat

from .devices import DeviceError
from .energy import ERT, mult_pj
from .features import pair_props
from .latency import DELAYS, fmax_array

__all__ = ["swa_actions", "swa_energy", "swa_fmax", "swa_resources", "swa_features", "swa_dsp", "swa_bram18",
           "SWA_FMAX_SOURCE", "SWA_ENERGY_SOURCE", "SWA_COEFFICIENTS", "SWA_CALIBRATION"]

DATA = Path(__file__).parent / "data"
SWA_CALIBRATION = DATA / "swa_calibration.csv"
SWA_COEFFICIENTS = DATA / "swa_coefficients.json"

SWA_FMAX_SOURCE = ("upper bound: analytic logic-depth model of the QKᵀ unit only (multipliers + combinational "
                   "adder tree + score register, pipeline 0); softmax/SV/divider paths not modelled, no P&R")
SWA_ENERGY_SOURCE = ("dynamic: SWA action counts (QKᵀ and SV MACs, exp-table reads, buffer reads/writes, "
                     "normalizer) × ASIC per-action energies (costmodel.energy.ERT: Horowitz ISSCC'14 45 nm, "
                     "Accelergy Aladdin 40 nm); static: device static power × latency")


def _check_n(config: Any, n: Any) -> int:
    hi = config.window if config.dense else None
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1 or (hi is not None and n > hi):
        lim = f"1..{hi} (the dense baseline buffers at most window={hi} tokens)" if hi else ">= 1"
        raise ConfigError(f"SWA workload needs a sequence length n {lim}, got {n!r}; pass --n / n=")
    return int(n)


def swa_actions(config: Any, n: int) -> dict[str, float]:
    """Action counts of one sequence of ``n`` tokens (see the module docstring)."""
    n = _check_n(config, n)
    keys = hw_swa.total_keys(config, n)
    D = config.head_dim
    qb, vb = config.qk_fmt.bits, config.v_fmt.bits
    return {
        "qk_mult": keys * D,
        "sv_mult": keys * D,
        "score_mult": keys,
        "add_bits": keys * (D * config.score_bits + D * config.sv_bits + config.sum_bits),
        "exp_reads": keys,
        "buf_read_bits": keys * D * (2 * qb + vb) + 2 * keys * config.score_bits,
        "buf_write_bits": n * D * (2 * qb + vb),
        "norm_mult": n * D,
        "div_bits": n * config.recip_width * config.sum_bits,
    }


def _mult_pj(a_bits: int, b_bits: int) -> float:
    return ERT["int8_mult"]["pJ"] * a_bits * b_bits / 64.0


def swa_energy(config: Any, n: int, latency_us: float, static_w: float) -> dict[str, float]:
    """Action counts, ``dynamic_nj`` (ASIC ERT), ``static_nj`` and ``energy_nj`` of one sequence."""
    a = swa_actions(config, n)
    qk = pair_props(str(config.qk_fmt), str(config.qk_fmt))
    vv = pair_props(str(config.v_fmt), str(config.v_fmt))
    e_qk = float(mult_pj(qk["mul_a"], qk["mul_b"], qk["mf"], qk["exp_bits"], qk["prod_bits"], qk["shift_bits"]))
    # p (exp_bits + 1 bits, unsigned) × V operand (integer code, or significand + alignment shift)
    e_sv = float(mult_pj(config.exp_bits + 1, vv["mul_a"], vv["mf"], vv["exp_bits"] // 2, config.sv_bits,
                         vv["shift_bits"]))
    c_bits = int(config.scale_const).bit_length()
    e_score = _mult_pj(config.score_bits, c_bits)
    e_norm = _mult_pj(config.sv_bits, config.recip_width)
    exp_read_pj = (config.exp_bits + 1) * ERT["sram_read_bit"]["pJ"]
    dyn_pj = (a["qk_mult"] * e_qk + a["sv_mult"] * e_sv + a["score_mult"] * e_score
              + a["add_bits"] * ERT["add_bit"]["pJ"] + a["exp_reads"] * exp_read_pj
              + a["buf_read_bits"] * ERT["sram_read_bit"]["pJ"]
              + a["buf_write_bits"] * ERT["sram_write_bit"]["pJ"]
              + a["norm_mult"] * e_norm + a["div_bits"] * ERT["add_bit"]["pJ"])
    out = {k: float(v) for k, v in a.items()}
    out["dynamic_nj"] = dyn_pj / 1e3
    out["static_nj"] = static_w * float(latency_us) * 1e3  # W · µs = µJ
    out["energy_nj"] = out["dynamic_nj"] + out["static_nj"]
    return out


def swa_fmax(config: Any, target: str) -> float:
    """Upper-bound fmax (MHz) of the QKᵀ unit (see :data:`SWA_FMAX_SOURCE`)."""
    if target not in DELAYS:
        raise DeviceError(f"unknown synthesis target {target!r}; choose one of {', '.join(DELAYS)}")
    p = pair_props(str(config.qk_fmt), str(config.qk_fmt), target)
    f = fmax_array(target, [config.lanes], [p["prod_bits"]], [config.score_bits], [p["mult_levels"]],
                   [p["mult_dsp"] > 0], [0])
    return float(np.round(f[0], 2))


# ---------------------------------------------------------------------------------------------
# resources
# ---------------------------------------------------------------------------------------------


def swa_features(config: Any) -> dict[str, float]:
    """Structural features of an SWA config counted from the design (inputs of the fitted model).

    ``mults``      multipliers: 2 · lanes (QKᵀ, SV) + norm_mults (normalizer)
    ``qk_mul_bits`` lanes · (Q/K multiplier operand product a·b) — LUT multipliers' size
    ``acc_bits``   head_dim · sv_bits + lanes · score_bits (SV accumulators, adder tree width)
    ``buf_bits``   (buffer_slots · head_dim) · (2 · qk bits + v bits) (K, V and Q ring storage)
    ``ctl_bits``   recip_width + sum_bits + score_bits + window bits (divider, denominator, control)
    ``lut_mult_bits`` qk_mul_bits of Q·K multipliers Yosys maps to LUTs (0 when they go to DSPs)
    ``lutram_bits`` buf_bits when the K/V buffers stay in LUTRAM (≤ 64 words deep), else 0
    """
    qk = pair_props(str(config.qk_fmt), str(config.qk_fmt))
    buf_bits = float(config.buffer_slots * config.head_dim * (2 * config.qk_fmt.bits + config.v_fmt.bits))
    return {
        "lut_mult_bits": float(config.lanes * qk["mul_a"] * qk["mul_b"] * (qk["mult_dsp"] == 0)),
        "lutram_bits": buf_bits if config.buffer_slots * config.chunks <= 64 else 0.0,
        "one": 1.0,
        "mults": float(2 * config.lanes + config.norm_mults),
        "qk_mul_bits": float(config.lanes * qk["mul_a"] * qk["mul_b"]),
        "acc_bits": float(config.head_dim * config.sv_bits + config.lanes * config.score_bits),
        "buf_bits": float(config.buffer_slots * config.head_dim * (2 * config.qk_fmt.bits + config.v_fmt.bits)),
        "ctl_bits": float(config.recip_width + config.sum_bits + config.score_bits
                          + max(1, int(config.window).bit_length())),
    }


def _dsp_of(a: int, b: int, signed_extra: int = 1, target: str = "xc7") -> int:
    """DSPs of one a×b ``$mul`` by the Yosys synth_xilinx rule (see costmodel.features)."""
    if min(a, b) < 2 or a + b < 9:
        return 0
    amax, bmax = (25, 18) if target == "xc7" else (27, 18)
    aa, bb = sorted((a + signed_extra, b + signed_extra), reverse=True)
    return math.ceil(aa / amax) * math.ceil(bb / bmax)


def swa_dsp(config, target: str = "xc7") -> int:
    """DSP count of an SWA config by the Yosys DSP rule, multiplier by multiplier."""
    qk = pair_props(str(config.qk_fmt), str(config.qk_fmt), target)
    vv = pair_props(str(config.v_fmt), str(config.v_fmt), target)
    c_bits = int(config.scale_const).bit_length()
    return (config.lanes * qk["mult_dsp"]
            + config.lanes * _dsp_of(config.exp_bits + 1, vv["mul_a"], 1, target)
            + _dsp_of(config.score_bits, c_bits, 0, target)
            + config.norm_mults * _dsp_of(config.sv_bits, config.recip_width, 0, target))


def swa_bram18(config) -> int:
    """BRAM18 count of an SWA config: K and V buffers deeper than 64 words (see
    :mod:`costmodel.swa_fit`'s module doc)."""
    depth = config.buffer_slots * config.chunks
    if depth <= 64:
        return 0
    per = math.ceil(config.lanes * config.qk_fmt.bits / 36) + math.ceil(config.lanes * config.v_fmt.bits / 36)
    return per * (2 if depth > 512 else 1)


@lru_cache(maxsize=1)
def load_swa_coefficients() -> dict | None:
    """The shipped SWA resource fit (``data/swa_coefficients.json``), or None when absent."""
    if not SWA_COEFFICIENTS.exists():
        return None
    return json.loads(SWA_COEFFICIENTS.read_text())


def swa_resources(config: Any, target: str) -> tuple[dict | None, str, dict]:
    """(``{lut, ff, dsp, bram18}`` or None, ``resource_source``, held-out error) for ``config``.

    None (and a ``resource_source`` saying why) where no calibrated SWA model exists for the
    target or for the config's kind (the fit covers the sliding-window kernel on xc7).
    """
    model = load_swa_coefficients()
    if model is None:
        return None, "not calibrated for swa (no SWA synthesis fit shipped); resources not estimated", {}
    fit_target = target
    if target == "xcup" and target not in model["targets"] and "xc7" in model["targets"]:
        fit_target = "xc7"  # same LUT6/CARRY fabric, as resources.model_for does for the engines
    if fit_target not in model["targets"]:
        return None, (f"not calibrated for swa on {target} (SWA fit covers {', '.join(model['targets'])}); "
                      f"resources not estimated"), {}
    if not (isinstance(config.qk_fmt, IntFormat) and isinstance(config.v_fmt, IntFormat)):
        # measured: e4m3/int8 16/16/16 synthesized 5594 LUT / 1681 FF / 25 DSP; the int fit says
        # 4167 / 2240 / 26 -- outside the fit's domain, so no figure is given
        return None, ("not calibrated for minifloat SWA formats (fit covers int Q/K/V only; an e4m3 check "
                      "synthesis missed by 25 % LUT, 33 % FF)"), {}
    if config.dense or not config.causal:
        kind = "the dense SWA baseline" if config.dense else "symmetric SWA windows"
        return None, f"not calibrated for {kind} (fit covers causal sliding-window configs only)", {}
    f = swa_features(config)
    out = {}
    for r in ("lut", "ff"):
        val = sum(c * f[name] for name, c in model["resources"][r]["coefficients"].items())
        out[r] = int(max(0, round(val)))
    out["dsp"] = swa_dsp(config, target)
    out["bram18"] = swa_bram18(config)
    err = {r: {"median": v["median_rel_err"], "p90": v["p90_rel_err"]}
           for r, v in model.get("validation", {}).items()}
    src = (f"Yosys-calibrated SWA model (LUT/FF fitted, DSP/BRAM18 counted; {', '.join(model['targets'])} fit on {model['n_calibration']} syntheses, "
           f"{model['date']}; held-out n={model['n_validation']})")
    if fit_target != target:
        src += f"; {target} reuses the {fit_target} fit (same LUT6/CARRY fabric, DSP rule of {target})"
    return out, src, err
