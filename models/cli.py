"""``paretofab`` subcommands of the models package: ``traces``, ``distill``, ``prune``, ``gtn`` and
``datafree``.

The commands that train name what they run (``"models.commands:_distill"`` …): it needs torch, so
``paretofab`` imports it only when the command runs, and building the parser stays light."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from quant.common import HelpFormatter, writable_folder

from . import traces
from .specs import (ARCHS, BUDGET_NAMES, DIGITS_POOL, DIGITS_TEACHER, FEATURES, MAP_POOL, MAP_TEACHER, METHODS,
                    PRESETS, RECIPES, REPLAYS, TEACHER_LR, TrainConfig)
from .workload import TraceSpec, stats_of_trace


def add_trace_arguments(p: argparse.ArgumentParser, trace_file: bool = True) -> None:
    """The workload options (:class:`models.workload.TraceSpec`), shared by every command that
    trains or scores a MAP student."""
    d = TraceSpec()
    p.add_argument("--app", choices=traces.APPS, default=d.app, help="GAP kernel (default %(default)s)")
    if trace_file:
        p.add_argument("--trace", default=None, metavar="FILE",
                       help="use this ML-DPC load trace (plain, .xz, .gz or .bz2) instead of generating one")
    p.add_argument("--scale", type=int, default=d.scale,
                   help="RMAT scale: 2**scale vertices (default %(default)s; 16 fits in the L2: degenerate)")
    p.add_argument("--max-loads", type=_positive, default=d.max_loads,
                   help="raw loads logged after the warm-up (default %(default)s)")
    p.add_argument("--skip-loads", type=int, default=None,
                   help="warm-up loads run through the caches but not logged (default: pr's first "
                        "contribution sweep, 250,000 loads for the others)")
    p.add_argument("--l1-kb", type=_positive, default=d.l1_kb, help="L1D size in KB (default %(default)s)")
    p.add_argument("--l2-kb", type=_positive, default=d.l2_kb, help="L2 size in KB (default %(default)s)")
    p.add_argument("--prefetch-degree", type=int, default=d.prefetch_degree,
                   help="drop LLC accesses an ideal L2 stream prefetcher of this degree covers "
                        "(default %(default)s = off)")
    p.add_argument("--max-rows", type=_positive, default=d.max_rows,
                   help="evenly spaced rows kept for training and evaluation (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seeds the graph, the page mapping and the validation draw; >= 0 (default %(default)s)")
    p.add_argument("--allow-degenerate", action="store_true",
                   help="go on with a degenerate trace (+1 share >= 0.3, frequency F1 > 0.5, or an "
                        "IP baseline no better than frequency): its accuracy axis is noise")


def spec_from_args(args: argparse.Namespace) -> TraceSpec:
    """The :class:`TraceSpec` that :func:`add_trace_arguments` options describe."""
    return TraceSpec(app=args.app, scale=args.scale, seed=args.seed, max_loads=args.max_loads,
                     skip_loads=args.skip_loads, l1_kb=args.l1_kb, l2_kb=args.l2_kb,
                     prefetch_degree=args.prefetch_degree, max_rows=args.max_rows,
                     trace=getattr(args, "trace", None))


def _traces(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)  # refuses a negative seed, skip or prefetch degree
    if args.stats:
        if args.output:
            raise ValueError("give either --stats FILE (read a trace) or -o FILE (generate one), not both")
        tr = traces.read_trace(args.stats)
        stats = stats_of_trace(tr, args.max_rows, args.seed)
        print(f"{args.stats}: {len(tr)} LLC accesses")
        print(stats.table())
        return 0
    if not args.output:
        raise ValueError("say where to write the trace (-o FILE) or which trace to describe (--stats FILE)")
    traces.check_output_path(args.output)  # before minutes of generation
    writable_folder(Path(args.output).parent)
    t0 = time.perf_counter()
    tr = spec.load_trace(progress=True)
    stats = stats_of_trace(tr, spec.max_rows, spec.seed)
    traces.write_trace(args.output, tr, header={"stats": stats.to_dict()})
    print(f"{args.app} scale {args.scale}: {len(tr)} LLC accesses ({time.perf_counter() - t0:.1f} s) -> {args.output}")
    print(stats.table())
    return 0


def _positive(v: str) -> int:
    i = int(v)
    if i < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return i


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("traces", help="LLC load trace of a GAP kernel on an RMAT graph (ML-DPC text), or its statistics",
                       description="Generate the LLC access stream of a GAP kernel (-o FILE: ML-DPC text whose "
                                   "'#' header records the settings and statistics) or describe a trace "
                                   "(--stats FILE: +1-delta share, label density, frequency and IP-conditioned "
                                   "baselines, verdict).",
                       epilog="examples:\n"
                              "  paretofab traces --app bc -o traces/bc.txt.xz\n"
                              "  paretofab traces --stats traces/bc.txt.xz",
                       formatter_class=HelpFormatter)
    add_trace_arguments(p, trace_file=False)
    p.add_argument("--stats", default=None, metavar="FILE", help="print the statistics of this trace file")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="trace file to write: .txt, or compressed .txt.xz, .txt.gz or .txt.bz2")
    p.set_defaults(func=_traces)

    t = TrainConfig()
    d = sub.add_parser("distill", help="train a MAP student by none / kd / packd distillation",
                       description="Train a MAP student (memory-access prediction: a future-delta bitmap "
                                   "from the last 10 LLC accesses) by plain training (none), KD from one "
                                   "teacher, or PaCKD (one teacher per k-means cluster of the rows). Refuses a "
                                   "degenerate trace. Writes DIR/student.pt, DIR/teacher_*.pt, DIR/data.npz "
                                   "and DIR/metrics.json.",
                       epilog="example:\n"
                              "  paretofab distill --app bc --arch mixer --method packd -o runs/bc_mixer",
                       formatter_class=HelpFormatter)
    add_trace_arguments(d)
    d.add_argument("--arch", choices=ARCHS, default="resnet", help="student (and default teacher) architecture")
    d.add_argument("--method", choices=METHODS, default="packd", help="distillation method")
    d.add_argument("--clusters", type=int, default=2, help="PaCKD clusters: 2..8 (PaCKD uses 2..4)")
    d.add_argument("--feature", choices=FEATURES, default="ip", help="PaCKD clustering feature (ip: hashed past IPs)")
    d.add_argument("--preset", choices=[p for p in PRESETS if p != "student"], default="cpu",
                   help="teacher size")
    d.add_argument("--teacher-arch", choices=ARCHS, default=None, help="teacher architecture (default: --arch)")
    d.add_argument("--epochs", type=_positive, default=t.epochs, help="max student epochs (early stopping)")
    d.add_argument("--teacher-epochs", type=_positive, default=None, help="max teacher epochs (default: --epochs)")
    d.add_argument("--patience", type=_positive, default=t.patience,
                   help="epochs without validation gain before stopping")
    d.add_argument("--batch-size", type=_positive, default=t.batch_size, help="rows per step")
    d.add_argument("--lr", type=float, default=t.lr, help="student Adam learning rate")
    d.add_argument("--teacher-lr", type=float, default=TEACHER_LR, help="teacher Adam learning rate")
    d.add_argument("--alpha", type=float, default=t.alpha, help="weight of the label BCE in the KD loss, in [0, 1]")
    d.add_argument("--temperature", type=float, default=t.temperature, help="KD temperature (> 0)")
    d.add_argument("--threads", type=_positive, default=1, help="torch CPU threads")
    d.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    d.set_defaults(func="models.commands:_distill")

    r = sub.add_parser("prune", help="prune a student to N:M / blocks (CRISP-style), fine-tune with SR-STE",
                       description="Prune every Linear/Conv weight of a student along its reduction "
                                   "dimension to N:M, balanced blocks, or both (--pattern); class-aware "
                                   "saliency (--classes) and SR-STE fine-tuning (--epochs). Writes "
                                   "DIR/student.pt, DIR/data.npz and DIR/metrics.json.",
                       epilog="example:\n"
                              "  paretofab prune --checkpoint runs/bc_mixer/student.pt --pattern 2:4+b8k0.5 \\\n"
                              "      --classes top32 -o runs/bc_mixer_2of4",
                       formatter_class=HelpFormatter)
    r.add_argument("--checkpoint", required=True, metavar="FILE", help="student.pt (from `paretofab distill -o DIR`)")
    r.add_argument("--data", default=None, metavar="FILE",
                   help="splits file (default: data.npz beside the checkpoint)")
    r.add_argument("--pattern", default=None, metavar="PATTERN",
                   help="sparsity pattern: N:M (2:4), blocks of B weights keeping a fraction F of them in "
                        "every row (b8k0.5), both (2:4+b8k0.5), or dense")
    # deprecated spelling of --pattern, kept hidden for one release
    r.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    r.add_argument("--m", type=int, default=None, help=argparse.SUPPRESS)
    r.add_argument("--block", type=int, default=None, help=argparse.SUPPRESS)
    r.add_argument("--keep", type=float, default=None, help=argparse.SUPPRESS)
    r.add_argument("--saliency", choices=("magnitude", "class"), default=None,
                   help="weight ranking (default: class with --classes, else magnitude)")
    r.add_argument("--classes", default=None,
                   help="preferred outputs for class saliency: topK (the K most frequent label bits), "
                        "all, or comma-separated bit indices")
    r.add_argument("--epochs", type=int, default=4, help="SR-STE fine-tuning epochs (0 = one-shot pruning)")
    r.add_argument("--lr", type=float, default=1e-3, help="fine-tuning Adam learning rate")
    r.add_argument("--decay", type=float, default=2e-4, help="SR-STE decay on pruned weights")
    r.add_argument("--mask-every", type=_positive, default=50, help="steps between mask recomputations")
    r.add_argument("--skip", default="", help="layers left dense: first, last or names, comma-separated")
    r.add_argument("--seed", type=int, default=0, help="seeds torch and the batch order; >= 0")
    r.add_argument("--threads", type=_positive, default=1, help="torch CPU threads")
    r.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    r.set_defaults(func="models.commands:_prune")

    g = sub.add_parser("gtn", help="a Generic Teacher Network for a pool of student sizes, against standard, "
                                   "custom and no-KD baselines",
                       description="Train one KD-aware generic teacher (GTN) for a pool of students (a "
                                   "weight-sharing supernet, sandwich-sampled), a standard teacher of the "
                                   "same architecture and epochs, and a teacher customized for two pool "
                                   "members; then distill every pool student from scratch from each, and "
                                   "train it without KD, for every seed. digits: CNN students dDwW, accuracy; "
                                   "a MAP trace (a folder holding one trace file, a trace file, or a "
                                   "`paretofab distill` folder): ResNet students rDwW, test micro-F1 at the "
                                   "validation-best threshold (distill's protocol). Writes DIR/teachers/*.pt, "
                                   "DIR/students/*.pt (standalone; MAP: with data.npz beside them, so each "
                                   "is a `paretofab sweep --model` spec), DIR/results.csv (student, params, "
                                   "teacher, seed, accuracy, train_seconds), DIR/teachers.csv, DIR/costs.csv "
                                   "(CPU seconds per approach) and DIR/accuracy_vs_params.png.",
                       epilog="examples:\n"
                              "  paretofab gtn --data digits --budget quick -o runs/gtn_quick\n"
                              "  paretofab gtn --data digits --budget full --pool d1w12,d2w16,d2w24,d3w24,d3w32,d3w48 \\\n"
                              "      -o runs/gtn\n"
                              "  paretofab traces --app pr -o traces/pr/pr.txt.xz\n"
                              "  paretofab gtn --data traces/pr --budget quick -o runs/gtn_map_quick",
                       formatter_class=HelpFormatter)
    g.add_argument("--data", default="digits", metavar="digits|TRACE-FOLDER",
                   help="workload: digits, or a MAP trace: a folder holding one trace file (`paretofab traces "
                        "-o DIR/NAME.txt.xz`), a trace file, or a `paretofab distill -o DIR` folder (its data.npz)")
    g.add_argument("--pool", default=None, metavar="SPEC",
                   help=f"students, comma-separated, at least two. digits (default {DIGITS_POOL}): dDwW, D 3x3 "
                        f"convolutions of W channels, max-pool, linear (depth 1..4, width 2..128). MAP (default "
                        f"{MAP_POOL}): rDwW, a ResNet of D bottleneck blocks of W channels (depth "
                        f"1..3, width 4..256; r1w32 is PaCKD's 9.2k student)")
    g.add_argument("--budget", choices=BUDGET_NAMES, default="quick",
                   help="quick: 1 seed, short trainings (under 5 minutes on 2 cores; MAP: 4,000 rows); full: "
                        "3 seeds, longer trainings (digits 40 / <=80 epochs; MAP 30,000 rows, 30 / <=40 epochs) "
                        "(default quick)")
    g.add_argument("--seed", type=int, default=0,
                   help="first seed (seeds S, S+1, ...: weights and batch order); also fixes the data split; >= 0")
    g.add_argument("--seeds", type=_positive, default=None, help="repetitions (default: the budget's)")
    g.add_argument("--rows", type=_positive, default=None,
                   help="MAP: evenly spaced rows of the trace kept (default: the budget's)")
    g.add_argument("--allow-degenerate", action="store_true",
                   help="MAP: go on with a degenerate trace (its micro-F1 axis is noise)")
    g.add_argument("--teacher", default=None, metavar="SPEC",
                   help=f"architecture of every teacher, a member of the family (default digits {DIGITS_TEACHER}, "
                        f"182,410 parameters; MAP {MAP_TEACHER}, 49,632)")
    g.add_argument("--custom", default=None, metavar="SPEC",
                   help="pool members given a customized teacher, comma-separated, or none "
                        "(default: the smallest and the middle one)")
    g.add_argument("--epochs", type=_positive, default=None,
                   help="set every training's epochs to N, overriding the budget (smoke tests)")
    g.add_argument("--kd-weight", type=float, default=None,
                   help="weight of the students' KD loss in the generic teacher's objective (default: "
                        "the budget's, 1.0; 0 makes it a standard teacher)")
    g.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (of each job)")
    g.add_argument("--jobs", type=_positive, default=min(2, os.cpu_count() or 1),
                   help="trainings run at once, each in its own process (the teachers of a seed together, then "
                        "its students); results and CPU seconds do not depend on it (default: 2 where there are "
                        "2 cores)")
    g.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    g.set_defaults(func="models.commands:_gtn")

    f = sub.add_parser("datafree", help="distill a digits student without its training data (model inversion, "
                                        "condensed or few-shot side information, VAE replay, dynamic collection)",
                       description="Train a BatchNorm digits teacher, then distill a student from it on "
                                   "synthetic images only. --method inversion: DeepInversion (pixels optimized "
                                   "to match the teacher's BatchNorm statistics and chosen labels, under a "
                                   "total-variation prior); condensed / fewshot: the same, helped by K "
                                   "distribution-matching condensed (or real) images per class (--per-class K, "
                                   "--uses); vae-replay: a DAFL generator (one-hot, activation, information-"
                                   "entropy losses) whose student rehearses on a VAE trained on past samples; "
                                   "dynamic: a generator under the BatchNorm statistics seeking student-teacher "
                                   "disagreement, the student distilled on a bounded, evolving collection of its "
                                   "samples. deepinv and dafl name the bare methods (--condensed K, --fewshot K "
                                   "and --replay are their older options). Baselines in the same run: the student "
                                   "trained on the real labels alone and KD on real data (upper references), and "
                                   "KD on uniform noise (no-data floor). The data-free "
                                   "stage never reads the training split (a guard fails the run if it does). "
                                   "Writes DIR/teacher.pt, DIR/student.pt, DIR/students/*.pt, DIR/results.csv, "
                                   "DIR/metrics.json (accuracy, teacher_accuracy, curve), DIR/curves.png and "
                                   "DIR/synthetic.pt (the synthetic images: `paretofab sweep --calib synthetic:DIR`).",
                       epilog="examples:\n"
                              "  paretofab datafree --teacher digits --method inversion -o runs/datafree\n"
                              "  paretofab datafree --teacher digits --method condensed --per-class 10 \\\n"
                              "      --budget full --seed 1 -o runs/datafree_c10\n"
                              "  paretofab datafree --teacher digits --method dynamic -o runs/datafree_dyn",
                       formatter_class=HelpFormatter)
    f.add_argument("--teacher", "--data", dest="data", default="digits", metavar="NAME",
                   help="the teacher's workload: digits (a BatchNorm CNN trained on it)")
    f.add_argument("--method", default="inversion", metavar="METHOD",
                   help=f"one of {', '.join(RECIPES)}")
    f.add_argument("--per-class", type=int, default=None, metavar="K",
                   help="side samples per class of --method condensed / fewshot (default 1)")
    f.add_argument("--condensed", type=int, default=0, metavar="K",
                   help="with --method deepinv/dafl/dynamic: condensed samples per class (distribution "
                        "matching on the training split), 0 = none")
    f.add_argument("--fewshot", type=int, default=0, metavar="K",
                   help="with --method deepinv/dafl/dynamic: real samples per class, 0 = none")
    f.add_argument("--uses", default="mix",
                   help="how side samples enter, comma-separated: init (inversion start), feat (class "
                        "feature matching), mix (added to KD batches: the best measured); dafl and dynamic "
                        "take mix only")
    f.add_argument("--replay", choices=REPLAYS, default="none",
                   help="DAFL only: also distill with rehearsal of past generated samples, from a VAE "
                        "trained on them (vae) or from all of them kept (store)")
    f.add_argument("--student", default="d2w16", metavar="dDwW", help="student: D 3x3 convolutions of W channels")
    f.add_argument("--budget", choices=BUDGET_NAMES, default="quick",
                   help="quick: about 1 min (1.5 with side information or --method dynamic) on one free core; "
                        "full: longer inversion, generators and KD")
    f.add_argument("--seed", type=int, default=0, help="weights, synthesis and batch order; >= 0 (the data split is fixed)")
    f.add_argument("--threads", type=_positive, default=1, help="torch CPU threads")
    f.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    f.set_defaults(func="models.commands:_datafree")
