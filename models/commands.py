"""What the ``distill``, ``prune``, ``gtn`` and ``datafree`` commands run; their parsers are
:mod:`models.cli`'s. Apart from the parsers because training needs torch: ``paretofab`` imports
this module only when one of these commands runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from quant.common import json_default, writable_folder

from . import distill as D
from . import gtn_eval, gtn_map, map_data
from .cli import spec_from_args
from .datafree import run as DF
from .digits_data import load_data as load_digits
from .gtn import MapTask
from .gtn_pool import DIGITS, StudentSpec, parse_pool
from .prune import Pattern, PruneConfig, parse_pattern, prune_student


def _distill(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    # every option is checked before the trace is generated
    workload = spec_from_args(args)
    cfg = D.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        patience=args.patience, alpha=args.alpha, temperature=args.temperature,
                        seed=args.seed)
    tcfg = D.TrainConfig(**{**cfg.__dict__, "epochs": args.teacher_epochs or args.epochs,
                            "lr": args.teacher_lr})
    cfg.check()
    tcfg.check()
    spec = D.KDSpec(arch=args.arch, method=args.method, clusters=args.clusters, feature=args.feature,
                    teacher_arch=args.teacher_arch, teacher_preset=args.preset)
    sp, info = workload.splits(progress=True, allow_degenerate=args.allow_degenerate)
    info["teacher_preset"] = args.preset
    res = D.distill(sp, spec, cfg, teacher_cfg=tcfg, out_dir=out, info=info)
    map_data.save_splits(out / "data.npz", sp)
    (out / "metrics.json").write_text(json.dumps(res, indent=2, default=json_default))
    print(f"{args.app} {args.arch} {args.method}: test micro-F1 {res['f1']:.4f} "
          f"(threshold {res['threshold']:.2f} from validation; at the test-optimal threshold, the "
          f"paper's protocol, {res['f1_test_opt']:.4f}); frequency baseline {res['freq_baseline']:.4f}, "
          f"IP baseline {res['ip_baseline']:.4f}, all-ones floor {res['floor']:.4f}; "
          f"student {res['student_params']} params -> {out}")
    return 0


def _pattern_of(args: argparse.Namespace):
    """The pruning pattern from ``--pattern``, or from the deprecated ``--n/--m/--block/--keep``
    (not both; a one-line deprecation note on stderr)."""
    parts = (args.n, args.m, args.block, args.keep)
    if args.pattern is not None:
        if any(v is not None for v in parts):
            raise ValueError("give --pattern only (e.g. --pattern 2:4+b8k0.5); --n/--m/--block/--keep are "
                             "its deprecated spelling, not both")
        return parse_pattern(args.pattern)
    if all(v is None for v in parts):
        raise ValueError("say what to prune to: --pattern 2:4, b8k0.5 or 2:4+b8k0.5 (N:M, then blocks of B "
                         "weights keeping a fraction F)")
    pattern = Pattern(args.n, args.m, args.block, 1.0 if args.keep is None else args.keep)
    print(f"paretofab prune: note: --n/--m/--block/--keep are deprecated and go in the next release; "
          f"write --pattern {pattern}", file=sys.stderr)
    return pattern


def _prune(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    pattern = _pattern_of(args)
    saliency = args.saliency or ("class" if args.classes else "magnitude")
    skip = [s.strip() for s in (args.skip or "").split(",") if s.strip()]
    cfg = PruneConfig(saliency=saliency, classes=args.classes, epochs=args.epochs, lr=args.lr, decay=args.decay,
                      mask_every=args.mask_every, skip=skip, seed=args.seed)
    res = prune_student(args.checkpoint, args.output, pattern, cfg, data=args.data)
    extra = (f"; preferred outputs {res['f1_classes']:.4f} (dense {res['dense']['f1_classes']:.4f})"
             if "f1_classes" in res else "")
    print(f"{res['pattern']} ({saliency} saliency, {res['method']}): {res['sparsity']:.1%} of the pruned "
          f"layers' weights are zero; test micro-F1 {res['f1']:.4f} (dense {res['dense']['f1']:.4f}){extra} "
          f"-> {args.output}")
    return 0


def _gtn(args: argparse.Namespace) -> int:
    # every option is checked before minutes of training
    digits = args.data == "digits"
    family, budgets = (DIGITS, gtn_eval.BUDGETS) if digits else (gtn_map.MAP, gtn_eval.MAP_BUDGETS)
    if not digits:
        gtn_map.find_workload(args.data)
    pool = parse_pool(args.pool or family.default_pool, family)
    custom = (gtn_eval.custom_members(pool) if args.custom is None
              else gtn_eval.parse_custom(args.custom, pool, family))
    budget = budgets[args.budget]
    cfg = gtn_eval.with_overrides(budget.cfg, epochs=args.epochs, kd_weight=args.kd_weight, teacher=args.teacher,
                                  family=family)
    cfg.check(family)
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: use a non-negative integer (e.g. --seed 0)")
    out = writable_folder(args.output)
    torch.set_num_threads(args.threads)
    if digits:
        data, what = load_digits(args.seed), "digits"
    else:
        rows = args.rows or budget.rows
        splits, info = gtn_map.load_splits_of(args.data, rows, args.seed, args.allow_degenerate)
        data = MapTask.from_splits(splits, family, info)
        what = (f"MAP {args.data} ({len(data.x_train):,} / {len(data.x_val):,} / {len(data.x_test):,} rows; "
                f"frequency plateau F1 {data.plateau:.3f})")
    seeds = list(range(args.seed, args.seed + (args.seeds or budget.seeds)))
    print(f"gtn on {what}: pool {', '.join(f'{s.name} ({s.params:,})' for s in pool)}; teacher {cfg.teacher}; "
          f"custom teachers for {', '.join(s.name for s in custom) or 'none'}; seeds {seeds}; budget {args.budget}")
    t0 = time.perf_counter()
    df = gtn_eval.run(data, pool, cfg, seeds, out, custom=custom, log=lambda line: print(line, flush=True),
                      jobs=args.jobs)
    print(gtn_eval.markdown_table(df))
    print(gtn_eval.cost_table(out / "costs.csv"))
    print(f"{len(df)} students in {time.perf_counter() - t0:.0f} s -> {out}/results.csv, accuracy_vs_params.png")
    return 0


def _datafree(args: argparse.Namespace) -> int:
    # every option is checked before minutes of training
    if args.data != "digits":
        raise ValueError(f"--teacher {args.data!r}: only the digits workload has a data-free flow; use --teacher digits")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: use a non-negative integer (e.g. --seed 0)")
    method, side, k, replay = DF.recipe(args.method, args.per_class, args.condensed, args.fewshot, args.replay)
    uses = DF.check_uses(method, side, DF.parse_uses(args.uses))
    spec = StudentSpec.parse(args.student)
    out = writable_folder(args.output)
    torch.set_num_threads(args.threads)
    print(f"datafree on digits: {args.method} ({method}{f', {replay} replay' if replay != 'none' else ''}), student "
          f"{spec.name} ({spec.params:,} params), side information "
          f"{side}{f' {k}/class via {chr(43).join(uses)}' if k else ''}; seed {args.seed}; budget {args.budget}")
    t0 = time.perf_counter()
    df = DF.run(load_digits(0), method, spec, DF.BUDGETS[args.budget], args.seed, out, side=side,
                per_class=k, uses=uses, replay=replay, log=lambda line: print(line, flush=True))
    print(DF.markdown_table(df))
    print(f"{time.perf_counter() - t0:.0f} s -> {out}/student.pt, results.csv, metrics.json, curves.png, "
          f"synthetic.pt")
    return 0
