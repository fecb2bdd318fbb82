"""A QONNX graph (:class:`quant.qonnx_import.QGraph`) as a dataflow accelerator plan
(:class:`hw.dataflow.plan.NetworkPlan`): convolutions become address tables of their windows
(zero padding, strides), pools tables of theirs, flattens vanish (frames stay in C, H, W order),
scales become per-channel fixed-point requantizers and biases accumulator steps (the integers
:func:`quant.qonnx_import.execute_int` computes with: ``QLayer.requant_pairs``,
``QLayer.bias_steps``), and the lanes of each MAC stage come from the user or from
:func:`auto_lanes`.
"""

from __future__ import annotations

import numpy as np

from costmodel.requant_cost import requant_cost, threshold_cost
from hw.activation import thresholds
from hw.arith import acc_bits, unit_exponent
from hw.dataflow.plan import NetworkPlan, Stage, conv_windows, element_bits, pool_windows
from hw.devices import get_device
from hw.requant import RequantSpec
from hw.sparse import NMPatternError, compress
from quant.formats import IntFormat, MinifloatFormat, parse_format
from quant.qonnx_import import MULT_BITS, QFlatten, QGraph, QLayer, QPool, QRequant, QResidual, QuantSpec, output_quant
from quant.reference import decode, encode, fixed_point_multiplier

__all__ = ["plan_network", "auto_lanes", "fits_nm", "DEFAULT_MAX_LANES", "REQUANT_UNITS"]

#: multipliers ``--lanes auto`` may spend over the whole network
DEFAULT_MAX_LANES = 64


def auto_lanes(work: list[tuple[int, int]], max_lanes: int = DEFAULT_MAX_LANES) -> list[int]:
    """Lanes per MAC stage that balance their cycles: ``work`` holds each stage's (outputs, K);
    a stage takes ``outputs · ceil(K / lanes)`` cycles per frame. Greedy: widen the slowest stage
    to its next lane count that saves a beat, while the total stays within ``max_lanes``
    multipliers (at least one per stage)."""
    lanes = [1] * len(work)
    cycles = lambda s: work[s][0] * -(-work[s][1] // lanes[s])  # noqa: E731
    while True:
        s = max(range(len(work)), key=cycles)
        n, k = work[s]
        beats = -(-k // lanes[s])
        if beats == 1:
            return lanes
        wider = -(-k // (beats - 1))  # fewest lanes giving one beat less
        if sum(lanes) - lanes[s] + wider > max_lanes:
            return lanes
        lanes[s] = wider


def fits_nm(weights: np.ndarray, n: int, m: int, segments: tuple[int, ...] | None = None) -> bool:
    """Whether every group of ``m`` consecutive weights along each row (zero-padded to whole
    groups, counted from the start of each segment) holds at most ``n`` non-zeros
    (:func:`hw.sparse.compress` accepts them)."""
    cuts = np.cumsum((0, *(segments or (weights.shape[1],))))
    try:
        for a, b in zip(cuts, cuts[1:]):
            part = weights[:, a:b]
            compress(np.pad(part, ((0, 0), (0, -part.shape[1] % m))), n, m)
    except NMPatternError:
        return False
    return True


def _sparse_lanes(dense: int, n: int, m: int) -> int:
    """Multipliers of an N:M stage covering at least ``dense`` window elements per beat."""
    return max(1, -(-dense // m)) * n


def plan_network(graph: QGraph, lanes: list[int] | str | int = "auto", pipeline: int = 1,
                 max_lanes: int = DEFAULT_MAX_LANES, name: str = "net", nm: tuple[int, int] | None = None,
                 requant: str = "auto", device: str = "xc7z020") -> NetworkPlan:
    """The accelerator plan of ``graph``.

    Parameters
    ----------
    lanes : one count per layer with weights, one count for all, or ``"auto"`` (:func:`auto_lanes`
        under ``max_lanes`` multipliers). For an N:M layer the count is its dense window
        elements per beat, rounded up to whole groups (its multipliers are ``N/M`` of that).
    pipeline : MAC pipeline registers of every layer.
    nm : ``(N, M)``: every layer whose weights fit the pattern (:func:`fits_nm`) becomes an N:M
        sparse stage; the others stay dense.
    requant : :data:`REQUANT_UNITS`: every requantizer a fixed-point multiplier, every one a
        threshold table (:func:`hw.activation.thresholds`, a rescale folded in: FINN's
        MultiThreshold), or per stage whichever the cost model says takes fewer LUTs on
        ``device`` (``auto``; a table never takes a DSP). The codes are the same either way.

    A residual join (:class:`~quant.qonnx_import.QResidual`) becomes one combining stage
    (:attr:`hw.dataflow.plan.Stage.segments`: the body's last layer and the shortcut, each with its
    own accumulator unit): its skip tensor rides through the body's stages as extra identity
    channels (weight 1 at the window's centre, requantization by exactly 1), so the chain stays a
    chain — correct, but those stages spend MAC beats on the copies (see :func:`_carry_rows`).
    """
    ops = [op for op in graph.layers if not isinstance(op, QFlatten)]
    carried = _carried_ops(ops)
    stages, spec = [], graph.in_quant  # the quantizer of the tensor the next stage reads
    relu = False  # whether that tensor (or the one it re-quantizes) came out of a ReLU
    in_size = int(np.prod(graph.input_shape[1:]))
    carry: dict | None = None  # the skip tensor riding along: channels, format, whether non-negative, stride so far
    for i, op in enumerate(ops):
        if isinstance(op, QRequant):
            if carry is not None:
                raise ValueError(f"node {op.name} (Quant): a re-quantization inside a residual block is not supported")
            _fold_rescale(stages, op, spec)
            spec = op.quant
            continue
        if isinstance(op, QPool):
            if carry is not None or i in carried:
                raise ValueError(f"node {op.name} (MaxPool): pooling inside a residual block is not supported")
            win = pool_windows(op.in_shape, op.kernel, op.stride)
            stages.append(Stage(op.name, "pool", spec.fmt, in_size, win))
            in_size = stages[-1].out_size
            continue
        if isinstance(op, QResidual):
            if spec.zero_point or op.out_quant.zero_point or op.skip_quant.zero_point:
                raise ValueError(f"node {op.name} (Add): residual blocks with zero points are not supported")
            stages.append(_residual_stage(op, spec, in_size, carry, nm))
            carry = None
            spec, relu, in_size = op.out_quant, op.relu, stages[-1].out_size
            continue
        if i in carried and carry is None:  # this layer reads the skip tensor: carry its own input
            c = op.in_shape[0] if op.kind == "conv" else 0
            carry = {"channels": c, "fmt": spec.fmt, "nonneg": _nonnegative(spec, relu), "stride": 1, "own": True}
        shape3 = op.in_shape if op.kind == "conv" else (1, 1, in_size)
        w = op.weight.reshape(op.weight.shape[0], -1)
        steps = op.bias_steps(spec.step)
        bias = tuple(int(b) for b in steps) if steps is not None else (0,) * len(w)
        if spec.zero_point:  # the MACs see codes: Σ w·(q - zp) = Σ w·q - zp·Σ w (padding reads zp)
            bias = tuple(int(b) - spec.zero_point * int(row.sum()) for b, row in
                         zip(bias, op.weight_quant.ints(w).astype(object)))
        pairs = op.requant_pairs(spec.step) if op.out_quant is not None else None
        if carry is not None:
            if spec.zero_point:
                raise ValueError(f"node {op.name}: residual blocks with zero points are not supported")
            shape3, w, bias, pairs = _carry_rows(op, carry, w, bias, pairs)
        win = conv_windows(shape3, op.weight.shape[2:], op.stride, op.pads) if op.kind == "conv" else \
            np.arange(in_size)[None]
        sparse = nm if nm is not None and fits_nm(w, *nm) else None
        common = dict(weights=w, wfmt=op.weight_quant.fmt, lanes=sparse[0] if sparse else 1, pipeline=0, nm=sparse,
                      pad_code=spec.zero_point)
        if op.out_quant is None:
            stages.append(Stage(op.name, "mac", spec.fmt, in_size, win, bias=bias, relu=op.relu, **common))
        else:
            rq = RequantSpec(acc_bits(op.weight_quant.fmt, spec.fmt, win.shape[1]), tuple(m for m, _ in pairs),
                             tuple(s for _, s in pairs), op.out_quant.fmt, zero_point=op.out_quant.zero_point,
                             relu=op.relu, biases=None if not any(bias) else bias)
            stages.append(Stage(op.name, "mac", spec.fmt, in_size, win, requant=rq, **common))
            spec, relu = op.out_quant, op.relu
        if carry is not None:
            carry.update(own=False, stride=carry["stride"] * op.stride[0])
        in_size = stages[-1].out_size
    _set_lanes(stages, lanes, pipeline, max_lanes)
    _choose_requantizers(stages, requant, get_device(device).target)
    return NetworkPlan(name, stages)


#: how ``plan_network`` requantizes (its ``requant``)
REQUANT_UNITS = ("multiplier", "thresholds", "auto")


def _choose_requantizers(stages: list[Stage], mode: str, target: str) -> None:
    """Every multiplier requantizer (and its rescale) as a threshold table where ``mode`` says so
    (:func:`plan_network`)."""
    if mode not in REQUANT_UNITS:
        raise ValueError(f"requantizers {mode!r}: choose one of {', '.join(REQUANT_UNITS)}")
    if mode == "multiplier":
        return
    for st in stages:
        if not isinstance(st.requant, RequantSpec):
            continue
        table = thresholds(st.requant, st.rescale)
        if mode == "auto":
            now = requant_cost(st.requant, target)["lut"] + (requant_cost(st.rescale, target)["lut"] if st.rescale else 0)
            if threshold_cost(table, target)["lut"] >= now:
                continue
        st.requant, st.rescale = table, None
        st.__post_init__()


def _set_lanes(stages: list[Stage], lanes: list[int] | str | int, pipeline: int, max_lanes: int) -> None:
    """Lanes (and the pipeline depth they allow) of every MAC stage: given, or balanced by
    :func:`auto_lanes` over the stages' (outputs, K)."""
    macs = [st for st in stages if st.kind == "mac"]
    work = [(st.channels * st.positions, st.k) for st in macs]
    if lanes == "auto":
        per = auto_lanes(work, max_lanes)
    elif isinstance(lanes, int):
        per = [min(lanes, k) for _, k in work]
    else:
        per = list(lanes)
        if len(per) != len(macs):
            raise ValueError(f"{len(per)} lane counts for {len(macs)} layers with weights; give one per layer")
    for st, ln in zip(macs, per):
        st.lanes = _sparse_lanes(ln, *st.nm) if st.nm else min(ln, st.k)
        st.pipeline = min(pipeline, 1 + (st.lanes - 1).bit_length())
        st.__post_init__()


def _carried_ops(ops: list) -> set[int]:
    """Indices into ``ops`` of the layers a residual join's skip tensor must ride through: from
    the layer that reads the skip tensor up to the join."""
    produced, carried = [-1], set()  # the op index that produced each quantized tensor (-1: the input)
    for i, op in enumerate(ops):
        if isinstance(op, QResidual):
            carried |= set(range(produced[op.skip_from] + 1, i))
        if output_quant(op) is not None:
            produced.append(i)
    return carried


def _nonnegative(spec: QuantSpec, relu: bool) -> bool:
    """Whether a tensor quantized by ``spec`` holds no negative value: it (or the tensor it
    re-quantizes) came out of a ReLU, or its format is unsigned."""
    f = parse_format(spec.fmt)
    return relu or (isinstance(f, IntFormat) and not f.signed)


def _carry_rows(op: QLayer, carry: dict, w: np.ndarray, bias: tuple[int, ...], pairs: list | None):
    """A conv layer that carries the skip tensor: its input is ``[x ‖ skip]`` (or ``x`` itself,
    the skip tensor, in the first such layer); its weights gain zero columns for the carried
    channels and one identity row per carried channel (1 at the window's centre), requantized by
    exactly 1 with bias 0. Returns the input shape, weights, biases and requantization pairs."""
    where = f"node {op.name} ({'Conv' if op.kind == 'conv' else 'Gemm'})"
    if op.kind != "conv" or op.out_quant is None:
        raise ValueError(f"{where}: a residual block's body must be quantized convolutions")
    kh, kw = op.weight.shape[2:]
    if kh % 2 == 0 or kw % 2 == 0 or op.pads != (kh // 2, kw // 2, kh // 2, kw // 2) or op.stride[0] != op.stride[1]:
        raise ValueError(f"{where}: a residual block's body needs odd kernels with 'same' padding and square strides "
                         "(the skip tensor rides through each layer's window centre)")
    if parse_format(op.out_quant.fmt) != parse_format(carry["fmt"]):
        raise ValueError(f"{where}: the skip tensor ({carry['fmt']}) and this layer's output ({op.out_quant.fmt}) "
                         "must share one format")
    if op.relu and not carry["nonneg"]:
        raise ValueError(f"{where}: a ReLU layer cannot carry a skip tensor that may be negative")
    cx, h, wd = op.in_shape
    cs = carry["channels"]
    total = cx if carry["own"] else cx + cs
    first = 0 if carry["own"] else cx  # the carried channels' index in the input
    real = np.zeros((len(w), total, kh, kw), dtype=np.int64)
    real[:, :cx] = op.weight
    one, ratio = _identity(op.weight_quant.fmt, carry["fmt"])
    ident = np.zeros((cs, total, kh, kw), dtype=np.int64)
    ident[np.arange(cs), first + np.arange(cs), kh // 2, kw // 2] = one
    weights = np.concatenate([real, ident]).reshape(len(w) + cs, -1)
    return ((total, h, wd), weights, (*bias, *(0,) * cs), [*pairs, *[fixed_point_multiplier(ratio, MULT_BITS)] * cs])


def _identity(wfmt: str, fmt: str) -> tuple[int, float]:
    """The weight element of value 1 in ``wfmt`` and the (power-of-two) requantization ratio that
    turns its products with ``fmt``'s elements back into those elements: the weight's integer is
    ``2^-k_w``, so an integer output needs ``2^k_w``, a minifloat output (rounded as a value)
    ``2^(k_w + k_a)``."""
    w, a = parse_format(wfmt), parse_format(fmt)
    one = int(encode(np.array([1.0]), w)[0]) if isinstance(w, MinifloatFormat) else 1
    if isinstance(w, MinifloatFormat) and decode(np.array([one]), w)[0] != 1.0:
        raise ValueError(f"weight format {wfmt} cannot hold 1, which carrying a skip tensor needs")
    return one, 2.0 ** (unit_exponent(w) + (unit_exponent(a) if isinstance(a, MinifloatFormat) else 0))


def _residual_stage(op: QResidual, spec: QuantSpec, in_size: int, carry: dict | None,
                    nm: tuple[int, int] | None) -> Stage:
    """The combining stage of a residual join: segment 0 the body's last layer over ``x``, segment
    1 the shortcut (a 1x1 layer, or the identity) over the carried skip tensor."""
    where = f"node {op.name} (Add)"
    main = op.main
    if main.kind != "conv" or carry is None or carry["own"]:
        raise ValueError(f"{where}: only residual joins of convolutions whose body has at least two layers are "
                         "supported")
    cx, h, wd = main.in_shape
    cs, o = carry["channels"], len(main.weight)
    main_win = conv_windows((cx, h, wd), main.weight.shape[2:], main.stride, main.pads)
    skip_stride = carry["stride"] * main.stride[0]
    if op.skip is not None:
        if op.skip.weight.shape[2:] != (1, 1) or op.skip.pads != (0, 0, 0, 0) or op.skip.stride != (skip_stride,) * 2:
            raise ValueError(f"{where}: the shortcut must be a 1x1 convolution without padding and stride "
                             f"{skip_stride} (the body's)")
        skip_w = op.skip.weight.reshape(o, -1)
    else:
        if cs != o or skip_stride != 1 or not isinstance(parse_format(main.weight_quant.fmt), IntFormat):
            raise ValueError(f"{where}: an identity shortcut needs as many channels as the body's output, stride 1 "
                             "and integer weights")
        skip_w = np.eye(o, dtype=np.int64)
    skip_win = conv_windows((cs, h, wd), (1, 1), main.stride, (0, 0, 0, 0)) + cx * h * wd
    windows = np.concatenate([main_win, skip_win], axis=1)
    weights = np.concatenate([main.weight.reshape(o, -1), skip_w], axis=1)
    segments = (main_win.shape[1], cs)
    if op.skip is not None and op.skip.weight_quant.fmt != main.weight_quant.fmt:
        raise ValueError(f"{where}: the body's and the shortcut's weights must share one format")
    m_main, m_skip, bias, _ = op.integers(spec.step)
    sparse = nm if nm is not None and fits_nm(weights, *nm, segments) else None
    st = Stage(op.name, "mac", spec.fmt, in_size, windows, weights, main.weight_quant.fmt, sparse[0] if sparse else 1, 0,
               None, bias=tuple(int(b) for b in bias), relu=op.relu, nm=sparse, segments=segments,
               seg_mults=(tuple(int(v) for v in m_main), tuple(int(v) for v in m_skip)), mean=op.mean)
    pairs = op.requant_pairs(spec.step)
    st.requant = RequantSpec(st.combined_bits, tuple(m for m, _ in pairs), tuple(s for _, s in pairs), op.out_quant.fmt)
    st.__post_init__()
    return st


def _fold_rescale(stages: list[Stage], op: QRequant, spec: QuantSpec) -> None:
    """Fold a re-quantization of ``spec``'s codes into the last MAC stage (monotone: it commutes
    with the pools after that stage, whose formats change with it); the old zero point comes off
    as a bias, the new one is the requantizer's."""
    macs = [i for i, st in enumerate(stages) if st.kind == "mac"]
    if not macs or stages[macs[-1]].requant is None or stages[macs[-1]].rescale is not None:
        raise ValueError(f"node {op.name} (Quant): a re-quantization must follow one quantized layer output; "
                         "this one follows the network input or another re-quantization")
    st = stages[macs[-1]]
    m, sh = op.requant_pair(spec.step)
    st.rescale = RequantSpec(element_bits(spec.fmt), (m,), (sh,), op.quant.fmt, zero_point=op.quant.zero_point,
                             biases=(-spec.zero_point,) if spec.zero_point else None)
    st.__post_init__()
    for later in stages[macs[-1] + 1:]:
        later.in_fmt = op.quant.fmt

