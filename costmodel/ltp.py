"""Logic depth of Xilinx netlists from Yosys ``ltp``: an independent check of the analytic
logic-depth fmax model (:mod:`costmodel.latency`) for the targets without open place and route.

For each config of the place-and-route sample (:data:`costmodel.pnr.SAMPLE`) the engine is
synthesized with ``synth_xilinx`` (the same script as the resource calibration) and Yosys
``ltp -noff`` finds the longest topological path with the flip-flops and the DSP48s cut out
(``t:FD* t:DSP48* %u %n``: Yosys packs pipeline and accumulator registers into the DSP48s, whose
feedback would otherwise form loops, so a DSP48 ends a path like a register). The cells on that
path are classified from the netlist (``write_json``): LUT levels (LUT1–6, MUXF*) and CARRY4/8
cells. The same per-target delays as the analytic model (``DELAYS``) then give an "ltp path"
= LUTs · level + CARRY cells · 4 · carry_bit, compared with the analytic model's LUT/carry part.

``ltp`` measures depth in cells, not delay: the path it reports is the one with the most cells,
which is the slowest one only when cells have similar delays; the figure checks the analytic
model's *depth counting*, it is not a timing sign-off.

::

    python -m costmodel.ltp   # appends to data/ltp.csv (resumable), writes data/ltp_check.json
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw.engines import config_from_dict
from hw.rtl import cache_root, run_synth, synth_command, verilog_text, yosys_version

from .store import append, config_columns, config_key, done_keys, now
from .features import config_row, frame_features
from .latency import DELAYS, _load_json, path_components_frame, path_ns_frame
from .pnr import SAMPLE

__all__ = ["LTP_CSV", "LTP_CHECK_JSON", "xilinx_depth", "run_sample", "compare", "write_check", "LTP_FIELDS"]

LTP_CSV = Path(__file__).parent / "data" / "ltp.csv"
LTP_FIELDS = ["key", "engine", "config", "target", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m",
              "length", "lut_levels", "carry_cells", "dsp_cells", "other_cells", "seconds", "command", "yosys", "date"]

_VIA = re.compile(r"\(via ([^)]+)\)\s*$")


def xilinx_depth(config: Any, target: str = "xc7", cache: bool = True) -> dict:
    """Longest register-to-register path of ``config``'s ``synth_<target>`` netlist by Yosys
    ``ltp -noff``, with its cells classified.

    Returns
    -------
    dict: ``length`` (cells on the path), ``lut_levels`` (LUT1–6 / MUXF7–9), ``carry_cells``
    (CARRY4 / CARRY8), ``dsp_cells`` (DSP48E1/E2), ``other_cells``, ``seconds`` (Yosys wall time),
    ``command``, ``yosys``.
    """
    if target not in ("xc7", "xcup"):
        raise ValueError(f"ltp depth is for the Xilinx targets xc7 / xcup, not {target!r}")
    verilog = verilog_text(config)
    synth = synth_command(target)
    tail = "tee -q -o ltp.txt ltp -noff t:FD* t:DSP48* %u %n\nwrite_json net.json"
    script = f"{synth}\n{tail}"
    version = yosys_version()
    key = hashlib.sha256(json.dumps([verilog, target, script, version]).encode()).hexdigest()[:32]
    path = cache_root() / "ltp" / f"{key}.json"
    if cache and path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    out = run_synth(verilog, synth, tail, ["ltp.txt", "net.json"])[0]
    seconds = time.perf_counter() - t0
    text = out["ltp.txt"]
    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if m is None:
        raise RuntimeError("Yosys ltp printed no longest path")
    net = json.loads(out["net.json"])
    cells = {}
    for mod in net["modules"].values():
        cells.update({name: c["type"] for name, c in mod.get("cells", {}).items()})
    body = text[m.end():]
    via = [_VIA.search(line).group(1) for line in body.splitlines() if _VIA.search(line)]
    types = [cells.get(v, cells.get(v.lstrip("\\"), "?")) for v in via]
    lut = sum(1 for t in types if re.fullmatch(r"LUT[1-6]|MUXF[789]|INV", t))
    carry = sum(1 for t in types if t in ("CARRY4", "CARRY8"))
    dsp = sum(1 for t in types if t.startswith("DSP48"))
    res = dict(length=int(m.group(1)), lut_levels=lut, carry_cells=carry, dsp_cells=dsp,
               other_cells=len(types) - lut - carry - dsp, seconds=round(seconds, 2),
               command=f"{synth}; ltp -noff t:FD* t:DSP48* %u %n", yosys=version)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
    return res


def run_sample(target: str = "xc7", path: Path = LTP_CSV, progress: bool = True) -> int:
    """``xilinx_depth`` of every :data:`costmodel.pnr.SAMPLE` config not yet in ``path``."""
    done = done_keys(path)
    n = 0
    for cfg in SAMPLE:
        key = config_key({**cfg, "ltp": True}, target)
        if key in done:
            continue
        config = config_from_dict(cfg)
        r = xilinx_depth(config, target)
        append(path, LTP_FIELDS, dict(config_columns(config, key, target), **r))
        n += 1
        if progress:
            print(f"[ltp {target}] {cfg}: length {r['length']} = {r['lut_levels']} LUT + {r['carry_cells']} CARRY "
                  f"+ {r['dsp_cells']} DSP + {r['other_cells']} other ({r['seconds']} s)", flush=True)
    return n


LTP_CHECK_JSON = Path(__file__).parent / "data" / "ltp_check.json"


def compare(path: Path = LTP_CSV):
    """Per stored row: the analytic model's critical run (LUT levels, carry bits, DSP) next to
    Yosys ltp's longest path, and both as fmax under the same delays. DataFrame; ``fabric_only``
    marks configs whose analytic critical run holds no DSP48 (the rows the comparison is fair
    on, since ltp cuts paths at DSP48s)."""
    d = pd.read_csv(path, keep_default_na=False, na_values=[""])
    rows = []
    for target in sorted(set(d["target"])):
        g = d[d["target"] == target].reset_index(drop=True)
        cfg = pd.concat([config_row(config_from_dict(json.loads(c))) for c in g["config"]], ignore_index=True)
        f = frame_features(cfg, target)
        comp = path_components_frame(target, f)
        dl = DELAYS[target]
        ltp_ns = g["lut_levels"].to_numpy() * dl["level"] + g["carry_cells"].to_numpy() * 4 * dl["carry_bit"]
        out = g[["key", "engine", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m", "lut_levels",
                 "carry_cells"]].copy()
        out.insert(0, "target", target)
        out["model_lut_levels"] = comp["lut_levels"]
        out["model_carry_bits"] = comp["carry_bits"]
        out["fabric_only"] = (comp["dsp"] == 0) & (f["mult_dsp"].to_numpy() == 0)
        out["fmax_model"] = np.minimum(1000.0 / (dl["reg"] + path_ns_frame(target, f)), dl["cap"])
        out["fmax_ltp"] = np.minimum(1000.0 / (dl["reg"] + ltp_ns), dl["cap"])
        rows.append(out)
    return pd.concat(rows, ignore_index=True)


def write_check(path: Path = LTP_CSV) -> dict:
    """Summarize :func:`compare` into ``data/ltp_check.json`` (read by the fmax label)."""
    c = compare(path)
    out = {"command": "python -m costmodel.ltp", "csv_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
           "date": now(), "targets": {}}
    for target, g in c.groupby("target"):
        fab = g[g["fabric_only"]]
        rel = (np.abs(fab["fmax_model"] - fab["fmax_ltp"]) / fab["fmax_ltp"]).to_numpy()
        out["targets"][target] = {
            "rows": int(len(g)), "fabric_rows": int(len(fab)),
            "median_rel_diff": float(np.median(rel)) if len(rel) else None,
            "p90_rel_diff": float(np.percentile(rel, 90)) if len(rel) else None,
            "median_lut_levels_model_minus_ltp": float(np.median(fab["model_lut_levels"] - fab["lut_levels"]))
            if len(fab) else None,
        }
    LTP_CHECK_JSON.write_text(json.dumps(out, indent=1) + "\n")
    _load_json.cache_clear()
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    run_sample(args[0] if args else "xc7")
    rec = write_check()
    for t, r in rec["targets"].items():
        print(f"[{t}] analytic fmax vs the same delays on Yosys ltp's longest path, {r['fabric_rows']} of "
              f"{r['rows']} configs without DSP48 on the path: median |diff| {r['median_rel_diff']:.1%}, "
              f"p90 {r['p90_rel_diff']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
