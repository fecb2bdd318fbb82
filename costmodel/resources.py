"""Resource model: per-primitive formulas composed per engine, coefficients fitted on Yosys data.

Primitives (bits and counts from :mod:`costmodel.features`; LUTs from fitted coefficients)
----------------------------------------------------------------------------------------
multiplier      LUTs of one exact multiplier for the format pair, operand-order free (the
                hardware is the same for (w, a) and (a, w)): the mean Yosys figure from
                ``data/primitives.csv`` where that pair was synthesized in either order, else
                the fitted formula (symmetric in w and a)
                ``c_int·A·B`` (int × int in LUTs) or ``c_sig·A·B + c_sh·P·S + c_neg·P + c_mf``
                (minifloat: significand multiplier A×B, alignment shifter P×S, negation P,
                exponent adder/decoders), A·B → 0 when the Yosys DSP rule maps it to a DSP;
adder tree      LUTs per adder bit, separately for adder levels that end in a pipeline register
                (``tree_reg``) and those that feed the next level or the accumulator
                combinationally (Yosys/ABC map the two differently: about 0.7 vs 1.4 LUT/bit);
                for int × int DSP multipliers separate coefficients without pipeline registers
                (Yosys chains the tree through the DSP48 cascade, P = A·B + PCIN) and with them,
                split by whether the first adder level is registered (a DSP48 PREG absorbs it);
                a multiplier fed by an N:M index mux gets its own coefficient (Yosys/ABC merge
                the mux into the multiplier logic differently);
multiply-accumulate merge
                int × int LUT multipliers (int2–int4 on xc7) with no register after them
                (pipeline 0): Yosys ``alumacc`` merges the multipliers and the adder tree into
                one ``$macc``, mapped as a full-adder compressor; LUTs per partial-product bit
                ``lanes · A · B`` on top of the multiplier and tree terms (``macc_pp_bits``);
accumulator     LUTs per accumulator bit (0 where the accumulator is a DSP48's P register);
index mux       ``lanes · abits · L(m)`` LUT6s (``mux_lut6``), ``L`` = LUT6s per bit of an m:1
                mux as synth_xilinx maps it (1, 1, 3, 8 for m = 2, 4, 8, 16, no MUXF7/F8;
                :func:`costmodel.features.mux_lut6_per_bit`, measured on
                standalone :class:`hw.sparse.IndexMux` syntheses in ``data/muxes.csv``), one fitted
                coefficient; where the mux feeds a merged ``$macc`` (LUT multipliers, pipeline
                0) a second coefficient on the same count (``mux_macc``: ABC folds it into the
                compressor at about twice the standalone cost; sparse only);
registers       FF = pipeline + accumulator + output register bits, minus what Yosys packs into
                DSP48 registers for int × int DSP multipliers (products → MREG, first adder
                level → cascade PREG; with no pipeline, the accumulator → P);
DSP             ``lanes · DSPs per multiplier`` by the Yosys inference rule (not fitted);
BRAM18          0: the engines hold no memories (weights and activations stream in).

Fit
---
Non-negative least squares (``scipy.optimize.nnls``) on relative error (each row divided by its
synthesized value), over the calibration split of ``data/calibration.csv``
(:func:`costmodel.calibrate.split`); multiplier-formula coefficients over ``data/primitives.csv``.
``python -m costmodel.resources xc7 ice40 ecp5`` refits and writes ``data/coefficients.json`` with
the data's sha256, the fitted rows' keys and the held-out (validation) errors.
The LUT terms were chosen by leave-one-out and 5-fold cross-validation over the 153 calibration
rows only (LUT median |error|, LOO: sparse 7.9 % with the previous terms → 2.5 %, dense 3.7 % →
3.5 %); the held-out rows were looked at once, to report.

Lattice targets (ice40, ecp5)
-----------------------------
Fitted on the bare-engine ``synth_ice40`` / ``synth_ecp5`` runs of the place-and-route sample
(``data/pnr.csv``, :mod:`costmodel.pnr`; 24 configs each): LUT4 by NNLS over
:data:`LATTICE_LUT_TERMS`, with leave-one-out errors (the sample is too small to hold rows out);
FF = the structural register count (no coefficient), DSP = SB_MAC16 (none: ``synth_ice40``
infers none by default) / MULT18X18D by the ``synth_ecp5`` rule, BRAM = 0. ``tests/costmodel/
test_pnr.py`` checks FF/DSP/BRAM against every stored Yosys run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from hw.engines import config_from_dict

from .calibrate import (CALIBRATION_CSV, DOE_HELDOUT_CSV, PRIMITIVES_CSV, SWA_CALIBRATION_CSV, heldout_keys,
                        is_validation, split)
from .features import config_row, frame_features, pair_props
from .pnr import PNR_CSV
from .swa import SWA_FF_TERMS, SWA_LUT_TERMS, swa_configs, swa_design, swa_features, swa_props

__all__ = ["COEFFICIENTS_JSON", "fit", "fit_swa", "predict_swa", "model_for", "load_coefficients", "predict_frame",
           "design_matrix", "heldout_report", "HELDOUT_GROUPS",
           "LUT_TERMS", "FF_TERMS", "ResourceModelError"]

COEFFICIENTS_JSON = Path(__file__).parent / "data" / "coefficients.json"

LUT_TERMS = ["const", "mult_lut_dense", "mult_lut_sparse", "tree_bits_reg", "tree_bits_comb",
             "tree_bits_intdsp_nopipe", "tree_bits_intdsp_l1comb", "tree_bits_intdsp_l1reg", "acc_bits",
             "mux_lut6", "mux_macc", "macc_pp_bits"]
FF_TERMS = ["const", "ff_struct", "dsp_absorbed"]
MULT_TERMS = ["int_ab", "mf_ab", "mf_shift", "mf_prod", "mf_const"]


class ResourceModelError(ValueError):
    """No coefficients for a target, or a damaged coefficients file; the message names the fix."""


# ---- multiplier primitive -------------------------------------------------------------------


def _mult_terms(props: dict) -> np.ndarray:
    lut_mul = props["mul_a"] * props["mul_b"] * (props["mult_dsp"] == 0)
    if props["mf"]:
        return np.array([0.0, lut_mul, props["prod_bits"] * props["shift_bits"], props["prod_bits"], 1.0])
    return np.array([lut_mul, 0.0, 0.0, 0.0, 0.0])


def _primitive_table(target: str) -> dict[tuple[str, str], float]:
    """Measured multiplier LUTs per format pair, operand-order free: ``hw.arith.multiplier(w, a)``
    and ``multiplier(a, w)`` are the same circuit up to the order of the ``$mul`` / ``$add``
    operands (:class:`hw.arith.IntMultiplier`: ``w * a``; :class:`hw.arith.MinifloatMultiplier`:
    decoders of both operands, ``wdec.mag * adec.mag``, ``wdec.shift + adec.shift``; the product
    width and alignment are symmetric), so both orders get the mean of every stored synthesis of
    either order (Yosys/ABC differ by a few LUTs between orders: ``data/primitives.csv``,
    :data:`costmodel.calibrate.ORDER_PAIRS`)."""
    p = _read_csv(PRIMITIVES_CSV)
    p = p[p["target"] == target]
    runs: dict[tuple[str, str], list[float]] = {}
    for w, a, l in zip(p["wfmt"], p["afmt"], p["lut"]):
        runs.setdefault(_pair_key(w, a), []).append(float(l))
    out = {}
    for (w, a), ls in runs.items():
        out[(w, a)] = out[(a, w)] = float(np.mean(ls))
    return out


def _pair_key(w: str, a: str) -> tuple[str, str]:
    """The operand-order-free key of a format pair (sorted names)."""
    return (w, a) if w <= a else (a, w)


def fit_multiplier(target: str = "xc7") -> dict:
    """Fit the multiplier LUT formula on ``primitives.csv`` (relative-error NNLS)."""
    p = _read_csv(PRIMITIVES_CSV)
    p = p[p["target"] == target]
    X = np.array([_mult_terms(pair_props(w, a, target)) for w, a in zip(p["wfmt"], p["afmt"])])
    y = p["lut"].to_numpy(dtype=float)
    coef = _nnls_rel(X, y, floor=4.0)
    pred = X @ coef
    rel = np.abs(pred - y) / np.maximum(y, 1.0)
    return {"terms": MULT_TERMS, "coef": coef.tolist(), "rows": int(len(y)),
            "median_rel_err": float(np.median(rel)) if len(y) else None}


def mult_lut(wfmt: str, afmt: str, target: str, mult_coef: dict | None) -> float:
    """LUTs of one multiplier: measured (primitives.csv, either operand order) when available,
    else the formula; the same for (wfmt, afmt) and (afmt, wfmt)."""
    table = _cached_primitive_table(target)
    if (wfmt, afmt) in table:
        return table[(wfmt, afmt)]
    if mult_coef is None:
        return 0.0
    return float(_mult_terms(pair_props(wfmt, afmt, target)) @ np.asarray(mult_coef["coef"]))


@lru_cache(maxsize=None)
def _cached_primitive_table(target: str) -> dict:
    try:
        return _primitive_table(target)
    except FileNotFoundError:
        return {}


# ---- engine design matrices -----------------------------------------------------------------


def design_matrix(df: pd.DataFrame, target: str, mult_coef: dict | None,
                  features: tuple[pd.DataFrame, list] | None = None) -> dict[str, np.ndarray]:
    """LUT and FF design matrices (columns :data:`LUT_TERMS`, :data:`FF_TERMS`) and the DSP
    count of every config row; ``features`` = ``frame_features(..., return_pairs=True)``."""
    f, pairs = frame_features(df, target, return_pairs=True) if features is None else features
    per_pair = np.array([mult_lut(w, a, target, mult_coef) for w, a in pairs], dtype=float)
    ml = per_pair[f["pair_id"].to_numpy()]
    lanes = f["lanes"].to_numpy(dtype=float)
    dspm = f["mult_dsp"].to_numpy() > 0
    # DSP48s take whole int × int products (and a cascade absorbs the first adder level); a
    # minifloat's significand product in a DSP still goes through the LUT aligner and tree
    int_dsp = dspm & (f["mf"].to_numpy() == 0)
    sparse = f["mux_m"].to_numpy() > 0
    tree = f["tree_bits"].to_numpy(dtype=float)
    pipe = f["pipeline"].to_numpy()
    acc = f["acc_bits"].to_numpy()
    # with no pipeline an int × int DSP engine accumulates in the last DSP48 (P = P + …)
    acc_in_dsp = int_dsp & (pipe == 0) & (acc <= 48)
    tree_reg = f["tree_reg"].to_numpy(dtype=float)
    l1_reg = f["l1_reg"].to_numpy() > 0
    int_dsp_pipe = int_dsp & (pipe > 0)
    # int × int LUT multipliers with no register after them (pipeline 0): Yosys alumacc merges
    # the multipliers and the adder tree into one $macc, mapped as a full-adder compressor of
    # the lanes · A · B partial-product bits (extra LUTs on top of the separate-multiplier cost)
    # (sparse: the index mux then feeds the partial products; ABC maps it into the compressor's
    # LUTs at about twice its standalone cost, hence mux_macc)
    int_lut_macc = (~dspm) & (f["mf"].to_numpy() == 0) & (pipe == 0)
    ab_bits = lanes * f["mul_a"].to_numpy(dtype=float) * f["mul_b"].to_numpy(dtype=float)
    mux6 = f["mux_lut6"].to_numpy(dtype=float)
    cols = {
        "const": np.ones(len(f)), "mult_lut_dense": lanes * ml * ~sparse, "mult_lut_sparse": lanes * ml * sparse,
        "tree_bits_reg": tree_reg * ~int_dsp, "tree_bits_comb": (tree - tree_reg) * ~int_dsp,
        "tree_bits_intdsp_nopipe": tree * (int_dsp & (pipe == 0)),
        "tree_bits_intdsp_l1comb": tree * (int_dsp_pipe & ~l1_reg), "tree_bits_intdsp_l1reg": tree * (int_dsp_pipe & l1_reg),
        "acc_bits": acc * ~acc_in_dsp, "mux_lut6": mux6, "mux_macc": mux6 * int_lut_macc,
        "macc_pp_bits": ab_bits * int_lut_macc,
    }
    lut = np.column_stack([cols[t] for t in LUT_TERMS])
    # Yosys packs into DSP48 registers, for int × int DSP multipliers: the registers after the
    # multipliers (MREG) and after the first adder level (PREG of the cascade), and with no
    # pipeline the accumulator (the last DSP's P, when it fits 48 bits)
    absorbed = np.where(int_dsp, f["reg_l01"].to_numpy() + np.where((pipe == 0) & (acc <= 48), acc, 0), 0)
    ff_struct = f["reg_bits"].to_numpy(dtype=float) - absorbed
    ff = np.column_stack([np.ones(len(f)), ff_struct, absorbed.astype(float)])
    dsp = lanes * f["mult_dsp"].to_numpy()
    return {"lut": lut, "ff": ff, "dsp": dsp, "features": f, "lut_columns": cols}


def _nnls_rel(X: np.ndarray, y: np.ndarray, floor: float = 10.0) -> np.ndarray:
    """The one fitter: non-negative least squares on relative error (rows scaled by
    ``1 / max(y, floor)``)."""
    from scipy.optimize import nnls  # heavy: scipy (comes with scikit-learn; only the fit needs it)

    s = 1.0 / np.maximum(y, floor)
    coef, _ = nnls(X * s[:, None], y * s)
    return coef


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _errors(pred: np.ndarray, y: np.ndarray) -> dict:
    rel = np.abs(pred - y) / np.maximum(np.abs(y), 1.0)
    return {"n": int(len(y)), "median_rel_err": float(np.median(rel)) if len(y) else None,
            "p90_rel_err": float(np.percentile(rel, 90)) if len(y) else None,
            "median_abs_err": float(np.median(np.abs(pred - y))) if len(y) else None}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: how every fit is made and how its rows are held out (one rule for every engine and target)
METHOD = "scipy.optimize.nnls on rows scaled by 1/max(y, 10) (relative error)"
SPLIT_RULE = "validation iff int(key[:8], 16) % 5 == 0 (key = sha1 of [config, target]; costmodel.calibrate.split)"
#: the command that rewrites data/coefficients.json (every fit in it)
FIT_COMMAND = "python -m costmodel.resources xc7 ice40 ecp5"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(engines: list[str], target: str, kind: str, resources: dict, counted: dict, files: list[Path],
            keys: dict, split_rule: str, yosys: list[str], validation: dict, **extra) -> dict:
    """One fit in the one schema of ``coefficients.json``: coefficients, what is counted instead
    of fitted, the data files and their sha256, the fitted and held-out keys, the command that
    reproduces it, the Yosys version(s) of the data, the date, and held-out errors per engine."""
    return {"engines": engines, "target": target, "kind": kind, "resources": resources, "counted": counted,
            "data": {f.name: _sha256(f) for f in files}, "keys": keys, "split_rule": split_rule,
            "method": METHOD, "command": FIT_COMMAND, "yosys": yosys, "date": _now(),
            "validation": validation, **extra}


def _engine_errors(pred: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Relative errors per engine and resource of ``pred`` against the synthesized ``rows``."""
    out = {}
    for eng in sorted(rows["engine"].unique()):
        sel = (rows["engine"] == eng).to_numpy()
        out[eng] = {r: _errors(pred[r].to_numpy(dtype=float)[sel], rows[r].to_numpy(dtype=float)[sel])
                    for r in ("lut", "ff", "dsp", "bram18")}
    return out


def fit(target: str = "xc7", calibration_csv: Path = CALIBRATION_CSV) -> dict:
    """Fit the dot/sparse (MAC) resource model of ``target`` from the stored CSVs; returns its
    record (:func:`_record`). Lattice targets: :func:`fit_lattice`."""
    if target in LATTICE_TARGETS:
        return fit_lattice(target)
    data = _read_csv(calibration_csv)
    data = data[data["target"] == target]
    if data.empty:
        raise ResourceModelError(f"no calibration rows for target {target!r} in {calibration_csv}; run "
                                 f"python -m costmodel.calibrate engines --grid dense --target {target}")
    # the held-out DOE rows (data/doe_heldout.csv) are never fitted on, whichever file holds them
    data = data[~data["key"].isin(heldout_keys())]
    mult = fit_multiplier(target)
    cal, val = split(data)
    dm_cal = design_matrix(cal, target, mult)
    resources = {res: {"terms": terms, "coef": _nnls_rel(dm_cal[res], cal[res].to_numpy(dtype=float)).tolist()}
                 for res, terms in (("lut", LUT_TERMS), ("ff", FF_TERMS))}
    model = {"multiplier": mult, "resources": resources}
    return _record(
        ["dot", "sparse"], target, "xilinx", resources,
        {"dsp": "Yosys synth_xilinx DSP rule per multiplier (costmodel.features.mult_dsp)",
         "bram18": "no memories in the dot/sparse engines"},
        [calibration_csv, PRIMITIVES_CSV], {"calibration": sorted(cal["key"]), "validation": sorted(val["key"])},
        SPLIT_RULE, sorted(set(data["yosys"])), _engine_errors(predict_frame(val, target, model), val),
        multiplier=mult, calibration_fit=_engine_errors(predict_frame(cal, target, model), cal),
        never_fitted=f"every key of data/{DOE_HELDOUT_CSV.name} (the held-out random design of experiments, "
                     "costmodel.calibrate.doe_grid; errors: costmodel.resources.heldout_report)")


def swa_rows(target: str, csv: Path = SWA_CALIBRATION_CSV) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored SWA syntheses of ``target`` and their :func:`costmodel.swa.swa_features`."""
    d = _read_csv(csv)
    d = d[d["target"] == target].reset_index(drop=True)
    cfgs = pd.DataFrame([json.loads(c) for c in d["config"]])
    configs, gid = swa_configs(cfgs)
    return d, swa_features(swa_props(configs, target)).iloc[gid].reset_index(drop=True)


def predict_swa(features: pd.DataFrame, model: dict) -> pd.DataFrame:
    """LUT, FF (fitted), DSP, BRAM18 (counted) of :func:`costmodel.swa.swa_features` rows."""
    dm = swa_design(features)
    return pd.DataFrame({
        "lut": np.rint(np.maximum(dm["lut"] @ np.asarray(model["resources"]["lut"]["coef"]), 0)).astype(np.int64),
        "ff": np.rint(np.maximum(dm["ff"] @ np.asarray(model["resources"]["ff"]["coef"]), 0)).astype(np.int64),
        "dsp": dm["dsp"].astype(np.int64), "bram18": dm["bram18"].astype(np.int64)}, index=features.index)


def fit_swa(target: str = "xc7", csv: Path = SWA_CALIBRATION_CSV) -> dict:
    """Fit the SWA resource model of ``target`` on ``data/swa_calibration.csv`` (causal int
    kernels): LUT and FF by the same relative NNLS and hold-out rule as :func:`fit`; DSP and
    BRAM18 counted by the shared rules."""
    d, f = swa_rows(target, csv)
    if d.empty:
        raise ResourceModelError(f"no SWA syntheses for target {target!r} in {csv.name}; run "
                                 f"python -m costmodel.calibrate engines --grid swa --target {target}")
    val = d["key"].map(is_validation).to_numpy(dtype=bool)
    dm = swa_design(f[~val])
    resources = {res: {"terms": terms, "coef": _nnls_rel(dm[res], d.loc[~val, res].to_numpy(dtype=float)).tolist()}
                 for res, terms in (("lut", SWA_LUT_TERMS), ("ff", SWA_FF_TERMS))}
    pred = predict_swa(f, {"resources": resources})
    d = d.assign(engine="swa")
    return _record(
        ["swa"], target, "swa", resources,
        {"dsp": "Yosys synth_xilinx DSP rule per multiplier (costmodel.features.mult_dsp)",
         "bram18": "Yosys memory_libmap cost rule per memory (costmodel.features.buffer_cost)"},
        [csv], {"calibration": sorted(d.loc[~val, "key"]), "validation": sorted(d.loc[val, "key"])},
        SPLIT_RULE, sorted(set(d["yosys"])), _engine_errors(pred[val], d[val]),
        domain="causal sliding-window kernels with int Q/K/V formats",
        calibration_fit=_engine_errors(pred[~val], d[~val]))


#: LUT4 terms of the Lattice (ice40 / ecp5) model, per config: LUT multipliers' operand-bit
#: products (lanes · A · B, 0 where synth_ecp5 maps the multiplier to a MULT18X18D), the minifloat
#: aligner (lanes · P · S) and negation (lanes · P), adder-tree bits of registered and of
#: combinational levels, accumulator bits and index-mux bits
LATTICE_LUT_TERMS = ["const", "lut_mult_ab", "mf_shift", "mf_prod", "tree_bits_reg", "tree_bits_comb",
                     "acc_bits", "mux_bits"]
LATTICE_TARGETS = ("ice40", "ecp5")


def lattice_design_matrix(df: pd.DataFrame, target: str,
                          features: tuple[pd.DataFrame, list] | None = None) -> dict[str, np.ndarray]:
    """LUT4 design matrix (:data:`LATTICE_LUT_TERMS`), structural FF bits and the DSP count
    (``synth_ice40``: none; ``synth_ecp5``: MULT18X18D by :func:`costmodel.features.pair_props`).
    The multiplier terms are fitted per target (no shared multiplier model)."""
    f, _ = frame_features(df, target, return_pairs=True) if features is None else features
    lanes = f["lanes"].to_numpy(dtype=float)
    lut_mul = (f["mult_dsp"].to_numpy() == 0)
    mf = f["mf"].to_numpy() > 0
    pb = f["prod_bits"].to_numpy(dtype=float)
    tree = f["tree_bits"].to_numpy(dtype=float)
    tree_reg = f["tree_reg"].to_numpy(dtype=float)
    lut = np.column_stack([np.ones(len(f)), lanes * f["mul_a"].to_numpy() * f["mul_b"].to_numpy() * lut_mul,
                           lanes * pb * f["shift_bits"].to_numpy() * mf, lanes * pb * mf, tree_reg, tree - tree_reg,
                           f["acc_bits"].to_numpy(dtype=float), f["mux_bits"].to_numpy(dtype=float)])
    return {"lut": lut, "ff": f["reg_bits"].to_numpy(dtype=float)[:, None],
            "dsp": lanes * f["mult_dsp"].to_numpy(), "features": f}


def _pnr_rows(target: str) -> pd.DataFrame:
    d = _read_csv(PNR_CSV)
    d = d[d["target"] == target].reset_index(drop=True)
    if d.empty:
        raise ResourceModelError(f"no {target} syntheses in {PNR_CSV.name}; run python -m costmodel.pnr --target {target}")
    cfg = pd.concat([config_row(config_from_dict(json.loads(c))) for c in d["config"]], ignore_index=True)
    for c in ("key", "lut", "ff", "dsp", "bram"):
        cfg[c] = d[c].to_numpy()
    return cfg.rename(columns={"bram": "bram18"})


def fit_lattice(target: str) -> dict:
    """Fit the LUT4 model of ``target`` (ice40 / ecp5) on the bare-engine Yosys syntheses of the
    place-and-route sample (``data/pnr.csv``); FF is the structural register count (no fitted
    coefficient), DSP the synth rule. Errors are leave-one-out over those syntheses."""
    rows = _pnr_rows(target)
    mult = None
    dm = lattice_design_matrix(rows, target)
    y = rows["lut"].to_numpy(dtype=float)
    coef = _nnls_rel(dm["lut"], y)
    loo = np.empty(len(y))
    for i in range(len(y)):
        m = np.ones(len(y), bool)
        m[i] = False
        loo[i] = dm["lut"][i] @ _nnls_rel(dm["lut"][m], y[m])
    model = {"kind": "lattice", "multiplier": mult,
             "resources": {"lut": {"terms": LATTICE_LUT_TERMS, "coef": coef.tolist()},
                           "ff": {"terms": ["reg_bits"], "coef": [1.0]}}}
    pred = predict_frame(rows, target, model)
    pred["lut"] = np.rint(np.maximum(loo, 0)).astype(np.int64)  # leave-one-out LUT predictions
    return _record(
        ["dot", "sparse"], target, "lattice", model["resources"],
        {"ff": "structural register count", "dsp": f"synth_{target} rule (costmodel.features.mult_dsp)",
         "bram18": "no memories in the dot/sparse engines"},
        [PNR_CSV], {"calibration": sorted(rows["key"]), "validation": []},
        "leave-one-out over the place-and-route sample's syntheses (too few to hold rows out)",
        sorted(set(_read_csv(PNR_CSV)["yosys"])), _engine_errors(pred, rows), multiplier=None)


def write_coefficients(targets: list[str], path: Path = COEFFICIENTS_JSON) -> dict:
    """Refit ``targets`` (every engine with stored syntheses for each) and write ``coefficients.json``:
    ``{"schema": 2, "fits": {target: {"mac": record, "swa": record}}}`` (:func:`_record`)."""
    fits: dict = {}
    for t in targets:
        fits[t] = {"mac": fit(t)}
        if (_read_csv(SWA_CALIBRATION_CSV)["target"] == t).any():
            fits[t]["swa"] = fit_swa(t)
    rec = {"schema": 2, "fits": fits}
    path.write_text(json.dumps(rec, indent=1) + "\n")
    load_coefficients.cache_clear()
    return rec


@lru_cache(maxsize=None)
def load_coefficients(path: str = str(COEFFICIENTS_JSON)) -> dict:
    p = Path(path)
    if not p.exists():
        raise ResourceModelError(f"{p} is missing; run python -m costmodel.resources xc7 to fit it")
    return json.loads(p.read_text())


def model_for(target: str, family: str = "mac") -> tuple[dict | None, str]:
    """The fit of ``family`` (``"mac"``: dot/sparse, ``"swa"``) for ``target`` and the target it
    was fitted on (``xcup`` falls back to ``xc7``: same LUT6/CARRY fabric; DSP widths still follow
    ``target``'s rule). ``(None, target)`` for an SWA model never fitted on that target."""
    fits = load_coefficients()["fits"]
    for t in (target, "xc7") if target == "xcup" else (target,):
        if family in fits.get(t, {}):
            return fits[t][family], t
    if family != "mac":
        return None, target
    raise ResourceModelError(f"no resource calibration for target {target!r} (have {sorted(fits)}); "
                             f"run python -m costmodel.calibrate engines --grid dense --target {target}, then "
                             f"python -m costmodel.resources xc7 {target}")


def predict_frame(df: pd.DataFrame, target: str = "xc7", model: dict | None = None,
                  features: tuple[pd.DataFrame, list] | None = None) -> pd.DataFrame:
    """LUT, FF, DSP, BRAM18 of every config row (vectorized).

    Returns
    -------
    DataFrame with ``lut ff dsp bram18`` (float LUT/FF rounded to whole cells; ints), same index.
    """
    if model is None:
        model, _ = model_for(target)
    if model.get("kind") == "lattice":
        dm = lattice_design_matrix(df, target, features)
    else:
        dm = design_matrix(df, target, model["multiplier"], features)
    lut = dm["lut"] @ np.asarray(model["resources"]["lut"]["coef"])
    ff = dm["ff"] @ np.asarray(model["resources"]["ff"]["coef"])
    return pd.DataFrame({
        "lut": np.rint(np.maximum(lut, 0)).astype(np.int64),
        "ff": np.rint(np.maximum(ff, 0)).astype(np.int64),
        "dsp": dm["dsp"].astype(np.int64),
        "bram18": np.zeros(len(df), dtype=np.int64),
    }, index=df.index)


#: the groups of the held-out DOE report (a row may be in several: "non-power-of-two lanes" cuts
#: across the others)
HELDOUT_GROUPS = ["dense same-format", "dense mixed", "sparse", "sparse+blocks", "non-power-of-two lanes", "all"]


def heldout_groups(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`HELDOUT_GROUPS` over config ``rows``."""
    eng = rows["engine"].to_numpy()
    same = (rows["wfmt"].astype(str) == rows["afmt"].astype(str)).to_numpy()
    block = rows["block"] if "block" in rows else pd.Series([None] * len(rows), index=rows.index)
    has_block = block.map(lambda b: b is not None and b == b and str(b) != "").to_numpy(dtype=bool)
    lanes = rows["lanes"].to_numpy(dtype=int)
    return {"dense same-format": (eng == "dot") & same, "dense mixed": (eng == "dot") & ~same,
            "sparse": (eng == "sparse") & ~has_block, "sparse+blocks": (eng == "sparse") & has_block,
            "non-power-of-two lanes": (lanes & (lanes - 1)) != 0, "all": np.ones(len(rows), bool)}


def heldout_rows(target: str = "xc7", path: Path = DOE_HELDOUT_CSV) -> pd.DataFrame:
    """The stored held-out DOE syntheses of ``target`` (empty when none)."""
    if not path.exists():
        return pd.DataFrame(columns=["key", "engine", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m",
                                     "block", "lut", "ff", "dsp", "bram18"])
    d = _read_csv(path)
    d = d[d["target"] == target].reset_index(drop=True)
    cfg = pd.DataFrame([json.loads(c) for c in d["config"]])
    for c in ("n", "m", "block"):
        if c not in cfg:
            cfg[c] = None
    for c in ("key", "lut", "ff", "dsp", "bram18", "yosys", "date"):
        cfg[c] = d[c].to_numpy()
    return cfg


def heldout_report(target: str = "xc7", model: dict | None = None, path: Path = DOE_HELDOUT_CSV) -> pd.DataFrame:
    """Error of the resource model (the shipped fit of ``target`` unless ``model``) on the held-out
    DOE rows (``data/doe_heldout.csv``, never fitted on), per group of :data:`HELDOUT_GROUPS`:
    rows ``n``, LUT median / p90 relative error, signed LUT median bias, and the fraction of rows
    where FF, DSP and BRAM18 are exact. Stored rows only; no synthesis."""
    rows = heldout_rows(target, path)
    cols = ["group", "n", "lut_median", "lut_p90", "lut_bias", "ff_exact", "dsp_exact", "bram18_exact"]
    if rows.empty:
        return pd.DataFrame([{"group": g, "n": 0} for g in HELDOUT_GROUPS], columns=cols)
    pred = predict_frame(rows, target, model)
    y = {r: rows[r].to_numpy(dtype=float) for r in ("lut", "ff", "dsp", "bram18")}
    rel = (pred["lut"].to_numpy(dtype=float) - y["lut"]) / np.maximum(np.abs(y["lut"]), 1.0)
    out = []
    for g, m in heldout_groups(rows).items():
        rec = {"group": g, "n": int(m.sum())}
        if m.any():
            rec.update(lut_median=float(np.median(np.abs(rel[m]))), lut_p90=float(np.percentile(np.abs(rel[m]), 90)),
                       lut_bias=float(np.median(rel[m])),
                       **{f"{r}_exact": float(np.mean(pred[r].to_numpy()[m] == y[r][m])) for r in ("ff", "dsp", "bram18")})
        out.append(rec)
    return pd.DataFrame(out, columns=cols)


def main(argv: list[str] | None = None) -> int:
    """``python -m costmodel.resources [TARGET …]``: refit every model from the stored syntheses
    and write ``data/coefficients.json``."""
    ap = argparse.ArgumentParser(prog="python -m costmodel.resources", description=(
        "Refit the resource models (MAC engines, SWA, Lattice LUT4) from the stored Yosys syntheses in "
        "costmodel/data and write costmodel/data/coefficients.json."))
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help="synthesis targets to fit: xc7, ice40, ecp5 (default xc7; all three = the shipped file)")
    targets = ap.parse_args(argv).targets or ["xc7"]
    bad = sorted(set(targets) - {"xc7", "ice40", "ecp5"})
    if bad:
        ap.error(f"no calibration data for target(s) {', '.join(bad)}: choose from xc7, ice40, ecp5")
    rec = write_coefficients(targets)
    for t, fits in rec["fits"].items():
        for family, r in fits.items():
            k = r["keys"]
            print(f"[{t} {family}] fitted on {len(k['calibration'])} syntheses, held out {len(k['validation'])} "
                  f"({r['split_rule']})")
            for eng, errs in r["validation"].items():
                print(f"  {eng}: " + ", ".join(f"{k} median {v['median_rel_err']:.1%} p90 {v['p90_rel_err']:.1%}"
                                              for k, v in errs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
