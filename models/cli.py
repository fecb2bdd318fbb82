"""``paretofab`` subcommands of the models package: ``traces``, ``distill`` and ``prune``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import distill as D
from . import map_data, traces
from .zoo import ARCHS, PRESETS


def load_or_make_splits(app: str, scale: int, seed: int, max_loads: int, max_rows: int | None,
                        trace_file: str | None = None, progress: bool = True,
                        prefetch_degree: int = 0) -> tuple[dict, dict]:
    """Splits from a trace file (ML-DPC text) or from a freshly generated GAP trace; returns
    ``(splits, info)`` with the trace's provenance and size."""
    t0 = time.perf_counter()
    if trace_file:
        tr = traces.read_trace(trace_file)
        info = {"trace": str(trace_file)}
    else:
        tr = traces.generate(app, scale=scale, seed=seed, max_loads=max_loads, progress=progress,
                             prefetch_degree=prefetch_degree)
        info = {"scale": scale, "seed": seed, "max_loads": max_loads, "prefetch_degree": prefetch_degree}
    sp = map_data.make_splits(tr.addr, tr.ip, max_rows=max_rows)
    info.update({"app": app, "llc_accesses": len(tr), "trace_seconds": time.perf_counter() - t0})
    return sp, info


def _traces(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    tr = traces.generate(args.app, scale=args.scale, seed=args.seed, iters=args.iters,
                         edge_factor=args.edge_factor, max_loads=args.max_loads, progress=True,
                         prefetch_degree=args.prefetch_degree)
    traces.write_trace(args.output, tr)
    dt = time.perf_counter() - t0
    print(f"{args.app} scale {args.scale}: {len(tr)} LLC accesses from {args.max_loads} loads max "
          f"({dt:.1f} s) -> {args.output}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.output)
    sp, info = load_or_make_splits(args.app, args.scale, args.seed, args.max_loads, args.max_rows,
                                   args.trace, prefetch_degree=args.prefetch_degree)
    info["teacher_preset"] = args.preset
    cfg = D.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        patience=args.patience, alpha=args.alpha, temperature=args.temperature,
                        seed=args.seed)
    tcfg = D.TrainConfig(**{**cfg.__dict__, "epochs": args.teacher_epochs or args.epochs})
    res = D.distill(sp, args.arch, args.method, args.clusters, args.feature, args.preset,
                    cfg=cfg, teacher_cfg=tcfg, out_dir=out, info=info)
    map_data.save_splits(out / "data.npz", sp)
    (out / "metrics.json").write_text(json.dumps(res, indent=2, default=_json_default))
    print(f"{args.app} {args.arch} {args.method}: test micro-F1 {res['f1']:.4f} "
          f"(threshold {res['threshold']:.2f} from validation; F1@0.5 {res['f1_at_0.5']:.4f}; "
          f"all-ones floor {res['floor']:.4f}); student {res['student_params']} params -> {out}")
    return 0


def _pattern_of(args: argparse.Namespace):
    """The pruning pattern from ``--pattern`` or ``--n/--m/--block/--keep`` (not both)."""
    from .prune import Pattern, parse_pattern

    parts = (args.n, args.m, args.block, args.keep)
    if args.pattern is not None:
        if any(v is not None for v in parts):
            raise ValueError("give either --pattern or --n/--m/--block/--keep, not both")
        return parse_pattern(args.pattern)
    if all(v is None for v in parts):
        raise ValueError("say what to prune to: --n 2 --m 4 [--block 8 --keep 0.5] or --pattern 2:4+b8k0.5")
    return Pattern(args.n, args.m, args.block, 1.0 if args.keep is None else args.keep)


def _prune(args: argparse.Namespace) -> int:
    import torch

    from .prune import prune_student

    torch.set_num_threads(args.threads)
    pattern = _pattern_of(args)
    saliency = args.saliency or ("class" if args.classes else "magnitude")
    skip = [s.strip() for s in (args.skip or "").split(",") if s.strip()]
    res = prune_student(args.checkpoint, args.output, pattern, data=args.data, saliency=saliency,
                        classes=args.classes, epochs=args.epochs, lr=args.lr, decay=args.decay,
                        mask_every=args.mask_every, skip=skip, seed=args.seed)
    extra = (f"; preferred outputs {res['f1_classes']:.4f} (dense {res['dense']['f1_classes']:.4f})"
             if "f1_classes" in res else "")
    print(f"{res['pattern']} ({saliency} saliency, {res['method']}): {res['sparsity']:.1%} of the pruned "
          f"layers' weights are zero; test micro-F1 {res['f1']:.4f} (dense {res['dense']['f1']:.4f}){extra} "
          f"-> {args.output}")
    return 0


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o)}")


def _positive(v: str) -> int:
    i = int(v)
    if i < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return i


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("traces", help="LLC load trace of a GAP kernel on an RMAT graph (ML-DPC text)")
    p.add_argument("--app", choices=traces.APPS, default="pr")
    p.add_argument("--scale", type=int, default=16, help="RMAT scale: 2**scale vertices (default 16)")
    p.add_argument("--edge-factor", type=_positive, default=16)
    p.add_argument("--iters", type=_positive, default=None,
                   help="pr/cc sweeps or bfs/sssp/bc sources (default per app)")
    p.add_argument("--max-loads", type=_positive, default=2_000_000,
                   help="raw loads simulated before the cache filter (default 2e6)")
    p.add_argument("--prefetch-degree", type=int, default=0,
                   help="drop LLC accesses an ideal L2 stream prefetcher of this degree covers (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="trace file (.txt, .txt.xz or .gz)")
    p.set_defaults(func=_traces)

    d = sub.add_parser("distill", help="train a MAP student by none / kd / packd distillation")
    d.add_argument("--app", choices=traces.APPS, default="pr")
    d.add_argument("--trace", default=None, help="use this ML-DPC load trace instead of generating one")
    d.add_argument("--arch", choices=ARCHS, default="resnet")
    d.add_argument("--method", choices=D.METHODS, default="packd")
    d.add_argument("--clusters", type=int, default=2, help="PaCKD clusters (2..4)")
    d.add_argument("--feature", choices=D.FEATURES, default="delta", help="PaCKD clustering feature")
    d.add_argument("--preset", choices=[p for p in PRESETS if p != "student"], default="cpu",
                   help="teacher size (default cpu)")
    d.add_argument("--scale", type=int, default=16)
    d.add_argument("--max-loads", type=_positive, default=2_000_000)
    d.add_argument("--prefetch-degree", type=int, default=0,
                   help="drop LLC accesses an ideal L2 stream prefetcher of this degree covers (0 = off)")
    d.add_argument("--max-rows", type=_positive, default=None,
                   help="evenly spaced subsample of the usable rows (default all)")
    d.add_argument("--epochs", type=_positive, default=20, help="max student epochs (early stopping)")
    d.add_argument("--teacher-epochs", type=_positive, default=None, help="max teacher epochs")
    d.add_argument("--patience", type=_positive, default=3)
    d.add_argument("--batch-size", type=_positive, default=256)
    d.add_argument("--lr", type=float, default=2e-3)
    d.add_argument("--alpha", type=float, default=0.5, help="weight of the label BCE in the KD loss")
    d.add_argument("--temperature", type=float, default=2.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (default 1)")
    d.add_argument("-o", "--output", required=True, help="output directory")
    d.set_defaults(func=_distill)

    r = sub.add_parser("prune", help="prune a student to N:M / blocks (CRISP-style), fine-tune with SR-STE",
                       description="Prune every Linear/Conv weight of a student along its reduction "
                                   "dimension to N:M, balanced blocks, or both; class-aware saliency "
                                   "(--classes) and SR-STE fine-tuning (--epochs). Writes DIR/student.pt, "
                                   "DIR/data.npz and DIR/metrics.json.")
    r.add_argument("--checkpoint", required=True, help="student.pt (from `paretofab distill -o DIR`)")
    r.add_argument("--data", default=None, help="splits file (default: data.npz beside the checkpoint)")
    r.add_argument("--pattern", default=None, help="dense, N:M, bBkF or N:M+bBkF (e.g. 2:4+b8k0.5), "
                                                   "instead of --n/--m/--block/--keep")
    r.add_argument("--n", type=int, default=None, help="N of N:M: non-zeros kept per group")
    r.add_argument("--m", type=int, default=None, help="M of N:M: group size (inputs)")
    r.add_argument("--block", type=int, default=None, help="block size (weights along the reduction)")
    r.add_argument("--keep", type=float, default=None, help="fraction of blocks kept in every row (0, 1]")
    r.add_argument("--saliency", choices=("magnitude", "class"), default=None,
                   help="weight ranking (default: class with --classes, else magnitude)")
    r.add_argument("--classes", default=None,
                   help="preferred outputs for class saliency: topK (the K most frequent label bits), "
                        "all, or comma-separated bit indices")
    r.add_argument("--epochs", type=int, default=4, help="SR-STE fine-tuning epochs (0 = one-shot pruning)")
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--decay", type=float, default=2e-4, help="SR-STE decay on pruned weights")
    r.add_argument("--mask-every", type=_positive, default=50, help="steps between mask recomputations")
    r.add_argument("--skip", default="", help="layers left dense: first, last or names, comma-separated")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (default 1)")
    r.add_argument("-o", "--output", required=True, help="output directory")
    r.set_defaults(func=_prune)
