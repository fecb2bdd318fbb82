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

Supported now: fully connected layers (Gemm / MatMul), 1-D and 2-D convolutions (Conv:
ungrouped, undilated, any stride and zero padding; a 1-D one as a 2-D one of height 1), ReLU,
MaxPool (unpadded, 1-D or 2-D) and Flatten / Reshape on
quantized tensors, integer ``Quant`` (2–8 bits; a per-tensor integer zero point on activations,
0 on weights) and minifloat ``FloatQuant`` (saturating, no inf/NaN, 3–8 bits:
:class:`~quant.formats.MinifloatFormat`), also of an already quantized tensor (:class:`QRequant`),
and residual joins (:class:`QResidual`).

Elements: an integer tensor's elements are its integer codes' values; a minifloat tensor's are its
codes (bit patterns). Either way :func:`quant.reference.element_ints` gives the exact integers
``n`` of value ``n · step`` (:attr:`QuantSpec.step`), which the layers multiply and add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .formats import FormatError, IntFormat, MinifloatFormat, parse_format
from .reference import element_ints, encode, fixed_point_multiplier, quantize, requantize

__all__ = ["QonnxError", "QuantSpec", "QLayer", "QPool", "QFlatten", "QRequant", "QResidual", "QGraph", "read_qonnx",
           "execute_int", "dequantize", "output_quant", "load_model", "MULT_BITS", "RESIDUAL_GUARD_BITS"]

#: bits of the fixed-point multiplier of a scale ratio that is not a power of two
MULT_BITS = 24
#: guard bits of a residual join's common accumulator unit below the finer branch's unit
RESIDUAL_GUARD_BITS = 16

#: ops that only reshape a tensor into one feature vector per input
_RESHAPES = ("Flatten", "Reshape")
#: ops that may shape the network input before its quantizer
_INPUT_RESHAPES = ("Unsqueeze", "Reshape", "Flatten")
#: ops with quantized weights
_LAYERS = ("Gemm", "MatMul", "Conv")


class QonnxError(ValueError):
    """A file or graph this front end cannot take (the message names the node and what to do)."""


@dataclass(frozen=True)
class QuantSpec:
    """A quantizer: ``value = scale · (code - zero_point)`` for an integer format (``code`` the
    code's integer), ``value = scale · decode(code)`` for a minifloat (no zero point)."""

    fmt: str
    scale: np.ndarray = field(compare=False)
    zero_point: int = 0

    def codes(self, x: np.ndarray) -> np.ndarray:
        """QONNX ``Quant`` / ``FloatQuant`` of ``x`` as elements (int64): an integer format's
        ``clamp(round_half_even(x / scale + zero_point))`` (as QONNX's ``Quant``), a minifloat's
        codes of the nearest value (ties to even, saturating)."""
        f = parse_format(self.fmt)
        x = np.asarray(x, dtype=np.float64)
        if isinstance(f, MinifloatFormat):
            return encode(quantize(x / self.scale, f), f).astype(np.int64)
        return np.clip(np.round(x / self.scale + self.zero_point), f.min_int, f.max_int).astype(np.int64)

    @property
    def step(self) -> np.ndarray:
        """The real value of one integer step of :func:`~quant.reference.element_ints`:
        ``scale · 2^k`` (``k`` = 0 for integers, the smallest subnormal's exponent for minifloats)."""
        f = parse_format(self.fmt)
        k = 0 if isinstance(f, IntFormat) else f.emin - f.mantissa_bits
        return np.asarray(self.scale, dtype=np.float64) * np.float64(2.0) ** k

    def ints(self, elements: np.ndarray) -> np.ndarray:
        """Exact integers of ``elements`` (value = ``ints · step``): the zero point taken off."""
        return element_ints(elements, self.fmt) - self.zero_point


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
        """Real value of one accumulator step per output channel, ``s_in · step_w``, for inputs
        whose integers have step ``s_in`` (:attr:`QuantSpec.step`)."""
        return np.float64(s_in) * np.broadcast_to(self.weight_quant.step, (len(self.weight),))

    def bias_steps(self, s_in: float) -> np.ndarray | None:
        """The bias in accumulator steps, rounded half to even (int64 per channel; None: no bias)."""
        return None if self.bias is None else np.round(self.bias / self.unit(s_in)).astype(np.int64)

    def requant_pairs(self, s_in: float) -> list[tuple[int, int]]:
        """Per channel, the fixed-point ``(multiplier, shift)`` of :data:`MULT_BITS` bits of the
        ratio of an accumulator step to the output scale (the requantizer rounds the product to
        the output format's grid: integers, or minifloat values)."""
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
        """The fixed-point ``(multiplier, shift)`` of :data:`MULT_BITS` bits of ``s_in / scale``
        (``s_in``: the step of the input's integers)."""
        return fixed_point_multiplier(float(np.float64(s_in) / np.float64(self.quant.scale)), MULT_BITS)


@dataclass
class QResidual:
    """A residual join: the real outputs of two layers added (ONNX ``Add``), an optional ReLU, an
    optional global average pool over H, W (``ReduceMean``), then ``out_quant``.

    ``main`` is the body's last layer (its input: the chain's current tensor); ``skip`` the
    shortcut layer, or None for an identity shortcut; its input is the chain's quantized tensor
    number ``skip_from`` (0: the network input; numbered as :func:`execute_int` returns them),
    quantized by ``skip_quant``.

    Integers (:meth:`integers`): per channel a common unit ``u* = min(u_main, u_skip) /
    2^RESIDUAL_GUARD_BITS``; each branch's accumulator times the integer nearest its unit over
    ``u*`` (exact when the ratio of the units is a power of two, as with ``…FixedPoint``
    quantizers; else relative error at most ``2^-(RESIDUAL_GUARD_BITS + 1)``), plus both biases in
    ``u*`` steps; ReLU; the sum over positions for the mean; requantized by ``u* / (P · scale)``.
    """

    name: str
    main: QLayer
    skip: QLayer | None
    skip_from: int
    skip_quant: QuantSpec
    relu: bool
    mean: bool
    out_quant: QuantSpec
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    def units(self, s_in: float) -> tuple[np.ndarray, np.ndarray]:
        """Real value of one accumulator step of the main and the skip branch, per channel."""
        skip = self.skip.unit(self.skip_quant.step) if self.skip is not None else \
            np.broadcast_to(self.skip_quant.step, (len(self.main.weight),))
        return self.main.unit(s_in), np.asarray(skip, dtype=np.float64)

    def integers(self, s_in: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per channel: the main and skip multipliers and the bias (int64, units of ``u*``), and
        ``u*`` itself (float64)."""
        u_main, u_skip = self.units(s_in)
        unit = np.minimum(u_main, u_skip) / 2.0**RESIDUAL_GUARD_BITS
        bias = sum((b for b in (self.main.bias, None if self.skip is None else self.skip.bias) if b is not None),
                   np.zeros(len(unit)))
        return (np.round(u_main / unit).astype(np.int64), np.round(u_skip / unit).astype(np.int64),
                np.round(bias / unit).astype(np.int64), unit)

    @property
    def positions(self) -> int:
        """Output positions of the branches, H · W (summed by the mean)."""
        return int(np.prod(self.main.out_shape[1:]))

    def requant_pairs(self, s_in: float) -> list[tuple[int, int]]:
        """Per channel, the fixed-point ``(multiplier, shift)`` of ``u* / (P · scale)`` (``P`` = 1
        without the mean)."""
        unit = self.integers(s_in)[3] / (self.positions if self.mean else 1)
        return [fixed_point_multiplier(float(r), MULT_BITS) for r in unit / np.float64(self.out_quant.scale)]


def output_quant(op) -> QuantSpec | None:
    """The quantizer of the tensor ``op`` writes: a re-quantization's, a layer's or a residual
    join's output quantizer; None for pools, flattens and a layer with a float output (those
    leave the chain's quantized tensors as they are, or end it)."""
    if isinstance(op, QRequant):
        return op.quant
    return op.out_quant if isinstance(op, (QLayer, QResidual)) else None


@dataclass
class QGraph:
    """The chain: input name and shape, the input quantizer, the layers (and pools, flattens)."""

    input_name: str
    input_shape: tuple[int, ...]
    in_quant: QuantSpec
    layers: list

    @property
    def compute(self) -> list[QLayer]:
        """The layers with weights (a residual join's branches included)."""
        out = []
        for op in self.layers:
            if isinstance(op, QResidual):
                out += [op.main] + ([op.skip] if op.skip is not None else [])
            elif isinstance(op, QLayer):
                out.append(op)
        return out


#: the quantizer ops read
_QUANTS = ("Quant", "FloatQuant")


def _quant_spec(model, node) -> QuantSpec:
    """The QuantSpec of a ``Quant`` node (constant scale, zero point and bit width) or a
    ``FloatQuant`` node."""
    from qonnx.custom_op.registry import getCustomOp  # heavy: qonnx

    if node.op_type == "FloatQuant":
        return _float_spec(model, node)
    scale, zp, bits = (model.get_initializer(i) for i in node.input[1:4])
    if scale is None or zp is None or bits is None:
        raise QonnxError(f"node {node.name} (Quant): scale, zero point and bit width must be constants")
    if np.size(zp) != 1 or float(np.ravel(zp)[0]) != round(float(np.ravel(zp)[0])):
        raise QonnxError(f"node {node.name} (Quant): zero point {np.ravel(zp)[:3]} — only one integer zero point per "
                         "tensor is supported")
    op = getCustomOp(node)
    if op.get_nodeattr("rounding_mode").upper() not in ("ROUND", "HALF_EVEN"):
        raise QonnxError(f"node {node.name} (Quant): rounding mode {op.get_nodeattr('rounding_mode')} — "
                         "only ROUND (half to even) is supported")
    try:
        fmt = IntFormat(int(bits), signed=bool(op.get_nodeattr("signed")), narrow=bool(op.get_nodeattr("narrow")))
    except (FormatError, TypeError) as e:
        raise QonnxError(f"node {node.name} (Quant): {e}") from None
    zero = int(round(float(np.ravel(zp)[0])))
    if not fmt.min_int <= zero <= fmt.max_int:
        raise QonnxError(f"node {node.name} (Quant): zero point {zero} outside {fmt}'s range")
    return QuantSpec(str(fmt), np.asarray(scale, dtype=np.float64), zero)


def _float_spec(model, node) -> QuantSpec:
    """The QuantSpec of a ``FloatQuant`` node: constant scale, exponent and mantissa widths,
    exponent bias and maximum; saturating, without inf/NaN (what the accelerator's requantizers
    produce); the maximum picks the variant (``none``: every code finite, ``ocp``, ``ieee``)."""
    from qonnx.custom_op.registry import getCustomOp  # heavy: qonnx

    scale, e, mb, bias, max_val = (model.get_initializer(i) for i in node.input[1:6])
    where = f"node {node.name} (FloatQuant)"
    if any(v is None for v in (scale, e, mb, bias, max_val)):
        raise QonnxError(f"{where}: scale, exponent/mantissa widths, exponent bias and max value must be constants")
    op = getCustomOp(node)
    if op.get_nodeattr("rounding_mode").upper() not in ("ROUND", "HALF_EVEN"):
        raise QonnxError(f"{where}: rounding mode {op.get_nodeattr('rounding_mode')} — only ROUND (half to even)")
    if not op.get_nodeattr("saturation") or op.get_nodeattr("has_inf") or op.get_nodeattr("has_nan"):
        raise QonnxError(f"{where}: only saturating minifloats without inf/NaN are supported; quantize with "
                         "saturating=True (Brevitas' Fp8…Float quantizers)")
    try:
        e, mb, bias = (int(np.asarray(v).item()) for v in (e, mb, bias))
        options = [MinifloatFormat(e, mb, bias=bias, subnormals=bool(op.get_nodeattr("has_subnormal")), specials=sp)
                   for sp in ("none", "ocp", "ieee")]
    except (FormatError, ValueError) as err:
        raise QonnxError(f"{where}: {err}") from None
    fmt = next((f for f in options if f.max_value == float(np.asarray(max_val).item())), None)
    if fmt is None:
        raise QonnxError(f"{where}: max value {float(np.asarray(max_val).item())} is not the largest value of "
                         f"e{e}m{mb} with bias {bias} (any of {[f.max_value for f in options]})")
    return QuantSpec(str(fmt), np.asarray(scale, dtype=np.float64))


def load_model(path: Path):
    """The QONNX file at ``path`` as a qonnx ``ModelWrapper``, normalized by qonnx's own
    transformations: shapes inferred, constants folded (quantizers kept), unique node names;
    :class:`QonnxError` for a missing file or one that is not ONNX."""
    import onnx  # heavy: onnx (the qonnx extra)
    from qonnx.core.modelwrapper import ModelWrapper  # heavy: qonnx
    from qonnx.transformation.fold_constants import FoldConstants  # heavy: qonnx
    from qonnx.transformation.general import GiveUniqueNodeNames  # heavy: qonnx
    from qonnx.transformation.infer_shapes import InferShapes  # heavy: qonnx

    if not path.is_file():
        raise QonnxError(f"{path}: no such file; export a model with brevitas.export.export_qonnx first")
    try:
        model = ModelWrapper(onnx.load(str(path)))
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError and friends
        raise QonnxError(f"{path}: not an ONNX file ({type(e).__name__})") from None
    model = model.transform(InferShapes()).transform(FoldConstants(exclude_op_types=["BipolarQuant", *_QUANTS]))
    return model.transform(GiveUniqueNodeNames())


def read_qonnx(path: str | Path, model=None) -> QGraph:
    """Read and normalize a QONNX file into a :class:`QGraph` (module docstring); ``model``: the
    file already loaded by :func:`load_model` (read, never changed).

    Raises
    ------
    QonnxError
        Not an ONNX file, no input ``Quant``, an unsupported node (named with its op), a layer
        whose weights are not quantized.
    """
    path = Path(path)
    model = load_model(path) if model is None else model
    inp = model.graph.input[0].name
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def next_node(tensor: str):
        """The node the chain goes on with: the only consumer, or at a fork (a residual block's
        input) the body's first node, not the shortcut (a layer that feeds an ``Add`` directly,
        or the ``Add`` itself)."""
        nodes = consumers.get(tensor, [])
        if len(nodes) <= 1:
            return nodes[0] if nodes else None
        body = [n for n in nodes if n.op_type != "Add" and
                not any(c.op_type == "Add" for c in consumers.get(n.output[0], []))]
        return (body or nodes)[0]

    node, tensor = next_node(inp), inp
    while node is not None and node.op_type in _INPUT_RESHAPES:  # (B, 10, 10) -> (B, 1, 10, 10)
        tensor, node = node.output[0], next_node(node.output[0])
    if node is None or node.op_type not in _QUANTS:
        raise QonnxError(f"{path}: the input {inp} is not quantized by a QONNX Quant node "
                         f"(found {node.op_type if node else 'nothing'}); export with brevitas export_qonnx and a "
                         "quantized input (QuantIdentity)")
    in_quant = _quant_spec(model, node)
    input_shape = tuple(int(d) for d in model.get_tensor_shape(tensor))
    tensor = node.output[0]
    quantized = {tensor: (0, in_quant)}  # the chain's quantized tensors: numbered as execute_int returns them
    layers: list = []

    def shape(t: str) -> tuple[int, ...]:
        return tuple(int(d) for d in model.get_tensor_shape(t)[1:])

    while (node := next_node(tensor)) is not None:
        if node.op_type in _RESHAPES:
            layers.append(QFlatten(node.name, shape(tensor), shape(node.output[0])))
            tensor = node.output[0]
            if node.input[0] in quantized:  # the same codes, reshaped
                quantized[tensor] = quantized[node.input[0]]
            continue
        if node.op_type == "MaxPool":
            layers.append(_pool(node, shape(tensor), shape(node.output[0])))
            tensor = node.output[0]
            continue
        if node.op_type in _QUANTS:
            layers.append(QRequant(node.name, _quant_spec(model, node), shape(tensor), shape(node.output[0])))
            tensor = node.output[0]
            quantized[tensor] = (len(quantized), layers[-1].quant)
            continue
        if node.op_type not in _LAYERS:
            raise QonnxError(f"node {node.name} ({node.op_type}): not supported yet (supported: Quant, FloatQuant, "
                             f"Gemm, MatMul, Conv, Add (bias or residual), Relu, ReduceMean (global average pool "
                             f"of a residual join), MaxPool, Flatten/Reshape)")
        layer = _layer(model, node, tensor)
        layers.append(layer)
        tensor = node.output[0]
        nxt = next_node(tensor)
        if nxt is not None and nxt.op_type == "Add" and _constant(model, nxt.input[1]) is not None:
            layer.bias = _add(layer.bias, _constant(model, nxt.input[1]))
            tensor, nxt = nxt.output[0], next_node(nxt.output[0])
        if nxt is not None and nxt.op_type == "Add":
            layers[-1], tensor = _residual(model, nxt, layer, tensor, quantized, next_node, shape)
            quantized[tensor] = (len(quantized), layers[-1].out_quant)
            continue
        if nxt is not None and nxt.op_type == "Relu":
            layer.relu = True
            tensor, nxt = nxt.output[0], next_node(nxt.output[0])
        if nxt is not None and nxt.op_type in _QUANTS:
            layer.out_quant = _quant_spec(model, nxt)
            tensor = nxt.output[0]
            quantized[tensor] = (len(quantized), layer.out_quant)
        elif nxt is not None and nxt.op_type in (*_LAYERS, "MaxPool", *_RESHAPES):
            raise QonnxError(f"node {nxt.name} ({nxt.op_type}): its input is not quantized; add a quantizer "
                             f"(QuantIdentity / QuantReLU) after layer {layer.name}")
        elif nxt is not None:
            raise QonnxError(f"node {nxt.name} ({nxt.op_type}): not supported yet after layer {layer.name}")
    if not any(isinstance(op, (QLayer, QResidual)) for op in layers):
        raise QonnxError(f"{path}: no Gemm / MatMul / Conv layer after the input quantizer")
    return QGraph(inp, input_shape, in_quant, layers)


def _residual(model, add, main: QLayer, tensor: str, quantized: dict, next_node, shape) -> tuple[QResidual, str]:
    """The residual join at ``add`` (the body's last layer ``main`` writes ``tensor``): its
    shortcut (a layer on a quantized tensor of the chain, or that tensor itself), then ReLU,
    ReduceMean over H, W, Flatten / Reshape, and the quantizer that must follow; returns it and
    the quantized tensor's name."""
    where = f"node {add.name} (Add)"
    other = next(i for i in add.input if i != tensor)
    producer = next((n for n in model.graph.node if other in n.output), None)
    skip, skip_in = None, other
    if producer is not None and producer.op_type in _LAYERS:
        skip_in = next((i for i in producer.input[:2] if i in quantized), producer.input[0])
        skip = _layer(model, producer, skip_in)
    if skip_in not in quantized:
        raise QonnxError(f"{where}: the shortcut's input {skip_in} is not a quantized tensor of the chain; only "
                         "residual adds of a layer (or a quantized tensor) and the body's last layer are supported")
    if shape(other) != main.out_shape:
        raise QonnxError(f"{where}: the branches' shapes differ ({list(shape(other))} vs {list(main.out_shape)})")
    relu, mean, out = False, False, add.output[0]
    nxt = next_node(out)
    if nxt is not None and nxt.op_type == "Relu":
        relu, out, nxt = True, nxt.output[0], next_node(nxt.output[0])
    if nxt is not None and nxt.op_type == "ReduceMean":
        axes = _reduce_axes(model, nxt)
        if sorted(a % 4 for a in axes) != [2, 3] or len(main.out_shape) != 3:
            raise QonnxError(f"node {nxt.name} (ReduceMean): only a global average pool over H, W (axes 2, 3) "
                             f"is supported, got axes {list(axes)}")
        mean, out, nxt = True, nxt.output[0], next_node(nxt.output[0])
        while nxt is not None and nxt.op_type in _RESHAPES:
            out, nxt = nxt.output[0], next_node(nxt.output[0])
    if nxt is None or nxt.op_type not in _QUANTS:
        raise QonnxError(f"{where}: a residual join must be quantized (found {nxt.op_type if nxt else 'the output'} "
                         "after it); add a QuantIdentity / QuantReLU after the add")
    index, skip_quant = quantized[skip_in]
    res = QResidual(add.name, main, skip, index, skip_quant, relu, mean, _quant_spec(model, nxt), main.in_shape,
                    shape(nxt.output[0]))
    return res, nxt.output[0]


def _reduce_axes(model, node) -> tuple[int, ...]:
    """A ReduceMean's axes: its attribute (opset < 18) or its constant second input."""
    if len(node.input) > 1 and model.get_initializer(node.input[1]) is not None:
        return tuple(int(a) for a in np.asarray(model.get_initializer(node.input[1])).ravel())
    return _ints(node, "axes", ())


def _ints(node, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    return next((tuple(a.ints) for a in node.attribute if a.name == name), default)


def _pool(node, in_shape, out_shape) -> QPool:
    if any(_ints(node, "pads", (0, 0, 0, 0))) or any(d != 1 for d in _ints(node, "dilations", (1, 1))) or \
            any(a.name == "ceil_mode" and a.i for a in node.attribute):
        raise QonnxError(f"node {node.name} (MaxPool): only unpadded, undilated, floor-mode pooling is supported")
    kernel = _ints(node, "kernel_shape", ())
    stride = _ints(node, "strides", kernel)
    if len(kernel) == 1:  # 1-D: a pool of height 1
        kernel, stride = (1, *kernel), (1, *stride)
    return QPool(node.name, kernel, stride, _as_2d(in_shape), out_shape)


def _as_2d(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A 1-D feature map's (C, L) as (C, 1, L); other shapes as they are."""
    return (shape[0], 1, shape[1]) if len(shape) == 2 else shape


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
    first), with its input and output shapes (no batch; a 1-D convolution's input as (C, 1, L))."""
    w_name = next(i for i in node.input[:2] if i != x_tensor)
    wq = next((n for n in model.graph.node if w_name in n.output), None)
    if wq is None or wq.op_type not in _QUANTS or model.get_initializer(wq.input[0]) is None:
        raise QonnxError(f"node {node.name} ({node.op_type}): its weights are not quantized by a Quant node on a "
                         "constant; use a Brevitas QuantLinear / QuantConv2d")
    spec = _quant_spec(model, wq)
    if spec.zero_point:
        raise QonnxError(f"node {node.name} ({node.op_type}): weight zero point {spec.zero_point} — only symmetric "
                         "weights (zero point 0) are supported")
    w = np.asarray(model.get_initializer(wq.input[0]), dtype=np.float64)
    attrs = {a.name: a.i for a in node.attribute}
    stride, pads = (1, 1), (0, 0, 0, 0)
    if node.op_type == "Conv":
        if w.ndim not in (3, 4) or attrs.get("group", 1) != 1 or any(d != 1 for d in _ints(node, "dilations", (1,))):
            raise QonnxError(f"node {node.name} (Conv): only 1-D and 2-D, ungrouped, undilated convolutions are "
                             "supported")
        stride, pads = _ints(node, "strides", (1,) * (w.ndim - 2)), _ints(node, "pads", (0,) * 2 * (w.ndim - 2))
        if w.ndim == 3:  # 1-D: a 2-D convolution of height 1
            w, stride, pads = w[:, :, None, :], (1, *stride), (0, pads[0], 0, pads[1])
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
    codes = np.where(spec.ints(codes) == 0, 0, codes)  # a minifloat's -0 is +0 (one zero code, as pruning wants)
    bias = _constant(model, node.input[2]) if node.op_type in ("Gemm", "Conv") and len(node.input) > 2 else None
    in_shape, out_shape = (tuple(int(d) for d in model.get_tensor_shape(t)[1:]) for t in (x_tensor, node.output[0]))
    return QLayer(node.name, codes, spec, None if bias is None else np.asarray(bias, np.float64).ravel(), False, None,
                  _as_2d(in_shape) if node.op_type == "Conv" else in_shape, out_shape, tuple(stride), tuple(pads))


def _conv(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, ...]) -> np.ndarray:
    """Exact integer 2-D convolution (cross-correlation, as ONNX) of object arrays: x (N, C, H, W),
    w (O, C, kh, kw) -> (N, O, H', W'); zero padding (real 0: the integers have no zero point)."""
    t, left, b, r = pads
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)))
    kh, kw = w.shape[2:]
    sh, sw = stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    cols = np.stack([x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)], axis=2)
    cols = cols.reshape(x.shape[0], x.shape[1] * kh * kw, oh * ow)  # (N, C·kh·kw, positions), C-major like w
    out = np.einsum("ok,nkp->nop", w.reshape(w.shape[0], -1).astype(object), cols.astype(object))
    return out.reshape(x.shape[0], w.shape[0], oh, ow)


def _maxpool(x: np.ndarray, pool: QPool, fmt: str) -> np.ndarray:
    """Max pooling of elements ``x`` (N, C, H, W) by value; the first of equal values wins."""
    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    wins = np.stack([x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)])
    pick = np.argmax(element_ints(wins, fmt), axis=0)
    return np.take_along_axis(wins, pick[None], axis=0)[0]


def _accumulate(layer: QLayer, a: np.ndarray) -> np.ndarray:
    """Exact accumulators (object ints) of ``layer`` on input integers ``a`` (batch first)."""
    w = layer.weight_quant.ints(layer.weight)
    if layer.kind == "conv":
        return _conv(a.reshape(len(a), *layer.in_shape), w, layer.stride, layer.pads)
    return a.reshape(len(a), -1).astype(object) @ w.T.astype(object)


def _residual_codes(op: QResidual, q: np.ndarray, spec: QuantSpec, codes: list[np.ndarray]) -> np.ndarray:
    """The output codes of a residual join (:meth:`QResidual.integers`) on the main branch's input
    codes ``q`` and the chain's quantized tensors so far."""
    m_main, m_skip, bias, _ = op.integers(spec.step)
    skip_in = op.skip_quant.ints(codes[op.skip_from])
    a_skip = _accumulate(op.skip, skip_in) if op.skip is not None else \
        skip_in.reshape(len(q), *op.main.out_shape).astype(object)
    col = lambda v: v.astype(object).reshape((-1,) + (1,) * (len(op.main.out_shape) - 1))  # noqa: E731
    total = _accumulate(op.main, spec.ints(q)) * col(m_main) + a_skip * col(m_skip) + col(bias)
    if op.relu:
        total = np.maximum(total, 0)
    if op.mean:
        total = total.reshape(len(q), total.shape[1], -1).sum(axis=2)
    return np.stack([requantize(total[:, c], m, sh, op.out_quant.fmt, op.out_quant.zero_point)
                     for c, (m, sh) in enumerate(op.requant_pairs(spec.step))], axis=1).reshape(len(q), *op.out_shape)


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
    spec = graph.in_quant
    q = spec.codes(x)
    codes = [q]
    for op in graph.layers:
        if isinstance(op, QFlatten):
            q = q.reshape(len(q), -1)
        elif isinstance(op, QPool):
            q = _maxpool(q.reshape(len(q), *op.in_shape), op, spec.fmt)
        elif isinstance(op, QRequant):
            q = requantize(spec.ints(q), *op.requant_pair(spec.step), op.quant.fmt, op.quant.zero_point)
        elif isinstance(op, QResidual):
            q = _residual_codes(op, q, spec, codes)
        else:
            acc = _accumulate(op, spec.ints(q))
            if op.bias is not None:  # per output channel along axis 1
                acc = acc + op.bias_steps(spec.step).astype(object).reshape((-1,) + (1,) * (acc.ndim - 2))
            if op.out_quant is None:
                return dequantize(graph, (np.maximum(acc, 0) if op.relu else acc).reshape(len(acc), -1)), codes
            q = np.stack([requantize(acc[:, c], m, sh, op.out_quant.fmt, op.out_quant.zero_point, relu=op.relu)
                          for c, (m, sh) in enumerate(op.requant_pairs(spec.step))], axis=1)
        if output_quant(op) is not None:
            spec = output_quant(op)
            codes.append(q)
    return dequantize(graph, q.reshape(len(q), -1)), codes


def dequantize(graph: QGraph, values: np.ndarray) -> np.ndarray:
    """Real outputs of the network from its last elements (frames, out_size): a raw last layer's
    accumulators (plus bias) times ``step_in · step_w`` per channel, or the last codes' values
    times their scale; float64, shaped ``[batch, *output shape]``."""
    spec, unit = graph.in_quant, None
    for op in graph.layers:
        if isinstance(op, QLayer) and op.out_quant is None:
            unit = op.unit(spec.step)
            break
        spec = output_quant(op) or spec
    out_shape = next(op.out_shape for op in reversed(graph.layers) if op.out_shape)
    v = np.asarray(values).reshape(len(values), *out_shape)
    if unit is None:
        return spec.ints(v).astype(np.float64) * spec.step
    return v.astype(np.float64) * unit.reshape((-1,) + (1,) * (v.ndim - 2))
