"""One estimator per engine, one registry: what :func:`costmodel.estimate_frame` calls.

An estimator knows one engine family and answers, vectorized over the rows of that engine in a
frame: its configs and workload (:meth:`~Estimator.configs`), structural features
(:meth:`~Estimator.features`), resources (:meth:`~Estimator.resources`, fitted or counted, with
their source), cycles (:meth:`~Estimator.cycles`, always the engine's own closed form in ``hw``),
energy action counts and their dynamic energy (:meth:`~Estimator.actions`,
:meth:`~Estimator.dynamic_pj`) and the critical path as fmax (:meth:`~Estimator.fmax_mhz`). The
estimators share the rules: DSPs :func:`costmodel.features.mult_dsp`, memories
:func:`costmodel.features.buffer_cost`, multiply energy :func:`costmodel.energy.mult_pj`, fits
:mod:`costmodel.resources` (one fitter, one hold-out rule, one JSON schema). ``hw`` never imports
costmodel; the registry maps engine names to estimators here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from hw import dot as hw_dot
from hw import sparse as hw_sparse
from hw import swa as hw_swa
from hw.arith import ConfigError
from hw.rtl import LUTRAM_LUT_SITES, lut_sites_rule

from .energy import action_counts_array, mac_dynamic_pj
from .features import frame_features, normalize_frame
from .latency import fmax_array, fmax_model_frame, fmax_source, mux16_form
from .packing import KINDS as ENGINE_KINDS, extra_cells, load_fit as load_logic_cell_fit
from .store import SWABounds
from .resources import (FIXED_TERMS, fit_origin, lane_luts, load_coefficients, model_for,
                        mult_curve_state, mux_bound_lanes, predict_frame, predict_swa)
from .swa import swa_actions, swa_configs, swa_dynamic_pj, swa_features, swa_props

__all__ = ["Workload", "Estimator", "MacEstimator", "SWAEstimator", "ESTIMATORS", "estimator",
           "ENERGY_SOURCE", "SWA_FMAX_SOURCE", "SWA_ENERGY_SOURCE", "ERROR_COLUMNS", "NO_ERROR"]

ENERGY_SOURCE = ("dynamic: ASIC action energies (Horowitz ISSCC'14 45 nm; Accelergy Aladdin 40 nm) × action "
                 "counts; static: device static power × latency")
SWA_FMAX_SOURCE = ("upper bound: analytic logic-depth model of the QKᵀ unit only (multipliers + combinational "
                   "adder tree + score register, pipeline 0); softmax/SV/divider paths not modelled, no P&R")
SWA_ENERGY_SOURCE = ("dynamic: SWA action counts (QKᵀ and SV MACs, exp-table reads, buffer reads/writes, "
                     "normalizer) × ASIC per-action energies (costmodel.energy.ERT: Horowitz ISSCC'14 45 nm, "
                     "Accelergy Aladdin 40 nm); static: device static power × latency")
RESOURCE_COLUMNS = ["lut", "ff", "dsp", "bram18"]
#: the compact held-out error columns of every cost frame (relative; NaN where not measured for
#: this part or no resource estimate); the full ``{resource: {median, p90, n}}`` is ``Cost.error``
ERROR_COLUMNS = ["lut_err_median", "lut_err_p90", "ff_err_median", "ff_err_p90"]
#: ``error_source`` of a row without a resource estimate
NO_ERROR = "no resource estimate, so no error"


@dataclass(frozen=True)
class Workload:
    """Workload overrides for every row (None: the row's own column, else the default).

    k, vectors, block_density : dot/sparse (elements per dot product, default ``k_max``; outputs,
        default 1; expected fraction of live weight blocks, default 1).
    seq_len : SWA sequence length, tokens (no default).
    """

    k: int | None = None
    vectors: int | None = None
    block_density: float | None = None
    seq_len: int | None = None


def _column(df: pd.DataFrame, name: str, override, default) -> np.ndarray:
    """``override`` for every row, else the column ``name``, else ``default`` (None: required)."""
    if override is not None:
        return np.full(len(df), override)
    if name in df.columns and df[name].notna().all():
        return pd.to_numeric(df[name]).to_numpy()
    if default is None:
        raise ConfigError(f"column {name!r} missing (or empty in some rows); add it or pass {name}=")
    return np.full(len(df), default)


def _validation(fit: dict | None) -> dict:
    """Per-engine errors of a stored fit: on its held-out rows (``validation``), else its
    cross-validation errors (``cv``) where no held-out rows of that target are stored."""
    fit = fit or {}
    return fit.get("validation") or fit.get("cv") or {}


def _errors(fit: dict | None, engine: str, measured: bool = True) -> dict:
    """``{resource: {"median", "p90", "n"}}`` held-out errors of ``engine`` in a stored fit;
    ``measured=False`` (the fit is reused for another target): the same keys, values None."""
    errs = _validation(fit).get(engine, {})
    return {r: {"median": v["median_rel_err"] if measured else None, "p90": v["p90_rel_err"] if measured else None,
                "n": v.get("n") if measured else 0} for r, v in errs.items()}


def _error_source(fit: dict | None, engine: str, fitted: str, target: str) -> str:
    """Where the error of ``engine``'s resources on ``target`` comes from: the fit's own held-out
    (or leave-one-out) rows, or — for a fit reused from another target — that it was not measured."""
    if fit is None:
        return NO_ERROR
    errs = _validation(fit).get(engine, {})
    loo = "leave-one-out" in str(fit.get("split_rule", ""))
    if not fit.get("validation") and fit.get("cv"):  # no held-out rows for this target yet
        n = errs.get("lut", {}).get("n")
        return (f"5-fold cross-validation error of the {fitted} {engine} fit over {n} {target} calibration "
                f"syntheses (no held-out {target} draw stored yet; {fit.get('date', '')[:10]})")
    if fitted != target and fit.get("measured_on") == target:
        n = errs.get("lut", {}).get("n")
        return (f"held-out error of the {fitted} {engine} fit reused for {target}, on {n} {target} syntheses "
                f"never fitted on ({fit.get('date', '')[:10]})")
    if fitted != target:
        on = ", ".join(f"{r.upper()} median {v['median_rel_err']:.1%} p90 {v['p90_rel_err']:.1%}"
                       for r, v in errs.items() if r in ("lut", "ff"))
        return (f"{fitted} fit reused for {target}: error not measured on {target}"
                + (f" (on {fitted} itself: {on}; not this part's)" if on else ""))
    n = errs.get("lut", {}).get("n")
    kind = "leave-one-out" if loo else "held-out"
    what = f"over {n} {target} syntheses" if loo else f"on {n} {target} syntheses never fitted on"
    return f"{kind} error of the {fitted} {engine} fit {what} ({fit.get('date', '')[:10]})"


def label_column(labels: list[str], codes: np.ndarray | int, rows: int) -> pd.Categorical:
    """A label column: ``labels[codes]`` for ``rows`` rows, as a categorical (one string per fit
    or target, broadcast; no per-row Python objects). Duplicate labels are merged."""
    uniq = list(dict.fromkeys(labels))
    remap = np.array([uniq.index(x) for x in labels], dtype=np.int8)
    return pd.Categorical.from_codes(remap[np.broadcast_to(np.asarray(codes, dtype=np.int64), (rows,))], uniq)


def _error_columns(err: dict, ok: np.ndarray | None, rows: int) -> dict[str, np.ndarray]:
    """:data:`ERROR_COLUMNS` of ``rows`` rows sharing one error dict (NaN where ``ok`` is False)."""
    out = {}
    for col in ERROR_COLUMNS:
        r, stat = col.split("_err_")
        v = err.get(r, {}).get(stat)
        a = np.full(rows, np.nan if v is None else float(v))
        out[col] = a if ok is None else np.where(ok, a, np.nan)
    return out


def _lut_sites_note(target: str, memory: bool) -> str:
    """The label's words for a family whose LUT count holds more than its LUT cells (carry cells'
    LUTs, distributed RAM where the engine has ``memory``; "" elsewhere; :func:`hw.rtl.lut_sites`)."""
    rule = lut_sites_rule(target, memory)
    return f"; LUT = {rule} (the part's LUT sites)" if rule else ""


def _add_packed_cells(out: pd.DataFrame, feats: pd.DataFrame, cells: dict, engine: str, err: dict,
                      esrc: str) -> tuple[dict, str]:
    """``out``'s LUT (in place) as the cells nextpnr fills on a Lattice part: the LUT model + the
    cells packing adds (:func:`costmodel.packing.extra_cells` under the stored fit ``cells``), its
    label said; returns the error dict and error source with the cells' held-out LUT error."""
    lut = out["lut"].to_numpy(dtype=np.int64)
    out["lut"] = lut + extra_cells(feats, cells, lut).astype(np.int64)
    out["resource_source"] = out["resource_source"].cat.rename_categories(
        lambda c: f"{c}; LUT = {cells['cells']}: the model's LUT + the cells packing adds ({cells['chosen']}, "
                  f"fitted on {cells['calibration_rows']} {ENGINE_KINDS[cells.get('engines', 'mac')].words} packed by nextpnr "
                  f"--pack-only)")
    held = cells.get("heldout_engine", {}).get(engine)
    if not held:
        return err, esrc
    return ({**err, "lut": {"median": held["median"], "p90": held["p90"], "n": held["n"]}},
            f"{esrc}; LUT: held-out error of those cells (LUT model + cell fit) on {held['n']} packed "
            + (f"{engine} engines" if engine != "swa" else "SWA kernels"))


class Estimator(Protocol):
    """What :func:`costmodel.estimate_frame` needs of one engine family (module docstring)."""

    engine: str
    energy_source: str

    def configs(self, df: pd.DataFrame, wl: Workload) -> pd.DataFrame: ...
    def features(self, cfg: pd.DataFrame, target: str) -> pd.DataFrame: ...
    def resources(self, cfg: pd.DataFrame, feats: pd.DataFrame, target: str) -> pd.DataFrame:
        """``lut ff dsp bram18``, ``resource_source``, ``error`` (dict per row), ``error_source``
        and :data:`ERROR_COLUMNS`; labels are per fit and target, broadcast to the rows."""
    def cycles(self, cfg: pd.DataFrame) -> np.ndarray: ...
    def actions(self, cfg: pd.DataFrame, feats: pd.DataFrame, cycles: np.ndarray) -> pd.DataFrame: ...
    def dynamic_pj(self, actions: pd.DataFrame, feats: pd.DataFrame) -> np.ndarray: ...
    def fmax_mhz(self, feats: pd.DataFrame, target: str) -> tuple[np.ndarray, str]: ...


class MacEstimator:
    """The dot-product engines (``hw.dot`` dense, ``hw.sparse`` N:M): multipliers, an adder tree
    with pipeline registers, an accumulator; resources fitted per target
    (:func:`costmodel.resources.fit`), fmax by the logic-depth model / nextpnr fit."""

    energy_source = ENERGY_SOURCE

    def __init__(self, engine: str):
        self.engine = engine

    def configs(self, df: pd.DataFrame, wl: Workload) -> pd.DataFrame:
        """Normalized configs plus the workload columns ``k vectors block_density``."""
        cfg = normalize_frame(df)
        cfg["k"] = _column(df, "k", wl.k, 0).astype(np.int64)
        cfg["k"] = np.where(cfg["k"] == 0, cfg["k_max"], cfg["k"])
        cfg["vectors"] = _column(df, "vectors", wl.vectors, 1).astype(np.int64)
        cfg["block_density"] = _column(df, "block_density", wl.block_density, 1.0).astype(float)
        if (cfg["k"] > cfg["k_max"]).any() or (cfg["k"] < 1).any():
            raise ConfigError("workload K must lie in 1..k_max for every row; raise k_max or split the reduction")
        if (cfg["vectors"] < 1).any():
            raise ConfigError("vectors must be an integer >= 1 in every row")
        if ((cfg["block_density"] < 0) | (cfg["block_density"] > 1)).any():
            raise ConfigError("block_density must lie in [0, 1]")
        return cfg

    def features(self, cfg: pd.DataFrame, target: str) -> pd.DataFrame:
        return frame_features(cfg, target, normalized=True)

    def resources(self, cfg: pd.DataFrame, feats: pd.DataFrame, target: str) -> pd.DataFrame:
        model, fitted = model_for(target)
        first = np.unique(feats["pair_id"].to_numpy(), return_index=True)[1]  # pair_id order
        pairs = list(zip(cfg["wfmt"].to_numpy()[first], cfg["afmt"].to_numpy()[first]))
        out = predict_frame(cfg, target, model, features=(feats, pairs))
        date = model["date"]
        if model["kind"] == "lattice":
            src = (f"Yosys-calibrated {target} model: LUT fitted on {len(model['keys']['calibration'])} "
                   f"synth_{target} runs (place-and-route sample + random calibration draw, {date[:10]}; "
                   f"{model.get('lut_terms_chosen', 'Lattice LUT4 terms')}, chosen by 5-fold CV), FF counted, "
                   f"DSP by the synth_{target} rule" + _lut_sites_note(target, memory=False))
        else:
            joint = model.get("fitted_with", [fitted])
            src = (f"Yosys-calibrated model ({fitted} fit, {date[:10]}"
                   + (f"; fabric coefficients fitted on {' + '.join(joint)} syntheses together, DSP48 packing per "
                      f"family, errors measured on {fitted} alone)" if len(joint) > 1 else ")")
                   + ("" if fitted == target else f"; {fitted} fit reused for {target} (same LUT6/CARRY fabric) with "
                                                  f"the {target} DSP rule: error not measured on {target}"))
        # a lane model prices a sparse engine by its lane measured alone, where stored; on ECP5 by
        # the form abc9 gives its 16:1 index mux (latency.mux16_form)
        code = np.zeros(len(out), dtype=np.int64)
        if "lut_lane_unmeasured" in model["resources"] and self.engine == "sparse":
            pid, m = feats["pair_id"].to_numpy(), feats["mux_m"].to_numpy()
            unmeasured = np.isnan(lane_luts(pairs, pid, m, target))
            priced = FIXED_TERMS[0] in model["resources"]["lut"]["terms"]  # a fit whose rows carry the form
            bound = mux_bound_lanes(pairs, pid, m, target) if priced else np.zeros(len(out), dtype=bool)
            form = mux16_form(feats, target, bound) if priced else np.zeros(len(out), dtype=np.int64)
            # int x int lanes: form 2 -> label 2, 1 -> 3; a minifloat lane priced as its mux: labels 4, 5, 6
            code = np.where(unmeasured, 1, np.where(bound, 4 + form, np.where(form > 0, 4 - form, 0)))
        lanes = [src, f"{src}; this sparse lane (index mux + multiplier) is not yet synthesized alone "
                      f"(data/lanes.csv): its LUTs priced by the index-mux terms",
                 f"{src}; abc9 maps this engine's 16:1 index mux wholly for delay (its path leaves no slack, "
                 f"costmodel.latency.mux16_form): its lane priced at its standalone LUTs",
                 f"{src}; this engine's 16:1 index mux lies between abc9's area and delay forms "
                 f"(costmodel.latency.mux16_form): on about a third of such engines Yosys gives 12-20 % more LUTs "
                 f"than this estimate"]
        bound = (f"{src}; this minifloat lane's 16:1 index mux is mapped for delay when the lane stands alone "
                 f"(costmodel.resources.mux_bound_lanes), so it is priced as its mux, by the form abc9 gives the mux "
                 f"here (costmodel.latency.mux16_form): ")
        lanes += [bound + "its area form (the engine gives it slack); on 11 fresh such engines from 11 % under to 35 % "
                          "over Yosys, median error 11 % (bench/abc9_slack.py)",
                  bound + "between the area and delay forms, where abc9 takes either: 40 % over Yosys on the one fresh "
                          "such engine of bench/abc9_slack.py, 32 % under on a held-out one",
                  bound + "wholly for delay, priced at its standalone LUTs; on 28 fresh such engines median error 2.6 %, "
                          "but up to 43 % over Yosys just past that form's threshold (mux segment 0.81-0.94 of the "
                          "slowest other), where abc9 still finds area (bench/abc9_slack.py)"]
        # ECP5: abc9 recovers area on multipliers a slower run of adders gives slack (their curve)
        curves = ["", "; abc9 recovers area on this engine's multipliers (a register after them, a slower run of "
                      "adders behind: costmodel.latency.multiplier_budget_ns): priced at their curve under that delay "
                      "(data/mult_curves.csv); on 32 fresh such engines the estimate lay from 33 % under to 13 % over "
                      "Yosys, median 6 % (with the delay form: 6 % under to 51 % over, median 24 %; "
                      "bench/mult_budget.py)",
                  "; a slower run of adders gives this engine's multipliers slack, but their curve is not yet "
                  "measured (python -m costmodel.calibrate mult-curves --target ecp5): priced at their delay form, "
                  "where Yosys may give up to a third fewer LUTs"]
        state = mult_curve_state(feats, pairs, target)
        out["resource_source"] = label_column([lane + c for lane in lanes for c in curves], code * len(curves) + state,
                                              len(out))
        err = _errors(model, self.engine, measured=fitted == target)
        esrc = _error_source(model, self.engine, fitted, target)
        cells = load_logic_cell_fit(target)
        if cells:
            err, esrc = _add_packed_cells(out, feats, cells, self.engine, err, esrc)
        out["error"] = [err] * len(out)
        out["error_source"] = label_column([esrc], 0, len(out))
        for c, v in _error_columns(err, None, len(out)).items():
            out[c] = v
        return out

    def cycles(self, cfg: pd.DataFrame) -> np.ndarray:
        g = lambda c: cfg[c].to_numpy()  # noqa: E731
        if self.engine == "sparse":
            return hw_sparse.cycles_array(g("lanes"), g("n"), g("m"), g("block"), g("pipeline"), g("k"), g("vectors"),
                                          g("block_density"))
        return hw_dot.cycles_array(g("lanes"), g("pipeline"), g("k"), g("vectors"))

    def actions(self, cfg: pd.DataFrame, feats: pd.DataFrame, cycles: np.ndarray) -> pd.DataFrame:
        return action_counts_array(feats, cycles - cfg["pipeline"].to_numpy() - 1)

    def dynamic_pj(self, actions: pd.DataFrame, feats: pd.DataFrame) -> np.ndarray:
        return mac_dynamic_pj(actions, feats)

    def fmax_mhz(self, feats: pd.DataFrame, target: str) -> tuple[np.ndarray, str]:
        return fmax_model_frame(target, feats), fmax_source(target)


class SWAEstimator:
    """The sliding-window attention kernel (``hw.swa``): one ``SWAConfig`` per distinct config
    row, cycles ``hw.swa.cycles`` per distinct (config, sequence length); resources fitted on the
    stored SWA syntheses of the family (grid ``swa`` and the random draw ``swa-doe``), ``<NA>`` and
    labelled where the family has no SWA fit."""

    engine = "swa"
    energy_source = SWA_ENERGY_SOURCE

    def configs(self, df: pd.DataFrame, wl: Workload) -> pd.DataFrame:
        """Per row: its ``SWAConfig`` (``config``), ``gid`` (index of the distinct config),
        ``seq_len``, ``cycles`` and ``keys`` (from ``hw.swa`` once per distinct (config, seq_len))."""
        configs, gid = swa_configs(df)
        if wl.seq_len is None and ("seq_len" not in df.columns or df["seq_len"].isna().any()):
            raise ConfigError("an SWA estimate needs the sequence length: a seq_len column, "
                              "estimate_frame(..., seq_len=N) or estimate(config, n=...) / --seq-len")
        n = _column(df, "seq_len", wl.seq_len, None)
        if not all(float(v).is_integer() and v >= 1 for v in np.unique(n)):
            raise ConfigError(f"SWA workload needs a sequence length n >= 1 (an integer), got {n[0]!r}; "
                              "pass --seq-len (n= in Python)")
        n = n.astype(np.int64)
        dense_max = np.array([c.window if c.dense else np.iinfo(np.int64).max for c in configs])[gid]
        if (n > dense_max).any():
            raise ConfigError(f"SWA workload sequence length exceeds the dense baseline's window "
                              f"(the dense baseline buffers at most window={int(dense_max.min())} tokens); "
                              "pass --seq-len (n= in Python)")
        pair, upair = pd.factorize(gid.astype(np.int64) * (int(n.max()) + 1) + n)
        per = [(configs[int(u) // (int(n.max()) + 1)], int(u) % (int(n.max()) + 1)) for u in upair]
        out = pd.DataFrame({"gid": gid, "seq_len": n}, index=df.index)
        out["config"] = pd.Series(configs, dtype=object).iloc[gid].to_numpy()
        out["cycles"] = np.array([hw_swa.cycles(c, m) for c, m in per], dtype=np.int64)[pair]
        out["keys"] = np.array([hw_swa.total_keys(c, m) for c, m in per], dtype=np.int64)[pair]
        return out

    def features(self, cfg: pd.DataFrame, target: str) -> pd.DataFrame:
        gid = cfg["gid"].to_numpy()
        first = np.unique(gid, return_index=True)[1]  # gid numbers the configs in order
        props = swa_props(list(cfg["config"].to_numpy()[first]), target)
        f = pd.concat([props, swa_features(props, target)], axis=1)
        return f.iloc[cfg["gid"].to_numpy()].set_index(cfg.index)

    def resources(self, cfg: pd.DataFrame, feats: pd.DataFrame, target: str) -> pd.DataFrame:
        model, fitted = model_for(target, "swa")
        cells = load_logic_cell_fit(target, "swa") if model is not None else {}
        out = pd.DataFrame(index=feats.index)
        if model is None:
            have = sorted(t for t, f in load_coefficients()["fits"].items() if "swa" in f)
            src = f"not calibrated for swa on {target} (SWA fit covers {', '.join(have)}); resources not estimated"
            for c in RESOURCE_COLUMNS:
                out[c] = pd.array([pd.NA] * len(out), dtype="Int64")
        else:
            how = ("LUT fitted, FF/DSP/BRAM18 counted" if str(model.get("method", {}).get("ff", "")).startswith("counted")
                   else "LUT/FF fitted, DSP/BRAM18 counted")
            src = (f"Yosys-calibrated SWA model ({how}; {fit_origin(model, fitted)} "
                   f"of {model.get('domain', 'SWA kernels')}, "
                   f"{model['date'][:10]}; held-out n={len(model['keys']['validation'])})"
                   + ("" if fitted == target else f"; {target} reuses the {fitted} fit (same LUT6/CARRY "
                                                  f"fabric, DSP and memory rules of {target}): error "
                                                  + (f"measured on {target}'s own held-out draw"
                                                     if model.get("measured_on") == target
                                                     else f"not measured on {target}")))
            src += _lut_sites_note(target, memory=True)
            if target in LUTRAM_LUT_SITES:
                src += (": the distributed RAM's sites counted by the memory rule (exact on every stored SWA "
                        "synthesis), the rest fitted" + ("" if cells else "; the LUT error is the fitted part's"))
            if target == "ice40" and not cells:
                src += ("; LUT = LUT4 cells: the part counts logic cells, which the flip-flops and carries nextpnr "
                        "packs alone add to (modelled for the dot / sparse engines, not measured on SWA kernels: "
                        "this LUT is short of them)")
            if target == "ecp5" and not cells:
                src += ("; nextpnr-ecp5 also places pass-through LUTs in front of PFUMX / L6MUX21 inputs (modelled "
                        "for the dot / sparse engines, not measured on SWA kernels: this LUT is short of them)")
            pred = predict_swa(feats, model, target, memory=True)
            for c in RESOURCE_COLUMNS:
                out[c] = pd.array(pred[c].to_numpy(), dtype="Int64")
        outside = _outside_draw(cfg, model)
        out["resource_source"] = label_column(
            [src, f"{src}; this kernel lies outside the draw of the fit's syntheses: extrapolated, its error not "
                  "measured"], outside, len(out))
        err = _errors(model, "swa", measured=(model or {}).get("measured_on", fitted) == target)  # {} without a fit
        esrc = _error_source(model, "swa", fitted, target)
        if cells:
            err, esrc = _add_packed_cells(out, feats, cells, "swa", err, esrc)
        # an extrapolated kernel has no measured error: none is given
        out["error"] = [{} if o else err for o in outside]
        out["error_source"] = label_column(
            [esrc, "no error measured: the kernel lies outside the draw the fit was drawn from"], outside, len(out))
        for c, v in _error_columns(err, outside == 0, len(out)).items():
            out[c] = v
        return out

    def cycles(self, cfg: pd.DataFrame) -> np.ndarray:
        return cfg["cycles"].to_numpy()

    def actions(self, cfg: pd.DataFrame, feats: pd.DataFrame, cycles: np.ndarray) -> pd.DataFrame:
        return swa_actions(feats, cfg["seq_len"].to_numpy(), cfg["keys"].to_numpy())

    def dynamic_pj(self, actions: pd.DataFrame, feats: pd.DataFrame) -> np.ndarray:
        return swa_dynamic_pj(actions, feats)

    def fmax_mhz(self, feats: pd.DataFrame, target: str) -> tuple[np.ndarray, str]:
        """Upper bound: the QKᵀ unit as a dot datapath with ``pipeline = 0`` (:data:`SWA_FMAX_SOURCE`)."""
        g = lambda c: feats[c].to_numpy()  # noqa: E731
        f = fmax_array(target, g("lanes"), g("qk_prod"), g("score_bits"), g("qk_levels"), g("qk_dsp") > 0,
                       np.zeros(len(feats), np.int64))
        return f, SWA_FMAX_SOURCE


def _outside_draw(cfg: pd.DataFrame, model: dict | None) -> np.ndarray:
    """Per row of SWA ``cfg`` (column ``config``): whether its kernel's lanes, head_dim or window
    lie beyond the random draw the SWA ``model`` was fitted on (its ``draw_bounds``)."""
    b = (model or {}).get("draw_bounds")
    if b is None:
        return np.zeros(len(cfg), dtype=np.int64)
    bounds = SWABounds(**{**b, "window": tuple(b["window"])})
    return np.array([not bounds.holds(c.lanes, c.head_dim, c.window) for c in cfg["config"]], dtype=np.int64)


#: engine name -> its estimator (``hw.engines`` names)
ESTIMATORS: dict[str, Estimator] = {"dot": MacEstimator("dot"), "sparse": MacEstimator("sparse"),
                                    "swa": SWAEstimator()}


def estimator(engine: str) -> Estimator:
    """The estimator of ``engine``; ``ConfigError`` naming the known ones."""
    try:
        return ESTIMATORS[engine]
    except KeyError:
        raise ConfigError(f"unknown engine(s) [{engine!r}]; the cost model knows {', '.join(ESTIMATORS)}") from None
