"""ECP5: abc9's slack moves a sparse engine's index mux between delay and area mapping (a
diagnostic of the LUT model's tail; issue 15; Yosys, cached).

    .venv/bin/python bench/abc9_slack.py

Why: ``synth_ecp5`` maps LUTs with ``abc9 -W 300``, which maps for delay and recovers area only where
a path has slack against the slowest register-to-register path it sees (a MULT18X18D cuts paths:
abc9 sees no timing through it). A 16:1 index mux in front of the multipliers is mapped with wide
LUTs (LUT6 / LUT7 through PFUMX and L6MUX21) when it lies on that slowest path, into LUT4s when
not. The cost model prices a measured lane (``data/lanes.csv``) at one coefficient per m, so it
misses the engines whose mux stays delay-mapped.

1. One engine (4 lanes int7n x int7n, 2:16, k_max 17) at every pipeline depth: cells, LUT sites,
   and the model's LUT sites beside them.
2. Every stored ECP5 int x int 16:1 engine (calibration: the shipped fit's 5-fold out-of-fold
   error, ``costmodel.resources.cv_predictions``; held out: the shipped fit's): its mux segment over
   the slowest other segment (the segment delays below) beside the model's error, and the error
   with the lane priced at its standalone cost (``data/lanes.csv``, coefficient 1, no fit) where
   the mux stays delay-mapped: where even its LUT4 form (4 levels, against 2 of LUT6) would be the
   slowest segment, a ratio of at least :data:`DELAY_MAPPED` = 2 x 0.918 / (4 x 0.679) = 0.676.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file's folder holds scripts named like packages: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from costmodel.features import config_row, frame_features  # noqa: E402
from costmodel.latency import pipeline_runs  # noqa: E402
from costmodel.resources import cv_predictions, design_matrix, heldout_rows, model_for, predict_frame  # noqa: E402
from hw.engines import config_from_dict  # noqa: E402
from hw.rtl import lut_sites, parse_stat, run_synth, synth_command, verilog_text  # noqa: E402

#: ns, Yosys' Lattice cell timing (techlibs/lattice: common_sim.vh, ccu2c_sim.vh) and the wire
#: delay per level of ``synth_lattice``'s ``abc9 -W 300``
LUT4, LUT6, WIRE = 0.379, 0.618, 0.300
CCU2C_IN, CCU2C_PER_2_BITS, CCU2C_OUT = 0.516, 0.043, 0.273
ENGINE = dict(engine="sparse", lanes=4, wfmt="int7n", afmt="int7n", k_max=17, n=2, m=16, block=None)
CELLS = ("LUT4", "PFUMX", "L6MUX21", "CCU2C", "MULT18X18D", "TRELLIS_FF")
#: the mux segment ratio from which a 16:1 mux's LUT4 form (4 levels) would be the slowest segment
#: (against its LUT6 form's 2 levels): abc9 keeps it delay-mapped, as when it is synthesized alone
DELAY_MAPPED = 2 * (LUT6 + WIRE) / (4 * (LUT4 + WIRE))


def _adder(bits: np.ndarray) -> np.ndarray:
    """ns of a carry-chain adder of ``bits`` bits (CCU2C cells, two bits each) and its wire."""
    return CCU2C_IN + CCU2C_PER_2_BITS * bits / 2 + CCU2C_OUT + WIRE


def mux_ratio(f: pd.DataFrame) -> np.ndarray:
    """Each int x int DSP engine's index-mux segment (registers -> mux -> MULT18X18D, delay-mapped:
    ``mux_levels`` LUT6) over its slowest other segment (the adder levels and the accumulator
    between its pipeline registers, and the DSP's output through the adders of the first run)."""
    lanes, pipe = f["lanes"].to_numpy(), f["pipeline"].to_numpy()
    mux = f["mux_levels"].to_numpy(float) * (LUT6 + WIRE)
    level = _adder(f["prod_bits"].to_numpy(float) + np.log2(np.maximum(lanes, 1)))
    acc = LUT4 + WIRE + _adder(f["acc_bits"].to_numpy(float))
    out = np.empty(len(f))
    for i in range(len(f)):
        segs = [r[1] * level[i] + r[2] * acc[i] for r in pipeline_runs(int(lanes[i]), int(pipe[i]))]
        out[i] = mux[i] / max(max(segs), 1e-9)  # the first run's adders follow the DSP: a segment of their own
    return out


def sweep() -> None:
    print("# ECP5, 4 lanes int7n x int7n 2:16, k_max 17: Yosys cells by pipeline depth, and the model's LUT sites")
    print(f"| pipeline | {' | '.join(CELLS)} | LUT sites | model | model error |")
    print("|---" * (len(CELLS) + 4) + "|")
    for p in range(4):
        cfg = dict(ENGINE, pipeline=p)
        out, _ = run_synth(verilog_text(config_from_dict(cfg).build()), synth_command("ecp5", False),
                           "tee -q -o stat.txt stat", ["stat.txt"])
        cells = parse_stat(out["stat.txt"])
        sites = int(lut_sites(cells.get("LUT4", 0), cells.get("CCU2C", 0), "ecp5"))
        model = int(predict_frame(config_row(config_from_dict(cfg)), "ecp5")["lut"].iloc[0])
        print(f"| {p} | {' | '.join(str(cells.get(c, 0)) for c in CELLS)} | {sites} | {model} | "
              f"{(model - sites) / sites:+.1%} |", flush=True)


def stored() -> None:
    model, _ = model_for("ecp5")
    lut = model["resources"]["lut"]
    c16 = dict(zip(lut["terms"], lut["coef"]))["lane_excess_int_m16"]
    cal, cal_pred = cv_predictions("ecp5")
    held = heldout_rows("ecp5")
    print(f"\n# ECP5 int x int 16:1 engines: mux segment / slowest other, the LUT-site error of the shipped fit (lane "
          f"at {c16:.3f} x its standalone excess; calibration out of fold), and with the lane at its standalone cost "
          f"(1 x) where the ratio is at least {DELAY_MAPPED:.3f}")
    print("| draw | lanes | pipeline | mux / slowest | LUT sites | model error | lane alone where delay-mapped |")
    print("|---|---|---|---|---|---|---|")
    for name, rows, pred in (("calibration", cal, cal_pred), ("held out", held, predict_frame(held, "ecp5"))):
        f = frame_features(rows, "ecp5")
        lane = design_matrix(rows, "ecp5", model.get("multiplier"))["lut_columns"]["lane_excess_int_m16"]
        ratio, y = mux_ratio(f), rows["lut"].to_numpy(float)
        p = pred["lut"].to_numpy(float)
        alone = p + (ratio >= DELAY_MAPPED) * (1 - c16) * lane
        keep = ((f["mf"] == 0) & (f["mult_dsp"] > 0)).to_numpy() & (lane > 0)
        for i in np.where(keep)[0][np.argsort(ratio[keep])]:
            print(f"| {name} | {f['lanes'].iloc[i]} | {f['pipeline'].iloc[i]} | {ratio[i]:.3f} | {int(y[i])} | "
                  f"{(p[i] - y[i]) / y[i]:+.1%} | {(alone[i] - y[i]) / y[i]:+.1%} |")


def main() -> int:
    sweep()
    stored()
    return 0


if __name__ == "__main__":
    sys.exit(main())
