"""Exact integer execution of a QONNX graph whose float tensors are all exact images of quantized
ones — the general front end for what the layer chain of :mod:`quant.qonnx_import` cannot read
(an MLP-Mixer: LayerNormalization, Gelu, Transpose, residual adds of unquantized tensors).

Between two quantizers a Brevitas model computes in float: a layer's accumulator plus its bias, a
sum of two such tensors, a LayerNorm. Every one of those tensors is carried here exactly, as
integers times a known unit (:class:`Exact`: ``value = ints · unit``, the unit per element of
one sample); quantized tensors are codes with their quantizer (:class:`Coded`). The ops
(:data:`OPS`):

- ``Quant`` / ``FloatQuant`` of the input, of a quantized tensor or of an exact one:
  :func:`quant.reference.requantize` by the fixed-point ratio of each unit to the scale (exact for
  power-of-two ratios); of a ``Gelu`` (its only use), a threshold table on the integers per unit
  (:func:`gelu_table`: the codes of GELU in float64 of the exact values);
- ``MatMul`` / ``Gemm`` on a quantized tensor with ``Quant``-ed constant weights (a ``Transpose``
  of them too), contracting the last axis: exact accumulators, unit ``step_in · step_w`` per output;
- ``Add`` of a constant (a bias: rounded to the unit) or of two exact tensors (both brought to one
  common unit, :func:`common_unit`, as a residual join does);
- ``LayerNormalization`` over the last axis: :func:`quant.reference.normalize` on the row's integers
  in a common unit, then ``γ`` and ``β`` (unit ``|γ| · 2^-NORM_FRAC_BITS`` per channel);
- ``Relu``, ``Transpose`` (the batch axis stays first), ``Reshape`` / ``Flatten`` / ``Unsqueeze``,
  ``ReduceMean`` (a sum, with the unit divided by the count).

Anything else stops :func:`read_net` with :class:`~quant.qonnx_import.QonnxError` naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .qonnx_import import (_QUANTS, MULT_BITS, RESIDUAL_GUARD_BITS, QonnxError, QuantSpec, _ints, _quant_spec,
                           _reduce_axes, load_model)
from .formats import IntFormat, parse_format
from .reference import NORM_FRAC_BITS, apply_breakpoints, breakpoints, fixed_point_multiplier, normalize, requantize

__all__ = ["Exact", "Coded", "Activated", "NetOp", "QNet", "OPS", "GELU_MIN", "read_net", "execute_net", "gelu_table",
           "common_unit", "unit_ratios"]

#: the ONNX ops :func:`read_net` takes (besides quantizers on constants: weights and biases)
OPS = ("Quant", "FloatQuant", "MatMul", "Gemm", "Add", "LayerNormalization", "Relu", "Gelu", "Transpose",
       "Reshape", "Flatten", "Unsqueeze", "ReduceMean")
_RESHAPES = ("Reshape", "Flatten", "Unsqueeze")


@dataclass
class Exact:
    """A real tensor carried exactly: ``value = ints · unit``.

    Attributes
    ----------
    ints : Python integers (object array), batch first.
    unit : float64, one sample's shape (the unit of each element).
    """

    ints: np.ndarray
    unit: np.ndarray

    @property
    def value(self) -> np.ndarray:
        return self.ints.astype(np.float64) * self.unit


@dataclass
class Coded:
    """A quantized tensor: elements (int64 codes' values, batch first) and their quantizer."""

    elements: np.ndarray
    spec: QuantSpec

    def exact(self) -> Exact:
        ints = self.spec.ints(self.elements).astype(object)
        return Exact(ints, np.full(ints.shape[1:], float(self.spec.step)))


@dataclass
class Activated:
    """The GELU of an exact tensor, waiting for its quantizer (:func:`gelu_table`)."""

    exact: Exact


@dataclass
class NetOp:
    """One op: ``kind`` (an ONNX op type; ``Bias`` for the Add of a constant), its input and output
    tensor names and its constants.

    Attributes
    ----------
    name, kind, inputs, output : as in the graph (``output``: the tensor it writes).
    spec : a quantizer's QuantSpec.
    weight : a layer's integer weights (out, in), ``weight_quant`` their quantizer (per output).
    const : a bias (broadcast to the output), LayerNorm's (γ, β, ε), a transpose's or a mean's axes
        (without the batch axis), a reshape's output shape.
    shape : the output shape without the batch axis.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    output: str
    shape: tuple[int, ...] = ()
    spec: QuantSpec | None = None
    weight: np.ndarray | None = None
    weight_quant: QuantSpec | None = None
    const: tuple = field(default=())

    @property
    def macs(self) -> int:
        """Multiply-accumulates per inference (a layer's; 0 for the others)."""
        return 0 if self.weight is None else int(np.prod(self.shape)) * int(self.weight.shape[1])


@dataclass
class QNet:
    """The ops in graph order (each input written before it is read), the float input's name and
    shape, and the output tensor's name."""

    input_name: str
    input_shape: tuple[int, ...]
    ops: list[NetOp]
    output: str

    @property
    def layers(self) -> list[NetOp]:
        """The ops with weights."""
        return [op for op in self.ops if op.weight is not None]


def read_net(path: str | Path, model=None) -> QNet:
    """Read a QONNX file as a :class:`QNet` (module docstring), normalized as
    :func:`quant.qonnx_import.read_qonnx` normalizes it; ``model``: the file already loaded by
    :func:`quant.qonnx_import.load_model` (read, never changed).

    Raises
    ------
    QonnxError
        Not an ONNX file; an op outside :data:`OPS` (named); a layer on an unquantized tensor; a
        Gelu whose output is not quantized; a LayerNorm not over the last axis.
    """
    path = Path(path)
    model = load_model(path) if model is None else model
    inp = model.graph.input[0].name

    def shape(t: str) -> tuple[int, ...]:
        return tuple(int(d) for d in model.get_tensor_shape(t)[1:])

    consts: dict[str, tuple[np.ndarray, QuantSpec | None]] = {}  # constant tensors: value (or codes) and quantizer
    kinds = {inp: "float"}  # activation tensors: float (the input), coded, exact, gelu (to be quantized)
    ops: list[NetOp] = []
    for node in model.graph.node:
        where = f"node {node.name} ({node.op_type})"
        ins = [i for i in node.input if i]
        init = [model.get_initializer(i) for i in ins]
        if node.op_type in _QUANTS and init[0] is not None:  # a weight or a bias
            spec = _quant_spec(model, node)
            codes = QuantSpec(spec.fmt, np.asarray(spec.scale, np.float64)).codes(np.asarray(init[0], np.float64))
            consts[node.output[0]] = (codes, spec)
            continue
        if node.op_type == "Transpose" and ins[0] in consts:
            codes, spec = consts[ins[0]]
            perm = _ints(node, "perm", tuple(reversed(range(codes.ndim))))
            scale = np.broadcast_to(np.asarray(spec.scale, np.float64), codes.shape).transpose(perm)
            consts[node.output[0]] = (codes.transpose(perm), QuantSpec(spec.fmt, scale, spec.zero_point))
            continue
        if node.op_type not in OPS:
            raise QonnxError(f"{where}: not supported (supported: {', '.join(OPS)})")
        act = [i for i in ins if i in kinds]
        if any(kinds[i] == "gelu" for i in act) and node.op_type not in _QUANTS:
            raise QonnxError(f"{where}: a Gelu's output must be quantized first; add a quantizer after the GELU")
        out, kind = node.output[0], "exact"
        if node.op_type in _QUANTS:
            op = NetOp(node.name, "Quant", (ins[0],), out, shape(out), spec=_quant_spec(model, node))
            if np.size(op.spec.scale) != 1:
                raise QonnxError(f"{where}: only per-tensor activation scales are supported")
            kind = "coded"
        elif node.op_type in ("MatMul", "Gemm"):
            op = _linear(model, node, ins, consts, kinds, where, shape(out))
            if node.op_type == "Gemm" and len(ins) > 2:  # C: a bias after the product
                ops.append(op)
                op = NetOp(node.name + "_bias", "Bias", (op.output + ":acc",), out, shape(out),
                           const=(np.broadcast_to(_constant_value(model, ins[2], consts), shape(out)).copy(),))
                ops[-1].output += ":acc"
        elif node.op_type == "Add":
            const = next((i for i in ins if i in consts or model.get_initializer(i) is not None), None)
            if const is not None:
                op = NetOp(node.name, "Bias", (next(i for i in ins if i != const),), out, shape(out),
                           const=(np.broadcast_to(_constant_value(model, const, consts), shape(out)).copy(),))
            elif len(act) == 2:
                op = NetOp(node.name, "Add", tuple(ins), out, shape(out))
            else:
                raise QonnxError(f"{where}: only a bias or the sum of two computed tensors is supported")
        elif node.op_type == "LayerNormalization":
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
            if axis not in (-1, len(shape(ins[0]))):
                raise QonnxError(f"{where}: only a LayerNorm over the last axis is supported (axis {axis})")
            gamma = np.asarray(model.get_initializer(ins[1]), np.float64)
            beta = np.zeros_like(gamma) if len(ins) < 3 else np.asarray(model.get_initializer(ins[2]), np.float64)
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            op = NetOp(node.name, "LayerNormalization", (ins[0],), out, shape(out), const=(gamma, beta, float(eps)))
        elif node.op_type == "Transpose":
            perm = _ints(node, "perm", tuple(reversed(range(len(shape(ins[0])) + 1))))
            if perm[0] != 0:
                raise QonnxError(f"{where}: a transpose must keep the batch axis first (perm {list(perm)})")
            op = NetOp(node.name, "Transpose", (ins[0],), out, shape(out), const=tuple(p - 1 for p in perm[1:]))
            kind = "coded" if kinds[ins[0]] == "coded" else kind
        elif node.op_type in _RESHAPES:
            op = NetOp(node.name, "Reshape", (ins[0],), out, shape(out))
            kind = kinds[ins[0]]
        elif node.op_type == "ReduceMean":
            axes = tuple(a % (len(shape(ins[0])) + 1) - 1 for a in _reduce_axes(model, node))
            if -1 in axes or not axes:
                raise QonnxError(f"{where}: a mean over the batch axis (or over every axis) is not supported")
            if next((a.i for a in node.attribute if a.name == "keepdims"), 1):
                raise QonnxError(f"{where}: only keepdims=0 is supported")
            op = NetOp(node.name, "ReduceMean", (ins[0],), out, shape(out), const=axes)
        else:  # Relu, Gelu
            op = NetOp(node.name, node.op_type, (ins[0],), out, shape(out))
            kind = "gelu" if node.op_type == "Gelu" else kind
        if any(kinds.get(i) in ("float", "gelu") for i in op.inputs) and op.kind not in ("Quant", "Reshape"):
            raise QonnxError(f"{where}: the input is not quantized; quantize it first (QuantIdentity)")
        kinds[out] = kind
        ops.append(op)
    output = model.graph.output[0].name
    if not any(op.weight is not None for op in ops):
        raise QonnxError(f"{path}: no MatMul / Gemm layer with quantized weights")
    if kinds.get(output) == "gelu":
        raise QonnxError(f"{path}: the output is a Gelu; quantize it")
    return QNet(inp, tuple(int(d) for d in model.get_tensor_shape(inp)), ops, output)


def _linear(model, node, ins: list[str], consts: dict, kinds: dict, where: str, out_shape) -> NetOp:
    """A MatMul / Gemm of an activation and quantized constant weights as a layer: weights (out,
    in), per-output-channel scales (a Gemm's bias input becomes a ``Bias`` op after it)."""
    x = next((i for i in ins[:2] if i in kinds), None)
    w_name = next((i for i in ins[:2] if i in consts), None)
    if x is None or w_name is None:
        raise QonnxError(f"{where}: needs one computed input and weights quantized by a Quant node (a Brevitas "
                         "QuantLinear)")
    if kinds[x] != "coded":
        raise QonnxError(f"{where}: its input is not quantized; add a quantizer (QuantIdentity) before it")
    attrs = {a.name: (a.i if a.type == 2 else a.f) for a in node.attribute}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise QonnxError(f"{where}: only transA=0, alpha=beta=1 are supported")
    codes, spec = consts[w_name]
    if spec.zero_point:
        raise QonnxError(f"{where}: weight zero point {spec.zero_point}: only symmetric weights are supported")
    if codes.ndim != 2 or ins.index(w_name) != 1:
        raise QonnxError(f"{where}: only x · W with a 2-D constant W is supported")
    scale = np.broadcast_to(np.asarray(spec.scale, np.float64), codes.shape)
    if node.op_type == "MatMul" or not attrs.get("transB", 0):
        codes, scale = codes.T, scale.T  # (in, out) -> (out, in)
    if not np.all(scale == scale[:, :1]):
        raise QonnxError(f"{where}: weight scales must be per tensor or per output channel")
    op = NetOp(node.name, node.op_type, (x,), node.output[0], out_shape, weight=np.asarray(codes, np.int64),
               weight_quant=QuantSpec(spec.fmt, scale[:, 0].copy()))
    return op


def _constant_value(model, tensor: str, consts: dict) -> np.ndarray:
    """The real value (float64) of a constant: an initializer or a quantized constant."""
    if tensor in consts:
        codes, spec = consts[tensor]
        return np.asarray(spec.scale, np.float64) * spec.ints(codes)
    return np.asarray(model.get_initializer(tensor), np.float64)


def execute_net(net: QNet, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Exact integer execution of ``net`` on float inputs ``x`` (batch first, the model's input
    size per row).

    Returns
    -------
    out : float64, the output tensor's real values, ``[batch, *shape]``.
    codes : every quantized tensor's elements (int64, batch first), by tensor name.
    """
    x = np.asarray(x, dtype=np.float64)
    env: dict[str, object] = {net.input_name: x.reshape(len(x), *net.input_shape[1:])}
    codes: dict[str, np.ndarray] = {}
    for op in net.ops:
        args = [env[i] for i in op.inputs]
        env[op.output] = _run(op, args)
        if isinstance(env[op.output], Coded) and op.kind == "Quant":
            codes[op.output] = env[op.output].elements
    out = env[net.output]
    if isinstance(out, Coded):
        out = out.exact()
    return (out.value if isinstance(out, Exact) else np.asarray(out, np.float64)), codes


def _exact(t) -> Exact:
    return t.exact() if isinstance(t, Coded) else t


def _in_unit(t: Exact, unit: float) -> np.ndarray:
    """The integers of ``t`` in the finer ``unit``: each element's times the integer nearest its
    unit over ``unit`` (exact when their ratio is an integer)."""
    return t.ints * unit_ratios(t.unit, unit)


def unit_ratios(units: np.ndarray, unit: float) -> np.ndarray:
    """The integers nearest ``units / unit`` (object ints); QonnxError when one would not fit 62
    bits (units too far apart for one integer grid)."""
    r = np.round(np.asarray(units, np.float64) / unit)
    if np.any(r >= 2.0**62):
        raise QonnxError(f"units {float(np.max(units)):.3g} and {unit:.3g} are too far apart for one integer grid")
    return r.astype(np.int64).astype(object)


def common_unit(*units: np.ndarray) -> float:
    """The one unit a sum (or a LayerNorm's row) of tensors with these units is carried in: the
    smallest unit, when every other unit is an integer multiple of it or at least
    ``2^RESIDUAL_GUARD_BITS`` times it (rounding each ratio to an integer then costs at most
    ``2^-(RESIDUAL_GUARD_BITS + 1)`` of it); else the smallest unit over ``2^RESIDUAL_GUARD_BITS``.
    So a residual stream keeps its unit from one sum to the next instead of losing guard bits at
    each."""
    u = min(float(np.min(x)) for x in units)
    ratios = [np.asarray(x, np.float64) / u for x in units]
    if all(np.all((r == np.round(r)) | (r >= 2.0**RESIDUAL_GUARD_BITS)) for r in ratios):
        return u
    return u / 2.0**RESIDUAL_GUARD_BITS


def _common(t: Exact) -> Exact:
    """``t`` in one unit for every element (:func:`common_unit`)."""
    if np.all(t.unit == t.unit.flat[0]):
        return t
    unit = common_unit(t.unit)
    return Exact(_in_unit(t, unit), np.full(t.unit.shape, unit))


def _run(op: NetOp, args: list):
    """One op on its input tensors (module docstring)."""
    a = args[0]
    if op.kind == "Quant":
        if isinstance(a, np.ndarray):  # the float input
            return Coded(op.spec.codes(a), op.spec)
        if isinstance(a, Activated):
            return Coded(_activate(a.exact, op.spec), op.spec)
        return Coded(_quantize(_exact(a), op.spec), op.spec)
    if op.kind == "Reshape":
        if isinstance(a, Coded):
            return Coded(a.elements.reshape(len(a.elements), *op.shape), a.spec)
        if isinstance(a, Exact):
            return Exact(a.ints.reshape(len(a.ints), *op.shape), a.unit.reshape(op.shape))
        return a.reshape(len(a), *op.shape)
    if op.kind == "Transpose":
        perm = (0, *(p + 1 for p in op.const))
        if isinstance(a, Coded):
            return Coded(a.elements.transpose(perm), a.spec)
        return Exact(a.ints.transpose(perm), a.unit.transpose(op.const))
    a = _exact(a)
    if op.kind in ("MatMul", "Gemm"):
        w = op.weight_quant.ints(op.weight).astype(object)
        step = float(np.ravel(a.unit)[0])
        return Exact(np.einsum("...k,ok->...o", a.ints, w), np.broadcast_to(step * op.weight_quant.step, op.shape).copy())
    if op.kind == "Bias":
        return Exact(a.ints + np.round(op.const[0] / a.unit).astype(np.int64).astype(object), a.unit)
    if op.kind == "Add":
        b = _exact(args[1])
        unit = common_unit(a.unit, b.unit)
        return Exact(_in_unit(a, unit) + _in_unit(b, unit), np.full(op.shape, unit))
    if op.kind == "Relu":
        return Exact(np.maximum(a.ints, 0), a.unit)
    if op.kind == "Gelu":
        return Activated(a)
    if op.kind == "ReduceMean":
        if not all(np.all(a.unit == a.unit.take([0], axis=ax)) for ax in op.const):
            a = _common(a)
        first = a.unit[tuple(slice(0, 1) if i in op.const else slice(None) for i in range(a.unit.ndim))]
        count = int(np.prod([a.unit.shape[ax] for ax in op.const]))
        return Exact(a.ints.sum(axis=tuple(ax + 1 for ax in op.const)), first.reshape(op.shape) / count)
    if op.kind == "LayerNormalization":
        return _layer_norm(a, *op.const)
    raise AssertionError(op.kind)


def _per_unit(t: Exact, codes) -> np.ndarray:
    """Elements (int64) of the exact tensor ``t``, ``codes(ints, unit)`` for each unit's integers."""
    out = np.empty(t.ints.shape, np.int64)
    for u in np.unique(t.unit):
        sel = np.broadcast_to(t.unit == u, t.ints.shape)
        out[sel] = codes(t.ints[sel], float(u))
    return out


def _quantize(t: Exact, spec: QuantSpec) -> np.ndarray:
    """Elements of ``spec`` for the exact tensor ``t``: each unit's fixed-point ratio to the scale
    (:data:`MULT_BITS` bits), :func:`quant.reference.requantize`."""
    def codes(ints, u):
        m, sh = fixed_point_multiplier(float(u / np.float64(spec.scale)), MULT_BITS)
        return requantize(ints, m, sh, spec.fmt, spec.zero_point)
    return _per_unit(t, codes)


#: where GELU (the exact form) has its minimum, -0.7517915…: it falls before, rises after
GELU_MIN = -0.7517915246


def gelu_table(unit: float, spec: QuantSpec) -> tuple[list[int], list[int]]:
    """``spec``'s codes of GELU(``x · unit``) for every integer ``x``, as a threshold table
    (:func:`quant.reference.breakpoints`: what :class:`hw.activation.TableActivation` stores;
    GELU in float64). Below ``-40 / unit`` GELU is -0.0; above the format's largest value (plus
    40) the codes saturate."""
    return _gelu_table(float(unit), spec.fmt, float(spec.scale), spec.zero_point)


@lru_cache(maxsize=256)
def _gelu_table(unit: float, fmt: str, scale: float, zero_point: int) -> tuple[list[int], list[int]]:
    spec = QuantSpec(fmt, np.float64(scale), zero_point)
    f = parse_format(fmt)
    top = scale * (f.max_int - zero_point if isinstance(f, IntFormat) else f.max_value)
    lo, hi = -math.ceil(40.0 / unit), math.ceil((40.0 + 2 * abs(top)) / unit)
    return breakpoints(lambda x: spec.codes(_gelu(x * unit)), lo, hi, (round(GELU_MIN / unit),))


def _activate(t: Exact, spec: QuantSpec) -> np.ndarray:
    """``spec``'s codes of GELU of the exact tensor ``t``: per unit, its threshold table
    (:func:`gelu_table`) applied to the integers."""
    return _per_unit(t, lambda ints, u: apply_breakpoints(ints, *gelu_table(u, spec)))


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU (the exact form, ``x · Φ(x)``) in float64."""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _layer_norm(a: Exact, gamma: np.ndarray, beta: np.ndarray, eps: float) -> Exact:
    """LayerNorm over the last axis: the rows in one unit ``u`` (:func:`_common`),
    :func:`quant.reference.normalize` with ``extra = round(D² · eps / u²)``, then ``γ · ν + β`` as
    integers in units ``|γ| · 2^-NORM_FRAC_BITS`` per channel (``β`` rounded to them)."""
    a = _common(a)
    d, u = a.ints.shape[-1], float(a.unit.flat[0])
    extra = int(round(d * d * eps / (u * u)))
    rows = a.ints.reshape(-1, d)
    nu = np.array([normalize(list(r), extra) for r in rows], dtype=object).reshape(a.ints.shape)
    unit = np.where(gamma != 0, np.abs(gamma), 1.0) * 2.0**-NORM_FRAC_BITS
    sign = np.sign(gamma).astype(np.int64).astype(object)
    bias = np.round(beta / unit).astype(np.int64).astype(object)
    return Exact(nu * sign + bias, np.broadcast_to(unit, a.unit.shape).copy())
