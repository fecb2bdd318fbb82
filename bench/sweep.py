"""Sweep benchmarks (prints tables; not a test).

``python bench/sweep.py speed``  points/minute with ``--jobs 2`` and the overhead of the sweep
    machinery (store, hashing, progress bar) against calling Brevitas PTQ directly for the same
    points in the same warm process (goal ≤ 10 %).
``python bench/sweep.py table [--model digits] [-o runs/bits-digits.sqlite]``  metric vs
    (format, bit width) for W = A from 3 to 8 bits: the integer format and every minifloat split
    ExMy of that width, with and without PTQ techniques; prints the integer vs best-minifloat
    table (markdown). Resumable: it is an ordinary sweep store.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from quant.sweep import SweepSpace, _workload, evaluate_point, grid, load_results, run_sweep  # noqa: E402

WITH = "smoothquant+gptq+bias_corr"


def speed(args) -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    pts = grid(SweepSpace([args.model], ["int4", "int8", "e2m1", "e3m2"], ["int8"], ["none", "bias_corr"], seeds=[0]))
    with tempfile.TemporaryDirectory() as d:
        # warm: the workload (trained model) is cached in this process for both measurements
        _workload(pts[0])
        evaluate_point(pts[0])
        t = time.perf_counter()
        for p in pts:
            from quant.ptq import PTQConfig, quantize_model

            wl = _workload(p)
            ptq = PTQConfig(per_channel=p.per_channel, techniques=p.ptq, seed=p.seed)
            qm = quantize_model(wl.model, p.wfmt, p.afmt, calib_data=wl.calib, config=ptq)
            wl.evaluate(qm)
        direct = time.perf_counter() - t
        t = time.perf_counter()
        run_sweep(pts, Path(d) / "one.sqlite", jobs=1, progress=False)
        swept = time.perf_counter() - t
        t = time.perf_counter()
        run_sweep(pts, Path(d) / "two.sqlite", jobs=2, progress=False)
        two = time.perf_counter() - t
    n = len(pts)
    print(f"{n} digits points (int4/int8/e2m1/e3m2 weights × int8 acts × none/bias_corr), {os.cpu_count()} CPUs")
    print("| run | seconds | points/min |\n|---|---|---|")
    print(f"| Brevitas PTQ called directly (warm) | {direct:.1f} | {60 * n / direct:.1f} |")
    print(f"| run_sweep, jobs=1 (warm process) | {swept:.1f} | {60 * n / swept:.1f} |")
    print(f"| run_sweep, jobs=2 (incl. spawning 2 workers) | {two:.1f} | {60 * n / two:.1f} |")
    print(f"sweep machinery overhead vs direct: {100 * (swept - direct) / direct:+.1f} % (goal <= 10 %)")


def splits(bits: int) -> list[str]:
    return [f"e{e}m{bits - 1 - e}" for e in range(1, bits)]


def table(args) -> None:
    fmts = []
    for b in range(3, 9):
        fmts += [f"int{b}"] + splits(b)
    out = Path(args.output)
    r = {"done": 0}
    keys = set()
    for f in fmts:  # W = A: one grid per format
        pts = grid(SweepSpace([args.model], [f], [f], ["none", WITH], seeds=args.seeds))
        keys |= {p.key for p in pts}
        r["done"] += run_sweep(pts, out, jobs=args.jobs, progress=not args.quiet)["done"]
    df = load_results(out)
    df = df[df["key"].isin(keys)]  # the store may hold other protocols' points
    flt = df.groupby("seed")["float_metric"].first().mean()
    name = df["metric_name"].iloc[0]
    # mean over seeds (each seed: its own split, trained model and calibration set)
    df = df.groupby(["wfmt", "ptq"], as_index=False)["metric"].mean()
    print(f"model {args.model}: float {name} {flt:.4f} (mean of seeds {args.seeds}); W = A, per-channel "
          f"weights; 'PTQ' = {WITH}; entries are means over the seeds")
    print("| bits | int (RTN) | int (PTQ) | best minifloat (RTN) | best minifloat (PTQ) | winner |")
    print("|---|---|---|---|---|---|")
    for b in range(3, 9):
        row = [str(b)]
        best = {}
        for kind, names in (("int", [f"int{b}"]), ("mf", splits(b))):
            for ptq in ("none", WITH):
                sel = df[df["wfmt"].isin(names) & (df["ptq"] == ptq)]
                if sel.empty:
                    row.append("–")
                    continue
                top = sel.loc[sel["metric"].idxmax()]
                best[(kind, ptq)] = top["metric"]
                row.append(f"{top['metric']:.4f}" + ("" if kind == "int" else f" ({top['wfmt']})"))
        i = max(best.get(("int", "none"), -1), best.get(("int", WITH), -1))
        m = max(best.get(("mf", "none"), -1), best.get(("mf", WITH), -1))
        row.append("minifloat" if m > i else ("int" if i > m else "tie"))
        print("| " + " | ".join(row) + " |")
    # the peer: Brevitas' own integer PTQ results (ANCHORS.md; RESULTS_TORCHVISION.csv, best config)
    drop = {b: df[(df["wfmt"] == f"int{b}") & (df["ptq"] == "none")]["metric"].mean() - flt for b in (8, 4)}
    print("\npeer: Brevitas PTQ, ResNet-18 on ImageNet (W8A8 / W4A8, top-1): 69.758 -> 69.728 / 68.94, "
          "i.e. -0.04% / -1.2% relative")
    print(f"ours: {args.model}, W = A int8 / int4 round-to-nearest: {100 * drop[8] / flt:+.2f}% / "
          f"{100 * drop[4] / flt:+.2f}% relative {name} (note: W = A, so int4 also quantizes activations)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--model", default="digits")
    t = sub.add_parser("table")
    t.add_argument("--model", default="digits")
    t.add_argument("-o", "--output", default="runs/bits-digits.sqlite")
    t.add_argument("--jobs", type=int, default=1)
    t.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    t.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    speed(args) if args.cmd == "speed" else table(args)


if __name__ == "__main__":
    main()
