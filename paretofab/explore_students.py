"""``paretofab explore --students DIR``: student size as a design axis, from a GTN folder.

A folder written by ``paretofab gtn --data digits -o DIR`` (digits CNNs ``dDwW``) or ``paretofab gtn
--data TRACE-FOLDER -o DIR`` (MAP ResNets ``rDwW``, :mod:`models.gtn_map`) holds every pool student
distilled from one teacher (``--teacher``: ``generic`` by default, the Generic Teacher Network's);
its ``run.json`` names the workload (``data``: ``digits`` or ``map``, :data:`KINDS`). A folder
written by ``paretofab datafree --teacher digits -o DIR`` holds one student (``DIR/student.pt``,
distilled without the training data; ``run.json``: its method, training seed and digits split):
it is explored the same way, as a pool of one (:func:`open_folder`). For every
(student, W = A format, PTQ set) this runs the PTQ sweep (``quant.sweep``, resumable in
``out/sweep.sqlite``) scored as ``paretofab gtn`` scored the student: digits, test accuracy on the
digits split it trained on; MAP, test micro-F1 at the validation-best threshold on the trace splits
it trained on (``DIR/students/data.npz``). For every (student, format, lanes) it costs running the
student's layers one after another on the dense engine ``DotConfig(lanes)``
(:func:`paretofab.costing.network_cost` of :func:`paretofab.mapping.layer_workloads`: a
convolution is ``out_h·out_w·cout`` dot products of K = ``cin·kh·kw``, a linear layer ``out`` of
K = its inputs; pooling, normalization and ReLU are not costed). Lanes: 1, 2, 4 … up to
``--lanes``, since the engine streams the weights, its LUTs depend on its lanes and format, not on
the student, and the student's size shows in cycles, latency and energy.

Results under ``out``: ``pareto.csv`` (every point with its ``rank``, 1 = the front of accuracy
against :data:`OBJECTIVES`), ``pareto_lut_accuracy.png`` and ``pareto_latency_accuracy.png``
(accuracy against LUTs, against latency: each plot's own two-objective front, its points labelled
``student format l<lanes>``; ``accuracy`` is the workload's metric, named in the ``metric`` column:
``accuracy`` or ``micro_f1@val``), ``winners.csv`` (:func:`winners`: for each LUT budget and
latency target, the most accurate point that fits: which student size wins where) and the Verilog
of the front's engines in ``out/rtl``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from costmodel import PlotOptions, pareto, plot
from models.gtn_eval import TEACHERS
from models.gtn_map import MAP
from models.gtn_pool import DIGITS, SIDE, Family
from models.map_data import HISTORY, TOKENS
from models.prune import Pattern
from quant.common import writable_folder
from quant.formats import parse_format
from quant.sweep import SweepSpace, digits_split_seed, grid, is_digits_student, load_results, run_sweep

from .costing import export_front, network_cost
from .mapping import LayerWorkload, engine_for, layer_workloads
from .options import ExploreConfig

__all__ = ["OBJECTIVES", "KINDS", "StudentKind", "StudentFolder", "StudentsConfig", "open_folder", "lane_counts",
           "student_layers", "sweep", "cost_table", "rank", "winners", "winners_table", "explore_students",
           "from_args"]

#: costs minimized on the front, beside accuracy maximized (energy follows latency on one engine)
OBJECTIVES = ("lut", "dsp", "latency_us")
#: ExploreConfig fields that apply to ``--students`` (the others describe the MAP trace student)
_SHARED = ("out", "formats", "ptq", "lanes", "device", "seed", "allow_degenerate", "jobs", "threads", "progress")


@dataclass(frozen=True)
class StudentKind:
    """What exploring a GTN folder needs of its workload (``run.json``'s ``data``).

    Attributes
    ----------
    data : ``digits`` or ``map``.
    family : the student family (:class:`models.gtn_pool.Family`: its ``load`` rebuilds a student).
    input_shape : one input of a student (its layers' dot products are counted on it).
    metric : what the sweep's ``accuracy`` is, for titles and logs.
    """

    data: str
    family: Family
    input_shape: tuple[int, ...]
    metric: str

    def layers(self, ckpt: Path) -> list[LayerWorkload]:
        """The dot products of one inference of the student saved at ``ckpt``
        (:func:`layer_workloads`): per layer K and the number of dot products."""
        return layer_workloads(self.family.load(ckpt), torch.zeros(self.input_shape))


#: the workloads a GTN folder may hold, by ``run.json``'s ``data``
KINDS = {
    "digits": StudentKind("digits", DIGITS, (1, 1, SIDE, SIDE), "test accuracy"),
    "map": StudentKind("map", MAP, (1, HISTORY, TOKENS), "test micro-F1"),
}


@dataclass(frozen=True)
class StudentFolder:
    """The students of one teacher and training seed in a GTN folder.

    Attributes
    ----------
    path : the folder.
    teacher : ``generic``, ``standard``, ``custom`` or ``none``; ``datafree:<method>`` for the
        student of a ``paretofab datafree`` folder.
    seed : the training seed of these students.
    split_seed : the split they trained on (``run.json``; MAP: the seed of the splits in
        ``students/data.npz``, also the PTQ seed of the sweep).
    students : ``(name, params, checkpoint)`` per student, by parameters.
    float_accuracy : the metric (fraction) of every (student, seed) of this teacher
        (``results.csv``: the seed-to-seed spread).
    kind : the workload (:data:`KINDS`).
    """

    path: Path
    teacher: str
    seed: int
    split_seed: int
    students: tuple[tuple[str, int, Path], ...]
    float_accuracy: pd.DataFrame
    kind: StudentKind = KINDS["digits"]


def _refuse(folder: Path, why: str) -> ValueError:
    return ValueError(f"--students {folder}: {why}; give a folder written by `paretofab gtn --data digits|TRACE-FOLDER "
                      "-o DIR` or `paretofab datafree --teacher digits -o DIR`")


def _datafree_folder(folder: Path, teacher: str, seed: int) -> StudentFolder | None:
    """The one student of a ``paretofab datafree`` folder (a ``run.json`` naming its ``method``, or
    a ``student.pt``); None for a folder of another kind. Checkpoint and split are resolved as
    ``quant.sweep`` resolves them (:func:`is_digits_student`, :func:`digits_split_seed`)."""
    ckpt = folder / "student.pt"
    try:
        run = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        run = {}
    run = run if isinstance(run, dict) else {}
    if "method" not in run and not ckpt.exists():
        return None
    if not is_digits_student(str(ckpt)):
        raise _refuse(folder, "it has no student.pt" if not ckpt.exists() else "its student.pt is not a digits student")
    split = digits_split_seed(str(ckpt))
    if split is None or not isinstance(run.get("seed"), int):
        raise _refuse(folder, "its run.json names no split_seed and seed")
    if teacher != "generic":
        raise ValueError(f"--teacher {teacher}: {folder} holds one data-free student (of its BatchNorm teacher); "
                         "drop --teacher")
    if run["seed"] != seed:
        raise ValueError(f"--seed {seed}: {folder} holds the data-free student of seed {run['seed']}; give --seed "
                         f"{run['seed']}")
    try:
        acc = float(json.loads((folder / "metrics.json").read_text())["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        raise _refuse(folder, "its metrics.json names no accuracy") from None
    spec = DIGITS.load(ckpt).spec
    float_acc = pd.DataFrame({"student": [spec.name], "params": [spec.params], "seed": [seed], "accuracy": [acc]})
    return StudentFolder(folder, f"datafree:{run['method']}", seed, split, ((spec.name, spec.params, ckpt),),
                         float_acc)


def open_folder(folder: str | Path, teacher: str = "generic", seed: int = 0) -> StudentFolder:
    """Read a GTN folder: its ``results.csv``, ``run.json`` (the workload, :data:`KINDS`, and the
    split) and the checkpoints of ``teacher``'s students of training seed ``seed``; or a
    ``paretofab datafree`` folder: its one student.

    Raises
    ------
    ValueError
        One line naming the fix: no such folder, no ``results.csv`` / ``run.json``, a workload
        neither digits nor MAP, a MAP folder without ``students/data.npz``, an unknown teacher, no
        students of that teacher and seed, a missing checkpoint or one of another family; for a
        data-free folder, no ``student.pt``, another training seed, a ``--teacher`` given.
    """
    folder = Path(folder)
    if teacher not in TEACHERS:
        raise ValueError(f"--teacher {teacher!r}: choose one of {', '.join(TEACHERS)}")
    if not folder.is_dir():
        raise _refuse(folder, "no such folder")
    datafree = _datafree_folder(folder, teacher, seed)
    if datafree is not None:
        return datafree
    for name in ("results.csv", "run.json"):
        if not (folder / name).is_file():
            raise _refuse(folder, f"it has no {name}")
    kind, split = _gtn_run(folder)
    try:
        res = pd.read_csv(folder / "results.csv")
    except (ValueError, OSError) as e:
        raise _refuse(folder, f"its results.csv does not read ({' '.join(str(e).split())[:80]})") from None
    if not {"student", "params", "teacher", "seed", "accuracy"} <= set(res.columns):
        raise _refuse(folder, "its results.csv lacks the columns student, params, teacher, seed, accuracy")
    mine = res[res["teacher"] == teacher]
    if mine.empty:
        have = ", ".join(sorted(set(res["teacher"]))) or "none"
        raise ValueError(f"--teacher {teacher}: {folder} has no students of that teacher (it has {have})")
    rows = mine[mine["seed"] == seed].sort_values(["params", "student"])
    if rows.empty:
        seeds = ", ".join(str(s) for s in sorted(set(mine["seed"])))
        raise ValueError(f"--seed {seed}: {folder} has no {teacher} students of that seed; give --seed "
                         f"{sorted(set(mine['seed']))[0]} (seeds: {seeds})")
    students = []
    for r in rows.itertuples():
        ckpt = folder / "students" / f"{r.student}-{teacher}-seed{seed}.pt"
        if not ckpt.is_file():
            raise _refuse(folder, f"students/{ckpt.name} is missing")
        try:
            kind.family.load(ckpt)  # a checkpoint of another family fails here, before any work
        except ValueError as e:
            raise _refuse(folder, f"students/{ckpt.name} is not a {kind.data} student ({e})") from None
        students.append((str(r.student), int(r.params), ckpt))
    acc = mine[["student", "params", "seed", "accuracy"]].reset_index(drop=True)
    return StudentFolder(folder, teacher, seed, split, tuple(students), acc, kind)


def _gtn_run(folder: Path) -> tuple[StudentKind, int]:
    """The workload (:data:`KINDS`, by ``run.json``'s ``data``) and split seed of a GTN folder; a
    MAP folder must hold its splits beside the students (``students/data.npz``)."""
    try:
        run = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        raise _refuse(folder, "its run.json does not read") from None
    run = run if isinstance(run, dict) else {}
    data = run.get("data")
    if data not in KINDS:
        raise _refuse(folder, f"its run.json names the workload {data!r}, neither digits nor map")
    split = run.get("split_seed")
    if not isinstance(split, int):
        raise _refuse(folder, "its run.json names no split_seed")
    if data == "map" and not (folder / "students" / "data.npz").is_file():
        raise _refuse(folder, "students/data.npz (the splits the MAP students trained on) is missing")
    return KINDS[data], split


def lane_counts(lanes: int) -> tuple[int, ...]:
    """The engine sizes costed: 1, 2, 4 … up to ``lanes`` (``lanes`` itself included)."""
    return tuple(sorted({2**i for i in range(int(math.log2(lanes)) + 1)} | {lanes}))


def student_layers(ckpt: Path, kind: StudentKind = KINDS["digits"]) -> list[LayerWorkload]:
    """The dot products of one inference of a student of ``kind`` (:meth:`StudentKind.layers`:
    digits, one 1×8×8 image; MAP, one 10×10 input): per layer K and the number of dot products."""
    return kind.layers(ckpt)


def sweep(folder: StudentFolder, formats: tuple[str, ...], ptqs: tuple[str, ...], store: Path, jobs: int = 1,
          progress: bool = True, allow_degenerate: bool = False) -> pd.DataFrame:
    """PTQ sweep (``quant.sweep``, resumable in ``store``) of every student × format (W = A) ×
    PTQ set, on the split the students trained on (digits: accuracy; MAP: micro-F1 at the
    validation-best threshold; a degenerate trace refused unless ``allow_degenerate``); returns one
    row per point: ``student``, ``params``, ``format``, ``ptq``, ``metric`` (the sweep's name of
    it), ``accuracy`` and ``float_accuracy`` (test, fractions)."""
    owner: dict[str, tuple[str, int]] = {}
    points = []
    for name, params, ckpt in folder.students:
        for f in formats:
            space = SweepSpace(models=[str(ckpt)], wfmts=[f], afmts=[f], ptqs=list(ptqs), seeds=[folder.split_seed])
            pts = grid(space, allow_degenerate=allow_degenerate)
            owner.update((p.key, (name, params)) for p in pts)
            points += pts
    r = run_sweep(points, store, jobs=jobs, progress=progress)
    if r["errors"]:
        print(f"   {len(r['errors'])} point(s) failed (left out): {next(iter(r['errors'].values()))}")
    acc = load_results(store)
    acc = acc[acc["key"].isin(owner)]
    return pd.DataFrame({
        "student": [owner[k][0] for k in acc["key"]], "params": [owner[k][1] for k in acc["key"]],
        "format": acc["wfmt"].to_numpy(), "ptq": acc["ptq"].to_numpy(), "metric": acc["metric_name"].to_numpy(),
        "accuracy": acc["metric"].to_numpy(),
        "float_accuracy": acc["float_metric"].to_numpy(),
    })


def cost_table(folder: StudentFolder, formats: tuple[str, ...], lanes: tuple[int, ...], device: str) -> pd.DataFrame:
    """One row per student, format and lane count: ``student``, ``format``, ``lanes``, ``macs``
    (multiply-accumulates per inference), ``config`` (the engine's ``to_dict()`` as JSON) and the
    cost of running every layer on ``DotConfig(lanes, format, format, K_max)``
    (:func:`paretofab.costing.network_cost`: resources, cycles, latency, energy, labels)."""
    rows = []
    for name, _, ckpt in folder.students:
        layers = student_layers(ckpt, folder.kind)
        k_max = max(lr.k for lr in layers)
        macs = sum(lr.k * lr.vectors for lr in layers)
        for f in formats:
            for la in lanes:
                config = engine_for(Pattern(), f, k_max, la)
                rows.append({"student": name, "format": f, "lanes": la, "macs": macs,
                             "config": json.dumps(config.to_dict()), **network_cost(config, layers, device)})
    return pd.DataFrame(rows)


def rank(points: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Every (student, format, PTQ set, lanes) point: the sweep's accuracy joined to its cost,
    named ``student format l<lanes>`` (+ the PTQ set), with ``rank`` (1 = the front of accuracy
    against :data:`OBJECTIVES`, ``costmodel.pareto``)."""
    df = points.merge(costs, on=["student", "format"], how="inner", validate="many_to_many")
    df["name"] = (df["student"] + " " + df["format"] + " l" + df["lanes"].astype(str)
                  + np.where(df["ptq"] == "none", "", " " + df["ptq"]))
    df = pareto(df, maximize=["accuracy"], minimize=list(OBJECTIVES), all_ranks=True)
    return df.rename(columns={"pareto_rank": "rank"}).reset_index(drop=True)


def _ladder(lo: float, hi: float, step: float) -> list[float]:
    """``step``-fold budgets from the first at or above ``lo`` to the first at or above ``hi``."""
    a, b = math.ceil(math.log(lo, step) - 1e-9), math.ceil(math.log(hi, step) - 1e-9)
    return [step**i for i in range(a, b + 1)]


def winners(df: pd.DataFrame, lut_budgets: list[float] | None = None,
            latency_budgets: list[float] | None = None) -> pd.DataFrame:
    """For every LUT budget and latency target, the most accurate point of ``df`` within both
    (ties: fewer LUTs, DSPs, then lower latency, so a winner is never dominated on the front).

    Parameters
    ----------
    df : ranked points (:func:`rank`).
    lut_budgets : LUTs; default powers of two spanning the front's LUTs.
    latency_budgets : µs per inference; default powers of ten spanning the front's latencies.

    Returns
    -------
    pandas.DataFrame
        ``lut_budget``, ``latency_budget_us`` and the winner's ``name``, ``student``, ``format``,
        ``lanes``, ``ptq``, ``accuracy``, ``lut``, ``dsp``, ``latency_us`` (NaN where nothing fits).
    """
    front = df[df["rank"] == 1]
    lut_budgets = lut_budgets or _ladder(front["lut"].min(), front["lut"].max(), 2)
    latency_budgets = latency_budgets or _ladder(front["latency_us"].min(), front["latency_us"].max(), 10)
    order = df.sort_values(["accuracy", "lut", "dsp", "latency_us"], ascending=[False, True, True, True])
    cols = ["name", "student", "format", "lanes", "ptq", "accuracy", "lut", "dsp", "latency_us"]
    rows = []
    for lut in lut_budgets:
        for lat in latency_budgets:
            fit = order[(order["lut"] <= lut) & (order["latency_us"] <= lat)]
            best = fit.iloc[0][cols].to_dict() if len(fit) else dict.fromkeys(cols, np.nan)
            rows.append({"lut_budget": lut, "latency_budget_us": lat, **best})
    return pd.DataFrame(rows)


def winners_table(w: pd.DataFrame) -> str:
    """:func:`winners` as a markdown grid: one row per LUT budget, one column per latency target,
    cells ``student format l<lanes> accuracy%`` (+ DSPs)."""
    lats = sorted(set(w["latency_budget_us"]))
    lines = ["| LUT budget | " + " | ".join(f"≤ {v:g} µs" for v in lats) + " |", "|---:|" + "---|" * len(lats)]
    for lut, g in w.groupby("lut_budget", sort=True):
        cells = []
        for r in g.sort_values("latency_budget_us").itertuples():
            if isinstance(r.student, str):
                dsp = f", {r.dsp:.0f} DSP" if r.dsp else ""
                cells.append(f"{r.student} {r.format} l{r.lanes:.0f}{'' if r.ptq == 'none' else ' ' + r.ptq}: "
                             f"{100 * r.accuracy:.1f} %{dsp}")
            else:
                cells.append("–")
        lines.append(f"| ≤ {lut:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class StudentsConfig:
    """What ``explore --students`` runs (the :class:`paretofab.options.ExploreConfig` fields that
    apply, beside the folder and the teacher)."""

    students: str
    teacher: str = "generic"
    out: str = "runs/explore_students"
    formats: tuple[str, ...] = ExploreConfig.formats
    ptq: tuple[str, ...] = ("none",)
    lanes: int = 16
    device: str = ExploreConfig.device
    seed: int = 0
    jobs: int = 1
    threads: int = 2
    progress: bool = True
    allow_degenerate: bool = False

    def validate(self) -> None:
        """Check the options before any work (``ValueError``, one line naming the fix); the folder
        is checked by :func:`open_folder`."""
        # no sparsity pattern: only the dense engine runs these students
        cfg = ExploreConfig(pattern=(), **{f.name: getattr(self, f.name) for f in fields(self) if f.name in _SHARED})
        cfg.validate()


def explore_students(cfg: StudentsConfig) -> pd.DataFrame:
    """Sweep, cost, rank and write everything described in the module doc; returns the ranked
    points (:func:`rank`). Raises ``ValueError`` for a bad option or folder before any work."""
    cfg.validate()
    folder = open_folder(cfg.students, cfg.teacher, cfg.seed)
    out = writable_folder(cfg.out)
    torch.set_num_threads(cfg.threads)
    formats = tuple(str(parse_format(f)) for f in cfg.formats)
    lanes = lane_counts(cfg.lanes)
    t0 = time.perf_counter()
    names = ", ".join(f"{n} ({p:,})" for n, p, _ in folder.students)
    split = (f"digits split {folder.split_seed}" if folder.kind.data == "digits"
             else f"{folder.kind.metric} on the trace splits of {folder.path / 'students' / 'data.npz'}")
    print(f"== PTQ sweep: {len(folder.students)} {folder.teacher}-teacher {folder.kind.data} students of seed "
          f"{cfg.seed} ({names}) × {len(formats)} formats (W = A) × {len(cfg.ptq)} technique sets, {split}",
          flush=True)
    points = sweep(folder, formats, cfg.ptq, out / "sweep.sqlite", cfg.jobs, cfg.progress, cfg.allow_degenerate)
    print(f"== cost model: dense engine, lanes {', '.join(map(str, lanes))} on {cfg.device}", flush=True)
    df = rank(points, cost_table(folder, formats, lanes, cfg.device))
    df.to_csv(out / "pareto.csv", index=False)
    for x, what in (("lut", "LUTs (DSPs and latency not counted)"), ("latency_us", "latency (µs per inference)")):
        title = (f"{folder.kind.data} students ({folder.teacher} teacher) on the dense engine\n"
                 f"front: max {folder.kind.metric}, min {what}")
        plot(df, x, "accuracy", PlotOptions(maximize=["accuracy"], minimize=[x], label="name", title=title),
             path=out / f"pareto_{x.split('_')[0]}_accuracy.png")
    w = winners(df)
    w.to_csv(out / "winners.csv", index=False)
    print("== Verilog of the front's engines", flush=True)
    front = df[df["rank"] == 1]
    export_front([engine_for(Pattern(), f, int(json.loads(c)["k_max"]), la)
                  for f, c, la in front[["format", "config", "lanes"]].itertuples(index=False)], out / "rtl")
    print_front(df, folder)
    print("\nmost accurate point within each LUT budget and latency target (winners.csv):")
    print(winners_table(w))
    print(f"\nwrote {out}/pareto.csv, pareto_lut_accuracy.png, pareto_latency_accuracy.png, winners.csv, rtl/ ({time.perf_counter() - t0:.0f} s)")
    return df


def print_front(df: pd.DataFrame, folder: StudentFolder) -> None:
    """The front, then each student's float test accuracy over the folder's seeds (the spread a
    difference between students must beat)."""
    cols = ["student", "params", "macs", "format", "lanes", "ptq", "accuracy", "lut", "dsp", "cycles", "latency_us",
            "energy_nj"]
    show = df[df["rank"] == 1].sort_values(["lut", "latency_us"])[cols]
    print(f"\nfront ({len(show)} of {len(df)} points; max accuracy, min {', '.join(OBJECTIVES)}):")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    g = folder.float_accuracy.groupby(["student", "params"])["accuracy"]
    s = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.size()}).reset_index().sort_values("params")
    print(f"float {folder.kind.metric} of the {folder.teacher}-teacher students over seeds: " + "; ".join(
        f"{r.student} {100 * r.mean:.1f} %" + (f" ± {100 * r.sd:.1f} (n={r.n})" if r.n > 1 else " (1 seed)")
        for r in s.itertuples()))


def from_args(args: argparse.Namespace, explore_cfg: ExploreConfig) -> StudentsConfig:
    """The :class:`StudentsConfig` of an explore command line with ``--students``; an option that
    describes the trace student (``--arch``, ``--pattern`` …) is refused, not ignored."""
    default = ExploreConfig()
    given = replace(explore_cfg, workload=replace(explore_cfg.workload, seed=default.workload.seed))  # --seed is shared
    for f in fields(ExploreConfig):
        if f.name not in _SHARED and getattr(given, f.name) != getattr(default, f.name):
            flag = (f.metadata["cli"].flags or (f"--{f.name.replace('_', '-')}",))[-1]
            what = flag if f.name != "workload" else "the trace options (--app, --trace …)"
            raise ValueError(f"{what}: an option of the trace student, not of --students; drop it")
    kw = {k: getattr(explore_cfg, k) for k in _SHARED}
    if kw["out"] == default.out:  # not the trace explore's folder: its pareto.csv would be overwritten
        kw["out"] = StudentsConfig.out
    return StudentsConfig(args.students, args.teacher, **kw)
