"""What a dataflow accelerator computes, as data: a chain of :class:`Stage` s (one per layer with
weights, one per pooling), its exact numpy model (:func:`run_plan`) and its closed-form timing
(:func:`schedule`). Knows nothing of ONNX: ``paretofab.netplan`` builds plans from QONNX graphs.

Every stage reads one frame (one inference's input tensor, flattened in C, H, W order, as codes)
and writes one frame. Its work is a list of *windows*: ``windows[p]`` holds the input addresses
of window ``p`` (``-1``: a padding element, the code of real 0). A MAC stage computes, for each
output channel ``o`` and window ``p`` (``o`` outer, so the output is in C, H, W order again), the
dot product of weight row ``o`` with window ``p`` — a fully connected layer is one window
``0 .. K-1``, a convolution one window per output position (FINN's sliding-window input
generator, as an address table) — then requantizes it (:class:`hw.requant.RequantSpec`: bias,
fixed-point scale, round half to even, ReLU, clamp) or, in the last layer, outputs the exact
accumulator plus bias. A pool stage outputs the largest value of each window (the first of
equal values).

Elements: an integer format's elements are its codes' integer values, a minifloat's its codes (bit
patterns); :func:`quant.reference.element_ints` gives the exact integers the MACs multiply
(``hw.arith.MinifloatMultiplier``'s units), so the accumulators are exact for every format pair.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from quant.formats import parse_format
from quant.reference import apply_breakpoints, element_ints, requantize

from ..activation import ActivationSpec
from ..arith import ConfigError, acc_bits, element_bits
from ..engine import check_int, check_pipeline
from ..requant import RequantSpec
from ..sparse import compress
from .row import RowStage, run_row

__all__ = ["Stage", "NetworkPlan", "conv_windows", "pool_windows", "run_plan", "schedule", "Schedule", "MAC_LATENCY",
           "POOL_LATENCY", "element_bits"]

#: cycles from issuing a window's last beat to its output transferring, beyond the MAC pipeline
#: depth (the beat register, the accumulator register, the output register)
MAC_LATENCY = 3
#: the same for a pool stage (the beat register, the output register)
POOL_LATENCY = 2


@dataclass(eq=False)
class Stage:
    """One stage of a dataflow accelerator (module docstring).

    Attributes
    ----------
    name : the layer's name (ONNX node).
    kind : ``"mac"`` or ``"pool"``.
    in_fmt : format of the input elements (integer or minifloat).
    in_size : codes per input frame.
    windows : int array (P, K): input addresses per window, ``-1`` for zero padding.
    weights : int array (O, K) of weight elements (MAC stages; ``wfmt``'s integer values or
        minifloat codes, zeros as code 0).
    wfmt : the weights' format (MAC stages).
    lanes : multipliers of a MAC stage (window elements per beat when dense); a pool stage
        takes a whole window per beat.
    pipeline : register stages of the MAC pipeline (``hw.dot.MacPipeline``).
    requant : the output requantization: a multiplier (:class:`hw.requant.RequantSpec`) or a
        threshold table (:class:`hw.activation.ActivationSpec`, e.g. :func:`hw.activation.thresholds`
        of one, its bias, ReLU and any rescale folded in); ``None``: the accumulator plus ``bias``
        (the network's raw output), with ``relu``.
    bias, relu : bias integers per output channel and a ReLU, used when ``requant`` is None.
    rescale : a second, per-tensor requantization of the output codes (a ``Quant`` of an already
        quantized tensor; it may be folded into the MAC stage before pools and flattens because it
        is monotone, so it commutes with max pooling).
    segments : element counts of a MAC stage's window segments (summing to K), each reduced on its
        own (zero-padded to whole beats; the MAC's ``last`` at its end) — the two branches of a
        residual join; their accumulators combine per channel as ``T = Σ_s A_s · seg_mults[s][o]
        + bias[o]``, ReLU'd with ``relu``; None: one segment, no combination.
    seg_mults : per segment, per output channel, the integer multiplier of its accumulator.
    pad_code : the input element a padding address reads (the code of real 0: the input's zero
        point; 0 without one).
    mean : sum the combined values over the windows of each channel (a global average pool whose
        division is in ``requant``): one output per channel. A combining stage (``segments`` or
        ``mean``) applies ``bias`` and ``relu`` itself; its ``requant`` has neither (None: the
        combined values are the network's raw output).
    nm : ``(n, m)`` for a MAC stage whose weights hold at most ``n`` non-zeros in every group of
        ``m`` along the window (zero-padded to whole beats): its weight ROM holds them compressed
        with in-group indices (:func:`hw.sparse.compress`), an :class:`hw.sparse.IndexMux` picks
        each multiplier's element, and a beat covers ``span = lanes / n · m`` window elements.
    """

    name: str
    kind: str
    in_fmt: str
    in_size: int
    windows: np.ndarray
    weights: np.ndarray | None = None
    wfmt: str | None = None
    lanes: int = 1
    pipeline: int = 1
    requant: RequantSpec | ActivationSpec | None = None
    bias: tuple[int, ...] | None = None
    relu: bool = False
    rescale: RequantSpec | None = None
    nm: tuple[int, int] | None = None
    segments: tuple[int, ...] | None = None
    seg_mults: tuple[tuple[int, ...], ...] | None = None
    mean: bool = False
    pad_code: int = 0

    def __post_init__(self) -> None:
        self.windows = np.asarray(self.windows, dtype=np.int64)
        if self.kind not in ("mac", "pool"):
            raise ConfigError(f"stage {self.name}: kind must be 'mac' or 'pool', got {self.kind!r}")
        if self.windows.ndim != 2 or self.windows.size == 0:
            raise ConfigError(f"stage {self.name}: windows must be a non-empty (P, K) array")
        if self.windows.min() < -1 or self.windows.max() >= self.in_size:
            raise ConfigError(f"stage {self.name}: window addresses must lie in -1..{self.in_size - 1}")
        if self.kind == "pool":
            self.lanes = self.k
            return
        self.weights = np.asarray(self.weights, dtype=np.int64)
        if self.weights.ndim != 2 or self.weights.shape[1] != self.k:
            raise ConfigError(f"stage {self.name}: weights must be (O, {self.k}), got {self.weights.shape}")
        if self.nm is not None:
            n, m = self.nm = tuple(int(v) for v in self.nm)
            if not 1 <= n <= m or m & (m - 1) or m < 2:
                raise ConfigError(f"stage {self.name}: N:M needs 1 <= N <= M, M a power of two >= 2; got {n}:{m}")
            check_int("lanes", self.lanes, n, f"stage {self.name}: a multiple of N={n}")
            if self.lanes % n:
                raise ConfigError(f"stage {self.name}: lanes={self.lanes} is not a multiple of N={n}")
            compress(self.padded_weights(), n, m)  # NMPatternError naming the first dense group
        else:
            self.lanes = check_int("lanes", self.lanes, 1, f"stage {self.name}: use 1..{self.k}", self.k)
        check_pipeline(self.lanes, self.pipeline)
        n = self.channels
        if self.segments is not None:
            self.segments = tuple(int(v) for v in self.segments)
            if min(self.segments) < 1 or sum(self.segments) != self.k:
                raise ConfigError(f"stage {self.name}: segments {self.segments} must be positive and sum to K={self.k}")
            if self.seg_mults is None or len(self.seg_mults) != len(self.segments) or \
                    any(len(row) != n for row in self.seg_mults):
                raise ConfigError(f"stage {self.name}: seg_mults needs one multiplier per segment and channel")
        if self.combines and isinstance(self.requant, RequantSpec) and (self.requant.biases is not None or self.requant.relu
                                                                         or self.rescale is not None):
            raise ConfigError(f"stage {self.name}: a combining stage's requantization has no bias, ReLU or rescale "
                              "(it applies bias and ReLU itself)")
        if self.requant is not None and self.requant.channels not in (1, n):
            raise ConfigError(f"stage {self.name}: requantization has {self.requant.channels} channels, not {n}")
        width = self.combined_bits if self.combines else self.acc_bits
        if self.requant is not None and self.requant.acc_bits != width:
            raise ConfigError(f"stage {self.name}: requantization expects {self.requant.acc_bits}-bit accumulators, "
                              f"the MAC gives {width}")
        if self.bias is not None and len(self.bias) != n:
            raise ConfigError(f"stage {self.name}: {len(self.bias)} biases for {n} channels")
        if self.rescale is not None and (not isinstance(self.requant, RequantSpec) or self.rescale.channels != 1
                                         or self.rescale.acc_bits != element_bits(self.requant.fmt)):
            raise ConfigError(f"stage {self.name}: a rescale needs a requantized output and one channel of "
                              f"{element_bits(self.requant.fmt) if self.requant else '?'}-bit inputs")

    # ---- shape ----------------------------------------------------------------------------------

    @property
    def positions(self) -> int:
        """Windows per channel, P."""
        return self.windows.shape[0]

    @property
    def k(self) -> int:
        """Elements per window, K."""
        return self.windows.shape[1]

    @property
    def channels(self) -> int:
        """Output channels O (1 for a pool stage: its windows already run over channels)."""
        return 1 if self.kind == "pool" else self.weights.shape[0]

    @property
    def out_size(self) -> int:
        """Codes per output frame, O · P (O with :attr:`mean`)."""
        return self.channels * (1 if self.mean else self.positions)

    @property
    def span(self) -> int:
        """Window elements per beat: ``lanes``, or ``lanes / n · m`` for an N:M stage."""
        return self.lanes // self.nm[0] * self.nm[1] if self.nm else self.lanes

    @property
    def combines(self) -> bool:
        """Whether the stage combines segments or sums windows (:attr:`segments`, :attr:`mean`)."""
        return self.kind == "mac" and (self.segments is not None or self.mean)

    @property
    def segment_sizes(self) -> tuple[int, ...]:
        """Elements of each segment of a window (one segment of ``K`` without :attr:`segments`)."""
        return self.segments or (self.k,)

    @property
    def segment_mults(self) -> tuple[tuple[int, ...], ...]:
        """Per segment, per output channel, the multiplier of its accumulator (1 without
        :attr:`seg_mults`)."""
        return self.seg_mults or ((1,) * self.channels,)

    @property
    def seg_mult_bits(self) -> int:
        """Bits of the largest segment multiplier; 0 when every one is 1 (no multiply at all)."""
        top = max(v for row in self.segment_mults for v in row)
        return top.bit_length() if top > 1 else 0

    @property
    def seg_beats(self) -> tuple[int, ...]:
        """Beats of each segment of a window, ``ceil(k_s / span)``."""
        return tuple(-(-k // self.span) for k in self.segment_sizes)

    @property
    def beats(self) -> int:
        """Beats per window: the segments' beats summed (``ceil(K / span)`` with one segment)."""
        return sum(self.seg_beats)

    def layout(self) -> np.ndarray:
        """Window element of every slot of a window's beats (``beats · span`` slots; ``-1``: the
        zero padding at the end of each segment)."""
        slots, start = [], 0
        for k, b in zip(self.segment_sizes, self.seg_beats):
            slots += list(range(start, start + k)) + [-1] * (b * self.span - k)
            start += k
        return np.array(slots, dtype=np.int64)

    def window_rows(self) -> list[list[int]]:
        """The window-address table, one row per (window, beat): the ``span`` bank addresses each
        beat reads (``in_size``: padding, the code of real 0)."""
        lay, span, n = self.layout(), self.span, self.in_size
        rows = []
        for p in range(self.positions):
            addrs = [int(a) if a >= 0 else n for a in np.where(lay >= 0, self.windows[p][lay], -1)]
            rows += [addrs[b * span:(b + 1) * span] for b in range(self.beats)]
        return rows

    @property
    def index_bits(self) -> int:
        """Bits of a stored weight's in-group index: ``log2 M`` for an N:M stage, else 0."""
        return self.nm[1].bit_length() - 1 if self.nm else 0

    @property
    def weight_bits(self) -> int:
        """Bits per stored weight of a MAC stage: its code plus its in-group index."""
        return parse_format(self.wfmt).bits + self.index_bits

    def padded_weights(self) -> np.ndarray:
        """The weights in :meth:`layout` order, zero in the padding, (O, beats · span)."""
        lay = self.layout()
        return np.where(lay >= 0, np.pad(self.weights, ((0, 0), (0, 1)))[:, lay], 0)

    @property
    def busy_cycles(self) -> int:
        """Cycles a frame occupies the stage's beat issue, O · P · beats."""
        return self.channels * self.positions * self.beats

    @property
    def release(self) -> int:
        """Cycles from the frame's first beat issuing to its bank's release: :attr:`busy_cycles`."""
        return self.busy_cycles

    @property
    def latency(self) -> int:
        """Cycles from issuing a window's last beat to its output transferring."""
        return self.pipeline + MAC_LATENCY if self.kind == "mac" else POOL_LATENCY

    @property
    def acc_bits(self) -> int:
        """Accumulator width of a MAC stage, bits (signed): of its longest segment."""
        return acc_bits(self.wfmt, self.in_fmt, max(self.segment_sizes))

    @property
    def combined_bits(self) -> int:
        """Width of a combining stage's value (:attr:`segments`, :attr:`mean`) before its
        requantization, bits (signed): the segments' accumulators times their largest multipliers,
        plus the largest bias, times the windows summed by a mean."""
        top = sum((1 << (acc_bits(self.wfmt, self.in_fmt, k) - 1)) * max(abs(v) for v in row)
                  for k, row in zip(self.segment_sizes, self.segment_mults))
        top = (top + max(abs(b) for b in self.bias or (0,))) * (self.positions if self.mean else 1)
        return top.bit_length() + 1

    @property
    def out_fmt(self) -> str | None:
        """Format of the output codes; None for the raw accumulator output."""
        if self.kind == "pool":
            return self.in_fmt
        if self.rescale is not None:
            return self.rescale.fmt
        return self.requant.fmt if self.requant is not None else None

    @property
    def out_bits(self) -> int:
        """Width of an output element, bits (a code, or the signed raw accumulator plus bias)."""
        if self.out_fmt is not None:
            return parse_format(self.out_fmt).bits
        if self.combines:
            return self.combined_bits
        return max(self.acc_bits, max(abs(b).bit_length() + 1 for b in self.bias or (0,))) + 1


@dataclass(eq=False)
class NetworkPlan:
    """A chain of stages; stage ``s + 1`` reads what stage ``s`` writes, and a row stage
    (:class:`~hw.dataflow.row.RowStage`) may also read what an earlier stage ``skip`` writes."""

    name: str
    stages: list[Stage | RowStage] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError(f"network {self.name}: no stages")
        for a, b in zip(self.stages, self.stages[1:]):
            if a.out_fmt is None and not isinstance(b, RowStage):
                raise ConfigError(f"network {self.name}: stage {a.name} outputs raw integers, so it must be last "
                                  "or feed a row stage")
            if a.out_size != b.in_size or a.out_fmt != b.in_fmt or (a.out_fmt is None and a.out_bits != b.in_bits):
                what = lambda st, fmt, bits: f"{fmt} codes" if fmt else f"raw {bits}-bit integers"  # noqa: E731
                raise ConfigError(f"network {self.name}: stage {a.name} writes {a.out_size} "
                                  f"{what(a, a.out_fmt, a.out_bits)}, stage {b.name} reads {b.in_size} "
                                  f"{what(b, b.in_fmt, getattr(b, 'in_bits', 0))}")
        for t, b in enumerate(self.stages):
            if isinstance(b, RowStage) and b.skip is not None:
                if not 0 <= b.skip <= t - 2:
                    raise ConfigError(f"network {self.name}: stage {b.name} skips from stage {b.skip}, which must be "
                                      f"0..{t - 2} (an earlier stage than its main input's)")
                a = self.stages[b.skip]
                if a.out_size != b.skip_size or a.out_fmt != b.skip_fmt or (a.out_fmt is None and a.out_bits != b.skip_bits):
                    raise ConfigError(f"network {self.name}: stage {b.name}'s skip input does not match what stage "
                                      f"{a.name} writes")

    def skip_readers(self, s: int) -> list[int]:
        """The stages that read stage ``s``'s output as their skip input."""
        return [t for t, b in enumerate(self.stages) if isinstance(b, RowStage) and b.skip == s]

    @property
    def in_size(self) -> int:
        return self.stages[0].in_size

    def digest(self) -> str:
        """sha256 of everything the hardware is built from (equal plans, equal hardware)."""
        h = hashlib.sha256()
        for st in self.stages:
            for name, value in sorted(vars(st).items()):
                h.update(name.encode())
                if isinstance(value, np.ndarray) and value.dtype != object:
                    h.update(np.ascontiguousarray(value).tobytes())
                else:  # object arrays by their values' text, not their pointers
                    h.update(repr(value.tolist() if isinstance(value, np.ndarray) else value).encode())
        return h.hexdigest()

    @property
    def out_size(self) -> int:
        return self.stages[-1].out_size


def conv_windows(in_shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
                 pads: tuple[int, int, int, int]) -> np.ndarray:
    """Input addresses (C, H, W order; ``-1``: padding) of every output position's window,
    (OH·OW, C·kh·kw), window elements in (c, i, j) order as ONNX weights are."""
    c, h, w = in_shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    y = np.arange(oh)[:, None, None, None, None] * sh - pt + np.arange(kh)[None, None, None, :, None]
    x = np.arange(ow)[None, :, None, None, None] * sw - pl + np.arange(kw)[None, None, None, None, :]
    ch = np.arange(c)[None, None, :, None, None]
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    addr = np.where(inside, ch * h * w + y * w + x, -1)
    return addr.reshape(oh * ow, c * kh * kw)


def pool_windows(in_shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Input addresses of every pooling window, one row per output element (C, H, W order)."""
    c, h, w = in_shape
    one = conv_windows((1, h, w), kernel, stride, (0, 0, 0, 0))  # (OH·OW, kh·kw) of channel 0
    return (np.arange(c)[:, None, None] * h * w + one[None]).reshape(-1, one.shape[1])


def _gather(x: np.ndarray, windows: np.ndarray, pad: int = 0) -> np.ndarray:
    """(frames, P, K) window elements of integer frames ``x`` (frames, in_size); padding reads
    ``pad``."""
    padded = np.concatenate([x, np.full((len(x), 1), pad, dtype=x.dtype)], axis=1)
    return padded[:, np.where(windows < 0, x.shape[1], windows)]


def run_plan(plan: NetworkPlan, x: np.ndarray) -> list[np.ndarray]:
    """The exact numpy model of the accelerator: every stage's output integers.

    Parameters
    ----------
    x : input elements, (frames, in_size): integer values (not bit patterns) of integer codes, or
        minifloat codes.

    Returns
    -------
    One (frames, out_size) array per stage: its output elements, or the raw
    accumulators plus bias of a last stage without requantization (object ints when wide).
    """
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != plan.in_size:
        raise ValueError(f"inputs must be (frames, {plan.in_size}) integers, got {x.shape}")
    outs = []
    for st in plan.stages:
        if isinstance(st, RowStage):
            outs.append(run_row(st, x, outs[st.skip] if st.skip is not None else None))
            x = outs[-1]
            continue
        win = _gather(x, st.windows, st.pad_code)  # (F, P, K)
        if st.kind == "pool":
            pick = np.argmax(element_ints(win, st.in_fmt), axis=2)
            y = np.take_along_axis(win, pick[..., None], axis=2)[..., 0]
        else:
            w, a = element_ints(st.weights, st.wfmt).astype(object), element_ints(win, st.in_fmt).astype(object)
            if st.combines:
                outs.append(_combine(st, w, a))
                x = outs[-1]
                continue
            acc = np.einsum("ok,fpk->fop", w, a)  # exact
            if st.requant is None:
                y = acc + np.array(st.bias or (0,) * st.channels, dtype=object)[None, :, None]
                y = np.maximum(y, 0) if st.relu else y
            else:
                y = _requantize(st.requant, acc, st.channels)
                if st.rescale is not None:
                    y = _requantize(st.rescale, element_ints(y, st.requant.fmt), st.channels)
            y = y.reshape(len(x), -1)
        outs.append(y)
        x = y
    return outs


def _combine(st: Stage, w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A combining stage's outputs (:attr:`Stage.segments`, :attr:`Stage.mean`) from its exact
    weight and window integers (object arrays (O, K) and (F, P, K))."""
    total, start = 0, 0
    for k, mult in zip(st.segment_sizes, st.segment_mults):
        acc = np.einsum("ok,fpk->fop", w[:, start:start + k], a[:, :, start:start + k])
        total = total + acc * np.array(mult, dtype=object)[None, :, None]
        start += k
    total = total + np.array(st.bias or (0,) * st.channels, dtype=object)[None, :, None]
    if st.relu:
        total = np.maximum(total, 0)
    if st.mean:
        total = total.sum(axis=2, keepdims=True)
    if st.requant is None:  # the network's raw output
        return total.reshape(len(a), -1)
    return _requantize(st.requant, total, st.channels).reshape(len(a), -1)


def _requantize(rq: RequantSpec | ActivationSpec, acc: np.ndarray, channels: int) -> np.ndarray:
    """``acc`` (frames, channels, …) through ``rq`` as :func:`hw.requant.requantizer` does it:
    per channel (a one-channel spec serves every channel) its bias added, then
    :func:`quant.reference.requantize` with the spec's multiplier, shift, zero point and ReLU; a
    threshold table by :func:`quant.reference.apply_breakpoints`."""
    def pick(values):
        return values if rq.channels > 1 else values * channels

    if isinstance(rq, ActivationSpec):
        return np.stack([apply_breakpoints(acc[:, o], pick(rq.breaks)[o], pick(rq.values)[o]) for o in range(channels)],
                        axis=1)

    bias = pick(rq.biases if rq.biases is not None else (0,) * rq.channels)
    return np.stack([requantize(acc[:, o] + bias[o], pick(rq.multipliers)[o], pick(rq.shifts)[o], rq.fmt,
                                rq.zero_point, rq.relu) for o in range(channels)], axis=1)


@dataclass(frozen=True)
class Schedule:
    """Closed-form timing of a batch of frames through a plan (always-valid source, always-ready
    sink), cycles after reset.

    Attributes
    ----------
    cycles : cycles until the last output transfers (the index of that cycle plus one).
    latency : cycles from the first input transfer to the first frame's last output, plus one.
    interval : cycles between the last outputs of the last two frames (the initiation interval
        in steady state); ``cycles`` for one frame.
    starts : per frame and stage, the cycle its first beat issues.
    """

    cycles: int
    latency: int
    interval: int
    starts: np.ndarray


def schedule(plan: NetworkPlan, frames: int) -> Schedule:
    """Closed-form cycles of ``frames`` inferences (:class:`Schedule`).

    Per stage ``s`` and frame ``n``: its input is written one code per cycle into one of two frame
    banks; its first beat issues at ``A = max(D + 1, A_prev + busy, credit)`` — the cycle after
    the frame's last input code arrived (``D``), after the previous frame's beats, and once the
    next stage has a free bank (the cycle after that stage released frame ``n - 2``'s bank, i.e.
    ``A_{s+1}(n-2) + release_{s+1} + 1``; ``release`` is ``busy`` but for a row stage) and every
    stage reading this one's frames as its skip input has a free skip bank
    (``A_t(n - depth_t) + release_t + 1``); its beats then issue back to back (credits guarantee the
    next stage never stalls them), so its last output transfers at ``A + busy - 1 + latency``,
    which is the next stage's ``D``. The first stage's input bank for frame ``n`` frees when it
    released frame ``n - 2`` (``A_0(n-2) + busy_0``), and the source writes ``in_size`` codes
    back to back from then (or after the previous frame's last code).
    """
    check_int("frames", frames, 1, "simulate at least one frame")
    st = plan.stages
    readers = [plan.skip_readers(s) for s in range(len(st))]
    A = np.zeros((frames, len(st)), dtype=np.int64)
    done = np.zeros(frames, dtype=np.int64)  # the last output's transfer cycle
    last_in = -1
    for n in range(frames):
        free = A[n - 2, 0] + st[0].release + 1 if n >= 2 else 0
        d = max(last_in + 1, free) + st[0].in_size - 1
        last_in = d
        for s, stage in enumerate(st):
            a = d + 1
            if n >= 1:
                a = max(a, A[n - 1, s] + stage.busy_cycles)
            if n >= 2 and s + 1 < len(st):
                a = max(a, A[n - 2, s + 1] + st[s + 1].release + 1)
            for t in readers[s]:  # a free skip bank in each stage that reads this one's frames
                if n >= st[t].skip_depth:
                    a = max(a, A[n - st[t].skip_depth, t] + st[t].release + 1)
            A[n, s] = a
            d = a + stage.busy_cycles - 1 + stage.latency
        done[n] = d
    return Schedule(int(done[-1]) + 1, int(done[0]) + 1, int(done[-1] - done[-2]) if frames > 1 else int(done[0]) + 1,
                    A)
