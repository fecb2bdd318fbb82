"""Resumable PTQ design-space sweeps into a SQLite results store.

A sweep is the grid ``models × sparsities × wfmts × afmts × technique sets × seeds``. Each point
is keyed by a hash of its full configuration; a finished point is one committed row (stdlib
``sqlite3``, written by the driving process only), so a killed sweep loses at most the points in
flight and a rerun skips what is done. A point that fails (e.g. a technique the model does not
support) is recorded in the ``failures`` table with its error and does not stop the others; a
rerun tries it again.

Several sweeps may write one store at once (processes on this host or others sharing the file):
each point is claimed (a row of the ``claims`` table: key, pid, host, started; one atomic
``INSERT``) before it runs and released in the transaction that stores its result, so no point is
computed twice. A point claimed by a live process is skipped ("running elsewhere"); a claim whose
process is gone (its pid is dead on this host, or the claim is older than ``claim_timeout`` for
another host) expires and the point is run again.

A sparsity other than ``"dense"`` (``"2:4"``, ``"b8k0.5"``, ``"2:4+b8k0.5"``, see
:func:`models.prune.parse_pattern`) prunes the float model one-shot by weight magnitude before
quantization; for class-aware or SR-STE fine-tuned students sweep the checkpoint that
``paretofab prune -o DIR`` writes. Points run in-process (``jobs=1``), in worker processes (``jobs=N``)
or on a Dask distributed cluster (``scheduler="tcp://…"``), with a tqdm progress bar and ETA.

A model is ``digits`` (the built-in CNN), a MAP student (micro-F1) or a digits student of a GTN
folder (``paretofab gtn -o DIR``: ``DIR/students/*.pt``, accuracy on the digits split of the
point's seed; refused for a seed other than the folder's ``split_seed``, whose test images would
have been its training images).

Calibration (``calib``) is ``real`` (the first ``n_calib`` training inputs) or, for digits models,
``synthetic:DIR``: the first ``n_calib`` images a ``paretofab datafree -o DIR`` run synthesized
(``DIR/synthetic.pt``), data-free PTQ. A synthetic point stores ``calib`` as
``synthetic:<absolute DIR>@<sha256 of synthetic.pt, 12 hex>``, so it is keyed by the images it
used; real points keep the keys of stores written before the axis existed.

>>> pts = grid(SweepSpace(["digits"], ["int4", "e2m1"], ["int8"], ["none", "gptq"], seeds=[0]))
>>> run_sweep(pts, "runs/demo.sqlite", jobs=2)          # doctest: +SKIP
>>> load_results("runs/demo.sqlite")                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import errno
import hashlib
import itertools
import json
import multiprocessing as mp
import numbers
import os
import socket
import sqlite3
import tempfile
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from models.map_data import load_splits
from models.metrics import best_threshold, micro_f1
from models.prune import parse_pattern, prune
from models.trace_stats import DegenerateTraceError, TraceStats, check_workload, trace_stats
from models.zoo import load_checkpoint
from models import gtn_pool

from . import digits
from .brevitas_map import check_supported
from .common import SCHEDULER_TIMEOUT_S
from .ptq import PTQConfig, parse_techniques, quantize_model

__all__ = [
    "SweepPoint",
    "StoreError",
    "SchedulerError",
    "Workload",
    "SweepSpace",
    "grid",
    "load_workload",
    "is_digits_student",
    "digits_split_seed",
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
    "sparsity TEXT NOT NULL DEFAULT 'dense', calib TEXT NOT NULL DEFAULT 'real'"
)
#: columns added after the first stores were written, with the value their old rows take
ADDED_COLUMNS = {"sparsity": "dense", "calib": "real"}
#: the file a ``paretofab datafree -o DIR`` run writes its synthetic images to
SYNTHETIC_FILE = "synthetic.pt"
FAILURE_COLUMNS = "key TEXT PRIMARY KEY, config TEXT NOT NULL, error TEXT NOT NULL, finished_utc TEXT NOT NULL"
#: a point being computed: by which process (pid on host) since when (unix seconds)
CLAIM_COLUMNS = "key TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, started REAL NOT NULL"
#: a claim by a process on another host (whose pid cannot be checked) expires after this (seconds)
CLAIM_TIMEOUT_S = 3600.0


class StoreError(ValueError):
    """A results file that is not a paretofab sweep store (corrupt or foreign)."""


class SchedulerError(RuntimeError):
    """The Dask scheduler did not answer (an external tool's failure: ``tool = "dask"``)."""

    tool = "dask"
    log = None


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
    calib: str = "real"  # calibration inputs: "real", or "synthetic:DIR@SHA" (see the module doc)

    def config(self) -> dict:
        """The fields that determine the result (``sparsity`` only when not dense, ``threshold``
        only when not 0.5, ``calib`` only when not real, so the keys of stores written before these
        existed stay valid)."""
        c = asdict(self)
        for name, default in (("sparsity", "dense"), ("threshold", "0.5"), ("calib", "real")):
            if c[name] == default:
                del c[name]
        return c

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON of the full configuration (first 16 hex digits)."""
        blob = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _model_name(spec: str) -> str:
    """``digits``, or the absolute path of a checkpoint or `distill` folder; a `datafree` folder
    (a digits ``student.pt``, no ``data.npz``) names its ``student.pt``."""
    if spec == "digits":
        return spec
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"model {spec!r}: not 'digits' and no such checkpoint (a student.pt or a `paretofab distill -o DIR` folder)")
    if p.is_dir() and not (p / "data.npz").exists() and is_digits_student(str(p / "student.pt")):
        p = p / "student.pt"
    return str(p.resolve())


def _student_files(model: str) -> tuple[Path, Path]:
    """``(checkpoint, splits)`` of a student: a checkpoint file (splits beside it) or a folder."""
    p = Path(model)
    return (p / "student.pt", p / "data.npz") if p.is_dir() else (p, p.parent / "data.npz")


@lru_cache(maxsize=256)
def _arch_of(ckpt: str, mtime_ns: int) -> str | None:
    """``meta["arch"]`` of a checkpoint file (read with ``weights_only=True``); None for anything
    else (the loaders then say what is wrong)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = torch.load(ckpt, map_location="cpu", weights_only=True).get("meta", {})
        return meta.get("arch") if isinstance(meta, dict) else None
    except Exception:  # noqa: BLE001 - not a checkpoint of ours: the MAP loader reports it
        return None


def is_digits_student(model: str) -> bool:
    """Whether ``model`` is a digits CNN checkpoint (``paretofab gtn``'s students and teachers)."""
    p = Path(model)
    return p.is_file() and _arch_of(str(p), p.stat().st_mtime_ns) == gtn_pool.ARCH


def _accuracy_metric(model: str) -> bool:
    """Models scored by accuracy (no threshold): the built-in digits CNN and digits students."""
    return model == "digits" or is_digits_student(model)


def digits_split_seed(model: str) -> int | None:
    """The digits split a digits student trained on: ``split_seed`` of the ``run.json`` of its
    `datafree` folder (``DIR/student.pt`` → ``DIR/run.json``) or GTN folder
    (``DIR/students/x.pt`` → ``DIR/run.json``); None when there is none."""
    here = Path(model).resolve().parent
    run = here / "run.json" if (here / "run.json").is_file() else here.parent / "run.json"
    try:
        seed = json.loads(run.read_text()).get("split_seed")
    except (OSError, ValueError, AttributeError):
        return None
    return seed if isinstance(seed, int) else None


def _check_digits_student(model: str, seeds: Sequence[int]) -> None:
    """Load a digits student once (a bad file fails before any point runs) and refuse seeds whose
    digits split is not the one it trained on."""
    gtn_pool.load_student(model)
    split = digits_split_seed(model)
    bad = [s for s in seeds if split is not None and s != split]
    if bad:
        raise ValueError(f"{model}: trained on the digits split of seed {split}, whose test images are not its "
                         f"training images; sweep it with seed {split} (--seeds {split}), not {bad[0]}")


def _check_student(model: str, allow_degenerate: bool) -> None:
    """Load a student's checkpoint and splits once (so a bad file fails the sweep before any point
    runs, with ``models``' one-line message), and refuse one trained on a degenerate trace (its
    accuracy axis is noise) unless ``allow_degenerate``."""
    ckpt, npz = _student_files(model)
    _loads(str(ckpt), ckpt.stat().st_mtime_ns if ckpt.is_file() else 0)
    stats = _workload_stats(str(npz), npz.stat().st_mtime_ns)
    if allow_degenerate:
        return
    try:
        check_workload(stats)
    except DegenerateTraceError as e:
        raise DegenerateTraceError(f"{model}: {e}") from None


@lru_cache(maxsize=64)
def _loads(ckpt: str, mtime_ns: int) -> None:
    """Raise unless ``ckpt`` loads as a paretofab checkpoint (once per file version)."""
    load_checkpoint(ckpt)


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
        ``paretofab distill`` reports it; ``"0.5"`` at a fixed 0.5; ``None`` (default): ``"val"``.
        Given for a grid of digits only, it is refused (accuracy has no threshold).
    calib : ``"real"`` or ``"synthetic:DIR"`` (digits models only; see the module doc).
    """

    models: Sequence[str]
    wfmts: Sequence[str]
    afmts: Sequence[str]
    ptqs: Sequence[str] = ("none",)
    seeds: Sequence[int] = (0,)
    per_channel: bool = True
    n_calib: int = 256
    sparsities: Sequence[str] = ("dense",)
    threshold: str | None = None
    calib: str = "real"


def _calib_name(spec: str, n_calib: int) -> str:
    """``"real"``, or ``"synthetic:<absolute DIR>@<sha12>"`` of ``"synthetic:DIR"`` after checking
    that ``DIR/synthetic.pt`` holds at least ``n_calib`` images; ``ValueError`` naming the fix."""
    if spec == "real":
        return spec
    kind, _, folder = spec.partition(":")
    if kind != "synthetic" or not folder:
        raise ValueError(f"--calib {spec!r}: use real, or synthetic:DIR (a `paretofab datafree -o DIR` folder)")
    d = Path(folder).resolve()
    f = d / SYNTHETIC_FILE
    if not f.is_file():
        raise ValueError(f"--calib {spec}: no {f}; write one with `paretofab datafree --teacher digits -o {folder}`")
    images, sha = _synthetic_images(str(f), f.stat().st_mtime_ns)
    if len(images) < n_calib:
        raise ValueError(f"--calib {spec}: {f} holds {len(images)} images, fewer than --n-calib {n_calib}; "
                         f"lower --n-calib")
    return f"synthetic:{d}@{sha}"


@lru_cache(maxsize=16)
def _synthetic_images(path: str, mtime_ns: int) -> tuple[torch.Tensor, str]:
    """``(images (N, 1, 8, 8), sha256 of the file, 12 hex)`` of a ``synthetic.pt`` (read with
    ``weights_only=True``); ``ValueError`` for anything else."""
    blob = Path(path).read_bytes()
    try:
        images = torch.load(path, map_location="cpu", weights_only=True)["images"]
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"{path}: not a synthetic set written by `paretofab datafree` ({type(e).__name__})") from None
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 8, 8):
        raise ValueError(f"{path}: its images are not (N, 1, 8, 8) digits images")
    return images.float(), hashlib.sha256(blob).hexdigest()[:12]


def _calib_images(calib: str, n_calib: int) -> torch.Tensor:
    """The first ``n_calib`` images of a normalized ``synthetic:DIR@SHA`` calibration set, checked
    to be the file the point was keyed by."""
    folder, _, sha = calib.removeprefix("synthetic:").rpartition("@")
    f = Path(folder) / SYNTHETIC_FILE
    images, now = _synthetic_images(str(f), f.stat().st_mtime_ns)
    if now != sha:
        raise ValueError(f"{f} changed since the sweep's points were made (sha {now}, not {sha}); rerun the sweep")
    return images[:n_calib]


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
    if threshold not in (None, "val", "0.5"):
        raise ValueError(f"threshold must be 'val' or '0.5', got {threshold!r}")
    for name, seq in (("models", models), ("wfmts", wfmts), ("afmts", afmts), ("ptqs", ptqs), ("seeds", seeds),
                      ("sparsities", sparsities)):
        if not seq:
            raise ValueError(f"the sweep has no {name}: give at least one")
    if n_calib < 1:
        raise ValueError(f"n_calib must be >= 1 calibration samples, got {n_calib}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"seeds must be non-negative integers (0, 1, 2 …), got {s!r}")
    ms = [_model_name(m) for m in models]
    if threshold is not None and all(_accuracy_metric(m) for m in ms):
        raise ValueError("a threshold applies to MAP students only (micro-F1); digits reports accuracy: "
                         "drop --threshold")
    threshold = threshold or "val"
    for m in ms:
        if is_digits_student(m):
            _check_digits_student(m, seeds)
        elif m != "digits":
            _check_student(m, allow_degenerate)
    ws = [str(check_supported(f)) for f in wfmts]
    as_ = [str(check_supported(f)) for f in afmts]
    ps = ["+".join(parse_techniques(p)) or "none" for p in ptqs]
    ss = [_sparsity_name(s) for s in sparsities]
    if space.calib != "real" and not all(_accuracy_metric(m) for m in ms):
        raise ValueError(f"--calib {space.calib}: synthetic calibration images are digits images; sweep digits "
                         f"models with it (MAP students calibrate on real rows)")
    calib = _calib_name(space.calib, n_calib)
    pts = [
        SweepPoint(m, w, a, p, int(s), space.per_channel, n_calib, sp, "0.5" if _accuracy_metric(m) else threshold,
                   calib)
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


def load_workload(spec: str, seed: int = 0, n_calib: int = 256, threshold: str = "0.5",
                  calib: str = "real") -> Workload:
    """``"digits"`` (built-in CNN, accuracy), a digits student of a GTN folder (a ``.pt`` written
    by ``paretofab gtn``; accuracy on the digits split of ``seed``) or a PaCKD student: a
    checkpoint file, or a ``paretofab distill -o DIR`` folder (``DIR/student.pt`` +
    ``DIR/data.npz``), metric micro-F1 at 0.5 (``threshold="0.5"``) or at the validation-best
    threshold (``"val"``, metric name ``micro_f1@val``). Calibration: the first ``n_calib``
    training inputs, or (digits, ``calib`` a normalized ``synthetic:DIR@SHA``) the first
    ``n_calib`` synthetic images of ``DIR/synthetic.pt``."""
    if spec == "digits" or is_digits_student(spec):
        data = digits.load_data(seed)
        model = digits.load_model(seed, data) if spec == "digits" else gtn_pool.load_student(spec)

        def ev(m):
            return digits.accuracy(m, data.x_test, data.y_test), digits.accuracy(m, data.x_val, data.y_val)

        x = data.x_train[:n_calib] if calib == "real" else _calib_images(calib, n_calib)
        return Workload(spec, model, x, "accuracy", ev)
    if calib != "real":
        raise ValueError(f"{spec}: synthetic calibration applies to digits models only")
    p = Path(spec)
    ckpt, npz = _student_files(spec)
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
    k = (point.model, point.seed, point.n_calib, point.threshold, point.calib)
    if k not in _WORKLOADS:
        _WORKLOADS[k] = load_workload(point.model, point.seed, point.n_calib, point.threshold, point.calib)
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
    untouched = "choose another -o file, it was left untouched"
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a results store; give a .sqlite file name")
    if path.stat().st_size == 0:
        raise StoreError(f"{path} is an empty file, not a results store; run `paretofab sweep -o {path}` first")
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables or "points" not in tables:
                raise StoreError(
                    f"{path} is an SQLite file but not a paretofab sweep store (no meta/points tables); {untouched}"
                )
            row = con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if not row or row[0] != SCHEMA:
                raise StoreError(f"{path} has schema {row[0] if row else None!r}, not {SCHEMA!r}; {untouched}")
            check = con.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise StoreError(f"{path} is a damaged results store ({check[0] if check else 'no answer'}); "
                                 f"{untouched}")
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a readable SQLite results store ({e}); {untouched}") from None


def _check_new_file(path: Path) -> None:
    """Raise the ``OSError`` that creating ``path`` would meet: a file where a folder is needed,
    or a folder that cannot be written (checked before any work, so the error is one line)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(parent))


def _check_target(path: Path) -> None:
    """Check that ``path`` can be a sweep store (an existing store, or a new file that can be
    created) without creating or changing anything."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder; give a .sqlite file name")
    if path.exists() and path.stat().st_size > 0:
        _check_store(path)
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    else:
        _check_new_file(path)


def open_store(path: str | os.PathLike, create: bool = True) -> sqlite3.Connection:
    """Open (or create) a sweep store. An existing file that is not one raises
    :class:`StoreError` and is not modified."""
    path = Path(path)
    if not create and not path.exists():
        raise FileNotFoundError(f"results file {path} not found: run `paretofab sweep -o {path}` first")
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_store(path)
    try:
        con = sqlite3.connect(path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: cannot open as a results store ({e}); choose another -o file") from None
    con.execute("PRAGMA synchronous=NORMAL")
    with con:
        _create_tables(con)
        have = {r[1] for r in con.execute("PRAGMA table_info(points)")}
        for col, default in ADDED_COLUMNS.items():  # a store written before that axis
            if col not in have:
                con.execute(f"ALTER TABLE points ADD COLUMN {col} TEXT NOT NULL DEFAULT '{default}'")
    return con


def _create_tables(con: sqlite3.Connection) -> None:
    """The store's tables and schema mark, where missing."""
    con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA,))
    con.execute(f"CREATE TABLE IF NOT EXISTS points ({COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS failures ({FAILURE_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS claims ({CLAIM_COLUMNS})")


def _create_store(path: Path) -> None:
    """Create an empty store at ``path`` whole: built under a temporary name beside it, then
    hard-linked into place. No process ever sees ``path`` without its tables (a sweep starting
    beside another one would otherwise find an SQLite file with none and refuse it as foreign);
    where another process linked its store first, that one stays and this one's is dropped."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            with con:
                _create_tables(con)
        finally:
            con.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another sweep created it first
        except OSError:  # a file system without hard links: rename (no other sweep guard there)
            if not path.exists():
                os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _done_keys(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT key FROM points")}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# ---- claims: one process computes each point ---------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """``(state, start time in unix seconds)`` of a process from Linux' ``/proc``; None where
    there is no ``/proc`` (the pid alone then decides)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        btime = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime 22
    try:
        return fields[0], btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None


def _pid_alive(pid: int, since: float) -> bool:
    """Whether process ``pid`` of this host still runs and is the one that claimed at ``since``
    (not a zombie, not a later process that reuses the pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    return state not in ("Z", "X", "x") and started <= since + 2.0


class _Claims:
    """This process's claims in a store (see the module doc)."""

    def __init__(self, con: sqlite3.Connection, timeout: float):
        self.con, self.timeout = con, timeout
        self.pid, self.host = os.getpid(), socket.gethostname()
        self.since = _now()
        self.mine: set[str] = set()

    def _live(self, pid: int, host: str, started: float) -> bool:
        if host == self.host:
            return _pid_alive(pid, started)
        return time.time() - started < self.timeout

    def take(self, key: str) -> str:
        """Claim ``key``: ``"mine"`` (run it), ``"done"`` (in the store meanwhile) or ``"elsewhere"``
        (a live process holds it, or another process just tried it and it failed)."""
        for _ in range(5):
            with self.con:
                got = self.con.execute("INSERT OR IGNORE INTO claims VALUES (?, ?, ?, ?)",
                                       (key, self.pid, self.host, time.time())).rowcount == 1
            if got:
                if self.con.execute("SELECT 1 FROM points WHERE key = ?", (key,)).fetchone():
                    self.release(key)
                    return "done"
                failed = self.con.execute("SELECT finished_utc FROM failures WHERE key = ?", (key,)).fetchone()
                if failed and failed[0] >= self.since:  # failed in another sweep during this one
                    self.release(key)
                    return "elsewhere"
                self.mine.add(key)
                return "mine"
            row = self.con.execute("SELECT pid, host, started FROM claims WHERE key = ?", (key,)).fetchone()
            if row is None:
                continue  # released meanwhile: try again
            if self._live(*row):
                return "elsewhere"
            with self.con:  # expired: remove exactly that claim (another process may do so too)
                self.con.execute("DELETE FROM claims WHERE key = ? AND pid = ? AND host = ? AND started = ?",
                                 (key, *row))
        return "elsewhere"

    def release_sql(self, key: str) -> tuple[str, tuple]:
        self.mine.discard(key)
        return "DELETE FROM claims WHERE key = ? AND pid = ? AND host = ?", (key, self.pid, self.host)

    def release(self, key: str) -> None:
        with self.con:
            self.con.execute(*self.release_sql(key))

    def release_all(self) -> None:
        """Drop the claims of points this process did not finish (interrupted, failed)."""
        with self.con:
            self.con.executemany("DELETE FROM claims WHERE key = ? AND pid = ? AND host = ?",
                                 [(k, self.pid, self.host) for k in self.mine])
        self.mine.clear()


def _insert(con: sqlite3.Connection, row: dict, claims: _Claims | None = None) -> None:
    row = dict(row)
    row["finished_utc"] = _now()
    cfg = {k: row[k] for k in SweepPoint.__dataclass_fields__}
    row["config"] = json.dumps(cfg, sort_keys=True)
    row["per_channel"] = int(row["per_channel"])
    cols = [c.split()[0] for c in COLUMNS.split(", ")]
    with con:  # one transaction per finished point, releasing its claim
        con.execute(f"INSERT OR IGNORE INTO points ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols])
        con.execute("DELETE FROM failures WHERE key = ?", (row["key"],))
        if claims is not None:
            con.execute(*claims.release_sql(row["key"]))


def _insert_failure(con: sqlite3.Connection, row: dict, claims: _Claims | None = None) -> None:
    with con:
        con.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                    (row["key"], json.dumps(row["config"], sort_keys=True), row["error"], _now()))
        if claims is not None:
            con.execute(*claims.release_sql(row["key"]))


def _connect(scheduler, timeout: float):
    """``(client, owned)`` for a Dask scheduler address or client; a scheduler that does not
    answer within ``timeout`` seconds raises :class:`SchedulerError`."""
    # heavy, optional: dask's distributed scheduler
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False
    if timeout <= 0:
        raise ValueError(f"--scheduler-timeout must be > 0 seconds, got {timeout:g}")
    try:
        return Client(scheduler, timeout=timeout), True
    except (OSError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        why = "" if first.startswith("Timed out") else f" ({first})"
        raise SchedulerError(f"the Dask scheduler at {scheduler} did not answer within {timeout:g} s{why}; "
                             "start it (`dask scheduler`) or check the address") from None


def run_sweep(
    points: Iterable[SweepPoint],
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    scheduler: str | Any | None = None,
    progress: bool = True,
    scheduler_timeout: float = SCHEDULER_TIMEOUT_S,
    claim_timeout: float = CLAIM_TIMEOUT_S,
) -> dict:
    """Run every point not yet in ``out`` and not being run by another sweep of the same store;
    returns ``{"done", "failed", "skipped", "elsewhere", "total", "seconds", "errors"}``:
    points run here, failed here (``errors``: their messages by key; they are also in the store's
    ``failures`` table, see :func:`load_failures`), already in the store (``skipped``, including
    points another sweep finished meanwhile), still running elsewhere (or failed there) at the end.

    Parameters
    ----------
    jobs : worker processes (1: in this process).
    scheduler : Dask distributed scheduler address (or a ``distributed.Client``); overrides jobs.
    scheduler_timeout : seconds to wait for the scheduler to answer (else :class:`SchedulerError`).
    claim_timeout : seconds after which another host's claim on a point expires.
    """
    points = list(points)
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out)
    _check_target(out)
    client, owned = _connect(scheduler, scheduler_timeout) if scheduler is not None else (None, False)
    t0 = time.perf_counter()
    try:
        con = open_store(out)
        try:
            r = _run(points, con, jobs, client, progress, claim_timeout)
        finally:
            con.close()
    finally:
        if owned:
            client.close()
    return {**r, "total": len(points), "seconds": time.perf_counter() - t0}


def _run(points: list[SweepPoint], con: sqlite3.Connection, jobs: int, client, progress: bool,
         claim_timeout: float) -> dict:
    done = _done_keys(con)
    todo = [p for p in points if p.key not in done]
    claims = _Claims(con, claim_timeout)
    counts = {"skipped": len(points) - len(todo)}
    elsewhere: list[str] = []
    bar = tqdm(total=len(todo), desc="sweep", unit="pt", disable=not progress, dynamic_ncols=True)

    def claimed() -> Iterator[SweepPoint]:
        for p in todo:
            state = claims.take(p.key)
            if state == "mine":
                yield p
                continue
            if state == "done":
                counts["skipped"] += 1
            else:
                elsewhere.append(p.key)
            bar.set_postfix_str(f"{p.wfmt}/{p.afmt} {p.ptq}: {state}", refresh=False)
            bar.update()

    n, errors = 0, {}
    try:
        for row in _execute(claimed(), jobs, client):
            if "error" in row:
                _insert_failure(con, row, claims)
                errors[row["key"]] = row["error"]
                c = row["config"]
                bar.set_postfix_str(f"{c['wfmt']}/{c['afmt']} {c['ptq']}: FAILED", refresh=False)
            else:
                _insert(con, row, claims)
                n += 1
                bar.set_postfix_str(f"{row['wfmt']}/{row['afmt']} {row['ptq']}: {row['metric']:.4f}", refresh=False)
            bar.update()
    finally:
        bar.close()
        claims.release_all()
    finished = _done_keys(con) & set(elsewhere)  # finished by the other sweep meanwhile
    counts["skipped"] += len(finished)
    return {"done": n, "failed": len(errors), **counts, "elsewhere": len(elsewhere) - len(finished),
            "errors": errors}


def _execute(points: Iterator[SweepPoint], jobs: int, client) -> Iterator[dict]:
    """Results of ``points`` as they finish. Points are drawn (claimed) only when a worker is
    free, so concurrent sweeps share the grid instead of claiming it all at once."""
    if client is not None:
        # heavy, optional: dask's distributed scheduler
        from distributed import wait as dask_wait

        pending: set = set()
        try:
            while True:
                room = max(1, sum(client.nthreads().values())) - len(pending)
                for p in itertools.islice(points, max(room, 0)):
                    pending.add(client.submit(try_point, asdict(p), pure=False))
                if not pending:
                    return
                finished, pending = dask_wait(pending, return_when="FIRST_COMPLETED")
                pending = set(pending)
                for f in finished:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()
    if jobs == 1:
        for p in points:
            yield try_point(asdict(p))
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
        pending = set()
        try:
            while True:
                for p in itertools.islice(points, jobs - len(pending)):
                    pending.add(ex.submit(try_point, asdict(p)))
                if not pending:
                    return
                finished, pending = wait_futures(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield f.result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _read(path: str | os.PathLike, table: str, order: str) -> pd.DataFrame | None:
    """``SELECT * FROM table ORDER BY order`` of a checked store, read-only; None if the table
    does not exist (a store written before it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file {path} not found: run `paretofab sweep -o {path}` first")
    _check_store(path)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", con) if table in tables else None
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is a damaged results store ({e}); rerun the sweep into a new file") from None


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Every finished point of a store as a DataFrame (one row per point, typed columns)."""
    df = _read(path, "points", "model, wfmt, afmt, ptq, seed")
    df["per_channel"] = df["per_channel"].astype(bool)
    for col, default in ADDED_COLUMNS.items():  # read-only view of a store written before that axis
        if col not in df:
            df[col] = default
    return df


def load_failures(path: str | os.PathLike) -> pd.DataFrame:
    """The points of a store that failed on their last try: key, config columns, error, time."""
    raw = _read(path, "failures", "finished_utc")
    if raw is None:
        return pd.DataFrame(columns=["key", "error", "finished_utc"])
    cfg = pd.DataFrame([json.loads(c) for c in raw["config"]], index=raw.index)
    return pd.concat([raw[["key"]], cfg, raw[["error", "finished_utc"]]], axis=1)
