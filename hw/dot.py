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

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.formats import Format, IntFormat, parse_format
from quant.reference import decode, fixed_point

from .engine import register_points, tree_levels
from .arith import (
    ConfigError,
    WorkloadError,
    acc_bits,
    finite_codes,
    multiplier,
    output_exponent as _output_exponent,
)

__all__ = [
    "DotConfig",
    "Config",
    "Workload",
    "MacPipeline",
    "DotEngine",
    "random_workload",
    "random_codes",
    "pack_inputs",
    "pack_beats",
    "n_outputs",
    "unpack_outputs",
    "reference",
    "exact_dot",
    "cycles",
    "cycles_array",
    "output_exponent",
]


# ---- configuration ----------------------------------------------------------------------------


def _check_int(name: str, value: Any, lo: int, hint: str) -> int:
    """``value`` as a Python int, or :class:`ConfigError` unless it is an integer >= ``lo``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}; {hint}")
    return int(value)


def _set_int(config, name: str, lo: int, hint: str) -> None:
    object.__setattr__(config, name, _check_int(name, getattr(config, name), lo, hint))


@dataclass(frozen=True)
class DotConfig:
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
        _set_int(self, "lanes", 1, "use --lanes 1 or more")
        _set_int(self, "k_max", 1, "set the longest reduction length K")
        _set_int(self, "pipeline", 0, "use 0 (no registers) or more")
        if self.pipeline > tree_levels(self.lanes) + 1:
            raise ConfigError(
                f"pipeline={self.pipeline} exceeds the {tree_levels(self.lanes) + 1} register points of a "
                f"{self.lanes}-lane engine (after the multipliers and after each adder-tree level); "
                f"use pipeline <= {tree_levels(self.lanes) + 1}"
            )

    @property
    def acc_bits(self) -> int:
        """Accumulator / output width, bits (signed)."""
        return acc_bits(self.wfmt, self.afmt, self.k_max)

    @property
    def lane_span(self) -> int:
        """Dense elements consumed per beat."""
        return self.lanes

    def in_layout(self) -> data.StructLayout:
        """Input beat layout."""
        return data.StructLayout({
            "w": data.ArrayLayout(unsigned(self.wfmt.bits), self.lanes),
            "a": data.ArrayLayout(unsigned(self.afmt.bits), self.lanes),
            "last": unsigned(1),
        })

    def build(self) -> "DotEngine":
        return DotEngine(self)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["wfmt"], d["afmt"] = str(self.wfmt), str(self.afmt)
        return {"engine": self.engine, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "DotConfig":
        return _from_dict(cls, d)


def _from_dict(cls, d: dict):
    d = dict(d)
    engine = d.pop("engine", cls.engine)
    if engine != cls.engine:
        raise ConfigError(f"config is for engine {engine!r}, not {cls.engine!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
    return cls(**d)


Config = DotConfig


# ---- hardware ---------------------------------------------------------------------------------


class MacPipeline(wiring.Component):
    """``lanes`` exact multipliers, a pipelined adder tree and an exact accumulator, as a stream
    component (see the module docstring for framing and timing).

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
        layout = data.StructLayout({
            "w": data.ArrayLayout(unsigned(wfmt.bits), lanes),
            "a": data.ArrayLayout(unsigned(afmt.bits), lanes),
            "last": unsigned(1),
        })
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(signed(self.acc_bits))),
        })

    def register_points(self) -> list[int]:
        """Tree levels after which a register stage sits (0 = right after the multipliers)."""
        return register_points(self.lanes, self.pipeline)

    def elaborate(self, platform):
        m = Module()
        en = Signal()  # the whole pipeline advances
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        terms = []
        for lane in range(self.lanes):
            mul = multiplier(self.wfmt, self.afmt)
            m.submodules[f"mul{lane}"] = mul
            m.d.comb += [mul.w.eq(self.i.payload.w[lane]), mul.a.eq(self.i.payload.a[lane])]
            terms.append(mul.p)
        valid, last = self.i.valid, self.i.payload.last
        regs = set(self.register_points())

        def stage(level: int, terms, valid, last):
            if level not in regs:
                return terms, valid, last
            out_terms = []
            for n, t in enumerate(terms):
                r = Signal.like(t, name=f"s{level}_t{n}")
                with m.If(en):
                    m.d.sync += r.eq(t)
                out_terms.append(r)
            v, l = Signal(name=f"s{level}_valid"), Signal(name=f"s{level}_last")
            with m.If(en):
                m.d.sync += [v.eq(valid), l.eq(last)]
            return out_terms, v, l

        level = 0
        terms, valid, last = stage(level, terms, valid, last)
        while len(terms) > 1:
            level += 1
            pairs = [terms[j] + terms[j + 1] for j in range(0, len(terms) - 1, 2)]
            nxt = []
            for n, s in enumerate(pairs):
                sig = Signal(signed(len(s)), name=f"l{level}_sum{n}")
                m.d.comb += sig.eq(s)
                nxt.append(sig)
            terms = nxt + ([terms[-1]] if len(terms) % 2 else [])
            terms, valid, last = stage(level, terms, valid, last)
        partial = terms[0]

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


def special_codes(fmt: Format) -> np.ndarray:
    """Edge-case codes of a format: ±max magnitude, most negative, ±0, ±smallest non-zero
    (subnormal where the format has them), ±largest subnormal."""
    codes = finite_codes(fmt)
    v = decode(codes, fmt)
    picks = {int(codes[np.argmax(v)]), int(codes[np.argmin(v)])}
    picks |= {int(c) for c in codes[v == 0]}  # +0 and -0 for minifloats
    nz = np.abs(v) > 0
    small = np.abs(v)[nz].min()
    picks |= {int(c) for c in codes[nz & (np.abs(v) == small)]}
    if not isinstance(fmt, IntFormat) and fmt.mantissa_bits and fmt.subnormals:
        m = fmt.mantissa_bits
        top_sub = (2**m - 1)  # exponent field 0, mantissa all ones
        picks |= {top_sub, top_sub | (1 << (fmt.bits - 1))}
    return np.array(sorted(picks), dtype=np.uint8)


def random_codes(fmt: Format, shape: tuple[int, ...], rng: np.random.Generator,
                 special_fraction: float = 0.25) -> np.ndarray:
    """Random finite codes of ``fmt``; about ``special_fraction`` of them edge cases
    (:func:`special_codes`), the rest uniform over every finite code."""
    uniform = rng.choice(finite_codes(fmt), size=shape)
    special = rng.choice(special_codes(fmt), size=shape)
    return np.where(rng.random(shape) < special_fraction, special, uniform).astype(np.uint8)


def random_workload(config: DotConfig, k: int, vectors: int, seed: int) -> Workload:
    """``vectors`` random dot products of length ``k`` (codes include max magnitudes,
    subnormals, zeros and negative zero)."""
    _check_workload_shape(config, k, vectors)
    rng = np.random.default_rng(seed)
    return Workload(random_codes(config.wfmt, (vectors, k), rng), random_codes(config.afmt, (vectors, k), rng))


def _check_workload_shape(config, k: int, vectors: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise WorkloadError(f"K must be an integer >= 1, got {k!r}")
    if k > config.k_max:
        raise WorkloadError(f"K={k} exceeds k_max={config.k_max} of this engine; raise k_max or split the reduction")
    if not isinstance(vectors, (int, np.integer)) or vectors < 1:
        raise WorkloadError(f"vectors must be an integer >= 1, got {vectors!r}")


def check_workload(config, workload: Workload) -> None:
    """Raise :class:`WorkloadError` unless the workload fits the config: K in ``1..k_max`` and
    every code a finite value of its format."""
    _check_workload_shape(config, workload.k, workload.vectors)
    for name, codes, fmt in (("w_codes", workload.w_codes, config.wfmt), ("a_codes", workload.a_codes, config.afmt)):
        if codes.min() < 0 or codes.max() >= 2**fmt.bits:
            raise WorkloadError(f"{name} must lie in 0..{2**fmt.bits - 1} for {fmt}")
        bad = ~np.isin(codes, finite_codes(fmt))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise WorkloadError(
                f"{name}[{r}, {c}] = {int(codes[r, c])} is not a finite {fmt} value (inf/NaN or outside a "
                f"narrow range); engines compute on finite codes only, clean the data first"
            )


def pack_beats(fields_: list[tuple[np.ndarray, int, int]], payload_bits: int) -> list[int]:
    """Pack per-beat fields into payload integers.

    Parameters
    ----------
    fields_ : list of (values, width, offset)
        ``values`` is a (beats, count) array of non-negative ints; element ``j`` of a beat goes to
        bits ``offset + j·width ..`` of its payload.
    payload_bits : int
        Payload width, bits.
    """
    beats = fields_[0][0].shape[0]
    bits = np.zeros((beats, payload_bits), dtype=np.uint8)
    for values, width, offset in fields_:
        values = np.asarray(values, dtype=np.int64).reshape(beats, -1)
        for j in range(values.shape[1]):
            for b in range(width):
                bits[:, offset + j * width + b] = (values[:, j] >> b) & 1
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _field(layout: data.StructLayout, name: str) -> tuple[int, int]:
    f = layout[name]
    return f.offset, f.width


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
    fs = []
    for name, vals, width in (("w", w, config.wfmt.bits), ("a", a, config.afmt.bits), ("last", last[:, None], 1)):
        off, _ = _field(layout, name)
        fs.append((vals, width, off))
    return pack_beats(fs, layout.size)


def n_outputs(config, workload: Workload) -> int:
    """One output beat per vector."""
    return workload.vectors


def unpack_outputs(config, outputs: list[int]) -> np.ndarray:
    """Exact signed accumulators from packed output payloads (int64, or object ints when
    ``acc_bits > 62``)."""
    bits = config.acc_bits
    mask = (1 << bits) - 1
    vals = [(int(x) & mask) - ((int(x) >> (bits - 1) & 1) << bits) for x in outputs]
    return np.array(vals, dtype=object if bits > 62 else np.int64)


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
    _check_workload_shape(config, workload.k, workload.vectors)
    return int(cycles_array(config.lanes, config.pipeline, workload.k, workload.vectors))
