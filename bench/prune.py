"""CRISP-style pruning of a MAP student: metric vs sparsity, and what each pattern costs on the
engines.

    python bench/prune.py                      # pr, scale 18, the Mixer student explore trains
    python bench/prune.py --app bfs --out runs/bench_prune_bfs
    python bench/prune.py --arch swa --out runs/bench_prune_swa   # the SWA student (attention on the SWA kernel)

Rows: dense, then 2:4, 1:4 and 2:4 + 50% blocks of 8, each × saliency (magnitude, class = top-K
label bits) × (one-shot, SR-STE fine-tuning), plus a dense model fine-tuned for the same epochs
(the control: how much of SR-STE's gain is just more training), and the dense and 2:4 students on
engines of lanes/4 multipliers (the control: how much of the hybrid's gain is the smaller engine
alone). Columns: weight sparsity, test
micro-F1 of the float student (threshold from validation; fine-tuned rows: mean ± sd over
``--ft-seeds`` fine-tuning seeds), of the int8 PTQ student (first seed), and over the top-K label
bits only; the engine that runs the pattern (``paretofab.mapping.engine_for``, costed by
``paretofab.explore.network_cost``:
dense ``DotConfig``, ``SparseConfig`` N:M, and N:M + block skipping at the lanes whose span
divides the block) with its LUTs, cycles, latency and energy for one inference over all layers
(costmodel, xczu3eg); the Pareto rank (``costmodel.pareto``: int8 F1 up; LUT, latency, energy
down). The student is trained once and reused from ``OUT/students/<arch>_<app>_<hash>``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from costmodel import pareto  # noqa: E402
from models import prune as P  # noqa: E402
from models.map_data import load_splits  # noqa: E402
from models.zoo import load_checkpoint  # noqa: E402
from models.workload import TraceSpec  # noqa: E402
from paretofab.explore import ExploreConfig, attention_cost, network_cost, train_student  # noqa: E402
from paretofab.mapping import attention_kernels, block_density, engine_for, layer_workloads  # noqa: E402

PATTERNS = ("2:4", "1:4", "2:4+b8k0.5")


def quantized_f1(model, sp, fmt: str, cls) -> dict:
    """Test micro-F1 (all bits, preferred bits) of ``model`` after plain ``fmt`` × ``fmt`` PTQ."""
    from quant.ptq import quantize_model

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # and Brevitas' printed trace of its layerwise fallback
        q = quantize_model(model, fmt, fmt, calib_data=sp["x_train"][:256])
        r = P.evaluate(q, sp, cls)
    return {"f1_q": r["f1"], "f1_q_classes": r.get("f1_classes", np.nan)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", default="pr")
    ap.add_argument("--arch", default="mixer", help="student architecture (resnet, mixer, swa; lstm weights are not prunable)")
    ap.add_argument("--scale", type=int, default=18)
    ap.add_argument("--method", default="none", help="none, kd or packd (default none, as explore)")
    ap.add_argument("--epochs", type=int, default=40, help="student epochs (early stopping)")
    ap.add_argument("--ft-epochs", type=int, default=4, help="SR-STE epochs")
    ap.add_argument("--ft-seeds", type=int, default=3, help="fine-tuning seeds (F1 mean ± sd)")
    ap.add_argument("--classes", default="top32")
    ap.add_argument("--fmt", default="int8", help="W = A format of the PTQ column and the engines")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--device", default="xczu3eg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_prune")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    cfg = ExploreConfig(out=args.out, workload=TraceSpec(app=args.app, scale=args.scale), arch=args.arch,
                        method=args.method, epochs=args.epochs, spread_seeds=1,
                        lanes=args.lanes, device=args.device, seed=args.seed, progress=False)
    student = train_student(cfg)
    base = load_checkpoint(student / "student.pt")
    sp = load_splits(student / "data.npz")
    cls = P.resolve_classes(args.classes, sp["y_train"])
    layers = layer_workloads(base, torch.as_tensor(sp["x_test"][:1]))
    if not all(lr.prunable for lr in layers):
        raise SystemExit(f"{args.arch}: recurrent weights are not prunable; pick resnet, mixer or swa")
    att = attention_cost(attention_kernels(base, torch.as_tensor(sp["x_test"][:1]), args.lanes),
                         args.device)  # SWA kernel, same for every row
    print(f"student: {args.method} {args.arch} on {args.app} (scale {args.scale}), {len(sp['y_train'])} training rows; "
          f"{args.classes} label bits hold {sp['y_train'][:, cls].sum() / sp['y_train'].sum():.1%} of the positives "
          f"(student ready after {time.perf_counter() - t0:.0f} s)")

    runs = [("dense", "-", "-", lambda seed: copy.deepcopy(base)),
            ("dense", "-", f"fine-tuned {args.ft_epochs} ep (control)",
             lambda seed: P.finetune(copy.deepcopy(base), "dense", sp,
                                     P.PruneConfig(epochs=args.ft_epochs, seed=seed, progress=False)))]
    for pat in PATTERNS:
        for sal in ("magnitude", "class"):
            c = cls if sal == "class" else None
            runs.append((pat, sal, "one-shot", lambda seed, pat=pat, sal=sal, c=c: P.prune(
                copy.deepcopy(base), pat, saliency=sal, data=(sp["x_train"], sp["y_train"]), classes=c)))
            runs.append((pat, sal, f"SR-STE {args.ft_epochs} ep", lambda seed, pat=pat, sal=sal, c=c: P.finetune(
                copy.deepcopy(base), pat, sp, P.PruneConfig(sal, None if c is None else tuple(c.tolist()),
                                                            epochs=args.ft_epochs, seed=seed, progress=False))))
    rows = []
    made: dict[tuple, torch.nn.Module] = {}
    small = max(1, args.lanes // 4)
    # controls: the dense and 2:4 students on small engines too (lanes vs sparsity)
    runs += [("dense", "-", "-", None, small), ("2:4", "magnitude", f"SR-STE {args.ft_epochs} ep", None, small)]
    for run in runs:
        pat, sal, how, make = run[:4]
        lanes = run[4] if len(run) > 4 else args.lanes
        t1 = time.perf_counter()
        p = P.parse_pattern(pat)
        if (pat, sal, how) not in made:  # fine-tuned runs: once per seed (F1 mean ± sd)
            seeds = range(args.seed, args.seed + (args.ft_seeds if how not in ("-", "one-shot") else 1))
            ms = [make(sd) for sd in seeds]
            for m in ms:
                for name, mod in P.prunable_layers(m):
                    P.check_pattern(mod.weight, p, name)
            f1s = [P.evaluate(m, sp, cls)["f1"] for m in ms]
            made[pat, sal, how] = (ms[0], float(np.mean(f1s)), float(np.std(f1s)) if len(f1s) > 1 else np.nan)
        model, f1_mean, f1_sd = made[pat, sal, how]
        r = P.evaluate(model, sp, cls)
        config = engine_for(p, args.fmt, max(lr.k for lr in layers), lanes)
        cost = {"lanes": config.lanes, **network_cost(config, layers, args.device, block_density(model, p), att)}
        rows.append({"pattern": pat, "saliency": sal, "method": how, "sparsity": r["sparsity"], "f1": f1_mean,
                     "f1_sd": f1_sd,
                     **quantized_f1(model, sp, args.fmt, cls), "f1_classes": r.get("f1_classes", np.nan),
                     "engine": f"{'dot' if p.is_dense else 'sparse'} x{cost['lanes']}", "lut": cost["lut"],
                     "dsp": cost["dsp"], "cycles": cost["cycles"], "latency_us": cost["latency_us"],
                     "energy_nj": cost["energy_nj"], "seconds": time.perf_counter() - t1})
        print(f"  {pat:<11} {sal:<9} {how:<28} F1 {f1_mean:.4f} ({time.perf_counter() - t1:.0f} s)", flush=True)
    df = pareto(pd.DataFrame(rows), maximize=["f1_q"], minimize=["lut", "latency_us", "energy_nj"], all_ranks=True)
    df = df.rename(columns={"pareto_rank": "rank"})
    out = Path(args.out)
    df.to_csv(out / "prune_table.csv", index=False)
    cols = ["pattern", "saliency", "method", "sparsity", "f1", "f1_sd", "f1_q", "f1_classes", "engine", "lut", "cycles",
            "latency_us", "energy_nj", "rank"]
    heads = ["pattern", "saliency", "method", "zeros", "F1", "± sd", f"F1 {args.fmt}", f"F1 {args.classes}", "engine",
             "LUT", "cycles", "latency µs", "energy nJ", "rank"]
    fmt = {"sparsity": "{:.0%}", "f1": "{:.4f}", "f1_sd": "{:.4f}", "f1_q": "{:.5f}", "f1_classes": "{:.4f}",
           "latency_us": "{:.2f}", "energy_nj": "{:.1f}"}
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join("-" if isinstance(r[c], float) and np.isnan(r[c]) else
                                       fmt.get(c, "{}").format(r[c]) for c in cols) + " |")
    table = "\n".join(lines)
    (out / "prune_table.md").write_text(table + "\n")
    meta = {"args": vars(args), "seconds": time.perf_counter() - t0,
            "student": json.loads((student / "metrics.json").read_text()).get("f1")}
    (out / "prune_meta.json").write_text(json.dumps(meta, indent=2))
    print()
    print(table)
    print_peer(df)
    print(f"\nwrote {out}/prune_table.md, prune_table.csv ({time.perf_counter() - t0:.0f} s)")


def print_peer(df: pd.DataFrame) -> None:
    """Our best pruned engine against the dense engine of the same lanes, beside CRISP's claim."""
    dense = df[(df["pattern"] == "dense") & (df["method"] == "-")].set_index("engine")
    pruned = df[(df["pattern"] != "dense") & df["method"].str.startswith("SR-STE")].copy()
    pruned["dense_engine"] = pruned["engine"].str.replace("sparse", "dot")
    pruned = pruned[pruned["dense_engine"].isin(dense.index)]
    if pruned.empty:
        return
    pruned["speedup"] = [dense.loc[e, "cycles"] / c for e, c in zip(pruned["dense_engine"], pruned["cycles"])]
    pruned["energy_x"] = [dense.loc[e, "energy_nj"] / v for e, v in zip(pruned["dense_engine"], pruned["energy_nj"])]
    b = pruned.loc[pruned["speedup"].idxmax()]
    print(f"\npeer: CRISP (DATE'24) reports up to 14x lower latency and energy than earlier pruning methods "
          f"(its accelerator, its baselines).\nours: {b['pattern']} ({b['saliency']}, {b['method']}) on "
          f"{b['engine']} vs the dense {b['dense_engine']}: {b['speedup']:.2f}x fewer cycles, "
          f"{b['energy_x']:.2f}x less energy, F1 {b['f1']:.4f} vs {dense.loc[b['dense_engine'], 'f1']:.4f}")


if __name__ == "__main__":
    main()
