"""The MAP workload a student learns: which trace (generated or read) and how it is split.

One frozen spec, shared by ``paretofab traces``, ``distill``, ``explore`` and the benches, so that
every stage that depends on the workload is keyed by all of its options.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from . import map_data, traces
from .trace_stats import TraceStats, check_workload, trace_stats

#: rows kept (evenly spaced over the trace) for training and evaluation: the CPU budget
DEFAULT_ROWS = 30_000
#: raw loads logged after the warm-up: 0.4–1M LLC accesses at scale 18, ~10 s to generate
DEFAULT_LOADS = 4_000_000


@dataclass(frozen=True)
class TraceSpec:
    """A generated GAP trace (``app`` on an RMAT graph of ``2**scale`` vertices) or a trace file
    (``trace``), preprocessed into MAP splits.

    Attributes
    ----------
    max_loads : raw loads logged after ``skip_loads`` warm-up loads (None: the app's default).
    l1_kb, l2_kb : L1D / L2 sizes (KB) of the filter in front of the LLC.
    max_rows : evenly spaced rows kept; ``seed`` seeds the graph, the page mapping and the
        validation draw.
    """

    app: str = "pr"
    scale: int = 18
    seed: int = 0
    max_loads: int = DEFAULT_LOADS
    skip_loads: int | None = None
    l1_kb: int = 48
    l2_kb: int = 512
    prefetch_degree: int = 0
    max_rows: int | None = DEFAULT_ROWS
    trace: str | None = None

    def __post_init__(self) -> None:
        for name in ("seed", "skip_loads", "prefetch_degree"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0):
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} {v!r}: use a non-negative integer (e.g. {flag} 0)")

    def to_dict(self) -> dict:
        return asdict(self)

    def load_trace(self, progress: bool = False) -> traces.Trace:
        if self.trace:
            return traces.read_trace(self.trace)
        return traces.generate(self.trace_config(), progress=progress)

    def trace_config(self) -> traces.TraceConfig:
        """The generator settings of this spec (``trace`` unset)."""
        return traces.TraceConfig(self.app, scale=self.scale, seed=self.seed, max_loads=self.max_loads,
                                  prefetch_degree=self.prefetch_degree, skip_loads=self.skip_loads,
                                  l1_kb=self.l1_kb, l2_kb=self.l2_kb)

    def splits(self, progress: bool = False, allow_degenerate: bool = False,
               ) -> tuple[dict[str, np.ndarray], dict]:
        """``(splits, info)``: the preprocessed workload and its provenance (this spec, the LLC
        access count, the trace statistics). Raises :class:`DegenerateTraceError` on a degenerate
        trace unless ``allow_degenerate``."""
        t0 = time.perf_counter()
        tr = self.load_trace(progress)
        sp = splits_of(tr, self.max_rows, self.seed)
        stats = trace_stats(sp)
        check_workload(stats, allow_degenerate)
        info = {"app": self.app, "workload": self.to_dict(), "llc_accesses": len(tr),
                "trace_stats": stats.to_dict(), "trace_seconds": time.perf_counter() - t0}
        return sp, info


def splits_of(trace: traces.Trace, max_rows: int | None = DEFAULT_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """The MAP splits of a trace (:func:`models.map_data.make_splits`, default protocol)."""
    return map_data.make_splits(trace.addr, trace.ip, max_rows=max_rows, seed=seed)


def stats_of_trace(trace: traces.Trace, max_rows: int | None = DEFAULT_ROWS, seed: int = 0) -> TraceStats:
    """:class:`TraceStats` of a trace under the default split protocol."""
    return trace_stats(splits_of(trace, max_rows, seed))
