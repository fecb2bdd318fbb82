"""ECP5: abc9 recovers area on the multipliers of an engine whose slowest path lies elsewhere
(the mechanism behind the cost model's multiplier curves; issue 15; Yosys, cached).

    .venv/bin/python bench/mult_budget.py [--fresh N --seed S] [--probe]

Why: ``synth_ecp5`` maps LUTs with abc9, which maps for delay and then recovers area wherever a
path is faster than the slowest one it sees. With a register right after the multipliers (pipeline
>= 1) they are a run of their own, and the slowest run of adders behind them (one Yosys $macc per
run: full-adder levels and a carry chain, ``costmodel.latency.multiplier_budget_ns``) is the delay
they may take. A minifloat multiplier (decoders, significand product, alignment shifter) alone takes
about half its LUTs when abc9 may take 5 ns instead of 3 for it. ``data/mult_curves.csv`` stores each
multiplier alone under abc9 delay targets (``python -m costmodel.calibrate mult-curves``); the model
prices an engine's multipliers at their curve's value at that budget.

0. With ``--probe`` (12 engines x about 7 Yosys runs, 10 minutes on 2 cores uncached): abc9's own
   critical delay of int8 x int8 engines (their products in MULT18X18D, so a run of adders is the
   slowest), probed by delay targets: the smallest ``abc9.D`` under which Yosys recovers area (fewer
   LUT sites than with no target), by bisection to 150 ps, against the view's slowest run of adders
   (``costmodel.latency._slowest_adder_run_ns`` at ``MACC_FA_LEVEL_NS`` per full-adder level).
1. One multiplier's curve (e4m3ieee x e2m4): LUT sites against abc9's delay target.
2. One engine (32 lanes of it, k_max 125) at every pipeline depth: Yosys against the model, and the
   model with the multipliers at their delay form (the curves taken out, every coefficient as
   shipped).
3. Every stored ECP5 minifloat engine at pipeline >= 1 (calibration: the shipped fit's 5-fold
   out-of-fold error, ``costmodel.resources.cv_predictions``; held out: the shipped fit's), by how
   much of its multipliers' delay form the curve leaves: the error with and without the curves.
4. Fresh engines (``--fresh N``, default 16; 0 skips): the first N minifloat engines (dense or sparse) at
   pipeline >= 1 of at most 32 lanes whose curve acts (under 95 % of the delay form) of a DOE draw with a seed no stored table uses (``--seed``, default
   :data:`FRESH_SEED`), synthesized now (Yosys, cached).
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
from costmodel.latency import MACC_FA_LEVEL_NS, _slowest_adder_run_ns  # noqa: E402
from costmodel.resources import (_curve_table, _primitive_table, cv_predictions, heldout_rows, model_for,  # noqa: E402
                                 mult_forms, predict_frame)
from hw.engines import config_from_dict  # noqa: E402
from hw.rtl import abc9_critical_ns, synthesize  # noqa: E402
from quant.formats import MinifloatFormat, parse_format  # noqa: E402

PAIR = ("e4m3ieee", "e2m4")
ENGINE = dict(engine="dot", lanes=32, wfmt=PAIR[0], afmt=PAIR[1], k_max=125)
#: the DOE seed of the fresh engines (costmodel.calibrate.doe_grid; the stored draws use 0, 1, 2)
FRESH_SEED = 15


#: (lanes, pipeline, k_max) of the probed int8 x int8 engines
PROBES = ((4, 1, 1024), (8, 1, 1024), (16, 1, 1024), (32, 1, 1024), (64, 1, 1024), (16, 2, 1024), (32, 2, 1024),
          (64, 2, 1024), (64, 3, 1024), (8, 2, 1024), (16, 1, 16), (16, 1, 16384))


def _critical_ns(cfg: dict) -> float:
    return abc9_critical_ns(config_from_dict(cfg), "ecp5")


def probe(jobs: int = 2) -> None:
    cfgs = [dict(engine="dot", lanes=n, wfmt="int8", afmt="int8", k_max=k, pipeline=p) for n, p, k in PROBES]
    with ProcessPoolExecutor(jobs) as pool:
        seen = np.array(list(pool.map(_critical_ns, cfgs)))
    rows = pd.concat([config_row(config_from_dict(c)) for c in cfgs], ignore_index=True)
    view = _slowest_adder_run_ns(frame_features(rows, "ecp5"), MACC_FA_LEVEL_NS)
    print(f"# abc9's critical delay of int8 x int8 ECP5 engines, probed by delay targets, against the view's slowest "
          f"run of adders ({MACC_FA_LEVEL_NS} ns per full-adder level)")
    print("| lanes | pipeline | k_max | abc9 (ns, +-0.075) | view (ns) | view - abc9 |")
    print("|---|---|---|---|---|---|")
    for (n, p, k), a, v in zip(PROBES, seen, view):
        print(f"| {n} | {p} | {k} | {a:.2f} | {v:.2f} | {v - a:+.2f} |")
    print(f"max |view - abc9| {np.nanmax(np.abs(view - seen)):.2f} ns\n")


def curve() -> None:
    ns, luts = _curve_table("ecp5")[PAIR]
    delay = _primitive_table("ecp5")[PAIR]
    print(f"# {PAIR[0]} x {PAIR[1]} alone on ECP5: LUT sites under abc9 delay targets (data/mult_curves.csv; "
          f"delay form, no target: {delay:.0f})")
    print("| abc9 delay target (ns) | " + " | ".join(f"{x:g}" for x in ns) + " |")
    print("|---" * (len(ns) + 1) + "|")
    print("| LUT sites | " + " | ".join(f"{v:.0f}" for v in luts) + " |")


def _with_and_without(rows: pd.DataFrame, pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Budget (ns), the LUT sites as predicted, and with the multipliers at their delay form (the
    shipped ``mult_measured`` coefficient times the LUTs the curve took off)."""
    model, _ = model_for("ecp5")
    lut = model["resources"]["lut"]
    coef = dict(zip(lut["terms"], lut["coef"]))["mult_measured"]
    f, pairs = frame_features(rows, "ecp5", return_pairs=True)
    budget, delay, at = mult_forms(f, pairs, "ecp5")
    p = pred["lut"].to_numpy(float)
    return budget, p, p + coef * f["lanes"].to_numpy(float) * (delay - at), at / np.maximum(delay, 1e-9)


def sweep() -> None:
    print(f"\n# ECP5, {ENGINE['lanes']} lanes {PAIR[0]} x {PAIR[1]}, k_max {ENGINE['k_max']}: Yosys by pipeline depth, "
          "the model, and the model with the multipliers at their delay form")
    print("| pipeline | multiplier budget (ns) | LUT sites | model | error | delay form | error |")
    print("|---|---|---|---|---|---|---|")
    for p in range(7):
        cfg = dict(ENGINE, pipeline=p)
        row = config_row(config_from_dict(cfg))
        y = _sites(cfg)
        budget, model, without, _ = _with_and_without(row, predict_frame(row, "ecp5"))
        print(f"| {p} | {budget[0]:.2f} | {y} | {model[0]:.0f} | {(model[0] - y) / y:+.1%} | {without[0]:.0f} | "
              f"{(without[0] - y) / y:+.1%} |", flush=True)


def _table(name: str, y: np.ndarray, p: np.ndarray, without: np.ndarray, share: np.ndarray) -> None:
    err, wo = np.abs(p - y) / y, np.abs(without - y) / y
    for label, sel in (("curve >= 95 % of the delay form", share >= 0.95),
                       ("70-95 %", (share >= 0.7) & (share < 0.95)), ("< 70 %", share < 0.7),
                       ("all", share >= 0)):
        if sel.any():
            print(f"| {name} | {label} | {int(sel.sum())} | {np.median(err[sel]):.1%} / {np.quantile(err[sel], 0.9):.1%}"
                  f" / {err[sel].max():.1%} | {np.median(wo[sel]):.1%} / {np.quantile(wo[sel], 0.9):.1%} / "
                  f"{wo[sel].max():.1%} |")


def _minifloat_piped(rows: pd.DataFrame) -> np.ndarray:
    f = frame_features(rows, "ecp5")
    return ((f["mf"] > 0) & (f["pipeline"] > 0)).to_numpy()


def stored() -> None:
    cal, cal_pred = cv_predictions("ecp5")
    held = heldout_rows("ecp5")
    print("\n# Stored ECP5 minifloat engines at pipeline >= 1, by the share of their multipliers' delay form the "
          "curve leaves at their budget: LUT-site error median / p90 / max, with the curves and with the "
          "multipliers at their delay form")
    print("| draw | curve at the budget | engines | with the curves | delay form |")
    print("|---|---|---|---|---|")
    for name, rows, pred in (("calibration (5-fold)", cal, cal_pred), ("held out", held, predict_frame(held, "ecp5"))):
        keep = _minifloat_piped(rows)
        rows, pred = rows[keep].reset_index(drop=True), pred[keep].reset_index(drop=True)
        _, p, without, share = _with_and_without(rows, pred)
        _table(name, rows["lut"].to_numpy(float), p, without, share)


def _sites(cfg: dict) -> int:
    return synthesize(config_from_dict(cfg), "ecp5").lut_sites


def fresh(count: int, seed: int = FRESH_SEED, jobs: int = 2) -> None:
    drawn = [c for c in doe_grid(seed=seed, count=5000) if c["pipeline"] >= 1 and c["lanes"] <= 32
             and any(isinstance(parse_format(c[k]), MinifloatFormat) for k in ("wfmt", "afmt"))]
    rows = pd.concat([config_row(config_from_dict(c)) for c in drawn], ignore_index=True)
    # where the curves act: the first engines whose multipliers' curve at their budget is under 95 % of
    # their delay form (about 3 % of such draws)
    share = _with_and_without(rows, rows.assign(lut=0))[3]
    keep = np.where(share < 0.95)[0][:count]
    if not len(keep):
        return
    cfgs, rows = [drawn[i] for i in keep], rows.iloc[keep].reset_index(drop=True)
    with ProcessPoolExecutor(jobs) as pool:
        y = np.array(list(pool.map(_sites, cfgs)), dtype=float)
    budget, p, without, share = _with_and_without(rows, predict_frame(rows, "ecp5"))
    print(f"\n# fresh ECP5 minifloat engines at pipeline >= 1 of at most 32 lanes whose multipliers' curve at their "
          f"budget is under 95 % of their delay form: the first {len(cfgs)} of doe_grid seed {seed} (never stored), "
          "Yosys now: LUT sites against the model, and with the multipliers at their delay form")
    print("| engine | lanes | formats | k_max | pipeline | budget (ns) | curve / delay form | LUT sites | error | "
          "delay form |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i in np.lexsort((share, [c["engine"] for c in cfgs])):
        c = cfgs[i]
        kind = "dot" if c["engine"] == "dot" else f"sparse {c['n']}:{c['m']}"
        print(f"| {kind} | {c['lanes']} | {c['wfmt']} x {c['afmt']} | {c['k_max']} | {c['pipeline']} | "
              f"{budget[i]:.2f} | {share[i]:.2f} | {int(y[i])} | {(p[i] - y[i]) / y[i]:+.1%} | "
              f"{(without[i] - y[i]) / y[i]:+.1%} |")
    print("\n| draw | curve at the budget | engines | with the curves | delay form |")
    print("|---|---|---|---|---|")
    for e in ("dot", "sparse"):
        sel = np.array([c["engine"] == e for c in cfgs])
        if sel.any():
            _table(f"fresh {e}, seed {seed}", y[sel], p[sel], without[sel], share[sel])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fresh", type=int, default=16, help="fresh engines to synthesize (0: none; default 16)")
    ap.add_argument("--seed", type=int, default=FRESH_SEED, help=f"their DOE seed (default {FRESH_SEED})")
    ap.add_argument("--probe", action="store_true", help="probe abc9's critical delay of 12 int8 engines first")
    args = ap.parse_args(argv)
    if args.probe:
        probe()
    curve()
    sweep()
    stored()
    fresh(args.fresh, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
