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
* **xc7, xcup: analytic logic-depth model**: the slowest register-to-register run of the
  engine's pipeline, between the registers where hw puts them (:func:`pipeline_runs`, from
  ``hw.engine.register_points``), counted in LUT levels and carry-chain bits, times delays of the
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
import pandas as pd

from hw.engine import register_points, tree_levels

from hw.devices import DeviceError
from .features import config_row, frame_features

__all__ = ["fmax_mhz", "fmax_array", "fmax_model_frame", "fmax_source", "pipeline_runs", "path_ns_array",
           "path_ns_frame", "path_components_frame", "pnr_design", "LTP_CHECK_JSON", "load_pnr_fit", "FMAX_SOURCE",
           "DELAYS", "PNR_FIT_JSON",
           "ABC9_ECP5", "MUX16_AREA_FORM", "MUX16_DELAY_MAPPED", "mux_slack_ratio", "mux16_form"]


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


@lru_cache(maxsize=None)
def pipeline_runs(lanes: int, pipeline: int) -> tuple[tuple[int, int, int], ...]:
    """Register-to-register runs of the MAC datapath (:class:`hw.dot.MacPipeline`), in pipeline
    order: ``(multiplier 0/1, adder-tree levels, accumulator adder 0/1)`` each.

    The datapath is the chain multiplier, adder levels ``1 .. L`` (``L = tree_levels(lanes)``),
    accumulator adder (into the output / accumulator register); a register stage after tree
    level ``r`` (``hw.engine.register_points``, 0 = right after the multipliers) cuts the chain
    between element ``r`` and ``r + 1``. ``pipeline = 0``: one run of everything.
    """
    levels = tree_levels(lanes)
    runs, start = [], 0  # chain element 0 = multiplier, 1..L = adder levels, L + 1 = accumulator
    for cut in [*register_points(lanes, pipeline), levels + 1]:
        runs.append((int(start == 0), min(cut, levels) - max(start, 1) + 1, int(cut == levels + 1)))
        start = cut + 1
    return tuple(runs)


def _run_flags(lanes: np.ndarray, pipeline: np.ndarray) -> np.ndarray:
    """(3, rows, max runs): multipliers, adder levels and accumulator adders in each run of
    :func:`pipeline_runs` (padded with empty runs), computed once per distinct (lanes, pipeline)."""
    span = int(pipeline.max(initial=0)) + 1
    inv, codes = pd.factorize(lanes * span + pipeline)
    tables = [pipeline_runs(*divmod(int(c), span)) for c in codes]
    out = np.zeros((3, len(codes), max((len(t) for t in tables), default=1)))
    for i, t in enumerate(tables):
        out[:, i, :len(t)] = np.array(t).T
    return out[:, inv]


def _elements(lanes, prod_bits, acc_bits, mult_levels, mult_in_dsp, index_mux_levels=None, mf=None,
              shift_bits=None) -> np.ndarray:
    """(3 elements, 3 parts, rows): LUT levels, carry bits and DSP multiplies of the multiplier,
    one adder-tree level and the accumulator adder.

    Multiplier: ``mult_levels`` LUT levels + a ``prod_bits`` carry chain, or one DSP multiply
    (a minifloat product, ``mf``, then still passes the LUT alignment shifter,
    ``ceil(log2(shift_bits + 1)) + 1`` levels, and the ``prod_bits`` negation), plus the sparse
    index mux (``index_mux_levels``). Adder level: one LUT level + ``prod_bits + log2(lanes)``
    carry bits. Accumulator: one LUT level + ``acc_bits`` carry bits.
    """
    lanes = np.asarray(lanes, dtype=np.int64).reshape(-1)
    n = len(lanes)

    def col(x) -> np.ndarray:
        return np.broadcast_to(np.asarray(0.0 if x is None else x, dtype=float), (n,))

    pb, mf_, dsp = col(prod_bits), col(mf), col(mult_in_dsp) > 0
    out = np.zeros((3, 3, n))
    out[0, 0] = np.where(dsp, mf_ * (np.ceil(np.log2(col(shift_bits) + 1)) + 1), col(mult_levels))
    out[0, 0] += col(index_mux_levels)
    out[0, 1] = np.where(dsp, mf_ * pb, pb)
    out[0, 2] = dsp
    out[1:, 0] = 1.0
    out[1, 1] = pb + np.log2(np.maximum(lanes, 1))
    out[2, 1] = col(acc_bits)
    return out


def _critical(target: str, lanes, pipeline, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Path ns of the slowest run (:func:`pipeline_runs`) of each row and that run's
    (LUT levels, carry bits, DSP) as a (3, rows) array, given :func:`_elements`; the earliest
    run on a tie."""
    d = DELAYS[target]
    lanes = np.asarray(lanes, dtype=np.int64).reshape(-1)
    flags = _run_flags(lanes, np.broadcast_to(np.asarray(pipeline, dtype=np.int64), lanes.shape))
    elem_ns = d["level"] * elements[:, 0] + d["carry_bit"] * elements[:, 1] + d["dsp"] * elements[:, 2]
    run_ns = flags[0] * elem_ns[0, :, None] + flags[1] * elem_ns[1, :, None] + flags[2] * elem_ns[2, :, None]
    k = run_ns.argmax(1)
    rows = np.arange(len(lanes))
    pick = flags[:, rows, k]  # (3 elements, rows)
    return run_ns[rows, k], (pick[:, None] * elements).sum(0)


def path_ns_array(target: str, lanes, prod_bits, acc_bits, mult_levels, mult_in_dsp, pipeline,
                  index_mux_levels=None, mf=None, shift_bits=None) -> np.ndarray:
    """Longest register-to-register combinational path of the dot/sparse datapath, ns, under the
    analytic per-target delays (:data:`DELAYS`; register overhead not included): the slowest of
    the runs between the pipeline registers that hw places (:func:`pipeline_runs`), with the
    multiplier, adder-level and accumulator delays of :func:`_elements`.
    """
    el = _elements(lanes, prod_bits, acc_bits, mult_levels, mult_in_dsp, index_mux_levels, mf, shift_bits)
    return _critical(target, lanes, pipeline, el)[0].reshape(np.shape(lanes))


def _frame_critical(target: str, f) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_critical` of a :func:`costmodel.features.frame_features` frame (ns, parts)."""
    el = _elements(f["lanes"], f["prod_bits"], f["acc_bits"], f["mult_levels"], np.asarray(f["mult_dsp"]) > 0,
                   f["mux_levels"], f["mf"], f["shift_bits"])
    return _critical(target, f["lanes"], f["pipeline"], el)


def path_components_frame(target: str, f) -> dict[str, np.ndarray]:
    """What the critical run of :func:`path_ns_frame` is made of, per row: ``lut_levels``,
    ``carry_bits`` and ``dsp`` (0/1), so that ``path_ns = lut_levels · level + carry_bits ·
    carry_bit + dsp · dsp_delay`` under :data:`DELAYS`."""
    crit = _frame_critical(target, f)[1]
    return {"lut_levels": crit[0], "carry_bits": crit[1], "dsp": crit[2]}


def path_ns_frame(target: str, f) -> np.ndarray:
    """:func:`path_ns_array` of a :func:`costmodel.features.frame_features` frame, ns."""
    return _frame_critical(target, f)[0]


#: ns, the cell delays ``synth_ecp5``'s abc9 maps LUTs by (Yosys' Lattice timing models,
#: techlibs/lattice ``common_sim.vh`` and ``ccu2c_sim.vh``) and its wire delay per LUT level
#: (``abc9 -W 300``)
ABC9_ECP5 = dict(lut4=0.379, lut6=0.618, wire=0.300, ccu2c_in=0.516, ccu2c_per_2_bits=0.043, ccu2c_out=0.273)
_LUT4, _LUT6 = ABC9_ECP5["lut4"] + ABC9_ECP5["wire"], ABC9_ECP5["lut6"] + ABC9_ECP5["wire"]
#: the :func:`mux_slack_ratio` below which an ECP5 16:1 index mux's area form (4 levels of LUT4)
#: is no slower than the slowest other segment: ``2 LUT6 / (4 LUT4)`` (wire included) = 0.676
MUX16_AREA_FORM = 2 * _LUT6 / (4 * _LUT4)
#: the :func:`mux_slack_ratio` from which abc9 maps an ECP5 16:1 index mux wholly for delay (2
#: levels of LUT6, through PFUMX / L6MUX21, as when it is synthesized alone): where even its next
#: faster form, one level of LUT6 and two of LUT4, would be slower than the slowest other segment,
#: ``2 LUT6 / (LUT6 + 2 LUT4)`` (wire included) = 0.807. Between :data:`MUX16_AREA_FORM` and this
#: one abc9 may take the form between (half the excess) or the area form.
MUX16_DELAY_MAPPED = 2 * _LUT6 / (_LUT6 + 2 * _LUT4)
#: the rows a Yosys $macc of n operands keeps after each level of 3:2 full adders (maccmap:
#: full adders down to two rows, then one carry-chain adder)
_DADDA = (2, 3, 4, 6, 9, 13, 19, 28, 42, 63, 94, 141)


def _macc_ns(terms: np.ndarray, bits: np.ndarray, fa_level_ns: float = _LUT4) -> np.ndarray:
    """ns of a Yosys $macc of ``terms`` operands summed into ``bits`` bits on ECP5 (abc9's view):
    one LUT4 level (``fa_level_ns``, wire included) per level of full adders, then a CCU2C carry
    chain (two bits a cell)."""
    d = ABC9_ECP5
    fa_levels = np.searchsorted(np.asarray(_DADDA), terms)  # the first row count >= terms
    chain = d["ccu2c_in"] + d["ccu2c_per_2_bits"] * bits / 2 + d["ccu2c_out"] + d["wire"]
    return fa_levels * fa_level_ns + chain


def _slowest_adder_run_ns(f, fa_level_ns: float = _LUT4) -> np.ndarray:
    """ECP5 (abc9's view, :data:`ABC9_ECP5`): ns of each engine's slowest register-to-register run
    of adders. Yosys' alumacc merges the adders between two registers into one $macc
    (:func:`_macc_ns`): tree levels ``a..b`` of a run sum ``min(2^(b-a+1), ceil(lanes / 2^(a-1)))``
    operands (one more with the accumulator) into ``prod_bits + b`` bits (``acc_bits``); the
    accumulator's clear is the flip-flops' synchronous reset (no LUT). ``f``: a
    :func:`costmodel.features.frame_features` frame."""
    lanes = np.asarray(f["lanes"], dtype=np.int64)
    _, n, with_acc = _run_flags(lanes, np.asarray(f["pipeline"], dtype=np.int64))  # (rows, runs) each
    last = np.cumsum(n, axis=1)  # the tree level each run ends at
    first = last - n + 1
    terms = np.where(n > 0, np.minimum(2.0 ** n, np.ceil(lanes[:, None] / 2.0 ** (first - 1))), 1) + with_acc
    bits = np.where(with_acc > 0, np.asarray(f["acc_bits"], dtype=float)[:, None],
                    np.asarray(f["prod_bits"], dtype=float)[:, None] + last)
    runs = np.where((n > 0) | (with_acc > 0), _macc_ns(terms, bits, fa_level_ns), 0.0)  # the multiplier alone: no adder
    return runs.max(axis=1, initial=0.0)


def mux_slack_ratio(f) -> np.ndarray:
    """ECP5 (abc9's view, :data:`ABC9_ECP5`): each engine's sparse index-mux segment (registers →
    mux → MULT18X18D, delay-mapped: ``mux_levels`` LUT6; a minifloat multiplier's operand decoder
    between them, ``hw.arith.OperandDecoder``: one LUT4 more) over its slowest other segment
    (:func:`_slowest_adder_run_ns`; the DSP block cuts every path through it). 0 for dense
    engines. Meaningful where the mux is most of that segment: int × int engines with DSP
    multipliers, and minifloat lanes whose multiplier is so small that abc9 maps the lone lane's
    mux for delay (``resources.mux_bound_lanes``); elsewhere a LUT multiplier lengthens it. ``f``:
    a :func:`costmodel.features.frame_features` frame."""
    slowest = np.maximum(_slowest_adder_run_ns(f), 1e-9)
    decoder = (np.asarray(f["mf"]) > 0) * _LUT4
    return (np.asarray(f["mux_levels"], dtype=float) * _LUT6 + decoder) / slowest


#: ns, one level of a $macc's full adders (LUT4 and wire) as abc9 times it: fitted to abc9's own
#: critical delay of 12 int8 x int8 engines (MULT18X18D products: the adder runs are the slowest),
#: probed by delay targets (``bench/mult_budget.py --probe``: the smallest ``abc9.D`` under which
#: Yosys recovers area, by bisection; 5-65 operands, 4-64 lanes, pipeline 1-3): every run within
#: 0.26 ns of this view with the carry chain as :data:`ABC9_ECP5` gives it and no constant. Faster
#: than a LUT4 at its slowest pin (0.679 with the wire: ABC puts the late bits on the fast pins);
#: the ECP5 fit's 5-fold CV goal score agrees (0.45 / 0.5 / 0.515 / 0.55 / 0.6 / 0.679 ns: 1.018 / 0.931 /
#: 0.964 / 0.974 / 1.010 / 0.992; without the curves 1.112). The index-mux view
#: (:func:`mux_slack_ratio`) keeps the slowest pin its thresholds were measured with.
MACC_FA_LEVEL_NS = 0.515


def multiplier_budget_ns(f) -> np.ndarray:
    """ECP5 (abc9's view): the delay abc9 lets each engine's multipliers take, ns. With a register
    right after them (pipeline ≥ 1: ``hw.engine.register_points`` puts the first there) they are a
    run of their own, and abc9 recovers area on them until they are as slow as the slowest run of
    adders (:func:`_slowest_adder_run_ns`), less a sparse engine's index mux in front of them
    (``mux_levels`` LUT6): the multiplier alone under that delay target (``mult_curves.csv``) is
    what they cost. 0 at pipeline 0 (they share the critical run: mapped for delay). ``f``: a
    :func:`costmodel.features.frame_features` frame."""
    budget = _slowest_adder_run_ns(f, MACC_FA_LEVEL_NS) - np.asarray(f["mux_levels"], dtype=float) * _LUT6
    return np.where(np.asarray(f["pipeline"]) > 0, np.maximum(budget, 0.0), 0.0)


def mux16_form(f, target: str, mux_bound: np.ndarray | None = None) -> np.ndarray:
    """Which form abc9 gives each engine's 16:1 index mux on ``target``: 2 where it maps it wholly for
    delay (:data:`MUX16_DELAY_MAPPED`), 1 between the forms, 0 in its area form, and 0 wherever the
    view does not apply (not ECP5; no 16:1 mux in front of DSP multipliers; a minifloat lane not
    ``mux_bound``, per row: ``resources.mux_bound_lanes``). ``f``: a
    :func:`costmodel.features.frame_features` frame."""
    out = np.zeros(len(f), dtype=np.int64)
    if target != "ecp5":
        return out
    lane = np.asarray(f["mf"]) == 0  # int x int, and the minifloat lanes priced as their mux
    if mux_bound is not None:
        lane = lane | mux_bound
    applies = (np.asarray(f["mux_m"]) == 16) & (np.asarray(f["mult_dsp"]) > 0) & lane
    ratio = mux_slack_ratio(f)
    return np.where(applies, (ratio >= MUX16_AREA_FORM).astype(np.int64) + (ratio >= MUX16_DELAY_MAPPED), 0)


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
