"""A row stage of a dataflow accelerator (:class:`RowStage`): elementwise work on rows of a frame
— a residual join of two frames, LayerNorm, a mean over rows — what an MLP-Mixer needs between
its MAC stages. What it computes (:func:`run_row`) and its timing, as data; the hardware is
:class:`hw.dataflow.row_engine.RowEngine`.

A row stage reads its input frame (``main``: codes of ``in_fmt``, or raw signed integers of
``in_bits`` bits when ``in_fmt`` is None — a MAC stage's accumulators plus bias) and, optionally,
a *skip* frame: the output of an earlier stage ``skip`` of the plan, held in ``skip_depth`` frame
banks of its own. For row ``p`` and column ``j`` (``P`` rows of ``D``)::

    v[p, j] = main[windows[p, j]] · mults[p, j]  (+ skip[skip_windows[p, j]] · skip_mults[p, j])
    v[p, :] = normalize(v[p, :], extra)                 # with ``extra`` (LayerNorm), else as is
    y[p, j] = v[p, j] · gains[j] + biases[j]
    y[j]    = Σ_p y[p, j]                                # with ``mean``
    out     = requant(y) per column j, or y raw          # ``requant`` None: raw signed integers

``main[...]`` and ``skip[...]`` are the exact integers of the elements
(:func:`quant.reference.element_ints`; raw integers as they are); ``normalize`` is
:func:`quant.reference.normalize`. The multipliers bring both frames to one unit (the common unit
of a residual join), the gains and biases are LayerNorm's ``γ`` and ``β`` on their integer grid.
Outputs are in row order (``p · D + j``), or one per column with ``mean``.

Timing (one element per cycle into the row's datapath): without normalization a frame takes
``P · D`` cycles; with it, each row goes through :class:`hw.normalizer.Normalizer`, a pipeline
that loads a row (``D`` cycles), computes (``3R + 3``) and outputs it (``D``) while the next rows
load and compute: the engine issues a row every :attr:`RowStage.row_cycles` = ``max(D, 3R + 4)``
cycles (``R`` = NORM_RSQRT_BITS), so that no row waits in the normalizer, and each row's last
output leaves the normalizer :attr:`RowStage.row_span` = ``2D + 3R + 4`` cycles after its first
element entered it (both counted). From the frame's first issue ``A``: its banks are released at
``A + release`` (the last element leaving the beat register), its last output transfers at ``A +
busy_cycles - 1 + latency``. Frames follow each other at the same row period (the next frame's
first row issues ``row_cycles`` after this one's last, at the earliest), so the normalizer works
on the last rows of one frame while the first rows of the next load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quant.formats import IntFormat, parse_format
from quant.reference import NORM_FRAC_BITS, NORM_RSQRT_BITS, element_ints, normalize, requantize

from ..arith import ConfigError, finite_codes
from ..requant import RequantSpec

__all__ = ["RowStage", "run_row", "ROW_LATENCY", "NORM_ROW_LATENCY"]

#: cycles from a frame's last element issuing (``A + busy_cycles - 1``) to its last output
#: transferring, without normalization (the beat register, the output register)
ROW_LATENCY = 2
#: the same with normalization, besides the normalizer's row span: the last row issues at ``A +
#: busy_cycles - row_cycles``, enters the normalizer a cycle later (the beat register), whose last
#: output of it is ``row_span - 1`` cycles after that; then the output register — a latency of
#: ``NORM_ROW_LATENCY + row_span - row_cycles`` (:attr:`RowStage.latency`)
NORM_ROW_LATENCY = 2


def _table(values, shape: tuple[int, int], what: str, name: str) -> np.ndarray:
    """``values`` as an int64 array (object ints only beyond 62 bits: their bytes are no digest)."""
    arr = np.asarray(values, dtype=object)
    if arr.shape != shape:
        raise ConfigError(f"stage {name}: {what} must be {shape}, got {arr.shape}")
    arr = np.vectorize(int, otypes=[object])(arr)
    return arr.astype(np.int64) if all(abs(v) < 1 << 62 for v in arr.flat) else arr


@dataclass(eq=False)
class RowStage:
    """One row stage (module docstring).

    Attributes
    ----------
    name : the op's name (ONNX node).
    in_fmt : format of the main input's elements; None: raw signed integers of ``in_bits`` bits.
    in_bits : width of a raw main element, bits (ignored for codes: the format's bits).
    in_size : elements per main frame.
    windows : int array (P, D): the main frame's address of every row element.
    mults : int array (P, D) of non-negative multipliers of the main elements.
    skip : index in the plan of the stage whose output frame is the skip input; None: no skip.
    skip_fmt, skip_bits, skip_size : the skip frame's element format (None: raw of ``skip_bits``
        bits) and size.
    skip_windows, skip_mults : (P, D) addresses into the skip frame and their multipliers.
    skip_depth : skip frames the stage holds (frames in flight between the skip's source and this
        stage; the source starts a frame only when one is free).
    extra : normalize every row with this epsilon term (:func:`quant.reference.normalize`); None:
        no normalization.
    gains, biases : per column (D), integers.
    mean : sum the rows: one output per column.
    requant : per column (or one for all) requantization of ``y`` to codes
        (:class:`hw.requant.RequantSpec` without biases); None: ``y`` raw (signed).
    """

    name: str
    in_fmt: str | None
    in_bits: int
    in_size: int
    windows: np.ndarray
    mults: np.ndarray
    gains: tuple[int, ...]
    biases: tuple[int, ...]
    extra: int | None = None
    mean: bool = False
    requant: RequantSpec | None = None
    skip: int | None = None
    skip_fmt: str | None = None
    skip_bits: int = 0
    skip_size: int = 0
    skip_windows: np.ndarray | None = None
    skip_mults: np.ndarray | None = None
    skip_depth: int = 2

    kind = "row"
    lanes = 1

    def __post_init__(self) -> None:
        self.windows = np.asarray(self.windows, dtype=np.int64)
        if self.windows.ndim != 2 or self.windows.size == 0:
            raise ConfigError(f"stage {self.name}: windows must be a non-empty (P, D) array")
        if self.windows.min() < 0 or self.windows.max() >= self.in_size:
            raise ConfigError(f"stage {self.name}: row addresses must lie in 0..{self.in_size - 1}")
        if self.in_fmt is not None:
            self.in_bits = parse_format(self.in_fmt).bits
        shape = self.windows.shape
        self.mults = _table(self.mults, shape, "mults", self.name)
        self.gains, self.biases = tuple(int(g) for g in self.gains), tuple(int(b) for b in self.biases)
        if len(self.gains) != self.d or len(self.biases) != self.d:
            raise ConfigError(f"stage {self.name}: gains and biases need one entry per column ({self.d})")
        if min(self.mults.flat) < 0:
            raise ConfigError(f"stage {self.name}: multipliers must be >= 0")
        if self.skip is not None:
            self.skip_windows = np.asarray(self.skip_windows, dtype=np.int64)
            if self.skip_windows.shape != shape or self.skip_windows.min() < 0 or \
                    self.skip_windows.max() >= self.skip_size:
                raise ConfigError(f"stage {self.name}: skip windows must be {shape} addresses in "
                                  f"0..{self.skip_size - 1}")
            self.skip_mults = _table(self.skip_mults, shape, "skip_mults", self.name)
            if self.skip_fmt is not None:
                self.skip_bits = parse_format(self.skip_fmt).bits
            if self.skip_depth < 1:
                raise ConfigError(f"stage {self.name}: skip_depth must be >= 1")
        if self.extra is not None and (self.extra < 0 or self.d < 2):
            raise ConfigError(f"stage {self.name}: normalization needs extra >= 0 and rows of >= 2 elements")
        if self.requant is not None:
            if self.requant.biases is not None or self.requant.channels not in (1, self.d):
                raise ConfigError(f"stage {self.name}: the requantization needs 1 or {self.d} channels, no biases")
            if self.requant.acc_bits != self.value_bits:
                raise ConfigError(f"stage {self.name}: requantization expects {self.requant.acc_bits}-bit values, "
                                  f"the stage gives {self.value_bits}")

    # ---- shape ----------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Rows per frame, P."""
        return self.windows.shape[0]

    @property
    def d(self) -> int:
        """Elements per row, D."""
        return self.windows.shape[1]

    @property
    def out_size(self) -> int:
        """Elements per output frame: P · D, or D with :attr:`mean`."""
        return self.d * (1 if self.mean else self.rows)

    @property
    def out_fmt(self) -> str | None:
        return self.requant.fmt if self.requant is not None else None

    # ---- widths (signed) ------------------------------------------------------------------------

    def _top(self, fmt: str | None, bits: int) -> int:
        """The largest magnitude of an element's exact integer."""
        if fmt is None:
            return 1 << (bits - 1)
        f = parse_format(fmt)
        if isinstance(f, IntFormat):
            return max(abs(f.min_int), abs(f.max_int))
        return int(np.max(np.abs(element_ints(finite_codes(f), f))))  # NaN / inf codes never arrive

    @property
    def sum_bits(self) -> int:
        """Width of ``v`` before normalization, bits."""
        top = self._top(self.in_fmt, self.in_bits) * int(max(self.mults.flat))
        if self.skip is not None:
            top += self._top(self.skip_fmt, self.skip_bits) * int(max(self.skip_mults.flat))
        return max(2, int(top).bit_length() + 1)

    @property
    def norm_bits(self) -> int:
        """Width of a normalized value, bits (:class:`hw.normalizer.Normalizer`'s ``out_bits``)."""
        return math.isqrt((self.d - 1) << (2 * NORM_FRAC_BITS)).bit_length() + 2

    @property
    def value_bits(self) -> int:
        """Width of ``y`` (summed over rows with :attr:`mean`), bits."""
        top = (1 << ((self.norm_bits if self.extra is not None else self.sum_bits) - 1)) * max(abs(g) for g in self.gains)
        top = (top + max(abs(b) for b in self.biases)) * (self.rows if self.mean else 1)
        return max(2, top.bit_length() + 1)  # 2: a requantizer's narrowest input (all gains and biases 0)

    @property
    def out_bits(self) -> int:
        """Width of an output element: a code's bits, or :attr:`value_bits`."""
        return parse_format(self.out_fmt).bits if self.out_fmt is not None else self.value_bits

    # ---- timing ---------------------------------------------------------------------------------

    @property
    def row_cycles(self) -> int:
        """Cycles per row: ``D``, or with normalization the normalizer's steady-state period ``max(D,
        3R + 4)`` (:attr:`hw.normalizer.Normalizer.row_cycles`)."""
        return max(self.d, 3 * NORM_RSQRT_BITS + 4) if self.extra is not None else self.d

    @property
    def row_span(self) -> int:
        """Cycles from a row's first element entering its datapath to its last value leaving it,
        both counted: ``D``, or with normalization ``2D + 3R + 4``
        (:attr:`hw.normalizer.Normalizer.row_span`)."""
        return 2 * self.d + 3 * NORM_RSQRT_BITS + 4 if self.extra is not None else self.d

    @property
    def busy_cycles(self) -> int:
        """Cycles a frame occupies the stage's issuer, P · :attr:`row_cycles`."""
        return self.rows * self.row_cycles

    @property
    def release(self) -> int:
        """Cycles from the frame's first issue to the cycle its banks are released: when its last
        element enters the datapath."""
        return (self.rows - 1) * self.row_cycles + self.d

    @property
    def latency(self) -> int:
        """Cycles from the frame's last issue slot, ``A + busy_cycles - 1``, to its last output's
        transfer: ROW_LATENCY, or with normalization ``NORM_ROW_LATENCY + row_span - row_cycles``."""
        if self.extra is None:
            return ROW_LATENCY
        return NORM_ROW_LATENCY + self.row_span - self.row_cycles

def run_row(st: RowStage, main: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """The row stage's outputs (frames, out_size) — object ints when raw — from its main frames
    (frames, in_size) and skip frames (frames, skip_size) of element values (module docstring)."""
    def ints(x, fmt):
        x = np.asarray(x)
        return (x if fmt is None else element_ints(x.astype(np.int64), fmt)).astype(object)

    v = ints(main, st.in_fmt)[:, st.windows] * st.mults[None]
    if st.skip is not None:
        v = v + ints(skip, st.skip_fmt)[:, st.skip_windows] * st.skip_mults[None]
    if st.extra is not None:
        v = np.array([[normalize(list(row), st.extra) for row in frame] for frame in v], dtype=object)
        v = v.reshape(len(main), st.rows, st.d)
    y = v * np.array(st.gains, dtype=object)[None, None] + np.array(st.biases, dtype=object)[None, None]
    if st.mean:
        y = y.sum(axis=1, keepdims=True)
    if st.requant is None:
        return y.reshape(len(main), -1)
    rq = st.requant
    pick = (lambda t: t) if rq.channels > 1 else (lambda t: t * st.d)
    out = np.stack([requantize(y[:, :, j], pick(rq.multipliers)[j], pick(rq.shifts)[j], rq.fmt, rq.zero_point, rq.relu)
                    for j in range(st.d)], axis=2)
    return out.reshape(len(main), -1)
