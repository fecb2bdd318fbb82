"""Resumable PTQ design-space sweeps into a SQLite results store.

A sweep is the grid ``models × sparsities × wfmts × afmts × technique sets × seeds``. Each point
is keyed by a hash of its full configuration; a finished point is one committed row (stdlib
``sqlite3``, written by the driving process only), so a killed sweep loses at most the points in
flight and a rerun skips what is done. A point that fails (e.g. a technique the model does not
support) is recorded in the ``failures`` table with its error and does not stop the others; a
rerun tries it again.

A sparsity other than ``"dense"`` (``"2:4"``, ``"b8k0.5"``, ``"2:4+b8k0.5"``, see
:func:`models.prune.parse_pattern`) prunes the float model one-shot by weight magnitude before
quantization; for class-aware or SR-STE fine-tuned students sweep the checkpoint that
``paretofab prune -o DIR`` writes. Points run in-process (``jobs=1``), in worker processes (``jobs=N``)
or on a Dask distributed cluster (``scheduler="tcp://…"``), with a tqdm progress bar and ETA.

>>> pts = grid(SweepSpace(["digits"], ["int4", "e2m1"], ["int8"], ["none", "gptq"], seeds=[0]))
>>> run_sweep(pts, "runs/demo.sqlite", jobs=2)          # doctest: +SKIP
>>> load_results("runs/demo.sqlite")                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import sqlite3
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from models.map_data import load_splits
from models.metrics import best_threshold, micro_f1
from models.prune import parse_pattern, prune
from models.trace_stats import DegenerateTraceError, TraceStats, check_workload, trace_stats
from models.zoo import load_checkpoint

from . import digits
from .brevitas_map import check_supported
from .ptq import PTQConfig, parse_techniques, quantize_model

__all__ = [
    "SweepPoint",
    "StoreError",
    "Workload",
    "SweepSpace",
    "grid",
    "load_workload",
    "evaluate_point",
    "open_store",
    "run_sweep",
    "load_results",
    "load_failures",
    "try_point",
    "SCHEMA",
]

#: marks a file as a paretofab sweep store (table ``meta``)
SCHEMA = "paretofab-sweep-1"

COLUMNS = (
    "key TEXT PRIMARY KEY, model TEXT NOT NULL, wfmt TEXT NOT NULL, afmt TEXT NOT NULL, "
    "ptq TEXT NOT NULL, seed INTEGER NOT NULL, per_channel INTEGER NOT NULL, n_calib INTEGER NOT NULL, "
    "metric_name TEXT NOT NULL, metric REAL NOT NULL, val_metric REAL, float_metric REAL, "
    "seconds REAL NOT NULL, finished_utc TEXT NOT NULL, config TEXT NOT NULL, "
    "sparsity TEXT NOT NULL DEFAULT 'dense'"
)
FAILURE_COLUMNS = "key TEXT PRIMARY KEY, config TEXT NOT NULL, error TEXT NOT NULL, finished_utc TEXT NOT NULL"


class StoreError(ValueError):
    """A results file that is not a paretofab sweep store (corrupt or foreign)."""


@dataclass(frozen=True)
class SweepPoint:
    """One point of the design space (all that determines its result)."""

    model: str
    wfmt: str
    afmt: str
    ptq: str = "none"  # technique set, '+'-joined in application order, or 'none'
    seed: int = 0
    per_channel: bool = True
    n_calib: int = 256
    sparsity: str = "dense"  # pruning pattern applied one-shot before quantization
    threshold: str = "0.5"  # MAP students: micro-F1 at 0.5, or "val" = at the validation-best threshold

    def config(self) -> dict:
        """The fields that determine the result (``sparsity`` only when not dense, ``threshold``
        only when not 0.5, so the keys of stores written before these existed stay valid)."""
        c = asdict(self)
        if c["sparsity"] == "dense":
            del c["sparsity"]
        if c["threshold"] == "0.5":
            del c["threshold"]
        return c

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON of the full configuration (first 16 hex digits)."""
        blob = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _model_name(spec: str) -> str:
    if spec == "digits":
        return spec
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"model {spec!r}: not 'digits' and no such checkpoint (a student.pt or a `paretofab distill -o DIR` folder)")
    return str(p.resolve())


def _check_student_workload(model: str) -> None:
    """Refuse a MAP student trained on a degenerate trace (its accuracy axis is noise)."""
    p = Path(model)
    npz = p / "data.npz" if p.is_dir() else p.parent / "data.npz"
    try:
        check_workload(_workload_stats(str(npz), npz.stat().st_mtime_ns))
    except DegenerateTraceError as e:
        raise DegenerateTraceError(f"{model}: {e}") from None


@lru_cache(maxsize=64)
def _workload_stats(npz: str, mtime_ns: int) -> TraceStats:
    """Statistics of a splits file, once per file version (``grid`` is called per format, and
    explore and the bit-width bench call it many times for the same students)."""
    return trace_stats(load_splits(npz))


def _sparsity_name(spec: str) -> str:
    return str(parse_pattern(spec))


@dataclass(frozen=True)
class SweepSpace:
    """The design space of a sweep: every combination of its sequences (:func:`grid`).

    Attributes
    ----------
    models : ``digits`` or student checkpoints / folders.
    wfmts, afmts : weight and activation formats.
    ptqs : PTQ technique sets (``"weq+gptq"``, ``"none"``).
    seeds : calibration seeds.
    per_channel : per-channel weight scales (else per tensor).
    n_calib : calibration samples.
    sparsities : pruning patterns applied one-shot before quantization (``dense``, ``2:4``, …).
    threshold : MAP students only (digits reports accuracy): ``"val"`` scores test micro-F1 at the
        threshold that maximizes the quantized model's validation micro-F1, as
        ``paretofab distill`` reports it; ``"0.5"`` at a fixed 0.5.
    """

    models: Sequence[str]
    wfmts: Sequence[str]
    afmts: Sequence[str]
    ptqs: Sequence[str] = ("none",)
    seeds: Sequence[int] = (0,)
    per_channel: bool = True
    n_calib: int = 256
    sparsities: Sequence[str] = ("dense",)
    threshold: str = "val"


def grid(space: SweepSpace, allow_degenerate: bool = False) -> list[SweepPoint]:
    """The points of ``space``, validated: bad formats / techniques / models / sparsity patterns
    raise ``ValueError``.

    Formats are normalised (``"INT8"`` -> ``"int8"``), technique sets too (``"gptq+weq"`` ->
    ``"weq+gptq"``), sparsity patterns too (``"2:4+b8k.5"`` -> ``"2:4+b8k0.5"``), so equal
    points get equal keys. A MAP student whose workload is degenerate (``models.trace_stats``) is
    refused unless ``allow_degenerate``.
    """
    models, wfmts, afmts, ptqs, seeds = space.models, space.wfmts, space.afmts, space.ptqs, space.seeds
    sparsities, threshold, n_calib = space.sparsities, space.threshold, space.n_calib
    if threshold not in ("val", "0.5"):
        raise ValueError(f"threshold must be 'val' or '0.5', got {threshold!r}")
    for name, seq in (("models", models), ("wfmts", wfmts), ("afmts", afmts), ("ptqs", ptqs), ("seeds", seeds),
                      ("sparsities", sparsities)):
        if not seq:
            raise ValueError(f"the sweep has no {name}: give at least one")
    if n_calib < 1:
        raise ValueError(f"n_calib must be >= 1 calibration samples, got {n_calib}")
    ms = [_model_name(m) for m in models]
    for m in ms:
        if m != "digits" and not allow_degenerate:
            _check_student_workload(m)
    ws = [str(check_supported(f)) for f in wfmts]
    as_ = [str(check_supported(f)) for f in afmts]
    ps = ["+".join(parse_techniques(p)) or "none" for p in ptqs]
    ss = [_sparsity_name(s) for s in sparsities]
    pts = [
        SweepPoint(m, w, a, p, int(s), space.per_channel, n_calib, sp, "0.5" if m == "digits" else threshold)
        for m, sp, w, a, p, s in itertools.product(ms, ss, ws, as_, ps, seeds)
    ]
    return list(dict.fromkeys(pts))  # drop duplicates, keep order


# ---- workloads ---------------------------------------------------------------------------------


@dataclass
class Workload:
    """A float model, its calibration inputs and its metric."""

    name: str
    model: Any
    calib: Any
    metric_name: str
    evaluate: Callable[[Any], tuple[float, float]]  # model -> (test metric, val metric)


def load_workload(spec: str, seed: int = 0, n_calib: int = 256, threshold: str = "0.5") -> Workload:
    """``"digits"`` (built-in CNN, accuracy) or a PaCKD student: a checkpoint file, or a
    ``paretofab distill -o DIR`` folder (``DIR/student.pt`` + ``DIR/data.npz``), metric micro-F1
    at 0.5 (``threshold="0.5"``) or at the validation-best threshold (``"val"``, metric name
    ``micro_f1@val``)."""
    if spec == "digits":
        data = digits.load_data(seed)
        model = digits.load_model(seed, data)

        def ev(m):
            return digits.accuracy(m, data.x_test, data.y_test), digits.accuracy(m, data.x_val, data.y_val)

        return Workload("digits", model, data.x_train[:n_calib], "accuracy", ev)
    p = Path(spec)
    ckpt, npz = (p / "student.pt", p / "data.npz") if p.is_dir() else (p, p.parent / "data.npz")
    model = load_checkpoint(ckpt)
    splits = load_splits(npz)

    @torch.no_grad()
    def logits(m, x):
        m.eval()
        x = torch.as_tensor(x)
        return torch.cat([m(x[i : i + 1024]) for i in range(0, len(x), 1024)]).numpy()

    def ev(m):
        val = logits(m, splits["x_val"])
        if threshold == "val":
            t, val_f1 = best_threshold(val, splits["y_val"], logits=True)
        else:
            t, val_f1 = 0.5, micro_f1(val, splits["y_val"], logits=True)
        return micro_f1(logits(m, splits["x_test"]), splits["y_test"], threshold=t, logits=True), val_f1

    name = "micro_f1@val" if threshold == "val" else "micro_f1"
    return Workload(str(p), model, torch.as_tensor(splits["x_train"][:n_calib]), name, ev)


_WORKLOADS: dict[tuple, Workload] = {}
_FLOAT: dict[tuple, float] = {}


def _workload(point: SweepPoint) -> Workload:
    k = (point.model, point.seed, point.n_calib, point.threshold)
    if k not in _WORKLOADS:
        _WORKLOADS[k] = load_workload(point.model, point.seed, point.n_calib, point.threshold)
    return _WORKLOADS[k]


def evaluate_point(point: SweepPoint | dict) -> dict:
    """Quantize and evaluate one point (in whatever process runs it); returns its row."""
    warnings.filterwarnings("ignore", category=UserWarning)  # brevitas/torch.fx chatter per point
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.fx pytree chatter inside brevitas
    torch.set_num_threads(int(os.environ.get("PARETOFAB_THREADS", "1")))
    if isinstance(point, dict):
        point = SweepPoint(**point)
    t0 = time.perf_counter()
    wl = _workload(point)
    fk = (point.model, point.seed, point.n_calib, point.threshold)
    model = wl.model
    if point.sparsity != "dense":
        model = prune(copy.deepcopy(wl.model), point.sparsity)
        fk = fk + (point.sparsity,)
    if fk not in _FLOAT:
        _FLOAT[fk] = wl.evaluate(model)[0]
    ptq = PTQConfig(per_channel=point.per_channel, techniques=point.ptq, seed=point.seed)
    q = quantize_model(model, point.wfmt, point.afmt, calib_data=wl.calib, config=ptq)
    metric, val = wl.evaluate(q)
    return {
        **asdict(point),
        "key": point.key,
        "metric_name": wl.metric_name,
        "metric": float(metric),
        "val_metric": float(val),
        "float_metric": float(_FLOAT[fk]),
        "seconds": time.perf_counter() - t0,
    }


def try_point(config: dict) -> dict:
    """:func:`evaluate_point`, but a failure comes back as ``{"key", "config", "error"}``
    instead of raising, so one bad point does not stop a sweep (runs in workers too)."""
    try:
        return evaluate_point(config)
    except Exception as e:  # noqa: BLE001 - recorded in the store, reported at the end
        point = SweepPoint(**config)
        msg = (str(e).strip().splitlines() or [""])[0]
        return {"key": point.key, "config": asdict(point), "error": f"{type(e).__name__}: {msg}"}


# ---- the store ---------------------------------------------------------------------------------


def _check_store(path: Path) -> None:
    """Raise :class:`StoreError` unless ``path`` is a paretofab sweep store (read-only check)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables or "points" not in tables:
                raise StoreError(
                    f"{path} is an SQLite file but not a paretofab sweep store (no meta/points tables); "
                    "choose another -o file, it was left untouched"
                )
            row = con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if not row or row[0] != SCHEMA:
                raise StoreError(f"{path} has schema {row[0] if row else None!r}, not {SCHEMA!r}; "
                                 "choose another -o file, it was left untouched")
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a readable SQLite results store ({e}); choose another -o file, "
                         "it was left untouched") from None


def open_store(path: str | os.PathLike, create: bool = True) -> sqlite3.Connection:
    """Open (or create) a sweep store. An existing file that is not one raises
    :class:`StoreError` and is not modified."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path} is a directory; give a .sqlite file name")
    if path.exists() and path.stat().st_size > 0:
        _check_store(path)
    elif not create:
        raise FileNotFoundError(f"results file {path} not found: run `paretofab sweep -o {path}` first")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    with con:
        con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA,))
        con.execute(f"CREATE TABLE IF NOT EXISTS points ({COLUMNS})")
        con.execute(f"CREATE TABLE IF NOT EXISTS failures ({FAILURE_COLUMNS})")
        have = {r[1] for r in con.execute("PRAGMA table_info(points)")}
        if "sparsity" not in have:  # a store written before the sparsity axis
            con.execute("ALTER TABLE points ADD COLUMN sparsity TEXT NOT NULL DEFAULT 'dense'")
    return con


def _done_keys(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT key FROM points")}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _insert(con: sqlite3.Connection, row: dict) -> None:
    row = dict(row)
    row["finished_utc"] = _now()
    cfg = {k: row[k] for k in SweepPoint.__dataclass_fields__}
    row["config"] = json.dumps(cfg, sort_keys=True)
    row["per_channel"] = int(row["per_channel"])
    cols = [c.split()[0] for c in COLUMNS.split(", ")]
    with con:  # one transaction per finished point
        con.execute(f"INSERT OR IGNORE INTO points ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols])
        con.execute("DELETE FROM failures WHERE key = ?", (row["key"],))


def _insert_failure(con: sqlite3.Connection, row: dict) -> None:
    with con:
        con.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                    (row["key"], json.dumps(row["config"], sort_keys=True), row["error"], _now()))


def run_sweep(
    points: Iterable[SweepPoint],
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    scheduler: str | Any | None = None,
    progress: bool = True,
) -> dict:
    """Run every point not yet in ``out``; returns ``{"done", "failed", "skipped", "total",
    "seconds", "errors"}`` (``errors``: the failed points' error messages by key; they are also
    in the store's ``failures`` table, see :func:`load_failures`).

    Parameters
    ----------
    jobs : worker processes (1: in this process).
    scheduler : Dask distributed scheduler address (or a ``distributed.Client``); overrides jobs.
    """
    points = list(points)
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    con = open_store(out)
    t0 = time.perf_counter()
    try:
        done = _done_keys(con)
        todo = [p for p in points if p.key not in done]
        bar = tqdm(total=len(todo), desc="sweep", unit="pt", disable=not progress, dynamic_ncols=True)
        n, errors = 0, {}
        try:
            for row in _execute(todo, jobs, scheduler):
                if "error" in row:
                    _insert_failure(con, row)
                    errors[row["key"]] = row["error"]
                    c = row["config"]
                    bar.set_postfix_str(f"{c['wfmt']}/{c['afmt']} {c['ptq']}: FAILED", refresh=False)
                else:
                    _insert(con, row)
                    n += 1
                    bar.set_postfix_str(f"{row['wfmt']}/{row['afmt']} {row['ptq']}: {row['metric']:.4f}",
                                        refresh=False)
                bar.update()
        finally:
            bar.close()
    finally:
        con.close()
    return {"done": n, "failed": len(errors), "skipped": len(points) - len(todo), "total": len(points),
            "seconds": time.perf_counter() - t0, "errors": errors}


def _execute(todo: list[SweepPoint], jobs: int, scheduler) -> Iterable[dict]:
    if not todo:
        return
    if scheduler is not None:
        # heavy, optional: dask's distributed scheduler
        from distributed import Client
        from distributed import as_completed as dask_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futs = client.map(try_point, [asdict(p) for p in todo], pure=False)
            for f in dask_completed(futs):
                yield f.result()
        finally:
            if client is not scheduler:
                client.close()
        return
    if jobs == 1:
        for p in todo:
            yield try_point(asdict(p))
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
        futs = [ex.submit(try_point, asdict(p)) for p in todo]
        try:
            for f in as_completed(futs):
                yield f.result()
        except BaseException:
            for f in futs:
                f.cancel()
            raise


def _read(path: str | os.PathLike, table: str, order: str) -> pd.DataFrame | None:
    """``SELECT * FROM table ORDER BY order`` of a checked store, read-only; None if the table
    does not exist (a store written before it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file {path} not found: run `paretofab sweep -o {path}` first")
    _check_store(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", con) if table in tables else None
    finally:
        con.close()


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Every finished point of a store as a DataFrame (one row per point, typed columns)."""
    df = _read(path, "points", "model, wfmt, afmt, ptq, seed")
    df["per_channel"] = df["per_channel"].astype(bool)
    if "sparsity" not in df:  # read-only view of a store written before the sparsity axis
        df["sparsity"] = "dense"
    return df


def load_failures(path: str | os.PathLike) -> pd.DataFrame:
    """The points of a store that failed on their last try: key, config columns, error, time."""
    raw = _read(path, "failures", "finished_utc")
    if raw is None:
        return pd.DataFrame(columns=["key", "error", "finished_utc"])
    cfg = pd.DataFrame([json.loads(c) for c in raw["config"]], index=raw.index)
    return pd.concat([raw[["key"]], cfg, raw[["error", "finished_utc"]]], axis=1)
