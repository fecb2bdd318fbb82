"""The GTN comparison on digits or MAP traces: every pool student distilled from the generic
teacher, from a standard teacher (same architecture and epochs, task loss only), from a teacher
customized for it (two pool members), and trained without KD, for several seeds; what
``paretofab gtn`` runs.

Folder written by :func:`run` (each file rewritten as soon as a row is finished)::

    teachers/{generic,standard}-seed{S}.pt, teachers/custom-{student}-seed{S}.pt
    students/{student}-{teacher}-seed{S}.pt     standalone (the family's load: models.gtn_pool.
                                                load_student, models.gtn_map.load_student)
    students/data.npz, teachers/data.npz        MAP only: the splits (a checkpoint + data.npz
                                                beside it is a ``paretofab sweep --model`` spec)
    results.csv      student, params, teacher, seed, accuracy (test, fraction: digits accuracy,
                     MAP micro-F1 at the validation-best threshold), train_seconds
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
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from torch import nn

from .digits_data import DigitsData
from .gtn import GTNConfig, Task, as_task, logits_of, train_gtn, train_student, train_teacher
from .gtn_pool import DIGITS, Family
from .specs import TEACHERS

__all__ = ["Budget", "BUDGETS", "MAP_BUDGETS", "TEACHERS", "COLUMNS", "METRIC_LABEL", "custom_members",
           "parse_custom", "run", "summary", "markdown_table", "cost_table", "plot", "with_overrides"]

COLUMNS = ("student", "params", "teacher", "seed", "accuracy", "train_seconds")


@dataclass(frozen=True)
class Budget:
    """A named training budget: the hyper-parameters, the number of seeds and (MAP) the rows kept
    of the trace (None: all)."""

    cfg: GTNConfig
    seeds: int
    rows: int | None = None


#: quick: one seed, short trainings (a few minutes on 2 cores); full: 3 seeds, the settings the
#: README figures come from
BUDGETS = {
    "quick": Budget(GTNConfig(teacher_epochs=10, student_epochs=30, patience=8), seeds=1),
    "full": Budget(GTNConfig(), seeds=3),
}

#: MAP budgets. Both use PaCKD's KD (α = 0.7, T = 1, as ``paretofab distill``). quick: 4,000 rows
#: (2,880 training), batch 32 at lr 1e-2 (every pool width leaves the frequency plateau within
#: 8 epochs; at batch 64 / lr 5e-3 the students below 9k parameters did not), 6 teacher / <= 8
#: student epochs, one random member per sandwich; full: distill's 30,000 rows, batch 256, lr 2e-3,
#: 30 / <= 40 epochs, 3 seeds (hours of CPU).
MAP_BUDGETS = {
    "quick": Budget(GTNConfig(teacher_epochs=6, student_epochs=8, patience=3, batch_size=32, lr=1e-2, alpha=0.7,
                              temperature=1.0, samples=1, teacher="r2w128"), seeds=1, rows=4_000),
    "full": Budget(GTNConfig(teacher_epochs=30, student_epochs=40, patience=5, batch_size=256, lr=2e-3, alpha=0.7,
                             temperature=1.0, samples=2, teacher="r2w128"), seeds=3, rows=30_000),
}

#: the y axis of the plot, per workload
METRIC_LABEL = {"digits": "test accuracy (%)", "map": "test micro-F1 (%)"}


def custom_members(pool: tuple) -> tuple:
    """The two pool members that get a customized teacher by default: the smallest and the
    middle one by parameters (the largest instead when the pool has two members)."""
    order = sorted(pool, key=lambda s: (s.params, s.depth, s.width))
    mid = order[(len(order) - 1) // 2]
    return (order[0], mid if mid != order[0] else order[-1])


def parse_custom(text: str, pool: tuple, family: Family | None = None) -> tuple:
    """The ``--custom`` members: comma-separated pool students (of ``family``, default digits), or
    ``none``."""
    if text.strip().lower() == "none":
        return ()
    specs = []
    for part in (p for p in text.split(",") if p.strip()):
        try:
            spec = (family or DIGITS).parse(part)
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


def run(data: DigitsData | Task, pool: tuple, cfg: GTNConfig, seeds: list[int], out: Path,
        custom: tuple | None = None, log: Callable[[str], None] = print, jobs: int = 1) -> pd.DataFrame:
    """Train and evaluate everything of the comparison; write the folder described above.

    Parameters
    ----------
    data : DigitsData or Task
        The workload (:class:`models.gtn.MapTask` for MAP traces).
    pool : tuple of pool members
        The student pool (at least two members of the task's family).
    cfg : GTNConfig
    seeds : list of int
        One repetition per seed (>= 0).
    out : Path
        Output folder (created).
    custom : tuple of pool members, optional
        Members with a customized teacher (default :func:`custom_members`; ``()``: none).
    log : callable
        Receives one progress line per finished stage.
    jobs : int
        Trainings run at once, each in its own process of ``torch.get_num_threads()`` threads
        (1: all in this process). The teachers of a seed run together, then its students; the
        results do not depend on ``jobs`` (each training is seeded on its own) and each training's
        CPU seconds are those of the process that ran it.

    Returns
    -------
    pandas.DataFrame
        results.csv's rows.
    """
    task = as_task(data)
    cfg.check(task.family)
    custom = custom_members(pool) if custom is None else custom
    out = Path(out)
    for sub in ("teachers", "students"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        task.save_data(out / sub)
    (out / "run.json").write_text(json.dumps({
        "data": task.name, "split_seed": seeds[0], "seeds": list(seeds), "config": cfg.to_dict(),
        "pool": {s.name: s.params for s in pool}, "custom": [s.name for s in custom], "metric": task.metric,
        "workload": task.info, "threads": torch.get_num_threads(), "time": "process CPU seconds"},
        indent=2, default=str))
    rows: list[dict] = []
    trows: list[dict] = []
    crows: list[dict] = []
    pmap, close = _mapper(jobs)
    try:
        for seed in seeds:
            # teachers: (kind, the student a custom teacher is for)
            tjobs = [("generic", None), ("standard", None)] + [("custom", spec) for spec in custom]
            teachers: dict[str, tuple] = {}  # kind -> (logits on the training inputs, CPU s)
            for (kind, spec), (t, info) in zip(tjobs, pmap(_teacher_job, [(task, pool, cfg, seed, kind, spec)
                                                                         for kind, spec in tjobs])):
                key = f"custom-{spec.name}" if spec else kind
                teachers[key] = _keep_teacher(t, info, kind, spec, seed, out, task, trows, log)
                if kind == "generic":
                    subs = " ".join(f"{k} {100 * v:.1f}" for k, v in info["subnet_val_accuracy"].items())
                    log(f"[seed {seed}] supernet subnets at the end, validation %: {subs}")
            _save_csv(trows, out / "teachers.csv")
            spent = {k: 0.0 for k in TEACHERS}
            sjobs = [(spec, kind) for spec in pool
                     for kind in ["none", "standard", "generic"] + (["custom"] if spec in custom else [])]
            args = [(task, spec, None if kind == "none" else teachers[f"custom-{spec.name}" if kind == "custom"
                                                                      else kind][0], cfg, seed)
                    for spec, kind in sjobs]
            accs: list[str] = []
            for i, ((spec, kind), (student, sinfo)) in enumerate(zip(sjobs, pmap(_student_job, args))):
                task.family.save(out / "students" / f"{spec.name}-{kind}-seed{seed}.pt", student, teacher=kind,
                                 seed=seed, **_meta_of(sinfo), config=cfg.to_dict())
                rows.append({"student": spec.name, "params": spec.params, "teacher": kind, "seed": seed,
                             "accuracy": sinfo["test_accuracy"], "train_seconds": sinfo["cpu_seconds"]})
                spent[kind] += sinfo["cpu_seconds"]
                accs.append(f"{kind} {100 * sinfo['test_accuracy']:.1f}")
                _save_csv(rows, out / "results.csv", COLUMNS)
                if i + 1 == len(sjobs) or sjobs[i + 1][0] != spec:
                    log(f"[seed {seed}] {spec.name} ({spec.params:,} params) test %: {', '.join(accs)}")
                    accs = []
            for kind in TEACHERS:
                if kind == "custom" and not custom:
                    continue
                tsec = sum(v[1] for k, v in teachers.items() if k == kind or (kind == "custom" and k.startswith("custom-")))
                n = len(custom) if kind == "custom" else len(pool)
                crows.append({"approach": kind, "seed": seed, "teacher_seconds": tsec, "student_seconds": spent[kind],
                              "students": n, "total_seconds": tsec + spent[kind],
                              "seconds_per_student": (tsec + spent[kind]) / n})
            _save_csv(crows, out / "costs.csv")
    finally:
        close()
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    plot(df, out / "accuracy_vs_params.png", task.name)
    return df


def _teacher_job(task: Task, pool: tuple, cfg: GTNConfig, seed: int, kind: str, spec) -> tuple[nn.Module, dict]:
    """One teacher of a seed: ``standard``, ``generic`` (for ``pool``) or ``custom`` (for ``spec``)."""
    if kind == "standard":
        return train_teacher(task, cfg, seed)
    t, _, info = train_gtn(task, pool if kind == "generic" else (spec,), cfg, seed)
    return t, info


def _student_job(task: Task, spec, logits: torch.Tensor | None, cfg: GTNConfig, seed: int) -> tuple[nn.Module, dict]:
    return train_student(task, spec, logits, cfg, seed)


def _star(job: tuple) -> tuple:
    fn, args = job
    return fn(*args)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _mapper(jobs: int) -> tuple[Callable, Callable[[], None]]:
    """``(pmap, close)``: ``pmap(fn, list of argument tuples)`` yields ``fn(*args)`` in order, in
    this process (``jobs`` 1) or in a pool of ``jobs`` spawned processes."""
    if jobs <= 1:
        return (lambda fn, args: (fn(*a) for a in args)), (lambda: None)
    # spawn: no forked OpenMP state
    ex = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(torch.get_num_threads(),))
    return (lambda fn, args: ex.map(_star, [(fn, a) for a in args])), (lambda: ex.shutdown(cancel_futures=True))


def _meta_of(info: dict) -> dict:
    """Checkpoint meta of a training's info: ``accuracy`` (test), ``val_accuracy``, ``epoch``,
    ``train_seconds`` and the task's other plain values (MAP: threshold, f1_at_0.5 …)."""
    extra = {k: v for k, v in info.items() if isinstance(v, (int, float, str))
             and k not in ("test_accuracy", "cpu_seconds")}
    return {**extra, "accuracy": info["test_accuracy"], "train_seconds": info["cpu_seconds"]}


def _keep_teacher(teacher: nn.Module, info: dict, kind: str, spec, seed: int, out: Path,
                  task: Task, trows: list[dict], log: Callable[[str], None]) -> tuple:
    name = f"custom-{spec.name}" if spec else kind
    task.family.save(out / "teachers" / f"{name}-seed{seed}.pt", teacher, role="teacher", teacher=kind,
                     seed=seed, **_meta_of(info), for_student=spec.name if spec else None)
    trows.append({"teacher": kind, "student": spec.name if spec else "", "params": teacher.spec.params,
                  "seed": seed, "val_accuracy": info["val_accuracy"], "accuracy": info["test_accuracy"],
                  "epoch": info["epoch"], "train_seconds": info["cpu_seconds"]})
    log(f"[seed {seed}] {name} teacher ({teacher.spec.name}): validation {100 * info['val_accuracy']:.1f} %, "
        f"test {100 * info['test_accuracy']:.1f} % ({info['cpu_seconds']:.0f} CPU s)")
    return logits_of(teacher, task.x_train), info["cpu_seconds"]


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


def plot(results: pd.DataFrame, path: Path, workload: str = "digits") -> None:
    """Test accuracy (digits) or micro-F1 (``workload="map"``), %, mean ± std over seeds, against
    student parameters, one series per teacher; written as a PNG."""
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
    ax.set_ylabel(METRIC_LABEL.get(workload, "test accuracy (%)"))
    n = int(s["n"].max()) if len(s) else 0
    ax.set_title(f"{workload}: students of the GTN pool by teacher ({n} seed{'s' if n != 1 else ''}, mean ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def with_overrides(cfg: GTNConfig, epochs: int | None = None, kd_weight: float | None = None,
                   teacher: str | None = None, family: Family | None = None) -> GTNConfig:
    """``cfg`` with every training's epochs set to ``epochs``, λ set to ``kd_weight`` and the
    teachers' architecture set to ``teacher`` (a member of ``family``, default digits ``dDwW``);
    None leaves a value unchanged."""
    if epochs is not None:
        cfg = replace(cfg, teacher_epochs=epochs, student_epochs=epochs)
    if kd_weight is not None:
        cfg = replace(cfg, kd_weight=kd_weight)
    if teacher is not None:
        try:
            cfg = replace(cfg, teacher=(family or DIGITS).parse(teacher).name)
        except ValueError as e:
            raise ValueError(f"--teacher {teacher!r}: {e}") from None
    return cfg
