"""The mapping from a quantized / pruned layer to an engine: which engine configuration runs a
pruning pattern, the workload of every layer of a student (one inference), the fraction of weight
blocks a block-skipping engine streams, the attention kernels of a SWA student, the engine
workload of an exported layer, and a quantized student's layers lowered to the weight and
activation codes its engine streams (:func:`layer_codes`, convolutions by im2col).

This is the one place that knows both sides: ``models`` (pruning patterns) and ``quant``
(exported integer / minifloat codes and scales) know nothing of hardware, and ``hw`` knows
nothing of models; ``paretofab`` sits above all of them (see ``../shared/DESIGN.md``).

A Linear layer on a batch maps to one dot product per (sample, output): ``w_codes[o]`` against
``a_codes[n]``, vectors ordered sample-major, so output ``i`` of the engine belongs to output
channel ``out_channel[i]`` (what :meth:`quant.export.ExportedLayer.dequantize` takes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hw import dot, sparse
from hw.swa import SWAConfig
from models.prune import Pattern, PruneError, check_pattern, live_blocks, parse_pattern, prunable_layers
from models.zoo import SlidingWindowAttention
from quant.export import (ExportedActivation, ExportedLayer, ExportError, capture_inputs, export_activation,
                          export_layer)
from quant.ptq import quant_layers
from quant.reference import decode

__all__ = ["EngineConfig", "LayerWorkload", "AttentionKernel", "LayerCodes", "engine_config", "engine_for",
           "layer_workloads", "block_density", "attention_kernels", "sparse_workload", "dot_workload", "layer_codes"]

#: the engine configurations a student's layers run on
EngineConfig = dot.DotConfig | sparse.SparseConfig


@dataclass(frozen=True)
class LayerWorkload:
    """The dot products of one layer for one inference.

    Attributes
    ----------
    layer : module name (``<name>.l<i>`` for layer ``i`` of an LSTM).
    k : reduction length of every dot product.
    vectors : dot products (output channels × output positions; LSTM: 4 · hidden gate rows per
        time step and direction).
    prunable : False for LSTM weights (``models.prune`` leaves them dense).
    """

    layer: str
    k: int
    vectors: int
    prunable: bool = True


@dataclass(frozen=True)
class AttentionKernel:
    """One sliding-window attention layer of a student on the ``hw.swa`` kernel: ``heads`` runs
    of ``config`` over ``tokens`` tokens per inference."""

    config: SWAConfig
    heads: int
    tokens: int


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
    if not cands and block is None:
        raise PruneError(f"no sparse engine of <= {lanes} lanes runs {p}: it takes N={n} or more lanes")
    if not cands:
        raise PruneError(f"no sparse engine of <= {lanes} lanes runs {p}: block {block} must be a "
                         f"multiple of the beat span lanes/N*M >= {m}")
    la = max(cands)
    unit = p.block if p.has_blocks else la // n * m
    return sparse.SparseConfig(la, n, m, wfmt, afmt, -(-k_max // unit) * unit, block, pipeline)


def engine_for(pattern: Pattern, fmt: str, k_max: int, lanes: int) -> EngineConfig:
    """The engine that runs a student pruned to ``pattern`` with ``fmt`` × ``fmt`` codes: the
    dense ``DotConfig(lanes)`` for the dense pattern, else :func:`engine_config`."""
    if pattern.is_dense:
        return dot.DotConfig(lanes, fmt, fmt, k_max)
    return engine_config(pattern, fmt, fmt, k_max, lanes=lanes)


def layer_workloads(model: torch.nn.Module, sample: torch.Tensor) -> list[LayerWorkload]:
    """The :class:`LayerWorkload` of every Linear / Conv / LSTM layer for one inference of
    ``sample[:1]``: K = reduction length, vectors = dot products (output channels × output
    positions). An LSTM layer is one dot product of K = inputs + hidden per gate row
    (4 · hidden), per time step and direction, not prunable."""
    rows: list[LayerWorkload] = []
    names: dict[torch.nn.Module, str] = {}

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.LSTM):
            x = inp[0]
            steps = x.shape[1 if mod.batch_first else 0] if x.dim() == 3 else x.shape[0]
            dirs = 2 if mod.bidirectional else 1
            for layer in range(mod.num_layers):
                k = (mod.input_size if layer == 0 else mod.hidden_size * dirs) + mod.hidden_size
                rows.append(LayerWorkload(f"{names[mod]}.l{layer}", k, 4 * mod.hidden_size * int(steps) * dirs,
                                          prunable=False))
            return
        rows.append(LayerWorkload(names[mod], int(np.prod(mod.weight.shape[1:])), int(out[0].numel())))

    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.LSTM)):
            names[mod] = name
            handles.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(sample[:1])
    finally:
        for h in handles:
            h.remove()
    return rows


def block_density(model: torch.nn.Module, pattern: Pattern) -> dict[str, float]:
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


def attention_kernels(model: torch.nn.Module, sample: torch.Tensor, lanes: int) -> list[AttentionKernel]:
    """The attention of a SWA student on the ``hw.swa`` kernel, int8 Q/K/V (the quantized student
    keeps its attention matmuls in float; int8 is the kernel's calibrated precision): one kernel
    per attention layer with the most lanes (at most ``lanes``) dividing the head dimension, run
    once per head over the ``sample``'s tokens. Empty for students without attention."""
    tokens = int(sample.shape[1])
    out = []
    for att in (m for m in model.modules() if isinstance(m, SlidingWindowAttention)):
        la = max(d for d in range(1, min(lanes, att.dh) + 1) if att.dh % d == 0)
        out.append(AttentionKernel(SWAConfig(att.dh, att.window, la, "int8", "int8"), att.heads, tokens))
    return out


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


@dataclass(frozen=True)
class LayerCodes:
    """One quantized layer lowered to dot products, as its engine streams them.

    Attributes
    ----------
    layer : module name (as in :func:`layer_workloads`).
    w_codes : (outputs, K) uint8 weight codes (a convolution's kernel flattened in (C, k…) order).
    a_codes : (rows, K) uint8 activation codes, one row per input vector (samples × output
        positions, sample-major); the layer is ``rows × outputs`` dot products.
    """

    layer: str
    w_codes: np.ndarray
    a_codes: np.ndarray


def _im2col(codes: np.ndarray, layer: torch.nn.Module) -> np.ndarray:
    """(N, C, H, W) or (N, C, L) activation codes → (N · positions, C · kernel) patches of
    ``layer``'s convolution (its kernel, stride, padding, dilation), zero-padded with code 0 (zero
    in every format)."""
    x = torch.as_tensor(codes.astype(np.float32))
    if x.dim() == 3:  # Conv1d as a 1 × L image
        x = x.unsqueeze(2)
        kernel, stride, pad, dil = ((1, *layer.kernel_size), (1, *layer.stride), (0, *layer.padding),
                                    (1, *layer.dilation))
    else:
        kernel, stride, pad, dil = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    cols = torch.nn.functional.unfold(x, kernel, dilation=dil, padding=pad, stride=stride)  # N, C·k, positions
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).round().numpy().astype(np.uint8)


def layer_codes(qmodel: torch.nn.Module, x: torch.Tensor) -> tuple[list[LayerCodes], list[str]]:
    """The weight and input-activation codes of every quantized Linear / Conv layer of
    ``qmodel`` (``quant.ptq.quantize_model``'s output) on the inputs ``x``, lowered to dot
    products (:class:`LayerCodes`: Linear over its last dimension, convolutions by im2col).

    Returns
    -------
    ``(lowered, skipped)``: the layers in module order, and the names of those that no engine
    here runs as dot products (grouped or string-padded convolutions), left out.
    """
    layers = dict(quant_layers(qmodel))
    ins = capture_inputs(qmodel, x, layers)
    out, skipped = [], []
    for name, layer in layers.items():
        el, ea = export_layer(layer, ins[name], name), export_activation(ins[name])
        w = el.w_codes.reshape(el.w_codes.shape[0], -1)
        if el.kind == "linear":
            a = ea.codes.reshape(-1, w.shape[1])
        elif getattr(layer, "groups", 1) != 1 or isinstance(layer.padding, str):
            skipped.append(name)
            continue
        else:
            a = _im2col(ea.codes, layer)
        out.append(LayerCodes(name, w, a))
    return out, skipped
