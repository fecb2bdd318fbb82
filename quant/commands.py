"""What the ``sweep`` and ``results`` commands run; their parsers are :mod:`quant.cli`'s. Apart from
the parsers because a sweep needs torch and Brevitas: ``paretofab`` imports this module only when
one of these commands runs."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter

import pandas as pd

from .sweep import SweepSpace, grid, load_failures, load_results, run_sweep


def _csv_list(s: str) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()]


def _quiet_warnings() -> None:
    """Keep error output to one line: Brevitas' warnings about optional kernels and torch.fx's
    FutureWarnings are not the user's concern."""
    warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
    warnings.filterwarnings("ignore", category=FutureWarning)


def _patterns(args: argparse.Namespace) -> list[str]:
    """``--pattern``, or its deprecated spelling ``--sparsity`` (with a one-line note)."""
    if args.sparsity is None:
        return _csv_list(args.pattern or "dense")
    if args.pattern is not None:
        raise ValueError("give --pattern only (e.g. --pattern dense,2:4); --sparsity is its deprecated "
                         "spelling, not both")
    print(f"paretofab sweep: note: --sparsity is deprecated and goes in the next release; write "
          f"--pattern {args.sparsity}", file=sys.stderr)
    return _csv_list(args.sparsity)


def _sweep(args: argparse.Namespace) -> int:
    _quiet_warnings()
    try:
        seeds = [int(s) for s in _csv_list(args.seeds)]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated non-negative integers (0,1,2), got {args.seeds!r}") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"--seeds takes non-negative integers (0,1,2), got {args.seeds!r}")
    if args.scheduler_timeout <= 0:
        raise ValueError(f"--scheduler-timeout must be > 0 seconds, got {args.scheduler_timeout:g}")
    space = SweepSpace(_csv_list(args.model), _csv_list(args.wfmt), _csv_list(args.afmt), _csv_list(args.ptq),
                       seeds, per_channel=not args.per_tensor, n_calib=args.n_calib,
                       sparsities=_patterns(args), threshold=args.threshold, calib=args.calib)
    points = grid(space, allow_degenerate=args.allow_degenerate)
    r = run_sweep(points, args.output, jobs=args.jobs, scheduler=args.scheduler, progress=not args.quiet,
                  scheduler_timeout=args.scheduler_timeout)
    elsewhere = f", {r['elsewhere']} running elsewhere" if r["elsewhere"] else ""
    print(f"{r['done']} points run, {r['skipped']} already in {args.output}{elsewhere}, {r['total']} in the grid "
          f"({r['seconds']:.1f} s)")
    if r["failed"]:
        print(f"{r['failed']} points failed (kept out of the results; a rerun tries them again):")
        for err, n in sorted(_count(r["errors"].values()).items(), key=lambda t: -t[1]):
            print(f"  {n} × {err}")
        print(f"details: paretofab results {args.output} --failed")
        return 1
    return 0


def _count(items) -> dict:
    return dict(Counter(items))


def _results(args: argparse.Namespace) -> int:
    _quiet_warnings()
    if args.failed:
        df = load_failures(args.file)
        if args.csv:
            print(df.to_csv(index=False), end="")
        elif df.empty:
            print(f"{args.file}: no failed points")
        else:
            cols = [c for c in ("model", "sparsity", "wfmt", "afmt", "ptq", "seed", "error") if c in df]
            with pd_width():
                print(df[cols].to_string(index=False))
        return 0
    df = load_results(args.file)
    if args.csv:
        print(df.drop(columns=["config"]).to_csv(index=False), end="")
        return 0
    if df.empty:
        print(f"{args.file}: no finished points yet")
        return 0
    cols = ["model", "sparsity", "wfmt", "afmt", "ptq", "seed", "per_channel", "metric_name", "metric",
            "float_metric", "seconds"] + (["calib"] if (df["calib"] != "real").any() else [])
    view = df[cols].copy()
    for col in ("model", "calib"):
        if col in view:
            view[col] = view[col].map(lambda m: m if len(m) <= 24 else "…" + m[-23:])
    print(view.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def pd_width():
    return pd.option_context("display.width", 200, "display.max_colwidth", 120)
