"""The engine protocol and the plumbing every engine shares.

An engine is one module in ``hw`` registered in :mod:`hw.engines` (one line there); the module
follows :class:`EngineModule` and its frozen config dataclass follows :class:`Engine`
(subclassing :class:`EngineConfig` gives it ``to_dict``/``from_dict``). Facts of the hardware that
other packages need (register points of the pipelined adder tree, closed-form cycles) live here or
in the engine's own module, never re-derived elsewhere.

Shared here: integer checks of config fields (:func:`check_int`, :func:`set_int`,
:func:`check_pipeline`), config (de)serialization (:class:`EngineConfig`), random and edge-case
codes (:func:`random_codes`, :func:`special_codes`), workload checks (:func:`check_shape`,
:func:`check_codes`), beat packing and unpacking (:func:`pack_beats`, :func:`unpack_signed`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from amaranth.lib import wiring

from quant.formats import Format, IntFormat, MinifloatFormat
from quant.reference import decode

from .arith import ConfigError, WorkloadError, finite_codes

__all__ = [
    "Engine", "EngineModule", "EngineConfig",
    "tree_levels", "register_points",
    "check_int", "set_int", "check_pipeline",
    "special_codes", "random_codes", "check_shape", "check_codes",
    "pack_beats", "unpack_signed", "OUTPUT_PACKETS",
]

#: the values of an engine module's ``OUTPUT_PACKET`` (:class:`EngineModule`)
OUTPUT_PACKETS = ("one", "beat_for_beat")


# ---- the protocol -----------------------------------------------------------------------------


@runtime_checkable
class Engine(Protocol):
    """An engine configuration: a frozen dataclass naming its engine, buildable and
    serializable (``from_dict(to_dict()) == config``)."""

    engine: ClassVar[str]

    def build(self) -> wiring.Component: ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Engine": ...


@runtime_checkable
class EngineModule(Protocol):
    """The API every registered engine module exports (``W`` is its workload type).

    Attributes
    ----------
    Config : type
        The config class (:class:`Engine`).
    random_workload(config, ..., seed) -> W
        A random workload; its keyword parameters become ``paretofab sim`` options.
    pack_inputs(config, W) -> list[int]
        Packed input payloads, one per beat.
    n_outputs(config, W) -> int
        Output beats the workload produces.
    unpack_outputs(config, list[int]) -> np.ndarray
        Exact outputs from packed output payloads, units of ``2^output_exponent``.
    reference(config, W) -> np.ndarray
        The exact numpy result (what ``unpack_outputs`` must equal).
    output_exponent(config) -> int
        Outputs are integers times ``2^output_exponent``.
    cycles(config, W) -> int
        Closed-form cycles until the last output transfers (always-valid source,
        always-ready sink).
    OUTPUT_PACKET : str
        What the output beats of one input packet (the beats up to and including one with the
        payload's ``last`` bit) are: ``"one"`` (one output beat per packet: a dot product per
        vector) or ``"beat_for_beat"`` (one output beat per input beat: a token's output chunks
        per input chunk). The AXI4-Stream top (:mod:`hw.axis`) sets ``tlast`` from it.
    """

    Config: type
    OUTPUT_PACKET: str

    def random_workload(self, config: Any, *args: Any, **kwargs: Any) -> Any: ...

    def pack_inputs(self, config: Any, workload: Any) -> list[int]: ...

    def n_outputs(self, config: Any, workload: Any) -> int: ...

    def unpack_outputs(self, config: Any, outputs: list[int]) -> np.ndarray: ...

    def reference(self, config: Any, workload: Any) -> np.ndarray: ...

    def output_exponent(self, config: Any) -> int: ...

    def cycles(self, config: Any, workload: Any) -> int: ...


class EngineConfig:
    """Mixin of the engine config dataclasses: ``to_dict``/``from_dict`` over the dataclass
    fields (formats as their names, the ``engine`` key first)."""

    engine: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: ``engine``, then every field (formats stringified)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"engine": self.engine,
                **{k: str(v) if isinstance(v, (IntFormat, MinifloatFormat)) else v for k, v in d.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The config of ``to_dict()``; :class:`ConfigError` on a foreign ``engine`` or unknown keys."""
        d = dict(d)
        engine = d.pop("engine", cls.engine)
        if engine != cls.engine:
            raise ConfigError(f"config is for engine {engine!r}, not {cls.engine!r}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    def design_tag(self) -> str:
        """The part of the design name after ``<engine>_`` (``hw.export.design_name``): readable
        fields, then :meth:`other_fields_tag` for the rest. Engines override it; this default
        is only the hash of every field."""
        return self.other_fields_tag(set()).lstrip("_") or "default"

    def other_fields_tag(self, shown: set[str]) -> str:
        """``"_x"`` + 6 hex digits of a hash of the fields not in ``shown`` that differ from
        their defaults (``""`` when none do), so two configs never share a design name."""
        rest = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in shown and (f.default is MISSING or getattr(self, f.name) != f.default)}
        if not rest:
            return ""
        text = json.dumps({k: str(v) for k, v in sorted(rest.items())})
        return "_x" + hashlib.sha256(text.encode()).hexdigest()[:6]


# ---- adder tree facts -------------------------------------------------------------------------


def tree_levels(lanes: int) -> int:
    """Adder-tree levels for ``lanes`` products: ``ceil(log2 lanes)``."""
    return (int(lanes) - 1).bit_length()


def register_points(lanes: int, pipeline: int) -> list[int]:
    """Tree levels after which a register stage sits (0 = right after the multipliers), for
    ``pipeline`` stages spread evenly over the ``tree_levels(lanes) + 1`` points."""
    points = tree_levels(lanes) + 1
    return sorted({round(j * points / pipeline) for j in range(pipeline)}) if pipeline else []


# ---- config checks ----------------------------------------------------------------------------


def check_int(name: str, value: Any, lo: int, hint: str, hi: int | None = None,
              error: type[ValueError] = ConfigError) -> int:
    """``value`` as a Python int, or ``error`` (default :class:`ConfigError`) unless it is an
    integer (not a bool) in ``lo .. hi`` (``hi`` None: no upper bound)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise error(f"{name} must be an integer {bound}, got {value!r}" + (f"; {hint}" if hint else ""))
    return int(value)


def set_int(config: Any, name: str, lo: int, hint: str, hi: int | None = None) -> None:
    """Check field ``name`` of a frozen dataclass with :func:`check_int` and store it as an int."""
    object.__setattr__(config, name, check_int(name, getattr(config, name), lo, hint, hi))


def check_pipeline(lanes: int, pipeline: int) -> None:
    """:class:`ConfigError` unless ``pipeline`` fits the ``tree_levels(lanes) + 1`` register
    points of a ``lanes``-term multiply-add tree."""
    points = tree_levels(lanes) + 1
    if pipeline > points:
        raise ConfigError(
            f"pipeline={pipeline} exceeds the {points} register points of a {lanes}-lane engine "
            f"(after the multipliers and after each adder-tree level); use pipeline <= {points}"
        )


# ---- codes and workloads ----------------------------------------------------------------------


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
        top_sub = 2**fmt.mantissa_bits - 1  # exponent field 0, mantissa all ones
        picks |= {top_sub, top_sub | (1 << (fmt.bits - 1))}
    return np.array(sorted(picks), dtype=np.uint8)


def random_codes(fmt: Format, shape: tuple[int, ...], rng: np.random.Generator,
                 special_fraction: float = 0.25) -> np.ndarray:
    """Random finite codes of ``fmt``; about ``special_fraction`` of them edge cases
    (:func:`special_codes`), the rest uniform over every finite code."""
    uniform = rng.choice(finite_codes(fmt), size=shape)
    special = rng.choice(special_codes(fmt), size=shape)
    return np.where(rng.random(shape) < special_fraction, special, uniform).astype(np.uint8)


def check_shape(config: Any, k: Any, vectors: Any) -> None:
    """:class:`WorkloadError` unless ``vectors >= 1`` reductions of length ``K`` in
    ``1 .. config.k_max`` (elements)."""
    check_int("K", k, 1, "", error=WorkloadError)
    if k > config.k_max:
        raise WorkloadError(f"K={k} exceeds k_max={config.k_max} of this engine; raise k_max or split the reduction")
    check_int("vectors", vectors, 1, "", error=WorkloadError)


def check_codes(name: str, codes: np.ndarray, fmt: Format) -> None:
    """:class:`WorkloadError`, naming the first bad position, unless every code is a finite
    value of ``fmt``."""
    codes = np.asarray(codes)
    if codes.min() < 0 or codes.max() >= 2**fmt.bits:
        raise WorkloadError(f"{name} must lie in 0..{2**fmt.bits - 1} for {fmt}")
    bad = ~np.isin(codes, finite_codes(fmt))
    if bad.any():
        pos = tuple(int(x) for x in np.argwhere(bad)[0])
        raise WorkloadError(
            f"{name}[{', '.join(map(str, pos))}] = {int(codes[pos])} is not a finite {fmt} value (inf/NaN or "
            f"outside a narrow range); engines compute on finite codes only, clean the data first"
        )


# ---- beats ------------------------------------------------------------------------------------


def pack_beats(fields_: list[tuple[np.ndarray, int, int]], payload_bits: int) -> list[int]:
    """Pack per-beat fields into payload integers.

    Parameters
    ----------
    fields_ : list of (values, width, offset)
        ``values`` is a (beats, count) array of non-negative ints; element ``j`` of a beat goes to
        bits ``offset + j·width ..`` of its payload (widths and offsets in bits).
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


def unpack_signed(outputs: list[int], width: int, count: int = 1) -> np.ndarray:
    """Signed ``width``-bit fields of packed payloads, ``count`` per payload (element ``j`` at
    bits ``j·width ..``), flattened: shape ``(len(outputs)·count,)``; int64, or object ints when
    ``width > 62``."""
    mask = (1 << width) - 1
    vals = [((int(x) >> (j * width)) & mask) for x in outputs for j in range(count)]
    vals = [v - ((v >> (width - 1) & 1) << width) for v in vals]
    return np.array(vals, dtype=object if width > 62 else np.int64)
