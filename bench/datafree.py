"""Data-free KD comparison on digits (issue 18): for every seed, the BN teacher, the real-data KD
student, the noise floor, DeepInversion and DAFL without side information, and with condensed
(distribution matching) or few-shot real samples (1 and 10 per class) used as inversion
initialization, class feature matching, KD-batch mixing, or all three.

    .venv/bin/python bench/datafree.py [--seeds 0,1,2] [--budget quick] [--out runs/datafree_bench]

``--replay``: only DAFL without rehearsal, with VAE pseudo-replay and with every generated image
stored (OUT/results-replay-seed{S}.csv). ``--side-only``: KD on the side samples alone, no
inversion, as many steps as DeepInversion's KD (OUT/results-sideonly-seed{S}.csv). Writes OUT/results-seed{S}.csv (one row per student, rewritten after each) and prints the summary
(mean ± std over seeds) as a markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

# keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from models.datafree.guard import sealed  # noqa: E402
from models.datafree.kd import curve_stats, distill_on_set  # noqa: E402
from models.datafree.run import BUDGETS, datafree_student, side_info  # noqa: E402
from models.datafree.teacher import train_bn_teacher  # noqa: E402
from models.digits_data import load_data  # noqa: E402
from models.gtn import accuracy, logits_of, train_student  # noqa: E402
from models.gtn_pool import DigitsCNN, StudentSpec  # noqa: E402

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

    t0 = time.process_time()
    teacher, info = train_bn_teacher(data, budget.teacher_epochs, seed)
    add("teacher", "", "none", 0, (), info["test_accuracy"], [], 0, t0)
    t0 = time.process_time()
    real, _ = train_student(data, spec, logits_of(teacher, data.x_train), budget.real, seed)
    add("kd-real", "kd-real", "none", 0, (), accuracy(real, data.x_test, data.y_test), [],
        data.x_train.numel() * 4, t0)
    sides = {} if replay else {(s, k): side_info(data.x_train, data.y_train, s, k, budget.condense_iterations, seed)
                               for s in ("condensed", "fewshot") for k in (1, 10)}
    blind = sealed(data)
    for method, side, k, uses, rp in (REPLAY_VARIANTS if replay else [v + ("none",) for v in VARIANTS]):
        t0 = time.process_time()
        sx = sides.get((side, k))
        student, curve, memory = datafree_student(teacher, spec, method, budget, seed, blind, sx, uses, rp)
        name = method if side == "none" else f"{method}+{side}{k}[{'+'.join(uses)}]"
        name += f"+{rp}-replay" if rp != "none" else ""
        add(name, method, side, k, uses, accuracy(student, data.x_test, data.y_test), curve, memory, t0)
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
    ap.add_argument("--side-only", action="store_true", help="only KD on the side samples alone (no inversion)")
    ap.add_argument("--replay", action="store_true", help="only DAFL without rehearsal, with VAE replay, with "
                                                          "every sample stored")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = StudentSpec.parse(args.student)
    if args.side_only:
        frames = [side_only(int(s), args.budget, spec, out) for s in args.seeds.split(",")]
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
        lines.append(f"| {name} | {100 * r['mean']:.2f} ± {100 * std:.2f} | {r['n']} | {drop} | {r['mem'] / 1024:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
