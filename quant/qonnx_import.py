"""A user's QONNX file (Brevitas ``export_qonnx``) as a chain of integer layers, and its exact
integer execution — the front end of the whole-network accelerator (issue 16).

:func:`read_qonnx` normalizes the graph with ``qonnx``'s own transformations (shape inference,
constant folding, unique names) and reads it as: an input ``Quant``, then per layer a ``Gemm`` /
``MatMul`` / ``Conv`` (+ ``Add`` bias) with ``Quant``-ed weights, an optional ``Relu`` and an optional output
``Quant`` (absent after the last layer: float logits), with MaxPool / Flatten / Reshape between
layers. Integer weights (codes), their scales (per
tensor or per output channel), the bias and every activation format come out as
:class:`QLayer` s. Any other node stops it with :class:`QonnxError` naming the node and its op.

:func:`execute_int` runs that chain in exact integer arithmetic: the input quantized as QONNX
does (round half to even, clamp), integer dot products, and each requantization by
:func:`quant.reference.requantize` with the scale ratio as a fixed-point multiplier (exact
when the ratio is a power of two, as with Brevitas' ``…FixedPoint`` quantizers). The bias is
folded into the accumulator, rounded to its units ``s_in · s_w``.

Supported now: fully connected layers (Gemm / MatMul), 2-D convolutions (Conv: ungrouped,
undilated, any stride and zero padding), ReLU, MaxPool (unpadded) and Flatten / Reshape on
quantized tensors, integer ``Quant`` (2–8 bits, zero point 0), also of an already quantized
tensor (:class:`QRequant`). Not yet: residual adds,
``FloatQuant`` (minifloat) nodes, zero points other than 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .formats import FormatError, IntFormat, parse_format
from .reference import fixed_point_multiplier, requantize

__all__ = ["QonnxError", "QuantSpec", "QLayer", "QPool", "QFlatten", "QRequant", "QGraph", "read_qonnx", "execute_int",
           "dequantize", "MULT_BITS"]

#: bits of the fixed-point multiplier of a scale ratio that is not a power of two
MULT_BITS = 24

#: ops that only reshape a tensor into one feature vector per input
_RESHAPES = ("Flatten", "Reshape")
#: ops with quantized weights
_LAYERS = ("Gemm", "MatMul", "Conv")


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
    """One fully connected or convolution layer: ``y = x · Wᵀ + b`` (``conv2d(x, W) + b``) on
    quantized ``x`` and ``W``.

    Attributes
    ----------
    name : the Gemm / MatMul / Conv node's name.
    weight : int64 codes, (out, in) or, for a convolution, (out, in, kh, kw).
    stride, pads : a convolution's strides (h, w) and pads (top, left, bottom, right).
    in_shape, out_shape : tensor shapes without the batch dimension.
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
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def kind(self) -> str:
        return "conv" if self.weight.ndim == 4 else "linear"

    @property
    def macs(self) -> int:
        """Multiply-accumulates per inference."""
        return int(np.prod(self.out_shape)) * int(np.prod(self.weight.shape[1:]))

    def unit(self, s_in: float) -> np.ndarray:
        """Real value of one accumulator step per output channel, ``s_in · s_w``, for inputs of
        scale ``s_in``."""
        return np.float64(s_in) * np.broadcast_to(np.asarray(self.weight_quant.scale, np.float64), (len(self.weight),))

    def bias_steps(self, s_in: float) -> np.ndarray | None:
        """The bias in accumulator steps, rounded half to even (int64 per channel; None: no bias)."""
        return None if self.bias is None else np.round(self.bias / self.unit(s_in)).astype(np.int64)

    def requant_pairs(self, s_in: float) -> list[tuple[int, int]]:
        """Per channel, the fixed-point ``(multiplier, shift)`` of :data:`MULT_BITS` bits of the
        ratio of an accumulator step to an output step."""
        return [fixed_point_multiplier(float(r), MULT_BITS) for r in self.unit(s_in) / np.float64(self.out_quant.scale)]


@dataclass
class QPool:
    """Max pooling of quantized codes (a positive scale keeps their order): ``kernel``, ``stride``
    (h, w), no padding."""

    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()


@dataclass
class QFlatten:
    """Flatten / Reshape to one feature vector per input (C, H, W order, as ONNX)."""

    name: str
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()


@dataclass
class QRequant:
    """A ``Quant`` of an already quantized tensor (Brevitas re-quantizes a layer's input that way):
    the codes move to ``quant``'s format and scale, rounding half to even."""

    name: str
    quant: QuantSpec
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    def requant_pair(self, s_in: float) -> tuple[int, int]:
        """The fixed-point ``(multiplier, shift)`` of :data:`MULT_BITS` bits of ``s_in / scale``."""
        return fixed_point_multiplier(float(np.float64(s_in) / np.float64(self.quant.scale)), MULT_BITS)


@dataclass
class QGraph:
    """The chain: input name and shape, the input quantizer, the layers (and pools, flattens)."""

    input_name: str
    input_shape: tuple[int, ...]
    in_quant: QuantSpec
    layers: list

    @property
    def compute(self) -> list[QLayer]:
        """The layers with weights."""
        return [op for op in self.layers if isinstance(op, QLayer)]


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
    floats = [n.name for n in model.graph.node if n.op_type == "FloatQuant"]
    if floats:
        raise QonnxError(f"{path}: node {floats[0]} (FloatQuant): minifloat quantizers are not supported by accel yet; "
                         "export the model with integer formats (e.g. --wfmt int8 --afmt int8)")
    if node is None or node.op_type != "Quant":
        raise QonnxError(f"{path}: the input {inp} is not quantized by a QONNX Quant node "
                         f"(found {node.op_type if node else 'nothing'}); export with brevitas export_qonnx and a "
                         "quantized input (QuantIdentity)")
    in_quant = _quant_spec(model, node)
    tensor = node.output[0]
    layers: list = []

    def shape(t: str) -> tuple[int, ...]:
        return tuple(int(d) for d in model.get_tensor_shape(t)[1:])

    while (node := next_node(tensor)) is not None:
        if node.op_type in _RESHAPES:
            layers.append(QFlatten(node.name, shape(tensor), shape(node.output[0])))
            tensor = node.output[0]
            continue
        if node.op_type == "MaxPool":
            layers.append(_pool(node, shape(tensor), shape(node.output[0])))
            tensor = node.output[0]
            continue
        if node.op_type == "Quant":
            layers.append(QRequant(node.name, _quant_spec(model, node), shape(tensor), shape(node.output[0])))
            tensor = node.output[0]
            continue
        if node.op_type not in _LAYERS:
            raise QonnxError(f"node {node.name} ({node.op_type}): not supported yet (supported: Quant, Gemm, MatMul, "
                             f"Conv, Add (bias), Relu, MaxPool, Flatten/Reshape)")
        layer = _layer(model, node, tensor)
        layer.in_shape, layer.out_shape = shape(tensor), shape(node.output[0])
        layers.append(layer)
        tensor = node.output[0]
        nxt = next_node(tensor)
        if nxt is not None and nxt.op_type == "Add" and _constant(model, nxt.input[1]) is not None:
            layer.bias = _add(layer.bias, _constant(model, nxt.input[1]))
            tensor, nxt = nxt.output[0], next_node(nxt.output[0])
        if nxt is not None and nxt.op_type == "Relu":
            layer.relu = True
            tensor, nxt = nxt.output[0], next_node(nxt.output[0])
        if nxt is not None and nxt.op_type == "Quant":
            layer.out_quant = _quant_spec(model, nxt)
            tensor = nxt.output[0]
        elif nxt is not None and nxt.op_type in (*_LAYERS, "MaxPool", *_RESHAPES):
            raise QonnxError(f"node {nxt.name} ({nxt.op_type}): its input is not quantized; add a quantizer "
                             f"(QuantIdentity / QuantReLU) after layer {layer.name}")
        elif nxt is not None:
            raise QonnxError(f"node {nxt.name} ({nxt.op_type}): not supported yet after layer {layer.name}")
    if not any(isinstance(op, QLayer) for op in layers):
        raise QonnxError(f"{path}: no Gemm / MatMul / Conv layer after the input quantizer")
    return QGraph(inp, tuple(int(d) for d in model.get_tensor_shape(inp)), in_quant, layers)


def _ints(node, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    return next((tuple(a.ints) for a in node.attribute if a.name == name), default)


def _pool(node, in_shape, out_shape) -> QPool:
    if any(_ints(node, "pads", (0, 0, 0, 0))) or any(d != 1 for d in _ints(node, "dilations", (1, 1))) or \
            any(a.name == "ceil_mode" and a.i for a in node.attribute):
        raise QonnxError(f"node {node.name} (MaxPool): only unpadded, undilated, floor-mode pooling is supported")
    kernel = _ints(node, "kernel_shape", ())
    return QPool(node.name, kernel, _ints(node, "strides", kernel), in_shape, out_shape)


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
    """A Gemm / MatMul / Conv node with a Quant-ed constant weight as a QLayer (int codes, out
    first)."""
    w_name = next(i for i in node.input[:2] if i != x_tensor)
    wq = next((n for n in model.graph.node if w_name in n.output), None)
    if wq is None or wq.op_type != "Quant" or model.get_initializer(wq.input[0]) is None:
        raise QonnxError(f"node {node.name} ({node.op_type}): its weights are not quantized by a Quant node on a "
                         "constant; use a Brevitas QuantLinear / QuantConv2d")
    spec = _quant_spec(model, wq)
    w = np.asarray(model.get_initializer(wq.input[0]), dtype=np.float64)
    attrs = {a.name: a.i for a in node.attribute}
    stride, pads = (1, 1), (0, 0, 0, 0)
    if node.op_type == "Conv":
        if w.ndim != 4 or attrs.get("group", 1) != 1 or any(d != 1 for d in _ints(node, "dilations", (1, 1))):
            raise QonnxError(f"node {node.name} (Conv): only 2-D, ungrouped, undilated convolutions are supported")
        stride, pads = _ints(node, "strides", (1, 1)), _ints(node, "pads", (0, 0, 0, 0))
    elif node.op_type == "MatMul" or not attrs.get("transB", 0):
        w = w.T  # (in, out) -> (out, in)
    if attrs.get("transA", 0):
        raise QonnxError(f"node {node.name} (Gemm): transA=1 is not supported")
    scale = spec.scale.reshape(-1)
    if scale.size not in (1, w.shape[0]):
        raise QonnxError(f"node {node.name}: weight scale of shape {spec.scale.shape} is neither per tensor nor per "
                         "output channel")
    spec = QuantSpec(spec.fmt, scale if scale.size > 1 else scale[0])
    w_scale = spec.scale if np.ndim(spec.scale) == 0 else spec.scale.reshape(-1, *[1] * (w.ndim - 1))
    codes = QuantSpec(spec.fmt, w_scale).codes(w)
    bias = _constant(model, node.input[2]) if node.op_type in ("Gemm", "Conv") and len(node.input) > 2 else None
    return QLayer(node.name, codes, spec, None if bias is None else np.asarray(bias, np.float64).ravel(), False, None,
                  stride=tuple(stride), pads=tuple(pads))


def _conv(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, ...]) -> np.ndarray:
    """Exact integer 2-D convolution (cross-correlation, as ONNX) of object arrays: x (N, C, H, W),
    w (O, C, kh, kw) -> (N, O, H', W'); zero padding (the code of 0 with zero point 0)."""
    t, left, b, r = pads
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)))
    kh, kw = w.shape[2:]
    sh, sw = stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    cols = np.stack([x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)], axis=2)
    cols = cols.reshape(x.shape[0], x.shape[1] * kh * kw, oh * ow)  # (N, C·kh·kw, positions), C-major like w
    out = np.einsum("ok,nkp->nop", w.reshape(w.shape[0], -1).astype(object), cols.astype(object))
    return out.reshape(x.shape[0], w.shape[0], oh, ow)


def _maxpool(x: np.ndarray, pool: QPool) -> np.ndarray:
    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    wins = [x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)]
    return np.max(np.stack(wins), axis=0)


def execute_int(graph: QGraph, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact integer execution of ``graph`` on float inputs ``x`` (batch first, any shape with the
    model's input size per row).

    Returns
    -------
    out : float64, the last layer's real output (``acc · s_in · s_w`` plus bias), or the last
        quantized tensor's values (:func:`dequantize`).
    codes : int64 codes of every quantized tensor, the input's first (layer outputs in their
        own shapes, batch first).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), *graph.input_shape[1:])
    q = graph.in_quant.codes(x)
    codes, s_in = [q], np.float64(graph.in_quant.scale)
    for op in graph.layers:
        if isinstance(op, QFlatten):
            q = q.reshape(len(q), -1)
            continue
        if isinstance(op, QPool):
            q = _maxpool(q, op)
            continue
        if isinstance(op, QRequant):
            q = requantize(q, *op.requant_pair(s_in), op.quant.fmt)
            codes.append(q)
            s_in = np.float64(op.quant.scale)
            continue
        if op.kind == "conv":
            acc = _conv(q, op.weight, op.stride, op.pads)
        else:
            acc = q.reshape(len(q), -1).astype(object) @ op.weight.T.astype(object)  # exact: Python ints
        shape = (-1,) + (1,) * (acc.ndim - 2)  # per output channel along axis 1
        if op.bias is not None:
            acc = acc + op.bias_steps(s_in).astype(object).reshape(shape)
        if op.out_quant is None:
            return dequantize(graph, (np.maximum(acc, 0) if op.relu else acc).reshape(len(acc), -1)), codes
        q = np.stack([requantize(acc[:, c], m, sh, op.out_quant.fmt, relu=op.relu)
                      for c, (m, sh) in enumerate(op.requant_pairs(s_in))], axis=1)
        codes.append(q)
        s_in = np.float64(op.out_quant.scale)
    return dequantize(graph, q.reshape(len(q), -1)), codes


def dequantize(graph: QGraph, values: np.ndarray) -> np.ndarray:
    """Real outputs of the network from its last integers (frames, out_size): a raw last layer's
    accumulators (plus bias) times ``s_in · s_w`` per channel, or the last codes times their scale;
    float64, shaped ``[batch, *output shape]``."""
    s_in, unit = np.float64(graph.in_quant.scale), None
    for op in graph.layers:
        if isinstance(op, QRequant):
            s_in = np.float64(op.quant.scale)
        if not isinstance(op, QLayer):
            continue
        if op.out_quant is None:
            unit = op.unit(s_in)
            break
        s_in = np.float64(op.out_quant.scale)
    out_shape = next(op.out_shape for op in reversed(graph.layers) if op.out_shape)
    v = np.asarray(values).reshape(len(values), *out_shape)
    if unit is None:
        return v.astype(np.float64) * s_in
    return v.astype(np.float64) * unit.reshape((-1,) + (1,) * (v.ndim - 2))
