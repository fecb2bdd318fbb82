"""The mapping from a quantized / pruned layer to an engine: which engine configuration runs a
pruning pattern, and the engine workload of an exported layer.

This is the one place that knows both sides: ``models`` (pruning patterns) and ``quant``
(exported integer / minifloat codes and scales) know nothing of hardware, and ``hw`` knows
nothing of models; ``paretofab`` sits above all of them (see ``../shared/DESIGN.md``).

A Linear layer on a batch maps to one dot product per (sample, output): ``w_codes[o]`` against
``a_codes[n]``, vectors ordered sample-major, so output ``i`` of the engine belongs to output
channel ``out_channel[i]`` (what :meth:`quant.export.ExportedLayer.dequantize` takes).
"""

from __future__ import annotations

import numpy as np

from hw import dot, sparse
from models.prune import Pattern, PruneError, check_pattern, parse_pattern
from quant.export import ExportedActivation, ExportedLayer, ExportError
from quant.reference import decode

__all__ = ["engine_config", "sparse_workload", "dot_workload"]


def engine_config(pattern: "str | Pattern", wfmt, afmt, k_max: int, lanes: int = 16,
                  pipeline: int = 1) -> sparse.SparseConfig:
    """The ``hw.sparse.SparseConfig`` that runs ``pattern``: at most ``lanes`` multipliers, a
    multiple of ``n`` whose beat span ``lanes / n · m`` divides ``block`` (so blocks are
    skipped exactly); ``k_max`` rounded up to the block / span. Dense patterns run as ``m:m``
    (``m`` = 2), which the sparse engine accepts. Raises ``PruneError`` when no such engine
    exists."""
    p = parse_pattern(pattern)
    n, m = (p.n, p.m) if p.n is not None else (2, 2)
    block = p.block if p.has_blocks else None  # keep = 1 skips nothing: no block constraint
    cands = [la for la in range(n, lanes + 1, n) if block is None or block % (la // n * m) == 0]
    if not cands:
        raise PruneError(f"no sparse engine of <= {lanes} lanes runs {p}: block {block} must be a "
                         f"multiple of the beat span lanes/N*M >= {m}")
    la = max(cands)
    unit = p.block if p.has_blocks else la // n * m
    return sparse.SparseConfig(la, n, m, wfmt, afmt, -(-k_max // unit) * unit, block, pipeline)


def _batch(w_codes: np.ndarray, a_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w, a, out_channel)``: one row per (sample, output), sample-major."""
    a = a_codes.reshape(a_codes.shape[0], -1)
    o = w_codes.shape[0]
    w = w_codes.reshape(o, -1)
    return np.tile(w, (len(a), 1)), np.repeat(a, o, axis=0), np.tile(np.arange(o), len(a))


def sparse_workload(w_codes: np.ndarray, wfmt, a_codes: np.ndarray,
                    pattern: "str | Pattern") -> tuple[sparse.Workload, np.ndarray]:
    """``hw.sparse.Workload`` of a Linear layer on a batch (one vector per (sample, output))
    from its exported integer/minifloat codes; the codes' zeros (decoded ±0) are checked to obey
    ``pattern`` first (``PruneError`` otherwise). Returns ``(workload, out_channel)``."""
    check_pattern(decode(w_codes, wfmt), pattern, "exported weight codes")
    w, a, out_channel = _batch(w_codes, a_codes)
    return sparse.Workload(w, a), out_channel


def dot_workload(layer: ExportedLayer, act: ExportedActivation) -> tuple[dot.Workload, np.ndarray]:
    """A ``hw.dot.Workload`` computing an exported Linear layer on a batch of exported
    activations: one vector per (sample, output), ``w_codes[o]`` against ``a_codes[n]``.
    Returns ``(workload, out_channel)``; ``ExportError`` for other layers or mismatched widths."""
    if layer.kind != "linear":
        raise ExportError("dot_workload maps Linear layers (lower convolutions with im2col first)")
    a = act.codes.reshape(act.codes.shape[0], -1)
    k = a.shape[1]
    if layer.w_codes.shape[1] != k:
        raise ExportError(f"activations have {k} features, the layer expects {layer.w_codes.shape[1]}")
    w, aa, out_channel = _batch(layer.w_codes, a)
    return dot.Workload(w, aa), out_channel
