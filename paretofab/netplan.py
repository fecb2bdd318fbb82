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

from hw.arith import acc_bits
from hw.dataflow.plan import NetworkPlan, Stage, conv_windows, element_bits, pool_windows
from hw.requant import RequantSpec
from hw.sparse import NMPatternError, compress
from quant.qonnx_import import QFlatten, QGraph, QLayer, QPool, QRequant

__all__ = ["plan_network", "auto_lanes", "fits_nm", "DEFAULT_MAX_LANES"]

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


def fits_nm(weights: np.ndarray, n: int, m: int) -> bool:
    """Whether every group of ``m`` consecutive weights along each row (zero-padded to whole
    groups) holds at most ``n`` non-zeros (:func:`hw.sparse.compress` accepts them)."""
    try:
        compress(np.pad(weights, ((0, 0), (0, -weights.shape[1] % m))), n, m)
    except NMPatternError:
        return False
    return True


def _sparse_lanes(dense: int, n: int, m: int) -> int:
    """Multipliers of an N:M stage covering at least ``dense`` window elements per beat."""
    return max(1, -(-dense // m)) * n


def plan_network(graph: QGraph, lanes: list[int] | str | int = "auto", pipeline: int = 1,
                 max_lanes: int = DEFAULT_MAX_LANES, name: str = "net", nm: tuple[int, int] | None = None) -> NetworkPlan:
    """The accelerator plan of ``graph``.

    Parameters
    ----------
    lanes : one count per layer with weights, one count for all, or ``"auto"`` (:func:`auto_lanes`
        under ``max_lanes`` multipliers). For an N:M layer the count is its dense window
        elements per beat, rounded up to whole groups (its multipliers are ``N/M`` of that).
    pipeline : MAC pipeline registers of every layer.
    nm : ``(N, M)``: every layer whose weights fit the pattern (:func:`fits_nm`) becomes an N:M
        sparse stage; the others stay dense.
    """
    ops = [op for op in graph.layers if not isinstance(op, QFlatten)]
    compute = [op for op in ops if isinstance(op, QLayer)]
    work = [(int(np.prod(op.out_shape)), int(np.prod(op.weight.shape[1:]))) for op in compute]
    if lanes == "auto":
        per = auto_lanes(work, max_lanes)
    elif isinstance(lanes, int):
        per = [min(lanes, k) for _, k in work]
    else:
        per = list(lanes)
        if len(per) != len(compute):
            raise ValueError(f"{len(per)} lane counts for {len(compute)} layers with weights; give one per layer")
    stages, fmt, s_in, li = [], graph.in_quant.fmt, graph.in_quant.step, 0
    in_size = int(np.prod(graph.input_shape[1:]))
    for op in ops:
        if isinstance(op, QRequant):
            _fold_rescale(stages, op, fmt, s_in)
            fmt, s_in = op.quant.fmt, op.quant.step
            continue
        if isinstance(op, QPool):
            win = pool_windows(op.in_shape, op.kernel, op.stride)
            stages.append(Stage(op.name, "pool", fmt, in_size, win))
            in_size = stages[-1].out_size
            continue
        shape3 = op.in_shape if op.kind == "conv" else (1, 1, in_size)
        if op.kind == "conv":
            win = conv_windows(shape3, op.weight.shape[2:], op.stride, op.pads)
        else:
            win = np.arange(in_size)[None]
        w = op.weight.reshape(op.weight.shape[0], -1)
        o = w.shape[0]
        steps = op.bias_steps(s_in)
        bias = tuple(int(b) for b in steps) if steps is not None else None
        sparse = nm if nm is not None and fits_nm(w, *nm) else None
        ln = _sparse_lanes(per[li], *sparse) if sparse else per[li]
        common = dict(weights=w, wfmt=op.weight_quant.fmt, lanes=ln, pipeline=min(pipeline, 1 + (ln - 1).bit_length()),
                      nm=sparse)
        if op.out_quant is None:
            stages.append(Stage(op.name, "mac", fmt, in_size, win, bias=bias or (0,) * o, relu=op.relu, **common))
        else:
            pairs = op.requant_pairs(s_in)
            rq = RequantSpec(acc_bits(op.weight_quant.fmt, fmt, win.shape[1]), tuple(m for m, _ in pairs),
                             tuple(s for _, s in pairs), op.out_quant.fmt, relu=op.relu, biases=bias)
            stages.append(Stage(op.name, "mac", fmt, in_size, win, requant=rq, **common))
            fmt, s_in = op.out_quant.fmt, op.out_quant.step
        in_size = stages[-1].out_size
        li += 1
    return NetworkPlan(name, stages)


def _fold_rescale(stages: list[Stage], op: QRequant, fmt: str, s_in: np.float64) -> None:
    """Fold a re-quantization into the last MAC stage (monotone: it commutes with the pools after
    that stage, whose formats change with it)."""
    macs = [i for i, st in enumerate(stages) if st.kind == "mac"]
    if not macs or stages[macs[-1]].requant is None or stages[macs[-1]].rescale is not None:
        raise ValueError(f"node {op.name} (Quant): a re-quantization must follow one quantized layer output; "
                         "this one follows the network input or another re-quantization")
    st = stages[macs[-1]]
    m, sh = op.requant_pair(s_in)
    st.rescale = RequantSpec(element_bits(fmt), (m,), (sh,), op.quant.fmt)
    st.__post_init__()
    for later in stages[macs[-1] + 1:]:
        later.in_fmt = op.quant.fmt

