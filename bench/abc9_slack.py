"""ECP5: abc9's slack moves a sparse engine's index mux between delay and area mapping (the
mechanism behind the cost model's delay-mapped lane term; issue 15; Yosys, cached).

    .venv/bin/python bench/abc9_slack.py

Why: ``synth_ecp5`` maps LUTs with ``abc9 -W 300``, which maps for delay and recovers area only where
a path has slack against the slowest register-to-register path it sees (a MULT18X18D cuts paths:
abc9 sees no timing through it). A 16:1 index mux in front of the multipliers is mapped with wide
LUTs (2 levels of LUT6 / LUT7 through PFUMX and L6MUX21) when it lies on that slowest path, into
LUT4s (4 levels) when it has slack. ``costmodel.latency.mux_slack_ratio`` gives the mux segment over
the slowest other (the adders between two registers as one Yosys $macc: full-adder levels and one
carry chain). Below ``MUX16_AREA_FORM`` (0.676) the LUT4 form is fast enough; from
``MUX16_DELAY_MAPPED`` (0.807) on, even the form between (one LUT6 level, two LUT4) is too slow, and
the cost model prices the lane at its standalone cost (``data/lanes.csv``); between the two, at the
fitted coefficient of the other int x int 16:1 lanes, like below.

1. One engine (4 lanes int7n x int7n, 2:16, k_max 17) at every pipeline depth: cells, LUT sites,
   and the model's LUT sites beside them.
2. Every stored ECP5 int x int 16:1 engine with DSP multipliers (calibration: the shipped fit's
   5-fold out-of-fold error, ``costmodel.resources.cv_predictions``; held out: the shipped fit's):
   its mux segment over the slowest other segment, the shipped model's error, and the error with
   the delay-mapped lanes at the fitted coefficient of the others (the rule taken out, the other
   coefficients as shipped).
3. Fresh engines (``--fresh N``, default 30; 0 skips): the first N int x int 16:1 sparse engines of a
   DOE draw with a seed no stored table uses (``--seed``, default :data:`FRESH_SEED`), synthesized now
   (Yosys, cached; about 2 minutes on 2 cores for 30 uncached): the rule on configs it never saw.
4. Fresh minifloat engines whose lanes take the same view (``--mux-bound N``, default 40; 0 skips): a
   16:1 lane whose lone mux abc9 maps for delay, its significand product in a MULT18X18D
   (``costmodel.resources.mux_bound_lanes``), the first N with pipeline >= 1 of the DOE draw of
   :data:`MUX_BOUND_SEED`: the shipped error by the form the model gives the mux, and with their
   lanes at their standalone excess wherever it gives the area form or the one between.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# this file's folder holds scripts named like packages: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from costmodel.calibrate import doe_grid  # noqa: E402
from costmodel.features import config_row, frame_features  # noqa: E402
from costmodel.latency import MUX16_AREA_FORM as AREA_FORM, MUX16_DELAY_MAPPED, mux_slack_ratio  # noqa: E402
from costmodel.resources import (cv_predictions, design_matrix, heldout_rows, index_mux_form, model_for,  # noqa: E402
                                 mux_bound_lanes, predict_frame)
from hw.engines import config_from_dict  # noqa: E402
from hw.rtl import lut_sites, parse_stat, run_synth, synth_command, synthesize, verilog_text  # noqa: E402
from quant.formats import IntFormat, parse_format  # noqa: E402

ENGINE = dict(engine="sparse", lanes=4, wfmt="int7n", afmt="int7n", k_max=17, n=2, m=16, block=None)
CELLS = ("LUT4", "PFUMX", "L6MUX21", "CCU2C", "MULT18X18D", "TRELLIS_FF")
#: the DOE seed of the fresh engines (costmodel.calibrate.doe_grid; the stored draws use 0, 1, 2)
FRESH_SEED = 11
#: the DOE seed of the fresh mux-bound minifloat engines (section 4)
MUX_BOUND_SEED = 12


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


def _rule(rows: pd.DataFrame, pred: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, mux ratio, the shipped LUT sites, those with the delay-form lanes at the fitted
    coefficient of the others (the rule taken out), and whether an engine has a 16:1 int x int lane
    on DSP multipliers, for ECP5 ``rows`` and their predictions ``pred``."""
    model, _ = model_for("ecp5")
    lut = model["resources"]["lut"]
    c16 = dict(zip(lut["terms"], lut["coef"]))["lane_excess_mux_m16"]
    f = frame_features(rows, "ecp5")
    cols = design_matrix(rows, "ecp5", model.get("multiplier"))["lut_columns"]
    mapped = cols["lane_excess_mux_m16_delay_mapped"]
    p = pred["lut"].to_numpy(float)
    keep = ((f["mf"] == 0) & (f["mult_dsp"] > 0)).to_numpy() & (cols["lane_excess_mux_m16"] + mapped > 0)
    return f, mux_slack_ratio(f), p, p - (1 - c16) * mapped, keep


def stored() -> None:
    cal, cal_pred = cv_predictions("ecp5")
    held = heldout_rows("ecp5")
    print(f"\n# ECP5 int x int 16:1 engines with DSP multipliers: mux segment / slowest other (priced alone from "
          f"{MUX16_DELAY_MAPPED:.3f}), the LUT-site error of the shipped fit (calibration out of fold), and with the "
          f"lanes priced alone at the fitted coefficient of the others (the rule taken out)")
    print("| draw | lanes | pipeline | mux / slowest | LUT sites | shipped error | without the rule |")
    print("|---|---|---|---|---|---|---|")
    for name, rows, pred in (("calibration", cal, cal_pred), ("held out", held, predict_frame(held, "ecp5"))):
        f, ratio, p, without, keep = _rule(rows, pred)
        y = rows["lut"].to_numpy(float)
        for i in np.where(keep)[0][np.argsort(ratio[keep])]:
            print(f"| {name} | {f['lanes'].iloc[i]} | {f['pipeline'].iloc[i]} | {ratio[i]:.3f} | {int(y[i])} | "
                  f"{(p[i] - y[i]) / y[i]:+.1%} | {(without[i] - y[i]) / y[i]:+.1%} |")


def _sites(cfg: dict) -> int:
    return synthesize(config_from_dict(cfg), "ecp5").lut_sites


def fresh(count: int, seed: int = FRESH_SEED, jobs: int = 2) -> None:
    cfgs = [c for c in doe_grid(seed=seed, count=5000) if c["engine"] == "sparse" and c["m"] == 16
            and all(isinstance(parse_format(c[k]), IntFormat) for k in ("wfmt", "afmt"))][:count]
    if not cfgs:
        return
    rows = pd.concat([config_row(config_from_dict(c)) for c in cfgs], ignore_index=True)
    with ProcessPoolExecutor(jobs) as pool:
        y = np.array(list(pool.map(_sites, cfgs)), dtype=float)
    _, ratio, p, without, _ = _rule(rows, predict_frame(rows, "ecp5"))
    err, without = (p - y) / y, (without - y) / y
    print(f"\n# {len(cfgs)} fresh ECP5 int x int 16:1 engines (doe_grid seed {seed}, never stored), Yosys now: "
          "LUT sites against the shipped model, and with the rule taken out")
    print("| lanes | n | formats | k_max | pipeline | mux / slowest | LUT sites | shipped error | without the rule |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i in np.argsort(ratio):
        c = cfgs[i]
        print(f"| {c['lanes']} | {c['n']} | {c['wfmt']} x {c['afmt']} | {c['k_max']} | {c['pipeline']} | "
              f"{ratio[i]:.3f} | {int(y[i])} | {err[i]:+.1%} | {without[i]:+.1%} |")
    _error_table("mux / slowest", "without the rule", err, without, (
        (f"< {AREA_FORM:.3f} (area form)", ratio < AREA_FORM),
        (f"{AREA_FORM:.3f} - {MUX16_DELAY_MAPPED:.3f} (between)", (ratio >= AREA_FORM) & (ratio < MUX16_DELAY_MAPPED)),
        (f">= {MUX16_DELAY_MAPPED:.3f} (delay form, priced alone)", ratio >= MUX16_DELAY_MAPPED)))


def _error_table(group: str, other: str, err: np.ndarray, alt: np.ndarray,
                 groups: tuple[tuple[str, np.ndarray], ...]) -> None:
    """Median / p90 / max of the relative errors ``err`` (shipped) and ``alt`` (``other``) per
    non-empty group (name, row mask)."""
    print(f"\n| {group} | engines | shipped median / p90 / max abs error | {other} |")
    print("|---|---|---|---|")
    for name, sel in groups:
        if sel.any():
            a, b = np.abs(err[sel]), np.abs(alt[sel])
            print(f"| {name} | {int(sel.sum())} | {np.median(a):.1%} / {np.quantile(a, 0.9):.1%} / {a.max():.1%} | "
                  f"{np.median(b):.1%} / {np.quantile(b, 0.9):.1%} / {b.max():.1%} |")


def mux_bound(count: int, seed: int = MUX_BOUND_SEED, jobs: int = 2) -> None:
    cfgs = [c for c in doe_grid(seed=seed, count=20000) if c["engine"] == "sparse" and c["m"] == 16
            and c["pipeline"] >= 1]
    rows = pd.concat([config_row(config_from_dict(c)) for c in cfgs], ignore_index=True)
    f, pairs = frame_features(rows, "ecp5", return_pairs=True)
    pick = np.where(mux_bound_lanes(pairs, f["pair_id"].to_numpy(), f["mux_m"].to_numpy(), "ecp5"))[0][:count]
    if not len(pick):
        return
    cfgs, rows, f = [cfgs[i] for i in pick], rows.iloc[pick].reset_index(drop=True), f.iloc[pick].reset_index(drop=True)
    with ProcessPoolExecutor(jobs) as pool:
        y = np.array(list(pool.map(_sites, cfgs)), dtype=float)
    model, _ = model_for("ecp5")
    lut = model["resources"]["lut"]
    c16 = dict(zip(lut["terms"], lut["coef"]))["lane_excess_mux_m16"]
    form = index_mux_form(f, pairs, "ecp5")
    fitted = design_matrix(rows, "ecp5", model.get("multiplier"))["lut_columns"]["lane_excess_mux_m16"]
    p = predict_frame(rows, "ecp5")["lut"].to_numpy(float)
    err, alone = (p - y) / y, (p + (1 - c16) * fitted - y) / y
    print(f"\n# {len(cfgs)} fresh ECP5 sparse engines with a mux-bound minifloat 16:1 lane (doe_grid seed {seed}, "
          "pipeline >= 1, never stored), Yosys now: LUT sites against the shipped model, and with those lanes at their "
          "standalone excess where the model gives the mux its area form or the one between")
    print("| lanes | n | formats | block | pipeline | mux / slowest | form | LUT sites | shipped error | standalone |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratio = mux_slack_ratio(f)
    for i in np.argsort(ratio):
        c = cfgs[i]
        print(f"| {c['lanes']} | {c['n']} | {c['wfmt']} x {c['afmt']} | {c.get('block')} | {c['pipeline']} | "
              f"{ratio[i]:.3f} | {form[i]} | {int(y[i])} | {err[i]:+.1%} | {alone[i]:+.1%} |")
    _error_table("the model's mux form", "lanes at their standalone excess", err, alone, (
        ("area", form == 0), ("between", form == 1), ("delay (priced alone)", form == 2),
        ("all", np.ones(len(form), dtype=bool))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fresh", type=int, default=30, help="fresh engines to synthesize (0: none; default 30)")
    ap.add_argument("--seed", type=int, default=FRESH_SEED, help=f"their DOE seed (default {FRESH_SEED})")
    ap.add_argument("--mux-bound", type=int, default=40,
                    help="fresh minifloat engines with a mux-bound 16:1 lane to synthesize (0: none; default 40)")
    args = ap.parse_args(argv)
    sweep()
    stored()
    fresh(args.fresh, args.seed)
    mux_bound(args.mux_bound)
    return 0


if __name__ == "__main__":
    sys.exit(main())
