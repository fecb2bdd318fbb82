"""A user's QONNX file (Brevitas ``export_qonnx``) as a chain of integer layers, and its exact
integer execution — the front end of the whole-network accelerator (issue 16).

:func:`read_qonnx` normalizes the graph with ``qonnx``'s own transformations (shape inference,
constant folding, unique names) and reads it as: an input ``Quant``, then per layer a ``Gemm`` /
``MatMul`` (+ ``Add`` bias) with ``Quant``-ed weights, an optional ``Relu`` and an optional output
``Quant`` (absent after the last layer: float logits). Integer weights (codes), their scales (per
tensor or per output channel), the bias and every activation format come out as
:class:`QLayer` s. Any other node stops it with :class:`QonnxError` naming the node and its op.

:func:`execute_int` runs that chain in exact integer arithmetic: the input quantized as QONNX
does (round half to even, clamp), integer dot products, and each requantization by
:func:`quant.reference.requantize` with the scale ratio as a fixed-point multiplier (exact
when the ratio is a power of two, as with Brevitas' ``…FixedPoint`` quantizers). The bias is
folded into the accumulator, rounded to its units ``s_in · s_w``.

Supported now: fully connected layers (Gemm / MatMul), ReLU, Flatten / Reshape of the input,
integer ``Quant`` (2–8 bits, zero point 0). Not yet: convolutions, residual adds, pooling,
``FloatQuant`` (minifloat) nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .formats import FormatError, IntFormat, parse_format
from .reference import fixed_point_multiplier, requantize

__all__ = ["QonnxError", "QuantSpec", "QLayer", "QGraph", "read_qonnx", "execute_int", "MULT_BITS"]

#: bits of the fixed-point multiplier of a scale ratio that is not a power of two
MULT_BITS = 24

#: ops passed over when they only reshape the input vector
_RESHAPES = {"Flatten", "Reshape"}


class QonnxError(ValueError):
    """A file or graph this front end cannot take (the message names the node and what to do)."""


@dataclass(frozen=True)
class QuantSpec:
    """An integer quantizer: ``value = scale · (code - zero_point)`` (``zero_point`` 0 here)."""

    fmt: str
    scale: np.ndarray = field(compare=False)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """QONNX ``Quant`` of ``x``: ``clamp(round_half_even(x / scale))`` as int64."""
        f = parse_format(self.fmt)
        return np.clip(np.round(np.asarray(x, dtype=np.float64) / self.scale), f.min_int, f.max_int).astype(np.int64)


@dataclass
class QLayer:
    """One fully connected layer: ``y = x · Wᵀ + b`` on quantized ``x`` and ``W``.

    Attributes
    ----------
    name : the Gemm / MatMul node's name.
    weight : int64 codes, (out, in).
    weight_quant : the weights' format and scale (scalar or per output channel).
    bias : float bias (out,) or None.
    relu : a ReLU follows.
    out_quant : the quantizer of the output (None: the network's float output).
    """

    name: str
    weight: np.ndarray
    weight_quant: QuantSpec
    bias: np.ndarray | None
    relu: bool
    out_quant: QuantSpec | None


@dataclass
class QGraph:
    """The chain: input name and shape, the input quantizer, the layers."""

    input_name: str
    input_shape: tuple[int, ...]
    in_quant: QuantSpec
    layers: list[QLayer]


def _quant_spec(model, node) -> QuantSpec:
    """The QuantSpec of a ``Quant`` node (constant scale, zero point and bit width)."""
    from qonnx.custom_op.registry import getCustomOp  # heavy: qonnx

    scale, zp, bits = (model.get_initializer(i) for i in node.input[1:4])
    if scale is None or zp is None or bits is None:
        raise QonnxError(f"node {node.name} (Quant): scale, zero point and bit width must be constants")
    if np.any(zp != 0):
        raise QonnxError(f"node {node.name} (Quant): zero point {zp.ravel()[:3]} — only zero points of 0 are supported")
    op = getCustomOp(node)
    if op.get_nodeattr("rounding_mode").upper() not in ("ROUND", "HALF_EVEN"):
        raise QonnxError(f"node {node.name} (Quant): rounding mode {op.get_nodeattr('rounding_mode')} — "
                         "only ROUND (half to even) is supported")
    try:
        fmt = IntFormat(int(bits), signed=bool(op.get_nodeattr("signed")), narrow=bool(op.get_nodeattr("narrow")))
    except (FormatError, TypeError) as e:
        raise QonnxError(f"node {node.name} (Quant): {e}") from None
    return QuantSpec(str(fmt), np.asarray(scale, dtype=np.float64))


def read_qonnx(path: str | Path) -> QGraph:
    """Read and normalize a QONNX file into a :class:`QGraph` (module docstring).

    Raises
    ------
    QonnxError
        Not an ONNX file, no input ``Quant``, an unsupported node (named with its op), a layer
        whose weights are not quantized.
    """
    import onnx  # heavy: onnx (the qonnx extra)
    from qonnx.core.modelwrapper import ModelWrapper  # heavy: qonnx
    from qonnx.transformation.fold_constants import FoldConstants  # heavy: qonnx
    from qonnx.transformation.general import GiveUniqueNodeNames  # heavy: qonnx
    from qonnx.transformation.infer_shapes import InferShapes  # heavy: qonnx

    path = Path(path)
    if not path.is_file():
        raise QonnxError(f"{path}: no such file; export a model with brevitas.export.export_qonnx first")
    try:
        model = ModelWrapper(onnx.load(str(path)))
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError and friends
        raise QonnxError(f"{path}: not an ONNX file ({type(e).__name__})") from None
    model = model.transform(InferShapes()).transform(FoldConstants()).transform(GiveUniqueNodeNames())
    inp = model.graph.input[0].name
    consumers = {i: n for n in model.graph.node for i in n.input}

    def next_node(tensor: str):
        return consumers.get(tensor)

    node = next_node(inp)
    if node is None or node.op_type != "Quant":
        raise QonnxError(f"{path}: the input {inp} is not quantized by a QONNX Quant node "
                         f"(found {node.op_type if node else 'nothing'}); export with brevitas export_qonnx and a "
                         "quantized input (QuantIdentity)")
    in_quant = _quant_spec(model, node)
    tensor = node.output[0]
    layers: list[QLayer] = []
    while True:
        node = next_node(tensor)
        if node is None:
            break
        if node.op_type in _RESHAPES and not layers:
            tensor = node.output[0]
            continue
        if node.op_type not in ("Gemm", "MatMul"):
            raise QonnxError(f"node {node.name} ({node.op_type}): not supported yet (supported: Quant, Gemm, MatMul, "
                             f"Add (bias), Relu, Flatten/Reshape of the input)")
        layers.append(_layer(model, node, tensor))
        tensor = node.output[0]
        nxt = next_node(tensor)
        if nxt is not None and nxt.op_type == "Add" and _constant(model, nxt.input[1]) is not None:
            layers[-1].bias = _add(layers[-1].bias, _constant(model, nxt.input[1]))
            tensor, nxt = nxt.output[0], next_node(nxt.output[0])
        if nxt is not None and nxt.op_type == "Relu":
            layers[-1].relu = True
            tensor, nxt = nxt.output[0], next_node(nxt.output[0])
        if nxt is not None and nxt.op_type == "Quant":
            layers[-1].out_quant = _quant_spec(model, nxt)
            tensor = nxt.output[0]
        elif nxt is not None and nxt.op_type not in ("Gemm", "MatMul"):
            raise QonnxError(f"node {nxt.name} ({nxt.op_type}): not supported yet after layer {layers[-1].name}")
        elif nxt is not None:
            raise QonnxError(f"node {nxt.name} ({nxt.op_type}): its input is not quantized; add a quantizer "
                             f"(QuantIdentity / QuantReLU) after layer {layers[-1].name}")
    if not layers:
        raise QonnxError(f"{path}: no Gemm / MatMul layer after the input quantizer")
    shape = tuple(int(d) for d in model.get_tensor_shape(inp))
    return QGraph(inp, shape, in_quant, layers)


def _constant(model, tensor: str) -> np.ndarray | None:
    """The value of a constant tensor: an initializer, or a ``Quant`` of one (a Brevitas bias,
    e.g. ``Int32Bias``: ``scale · clamp(round(b / scale))`` at its bit width); else None."""
    value = model.get_initializer(tensor)
    if value is not None:
        return np.asarray(value, dtype=np.float64)
    node = next((n for n in model.graph.node if tensor in n.output), None)
    if node is None or node.op_type != "Quant" or model.get_initializer(node.input[0]) is None:
        return None
    b, scale, bits = (np.asarray(model.get_initializer(i), dtype=np.float64) for i in (node.input[0], *node.input[1:2],
                                                                                       node.input[3]))
    lim = 2.0 ** (int(bits) - 1)
    return scale * np.clip(np.round(b / scale), -lim, lim - 1)


def _add(bias: np.ndarray | None, more: np.ndarray) -> np.ndarray:
    more = np.asarray(more, dtype=np.float64).ravel()
    return more if bias is None else bias + more


def _layer(model, node, x_tensor: str) -> QLayer:
    """A Gemm / MatMul node with a Quant-ed constant weight as a QLayer (int codes, out × in)."""
    w_name = next(i for i in node.input[:2] if i != x_tensor)
    wq = next((n for n in model.graph.node if w_name in n.output), None)
    if wq is None or wq.op_type != "Quant" or model.get_initializer(wq.input[0]) is None:
        raise QonnxError(f"node {node.name} ({node.op_type}): its weights are not quantized by a Quant node on a "
                         "constant; use a Brevitas QuantLinear")
    spec = _quant_spec(model, wq)
    w = np.asarray(model.get_initializer(wq.input[0]), dtype=np.float64)
    attrs = {a.name: a.i for a in node.attribute}
    if node.op_type == "MatMul" or not attrs.get("transB", 0):
        w = w.T  # (in, out) -> (out, in)
    if attrs.get("transA", 0):
        raise QonnxError(f"node {node.name} (Gemm): transA=1 is not supported")
    scale = spec.scale.reshape(-1)
    if scale.size not in (1, w.shape[0]):
        raise QonnxError(f"node {node.name}: weight scale of shape {spec.scale.shape} is neither per tensor nor per "
                         "output channel")
    spec = QuantSpec(spec.fmt, scale if scale.size > 1 else scale[0])
    w_scale = spec.scale if np.ndim(spec.scale) == 0 else spec.scale[:, None]
    codes = QuantSpec(spec.fmt, w_scale).codes(w)
    bias = _constant(model, node.input[2]) if node.op_type == "Gemm" and len(node.input) > 2 else None
    return QLayer(node.name, codes, spec, None if bias is None else np.asarray(bias, np.float64).ravel(), False, None)


def execute_int(graph: QGraph, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact integer execution of ``graph`` on float inputs ``x`` (batch first).

    Returns
    -------
    out : float64, the last layer's real output (``acc · s_in · s_w`` plus bias).
    codes : int64 codes of every quantized tensor, the input's first.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    codes = [graph.in_quant.codes(x)]
    q, s_in = codes[0], np.float64(graph.in_quant.scale)
    out = None
    for layer in graph.layers:
        acc = q.astype(object) @ layer.weight.T.astype(object)  # exact: Python ints
        unit = s_in * np.asarray(layer.weight_quant.scale, dtype=np.float64)  # real value of one acc step
        if layer.bias is not None:
            acc = acc + np.round(layer.bias / unit).astype(np.int64).astype(object)
        if layer.out_quant is None:
            out = acc.astype(np.float64) * unit
            if layer.relu:
                out = np.maximum(out, 0.0)
            break
        ratio = np.broadcast_to(unit / np.float64(layer.out_quant.scale), (layer.weight.shape[0],))
        q = np.stack([requantize(acc[:, c], *fixed_point_multiplier(float(r), MULT_BITS), layer.out_quant.fmt,
                                 relu=layer.relu) for c, r in enumerate(ratio)], axis=1)
        codes.append(q)
        s_in = np.float64(layer.out_quant.scale)
    if out is None:
        out = q.astype(np.float64) * s_in
    return out, codes
