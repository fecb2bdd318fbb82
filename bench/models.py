"""Benchmarks of the models package.

    python bench/models.py            # trace generation accesses/s, student training samples/s
    python bench/models.py --table    # NoKD / KD / PaCKD grid -> runs/models_table/table.md
    python bench/models.py --why      # LLC stream composition per load site (explains the table)

The table run appends each finished (app, arch, method) to ``results.jsonl`` and skips finished
points when rerun, so it can be killed and resumed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import distill as D  # noqa: E402
from models import map_data, metrics, traces, zoo  # noqa: E402
from models.cli import load_or_make_splits  # noqa: E402


def bench_speed(scale: int, max_loads: int, rows: int) -> None:
    print(f"trace generation (scale {scale}, {max_loads} raw loads; graph build included)")
    print("rates per second of wall time and (in brackets) of this process's CPU time; on a shared "
          "machine the CPU-time rate is the one to compare")
    print(f"{'app':<6} {'LLC acc':>9} {'wall s':>7} {'cpu s':>6} {'raw loads/s':>20} {'LLC acc/s':>16}")
    for app in traces.APPS:
        t0, c0 = time.perf_counter(), time.process_time()
        tr = traces.generate(app, scale=scale, max_loads=max_loads)
        dt, ct = time.perf_counter() - t0, time.process_time() - c0
        print(f"{app:<6} {len(tr):>9} {dt:>7.2f} {ct:>6.2f} {max_loads / dt:>10,.0f} ({max_loads / ct:>9,.0f})"
              f" {len(tr) / dt:>7,.0f} ({len(tr) / ct:>7,.0f})")
    x = np.random.default_rng(0).integers(0, 1 << 20, 1_000_000)
    t0, c0 = time.perf_counter(), time.process_time()
    traces.lru_hits(x, traces.L1D.sets, traces.L1D.ways)
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    print(f"LRU model, L1D geometry, 1e6 random lines: {1e6 / dt:,.0f} accesses/s ({1e6 / ct:,.0f} CPU)")
    sp, _ = load_or_make_splits("pr", scale, 0, max_loads, rows, progress=False)
    cfg = D.TrainConfig(epochs=1, patience=1, progress=False)
    print(f"\ntraining samples/s (1 thread, batch {cfg.batch_size}, {len(sp['y_train'])} rows, 1 epoch)")
    for arch in zoo.ARCHS:
        for preset in ("student", "cpu"):
            torch.manual_seed(0)
            m = zoo.build(arch, preset)
            c0 = time.process_time()
            h = D.fit(m, sp["x_train"], sp["y_train"], sp["x_val"], sp["y_val"], cfg)
            ct = time.process_time() - c0  # includes the validation pass
            print(f"{arch:<7} {preset:<8} {zoo.count_params(m):>9,} params {h['samples_per_s']:>9,.0f} samples/s"
                  f" ({len(sp['y_train']) / ct:>7,.0f} per CPU second incl. validation)")


def composition(scale: int, max_loads: int, prefetch_degree: int = 0) -> None:
    """Why the table looks as it does: which load sites make up the LLC stream."""
    print(f"LLC stream composition (scale {scale}, {max_loads} raw loads): share of LLC accesses per "
          "load site (array), and share of accesses whose next block is within +-128 blocks")
    for app in traces.APPS:
        tr = traces.generate(app, scale=scale, max_loads=max_loads, prefetch_degree=prefetch_degree)
        inv = {v: k for k, v in traces.site_ips(app).items()}
        u, c = np.unique(tr.ip, return_counts=True)
        share = {traces.SITES[app][inv[int(a)]]: 0.0 for a in u}
        for a, n in zip(u, c):
            share[traces.SITES[app][inv[int(a)]]] += n / len(tr)
        d = np.diff((tr.addr >> np.uint64(6)).astype(np.int64))
        near = (np.abs(d) <= 128).mean()
        parts = ", ".join(f"{k} {v:.0%}" for k, v in sorted(share.items(), key=lambda kv: -kv[1]))
        print(f"{app:<5} {len(tr):>7} LLC acc | {parts} | next within +-128: {near:.0%}")


def run_table(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    done = {}
    if store.exists():
        for line in store.read_text().splitlines():
            r = json.loads(line)
            done[(r["app"], r["arch"], r["method"])] = r
    base_file = out / "baselines.json"
    base = json.loads(base_file.read_text()) if base_file.exists() else {}
    args.baselines = base
    cfg = D.TrainConfig(epochs=args.epochs, patience=args.patience, progress=False, seed=args.seed)
    tcfg = D.TrainConfig(epochs=args.teacher_epochs, patience=args.patience, progress=False, seed=args.seed)
    for app in args.apps:
        sp = None
        for arch in args.archs:
            for method in D.METHODS:
                if (app, arch, method) in done:
                    continue
                if sp is None:
                    sp, info = load_or_make_splits(app, args.scale, args.seed, args.max_loads,
                                                   args.max_rows, progress=False,
                                                   prefetch_degree=args.prefetch_degree)
                    base[app] = metrics.frequency_baseline(sp["y_train"], sp["y_val"], sp["y_test"])["f1"]
                    (out / "baselines.json").write_text(json.dumps(base, indent=1))
                t0 = time.perf_counter()
                r = D.distill(sp, arch, method, args.clusters, args.feature, "cpu", cfg=cfg,
                              teacher_cfg=tcfg, info=info)
                r = {k: v for k, v in r.items() if k not in ("train_config",)}
                with store.open("a") as f:
                    f.write(json.dumps(r, default=float) + "\n")
                done[(app, arch, method)] = r
                print(f"{app} {arch} {method}: f1 {r['f1']:.4f} floor {r['floor']:.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
                (out / "table.md").write_text(render(done, args))
    (out / "table.md").write_text(render(done, args))
    print((out / "table.md").read_text())


def render(done: dict, args: argparse.Namespace) -> str:
    lines = [f"Test micro-F1 (threshold chosen on validation; F1 at 0.5 in brackets), scale "
             f"{args.scale}, {args.max_rows} rows (70/10/20 time split), `cpu` teachers, "
             f"PaCKD k={args.clusters} on `{args.feature}`, student <= {args.epochs} epochs, "
             f"teachers <= {args.teacher_epochs}, patience {args.patience}, seed {args.seed}, "
             f"stream-prefetch degree {args.prefetch_degree}. "
             "floor: all-ones predictor 2p/(1+p); freq: input-blind per-bit training frequency "
             "(threshold on validation). Teacher columns: the `cpu` teacher(s) on the same test rows "
             "(PaCKD: each row scored by its cluster's teacher).", "",
             "| app | arch | floor | freq | NoKD | KD | PaCKD | KD teacher | PaCKD teachers | student params | "
             "teacher params | compression | label density | PaCKD cluster sizes (train) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for app in args.apps:
        for arch in args.archs:
            if not any(done.get((app, arch, m)) for m in D.METHODS):
                continue
            for m in D.METHODS:
                if done.get((app, arch, m)) and "freq_baseline" not in done[(app, arch, m)]:
                    done[(app, arch, m)]["freq_baseline"] = args.baselines.get(app, float("nan"))
            rs = {m: done.get((app, arch, m)) for m in D.METHODS}
            any_r = next(r for r in rs.values() if r)

            def cell(r):
                return f"{r['f1']:.3f} ({r['f1_at_0.5']:.3f})" if r else "—"

            def tcell(r):
                return f"{r['teacher']['f1']:.3f}" if r and "teacher" in r else "—"

            kd = rs["kd"] or {}
            pk = rs["packd"] or {}
            tp = kd.get("teacher_params", [None])[0] if kd else None
            comp = f"{kd['compression']:.0f}×" if kd.get("compression") else "—"
            sizes = "/".join(map(str, pk["cluster_sizes"]["train"])) if pk else "—"
            tp_s = f"{tp:,}" if tp else "—"
            lines.append(f"| {app} | {arch} | {any_r['floor']:.3f} | {any_r['freq_baseline']:.3f} | {cell(rs['none'])} | {cell(rs['kd'])} | "
                         f"{cell(rs['packd'])} | {tcell(kd)} | {tcell(pk)} | {any_r['student_params']:,} | {tp_s} | {comp} | "
                         f"{any_r['density']:.3f} | {sizes} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="store_true", help="run the NoKD / KD / PaCKD grid")
    p.add_argument("--why", action="store_true", help="LLC stream composition per load site")
    p.add_argument("--apps", nargs="+", default=["pr", "bc", "cc", "sssp"])
    p.add_argument("--archs", nargs="+", default=["resnet", "mixer", "lstm"])
    p.add_argument("--scale", type=int, default=16)
    p.add_argument("--max-loads", type=int, default=2_000_000)
    p.add_argument("--max-rows", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--teacher-epochs", type=int, default=4)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--clusters", type=int, default=2)
    p.add_argument("--feature", default="delta")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefetch-degree", type=int, default=0,
                   help="strip what an ideal L2 stream prefetcher of this degree covers (0 = off)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "runs" / "models_table"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.table:
        run_table(args)
    elif args.why:
        composition(args.scale, args.max_loads, args.prefetch_degree)
    else:
        bench_speed(args.scale, args.max_loads, args.max_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
