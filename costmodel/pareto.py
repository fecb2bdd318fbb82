"""Pareto ranking (non-dominated sorting) of design points, and plots of the front.

A point *a* dominates *b* when it is no worse in every objective and strictly better in at least
one. Rank 1 is the non-dominated set; rank r+1 is the non-dominated set once ranks 1..r are
removed (Deb et al., NSGA-II). Identical points never dominate each other, so duplicates share
a rank.

Algorithms
----------
- two objectives: one sort plus a binary search per point over the fronts' last members
  (Jensen 2003, "Reducing the run-time complexity of multiobjective EAs"), O(n log n);
- k ≥ 3 objectives: front peeling; each front is found by scanning points in order of their
  objective sum (a point can only be dominated by one with a smaller sum) against the front
  found so far, vectorized with numpy: O(F · n · |front| · k) in the worst case.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["ParetoError", "PlotOptions", "pareto", "pareto_ranks", "plot"]


class ParetoError(ValueError):
    """Bad objectives: unknown or non-numeric columns, NaN values, or none given."""


# ---------------------------------------------------------------------------------------------
# core: ranks of a (n, k) array, every objective minimized
# ---------------------------------------------------------------------------------------------
def pareto_ranks(values: np.ndarray) -> np.ndarray:
    """Non-domination rank (1 = Pareto front) of each row, every column minimized.

    Parameters
    ----------
    values : (n, k) array of finite numbers, k ≥ 1.

    Returns
    -------
    (n,) int64 array of ranks ≥ 1.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ParetoError(f"objective values must be a 2-D array (points × objectives), got shape {v.shape}")
    n, k = v.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if k == 0:
        raise ParetoError("no objectives given: pass at least one column in maximize= or minimize=")
    if not np.isfinite(v).all():
        raise ParetoError("objective values contain NaN or inf; drop or fill those rows first")
    if k == 1:
        # dense ranking of the values: equal values share a rank
        _, inv = np.unique(v[:, 0], return_inverse=True)
        return inv.astype(np.int64).reshape(-1) + 1
    if k == 2:
        return _ranks_2d(v)
    return _ranks_peel(v)


def _ranks_2d(v: np.ndarray) -> np.ndarray:
    order = np.lexsort((v[:, 1], v[:, 0]))  # by f1, then f2
    f1 = v[order, 0].tolist()
    f2 = v[order, 1].tolist()
    # keys[i] = (f2, f1) of the last member of front i; strictly increasing in i. The last member L
    # of a front dominates p (processed later, so L.f1 <= p.f1) iff (L.f2, L.f1) < (p.f2, p.f1).
    keys: list[tuple[float, float]] = []
    ranks = np.empty(len(f1), dtype=np.int64)
    for j, (a, b) in enumerate(zip(f1, f2)):
        key = (b, a)
        i = bisect.bisect_left(keys, key)  # first front whose last member does not dominate p
        if i == len(keys):
            keys.append(key)
        else:
            keys[i] = key
        ranks[order[j]] = i + 1
    return ranks


def _front_mask(v: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``v`` (all minimized)."""
    order = np.argsort(v.sum(axis=1), kind="stable")
    front: list[int] = []
    fv = np.empty((0, v.shape[1]))
    for i in order:
        p = v[i]
        if len(front):
            le = (fv <= p).all(axis=1)
            lt = (fv < p).any(axis=1)
            if (le & lt).any():
                continue
        front.append(i)
        fv = np.vstack([fv, p])
    mask = np.zeros(len(v), dtype=bool)
    mask[front] = True
    return mask


def _ranks_peel(v: np.ndarray) -> np.ndarray:
    # duplicates share their rank: rank the unique rows, then broadcast back
    uniq, inv = np.unique(v, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    ranks_u = np.zeros(len(uniq), dtype=np.int64)
    remaining = np.arange(len(uniq))
    r = 1
    while len(remaining):
        m = _front_mask(uniq[remaining])
        ranks_u[remaining[m]] = r
        remaining = remaining[~m]
        r += 1
    return ranks_u[inv]


# ---------------------------------------------------------------------------------------------
# DataFrame API
# ---------------------------------------------------------------------------------------------
def _objective_matrix(df: pd.DataFrame, maximize: Sequence[str], minimize: Sequence[str]) -> np.ndarray:
    maximize, minimize = list(maximize or []), list(minimize or [])
    if isinstance(maximize, str) or isinstance(minimize, str):  # pragma: no cover - guarded above
        raise ParetoError("maximize= and minimize= take lists of column names")
    cols = maximize + minimize
    if not cols:
        raise ParetoError("no objectives given: pass at least one column in maximize= or minimize=")
    dup = {c for c in cols if cols.count(c) > 1}
    if dup:
        raise ParetoError(f"column(s) {sorted(dup)} named more than once in maximize=/minimize=")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ParetoError(f"unknown column(s) {missing}; the table has {list(df.columns)}")
    out = np.empty((len(df), len(cols)))
    for j, c in enumerate(cols):
        try:
            col = pd.to_numeric(df[c], errors="raise").to_numpy(dtype=float)
        except (ValueError, TypeError):
            raise ParetoError(f"objective column {c!r} is not numeric") from None
        if not np.isfinite(col).all():
            bad = int((~np.isfinite(col)).sum())
            raise ParetoError(f"objective column {c!r} has {bad} NaN/inf value(s); drop or fill them first "
                              f"(df.dropna(subset=[{c!r}]))")
        out[:, j] = -col if c in maximize else col
    return out


def pareto(
    df: pd.DataFrame,
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
    *,
    all_ranks: bool = False,
) -> pd.DataFrame:
    """Non-dominated design points of ``df``.

    Parameters
    ----------
    df : one row per design point.
    maximize, minimize : objective column names (e.g. ``maximize=["accuracy"]``,
        ``minimize=["lut", "latency_us"]``).
    all_ranks : return every row with its rank instead of only the front.

    Returns
    -------
    DataFrame
        A copy of the front (or of all rows) with a ``pareto_rank`` column (1 = front), sorted by
        rank and then by the first objective (best first); the original index is kept.
    """
    if isinstance(maximize, str):
        maximize = [maximize]
    if isinstance(minimize, str):
        minimize = [minimize]
    v = _objective_matrix(df, maximize, minimize)
    ranks = pareto_ranks(v)
    out = df.copy()
    out["pareto_rank"] = ranks
    if not all_ranks:
        out = out[out["pareto_rank"] == 1]
    first = (list(maximize) + list(minimize))[0]
    return out.sort_values(["pareto_rank", first], ascending=[True, first not in maximize], kind="stable")


@dataclass(frozen=True)
class PlotOptions:
    """What :func:`plot` draws besides the two axes.

    Attributes
    ----------
    maximize, minimize : objectives of the front (default: minimize ``x``, maximize ``y``).
    label : column whose value names each front point (default: the index).
    title : plot title (default: the objectives of the front).
    logx, logy : log axes; None: when the positive values span more than two decades.
    """

    maximize: Sequence[str] = field(default_factory=tuple)
    minimize: Sequence[str] = field(default_factory=tuple)
    label: str | None = None
    title: str | None = None
    logx: bool | None = None
    logy: bool | None = None


def plot(df: pd.DataFrame, x: str, y: str, options: PlotOptions | None = None, *,
         path: str | Path | None = None, ax=None):
    """Scatter ``y`` against ``x`` with the Pareto front highlighted, joined and labelled.

    The front is computed over ``options.maximize`` + ``options.minimize`` (default: minimize
    ``x``, maximize ``y`` — e.g. LUTs against accuracy). Points off the front are grey.

    Parameters
    ----------
    options : :class:`PlotOptions` (objectives, point labels, title, log axes).
    path : save the figure there (``.png``, ``.svg`` or ``.pdf``, chosen by suffix) and close it.
    ax : draw into this matplotlib Axes instead of a new figure.

    Returns
    -------
    The matplotlib Axes (figure closed when ``path`` is given).
    """
    return _draw(df, x, y, options or PlotOptions(), path, ax)


def _draw(df: pd.DataFrame, x: str, y: str, o: PlotOptions, path: str | Path | None, ax):
    """:func:`plot`'s body."""
    import matplotlib  # heavy: matplotlib (only plots need it)

    if ax is None and path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # heavy: matplotlib, after the backend is chosen

    maximize, minimize, label = list(o.maximize), list(o.minimize), o.label
    if not maximize and not minimize:
        minimize, maximize = [x], [y]
    for c in (x, y) + ((label,) if label else ()):
        if c not in df.columns:
            raise ParetoError(f"unknown column {c!r}; the table has {list(df.columns)}")
    if path is not None and Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ParetoError(f"plot path must end in .png, .svg or .pdf, got {str(path)!r}")
    ranked = pareto(df, maximize, minimize, all_ranks=True)
    front = ranked[ranked["pareto_rank"] == 1].sort_values(x)
    rest = ranked[ranked["pareto_rank"] > 1]
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ax.scatter(rest[x], rest[y], s=14, c="0.7", label=f"dominated ({len(rest)})", zorder=1)
    ax.plot(front[x], front[y], "-", c="tab:red", lw=1, zorder=2, drawstyle="steps-post")
    ax.scatter(front[x], front[y], s=36, c="tab:red", edgecolor="k", lw=0.5,
               label=f"Pareto front ({len(front)})", zorder=3)
    names = front[label] if label else front.index
    seen: set = set()
    for xi, yi, nm in zip(front[x], front[y], names):
        if (xi, yi) in seen:  # duplicates share one label
            continue
        seen.add((xi, yi))
        ax.annotate(str(nm), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)

    def _wide(col) -> bool:
        v = pd.to_numeric(ranked[col], errors="coerce").to_numpy(dtype=float)
        return bool(len(v)) and (v > 0).all() and v.max() / v.min() > 100

    if o.logx if o.logx is not None else _wide(x):
        ax.set_xscale("log")
    if o.logy if o.logy is not None else _wide(y):
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    objs = [f"max {c}" for c in maximize] + [f"min {c}" for c in minimize]
    ax.set_title(o.title or f"Pareto front ({', '.join(objs)})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(path, bbox_inches="tight")
        if own:
            plt.close(ax.figure)
    return ax
