"""N:M structured-sparse engine, optionally with block skipping (CRISP-style hybrid N:M + block).

Weights are stored compressed: in every group of ``m`` consecutive weights at most ``n`` are
non-zero; :func:`compress` keeps ``n`` values per group and a ``log2(m)``-bit index for each. An
:class:`IndexMux` per lane picks the activation that its weight belongs to, so ``lanes``
multipliers do the work of ``lanes · m / n`` dense lanes; the multiply-reduce-accumulate datapath
is the dense engine's :class:`~hw.dot.MacPipeline`.

Stream framing
--------------
Input beat (:meth:`SparseConfig.in_layout`): ``w`` — ``lanes`` compressed weight codes, ``idx`` —
their ``lanes`` in-group indices, ``a`` — the ``span = (lanes / n) · m`` dense activation codes
those groups cover, ``last`` — end of a reduction. A vector of length K is zero-padded to a
multiple of ``span`` (or of ``block``) and takes ``ceil(K / span)`` beats.

Block skipping
--------------
With ``block`` (dense weights per block, a multiple of ``span``) set, a per-(vector, block)
bitmap (:func:`block_bitmap`) marks blocks whose weights are all zero; the weight streamer
(:func:`pack_inputs`) sends the beats of non-zero blocks only, so a skipped block costs no cycle.
A vector whose blocks are all zero still sends one all-zero beat carrying ``last`` (its result,
0, must come out). The datapath is unchanged: skipping happens in the beat sequence.

``cycles = Σ_vectors max(1, nonzero_blocks · block / span) + pipeline + 1`` (``block`` unset:
``vectors · ceil(K / span) + pipeline + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.formats import Format, parse_format
from quant.reference import decode

from .arith import ConfigError, WorkloadError, acc_bits, finite_codes
from .dot import (OUTPUT_PACKET, MacPipeline, Workload, check_workload, exact_dot, n_outputs, output_exponent,
                  unpack_outputs)
from .engine import EngineConfig, check_pipeline, check_shape, pack_beats, random_codes, set_int

__all__ = [
    "OUTPUT_PACKET",
    "SparseConfig",
    "Config",
    "Workload",
    "NMPatternError",
    "IndexMux",
    "SparseEngine",
    "compress",
    "block_bitmap",
    "cycles_array",
    "live_beats",
    "random_workload",
    "pack_inputs",
    "n_outputs",
    "unpack_outputs",
    "reference",
    "cycles",
    "output_exponent",
]


class NMPatternError(WorkloadError):
    """A weight matrix that breaks the N:M pattern; the message names the first bad group."""


@dataclass(frozen=True)
class SparseConfig(EngineConfig):
    """N:M (+ block) sparse engine configuration.

    Parameters
    ----------
    lanes : int
        Multipliers; a multiple of ``n`` (each beat holds ``lanes / n`` whole groups).
    n, m : int
        At most ``n`` non-zero weights in every group of ``m`` (``m`` a power of two >= 2,
        ``1 <= n <= m``).
    wfmt, afmt : Format or str
    k_max : int
        Longest reduction (dense elements) the accumulator holds without overflow.
    block : int or None
        Dense weights per skippable block, a multiple of ``span = lanes / n · m``; None: no
        block skipping.
    pipeline : int
        Register stages between input and accumulator (as :class:`~hw.dot.DotConfig`).
    """

    lanes: int
    n: int
    m: int
    wfmt: Format
    afmt: Format
    k_max: int
    block: int | None = None
    pipeline: int = 1

    engine = "sparse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "wfmt", parse_format(self.wfmt))
        object.__setattr__(self, "afmt", parse_format(self.afmt))
        set_int(self, "lanes", 1, "use --lanes 1 or more")
        set_int(self, "n", 1, "keep at least one weight per group")
        set_int(self, "m", 2, "groups hold m >= 2 weights")
        set_int(self, "k_max", 1, "set the longest reduction length K")
        set_int(self, "pipeline", 0, "use 0 (no registers) or more")
        if self.m & (self.m - 1):
            raise ConfigError(f"m={self.m} is not a power of two; indices are log2(m) bits, use m in 2, 4, 8, 16 …")
        if self.n > self.m:
            raise ConfigError(f"n={self.n} > m={self.m}: a group of m weights cannot hold n non-zeros; use n <= m")
        if self.lanes % self.n:
            raise ConfigError(
                f"lanes={self.lanes} is not a multiple of n={self.n}; each beat holds whole groups, "
                f"use lanes in {self.n}, {2 * self.n}, {3 * self.n} …"
            )
        if self.block is not None:
            set_int(self, "block", 1, "use None for no block skipping")
            if self.block % self.span:
                raise ConfigError(
                    f"block={self.block} is not a multiple of the beat span lanes/n*m = {self.span} dense "
                    f"weights; use block in {self.span}, {2 * self.span} …"
                )
        check_pipeline(self.lanes, self.pipeline)

    @property
    def groups(self) -> int:
        """N:M groups per beat."""
        return self.lanes // self.n

    @property
    def span(self) -> int:
        """Dense elements covered per beat: ``lanes / n · m``."""
        return self.groups * self.m

    @property
    def lane_span(self) -> int:
        return self.span

    @property
    def index_bits(self) -> int:
        """In-group index width, bits: ``log2 m``."""
        return self.m.bit_length() - 1

    @property
    def acc_bits(self) -> int:
        return acc_bits(self.wfmt, self.afmt, self.k_max)

    def design_tag(self) -> str:
        """``l<lanes>_<n>of<m>_<wfmt>_<afmt>_k<k_max>`` (+ ``_b<block>``, + ``_p<pipeline>``
        when not 1)."""
        tag = f"l{self.lanes}_{self.n}of{self.m}_{self.wfmt}_{self.afmt}_k{self.k_max}"
        tag += f"_b{self.block}" if self.block is not None else ""
        return tag + (f"_p{self.pipeline}" if self.pipeline != 1 else "")

    def in_layout(self) -> data.StructLayout:
        """Input beat layout: ``w`` (``lanes`` compressed weight codes), ``idx`` (their in-group
        indices, ``index_bits`` each), ``a`` (``span`` activation codes), ``last`` (1 bit)."""
        return data.StructLayout({
            "w": data.ArrayLayout(unsigned(self.wfmt.bits), self.lanes),
            "idx": data.ArrayLayout(unsigned(self.index_bits), self.lanes),
            "a": data.ArrayLayout(unsigned(self.afmt.bits), self.span),
            "last": unsigned(1),
        })

    def build(self) -> "SparseEngine":
        return SparseEngine(self)


Config = SparseConfig


# ---- hardware ---------------------------------------------------------------------------------


class IndexMux(wiring.Component):
    """Per lane, pick the activation its compressed weight belongs to (combinational):
    ``out[l] = a[(l // n) · m + idx[l]]``.

    Parameters
    ----------
    lanes, n, m : int
    abits : int
        Activation code width, bits.

    Attributes
    ----------
    a : In(ArrayLayout(abits, lanes / n · m))
        Dense activations of the beat's groups.
    idx : In(ArrayLayout(log2 m, lanes))
        In-group index of each lane's weight.
    out : Out(ArrayLayout(abits, lanes))
        Selected activation per lane.
    """

    def __init__(self, lanes: int, n: int, m: int, abits: int):
        self.lanes, self.n, self.m, self.abits = lanes, n, m, abits
        super().__init__({
            "a": In(data.ArrayLayout(unsigned(abits), lanes // n * m)),
            "idx": In(data.ArrayLayout(unsigned(m.bit_length() - 1), lanes)),
            "out": Out(data.ArrayLayout(unsigned(abits), lanes)),
        })

    def elaborate(self, platform):
        mod = Module()
        for lane in range(self.lanes):
            g = lane // self.n
            group = Cat(*(self.a[g * self.m + j] for j in range(self.m)))
            mod.d.comb += self.out[lane].eq(group.word_select(self.idx[lane], self.abits))
        return mod


class SparseEngine(wiring.Component):
    """N:M sparse dot-product engine: :class:`IndexMux` in front of a
    :class:`~hw.dot.MacPipeline`.

    Parameters
    ----------
    config : SparseConfig

    Attributes
    ----------
    i : In(stream.Signature(config.in_layout()))
    o : Out(stream.Signature(signed(config.acc_bits)))
    """

    def __init__(self, config: SparseConfig):
        self.config = config
        super().__init__({
            "i": In(stream.Signature(config.in_layout())),
            "o": Out(stream.Signature(signed(config.acc_bits))),
        })

    def elaborate(self, platform):
        mod = Module()
        c = self.config
        mod.submodules.mux = mux = IndexMux(c.lanes, c.n, c.m, c.afmt.bits)
        mod.submodules.mac = mac = MacPipeline(c.lanes, c.wfmt, c.afmt, c.k_max, c.pipeline)
        mod.d.comb += [
            mux.a.eq(self.i.payload.a),
            mux.idx.eq(self.i.payload.idx),
            mac.i.payload.w.eq(self.i.payload.w),
            mac.i.payload.a.eq(mux.out),
            mac.i.payload.last.eq(self.i.payload.last),
            mac.i.valid.eq(self.i.valid),
            self.i.ready.eq(mac.i.ready),
        ]
        wiring.connect(mod, mac.o, wiring.flipped(self.o))
        return mod


# ---- compression ------------------------------------------------------------------------------


def _is_zero(weights: np.ndarray, fmt: Format | None) -> np.ndarray:
    if fmt is None:
        return np.asarray(weights) == 0
    return decode(weights, fmt) == 0


def compress(weights: np.ndarray, n: int, m: int, fmt: Format | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compress a row-major weight matrix with at most ``n`` non-zeros per group of ``m``.

    Parameters
    ----------
    weights : array, shape (rows, K), K a multiple of m
        Weight values, or codes of ``fmt`` (then zero means "decodes to ±0").
    n, m : int
    fmt : Format or str, optional

    Returns
    -------
    values : array, shape (rows, K / m · n), the weights' dtype
        Kept weights per group in index order; groups with fewer non-zeros are filled with
        zero weights (value/code 0) at unused indices.
    indices : np.ndarray, uint8, same shape
        In-group position (``0 .. m-1``) of each kept weight.

    Raises
    ------
    NMPatternError
        Naming the first group (row, group, columns) with more than ``n`` non-zeros.
    """
    w = np.asarray(weights)
    fmt = parse_format(fmt) if fmt is not None else None
    if w.ndim != 2:
        raise WorkloadError(f"compress takes a 2-D weight matrix (rows, K), got shape {w.shape}")
    if not (1 <= n <= m):
        raise ConfigError(f"need 1 <= n <= m, got n={n}, m={m}")
    rows, k = w.shape
    if k % m:
        raise WorkloadError(f"K={k} is not a multiple of m={m}; zero-pad the rows to a multiple of m")
    nz = ~_is_zero(w, fmt).reshape(rows, k // m, m)
    counts = nz.sum(axis=2)
    if (counts > n).any():
        r, g = np.argwhere(counts > n)[0]
        raise NMPatternError(
            f"weights break {n}:{m} sparsity: row {r}, group {g} (columns {g * m}..{g * m + m - 1}) has "
            f"{counts[r, g]} non-zeros, at most {n} allowed; prune it to {n}:{m} first"
        )
    # stable order: non-zeros first (by position), then zeros (by position); keep the first n
    order = np.argsort(~nz, axis=2, kind="stable")[:, :, :n]
    groups = w.reshape(rows, k // m, m)
    values = np.take_along_axis(groups, order, axis=2)
    kept_nz = np.take_along_axis(nz, order, axis=2)
    values = np.where(kept_nz, values, np.zeros((), dtype=w.dtype))
    return values.reshape(rows, -1), order.astype(np.uint8).reshape(rows, -1)


def _padded(config: SparseConfig, workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    unit = config.block or config.span
    pad = -workload.k % unit
    return (np.pad(workload.w_codes, ((0, 0), (0, pad))).astype(np.uint8),
            np.pad(workload.a_codes, ((0, 0), (0, pad))).astype(np.uint8))


def block_bitmap(config: SparseConfig, workload: Workload) -> np.ndarray:
    """bool (vectors, blocks): True where a block holds a non-zero weight (``block`` unset: one
    bit per beat-sized chunk, all True)."""
    w, _ = _padded(config, workload)
    if config.block is None:
        return np.ones((workload.vectors, w.shape[1] // config.span), dtype=bool)
    nz = ~_is_zero(w, config.wfmt)
    return nz.reshape(workload.vectors, -1, config.block).any(axis=2)


def sparse_beats(config: SparseConfig, workload: Workload):
    """(w, idx, a, last) per beat after compression and block skipping: ``(beats, lanes)``,
    ``(beats, lanes)``, ``(beats, span)``, ``(beats,)``."""
    check_workload(config, workload)
    w, a = _padded(config, workload)
    vals, idx = compress(w, config.n, config.m, config.wfmt)
    vectors = workload.vectors
    beats = w.shape[1] // config.span
    vals = vals.reshape(vectors, beats, config.lanes)
    idx = idx.reshape(vectors, beats, config.lanes)
    acts = a.reshape(vectors, beats, config.span)
    keep = np.ones((vectors, beats), dtype=bool)
    if config.block is not None:
        per_block = config.block // config.span
        keep = np.repeat(block_bitmap(config, workload), per_block, axis=1)
    empty = ~keep.any(axis=1)
    keep[empty, 0] = True  # an all-zero vector still sends one beat (zero weights) with last
    last = np.zeros((vectors, beats), dtype=np.int64)
    last[np.arange(vectors), beats - 1 - np.argmax(keep[:, ::-1], axis=1)] = 1
    return vals[keep], idx[keep], acts[keep], last[keep]


def pack_inputs(config: SparseConfig, workload: Workload) -> list[int]:
    """Input beats (packed payloads); raises :class:`WorkloadError` / :class:`NMPatternError`
    when the workload does not fit."""
    vals, idx, acts, last = sparse_beats(config, workload)
    layout = config.in_layout()
    fs = []
    for name, v, width in (("w", vals, config.wfmt.bits), ("idx", idx, config.index_bits),
                           ("a", acts, config.afmt.bits), ("last", last[:, None], 1)):
        fs.append((v, width, layout[name].offset))
    return pack_beats(fs, layout.size)


# ---- workloads, reference, cycles ---------------------------------------------------------------


def _zero_codes(fmt: Format) -> np.ndarray:
    codes = finite_codes(fmt)
    return codes[decode(codes, fmt) == 0]


def random_workload(config: SparseConfig, k: int, vectors: int, seed: int,
                    block_zero_fraction: float = 0.4) -> Workload:
    """Random dense weights obeying ``n:m`` (non-zeros at random positions, zeros as +0 and -0
    codes) and random activations; with ``block`` set about ``block_zero_fraction`` of the
    blocks are all zero. Codes include max magnitudes, subnormals, zeros and negative zero."""
    check_shape(config, k, vectors)
    if not 0.0 <= float(block_zero_fraction) <= 1.0:
        raise WorkloadError(f"block_zero_fraction={block_zero_fraction} is a fraction of blocks; use 0..1")
    rng = np.random.default_rng(seed)
    kp = k + (-k % config.m)
    zeros = _zero_codes(config.wfmt)
    w = rng.choice(zeros, size=(vectors, kp)).astype(np.uint8)
    vals = random_codes(config.wfmt, (vectors, kp), rng)
    # per group, n random positions keep their random code
    pos = np.argsort(rng.random((vectors, kp // config.m, config.m)), axis=2)[:, :, :config.n]
    keep = np.zeros((vectors, kp // config.m, config.m), dtype=bool)
    np.put_along_axis(keep, pos, True, axis=2)
    w = np.where(keep.reshape(vectors, kp), vals, w)[:, :k]
    if config.block is not None:
        blocks = -(-k // config.block)
        dead = rng.random((vectors, blocks)) < block_zero_fraction
        mask = np.repeat(dead, config.block, axis=1)[:, :k]
        w = np.where(mask, rng.choice(zeros, size=(vectors, k)), w).astype(np.uint8)
    a = random_codes(config.afmt, (vectors, k), rng)
    return Workload(w, a)


def reference(config: SparseConfig, workload: Workload) -> np.ndarray:
    """Exact dot products of the dense codes (one per vector), units of
    ``2^output_exponent(config)``; raises :class:`NMPatternError` for weights that break n:m."""
    w, _ = _padded(config, workload)
    check_workload(config, workload)
    compress(w, config.n, config.m, config.wfmt)
    return exact_dot(workload.w_codes, config.wfmt, workload.a_codes, config.afmt,
                     output_exponent(config), config.acc_bits > 62)


def beats_per_vector(config: SparseConfig, workload: Workload) -> np.ndarray:
    """Beats each vector takes after block skipping (int64, shape (vectors,))."""
    if config.block is None:
        k_pad = workload.k + (-workload.k % config.span)
        return np.full(workload.vectors, k_pad // config.span, dtype=np.int64)
    return live_beats(config.lanes, config.n, config.m, config.block, block_bitmap(config, workload).sum(axis=1))


def live_beats(lanes, n, m, block, live_blocks) -> np.ndarray:
    """Beats of one vector with ``live_blocks`` non-zero blocks of ``block`` dense weights (at
    least one beat, so that every reduction ends): ``max(1, live · block / span)``."""
    span = np.asarray(lanes, dtype=np.int64) // np.asarray(n, dtype=np.int64) * np.asarray(m, dtype=np.int64)
    return np.maximum(1, np.asarray(live_blocks, dtype=np.int64) * (np.asarray(block, dtype=np.int64) // span))


def cycles_array(lanes, n, m, block, pipeline, k, vectors, block_density=1.0) -> np.ndarray:
    """Closed-form cycles over arrays of configs and workloads (int64; always-valid source,
    always-ready sink): ``vectors · beats + pipeline + 1``.

    ``block`` 0 means no block skipping (``ceil(K / span)`` beats per vector); otherwise each
    vector runs ``ceil(blocks · block_density)`` live blocks (:func:`live_beats`), an expectation
    when ``block_density`` is a measured fraction, exact when every vector has that many.
    """
    lanes, n, m, block, pipeline, k, vectors = (np.asarray(x, dtype=np.int64)
                                                for x in (lanes, n, m, block, pipeline, k, vectors))
    span = lanes // n * m
    beats = -(-k // span)
    bsafe = np.where(block > 0, block, span)
    live = np.ceil(-(-k // bsafe) * np.asarray(block_density, dtype=float) - 1e-9).astype(np.int64)
    beats = np.where(block > 0, live_beats(lanes, n, m, bsafe, live), beats)
    return vectors * beats + pipeline + 1


def cycles(config: SparseConfig, workload: Workload) -> int:
    """Cycles until the last output transfers (always-valid source, always-ready sink):
    ``Σ beats_per_vector + pipeline + 1``."""
    check_shape(config, workload.k, workload.vectors)
    return int(beats_per_vector(config, workload).sum()) + config.pipeline + 1
