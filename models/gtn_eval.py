"""The GTN comparison on digits: every pool student distilled from the generic teacher, from a
standard teacher (same architecture and epochs, task loss only), from a teacher customized for it
(two pool members), and trained without KD, for several seeds; what ``paretofab gtn`` runs.

Folder written by :func:`run` (each file rewritten as soon as a row is finished)::

    teachers/{generic,standard}-seed{S}.pt, teachers/custom-{student}-seed{S}.pt
    students/{student}-{teacher}-seed{S}.pt     standalone (models.gtn_pool.load_student)
    results.csv      student, params, teacher, seed, accuracy (test, fraction), train_seconds
    teachers.csv     every teacher: kind, student (custom), params, seed, accuracies, train_seconds
    costs.csv        per approach and seed: teacher and student CPU seconds, total, per student
    accuracy_vs_params.png, run.json (settings, pool, seeds)

Times are process CPU seconds (``time.process_time``) of each training, measured here. The data
split is fixed by the first seed; seed ``S`` seeds the initial weights and batch order of the
teachers and students of that repetition (every student of one seed starts from the same weights
whatever its teacher).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from .digits_data import DigitsData
from .gtn import GTNConfig, logits_of, train_gtn, train_student, train_teacher
from .gtn_pool import DigitsCNN, StudentSpec, save_student

__all__ = ["Budget", "BUDGETS", "TEACHERS", "COLUMNS", "custom_members", "parse_custom", "run",
           "summary", "markdown_table", "cost_table", "plot", "with_overrides"]

#: ``teacher`` values of results.csv
TEACHERS = ("generic", "standard", "custom", "none")
COLUMNS = ("student", "params", "teacher", "seed", "accuracy", "train_seconds")


@dataclass(frozen=True)
class Budget:
    """A named training budget: the hyper-parameters and the number of seeds."""

    cfg: GTNConfig
    seeds: int


#: quick: one seed, short trainings (a few minutes on 2 cores); full: 3 seeds, the settings the
#: README figures come from
BUDGETS = {
    "quick": Budget(GTNConfig(teacher_epochs=10, student_epochs=30, patience=8), seeds=1),
    "full": Budget(GTNConfig(), seeds=3),
}


def custom_members(pool: tuple[StudentSpec, ...]) -> tuple[StudentSpec, ...]:
    """The two pool members that get a customized teacher by default: the smallest and the
    middle one by parameters (the largest instead when the pool has two members)."""
    order = sorted(pool, key=lambda s: (s.params, s.depth, s.width))
    mid = order[(len(order) - 1) // 2]
    return (order[0], mid if mid != order[0] else order[-1])


def parse_custom(text: str, pool: tuple[StudentSpec, ...]) -> tuple[StudentSpec, ...]:
    """The ``--custom`` members: comma-separated pool students, or ``none``."""
    if text.strip().lower() == "none":
        return ()
    specs = []
    for part in (p for p in text.split(",") if p.strip()):
        try:
            spec = StudentSpec.parse(part)
        except ValueError as e:
            raise ValueError(f"--custom {text!r}: {e}") from None
        if spec not in pool:
            raise ValueError(f"--custom {text!r}: {spec.name} is not in the pool "
                             f"({', '.join(s.name for s in pool)})")
        specs.append(spec)
    return tuple(dict.fromkeys(specs))


def _save_csv(rows: list[dict], path: Path, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns) if columns else None)
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)
    return df


def run(data: DigitsData, pool: tuple[StudentSpec, ...], cfg: GTNConfig, seeds: list[int], out: Path,
        custom: tuple[StudentSpec, ...] | None = None, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Train and evaluate everything of the comparison; write the folder described above.

    Parameters
    ----------
    data : DigitsData
    pool : tuple of StudentSpec
        The student pool (at least two members).
    cfg : GTNConfig
    seeds : list of int
        One repetition per seed (>= 0).
    out : Path
        Output folder (created).
    custom : tuple of StudentSpec, optional
        Members with a customized teacher (default :func:`custom_members`; ``()``: none).
    log : callable
        Receives one progress line per finished stage.

    Returns
    -------
    pandas.DataFrame
        results.csv's rows.
    """
    cfg.check()
    custom = custom_members(pool) if custom is None else custom
    out = Path(out)
    (out / "teachers").mkdir(parents=True, exist_ok=True)
    (out / "students").mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({
        "data": "digits", "split_seed": seeds[0], "seeds": list(seeds), "config": cfg.to_dict(),
        "pool": {s.name: s.params for s in pool}, "custom": [s.name for s in custom],
        "threads": torch.get_num_threads(), "time": "process CPU seconds"}, indent=2))
    rows: list[dict] = []
    trows: list[dict] = []
    crows: list[dict] = []
    for seed in seeds:
        teachers: dict[str, tuple] = {}  # kind -> (logits on the training images, CPU s)
        t, info = train_teacher(data, cfg, seed)
        teachers["standard"] = _keep_teacher(t, info, "standard", None, seed, out, data, trows, log)
        t, sn, info = train_gtn(data, pool, cfg, seed)
        teachers["generic"] = _keep_teacher(t, info, "generic", None, seed, out, data, trows, log)
        subs = " ".join(f"{k} {100 * v:.1f}" for k, v in info["subnet_val_accuracy"].items())
        log(f"[seed {seed}] supernet subnets at the end, validation %: {subs}")
        for spec in custom:
            t, _, info = train_gtn(data, (spec,), cfg, seed)
            teachers[f"custom-{spec.name}"] = _keep_teacher(t, info, "custom", spec, seed, out, data, trows, log)
        _save_csv(trows, out / "teachers.csv")
        spent = {k: 0.0 for k in TEACHERS}
        for spec in pool:
            kinds = ["none", "standard", "generic"] + (["custom"] if spec in custom else [])
            accs = []
            for kind in kinds:
                key = f"custom-{spec.name}" if kind == "custom" else kind
                logits = None if kind == "none" else teachers[key][0]
                student, sinfo = train_student(data, spec, logits, cfg, seed)
                save_student(out / "students" / f"{spec.name}-{kind}-seed{seed}.pt", student, teacher=kind,
                             seed=seed, accuracy=sinfo["test_accuracy"], val_accuracy=sinfo["val_accuracy"],
                             epoch=sinfo["epoch"], train_seconds=sinfo["cpu_seconds"], config=cfg.to_dict())
                rows.append({"student": spec.name, "params": spec.params, "teacher": kind, "seed": seed,
                             "accuracy": sinfo["test_accuracy"], "train_seconds": sinfo["cpu_seconds"]})
                spent[kind] += sinfo["cpu_seconds"]
                accs.append(f"{kind} {100 * sinfo['test_accuracy']:.1f}")
                _save_csv(rows, out / "results.csv", COLUMNS)
            log(f"[seed {seed}] {spec.name} ({spec.params:,} params) test %: {', '.join(accs)}")
        for kind in TEACHERS:
            if kind == "custom" and not custom:
                continue
            tsec = sum(v[1] for k, v in teachers.items() if k == kind or (kind == "custom" and k.startswith("custom-")))
            n = len(custom) if kind == "custom" else len(pool)
            crows.append({"approach": kind, "seed": seed, "teacher_seconds": tsec, "student_seconds": spent[kind],
                          "students": n, "total_seconds": tsec + spent[kind],
                          "seconds_per_student": (tsec + spent[kind]) / n})
        _save_csv(crows, out / "costs.csv")
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    plot(df, out / "accuracy_vs_params.png")
    return df


def _keep_teacher(teacher: DigitsCNN, info: dict, kind: str, spec: StudentSpec | None, seed: int, out: Path,
                  data: DigitsData, trows: list[dict], log: Callable[[str], None]) -> tuple:
    name = f"custom-{spec.name}" if spec else kind
    save_student(out / "teachers" / f"{name}-seed{seed}.pt", teacher, role="teacher", teacher=kind,
                 seed=seed, accuracy=info["test_accuracy"], val_accuracy=info["val_accuracy"],
                 epoch=info["epoch"], train_seconds=info["cpu_seconds"],
                 for_student=spec.name if spec else None)
    trows.append({"teacher": kind, "student": spec.name if spec else "", "params": teacher.spec.params,
                  "seed": seed, "val_accuracy": info["val_accuracy"], "accuracy": info["test_accuracy"],
                  "epoch": info["epoch"], "train_seconds": info["cpu_seconds"]})
    log(f"[seed {seed}] {name} teacher ({teacher.spec.name}): validation {100 * info['val_accuracy']:.1f} %, "
        f"test {100 * info['test_accuracy']:.1f} % ({info['cpu_seconds']:.0f} CPU s)")
    return logits_of(teacher, data.x_train), info["cpu_seconds"]


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds, ddof 1; 0 for one seed) of the test accuracy per
    (student, params, teacher), in %; ``n`` seeds; ordered by parameters then :data:`TEACHERS`."""
    g = results.groupby(["student", "params", "teacher"])["accuracy"]
    s = pd.DataFrame({"mean": 100 * g.mean(), "std": 100 * g.std(ddof=1).fillna(0.0), "n": g.size()}).reset_index()
    s["order"] = s["teacher"].map({k: i for i, k in enumerate(TEACHERS)})
    return s.sort_values(["params", "order"]).drop(columns="order").reset_index(drop=True)


def markdown_table(results: pd.DataFrame) -> str:
    """One row per student, one column per teacher: ``mean ± std`` test accuracy (%)."""
    s = summary(results)
    kinds = [k for k in TEACHERS if k in set(s["teacher"])]
    lines = ["| student | params | " + " | ".join(kinds) + " |", "|---|---:|" + "---:|" * len(kinds)]
    for (name, params), grp in s.groupby(["student", "params"], sort=False):
        cell = {r.teacher: f"{r.mean:.2f} ± {r.std:.2f}" for r in grp.itertuples()}
        lines.append(f"| {name} | {params:,} | " + " | ".join(cell.get(k, "–") for k in kinds) + " |")
    return "\n".join(lines)


def cost_table(costs_csv: Path) -> str:
    """Markdown table of costs.csv: per approach, the mean over seeds of the teachers' and the
    students' CPU seconds, their total, and the total per student covered."""
    c = pd.read_csv(costs_csv)
    g = c.groupby("approach")[["teacher_seconds", "student_seconds", "total_seconds", "seconds_per_student",
                               "students"]].mean()
    lines = ["| approach | teachers (CPU s) | students (CPU s) | total (CPU s) | students covered | per student (CPU s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind in (k for k in TEACHERS if k in g.index):
        r = g.loc[kind]
        lines.append(f"| {kind} | {r.teacher_seconds:.0f} | {r.student_seconds:.0f} | {r.total_seconds:.0f} | "
                     f"{r.students:.0f} | {r.seconds_per_student:.1f} |")
    return "\n".join(lines)


def plot(results: pd.DataFrame, path: Path) -> None:
    """Test accuracy (%, mean ± std over seeds) against student parameters, one series per
    teacher; written as a PNG."""
    # heavy: matplotlib (only the plot needs it)
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib, after the backend is chosen

    s = summary(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = {"generic": "o", "standard": "s", "custom": "D", "none": "x"}
    for kind in TEACHERS:
        k = s[s["teacher"] == kind]
        if len(k):
            ax.errorbar(k["params"], k["mean"], yerr=k["std"], marker=markers[kind], capsize=3,
                        linestyle="-" if kind != "custom" else "none", label=f"{kind} teacher" if kind != "none" else "no KD")
    ax.set_xscale("log")
    students = s.drop_duplicates("student").sort_values("params")
    ax.set_xticks(list(students["params"]), [f"{r.student}\n{r.params / 1000:.1f}k" for r in students.itertuples()])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("student (parameters, log scale)")
    ax.set_ylabel("test accuracy (%)")
    n = int(s["n"].max()) if len(s) else 0
    ax.set_title(f"digits: students of the GTN pool by teacher ({n} seed{'s' if n != 1 else ''}, mean ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def with_overrides(cfg: GTNConfig, epochs: int | None = None, kd_weight: float | None = None,
                   teacher: str | None = None) -> GTNConfig:
    """``cfg`` with every training's epochs set to ``epochs``, λ set to ``kd_weight`` and the
    teachers' architecture set to ``teacher`` (``dDwW``); None leaves a value unchanged."""
    if epochs is not None:
        cfg = replace(cfg, teacher_epochs=epochs, student_epochs=epochs)
    if kd_weight is not None:
        cfg = replace(cfg, kd_weight=kd_weight)
    if teacher is not None:
        try:
            cfg = replace(cfg, teacher=StudentSpec.parse(teacher).name)
        except ValueError as e:
            raise ValueError(f"--teacher {teacher!r}: {e}") from None
    return cfg
