"""ECP5: abc9's slack moves a sparse engine's index mux between delay and area mapping (the
mechanism behind the cost model's delay-mapped lane term; issue 15; Yosys, cached).

    .venv/bin/python bench/abc9_slack.py

Why: ``synth_ecp5`` maps LUTs with ``abc9 -W 300``, which maps for delay and recovers area only where
a path has slack against the slowest register-to-register path it sees (a MULT18X18D cuts paths:
abc9 sees no timing through it). A 16:1 index mux in front of the multipliers is mapped with wide
LUTs (LUT6 / LUT7 through PFUMX and L6MUX21) when it lies on that slowest path, into LUT4s when
not. The cost model prices such a lane (``data/lanes.csv``) at its standalone cost where
``costmodel.latency.mux_slack_ratio`` is at least ``MUX16_DELAY_MAPPED`` (0.676: where even the
mux's LUT4 form, 4 levels against 2 of LUT6, would be the slowest segment), at the fitted
coefficient of the other int x int 16:1 lanes elsewhere.

1. One engine (4 lanes int7n x int7n, 2:16, k_max 17) at every pipeline depth: cells, LUT sites,
   and the model's LUT sites beside them.
2. Every stored ECP5 int x int 16:1 engine with DSP multipliers (calibration: the shipped fit's
   5-fold out-of-fold error, ``costmodel.resources.cv_predictions``; held out: the shipped fit's):
   its mux segment over the slowest other segment, the shipped model's error, and the error with
   the delay-mapped lanes at the fitted coefficient of the others (the rule taken out, the other
   coefficients as shipped).
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file's folder holds scripts named like packages: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from costmodel.features import config_row, frame_features  # noqa: E402
from costmodel.latency import MUX16_DELAY_MAPPED, mux_slack_ratio  # noqa: E402
from costmodel.resources import cv_predictions, design_matrix, heldout_rows, model_for, predict_frame  # noqa: E402
from hw.engines import config_from_dict  # noqa: E402
from hw.rtl import lut_sites, parse_stat, run_synth, synth_command, verilog_text  # noqa: E402

ENGINE = dict(engine="sparse", lanes=4, wfmt="int7n", afmt="int7n", k_max=17, n=2, m=16, block=None)
CELLS = ("LUT4", "PFUMX", "L6MUX21", "CCU2C", "MULT18X18D", "TRELLIS_FF")


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
    print(f"\n# ECP5 int x int 16:1 engines with DSP multipliers: mux segment / slowest other (delay-mapped from "
          f"{MUX16_DELAY_MAPPED:.3f}), the LUT-site error of the shipped fit (calibration out of fold), and with every "
          f"lane at the fitted {c16:.3f} x its standalone excess (the rule taken out)")
    print("| draw | lanes | pipeline | mux / slowest | LUT sites | shipped error | without the rule |")
    print("|---|---|---|---|---|---|---|")
    for name, rows, pred in (("calibration", cal, cal_pred), ("held out", held, predict_frame(held, "ecp5"))):
        f = frame_features(rows, "ecp5")
        cols = design_matrix(rows, "ecp5", model.get("multiplier"))["lut_columns"]
        mapped = cols["lane_excess_int_m16_delay_mapped"]
        ratio, y = mux_slack_ratio(f), rows["lut"].to_numpy(float)
        p = pred["lut"].to_numpy(float)
        without = p - (1 - c16) * mapped
        keep = ((f["mf"] == 0) & (f["mult_dsp"] > 0)).to_numpy() & (cols["lane_excess_int_m16"] + mapped > 0)
        for i in np.where(keep)[0][np.argsort(ratio[keep])]:
            print(f"| {name} | {f['lanes'].iloc[i]} | {f['pipeline'].iloc[i]} | {ratio[i]:.3f} | {int(y[i])} | "
                  f"{(p[i] - y[i]) / y[i]:+.1%} | {(without[i] - y[i]) / y[i]:+.1%} |")


def main() -> int:
    sweep()
    stored()
    return 0


if __name__ == "__main__":
    sys.exit(main())
