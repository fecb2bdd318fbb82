"""Quantized Brevitas layers -> integer codes + scales, in the form the hw engines consume.

A quantized Linear / Conv layer's weights are ``decode(w_codes, wfmt) × w_scale`` (one scale per
output channel or per tensor), its input activations ``decode(a_codes, afmt) × a_scale``. The
dense engine (``hw.dot``) computes exact integer dot products of codes in units of
``2^output_exponent``; :meth:`ExportedLayer.dequantize` turns them back into the layer's float
output (scales and float bias applied after the exact accumulation). The engine workloads of an
exported layer (:func:`paretofab.mapping.dot_workload`, ``sparse_workload``) are built above
both packages, in ``paretofab.mapping``: quant knows nothing of hw.

Codes are derived from Brevitas' own ``quant_weight()`` values and checked to reproduce them
bit for bit (float32), so an export never silently differs from what Brevitas computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import brevitas.nn as qnn
from brevitas.quant_tensor import QuantTensor

from .brevitas_map import format_of_quantizer
from .formats import Format, IntFormat, MinifloatFormat, parse_format
from .reference import decode, encode

__all__ = ["ExportError", "ExportedLayer", "ExportedActivation", "export_layer", "export_activation",
           "capture_inputs"]


class ExportError(ValueError):
    """A layer that cannot be exported (not quantized, codes that do not reproduce Brevitas)."""


@dataclass(frozen=True)
class ExportedActivation:
    """Activation codes (uint8, the tensor's shape), their format and scale (broadcastable)."""

    codes: np.ndarray
    fmt: Format
    scale: np.ndarray

    def values(self) -> np.ndarray:
        """float32 values as Brevitas holds them: ``fl32(decode(codes) × scale)``."""
        return (decode(self.codes, self.fmt) * self.scale.astype(np.float64)).astype(np.float32)


@dataclass(frozen=True)
class ExportedLayer:
    """One quantized Linear / Conv layer.

    Attributes
    ----------
    kind : "linear", "conv1d" or "conv2d"
    wfmt : weight format
    w_codes : uint8 codes, the weight's shape ``(out, in[, kernel…])``
    w_scale : float32 scale per output channel, shape ``(out,)`` (per-tensor scales repeated)
    bias : float32 ``(out,)`` or None (applied after the exact accumulation)
    afmt, a_scale : input activation format and per-tensor scale, when known
    """

    name: str
    kind: str
    wfmt: Format
    w_codes: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray | None
    afmt: Format | None = None
    a_scale: float | None = None

    def weight_values(self) -> np.ndarray:
        """float32 weights, ``fl32(decode(w_codes) × w_scale)`` (equal to Brevitas' quant_weight)."""
        s = self.w_scale.astype(np.float64).reshape((-1,) + (1,) * (self.w_codes.ndim - 1))
        return (decode(self.w_codes, self.wfmt) * s).astype(np.float32)

    def dequantize(self, acc: np.ndarray, exponent: int, out_channel: np.ndarray) -> np.ndarray:
        """Float outputs from exact accumulators ``acc`` (units of ``2^exponent``) of output
        channels ``out_channel``: ``acc · 2^exponent · w_scale · a_scale + bias`` (float64)."""
        if self.a_scale is None:
            raise ExportError(f"{self.name}: no activation scale recorded; export with the layer's input")
        v = np.ldexp(np.asarray(acc, dtype=np.float64), exponent)
        v = v * self.w_scale.astype(np.float64)[out_channel] * float(self.a_scale)
        if self.bias is not None:
            v = v + self.bias.astype(np.float64)[out_channel]
        return v

    def save(self, path: str | Path) -> None:
        """``.npz`` with codes, scales, bias and format names."""
        np.savez(path, w_codes=self.w_codes, w_scale=self.w_scale,
                 bias=self.bias if self.bias is not None else np.zeros(0, np.float32),
                 meta=np.array([self.name, self.kind, str(self.wfmt), str(self.afmt or ""),
                                repr(self.a_scale if self.a_scale is not None else "")]))


def _kind(layer: nn.Module) -> str:
    for cls, k in ((qnn.QuantLinear, "linear"), (qnn.QuantConv1d, "conv1d"), (qnn.QuantConv2d, "conv2d")):
        if isinstance(layer, cls):
            return k
    raise ExportError(f"cannot export {type(layer).__name__}: only QuantLinear / QuantConv1d / QuantConv2d")


def _codes_of(value: torch.Tensor, scale: torch.Tensor, fmt: Format, what: str) -> np.ndarray:
    """Codes whose ``fl32(decode × scale)`` is exactly ``value`` (raises otherwise)."""
    v = value.detach().cpu().numpy()
    s = np.broadcast_to(scale.detach().cpu().numpy(), v.shape).astype(np.float64)
    # value = fl32(g·s): value/s in float64 is g within 2^-24 relative, far inside the grid's
    # spacing (≤ 8-bit formats), so nearest-value encoding recovers g exactly
    codes = encode(v.astype(np.float64) / s, fmt)
    back = (decode(codes, fmt) * s).astype(np.float32)
    bad = back != v
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise ExportError(f"{what}: value {v[i]!r} is not a {fmt} value times its scale {s[i]!r} "
                          f"(is the quantizer one of quant.brevitas_map's?)")
    return codes


def format_of_tensor(qt: QuantTensor) -> Format:
    """Format of a Brevitas QuantTensor (integer or minifloat)."""
    if hasattr(qt, "exponent_bit_width"):
        e, m, bias = int(qt.exponent_bit_width), int(qt.mantissa_bit_width), int(qt.exponent_bias)
        specials = "ieee" if qt.inf_values else ("ocp" if qt.nan_values else "none")
        return MinifloatFormat(e, m, bias=bias, specials=specials, saturate=bool(qt.saturating))
    return IntFormat(int(qt.bit_width), signed=bool(qt.signed))


def export_activation(qt: QuantTensor, fmt: Format | str | None = None) -> ExportedActivation:
    """Codes of a quantized activation tensor (per-tensor or per-channel scale)."""
    if not isinstance(qt, QuantTensor):
        raise ExportError("export_activation needs a QuantTensor (the output of a Brevitas act quantizer)")
    fmt = parse_format(fmt) if fmt is not None else format_of_tensor(qt)
    if not torch.all(qt.zero_point == 0):
        raise ExportError("asymmetric activations (zero point != 0) are not supported by the hw engines")
    codes = _codes_of(qt.value, qt.scale, fmt, "activation")
    return ExportedActivation(codes, fmt, qt.scale.detach().cpu().numpy().astype(np.float32))


def export_layer(layer: nn.Module, inp: QuantTensor | None = None, name: str = "") -> ExportedLayer:
    """Integer weight codes and scales of a quantized layer (plus its input format / scale when
    ``inp``, the QuantTensor the layer receives, is given; see :func:`capture_inputs`)."""
    kind = _kind(layer)
    wfmt = format_of_quantizer(layer.weight_quant)
    qw = layer.quant_weight()
    if not torch.all(qw.zero_point == 0):
        raise ExportError(f"{name or kind}: asymmetric weights are not supported by the hw engines")
    codes = _codes_of(qw.value, qw.scale, wfmt, f"{name or kind} weight")
    out = qw.value.shape[0]
    scale = np.broadcast_to(qw.scale.detach().cpu().numpy().reshape(-1), (out,)).astype(np.float32).copy() \
        if qw.scale.numel() in (1, out) else None
    if scale is None:
        raise ExportError(f"{name or kind}: weight scale of shape {tuple(qw.scale.shape)} is neither per tensor nor per output channel")
    bias = None if layer.bias is None else layer.bias.detach().cpu().numpy().astype(np.float32)
    afmt = a_scale = None
    if inp is not None:
        if inp.scale.numel() != 1:
            raise ExportError(f"{name or kind}: the dense engine takes one activation scale per tensor")
        afmt, a_scale = format_of_tensor(inp), float(inp.scale)
    return ExportedLayer(name, kind, wfmt, codes, scale, bias, afmt, a_scale)


def capture_inputs(model: nn.Module, x: torch.Tensor, layers: dict[str, nn.Module]) -> dict[str, QuantTensor]:
    """Run ``model(x)`` and return the quantized input each named layer receives (the upstream
    QuantTensor, or the layer's own ``input_quant`` applied to a float input)."""
    seen: dict[str, QuantTensor] = {}
    hooks = []
    for n, layer in layers.items():
        def pre(mod, args, n=n):
            a = args[0]
            if not isinstance(a, QuantTensor) and getattr(mod, "input_quant", None) is not None \
                    and mod.input_quant.is_quant_enabled:
                a = mod.input_quant(a)
            if isinstance(a, QuantTensor):
                seen[n] = a
        hooks.append(layer.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    missing = [n for n in layers if n not in seen]
    if missing:
        raise ExportError(f"layers {missing} received no quantized input; quantize activations first")
    return seen
