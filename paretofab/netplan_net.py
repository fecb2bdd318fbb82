"""A QONNX graph read by the general front end (:class:`quant.qonnx_net.QNet`: an MLP-Mixer's
LayerNorms, GELUs, transposes and residual sums) as a dataflow accelerator plan
(:class:`hw.dataflow.plan.NetworkPlan`) that computes exactly what :func:`quant.qonnx_net.execute_net`
computes.

Every tensor is either in a frame some stage writes (its elements' frame addresses, so transposes
and reshapes cost nothing: they permute addresses the next stage's windows read) or *pending*: a
layer's accumulators waiting for their bias, activation and quantizer, or a row computation (a
residual sum, a LayerNorm, a mean) waiting for its quantizer. A pending value becomes a stage when
something needs it in a frame:

- a ``MatMul`` / ``Gemm`` (+ bias) followed by a quantizer is one MAC stage with a per-channel
  requantizer (a GELU before the quantizer: a threshold table per channel,
  :func:`quant.qonnx_net.gelu_table`); not followed by one, it writes its raw accumulators plus
  bias;
- a residual ``Add`` of two frames is a row stage reading the later one as its main input and the
  earlier one as its skip input (:class:`hw.dataflow.row.RowStage`), both brought to the common
  unit; a ``LayerNormalization`` (of such a sum, when nothing else reads the sum) and a
  ``ReduceMean`` over the rows fold into the same row stage, and so does the quantizer after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.activation import ActivationSpec
from hw.dataflow.plan import NetworkPlan, Stage, schedule
from hw.dataflow.row import RowStage
from hw.devices import get_device
from hw.requant import RequantSpec
from quant.qonnx_import import MULT_BITS, QGraph, QonnxError, QuantSpec, load_model, read_qonnx
from quant.qonnx_net import NetOp, QNet, common_unit, gelu_table, read_net, unit_ratios
from quant.reference import NORM_FRAC_BITS, fixed_point_multiplier

from .netplan import DEFAULT_MAX_LANES, _choose_requantizers, _set_lanes, fits_nm

__all__ = ["NetAccelerator", "plan_net", "read_model"]


#: the float network input, before its quantizer
_INPUT = object()


@dataclass
class _Frame:
    """A tensor in a frame: the stage writing it (-1: the network input), every element's frame
    address, and its elements' meaning: codes of ``spec``, or raw integers times ``unit``."""

    stage: int
    addr: np.ndarray
    spec: QuantSpec | None = None
    unit: np.ndarray | None = None


@dataclass
class _Mac:
    """A layer's accumulators (+ bias) waiting for their activation and quantizer."""

    op: NetOp
    src: _Frame
    bias: np.ndarray  # per output channel, integers in ``unit``
    unit: np.ndarray  # per output channel
    relu: bool = False
    gelu: bool = False


@dataclass
class _Row:
    """A row computation waiting for its quantizer (:class:`hw.dataflow.row.RowStage`'s fields;
    ``unit``: of every output value, the output tensor's shape)."""

    name: str
    main: _Frame
    mults: np.ndarray
    unit: np.ndarray
    skip: _Frame | None = None
    skip_mults: np.ndarray | None = None
    extra: int | None = None
    gains: np.ndarray | None = None  # per column; None: 1 (no LayerNorm yet)
    biases: np.ndarray | None = None  # per column; None: 0
    mean: bool = False
    view: np.ndarray | None = None  # the output tensor's positions in the stage's output frame (None: as computed)

    def __post_init__(self) -> None:
        if self.gains is None:
            self.gains = np.ones(self.d, dtype=object)
        if self.biases is None:
            self.biases = np.zeros(self.d, dtype=object)

    @property
    def d(self) -> int:
        return self.main.addr.shape[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the values as computed: the rows', or one row with :attr:`mean`."""
        return (self.d,) if self.mean else self.main.addr.shape

    def positions(self) -> np.ndarray:
        """The output tensor's positions in the stage's output frame."""
        return self.view if self.view is not None else np.arange(int(np.prod(self.shape))).reshape(self.shape)


@dataclass
class NetAccelerator:
    """A :class:`QNet` as a plan, with what it takes to read the accelerator's output.

    Attributes
    ----------
    plan : the stages.
    in_spec : the quantizer of the network input (the plan's input codes).
    out_addr : the output frame's address of every element of the output tensor (its shape).
    out_spec, out_unit : the output's quantizer (codes) or the unit of its raw integers.
    tensors : every quantized tensor a stage writes (by name, as :func:`quant.qonnx_net.execute_net`
        returns its codes): the stage and the frame address of each element.
    """

    plan: NetworkPlan
    in_spec: QuantSpec
    out_addr: np.ndarray
    out_spec: QuantSpec | None
    out_unit: np.ndarray | None
    tensors: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)

    def tensor(self, name: str, stages: list[np.ndarray]) -> np.ndarray:
        """The elements of the quantized tensor ``name`` (batch first) from every stage's output
        frames (:func:`hw.dataflow.plan.run_plan`, or a simulation's)."""
        s, addr = self.tensors[name]
        return np.asarray(stages[s])[:, addr.ravel()].reshape(len(stages[s]), *addr.shape).astype(np.int64)

    def input_codes(self, x: np.ndarray) -> np.ndarray:
        """The plan's input frames (frames, in_size) of float inputs ``x`` (batch first)."""
        x = np.asarray(x, dtype=np.float64)
        return self.in_spec.codes(x.reshape(len(x), -1))

    def outputs(self, frames: np.ndarray) -> np.ndarray:
        """The output tensor's real values (batch first) from the last stage's output frames."""
        frames = np.asarray(frames)
        picked = frames[:, self.out_addr.ravel()].reshape(len(frames), *self.out_addr.shape)
        if self.out_spec is not None:
            return self.out_spec.ints(picked.astype(np.int64)).astype(np.float64) * self.out_spec.step
        return picked.astype(np.float64) * self.out_unit


def read_model(path: str | Path) -> QGraph | QNet:
    """A QONNX file as a chain of layers (:func:`quant.qonnx_import.read_qonnx`) or, when the chain
    cannot hold it (an MLP-Mixer), as exact integer ops (:func:`quant.qonnx_net.read_net`); a
    file neither reads raises the chain reader's error. The file is loaded once, for both."""
    model = load_model(Path(path))
    try:
        return read_qonnx(path, model)
    except QonnxError as chain_error:
        try:
            return read_net(path, model)
        except QonnxError:
            raise chain_error from None


def _uses(net: QNet) -> dict[str, int]:
    """How many ops (or the graph output) read each tensor."""
    uses: dict[str, int] = {net.output: 1}
    for op in net.ops:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    return uses


def plan_net(net: QNet, lanes: list[int] | str | int = "auto", pipeline: int = 1,
             max_lanes: int = DEFAULT_MAX_LANES, name: str = "net", nm: tuple[int, int] | None = None,
             requant: str = "auto", device: str = "xc7z020") -> NetAccelerator:
    """The accelerator of ``net`` (module docstring); the options as
    :func:`paretofab.netplan.plan_network` takes them (``lanes`` and ``nm`` for the MAC stages;
    row stages take one element per cycle).

    Raises
    ------
    QonnxError
        A graph this mapping does not take (named: the node and why).
    """
    b = _Builder(net, nm)
    out = b.run()
    macs = [st for st in b.stages if isinstance(st, Stage)]
    _set_lanes(macs, lanes, pipeline, max_lanes)
    _choose_requantizers(macs, requant, get_device(device).target)
    plan = NetworkPlan(name, b.stages)
    _shrink_skip_depths(plan)
    tensors = {t: (v.stage, v.addr) for t, v in b.env.items() if isinstance(v, _Frame) and v.spec is not None
               and v.stage >= 0}
    return NetAccelerator(plan, b.in_spec, out.addr, out.spec, out.unit, tensors)


#: frames :func:`_shrink_skip_depths` compares schedules over (steady state within a few)
DEPTH_FRAMES = 32


def _shrink_skip_depths(plan: NetworkPlan) -> None:
    """Each skip reader's ``skip_depth`` cut to the fewest frames that keep the schedule of
    :data:`DEPTH_FRAMES` inferences as fast as with the frames that can be in flight between the
    skip's source and its reader (twice the stages between them, the planner's first choice): skip
    banks are whole frames of wide raw integers, the largest memories of a Mixer."""
    readers = [st for st in plan.stages if isinstance(st, RowStage) and st.skip is not None]
    best = schedule(plan, DEPTH_FRAMES).cycles
    for st in readers:
        full = st.skip_depth
        for depth in range(1, full):
            st.skip_depth = depth
            if schedule(plan, DEPTH_FRAMES).cycles <= best:
                break
        else:
            st.skip_depth = full


class _Builder:
    """The walk of :func:`plan_net` over the ops."""

    def __init__(self, net: QNet, nm: tuple[int, int] | None) -> None:
        self.net, self.nm, self.uses = net, nm, _uses(net)
        self.stages: list[Stage | RowStage] = []
        self.in_spec: QuantSpec | None = None
        self.env: dict[str, object] = {}

    def run(self) -> _Frame:
        for op in self.net.ops:
            val = self.op(op)
            if isinstance(val, (_Mac, _Row)) and self.uses.get(op.output, 0) > 1:
                val = self.materialize(val)  # more than one reader: into a frame
            self.env[op.output] = val
        out = self.env[self.net.output]
        out = self.materialize(out) if not isinstance(out, _Frame) else out
        if out.stage != len(self.stages) - 1 or not self.stages:
            raise QonnxError(f"{self.net.output}: the output must be computed by the last stage")
        return out

    # ---- ops ----------------------------------------------------------------------------------

    def op(self, op: NetOp):
        where = f"node {op.name} ({op.kind})"
        a = self.env.get(op.inputs[0], _INPUT)
        if a is _INPUT:  # the float input: reshaped, then quantized once
            if op.kind == "Reshape":
                return _INPUT
            if op.kind != "Quant" or self.in_spec is not None:
                raise QonnxError(f"{where}: the accelerator's input must be quantized once, first")
            self.in_spec = op.spec
            return _Frame(-1, np.arange(int(np.prod(op.shape))).reshape(op.shape), spec=op.spec)
        if op.kind == "Quant":
            if isinstance(a, _Mac):
                return self.mac_stage(a, op.spec)
            if isinstance(a, _Frame):
                if a.spec is not None:
                    raise QonnxError(f"{where}: re-quantizing quantized codes is not supported here")
                a = self.row_of(op.name, a)
            return self.row_stage(a, op.spec, where)
        if op.kind in ("Reshape", "Transpose"):
            perm = op.const if op.kind == "Transpose" else None
            move = (lambda t: t.transpose(perm)) if perm is not None else (lambda t: t.reshape(op.shape))
            if isinstance(a, _Row):  # its quantizer commutes with moving elements
                a.view = move(a.positions())
                return a
            a = self.materialize(a)
            return _Frame(a.stage, move(a.addr), a.spec, None if a.unit is None else move(a.unit))
        if op.kind in ("MatMul", "Gemm"):
            if not isinstance(a, _Frame) or a.spec is None:
                raise QonnxError(f"{where}: a layer must read quantized codes")
            step = float(np.ravel(a.spec.step)[0])
            w = op.weight_quant.ints(op.weight).astype(object)
            bias = -a.spec.zero_point * w.sum(axis=1) if a.spec.zero_point else np.zeros(len(w), dtype=object)
            return _Mac(op, a, bias, step * np.broadcast_to(op.weight_quant.step, (len(w),)).astype(np.float64))
        if op.kind == "Bias":
            if not isinstance(a, _Mac) or a.gelu or a.relu:
                raise QonnxError(f"{where}: a bias must follow a layer directly")
            const = np.asarray(op.const[0], np.float64).reshape(-1, len(a.unit))
            if not np.all(const == const[:1]):
                raise QonnxError(f"{where}: the bias must be one per output channel")
            a.bias = a.bias + np.round(const[0] / a.unit).astype(np.int64).astype(object)
            return a
        if op.kind in ("Gelu", "Relu"):
            if not isinstance(a, _Mac) or a.gelu or a.relu:
                raise QonnxError(f"{where}: an activation must follow a layer (and its bias) directly")
            setattr(a, op.kind.lower(), True)
            return a
        if op.kind == "Add":
            return self.add(op, where)
        if op.kind == "LayerNormalization":
            return self.layer_norm(op, a)
        if op.kind == "ReduceMean":
            pending = isinstance(a, _Row) and not a.mean and a.view is None
            row = a if pending else self.row_of(op.name, self.materialize(a))
            if tuple(sorted(op.const)) != tuple(range(row.main.addr.ndim - 1)) or row.main.addr.ndim < 2:
                raise QonnxError(f"{where}: only a mean over every axis but the last is supported")
            cols = row.unit.reshape(-1, row.d)
            if not np.all(cols == cols[:1]):
                raise QonnxError(f"{where}: a mean needs one unit per column")
            row.mean, row.unit = True, cols[0] / len(cols)
            return row
        raise QonnxError(f"{where}: no accelerator stage for this op")

    def add(self, op: NetOp, where: str) -> _Row:
        """A residual sum: a row stage reading the later frame as main, the earlier as skip."""
        x, y = (self.materialize(self.env[i]) for i in op.inputs)
        main, skip = (x, y) if x.stage > y.stage else (y, x)
        if main.stage != len(self.stages) - 1 or skip.stage < 0 or skip.stage > len(self.stages) - 2:
            raise QonnxError(f"{where}: a residual sum must join the last stage's output with an earlier stage's "
                             "(not the network input)")
        um, us = self.units(main), self.units(skip)
        unit = common_unit(um, us)
        d = main.addr.shape[-1]
        ratio = lambda u: unit_ratios(u, unit).reshape(-1, d)  # noqa: E731
        return _Row(op.name, main, ratio(um), np.full(main.addr.shape, unit), skip=skip, skip_mults=ratio(us))

    def layer_norm(self, op: NetOp, a) -> _Row:
        """LayerNorm over the last axis: of a pending sum nothing else reads, or of a frame; then
        γ, β on their grid (as :func:`quant.qonnx_net._layer_norm`)."""
        if isinstance(a, _Row) and a.extra is None and not a.mean and a.view is None and np.all(a.gains == 1) and \
                not np.any(a.biases):
            row = a
        else:
            row = self.row_of(op.name, self.materialize(a))
        gamma, beta, eps = op.const
        u = row.unit.reshape(-1)
        if not np.all(u == u[0]):  # the common unit of the row's values (quant.qonnx_net._common)
            common = common_unit(u)
            scale = unit_ratios(row.unit.reshape(-1, row.d), common)
            row.mults = row.mults * scale
            if row.skip_mults is not None:
                row.skip_mults = row.skip_mults * scale
            u = np.full(u.shape, common)
        d, unit = row.d, float(u[0])
        row.extra = int(round(d * d * eps / (unit * unit)))
        out_unit = np.where(gamma != 0, np.abs(gamma), 1.0) * 2.0**-NORM_FRAC_BITS
        row.gains = np.sign(gamma).astype(np.int64).astype(object)
        row.biases = np.round(beta / out_unit).astype(np.int64).astype(object)
        row.unit = np.broadcast_to(out_unit, row.main.addr.shape).copy()
        row.name = op.name
        return row

    # ---- stages ---------------------------------------------------------------------------------

    def units(self, f: _Frame) -> np.ndarray:
        """The unit of every element of a frame's exact integers."""
        if f.spec is not None:
            if f.spec.zero_point:
                raise QonnxError("a row op on codes with a zero point is not supported")
            return np.full(f.addr.shape, float(np.ravel(f.spec.step)[0]))
        return f.unit

    def row_of(self, name: str, f: _Frame) -> _Row:
        """The identity row computation of a frame (to normalize, average or quantize it)."""
        d = f.addr.shape[-1]
        return _Row(name, f, np.ones(f.addr.shape, dtype=object).reshape(-1, d), self.units(f).copy())

    def materialize(self, v) -> _Frame:
        """A pending value as a stage's raw output frame."""
        if isinstance(v, _Frame):
            return v
        if isinstance(v, _Mac):
            return self.mac_stage(v, None)
        return self.row_stage(v, None, f"node {v.name}")

    def mac_stage(self, m: _Mac, spec: QuantSpec | None) -> _Frame:
        """The MAC stage of a layer: requantized to ``spec`` (through GELU's table with ``gelu``),
        or raw accumulators plus bias."""
        src, op = m.src, m.op
        if src.stage != len(self.stages) - 1:
            raise QonnxError(f"node {op.name}: reads a tensor that is not the last stage's output")
        k = src.addr.shape[-1]
        windows = src.addr.reshape(-1, k)
        positions, channels = len(windows), len(op.weight)
        sparse = self.nm if self.nm is not None and fits_nm(op.weight, *self.nm) else None
        common = dict(weights=op.weight, wfmt=op.weight_quant.fmt, lanes=sparse[0] if sparse else 1, pipeline=0,
                      nm=sparse, pad_code=src.spec.zero_point)
        bias = tuple(int(b) for b in m.bias)
        in_size = self.frame_size(src)
        addr = (np.arange(channels)[None, :] * positions + np.arange(positions)[:, None]).reshape(*op.shape)
        if spec is None:
            if m.gelu:
                raise QonnxError(f"node {op.name}: a GELU's output must be quantized")
            st = Stage(op.name, "mac", src.spec.fmt, in_size, windows, bias=bias, relu=m.relu, **common)
            self.stages.append(st)
            return _Frame(len(self.stages) - 1, addr, unit=np.broadcast_to(m.unit, op.shape).copy())
        st = Stage(op.name, "mac", src.spec.fmt, in_size, windows, **common)
        if m.gelu:
            tables = [gelu_table(float(u), spec) for u in m.unit]
            st.requant = ActivationSpec(st.acc_bits, tuple(tuple(x - b for x in br) for (br, _), b in zip(tables, bias)),
                                        tuple(tuple(v) for _, v in tables), spec.fmt)
        else:
            pairs = [fixed_point_multiplier(float(u / np.float64(spec.scale)), MULT_BITS) for u in m.unit]
            st.requant = RequantSpec(st.acc_bits, tuple(p for p, _ in pairs), tuple(s for _, s in pairs), spec.fmt,
                                     zero_point=spec.zero_point, relu=m.relu, biases=bias if any(bias) else None)
        st.__post_init__()
        self.stages.append(st)
        return _Frame(len(self.stages) - 1, addr, spec=spec)

    def row_stage(self, r: _Row, spec: QuantSpec | None, where: str) -> _Frame:
        """The row stage of a pending row computation, requantized per column to ``spec`` or raw."""
        main, d = r.main, r.d
        if main.stage != len(self.stages) - 1:
            raise QonnxError(f"{where}: reads a tensor that is not the last stage's output (only residual sums read "
                             "an earlier one)")
        skip = {}
        if r.skip is not None:
            src = self.stages[r.skip.stage]
            skip = dict(skip=r.skip.stage, skip_fmt=src.out_fmt, skip_bits=src.out_bits,
                        skip_size=src.out_size, skip_windows=r.skip.addr.reshape(-1, d), skip_mults=r.skip_mults,
                        skip_depth=2 * (len(self.stages) - r.skip.stage))
        in_st = self.stages[main.stage] if main.stage >= 0 else None
        st = RowStage(r.name, main.spec.fmt if main.spec else None, in_st.out_bits if in_st else 0,
                      self.frame_size(main), main.addr.reshape(-1, d), r.mults, tuple(r.gains), tuple(r.biases),
                      extra=r.extra, mean=r.mean, **skip)
        addr = r.positions()
        if spec is not None:
            cols = r.unit.reshape(-1, d)
            if not np.all(cols == cols[:1]):
                raise QonnxError(f"{where}: the quantizer after this op needs one unit per column")
            pairs = [fixed_point_multiplier(float(u / np.float64(spec.scale)), MULT_BITS) for u in cols[0]]
            st.requant = RequantSpec(st.value_bits, tuple(p for p, _ in pairs), tuple(s for _, s in pairs), spec.fmt,
                                     zero_point=spec.zero_point)
            st.__post_init__()
            self.stages.append(st)
            return _Frame(len(self.stages) - 1, addr, spec=spec)
        self.stages.append(st)
        return _Frame(len(self.stages) - 1, addr, unit=r.unit.ravel()[addr])

    def frame_size(self, f: _Frame) -> int:
        """Elements of the frame holding ``f``."""
        return self.stages[f.stage].out_size if f.stage >= 0 else int(f.addr.size)
