"""Is a trace worth learning from? Statistics of a MAP workload and the gate on degenerate ones.

A trace is *degenerate* when nothing in a model's input can beat an input-blind predictor: the
LLC stream is mostly the sequential neighbour stream (block delta +1), the per-bit frequency
predictor already scores high, or knowing the load site (IP) adds nothing to it. Scale-16 RMAT
graphs are such traces: their vertex arrays fit in the 512 KB L2, so the irregular accesses never
reach the LLC. ``distill``, ``sweep`` (MAP students) and ``explore`` refuse them unless told
``--allow-degenerate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import metrics

#: the gate: a trace is degenerate when any of these holds
MAX_PLUS1_SHARE = 0.3
MAX_FREQ_F1 = 0.5
MIN_IP_GAIN = 0.05

FIX = ("use a larger graph (--scale 18, the default) or smaller caches (--l1-kb/--l2-kb), or pass "
       "--allow-degenerate to go on with a workload whose accuracy axis is noise")


class DegenerateTraceError(ValueError):
    """The workload's accuracy axis would be noise (see :data:`FIX`)."""


@dataclass(frozen=True)
class TraceStats:
    """Statistics of the rows of a split MAP workload (:func:`models.map_data.make_splits`).

    Attributes
    ----------
    rows : rows per split (train, val, test).
    plus1_share : share of rows whose access is the block right after the previous access (Δ = +1).
    density_train, density_test : label density (fraction of set delta bits) per split.
    freq_f1 : test micro-F1 of the input-blind per-bit frequency predictor.
    ip_f1 : test micro-F1 of the same predictor conditioned on the current load's IP.
    """

    rows: dict
    plus1_share: float
    density_train: float
    density_test: float
    freq_f1: float
    ip_f1: float

    def problems(self) -> list[str]:
        """Why the trace is degenerate (empty: it is not)."""
        out = []
        if self.plus1_share >= MAX_PLUS1_SHARE:
            out.append(f"+1-delta share {self.plus1_share:.2f} >= {MAX_PLUS1_SHARE}")
        if self.freq_f1 > MAX_FREQ_F1:
            out.append(f"frequency-predictor F1 {self.freq_f1:.3f} > {MAX_FREQ_F1}")
        if self.ip_f1 < self.freq_f1 + MIN_IP_GAIN:
            out.append(f"IP baseline F1 {self.ip_f1:.3f} not >= frequency {self.freq_f1:.3f} + {MIN_IP_GAIN}")
        return out

    @property
    def degenerate(self) -> bool:
        return bool(self.problems())

    def verdict(self) -> str:
        """One line: ``ok`` or ``degenerate (reasons)``."""
        p = self.problems()
        return "degenerate (" + "; ".join(p) + ")" if p else "ok: the input carries information"

    def to_dict(self) -> dict:
        return {**asdict(self), "degenerate": self.degenerate, "verdict": self.verdict()}

    def table(self) -> str:
        """Human-readable lines for ``paretofab traces --stats``."""
        r = self.rows
        return "\n".join([
            f"rows (train / val / test)       {r['train']} / {r['val']} / {r['test']}",
            f"+1-delta share                  {self.plus1_share:.3f}   (degenerate >= {MAX_PLUS1_SHARE})",
            f"label density train / test      {self.density_train:.3f} / {self.density_test:.3f}",
            f"frequency-predictor F1          {self.freq_f1:.3f}   (degenerate > {MAX_FREQ_F1})",
            f"IP-conditioned baseline F1      {self.ip_f1:.3f}   (needs >= frequency + {MIN_IP_GAIN})",
            f"verdict                         {self.verdict()}",
        ])


def trace_stats(splits: dict[str, np.ndarray]) -> TraceStats:
    """:class:`TraceStats` of ``splits`` (baselines fitted on train, thresholds on val, scored on test)."""
    blocks = np.concatenate([splits[f"block_{s}"] for s in ("train", "val", "test")])
    freq = metrics.frequency_baseline(splits["y_train"], splits["y_val"], splits["y_test"])["f1"]
    ip = metrics.conditional_frequency_baseline(
        splits["ip_train"][:, -1], splits["y_train"], splits["ip_val"][:, -1], splits["y_val"],
        splits["ip_test"][:, -1], splits["y_test"])["f1"]
    return TraceStats(
        rows={s: int(len(splits[f"y_{s}"])) for s in ("train", "val", "test")},
        plus1_share=float(np.mean(blocks[:, -1] - blocks[:, -2] == 1)),
        density_train=metrics.label_density(splits["y_train"]),
        density_test=metrics.label_density(splits["y_test"]),
        freq_f1=float(freq), ip_f1=float(ip))


def check_workload(stats: TraceStats, allow_degenerate: bool = False) -> None:
    """Raise :class:`DegenerateTraceError` (one line naming the fix) on a degenerate trace."""
    if stats.degenerate and not allow_degenerate:
        raise DegenerateTraceError(f"degenerate trace: {'; '.join(stats.problems())}: {FIX}")
