"""fmax of the engines, labelled by how it was obtained (the critical path of each estimator).

Cycles are not here: they always come from the engine's own closed form in ``hw``
(``hw.dot.cycles_array``, ``hw.sparse.cycles_array``, ``hw.swa.cycles``), called by
:mod:`costmodel.estimators`.

fmax
----
Two sources, each labelled (:func:`fmax_source`):

* **ice40, ecp5: real place and route.** ``data/pnr.csv`` holds nextpnr results (iCE40UP5K-SG48,
  LFE5U-85F-CABGA381) for a sample of configs (:mod:`costmodel.pnr`); the clock period is fitted
  as ``a + b · LUT levels + c · carry bits + d · DSP`` of the critical run that the logic-depth
  model below picks, and the fit's leave-one-out error is stored with it (``data/pnr_fit.json``).
* **xc7, xcup: analytic logic-depth model**: the slowest register-to-register segment of the
  engine's pipeline, counted in LUT levels and carry-chain bits, times per-level delays of the
  target family (datasheet-order figures, not a timing sign-off; no open place-and-route for
  Xilinx parts is available here). Its depth counting is checked against Yosys ``ltp`` on the
  same sample synthesized for xc7 (:mod:`costmodel.ltp`, ``data/ltp.csv``); the label quotes
  the agreement.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .devices import DeviceError
from .features import config_row, frame_features

__all__ = ["fmax_mhz", "fmax_array", "fmax_model_frame",
           "fmax_source", "path_ns_array", "path_ns_frame", "path_components_frame", "pnr_design", "LTP_CHECK_JSON", "load_pnr_fit", "FMAX_SOURCE", "DELAYS", "PNR_FIT_JSON"]


# ---------------------------------------------------------------------------------------------
# fmax: analytic logic-depth model
# ---------------------------------------------------------------------------------------------
#: per-target delays, ns: register overhead (clk→Q + setup), one LUT level incl. routing,
#: one carry-chain bit, a DSP multiply (combinational A·B → P), and the family's clock cap (MHz).
DELAYS = {
    # Xilinx 7-series -1: DS181 (Tcko ≈ 0.5, Tilo ≈ 0.12 + routing ≈ 0.4 assumed, CARRY4 ≈ 0.1/4 bits,
    # DSP48E1 unregistered multiply ≈ 3.6, BUFG/DSP cap 464 MHz)
    "xc7": dict(reg=0.6, level=0.55, carry_bit=0.03, dsp=3.6, cap=464.0),
    # UltraScale+ -1: DS925 order (faster fabric, DSP48E2 cap 644 MHz)
    "xcup": dict(reg=0.35, level=0.4, carry_bit=0.02, dsp=2.6, cap=644.0),
    # iCE40 UltraPlus: FPGA-DS-02008 order (LUT4 + routing ≈ 1.6 ns, carry ≈ 0.3 ns/bit)
    "ice40": dict(reg=1.2, level=1.6, carry_bit=0.3, dsp=8.0, cap=150.0),
    # ECP5 -6: FPGA-DS-02012 order (LUT4 + routing ≈ 0.8 ns, CCU2 ≈ 0.1 ns/bit)
    "ecp5": dict(reg=0.7, level=0.8, carry_bit=0.06, dsp=4.5, cap=400.0),
}

FMAX_SOURCE = ("analytic logic-depth model (per-target typical delays, no place-and-route for Xilinx "
               "parts here); expect ±30 %")

#: the nextpnr fit for the Lattice targets (written by ``python -m costmodel.pnr``)
PNR_FIT_JSON = Path(__file__).parent / "data" / "pnr_fit.json"
#: the Yosys ltp check of the Xilinx depth model (written by ``python -m costmodel.ltp``)
LTP_CHECK_JSON = Path(__file__).parent / "data" / "ltp_check.json"


def path_ns_array(target: str, lanes, prod_bits, acc_bits, mult_levels, mult_in_dsp, pipeline,
                  index_mux_levels=None, mf=None, shift_bits=None) -> np.ndarray:
    """Longest register-to-register combinational path of the dot/sparse datapath, ns, under the
    analytic per-target delays (:data:`DELAYS`; register overhead not included).

    The pipeline registers split ``tree_levels + 1`` segments (multiplier, then each adder level);
    the accumulator (``acc_bits`` carry chain) is always its own segment. With ``pipeline = p``
    the longest combinational run holds ``ceil((L + 1) / (p + 1))`` of the ``L + 1`` segments
    (even spread, as ``hw.dot.MacPipeline.register_points``); with ``p = 0`` the multiplier,
    the whole tree and the accumulator form one path. A minifloat product (``mf``) whose
    significand multiply sits in a DSP still passes the LUT alignment shifter
    (``ceil(log2(shift_bits + 1)) + 1`` levels) and the ``prod_bits`` negation after it.
    """
    d = DELAYS[target]
    lanes = np.asarray(lanes, dtype=np.int64)
    prod_bits = np.asarray(prod_bits, dtype=float)
    acc_bits = np.asarray(acc_bits, dtype=float)
    mult_levels = np.asarray(mult_levels, dtype=float)
    pipeline = np.asarray(pipeline, dtype=np.int64)
    L = np.ceil(np.log2(np.maximum(lanes, 1))).astype(np.int64)
    after_dsp = 0.0
    if mf is not None:
        mfa = np.asarray(mf, dtype=float)
        sb = np.asarray(shift_bits, dtype=float)
        after_dsp = mfa * ((np.ceil(np.log2(sb + 1)) + 1) * d["level"] + prod_bits * d["carry_bit"])
    mult_ns = np.where(np.asarray(mult_in_dsp, bool), d["dsp"] + after_dsp,
                       mult_levels * d["level"] + prod_bits * d["carry_bit"])
    if index_mux_levels is not None:
        mult_ns = mult_ns + np.asarray(index_mux_levels, dtype=float) * d["level"]
    adder_ns = d["level"] + (prod_bits + np.log2(np.maximum(lanes, 1))) * d["carry_bit"]
    acc_ns = d["level"] + acc_bits * d["carry_bit"]
    segs = L + 1
    per = np.ceil(segs / np.maximum(pipeline, 1)).astype(np.int64)
    # segments per combinational run: the first run holds the multiplier
    first = np.where(pipeline > 0, mult_ns + (per - 1) * adder_ns, mult_ns + L * adder_ns + acc_ns)
    tree_run = np.where(pipeline > 0, per * adder_ns, 0.0)
    last = np.where(pipeline > 0, acc_ns, 0.0)
    return np.maximum(np.maximum(first, tree_run), last)


def path_components_frame(target: str, f) -> dict[str, np.ndarray]:
    """What the critical run of :func:`path_ns_frame` is made of, per row: ``lut_levels``,
    ``carry_bits`` and ``dsp`` (0/1), so that ``path_ns = lut_levels · level + carry_bits ·
    carry_bit + dsp · dsp_delay`` under :data:`DELAYS`."""
    d = DELAYS[target]
    lanes = np.asarray(f["lanes"], dtype=np.int64)
    pb = np.asarray(f["prod_bits"], dtype=float)
    acc = np.asarray(f["acc_bits"], dtype=float)
    mux = np.asarray(f["mux_levels"], dtype=float)
    mf = np.asarray(f["mf"], dtype=float)
    dsp = np.asarray(f["mult_dsp"]) > 0
    pipe = np.asarray(f["pipeline"], dtype=np.int64)
    L = np.ceil(np.log2(np.maximum(lanes, 1)))
    shift_lv = mf * (np.ceil(np.log2(np.asarray(f["shift_bits"], dtype=float) + 1)) + 1)
    mult = np.stack([np.where(dsp, shift_lv, np.asarray(f["mult_levels"], dtype=float)) + mux,
                     np.where(dsp, mf * pb, pb), dsp.astype(float)], 1)
    one = np.ones(len(lanes))
    add = np.stack([one, pb + np.log2(np.maximum(lanes, 1)), 0 * one], 1)
    accu = np.stack([one, acc, 0 * one], 1)
    per = np.ceil((L + 1) / np.maximum(pipe, 1))
    p = (pipe > 0)[:, None]
    first = np.where(p, mult + (per - 1)[:, None] * add, mult + L[:, None] * add + accu)
    runs = np.stack([first, np.where(p, per[:, None] * add, 0), np.where(p, accu, 0)], 1)
    k = (runs @ np.array([d["level"], d["carry_bit"], d["dsp"]])).argmax(1)
    crit = runs[np.arange(len(lanes)), k]
    return {"lut_levels": crit[:, 0], "carry_bits": crit[:, 1], "dsp": crit[:, 2]}


def path_ns_frame(target: str, f) -> np.ndarray:
    """:func:`path_ns_array` of a :func:`costmodel.features.frame_features` frame, ns."""
    return path_ns_array(target, f["lanes"], f["prod_bits"], f["acc_bits"], f["mult_levels"],
                         np.asarray(f["mult_dsp"]) > 0, f["pipeline"], f["mux_levels"], f["mf"], f["shift_bits"])


def fmax_array(target: str, lanes, prod_bits, acc_bits, mult_levels, mult_in_dsp, pipeline,
               index_mux_levels=None, mf=None, shift_bits=None) -> np.ndarray:
    """Vectorized *analytic* fmax (MHz): ``1000 / (register overhead + path_ns_array(...))``,
    capped at the family's clock limit (:data:`DELAYS`)."""
    d = DELAYS[target]
    path = path_ns_array(target, lanes, prod_bits, acc_bits, mult_levels, mult_in_dsp, pipeline, index_mux_levels,
                         mf, shift_bits)
    return np.minimum(1000.0 / (d["reg"] + path), d["cap"])


@lru_cache(maxsize=None)
def _load_json(path: str) -> dict:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {}


def load_pnr_fit(path: str = str(PNR_FIT_JSON)) -> dict:
    """The stored nextpnr fit (``{}`` when the file is absent)."""
    return _load_json(path)


load_pnr_fit.cache_clear = _load_json.cache_clear  # type: ignore[attr-defined]


def fmax_source(target: str) -> str:
    """How :func:`fmax_model_frame` obtains fmax for ``target`` (a label for reports)."""
    fit = load_pnr_fit().get("targets", {}).get(target)
    if fit is None:
        chk = _load_json(str(LTP_CHECK_JSON)).get("targets", {}).get(target)
        if chk is None or chk.get("median_rel_diff") is None:
            return FMAX_SOURCE
        return (FMAX_SOURCE + f"; its depth checked against Yosys ltp on {chk['fabric_rows']} {target} syntheses "
                f"without DSP48 on the path: fmax under the same delays differs by a median "
                f"{chk['median_rel_diff']:.0%} (p90 {chk['p90_rel_diff']:.0%})")
    c = fit["coef"]
    return (f"nextpnr P&R fit on {fit['rows']} configs ({fit['part']}, {fit['nextpnr']}): period = "
            f"{c[0]:.2f} ns + {c[1]:.2f} ns/LUT level + {c[2]:.3f} ns/carry bit + {c[3]:.2f} ns/DSP on the "
            f"logic-depth model's critical run; leave-one-out median |error| {fit['loo_median_rel_err']:.0%}, "
            f"p90 {fit['loo_p90_rel_err']:.0%}")


def pnr_design(target: str, f) -> np.ndarray:
    """Columns ``[1, LUT levels, carry bits, DSP]`` of each row's critical run (the run the
    analytic delays pick, :func:`path_components_frame`): the regressors of the nextpnr fit."""
    c = path_components_frame(target, f)
    return np.column_stack([np.ones(len(c["dsp"])), c["lut_levels"], c["carry_bits"], c["dsp"]])


def fmax_model_frame(target: str, f) -> np.ndarray:
    """fmax (MHz) of every row of a :func:`costmodel.features.frame_features` frame, as
    :func:`costmodel.estimate_frame` reports it: for targets with a nextpnr fit (ice40, ecp5)
    ``period = a + b · LUT levels + c · carry bits + d · DSP`` of the critical run, all four fitted
    on real place-and-route results; else the analytic model. :func:`fmax_source` labels which."""
    d = DELAYS[target]
    fit = load_pnr_fit().get("targets", {}).get(target)
    if fit is None:
        return np.minimum(1000.0 / (d["reg"] + path_ns_frame(target, f)), d["cap"])
    return np.minimum(1000.0 / (pnr_design(target, f) @ np.asarray(fit["coef"])), d["cap"])


def fmax_mhz(config: Any, target: str = "xc7") -> tuple[float, str]:
    """fmax (MHz) of one engine config and the label of how it was obtained."""
    if target not in DELAYS:
        raise DeviceError(f"unknown synthesis target {target!r}; choose one of {', '.join(DELAYS)}")
    f = frame_features(config_row(config), target)
    val = fmax_model_frame(target, f)
    return float(np.asarray(val).reshape(-1)[0]), fmax_source(target)
