"""``paretofab explore``: the main job, from address traces to a Pareto front of accelerators.

traces of one GAP app (refused when degenerate, ``models.trace_stats``) → a student (``models``:
trained on the labels by default, ``--method kd|packd`` distils it; trained with several seeds for
the seed-to-seed spread printed under the front) → SR-STE-pruned copies (``models.prune``:
N:M, and N:M + balanced blocks) → a PTQ sweep over integer and minifloat formats
(``quant.sweep``) for the dense and pruned students → the cost of running the student's layers on
the dense, N:M and N:M + block-skipping engines (``costmodel``) → the Pareto table (printed and
saved as CSV), a plot (PNG) and the Verilog of every Pareto point, all under ``out``.

Engines: the dense student runs on ``DotConfig(lanes)``, the N:M student on
``SparseConfig(lanes, n, m)``, the hybrid one on the largest sparse engine of at most ``lanes``
multipliers whose beat span divides the block (``paretofab.mapping.engine_config``; for 2:4 + blocks
of 8 that is 4 lanes), with each layer's measured fraction of live blocks as its block density.

Every stage is resumable: a finished stage's files are reused (the student stage is keyed by every
option it depends on), the sweep skips finished points.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from costmodel import estimate, pareto, plot
from hw.dot import DotConfig
from hw.engines import config_from_dict
from hw.rtl import export_verilog
from hw.swa import SWAConfig
from models import distill as D
from models import map_data
from models.cli import add_trace_arguments, spec_from_args
from models.map_data import load_splits
from models.prune import Pattern, live_blocks, prunable_layers, prune_student
from models.workload import TraceSpec
from models.zoo import SlidingWindowAttention, load_checkpoint
from quant.sweep import grid, load_results, run_sweep

from .mapping import engine_config

DEFAULT_FORMATS = ("int4", "int6", "int8", "e2m1", "e2m3", "e3m2", "e4m3")
#: costs minimized on the front, beside micro-F1 maximized
OBJECTIVES = ("lut", "dsp", "latency_us", "energy_nj")


@dataclass
class ExploreConfig:
    """What ``explore`` builds; the defaults finish in a few minutes on 2 cores.

    ``workload``: the trace and its splits (:class:`models.workload.TraceSpec`); ``spread_seeds``
    students are trained on it (training seeds ``seed``, ``seed + 1``, …): the first is explored,
    all of them give the seed-to-seed spread printed under the front."""

    out: str = "runs/explore"
    workload: TraceSpec = field(default_factory=TraceSpec)
    arch: str = "mixer"
    method: str = "none"
    teacher_arch: str = "mixer"
    teacher_preset: str = "cpu"
    epochs: int = 30
    teacher_epochs: int = 15
    spread_seeds: int = 3
    allow_degenerate: bool = False
    formats: tuple[str, ...] = DEFAULT_FORMATS
    ptq: tuple[str, ...] = ("none",)
    lanes: int = 16
    nm: tuple[int, int] = (2, 4)
    block: int = 8
    keep: float = 0.5
    prune_epochs: int = 2
    saliency: str = "magnitude"
    classes: str | None = None
    device: str = "xczu3eg"
    seed: int = 0
    jobs: int = 1
    threads: int = 2
    progress: bool = True

    def student_options(self) -> dict:
        """Everything the student stage depends on (its cache key)."""
        return {"workload": self.workload.to_dict(), "arch": self.arch, "method": self.method,
                "teacher_arch": self.teacher_arch, "teacher_preset": self.teacher_preset,
                "epochs": self.epochs, "teacher_epochs": self.teacher_epochs,
                "spread_seeds": self.spread_seeds, "seed": self.seed,
                "allow_degenerate": self.allow_degenerate}


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
    teachers = None
    if cfg.method != "none":
        teachers = D.train_teachers(splits, cfg.method, cfg.teacher_arch, cfg.teacher_preset,
                                    cfg=D.TrainConfig(epochs=cfg.teacher_epochs, lr=D.TEACHER_LR,
                                                      seed=cfg.seed, progress=cfg.progress),
                                    info=info)
        print(f"   {cfg.method} teacher(s) {cfg.teacher_arch}/{cfg.teacher_preset}: test micro-F1 "
              f"{teachers.summary['f1']:.4f}")
    runs = []
    for i in range(cfg.spread_seeds):
        seed_dir = d if i == 0 else d / f"seed{cfg.seed + i}"
        runs.append(D.distill(splits, cfg.arch, cfg.method, cfg=replace(tc, seed=cfg.seed + i),
                              out_dir=seed_dir, info=info, teachers=teachers))
    res = {**runs[0], "options": opts, "seed_f1": [r["f1"] for r in runs]}
    map_data.save_splits(d / "data.npz", splits)
    (d / "metrics.json").write_text(json.dumps(res, indent=2, default=_plain))
    f = np.array(res["seed_f1"])
    print(f"   student {res['student_params']} params: test micro-F1 {f[0]:.4f} (seeds: {f.mean():.4f} ± "
          f"{f.std(ddof=1) if f.size > 1 else 0:.4f}; frequency {res['freq_baseline']:.4f}, IP "
          f"{res['ip_baseline']:.4f}, all-ones floor {res['floor']:.4f})")
    return d


def patterns(cfg: ExploreConfig) -> list:
    """The sparsity patterns explored: dense, N:M and N:M + blocks (``models.prune.Pattern``)."""
    n, m = cfg.nm
    return [Pattern(), Pattern(n, m), Pattern(n, m, cfg.block, cfg.keep)]


def _slug(pattern) -> str:
    return str(pattern).replace(":", "of").replace("+", "_")


def pruned_student(student_dir: Path, pattern, cfg: ExploreConfig) -> Path:
    """``student_dir``'s student pruned to ``pattern`` by SR-STE fine-tuning (``models.prune``;
    ``prune_epochs=0``: one-shot), saved beside it with the same data splits (reused when
    present); the dense pattern is the student itself."""
    if pattern.is_dense:
        return student_dir
    # the name says how it was pruned: sweep points are keyed by folder, so a folder pruned another
    # way (e.g. the one-shot ``student_2of4`` of older runs) never lends its results
    how = cfg.saliency + (f"_{cfg.classes}" if cfg.classes else "")
    how += f"_srste{cfg.prune_epochs}" if cfg.prune_epochs else "_oneshot"
    d = student_dir / f"pruned_{_slug(pattern)}_{how}"
    if not ((d / "student.pt").exists() and (d / "metrics.json").exists()):
        res = prune_student(str(student_dir / "student.pt"), str(d), pattern, saliency=cfg.saliency,
                            classes=cfg.classes, epochs=cfg.prune_epochs, seed=cfg.seed, progress=cfg.progress)
        print(f"   {pattern}: {res['method']}, {res['sparsity']:.1%} zeros, test micro-F1 {res['f1']:.4f} "
              f"(dense {res['dense']['f1']:.4f})")
    return d


def layer_workloads(model, sample) -> list[dict]:
    """(K, vectors) of every Linear/Conv layer for one inference: K = reduction length,
    vectors = dot products (output channels × output positions). An LSTM layer is one dot
    product of K = inputs + hidden per gate row (4 · hidden), per time step and direction;
    ``prunable`` is False for those (``models.prune`` leaves LSTM weights dense)."""
    rows: list[dict] = []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.LSTM):
            steps = inp[0].shape[1 if mod.batch_first else 0] if inp[0].dim() == 3 else inp[0].shape[0]
            dirs = 2 if mod.bidirectional else 1
            for layer in range(mod.num_layers):
                k = (mod.input_size if layer == 0 else mod.hidden_size * dirs) + mod.hidden_size
                rows.append({"layer": f"{names[mod]}.l{layer}", "k": k,
                             "vectors": 4 * mod.hidden_size * int(steps) * dirs, "prunable": False})
            return
        k = int(np.prod(mod.weight.shape[1:]))
        vectors = int(out[0].numel())  # one sample
        rows.append({"layer": names[mod], "k": k, "vectors": vectors, "prunable": True})

    names = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.LSTM)):
            names[mod] = name
            handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model.eval()(sample[:1])
    for h in handles:
        h.remove()
    return rows


#: what the attention of a SWA student adds, per inference, to every design point
ATTENTION_KEYS = ("lut", "ff", "dsp", "bram18", "cycles", "latency_us", "energy_nj")


def attention_cost(model, sample, cfg: ExploreConfig) -> dict | None:
    """Cost of a SWA student's attention (QKᵀ, softmax, ·V) on the ``hw.swa`` kernel, int8 Q/K/V
    (the quantized student keeps its attention matmuls in float; int8 is the kernel's calibrated
    precision): one kernel sized for the largest head, heads and layers run one after another
    over the ``history`` tokens of one inference. None for students without attention."""
    atts = [m for m in model.modules() if isinstance(m, SlidingWindowAttention)]
    if not atts:
        return None
    tokens = int(sample.shape[1])
    total = dict.fromkeys(ATTENTION_KEYS, 0.0)
    for att in atts:
        lanes = max(d for d in range(1, min(cfg.lanes, att.dh) + 1) if att.dh % d == 0)
        c = estimate(SWAConfig(att.dh, att.window, lanes, "int8", "int8"), cfg.device, n=tokens)
        for key in ("lut", "ff", "dsp", "bram18"):  # one kernel serves every layer and head
            total[key] = max(total[key], getattr(c, key))
        for key in ("cycles", "latency_us", "energy_nj"):
            total[key] += att.heads * getattr(c, key)
    return total


def block_density(model, pattern) -> dict[str, float]:
    """Fraction of (row, block) weight blocks holding a non-zero, per prunable layer (1 without
    blocks): what the block-skipping engine streams."""
    out = {}
    for name, mod in prunable_layers(model):
        if not pattern.has_blocks:
            out[name] = 1.0
            continue
        w = mod.weight.detach().numpy().reshape(mod.weight.shape[0], -1) != 0
        out[name] = float(live_blocks(w, pattern.block).mean())
    return out


def engine_costs(layers: list[dict], fmt: str, cfg: ExploreConfig, pattern=None,
                 density: dict[str, float] | None = None, attention: dict | None = None) -> dict:
    """Resources of the engine that runs ``pattern`` (dense: ``DotConfig``; N:M (+ blocks):
    ``SparseConfig``) for ``fmt`` × ``fmt`` and the cycles / latency / energy of running every
    layer on it, one after another (``density``: each layer's fraction of live blocks), plus
    ``attention`` (:func:`attention_cost`), the SWA kernel beside it, when given."""
    pattern = pattern or Pattern()
    k_max = max(lr["k"] for lr in layers)
    if pattern.is_dense:
        config = DotConfig(cfg.lanes, fmt, fmt, k_max)
    else:
        config = engine_config(pattern, fmt, fmt, k_max, lanes=cfg.lanes)
    density = density or {}
    costs = [estimate(config, cfg.device, k=lr["k"], vectors=lr["vectors"],
                      block_density=density.get(lr["layer"], 1.0) if config.engine == "sparse" else 1.0)
             for lr in layers]
    c0 = costs[0]
    out = {
        "engine": "dense" if pattern.is_dense else str(pattern), "lanes": config.lanes,
        "config": json.dumps(config.to_dict()),
        "lut": c0.lut, "ff": c0.ff, "dsp": c0.dsp, "bram18": c0.bram18, "fmax_mhz": c0.fmax_mhz,
        "cycles": sum(c.cycles for c in costs),
        "latency_us": sum(c.latency_us for c in costs),
        "energy_nj": sum(c.energy_nj for c in costs),
    }
    for key, v in (attention or {}).items():
        out[key] += v
    return out


def explore(cfg: ExploreConfig) -> pd.DataFrame:
    """Run every stage; returns the table of design points with a ``rank`` column (1 = front)."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"student: {cfg.arch} on {cfg.workload.app} traces, scale {cfg.workload.scale} ({cfg.method})")
    student = train_student(cfg)
    model = load_checkpoint(student / "student.pt")
    sample = torch.as_tensor(load_splits(student / "data.npz")["x_test"][:1])
    layers = layer_workloads(model, sample)
    pats = patterns(cfg)
    dense_only = [lr["layer"] for lr in layers if not lr["prunable"]]
    if dense_only:  # an N:M engine cannot run dense weights
        print(f"   {', '.join(dense_only)}: recurrent weights are not prunable, so only the dense engine "
              "is explored for this student")
        pats = pats[:1]
    if len(pats) > 1:
        _stage(f"pruning: {', '.join(str(p) for p in pats[1:])} ({cfg.saliency} saliency, SR-STE "
               f"{cfg.prune_epochs} epochs)")
    students = {str(p): pruned_student(student, p, cfg) for p in pats}

    _stage(f"PTQ sweep: {len(cfg.formats)} formats (W = A) × {len(cfg.ptq)} technique sets × "
           f"{len(pats)} sparsity patterns ({', '.join(str(p) for p in pats)})")
    store = out / "sweep.sqlite"
    points = []
    for f in cfg.formats:
        points += grid([str(students[str(p)]) for p in pats], [f], [f], list(cfg.ptq), [cfg.seed],
                       allow_degenerate=cfg.allow_degenerate)
    run_sweep(points, store, jobs=cfg.jobs, progress=cfg.progress)
    acc = load_results(store)
    acc = acc[acc["key"].isin({p.key for p in points})]  # the store may hold other sweeps' points

    _stage(f"cost model: lanes={cfg.lanes} on {cfg.device}")
    att = attention_cost(model, sample, cfg)
    if att:
        print(f"   attention on the SWA kernel (int8): +{att['lut']:.0f} LUT, +{att['dsp']:.0f} DSP, "
              f"+{att['cycles']:.0f} cycles, +{att['energy_nj']:.0f} nJ per inference, added to every point")
    by_dir = {str(students[str(p)].resolve()): p for p in pats}
    dens = {str(p): block_density(load_checkpoint(students[str(p)] / "student.pt"), p) for p in pats}
    rows = []
    for _, r in acc.iterrows():
        p = by_dir[r["model"]]
        cost = engine_costs(layers, r["wfmt"], cfg, p, dens[str(p)], att)
        rows.append({"format": r["wfmt"], "ptq": r["ptq"], "micro_f1": r["metric"],
                     "float_f1": r.get("float_metric", np.nan),
                     "student": str(Path(r["model"]).relative_to(out.resolve())), **cost})
    df = pd.DataFrame(rows)
    df["name"] = df["engine"] + " " + df["format"] + np.where(df["ptq"] == "none", "", " " + df["ptq"])
    df = pareto(df, maximize=["micro_f1"], minimize=list(OBJECTIVES), all_ranks=True)
    df = df.rename(columns={"pareto_rank": "rank"})
    df.to_csv(out / "pareto.csv", index=False)
    plot(df, "lut", "micro_f1", maximize=["micro_f1"], minimize=["lut"], label="name",
         path=out / "pareto_lut_f1.png", title=f"{cfg.arch} student on {cfg.workload.app}: micro-F1 vs LUTs")

    _stage("Verilog of the Pareto points")

    rtl = out / "rtl"
    for _, r in df[df["rank"] == 1].iterrows():
        c = config_from_dict(json.loads(r["config"]))
        path = rtl / f"{_slug(r['engine'])}_{r['format']}_l{r['lanes']}.v"
        if not path.exists():
            export_verilog(c.build(), path)
    print_table(df)
    print_spread(json.loads((student / "metrics.json").read_text()), df)
    print(f"\nwrote {out}/pareto.csv, {out}/pareto_lut_f1.png, {rtl}/ ({time.perf_counter() - t0:.0f} s)")
    return df


def print_table(df: pd.DataFrame) -> None:
    cols = ["rank", "engine", "lanes", "format", "ptq", "micro_f1", "lut", "ff", "dsp", "bram18", "cycles",
            "latency_us", "energy_nj"]
    show = df.sort_values(["rank", "micro_f1"], ascending=[True, False])[cols]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


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


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o)}")


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _run(args: argparse.Namespace) -> int:
    try:
        n, m = (int(x) for x in args.nm.split(":"))
    except ValueError:
        raise ValueError(f"--nm {args.nm!r}: give the pattern as N:M, e.g. 2:4") from None
    Pattern(n, m, args.block, args.keep)  # one clear error for a bad combination
    cfg = ExploreConfig(out=args.output, workload=spec_from_args(args), arch=args.arch, method=args.method,
                        teacher_arch=args.teacher_arch, epochs=args.epochs,
                        teacher_epochs=args.teacher_epochs, spread_seeds=args.spread_seeds,
                        allow_degenerate=args.allow_degenerate,
                        formats=_csv(args.formats), ptq=_csv(args.ptq), lanes=args.lanes, nm=(n, m),
                        block=args.block, keep=args.keep, prune_epochs=args.prune_epochs,
                        saliency="class" if args.classes else "magnitude", classes=args.classes,
                        device=args.device, seed=args.seed, jobs=args.jobs, threads=args.threads)
    explore(cfg)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``explore`` options (shared with ``paretofab demo``)."""
    d = ExploreConfig()
    p.add_argument("-o", "--output", default=d.out, help=f"output folder (default {d.out}); rerun to resume")
    add_trace_arguments(p)
    p.add_argument("--arch", default=d.arch, help=f"student architecture (lstm, mixer, resnet, swa; default {d.arch})")
    p.add_argument("--method", default=d.method, help=f"none, kd or packd (default {d.method})")
    p.add_argument("--teacher-arch", default=d.teacher_arch, help=f"teacher architecture (default {d.teacher_arch})")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"student training epochs (early stopping on validation; default {d.epochs})")
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                   help=f"teacher training epochs (default {d.teacher_epochs})")
    p.add_argument("--spread-seeds", type=int, default=d.spread_seeds,
                   help=f"students trained with seeds seed.. for the seed-to-seed spread (default {d.spread_seeds})")
    p.add_argument("--formats", default=",".join(d.formats), help="W = A formats to sweep, comma-separated")
    p.add_argument("--ptq", default=",".join(d.ptq), help="PTQ technique sets, comma-separated")
    p.add_argument("--lanes", type=int, default=d.lanes, help="engine multipliers")
    p.add_argument("--nm", default=f"{d.nm[0]}:{d.nm[1]}", help="N:M pattern of the sparse engine")
    p.add_argument("--block", type=int, default=d.block,
                   help="block size (weights) of the N:M + block point (block-skipping engine)")
    p.add_argument("--keep", type=float, default=d.keep, help="fraction of blocks kept in every row")
    p.add_argument("--prune-epochs", type=int, default=d.prune_epochs,
                   help="SR-STE fine-tuning epochs of the pruned students (0 = one-shot)")
    p.add_argument("--classes", default=d.classes,
                   help="class-aware saliency for these outputs (e.g. top32); default magnitude")
    p.add_argument("--device", default=d.device, help="FPGA part for fmax and static power")
    p.add_argument("--jobs", type=int, default=d.jobs, help="sweep worker processes")
    p.add_argument("--threads", type=int, default=d.threads,
                   help=f"torch CPU threads for training (default {d.threads}; 1 when other jobs share the cores)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore", help="traces -> student -> PTQ sweep -> cost -> Pareto front (the main job)",
                       description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=_run)
