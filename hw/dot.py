"""Dense dot-product engine: ``lanes`` exact multipliers, an adder tree and an exact accumulator.

Stream framing
--------------
Input beat (``i.payload``, :meth:`DotConfig.in_layout`): ``w`` — ``lanes`` weight codes, ``a`` —
``lanes`` activation codes, ``last`` — 1 on the final beat of a reduction. A vector of length K
takes ``ceil(K / lanes)`` beats; :func:`pack_inputs` zero-pads the tail (code 0 is zero in every
format), so K need not be a multiple of ``lanes``. Output beat (``o.payload``): the exact signed
sum, ``signed(acc_bits(wfmt, afmt, k_max))``, in units of ``2^output_exponent(config)``.

Timing
------
``pipeline`` register stages sit between the input and the accumulator (the first after the
multipliers, the others spread over the adder-tree levels); the result is registered once more
in the output register. The whole pipeline advances when the output register is empty or being
read (``i.ready = ~o.valid | o.ready``), so back-pressure stalls it and nothing is lost. With an
always-valid source and an always-ready sink it takes one beat per cycle and
``cycles = beats + pipeline + 1`` (:func:`cycles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.formats import Format, parse_format
from quant.reference import fixed_point

from .adder_tree import AdderTree
from .arith import WorkloadError, acc_bits, multiplier, output_exponent as _output_exponent
from .engine import (
    EngineConfig,
    check_codes,
    check_pipeline,
    check_shape,
    pack_beats,
    random_codes,
    register_points,
    set_int,
    unpack_signed,
)

__all__ = [
    "OUTPUT_PACKET",
    "DotConfig",
    "Config",
    "Workload",
    "MacPipeline",
    "mac_layout",
    "DotEngine",
    "random_workload",
    "check_workload",
    "dense_beats",
    "pack_inputs",
    "n_outputs",
    "unpack_outputs",
    "reference",
    "exact_dot",
    "cycles",
    "cycles_array",
    "output_exponent",
]


# ---- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DotConfig(EngineConfig):
    """Dense engine configuration.

    Parameters
    ----------
    lanes : int
        Multipliers, i.e. (weight, activation) pairs per input beat.
    wfmt, afmt : Format or str
        Weight and activation formats (names are parsed).
    k_max : int
        Longest reduction the accumulator must hold without overflow (elements).
    pipeline : int
        Register stages between input and accumulator, ``0 .. ceil(log2 lanes) + 1``.
    """

    lanes: int
    wfmt: Format
    afmt: Format
    k_max: int
    pipeline: int = 1

    engine = "dot"

    def __post_init__(self) -> None:
        object.__setattr__(self, "wfmt", parse_format(self.wfmt))
        object.__setattr__(self, "afmt", parse_format(self.afmt))
        set_int(self, "lanes", 1, "use --lanes 1 or more")
        set_int(self, "k_max", 1, "set the longest reduction length K")
        set_int(self, "pipeline", 0, "use 0 (no registers) or more")
        check_pipeline(self.lanes, self.pipeline)

    @property
    def acc_bits(self) -> int:
        """Accumulator / output width, bits (signed)."""
        return acc_bits(self.wfmt, self.afmt, self.k_max)

    @property
    def lane_span(self) -> int:
        """Dense elements consumed per beat."""
        return self.lanes

    def design_tag(self) -> str:
        """``l<lanes>_<wfmt>_<afmt>_k<k_max>`` (+ ``_p<pipeline>`` when not 1)."""
        tag = f"l{self.lanes}_{self.wfmt}_{self.afmt}_k{self.k_max}"
        return tag + (f"_p{self.pipeline}" if self.pipeline != 1 else "")

    def in_layout(self) -> data.StructLayout:
        """Input beat layout (:func:`mac_layout`)."""
        return mac_layout(self.lanes, self.wfmt, self.afmt)

    def build(self) -> "DotEngine":
        return DotEngine(self)


Config = DotConfig


# ---- hardware ---------------------------------------------------------------------------------


def mac_layout(lanes: int, wfmt: Format, afmt: Format) -> data.StructLayout:
    """Beat of a :class:`MacPipeline`: ``w`` and ``a`` (``lanes`` codes each, ``wfmt.bits`` /
    ``afmt.bits`` wide) and the end-of-reduction flag ``last`` (1 bit)."""
    return data.StructLayout({
        "w": data.ArrayLayout(unsigned(wfmt.bits), lanes),
        "a": data.ArrayLayout(unsigned(afmt.bits), lanes),
        "last": unsigned(1),
    })


class MacPipeline(wiring.Component):
    """``lanes`` exact multipliers, an :class:`~hw.adder_tree.AdderTree` and an exact
    accumulator, as a stream component (see the module docstring for framing and timing).

    Parameters
    ----------
    lanes : int
    wfmt, afmt : Format
    k_max : int
    pipeline : int

    Attributes
    ----------
    i : In(stream.Signature(StructLayout(w, a, last)))
        Input beats: ``lanes`` weight codes, ``lanes`` activation codes, end-of-reduction flag.
    o : Out(stream.Signature(signed(acc_bits)))
        One exact sum per reduction, units of ``2^output_exponent``.
    """

    def __init__(self, lanes: int, wfmt: Format, afmt: Format, k_max: int, pipeline: int):
        self.lanes, self.wfmt, self.afmt, self.k_max, self.pipeline = lanes, wfmt, afmt, k_max, pipeline
        self.acc_bits = acc_bits(wfmt, afmt, k_max)
        super().__init__({
            "i": In(stream.Signature(mac_layout(lanes, wfmt, afmt))),
            "o": Out(stream.Signature(signed(self.acc_bits))),
        })

    def register_points(self) -> list[int]:
        """Tree levels after which a register stage sits (0 = right after the multipliers)."""
        return register_points(self.lanes, self.pipeline)

    def elaborate(self, platform):
        m = Module()
        en = Signal()  # the whole pipeline advances
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        mul = [multiplier(self.wfmt, self.afmt) for _ in range(self.lanes)]
        tree = AdderTree(len(mul[0].p), self.lanes, self.register_points(), tag_bits=2)
        m.submodules.tree = tree
        for lane, mu in enumerate(mul):
            m.submodules[f"mul{lane}"] = mu
            m.d.comb += [mu.w.eq(self.i.payload.w[lane]), mu.a.eq(self.i.payload.a[lane]),
                         tree.terms[lane].eq(mu.p)]
        m.d.comb += [tree.en.eq(en), tree.tag_in.eq(Cat(self.i.valid, self.i.payload.last))]
        valid, last = tree.tag_out[0], tree.tag_out[1]
        partial = tree.total

        acc = Signal(signed(self.acc_bits))
        total = Signal(signed(self.acc_bits))
        m.d.comb += total.eq(acc + partial)
        with m.If(en):
            m.d.sync += self.o.valid.eq(valid & last)
            with m.If(valid):
                with m.If(last):
                    m.d.sync += [self.o.payload.eq(total), acc.eq(0)]
                with m.Else():
                    m.d.sync += acc.eq(total)
        return m


class DotEngine(wiring.Component):
    """Dense dot-product engine built from a :class:`DotConfig` (ports as :class:`MacPipeline`).

    Parameters
    ----------
    config : DotConfig

    Attributes
    ----------
    i : In(stream.Signature(config.in_layout()))
    o : Out(stream.Signature(signed(config.acc_bits)))
    """

    def __init__(self, config: DotConfig):
        self.config = config
        super().__init__({
            "i": In(stream.Signature(config.in_layout())),
            "o": Out(stream.Signature(signed(config.acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.mac = mac = MacPipeline(c.lanes, c.wfmt, c.afmt, c.k_max, c.pipeline)
        wiring.connect(m, wiring.flipped(self.i), mac.i)
        wiring.connect(m, mac.o, wiring.flipped(self.o))
        return m


# ---- workloads --------------------------------------------------------------------------------


@dataclass
class Workload:
    """Dense codes of one batch of dot products.

    Attributes
    ----------
    w_codes : np.ndarray, uint8, shape (vectors, K)
        Weight codes, one row per output.
    a_codes : np.ndarray, uint8, shape (vectors, K)
        Activation codes.
    """

    w_codes: np.ndarray
    a_codes: np.ndarray

    def __post_init__(self) -> None:
        self.w_codes = np.asarray(self.w_codes)
        self.a_codes = np.asarray(self.a_codes)
        if self.w_codes.ndim != 2 or self.w_codes.shape != self.a_codes.shape:
            raise WorkloadError(
                f"w_codes and a_codes must be 2-D arrays of the same shape (vectors, K), got "
                f"{self.w_codes.shape} and {self.a_codes.shape}"
            )

    @property
    def vectors(self) -> int:
        return self.w_codes.shape[0]

    @property
    def k(self) -> int:
        return self.w_codes.shape[1]


def random_workload(config: DotConfig, k: int, vectors: int, seed: int) -> Workload:
    """``vectors`` random dot products of length ``k`` (codes include max magnitudes,
    subnormals, zeros and negative zero)."""
    check_shape(config, k, vectors)
    rng = np.random.default_rng(seed)
    return Workload(random_codes(config.wfmt, (vectors, k), rng), random_codes(config.afmt, (vectors, k), rng))


def check_workload(config, workload: Workload) -> None:
    """Raise :class:`WorkloadError` unless the workload fits the config: K in ``1..k_max`` and
    every code a finite value of its format."""
    check_shape(config, workload.k, workload.vectors)
    check_codes("w_codes", workload.w_codes, config.wfmt)
    check_codes("a_codes", workload.a_codes, config.afmt)


def dense_beats(config: DotConfig, workload: Workload) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, a, last) per beat: ``(beats, lanes)`` code arrays and a ``(beats,)`` flag array,
    vectors zero-padded to a multiple of ``lanes``."""
    lanes, k = config.lanes, workload.k
    per = -(-k // lanes)
    pad = per * lanes - k
    w = np.pad(workload.w_codes, ((0, 0), (0, pad))).reshape(-1, lanes)
    a = np.pad(workload.a_codes, ((0, 0), (0, pad))).reshape(-1, lanes)
    last = np.zeros((workload.vectors, per), dtype=np.int64)
    last[:, -1] = 1
    return w, a, last.reshape(-1)


def pack_inputs(config: DotConfig, workload: Workload) -> list[int]:
    """Input beats (packed payloads) for ``workload``; raises :class:`WorkloadError` if it does
    not fit the config."""
    check_workload(config, workload)
    w, a, last = dense_beats(config, workload)
    layout = config.in_layout()
    fs = [(vals, width, layout[name].offset)
          for name, vals, width in (("w", w, config.wfmt.bits), ("a", a, config.afmt.bits), ("last", last[:, None], 1))]
    return pack_beats(fs, layout.size)


#: one output beat per input packet (a vector, its beats up to ``last``): the AXI4-Stream tlast
OUTPUT_PACKET = "one"


def n_outputs(config, workload: Workload) -> int:
    """One output beat per vector."""
    return workload.vectors


def unpack_outputs(config, outputs: list[int]) -> np.ndarray:
    """Exact signed accumulators from packed output payloads (int64, or object ints when
    ``acc_bits > 62``)."""
    return unpack_signed(outputs, config.acc_bits)


def output_exponent(config) -> int:
    """Outputs are integers times ``2^output_exponent(config)``."""
    return _output_exponent(config.wfmt, config.afmt)


def exact_dot(w_codes: np.ndarray, wfmt: Format, a_codes: np.ndarray, afmt: Format,
              exponent: int, wide: bool) -> np.ndarray:
    """Row-wise exact dot products of decoded codes, integers in units of ``2^exponent``,
    from :func:`quant.reference.fixed_point` (independent of the RTL)."""
    wi, kw = fixed_point(w_codes, wfmt)
    ai, ka = fixed_point(a_codes, afmt)
    shift = kw + ka - exponent
    if shift < 0:
        raise ValueError(f"output exponent {exponent} is coarser than the product grid 2^{kw + ka}")
    if wide or wi.dtype == object or ai.dtype == object:
        wi, ai = wi.astype(object), ai.astype(object)
        return np.array([sum(int(x) * int(y) for x, y in zip(wr, ar)) << shift for wr, ar in zip(wi, ai)],
                        dtype=object)
    return (wi.astype(np.int64) * ai.astype(np.int64)).sum(axis=1) << shift


def reference(config: DotConfig, workload: Workload) -> np.ndarray:
    """Exact dot products (one per vector) in units of ``2^output_exponent(config)``."""
    check_workload(config, workload)
    return exact_dot(workload.w_codes, config.wfmt, workload.a_codes, config.afmt,
                     output_exponent(config), config.acc_bits > 62)


def cycles_array(lanes, pipeline, k, vectors) -> np.ndarray:
    """Closed-form cycles over arrays of configs and workloads (int64; always-valid source,
    always-ready sink): ``vectors · ceil(K / lanes) + pipeline + 1``."""
    lanes, pipeline, k, vectors = (np.asarray(x, dtype=np.int64) for x in (lanes, pipeline, k, vectors))
    return vectors * -(-k // lanes) + pipeline + 1


def cycles(config: DotConfig, workload: Workload) -> int:
    """Cycles until the last output transfers, always-valid source and always-ready sink
    (:func:`cycles_array`)."""
    check_shape(config, workload.k, workload.vectors)
    return int(cycles_array(config.lanes, config.pipeline, workload.k, workload.vectors))
