"""The README material of a ``paretofab gtn`` run: accuracy per (student, teacher), paired
differences between teachers, and the training cost of each approach.

    python bench/gtn.py runs/gtn_full            # markdown on stdout
    python bench/gtn.py runs/gtn_full --plot     # also rewrites DIR/accuracy_vs_params.png
    python bench/gtn.py runs/gtn_map_quick       # a MAP run: "accuracy" is test micro-F1

Paired differences compare two teachers on the same (student, seed): same split, same initial
student weights and batch order, so only the teacher differs. The sign test is exact (binomial,
two-sided, ties dropped).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import gtn_eval as E  # noqa: E402


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def paired(results: pd.DataFrame, a: str, b: str) -> str:
    """One line: mean ± std of accuracy(a) - accuracy(b) over the (student, seed) pairs both
    have, in percentage points; wins / ties / losses; sign-test p."""
    wide = results.pivot_table(index=["student", "seed"], columns="teacher", values="accuracy")
    if a not in wide or b not in wide:
        return f"{a} vs {b}: no pairs"
    d = (100 * (wide[a] - wide[b])).dropna()
    w, t, l = int((d > 1e-9).sum()), int((d.abs() <= 1e-9).sum()), int((d < -1e-9).sum())
    sd = d.std(ddof=1) if len(d) > 1 else 0.0
    return (f"{a} − {b}: {d.mean():+.2f} ± {sd:.2f} pp over {len(d)} (student, seed) pairs; "
            f"{w} wins / {t} ties / {l} losses; sign test p = {sign_test(w, l):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="output folder of `paretofab gtn`")
    ap.add_argument("--plot", action="store_true", help="rewrite accuracy_vs_params.png from results.csv")
    args = ap.parse_args()
    d = args.folder
    results = pd.read_csv(d / "results.csv")
    run = json.loads((d / "run.json").read_text())
    teachers = pd.read_csv(d / "teachers.csv")
    costs = pd.read_csv(d / "costs.csv")
    workload = run.get("data", "digits")
    metric = run.get("metric", "accuracy")
    if args.plot:
        E.plot(results, d / "accuracy_vs_params.png", workload)
    print(f"{workload}, seeds {run['seeds']}, config {run['config']}\n")
    print(f"test {metric} (%), mean ± std over seeds\n")
    print(E.markdown_table(results) + "\n")
    g = teachers.groupby(["teacher", "student"], dropna=False)
    print(f"teachers: test {metric} (%) and CPU seconds, mean ± std over seeds\n")
    for (kind, student), grp in g:
        name = kind + (f" ({student})" if isinstance(student, str) and student else "")
        sd = grp[["accuracy", "train_seconds"]].std(ddof=1).fillna(0.0)  # one seed: 0
        print(f"- {name}: {100 * grp.accuracy.mean():.2f} ± {100 * sd.accuracy:.2f} %, "
              f"{grp.train_seconds.mean():.0f} ± {sd.train_seconds:.0f} CPU s")
    print("\npaired differences\n")
    for a, b in (("generic", "standard"), ("generic", "none"), ("standard", "none"), ("custom", "generic"),
                 ("custom", "standard")):
        print("- " + paired(results, a, b))
    print("\ntraining cost per seed (CPU s, mean over seeds)\n")
    print(E.cost_table(d / "costs.csv"))
    pool = len(run["pool"])
    m = costs.groupby("approach").mean(numeric_only=True)
    if "custom" in m.index:
        per_teacher = m.loc["custom", "teacher_seconds"] / len(run["custom"])
        est = per_teacher * pool + m.loc["generic", "student_seconds"]
        print(f"\ncustom teachers for the whole pool of {pool} (extrapolated: {per_teacher:.0f} CPU s per "
              f"custom teacher × {pool} + the students): ~{est:.0f} CPU s")
    over = m.loc["generic", "teacher_seconds"] - m.loc["standard", "teacher_seconds"]
    print(f"generic teacher's extra cost over the standard one: {over:.0f} CPU s "
          f"({100 * over / m.loc['standard', 'total_seconds']:.0f} % of the standard approach's total; "
          f"{over / pool:.1f} CPU s per pool student)")


if __name__ == "__main__":
    main()
