"""PaCKD / MAP preprocessing: address tokens in, 256-bit future block-delta bitmap out.

For each LLC access t (with at least 9 predecessors and 128 successors):

* ``x[t]``: the addresses of accesses t-9 .. t (oldest first, current last), each split into ten
  6-bit tokens, most significant first (``(addr >> 6*(9-k)) & 63`` for k = 0..9), divided by 64
  so that every token lies in [0, 1). Shape (10 history steps, 10 tokens).
* ``y[t]``: 256-bit bitmap over the block deltas ``Δ = block[t+j] - block[t]``, j = 1..128, with
  ``block = addr >> 6``: a delta 0 < Δ <= 128 sets bit Δ-1, -128 <= Δ < 0 sets bit 256+Δ.

Rows whose label is empty are dropped; the last 20% (in time) are the test split, validation is a
seeded random 10% of the training window before it, and training rows whose 128-access look-ahead
would reach into the test split are dropped, so no training label sees a test access.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

HISTORY = 10
TOKENS = 10
TOKEN_BITS = 6
LOOKAHEAD = 128
MAX_DELTA = 128
LABELS = 256
BLOCK_BITS = 6
SPLITS = ("train", "val", "test")


class MapDataError(ValueError):
    """Bad preprocessing parameters or a malformed splits file."""


def tokens(addr: np.ndarray) -> np.ndarray:
    """(N,) byte addresses -> (N, 10) float32 tokens in [0, 1), most significant first."""
    a = np.asarray(addr, np.uint64)
    shifts = np.arange(TOKENS - 1, -1, -1, dtype=np.uint64) * np.uint64(TOKEN_BITS)
    tok = (a[:, None] >> shifts[None, :]) & np.uint64(63)
    return tok.astype(np.float32) / 64.0


def delta_labels(block: np.ndarray) -> np.ndarray:
    """(N,) block addresses -> (N - 128, 256) uint8 bitmap of the deltas to the next 128 blocks."""
    b = np.asarray(block, np.int64)
    n = b.size - LOOKAHEAD
    if n <= 0:
        return np.zeros((0, LABELS), np.uint8)
    y = np.zeros((n, LABELS), np.uint8)
    rows = np.arange(n)
    for j in range(1, LOOKAHEAD + 1):
        d = b[j:j + n] - b[:n]
        ok = (d != 0) & (np.abs(d) <= MAX_DELTA)
        bit = np.where(d > 0, d - 1, LABELS + d)
        y[rows[ok], bit[ok]] = 1
    return y


def history(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[t-9 .. t]`` for every t in ``rows`` (oldest first): shape (len(rows), 10, ...)."""
    idx = rows[:, None] + np.arange(-(HISTORY - 1), 1)[None, :]
    return np.asarray(values)[idx]


def make_splits(addr: np.ndarray, ip: np.ndarray | None = None, test_fraction: float = 0.2,
                val_fraction: float = 0.1, max_rows: int | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Preprocess an LLC access stream into train / val / test arrays.

    The protocol: the last ``test_fraction`` of the usable rows (in time) is the test split; the
    rows before it form the training window, and rows whose 128-access look-ahead would reach into
    the test split are dropped from it. Validation is a seeded random ``val_fraction`` of the
    training window (never a later time slice, which drifts away from test with the program's
    phase, and never test); the rest of the window is the training split.

    Parameters
    ----------
    addr : (N,) byte addresses in access order; ``ip`` (N,) load IPs (zeros if None).
    test_fraction, val_fraction : share of the usable rows for test, and of the training window
        for validation.
    max_rows : keep ``max_rows`` evenly spaced usable rows (before splitting), in time order.
    seed : draws the validation rows.

    Returns
    -------
    dict with, for each split s: ``x_s`` float32 (n, 10, 10) tokens, ``y_s`` uint8 (n, 256),
    ``block_s`` int64 (n, 10) past block addresses, ``ip_s`` int64 (n, 10) past IPs, ``t_s`` int64
    (n,) position of the row's access in the stream (ascending within every split).
    """
    addr = np.asarray(addr, np.uint64)
    ip = np.zeros(addr.size, np.int64) if ip is None else np.asarray(ip).astype(np.int64)
    if ip.shape != addr.shape:
        raise MapDataError("addr and ip must have the same length")
    for name, f in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < f < 1.0:
            raise MapDataError(f"{name} {f} must lie strictly between 0 and 1")
    block = (addr >> np.uint64(BLOCK_BITS)).astype(np.int64)
    y_all = delta_labels(block)  # row t has label y_all[t]
    n = y_all.shape[0]
    t = np.arange(HISTORY - 1, n)
    t = t[y_all[t].any(axis=1)]
    if max_rows is not None and t.size > max_rows:
        # evenly spaced rows over the whole trace (all program phases), still in time order
        t = t[np.linspace(0, t.size - 1, max_rows).round().astype(np.int64)]
    if t.size < 30:
        raise MapDataError(f"only {t.size} usable rows: the trace is too short, "
                           "generate a larger one (--scale or more loads)")
    cut = int(round((1 - test_fraction) * t.size))
    test = t[cut:]
    window = t[:cut][t[:cut] + LOOKAHEAD < test[0]]  # no training label sees a test access
    is_val = np.zeros(window.size, bool)
    is_val[np.random.default_rng(seed).permutation(window.size)[:int(round(val_fraction * window.size))]] = True
    rows_of = {"train": window[~is_val], "val": window[is_val], "test": test}
    tok = tokens(addr)
    out: dict[str, np.ndarray] = {}
    for s, rows in rows_of.items():
        if rows.size == 0:
            raise MapDataError(f"the {s} split is empty: use a longer trace")
        out[f"x_{s}"] = history(tok, rows)
        out[f"y_{s}"] = y_all[rows]
        out[f"block_{s}"] = history(block, rows)
        out[f"ip_{s}"] = history(ip, rows)
        out[f"t_{s}"] = rows
    return out


def save_splits(path: str | Path, splits: dict[str, np.ndarray]) -> None:
    """Save splits to a compressed ``.npz`` (labels bit-packed)."""
    arrays = {}
    for k, v in splits.items():
        if k.startswith("y_"):
            arrays[k + "_packed"] = np.packbits(v.astype(bool), axis=1)
        else:
            arrays[k] = v
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_splits(path: str | Path) -> dict[str, np.ndarray]:
    """Load splits saved by :func:`save_splits` (e.g. ``DIR/data.npz`` of ``paretofab distill``).

    Returns the dict of :func:`make_splits`: ``x_{train,val,test}`` float32 (n, 10, 10),
    ``y_*`` uint8 (n, 256), ``block_*``, ``ip_*``, ``t_*``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"splits file {path} not found: run `paretofab distill -o DIR` first")
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                if k.endswith("_packed"):
                    out[k[: -len("_packed")]] = np.unpackbits(z[k], axis=1, count=LABELS)
                else:
                    out[k] = z[k]
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        # numpy blames pickled data for anything that is not .npy/.npz, and advises unpickling
        reason = "not an .npz archive" if not zipfile.is_zipfile(path) else str(e).split(". If you trust")[0]
        raise MapDataError(f"{path} is not a splits file (.npz of arrays written by `paretofab distill`): "
                           f"{reason}") from None
    missing = [f"{p}_{s}" for p in ("x", "y") for s in SPLITS if f"{p}_{s}" not in out]
    if missing:
        raise MapDataError(f"{path} lacks {', '.join(missing)}: not a splits file from save_splits")
    return out


def hashed_ips(ip: np.ndarray) -> np.ndarray:
    """IPs hashed to floats in [0, 1) (Fibonacci hashing of the 64-bit IP, top 24 bits), as PaCKD
    clusters on hashed past IPs: nearby load sites land far apart, equal ones together."""
    h = np.asarray(ip).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def cluster_features(splits: dict[str, np.ndarray], split: str, kind: str) -> np.ndarray:
    """PaCKD clustering features of one split: ``addr`` (past block addresses), ``ip`` (hashed
    past IPs, :func:`hashed_ips`) or ``delta`` (past block deltas); float64 (n, 10) or (n, 9)."""
    if kind == "addr":
        return splits[f"block_{split}"].astype(np.float64)
    if kind == "ip":
        return hashed_ips(splits[f"ip_{split}"])
    if kind == "delta":
        return np.diff(splits[f"block_{split}"], axis=1).astype(np.float64)
    raise MapDataError(f"unknown cluster feature {kind!r}: choose addr, ip or delta")
