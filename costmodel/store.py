"""The stored runs the cost model is calibrated and judged on: the CSV tables under
``costmodel/data/`` (one row per synthesis or place-and-route run, keyed by config and target),
their schemas, the documented calibration / validation split, and resumable appends.

:mod:`costmodel.calibrate` fills the tables (Yosys), :mod:`costmodel.pnr` and :mod:`costmodel.ltp`
add their own; :mod:`costmodel.resources` fits on them. Nothing here runs a tool, so reading the
stored runs never imports the synthesis flow.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hw.rtl import atomic_write

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DATA", "config_key", "is_validation", "split", "heldout_keys", "done_keys", "stored_before", "failed_keys",
           "append", "replace_row", "record_failure", "forget_failure", "now", "parse_date", "config_columns",
           "SWABounds", "swa_doe_bounds"]

DATA = Path(__file__).parent / "data"
PRIMITIVES_CSV = DATA / "primitives.csv"
BUFFERS_CSV = DATA / "buffers.csv"
MUXES_CSV = DATA / "muxes.csv"
LANES_CSV = DATA / "lanes.csv"
#: the exact multipliers synthesized alone under abc9 delay targets (ECP5): LUTs against delay
MULT_CURVES_CSV = DATA / "mult_curves.csv"
#: ps, the abc9 delay targets of a multiplier's curve (the budgets the stored engines give their
#: multipliers: 1.3-8 ns, ``costmodel.latency.multiplier_budget_ns``) and one far beyond any
#: path (its area form)
CURVE_DELAYS_PS = (1500, 2000, 2500, 3000, 3500, 4000, 5000, 6500)
AREA_DELAY_PS = 100_000
#: LUT sites by which a multiplier's area form must undercut its delay form for its curve to be
#: measured (fewer: abc9's noise between two mappings, a flat curve)
CURVE_FLAT_LUTS = 4
#: the m of the sparse lanes measured alone (those of the random engine draws)
LANE_MS = (2, 4, 8, 16)
CALIBRATION_CSV = DATA / "calibration.csv"
DOE_HELDOUT_CSV = DATA / "doe_heldout.csv"
DOE_CALIBRATION_CSV = DATA / "doe_calibration.csv"
#: the DOE table of each split (``--split``)
DOE_CSV = {"heldout": DOE_HELDOUT_CSV, "calibration": DOE_CALIBRATION_CSV}
#: the SWA kernel's random draws (grid ``swa-doe``), one table per split as for ``doe``
SWA_DOE_CSV = {"heldout": DATA / "swa_doe_heldout.csv", "calibration": DATA / "swa_doe_calibration.csv"}
ORDER_CHECK_CSV = DATA / "order_check.csv"
SWA_CALIBRATION_CSV = DATA / "swa_calibration.csv"
META_JSON = DATA / "calibration_meta.json"
#: configs Yosys failed on (an internal error of the tool, not of the design): one row each, with
#: the table it was meant for and the error line; resumed runs skip them
FAILURES_CSV = DATA / "synth_failures.csv"
FAILURE_FIELDS = ["key", "target", "table", "label", "error", "yosys", "date"]

#: measured columns a row may hold (each table keeps those of its field list)
MEASURED = ("lut", "ff", "carry", "dsp", "bram18", "lutram", "muxf", "seconds", "yosys")
MUX_FIELDS = ["key", "lanes", "n", "m", "abits", "target", "lut", "ff", "muxf", "seconds", "yosys", "date"]
BUFFER_FIELDS = ["key", "depth", "width", "target", "lut", "ff", "bram18", "lutram", "seconds", "yosys", "date",
                 "transparent"]
PRIM_FIELDS = ["key", "wfmt", "afmt", "target", "lut", "ff", "carry", "dsp", "seconds", "yosys", "date"]
CURVE_FIELDS = ["key", "wfmt", "afmt", "delay_ps", "target", "lut", "ff", "carry", "dsp", "seconds", "yosys", "date"]
#: one lane of a sparse engine alone (``lanes``): an m:1 index mux feeding the exact multiplier
LANE_FIELDS = ["key", "wfmt", "afmt", "m", "target", "lut", "ff", "carry", "dsp", "seconds", "yosys", "date"]
SWA_FIELDS = ["key", "config", "target", "head_dim", "window", "lanes", "qk_fmt", "v_fmt", "lut", "ff", "carry",
              "dsp", "bram18", "lutram", "seconds", "yosys", "date", "command"]
ENGINE_FIELDS = ["key", "engine", "config", "target", "lanes", "wfmt", "afmt", "k_max", "pipeline",
                 "n", "m", "block", "lut", "ff", "carry", "dsp", "bram18", "lutram", "muxf",
                 "seconds", "yosys", "date"]
#: the held-out DOE table: the engine columns plus the split, the draw (seed, index) and the command
DOE_FIELDS = ENGINE_FIELDS + ["split", "seed", "index", "command"]
#: the SWA DOE tables: the SWA columns, the variant, the draw (seed, index) and the command
SWA_DOE_FIELDS = SWA_FIELDS + ["causal", "dense", "split", "seed", "index"]


def config_key(cfg: dict, target: str) -> str:
    """sha1 of the canonical JSON of a config dict plus the synthesis target."""
    return hashlib.sha1(json.dumps([cfg, target], sort_keys=True).encode()).hexdigest()


def is_validation(key: str) -> bool:
    """The documented hold-out rule: ``int(key[:8], 16) % 5 == 0`` (~20 %)."""
    return int(key[:8], 16) % 5 == 0


def split(df: "pd.DataFrame") -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """(calibration, validation) DataFrames of a table with a ``key`` column."""
    mask = df["key"].map(is_validation).astype(bool)
    return df[~mask], df[mask]


def heldout_keys(path: Path | None = None) -> set[str]:
    """Keys of the held-out DOE rows (``doe_heldout.csv``): never fitted on."""
    return done_keys(DOE_HELDOUT_CSV if path is None else path)


def done_keys(path: Path) -> set[str]:
    """Keys already stored in the table at ``path`` (empty if it does not exist yet)."""
    if not path.exists():
        return set()
    with path.open() as f:
        return {row["key"] for row in csv.DictReader(f)}


def stored_before(path: Path, target: str, before: str) -> set[str]:
    """Keys of ``target``'s rows in the table at ``path`` stored before ``before`` (a
    :func:`parse_date` string): the runs to take again after a change to what they measured."""
    if not path.exists():
        return set()
    with path.open() as f:
        return {row["key"] for row in csv.DictReader(f) if row["target"] == target and row["date"] < before}


def parse_date(text: str) -> str:
    """``text`` (ISO 8601, UTC: ``2026-12-03``, ``2026-12-03T12:16``, …) as the stored rows spell
    their dates (:func:`now`), for comparing with them; ValueError naming the form otherwise."""
    try:
        when = _dt.datetime.fromisoformat(text.strip().removesuffix("Z"))
    except ValueError:
        raise ValueError(f"not a date: {text!r}; give an ISO 8601 UTC date such as 2026-12-03 or 2026-12-03T12:16")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rewrite(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Write the table at ``path`` whole (header ``fields``, then ``rows``), atomically."""
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=fields)
    w.writeheader()
    w.writerows({k: r.get(k, "") for k in fields} for r in rows)
    atomic_write(path, text.getvalue())


def replace_row(path: Path, fields: list[str], row: dict) -> None:
    """Put ``row`` in place of the stored row of its key and target in the table at ``path``
    (appended where there is none; the table rewritten atomically): a run taken again. Two
    processes writing one table at once may lose a row this way (never corrupt the table): the
    old row stays, and the next run with the same date (``--again-before``; ``logic-cells``: any)
    takes it again."""
    if not path.exists():
        return append(path, fields, row)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    at = next((i for i, r in enumerate(rows) if r["key"] == row["key"] and r["target"] == row["target"]), None)
    if at is None:
        return append(path, fields, row)
    rows[at] = row
    _rewrite(path, fields, rows)


def append(path: Path, fields: list[str], row: dict) -> None:
    """Append one ``row`` (columns ``fields``; missing ones empty) to the table at ``path`` and
    flush it at once, writing the header first for a new table: a killed run loses at most the
    row in flight."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in fields})
        f.flush()


def now() -> str:
    """The UTC time, ISO 8601 to the second, as every stored row records it."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_columns(config, key: str, target: str) -> dict:
    """The identifying columns of one stored synthesis / P&R row: key, engine, config JSON,
    target, lanes, formats, k_max, pipeline, n, m (empty where the engine has none), date."""
    full = config.to_dict()
    return dict(key=key, engine=full["engine"], config=json.dumps(full, sort_keys=True), target=target,
                lanes=full["lanes"], wfmt=full["wfmt"], afmt=full["afmt"], k_max=full["k_max"],
                pipeline=full.get("pipeline", ""), n=full.get("n", ""), m=full.get("m", ""), date=now())


def record_failure(failures: Path, table: Path, key: str, target: str, label: str, exc: Exception,
                   yosys: str) -> str:
    """Append a tool failure on ``key`` (a row ``table`` will not get) to ``failures``, with the
    error line of ``exc`` (its first line holding "ERROR", else its last 200 characters), which is
    returned; :func:`failed_keys` reads it back so a resumed run skips the row. A record of the same
    key, table and target is replaced (a retry that failed again)."""
    forget_failure(failures, table, key, target)
    error = next((ln.strip() for ln in str(exc).splitlines() if "ERROR" in ln), str(exc).strip()[-200:])
    append(failures, FAILURE_FIELDS, {"key": key, "target": target, "table": table.name, "label": label,
                                      "error": error, "yosys": yosys, "date": now()})
    return error


def forget_failure(failures: Path, table: Path, key: str, target: str) -> None:
    """Drop the records of ``key`` on ``target`` for ``table`` from ``failures`` (a retried config
    that now runs; the table is rewritten whole, atomically)."""
    if not failures.exists():
        return
    with failures.open() as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if not (r["key"] == key and r["table"] == table.name and r["target"] == target)]
    if len(keep) < len(rows):
        _rewrite(failures, FAILURE_FIELDS, keep)


def failed_keys(failures: Path, table: Path, target: str | None = None) -> set[str]:
    """Keys recorded in ``failures`` for ``table`` (and ``target``, where given)."""
    if not failures.exists():
        return set()
    with failures.open() as f:
        return {row["key"] for row in csv.DictReader(f)
                if row["table"] == table.name and (target is None or row["target"] == target)}


# ---- the random SWA draws' bounds -------------------------------------------------------------


@dataclass(frozen=True)
class SWABounds:
    """The geometry an SWA draw covers: lanes log-uniform over 1..``max_lanes`` (E >= 5
    minifloats: at most ``costmodel.calibrate.DOE_WIDE_EXP_MAX_LANES``), head_dim = lanes · chunks up to
    ``max_head_dim``, windows (keys; the dense baseline's longest sequence) log-uniform over
    ``window``."""

    max_lanes: int
    max_head_dim: int
    window: tuple[int, int]

    def holds(self, lanes: int, head_dim: int, window: int) -> bool:
        """Whether a kernel of this geometry lies inside the bounds (a symmetric kernel's window,
        odd, up to ``window[1] + 1``)."""
        return (lanes <= self.max_lanes and head_dim <= self.max_head_dim
                and self.window[0] <= window <= self.window[1] + 1)

    def describe(self) -> str:
        return (f"lanes 1-{self.max_lanes}, head_dim up to {self.max_head_dim}, "
                f"window {self.window[0]}-{self.window[1]}")


#: the SWA draw's bounds (every family but those in :data:`SWA_DOE_FAMILY_BOUNDS`)
SWA_DOE_BOUNDS = SWABounds(32, 128, (2, 256))
#: smaller bounds for a family whose parts hold only small kernels. iCE40: the largest part the
#: device table knows, the iCE40UP5K, has 5,280 LUT4, and the full draw's first 8 kernels took
#: 5,291-40,501 LUT4 (27 s to over 58 min of synthesis each: no LUTRAM, so every small memory
#: becomes flip-flops); head_dim 8, 2 lanes, window 4, int8 takes 3,792 LUT4 and head_dim 12,
#: 2 lanes, window 2, e2m1 / e3m4 5,576: these bounds straddle the part's size (set on
#: 2026-12-05, before any kernel inside them was synthesized)
SWA_DOE_FAMILY_BOUNDS = {"ice40": SWABounds(4, 16, (2, 32))}


def swa_doe_bounds(target: str) -> SWABounds:
    """The SWA draw's bounds of family ``target``."""
    return SWA_DOE_FAMILY_BOUNDS.get(target, SWA_DOE_BOUNDS)
