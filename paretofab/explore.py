"""``paretofab explore``: the main job, from address traces to a Pareto front of accelerators.

traces of one GAP app → a PaCKD student (``models``) → a PTQ sweep over integer and minifloat
formats (``quant.sweep``), for the dense student and a one-shot N:M-pruned copy → the cost of
running the student's layers on the dense and N:M engines (``costmodel``) → the Pareto table
(printed and saved as CSV), a plot (PNG) and the Verilog of every Pareto point, all under ``out``.

Every stage is resumable: a finished stage's files are reused, the sweep skips finished points.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_FORMATS = ("int4", "int6", "int8", "e2m1", "e2m3", "e3m2", "e4m3")
#: costs minimized on the front, beside micro-F1 maximized
OBJECTIVES = ("lut", "dsp", "latency_us", "energy_nj")


@dataclass
class ExploreConfig:
    """What ``explore`` builds; the defaults finish in a few minutes on 2 cores."""

    out: str = "runs/explore"
    app: str = "pr"
    arch: str = "resnet"
    method: str = "kd"
    scale: int = 16
    max_loads: int = 2_000_000
    max_rows: int = 10_000
    epochs: int = 6
    teacher_epochs: int = 3
    formats: tuple[str, ...] = DEFAULT_FORMATS
    ptq: tuple[str, ...] = ("none",)
    lanes: int = 16
    nm: tuple[int, int] = (2, 4)
    device: str = "xczu3eg"
    seed: int = 0
    jobs: int = 1
    progress: bool = True
    extra: dict = field(default_factory=dict)


def _stage(msg: str) -> float:
    print(f"== {msg}", flush=True)
    return time.perf_counter()


def train_student(cfg: ExploreConfig) -> Path:
    """Trace → splits → distilled student under ``out/student`` (reused when present)."""
    from models import distill as D
    from models import map_data
    from models.cli import load_or_make_splits

    d = Path(cfg.out) / "student"
    if (d / "student.pt").exists() and (d / "data.npz").exists():
        print(f"   reusing {d}/student.pt")
        return d
    splits, info = load_or_make_splits(cfg.app, cfg.scale, cfg.seed, cfg.max_loads, cfg.max_rows,
                                       progress=cfg.progress)
    tc = D.TrainConfig(epochs=cfg.epochs, patience=2, seed=cfg.seed, progress=cfg.progress)
    teacher_tc = D.TrainConfig(epochs=cfg.teacher_epochs, patience=2, seed=cfg.seed, progress=cfg.progress)
    res = D.distill(splits, cfg.arch, cfg.method, 2, "delta", "cpu", cfg=tc, teacher_cfg=teacher_tc,
                    out_dir=d, info=info)
    map_data.save_splits(d / "data.npz", splits)
    (d / "metrics.json").write_text(json.dumps(res, indent=2, default=_plain))
    print(f"   student {res['student_params']} params: test micro-F1 {res['f1']:.4f} "
          f"(all-ones floor {res['floor']:.4f})")
    return d


def nm_prune(model, n: int, m: int):
    """One-shot magnitude N:M pruning (in place) of every Linear/Conv weight along its
    reduction dimension: in each group of ``m`` consecutive inputs keep the ``n`` largest."""
    import torch

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
                w = mod.weight.reshape(mod.weight.shape[0], -1)
                k = w.shape[1] - w.shape[1] % m
                g = w[:, :k].reshape(w.shape[0], -1, m)
                drop = g.abs().argsort(dim=-1)[..., : m - n]
                g.scatter_(-1, drop, 0.0)
                w[:, :k] = g.reshape(w.shape[0], k)
                mod.weight.copy_(w.reshape(mod.weight.shape))
    return model


def pruned_student(student_dir: Path, n: int, m: int) -> Path:
    """``student_dir``'s student pruned to n:m, saved beside it with the same data splits."""
    import shutil

    from models.zoo import load_checkpoint, save_checkpoint

    d = student_dir.parent / f"student_{n}of{m}"
    if (d / "student.pt").exists():
        return d
    model = nm_prune(load_checkpoint(student_dir / "student.pt"), n, m)
    save_checkpoint(d / "student.pt", model, {**model.meta, "pruned": f"{n}:{m} one-shot magnitude"})
    shutil.copy(student_dir / "data.npz", d / "data.npz")
    return d


def layer_workloads(model, sample) -> list[dict]:
    """(K, vectors) of every Linear/Conv layer for one inference: K = reduction length,
    vectors = dot products (output channels × output positions)."""
    import torch

    rows: list[dict] = []

    def hook(mod, inp, out):
        k = int(np.prod(mod.weight.shape[1:]))
        vectors = int(out[0].numel())  # one sample
        rows.append({"layer": names[mod], "k": k, "vectors": vectors})

    names = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            names[mod] = name
            handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model.eval()(sample[:1])
    for h in handles:
        h.remove()
    return rows


def engine_costs(layers: list[dict], fmt: str, cfg: ExploreConfig, sparse: bool) -> dict:
    """Resources of one engine for ``fmt`` × ``fmt`` and the cycles / latency / energy of running
    every layer on it, one after another."""
    from costmodel import estimate
    from hw.dot import DotConfig
    from hw.sparse import SparseConfig

    k_max = max(lr["k"] for lr in layers)
    if sparse:
        n, m = cfg.nm
        span = cfg.lanes // n * m
        k_max = -(-k_max // span) * span
        config = SparseConfig(cfg.lanes, n, m, fmt, fmt, k_max)
    else:
        config = DotConfig(cfg.lanes, fmt, fmt, k_max)
    costs = [estimate(config, cfg.device, k=lr["k"], vectors=lr["vectors"]) for lr in layers]
    c0 = costs[0]
    return {
        "engine": f"{cfg.nm[0]}:{cfg.nm[1]}" if sparse else "dense",
        "config": json.dumps(config.to_dict()),
        "lut": c0.lut, "ff": c0.ff, "dsp": c0.dsp, "bram18": c0.bram18, "fmax_mhz": c0.fmax_mhz,
        "cycles": sum(c.cycles for c in costs),
        "latency_us": sum(c.latency_us for c in costs),
        "energy_nj": sum(c.energy_nj for c in costs),
    }


def explore(cfg: ExploreConfig) -> pd.DataFrame:
    """Run every stage; returns the table of design points with a ``rank`` column (1 = front)."""
    import torch

    from costmodel import pareto, plot
    from models.map_data import load_splits
    from models.zoo import load_checkpoint
    from quant.sweep import grid, load_results, run_sweep

    torch.set_num_threads(2)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"student: {cfg.arch} on {cfg.app} traces ({cfg.method})")
    student = train_student(cfg)
    sparse_student = pruned_student(student, *cfg.nm)

    _stage(f"PTQ sweep: {len(cfg.formats)} formats (W = A) × {len(cfg.ptq)} technique sets, dense and "
           f"{cfg.nm[0]}:{cfg.nm[1]}")
    store = out / "sweep.sqlite"
    points = []
    for f in cfg.formats:
        points += grid([str(student), str(sparse_student)], [f], [f], list(cfg.ptq), [cfg.seed])
    run_sweep(points, store, jobs=cfg.jobs, progress=cfg.progress)
    acc = load_results(store)

    _stage(f"cost model: lanes={cfg.lanes} on {cfg.device}")
    model = load_checkpoint(student / "student.pt")
    sample = torch.as_tensor(load_splits(student / "data.npz")["x_test"][:1])
    layers = layer_workloads(model, sample)
    rows = []
    for _, r in acc.iterrows():
        is_sparse = Path(r["model"]).name == sparse_student.name
        cost = engine_costs(layers, r["wfmt"], cfg, sparse=is_sparse)
        rows.append({"format": r["wfmt"], "ptq": r["ptq"], "micro_f1": r["metric"],
                     "float_f1": r.get("float_metric", np.nan), **cost})
    df = pd.DataFrame(rows)
    df["name"] = df["engine"] + " " + df["format"] + np.where(df["ptq"] == "none", "", " " + df["ptq"])
    df = pareto(df, maximize=["micro_f1"], minimize=list(OBJECTIVES), all_ranks=True)
    df = df.rename(columns={"pareto_rank": "rank"})
    df.to_csv(out / "pareto.csv", index=False)
    plot(df, "lut", "micro_f1", maximize=["micro_f1"], minimize=["lut"], label="name",
         path=out / "pareto_lut_f1.png", title=f"{cfg.arch} student on {cfg.app}: micro-F1 vs LUTs")

    _stage("Verilog of the Pareto points")
    from hw.engines import config_from_dict
    from hw.rtl import export_verilog

    rtl = out / "rtl"
    for _, r in df[df["rank"] == 1].iterrows():
        c = config_from_dict(json.loads(r["config"]))
        path = rtl / f"{r['engine'].replace(':', 'of')}_{r['format']}_l{cfg.lanes}.v"
        if not path.exists():
            export_verilog(c.build(), path)
    print_table(df)
    print(f"\nwrote {out}/pareto.csv, {out}/pareto_lut_f1.png, {rtl}/ ({time.perf_counter() - t0:.0f} s)")
    return df


def print_table(df: pd.DataFrame) -> None:
    cols = ["rank", "engine", "format", "ptq", "micro_f1", "lut", "ff", "dsp", "bram18", "cycles",
            "latency_us", "energy_nj"]
    show = df.sort_values(["rank", "micro_f1"], ascending=[True, False])[cols]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


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
    cfg = ExploreConfig(out=args.output, app=args.app, arch=args.arch, scale=args.scale,
                        formats=_csv(args.formats), ptq=_csv(args.ptq), lanes=args.lanes, nm=(n, m),
                        device=args.device, seed=args.seed, jobs=args.jobs, epochs=args.epochs)
    explore(cfg)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``explore`` options (shared with ``paretofab demo``)."""
    d = ExploreConfig()
    p.add_argument("-o", "--output", default=d.out, help=f"output folder (default {d.out}); rerun to resume")
    p.add_argument("--app", default=d.app, help="GAP kernel whose traces train the student (bc, cc, pr, sssp, bfs)")
    p.add_argument("--arch", default=d.arch, help="student architecture (lstm, mixer, resnet, swa)")
    p.add_argument("--scale", type=int, default=d.scale, help="RMAT graph scale (2**scale vertices)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs (early stopping on validation)")
    p.add_argument("--formats", default=",".join(d.formats), help="W = A formats to sweep, comma-separated")
    p.add_argument("--ptq", default=",".join(d.ptq), help="PTQ technique sets, comma-separated")
    p.add_argument("--lanes", type=int, default=d.lanes, help="engine multipliers")
    p.add_argument("--nm", default=f"{d.nm[0]}:{d.nm[1]}", help="N:M pattern of the sparse engine")
    p.add_argument("--device", default=d.device, help="FPGA part for fmax and static power")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--jobs", type=int, default=d.jobs, help="sweep worker processes")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore", help="traces -> student -> PTQ sweep -> cost -> Pareto front (the main job)",
                       description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=_run)
