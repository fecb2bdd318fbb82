"""``paretofab explore``: the main job, from address traces to a Pareto front of accelerators.

traces of one GAP app (refused when degenerate, ``models.trace_stats``) → a student (``models``:
trained on the labels by default, ``--method kd|packd`` distils it; trained with several seeds for
the seed-to-seed spread printed under the front) → SR-STE-pruned copies (``models.prune``:
N:M, and N:M + balanced blocks) → a PTQ sweep over integer and minifloat formats
(``quant.sweep``) for the dense and pruned students → the cost of running the student's layers on
the dense, N:M and N:M + block-skipping engines (``costmodel``) → the Pareto table (printed and
saved as CSV), a plot (PNG) and the Verilog of every Pareto point, all under ``out``; with
``--activity-energy``, the dynamic energy of every Pareto point from the measured switching activity
of its engine's gate-level netlist on the point's own quantized data (:func:`front_activity`).

Engines: the dense student runs on ``DotConfig(lanes)``, the N:M student on
``SparseConfig(lanes, n, m)``, the hybrid one on the largest sparse engine of at most ``lanes``
multipliers whose beat span divides the block (``paretofab.mapping.engine_config``; for 2:4 + blocks
of 8 that is 4 lanes), with each layer's measured fraction of live blocks as its block density.

Stages and what passes between them: :func:`train_student` (a folder, keyed by every option it
depends on) → :func:`candidates` (one :class:`Candidate` per sparsity pattern: the pruned student's
folder, each layer's block density, the engine per format) → :func:`sweep` (micro-F1 per candidate,
format and PTQ set) → :func:`cost_table` (once per candidate and format, joined to the sweep) →
:func:`rank` (the front) → :func:`write_front_verilog` (→ :func:`front_activity`, opt-in). Every
stage is resumable: a finished stage's files are reused, the sweep skips finished points, and the
Verilog of a front point is rewritten only when its engine changed (files of points no longer on
the front are removed); the activity step reuses the cached netlists and gate-level models.
Options: :class:`paretofab.options.ExploreConfig`, checked before any work starts; the command
line: :mod:`paretofab.explore_cli`.

``--students DIR`` explores student size instead, from a ``paretofab gtn`` folder, or the one
student of a ``paretofab datafree`` folder (:mod:`paretofab.explore_students`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from costmodel import PlotOptions, pareto, plot
from models import distill as D
from models import map_data
from models.map_data import load_splits
from models.prune import Pattern, prune_student
from models.zoo import load_checkpoint
from quant.common import json_default, writable_folder
from quant.formats import parse_format
from quant.sweep import SweepSpace, grid, load_results, run_sweep

from .cli import main
from .costing import COST_KEYS, LABEL_KEYS, attention_cost, export_front, network_cost
from .front_accel import front_accel, print_accel
from .explore_students import explore_students
from .explore_students import from_args as students_from_args
from .front_energy import front_activity, print_activity
from .mapping import EngineConfig, LayerWorkload, attention_kernels, block_density, engine_for, layer_workloads
from .options import DEFAULT_FORMATS, ExploreConfig, from_args

__all__ = ["Candidate", "ExploreConfig", "DEFAULT_FORMATS", "OBJECTIVES", "explore", "train_student",
           "candidates", "sweep", "network_cost", "attention_cost", "cost_table", "rank",
           "write_front_verilog", "export_front", "COST_KEYS", "LABEL_KEYS"]

#: costs minimized on the front, beside micro-F1 maximized
OBJECTIVES = ("lut", "dsp", "latency_us", "energy_nj")


@dataclass(frozen=True)
class Candidate:
    """One student of the front, built once after pruning.

    Attributes
    ----------
    pattern : its sparsity pattern (dense, N:M, N:M + blocks).
    student : its folder (``student.pt``, ``data.npz``), what the sweep quantizes.
    density : fraction of live weight blocks per prunable layer (1 without blocks): what the
        block-skipping engine streams.
    engines : the engine that runs it, per W = A format.
    """

    pattern: Pattern
    student: Path
    density: dict[str, float]
    engines: dict[str, EngineConfig]

    @property
    def name(self) -> str:
        """``dense`` or the pattern (``2:4``, ``2:4+b8k0.5``): the table's ``engine`` column."""
        return "dense" if self.pattern.is_dense else str(self.pattern)


def _stage(msg: str) -> float:
    print(f"== {msg}", flush=True)
    return time.perf_counter()


def _key(options: dict) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]


def train_student(cfg: ExploreConfig) -> Path:
    """Trace → splits → teachers → ``spread_seeds`` distilled students under
    ``out/students/<arch>_<app>_<key>`` (``key``: hash of :meth:`ExploreConfig.student_options`,
    so a changed option never reuses another run's student). Returns the folder of the first
    seed's student (``student.pt``, ``data.npz``, ``metrics.json`` with every seed's F1)."""
    opts = cfg.student_options()
    d = Path(cfg.out) / "students" / f"{cfg.arch}_{cfg.workload.app}_{_key(opts)}"
    if (d / "student.pt").exists() and (d / "data.npz").exists() and (d / "metrics.json").exists():
        print(f"   reusing {d}/student.pt")
        return d
    splits, info = cfg.workload.splits(progress=cfg.progress, allow_degenerate=cfg.allow_degenerate)
    st = info["trace_stats"]
    print(f"   {info['llc_accesses']} LLC accesses; +1 share {st['plus1_share']:.3f}, frequency F1 "
          f"{st['freq_f1']:.3f}, IP baseline F1 {st['ip_f1']:.3f}: {st['verdict']}")
    tc = D.TrainConfig(epochs=cfg.epochs, seed=cfg.seed, progress=cfg.progress)
    spec = cfg.kd_spec()
    teachers = None
    if cfg.method != "none":
        tcfg = D.TrainConfig(epochs=cfg.teacher_epochs, lr=D.TEACHER_LR, seed=cfg.seed, progress=cfg.progress)
        teachers = D.train_teachers(splits, spec, tcfg, info=info)
        print(f"   {cfg.method} teacher(s) {cfg.teacher_arch}/{cfg.teacher_preset}: test micro-F1 "
              f"{teachers.summary['f1']:.4f}")
    runs = []
    for i in range(cfg.spread_seeds):
        seed_dir = d if i == 0 else d / f"seed{cfg.seed + i}"
        runs.append(D.distill(splits, spec, replace(tc, seed=cfg.seed + i), out_dir=seed_dir, info=info,
                              teachers=teachers))
    res = {**runs[0], "options": opts, "seed_f1": [r["f1"] for r in runs]}
    map_data.save_splits(d / "data.npz", splits)
    (d / "metrics.json").write_text(json.dumps(res, indent=2, default=json_default))
    f = np.array(res["seed_f1"])
    print(f"   student {res['student_params']} params: test micro-F1 {f[0]:.4f} (seeds: {f.mean():.4f} ± "
          f"{f.std(ddof=1) if f.size > 1 else 0:.4f}; frequency {res['freq_baseline']:.4f}, IP "
          f"{res['ip_baseline']:.4f}, all-ones floor {res['floor']:.4f})")
    return d


def _slug(pattern: Pattern | str) -> str:
    return str(pattern).replace(":", "of").replace("+", "_")


def pruned_student(student_dir: Path, pattern: Pattern, cfg: ExploreConfig) -> Path:
    """``student_dir``'s student pruned to ``pattern`` by SR-STE fine-tuning (``models.prune``;
    ``prune_epochs=0``: one-shot), saved beside it with the same data splits (reused when
    present); the dense pattern is the student itself."""
    if pattern.is_dense:
        return student_dir
    # the folder is the pruning stage's cache key (under the student's own key): its name says how
    # it was pruned, so a folder pruned another way never lends its student or its sweep points
    how = cfg.saliency + (f"_{cfg.classes}" if cfg.classes else "")
    how += f"_srste{cfg.prune_epochs}" if cfg.prune_epochs else "_oneshot"
    d = student_dir / f"pruned_{_slug(pattern)}_{how}"
    if not ((d / "student.pt").exists() and (d / "metrics.json").exists()):
        res = prune_student(str(student_dir / "student.pt"), str(d), pattern, cfg.prune_config())
        print(f"   {pattern}: {res['method']}, {res['sparsity']:.1%} zeros, test micro-F1 {res['f1']:.4f} "
              f"(dense {res['dense']['f1']:.4f})")
    return d


def candidates(student_dir: Path, layers: list[LayerWorkload], cfg: ExploreConfig,
               formats: tuple[str, ...]) -> list[Candidate]:
    """The students of the front: the dense student and its pruned copies (:func:`pruned_student`;
    dense only when a layer is not prunable), each with its block density (measured on the pruned
    weights, once) and its engine for every format."""
    pats = cfg.patterns()
    dense_only = [lr.layer for lr in layers if not lr.prunable]
    if dense_only:  # an N:M engine cannot run dense weights
        print(f"   {', '.join(dense_only)}: recurrent weights are not prunable, so only the dense engine "
              "is explored for this student")
        pats = pats[:1]
    if len(pats) > 1:
        _stage(f"pruning: {', '.join(str(p) for p in pats[1:])} ({cfg.saliency} saliency, SR-STE "
               f"{cfg.prune_epochs} epochs)")
    k_max = max(lr.k for lr in layers)
    out = []
    for p in pats:
        d = pruned_student(student_dir, p, cfg)
        density = (block_density(load_checkpoint(d / "student.pt"), p) if p.has_blocks
                   else {lr.layer: 1.0 for lr in layers if lr.prunable})
        out.append(Candidate(p, d, density, {f: engine_for(p, f, k_max, cfg.lanes) for f in formats}))
    return out


def sweep(cands: list[Candidate], cfg: ExploreConfig, formats: tuple[str, ...], store: Path) -> pd.DataFrame:
    """PTQ sweep (``quant.sweep``, resumable in ``store``) of every candidate × format (W = A) ×
    PTQ set; returns one row per point: ``engine`` (the candidate's name), ``format``, ``ptq``,
    ``micro_f1``, ``float_f1``, ``student`` (its folder, relative to ``cfg.out``)."""
    owner: dict[str, Candidate] = {}
    points = []
    for c in cands:
        for f in formats:
            space = SweepSpace(models=[str(c.student)], wfmts=[f], afmts=[f], ptqs=list(cfg.ptq), seeds=[cfg.seed])
            pts = grid(space, allow_degenerate=cfg.allow_degenerate)
            owner.update((pt.key, c) for pt in pts)
            points += pts
    run_sweep(points, store, jobs=cfg.jobs, progress=cfg.progress)
    acc = load_results(store)
    acc = acc[acc["key"].isin(owner)]  # the store may hold other sweeps' points
    out = Path(cfg.out).resolve()
    return pd.DataFrame({
        "format": acc["wfmt"], "ptq": acc["ptq"], "micro_f1": acc["metric"],
        "float_f1": acc["float_metric"] if "float_metric" in acc else np.nan,
        "student": [str(owner[k].student.resolve().relative_to(out)) for k in acc["key"]],
        "engine": [owner[k].name for k in acc["key"]],
    }).reset_index(drop=True)


def cost_table(cands: list[Candidate], layers: list[LayerWorkload], device: str,
               attention: dict | None = None) -> pd.DataFrame:
    """One row per candidate and format: ``engine`` (the candidate's name), ``format``, ``lanes``,
    ``config`` (the engine's ``to_dict()`` as JSON, for readers of the CSV), :data:`COST_KEYS` and
    the labels :data:`LABEL_KEYS`."""
    rows = [{"engine": c.name, "format": f, "lanes": config.lanes, "config": json.dumps(config.to_dict()),
             **network_cost(config, layers, device, c.density, attention)}
            for c in cands for f, config in c.engines.items()]
    return pd.DataFrame(rows)


def rank(points: pd.DataFrame, costs: pd.DataFrame, cfg: ExploreConfig) -> pd.DataFrame:
    """The sweep's points joined to their costs, ranked (``rank`` 1 = the front of micro-F1 against
    :data:`OBJECTIVES`), saved as ``pareto.csv`` with a plot of micro-F1 against LUTs."""
    out = Path(cfg.out)
    df = points.merge(costs, on=["engine", "format"], how="left", validate="many_to_one")
    df["name"] = df["engine"] + " " + df["format"] + np.where(df["ptq"] == "none", "", " " + df["ptq"])
    df = pareto(df, maximize=["micro_f1"], minimize=list(OBJECTIVES), all_ranks=True)
    df = df.rename(columns={"pareto_rank": "rank"})
    df.to_csv(out / "pareto.csv", index=False)
    title = f"{cfg.arch} student on {cfg.workload.app}: micro-F1 vs LUTs"
    plot(df, "lut", "micro_f1", PlotOptions(maximize=["micro_f1"], minimize=["lut"], label="name", title=title),
         path=out / "pareto_lut_f1.png")
    return df


def write_front_verilog(df: pd.DataFrame, cands: list[Candidate], rtl: Path) -> list[Path]:
    """Verilog of the engine of every front point (``rank`` 1) in ``rtl``, by
    :func:`export_front`: ``<top>.v`` whose top module is named after the design
    (:func:`hw.export.design_name`, e.g. ``sparse_l8_2of4_int4_int4_k64``, so front points can sit
    in one design) and ``<top>.json`` beside it (ports and payload fields with bit offsets and
    widths). Returns the front's ``.v`` files."""
    by_name = {c.name: c for c in cands}
    front = [by_name[engine].engines[fmt]
             for engine, fmt in df.loc[df["rank"] == 1, ["engine", "format"]].itertuples(index=False)]
    return export_front(front, rtl)


def explore(cfg: ExploreConfig) -> pd.DataFrame:
    """Run every stage; returns the table of design points with a ``rank`` column (1 = front).
    Raises ``ValueError`` for a bad option before any work starts."""
    cfg.validate()
    out = writable_folder(cfg.out)  # an output path that cannot be written fails here, before any work
    torch.set_num_threads(cfg.threads)
    formats = tuple(str(parse_format(f)) for f in cfg.formats)
    t0 = _stage(f"student: {cfg.arch} on {cfg.workload.app} traces, scale {cfg.workload.scale} ({cfg.method})")
    student = train_student(cfg)
    model = load_checkpoint(student / "student.pt")
    sample = torch.as_tensor(load_splits(student / "data.npz")["x_test"][:1])
    layers = layer_workloads(model, sample)
    cands = candidates(student, layers, cfg, formats)
    _stage(f"PTQ sweep: {len(formats)} formats (W = A) × {len(cfg.ptq)} technique sets × "
           f"{len(cands)} sparsity patterns ({', '.join(str(c.pattern) for c in cands)})")
    points = sweep(cands, cfg, formats, out / "sweep.sqlite")

    _stage(f"cost model: lanes={cfg.lanes} on {cfg.device}")
    att = attention_cost(attention_kernels(model, sample, cfg.lanes), cfg.device)
    if att:
        print(f"   attention on the SWA kernel (int8): +{att['lut']:.0f} LUT, +{att['dsp']:.0f} DSP, "
              f"+{att['cycles']:.0f} cycles, +{att['energy_nj']:.0f} nJ per inference, added to every point")
    df = rank(points, cost_table(cands, layers, cfg.device, att), cfg)

    _stage("Verilog of the Pareto points (+ a JSON of ports and payload fields beside each)")
    rtl = out / "rtl"
    write_front_verilog(df, cands, rtl)
    note = None
    if cfg.activity_energy:
        _stage(f"activity energy of the front: gate-level simulation on {cfg.activity_samples} test input(s) per "
               "point (20-110 s per new design)")
        df, note = front_activity(df, cands, cfg)
    accel_note = None
    if cfg.accel:
        _stage(f"whole-network accelerators of the front (QONNX export, plan, cost; lanes ≤ {cfg.lanes} per network)")
        df, accel_note = front_accel(df, cfg)
    print_table(df)
    print_spread(json.loads((student / "metrics.json").read_text()), df)
    if cfg.activity_energy:
        print_activity(df, cfg.activity_samples, note)
    if cfg.accel:
        print_accel(df, accel_note)
    print(f"\nwrote {out}/pareto.csv, {out}/pareto_lut_f1.png, {rtl}/ ({time.perf_counter() - t0:.0f} s)")
    return df


def print_table(df: pd.DataFrame) -> None:
    cols = ["rank", "engine", "lanes", "format", "ptq", "micro_f1", "lut", "ff", "dsp", "bram18", "cycles",
            "latency_us", "energy_nj"]
    show = df.sort_values(["rank", "micro_f1"], ascending=[True, False])[cols]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    labels = [c for c in LABEL_KEYS if c in df.columns]
    if labels:
        print(f"source and held-out error of every figure, and the fmax clamp: columns {', '.join(labels)} "
              "of pareto.csv")
        clamped = df["fmax_clamped"].astype(bool) if "fmax_clamped" in df.columns else None
        if clamped is not None and clamped.any():
            print(f"fmax hit the family clock cap ({df.loc[clamped, 'fmax_cap_mhz'].iloc[0]:g} MHz) on "
                  f"{int(clamped.sum())} points (fmax_clamped): the cap, not their logic depth, sets their latency")


def print_spread(student_metrics: dict, df: pd.DataFrame) -> None:
    """The seed-to-seed spread of the float student under the front, beside the front's own F1
    range and the input-blind baselines, so that a reader can tell signal from noise."""
    f = np.array(student_metrics["seed_f1"])
    sd = f.std(ddof=1) if f.size > 1 else float("nan")
    front = df[df["rank"] == 1]["micro_f1"]
    print(f"\nseed-to-seed spread of the float student ({f.size} training seeds): micro-F1 {f.mean():.4f} ± "
          f"{sd:.4f} (sd; range {f.min():.4f}–{f.max():.4f}); front points span {front.min():.4f}–"
          f"{front.max():.4f}; input-blind frequency predictor {student_metrics['freq_baseline']:.4f}, "
          f"IP-conditioned {student_metrics['ip_baseline']:.4f}")




def _run(args: argparse.Namespace) -> int:
    cfg = from_args(args)
    if getattr(args, "students", None) is not None:
        explore_students(students_from_args(args, cfg))
    else:
        explore(cfg)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """``paretofab demo``: the formats table, then :func:`_run` (its parser: :mod:`paretofab.demo`)."""
    print("== paretofab formats int4 int8 e2m1 e2m3 e3m2 e4m3 e4m3ocp e5m2ieee")
    main(["formats", "int4", "int8", "e2m1", "e2m3", "e3m2", "e4m3", "e4m3ocp", "e5m2ieee"])
    return _run(args)
