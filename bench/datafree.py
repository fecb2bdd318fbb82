"""Data-free KD comparison on digits (issue 18): for every seed, the BN teacher, the students on
real data (``ce-real``: cross-entropy on the labels, no KD; ``kd-real``: KD from the teacher), the
noise floor, DeepInversion and DAFL without side information, and with condensed
(distribution matching) or few-shot real samples (1 and 10 per class) used as inversion
initialization, class feature matching, KD-batch mixing, or all three.

    .venv/bin/python bench/datafree.py [--seeds 0,1,2] [--budget quick] [--out runs/datafree_bench]

``--references``: only the teacher and the two students on real data (OUT/results-references-seed{S}.csv).
``--replay``: only DAFL without rehearsal, with VAE pseudo-replay and with every generated image
stored (OUT/results-replay-seed{S}.csv). ``--side-only``: KD on the side samples alone, no
inversion, as many steps as DeepInversion's KD (OUT/results-sideonly-seed{S}.csv).
``--dynamic``: DAFL and the dynamic collection (models.datafree.dynamic), with three ablations:
no information-gain term (``gain=0``), no BatchNorm-statistic term (``bn=0``) and a collection
that holds only the newest batch (``capacity=batch``) (OUT/results-dynamic-seed{S}.csv). Writes OUT/results-seed{S}.csv (one row
per student, rewritten after each) and prints the summary (mean ± std over seeds) as a markdown
table.

``--calib``: data-free PTQ calibration. For every seed, the BN teacher, a DeepInversion and a
dynamic-collection student (training split sealed); the dynamic student is then quantized
(``quant.sweep``, weights and activations in the same format: int8, int4, e2m3, e4m3, per-channel
weights, no PTQ technique) calibrated on 256 images of: the real training split, DeepInversion's
set, the dynamic collection, uniform noise (the floor). Test accuracy on the digits test split
(sweep seed 0: the split every student trained on). OUT/calib.sqlite, OUT/calib-seed{S}/, table
of mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

# keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from models.datafree.guard import sealed  # noqa: E402
from models.datafree.kd import curve_stats, distill_on_set  # noqa: E402
from models.datafree.run import (BUDGETS, REFERENCES, Budget, datafree_student, real_student,  # noqa: E402
                                 save_synthetic, side_info)
from models.datafree.teacher import BNTeacher, train_bn_teacher  # noqa: E402
from models.digits_data import DigitsData, load_data  # noqa: E402
from models.gtn import accuracy  # noqa: E402
from models.gtn_pool import DigitsCNN, StudentSpec, save_student  # noqa: E402
from quant.sweep import SweepSpace, grid, load_results, run_sweep  # noqa: E402

#: (method, side, per_class, uses) of every data-free student
VARIANTS = [("noise", "none", 0, ()), ("deepinv", "none", 0, ()), ("dafl", "none", 0, ())]
for _side in ("condensed", "fewshot"):
    for _k in (1, 10):
        for _u in (("init",), ("feat",), ("mix",), ("init", "feat", "mix")):
            if _side == "condensed" or _u in (("mix",), ("init", "feat", "mix")):
                VARIANTS.append(("deepinv", _side, _k, _u))
        VARIANTS.append(("dafl", _side, _k, ("mix",)))


#: DAFL with rehearsal of past generated samples (``--replay``)
REPLAY_VARIANTS = [("dafl", "none", 0, (), r) for r in ("none", "vae", "store")]
#: ``--dynamic``: (row name, method, overrides of the budget's DynamicConfig)
DYNAMIC_VARIANTS = [("noise", "noise", {}), ("dafl", "dafl", {}), ("dynamic", "dynamic", {}),
                    ("dynamic[gain=0]", "dynamic", {"gain": 0.0}), ("dynamic[bn=0]", "dynamic", {"bn": 0.0}),
                    ("dynamic[capacity=batch]", "dynamic", {"capacity": None})]
#: ``--calib``: formats (weights = activations) and calibration sets
CALIB_FORMATS = ("int8", "int4", "e2m3", "e4m3")
CALIB_SETS = ("real", "deepinv", "dynamic", "noise")
N_CALIB = 256


def references(data: DigitsData, spec: StudentSpec, budget: Budget, seed: int,
               add: Callable[[str, float, int, float], None]) -> BNTeacher:
    """Train the BN teacher and the :data:`REFERENCES` students on real data, reporting each as
    ``add(model, test accuracy, memory bytes, CPU start)``; returns the teacher."""
    t0 = time.process_time()
    teacher, info = train_bn_teacher(data, budget.teacher_epochs, seed)
    add("teacher", info["test_accuracy"], 0, t0)
    for name, kd in REFERENCES.items():
        t0 = time.process_time()
        student = real_student(data, spec, teacher, budget, seed, kd)
        add(name, accuracy(student, data.x_test, data.y_test), data.x_train.numel() * 4, t0)
    return teacher


def one_seed(seed: int, budget_name: str, spec: StudentSpec, out: Path, replay: bool = False) -> pd.DataFrame:
    budget = BUDGETS[budget_name]
    data = load_data(0)  # one split for every seed; the seed varies weights and synthesis
    rows = []

    def add(model, method, side, k, uses, acc, curve, memory, t0):
        st = curve_stats(curve)
        rows.append({"model": model, "method": method, "side": side, "per_class": k, "uses": "+".join(uses),
                     "seed": seed, "accuracy": acc, "worst_drop": st["worst_drop"], "memory_bytes": memory,
                     "cpu_seconds": time.process_time() - t0})
        pd.DataFrame(rows).to_csv(out / f"results{'-replay' if replay else ''}-seed{seed}.csv", index=False)
        print(f"seed {seed} {model}: {acc:.4f}", flush=True)

    teacher = references(data, spec, budget, seed, lambda model, acc, memory, t0: add(
        model, "" if model == "teacher" else model, "none", 0, (), acc, [], memory, t0))
    sides = {} if replay else {(s, k): side_info(data.x_train, data.y_train, s, k, budget.condense_iterations, seed)
                               for s in ("condensed", "fewshot") for k in (1, 10)}
    blind = sealed(data)
    for method, side, k, uses, rp in (REPLAY_VARIANTS if replay else [v + ("none",) for v in VARIANTS]):
        t0 = time.process_time()
        sx = sides.get((side, k))
        student, curve, memory, _ = datafree_student(teacher, spec, method, budget, seed, blind, sx, uses, rp)
        name = method if side == "none" else f"{method}+{side}{k}[{'+'.join(uses)}]"
        name += f"+{rp}-replay" if rp != "none" else ""
        add(name, method, side, k, uses, accuracy(student, data.x_test, data.y_test), curve, memory, t0)
    return pd.DataFrame(rows)


def dynamic_seed(seed: int, budget_name: str, spec: StudentSpec, out: Path, only_references: bool = False
                 ) -> pd.DataFrame:
    """Teacher, the students on real data (:func:`references`) and :data:`DYNAMIC_VARIANTS` for
    one seed (training split sealed); ``only_references``: stop after the references
    (OUT/results-references-seed{S}.csv)."""
    budget = BUDGETS[budget_name]
    data = load_data(0)
    rows = []
    csv = out / f"results-{'references' if only_references else 'dynamic'}-seed{seed}.csv"

    def add(model: str, acc: float, curve: list[float], memory: int, t0: float) -> None:
        rows.append({"model": model, "seed": seed, "accuracy": acc, "worst_drop": curve_stats(curve)["worst_drop"],
                     "memory_bytes": memory, "cpu_seconds": time.process_time() - t0})
        pd.DataFrame(rows).to_csv(csv, index=False)
        print(f"seed {seed} {model}: {acc:.4f}", flush=True)

    teacher = references(data, spec, budget, seed, lambda model, acc, memory, t0: add(model, acc, [], memory, t0))
    if only_references:
        return pd.DataFrame(rows)
    blind = sealed(data)
    for name, method, over in DYNAMIC_VARIANTS:
        t0 = time.process_time()
        over = {k: budget.dynamic.batch_size if v is None else v for k, v in over.items()}
        b = replace(budget, dynamic=replace(budget.dynamic, **over))
        d = datafree_student(teacher, spec, method, b, seed, blind)
        add(name, accuracy(d.student, data.x_test, data.y_test), d.curve, d.memory_bytes, t0)
    return pd.DataFrame(rows)


def calib_seed(seed: int, budget_name: str, spec: StudentSpec, out: Path) -> pd.DataFrame:
    """One seed of the ``--calib`` comparison: rows of (seed, format, calibration set, accuracy,
    float accuracy)."""
    budget = BUDGETS[budget_name]
    data = load_data(0)
    teacher, _ = train_bn_teacher(data, budget.teacher_epochs, seed)
    blind = sealed(data)
    folder = out / f"calib-seed{seed}"
    for method in ("deepinv", "dynamic"):
        (folder / method).mkdir(parents=True, exist_ok=True)
        d = datafree_student(teacher, spec, method, budget, seed, blind)
        save_student(folder / method / "student.pt", d.student, seed=seed, method=method)
        save_synthetic(folder / method / "synthetic.pt", d.images, method=method, seed=seed)
        print(f"seed {seed} {method} student: {accuracy(d.student, data.x_test, data.y_test):.4f}, "
              f"{len(d.images)} synthetic images", flush=True)
    (folder / "noise").mkdir(exist_ok=True)
    save_synthetic(folder / "noise" / "synthetic.pt",
                   torch.rand((N_CALIB, 1, 8, 8), generator=torch.Generator().manual_seed(seed)), method="noise")
    model = str(folder / "dynamic" / "student.pt")
    keys, points = {}, []
    for cs in CALIB_SETS:
        calib = "real" if cs == "real" else f"synthetic:{folder / cs}"
        for f in CALIB_FORMATS:
            (p,) = grid(SweepSpace([model], [f], [f], seeds=[0], n_calib=N_CALIB, calib=calib))
            keys[p.key] = (cs, f)
            points.append(p)
    store = out / "calib.sqlite"
    run_sweep(points, store, progress=False)
    df = load_results(store)
    df = df[df["key"].isin(list(keys))]
    rows = [{"seed": seed, "calib": keys[r.key][0], "format": keys[r.key][1], "accuracy": r.metric,
             "float_accuracy": r.float_metric} for r in df.itertuples()]
    return pd.DataFrame(rows)


def side_only(seed: int, budget_name: str, spec: StudentSpec, out: Path) -> pd.DataFrame:
    """Baseline: KD of the student on the side samples alone (no inversion), for as many steps as
    the budget's DeepInversion KD takes (``ceil(images / batch) · epochs``)."""
    budget = BUDGETS[budget_name]
    data = load_data(0)
    teacher, _ = train_bn_teacher(data, budget.teacher_epochs, seed)
    steps = math.ceil(budget.images / budget.kd.batch_size) * budget.kd.epochs
    rows = []
    for side in ("condensed", "fewshot"):
        for k in (1, 10):
            t0 = time.process_time()
            sx = side_info(data.x_train, data.y_train, side, k, budget.condense_iterations, seed)
            epochs = math.ceil(steps / math.ceil(len(sx[0]) / budget.kd.batch_size))
            torch.manual_seed(seed)
            student = DigitsCNN(spec.depth, spec.width)
            curve = distill_on_set(student, teacher, sx[0], replace(budget.kd, epochs=epochs), seed,
                                   test=(data.x_test, data.y_test))
            rows.append({"model": f"{side}{k}-only", "method": "side-only", "side": side, "per_class": k, "uses": "",
                         "seed": seed, "accuracy": curve[-1], "worst_drop": curve_stats(curve)["worst_drop"],
                         "memory_bytes": sx[0].numel() * 4, "cpu_seconds": time.process_time() - t0})
            pd.DataFrame(rows).to_csv(out / f"results-sideonly-seed{seed}.csv", index=False)
            print(f"seed {seed} {side}{k}-only: {curve[-1]:.4f}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", choices=tuple(BUDGETS), default="quick")
    ap.add_argument("--student", default="d2w16")
    ap.add_argument("--out", default="runs/datafree_bench")
    ap.add_argument("--references", action="store_true", help="only the teacher and the students on real data "
                                                              "(cross-entropy, KD)")
    ap.add_argument("--side-only", action="store_true", help="only KD on the side samples alone (no inversion)")
    ap.add_argument("--replay", action="store_true", help="only DAFL without rehearsal, with VAE replay, with "
                                                          "every sample stored")
    ap.add_argument("--dynamic", action="store_true", help="only DAFL, the dynamic collection and its ablations")
    ap.add_argument("--calib", action="store_true", help="only the data-free PTQ calibration comparison")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = StudentSpec.parse(args.student)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.calib:
        print(calib_summary(pd.concat([calib_seed(s, args.budget, spec, out) for s in seeds])))
        return
    if args.side_only:
        frames = [side_only(int(s), args.budget, spec, out) for s in args.seeds.split(",")]
    elif args.dynamic or args.references:
        frames = [dynamic_seed(s, args.budget, spec, out, args.references) for s in seeds]
    else:
        frames = [one_seed(int(s), args.budget, spec, out, args.replay) for s in args.seeds.split(",")]
    print(summary(pd.concat(frames)))


def summary(df: pd.DataFrame) -> str:
    """Markdown: model, accuracy % mean ± std over seeds, worst drop, memory."""
    g = df.groupby("model", sort=False).agg(mean=("accuracy", "mean"), std=("accuracy", "std"), n=("seed", "count"),
                                            drop=("worst_drop", "mean"), mem=("memory_bytes", "first"))
    lines = ["| model | test accuracy % (mean ± std) | seeds | worst drop (pts, mean) | memory (KiB) |",
             "|---|---|---|---|---|"]
    for name, r in g.iterrows():
        std = 0.0 if pd.isna(r["std"]) else r["std"]
        drop = "" if pd.isna(r["drop"]) else f"{100 * r['drop']:.1f}"
        lines.append(f"| {name} | {100 * r['mean']:.2f} ± {100 * std:.2f} | {int(r['n'])} | {drop} | {r['mem'] / 1024:.1f} |")
    return "\n".join(lines)


def calib_summary(df: pd.DataFrame) -> str:
    """Markdown: format rows, float accuracy and accuracy per calibration set, % mean ± std over
    seeds."""
    def cell(v: pd.Series) -> str:
        return f"{100 * v.mean():.2f} ± {100 * (v.std() if len(v) > 1 else 0.0):.2f}"

    lines = ["| format (w = a) | float | " + " | ".join(f"calib: {c}" for c in CALIB_SETS) + " | seeds |",
             "|---|---|" + "---|" * len(CALIB_SETS) + "---|"]
    for f in CALIB_FORMATS:
        g = df[df["format"] == f]
        cells = [cell(g[g["calib"] == c]["accuracy"]) for c in CALIB_SETS]
        lines.append(f"| {f} | {cell(g[g['calib'] == 'real']['float_accuracy'])} | " + " | ".join(cells)
                     + f" | {g['seed'].nunique()} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
