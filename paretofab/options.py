"""The options of ``paretofab explore``: one dataclass, :class:`ExploreConfig`, whose fields carry
their command-line spelling and help (:class:`Option` in each field's metadata), so the parser
(:func:`add_arguments`), the config the parser's result describes (:func:`from_args`) and the
command line that rebuilds a config (:func:`to_argv`) all come from the one definition. The trace
options are ``models.cli``'s (:func:`models.cli.add_trace_arguments`), shared with ``traces``
and ``distill``; their ``--seed`` and ``--allow-degenerate`` also set :attr:`ExploreConfig.seed`
and :attr:`ExploreConfig.allow_degenerate`.

:meth:`ExploreConfig.validate` checks every option before any work starts (formats, PTQ
technique sets, pruning pattern, device, engine lanes, ranges), raising one ``ValueError`` that
names the fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from costmodel import DEVICES, estimate, get_device
from hw.devices import DEFAULT_DEVICE
from models.cli import add_trace_arguments, spec_from_args
from models.distill import METHODS, KDSpec
from models.prune import SALIENCIES, Pattern, PruneConfig, parse_pattern
from models.traces import APPS, SCALES
from models.workload import TraceSpec
from models.zoo import ARCHS, PRESETS
from quant.brevitas_map import check_supported
from quant.ptq import parse_techniques

from .mapping import engine_for

__all__ = ["DEFAULT_FORMATS", "ACTIVITY_SAMPLES", "ExploreConfig", "Option", "add_arguments", "from_args",
           "to_argv"]

DEFAULT_FORMATS = ("int4", "int6", "int8", "e2m1", "e2m3", "e3m2", "e4m3")
#: the sparsity patterns explored beside the dense student
DEFAULT_PATTERNS = ("2:4", "2:4+b8k0.5")
#: test inputs per front point of ``--activity-energy`` (default) and the most accepted: each is one
#: inference of gate-level simulation (thousands of cycles)
ACTIVITY_SAMPLES = 1
MAX_ACTIVITY_SAMPLES = 64


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _nm(s: str) -> tuple[int, int]:
    try:
        n, m = (int(x) for x in s.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: give the pattern as N:M, e.g. 2:4") from None
    return n, m


def _patterns(s: str) -> tuple[str, ...]:
    """``--pattern`` text → the patterns as written, each checked (``2:4``, ``2:4+b8k0.5``, ``dense``)."""
    out = _csv(s)
    for x in out:
        try:
            parse_pattern(x)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{x!r}: {e} (patterns look like 2:4, 2:4+b8k0.5)") from None
    return out


def _show(v: Any) -> str:
    """A value as the command line spells it."""
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return f"{v[0]}:{v[1]}"
    if isinstance(v, tuple):
        return ",".join(v)
    return str(v)


@dataclass(frozen=True)
class Option:
    """How one :class:`ExploreConfig` field appears on the command line.

    Attributes
    ----------
    help : what the option does (the default is appended).
    flags : its spellings (default ``--<field-name>`` with dashes).
    parse : text → value (default: the type of the field's default, or ``str``).
    choices : the values accepted.
    metavar : the placeholder in ``--help`` (default: the flag in capitals).
    kind : ``"value"`` (takes a value), ``"no-flag"`` (a bool that ``--no-<name>`` turns off),
        ``"flag"`` (a bool, off by default, that ``--<name>`` turns on), ``"trace"`` (the trace
        options of ``models.cli``) or ``"shared"`` (a flag that the trace options add, e.g.
        ``--seed``).
    """

    help: str
    flags: tuple[str, ...] = ()
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    kind: str = "value"
    metavar: str | None = None


def _opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its :class:`Option`."""
    meta = {"cli": Option(help, **kw)}
    if isinstance(default, TraceSpec):
        return field(default_factory=TraceSpec, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ExploreConfig:
    """What ``explore`` builds; the defaults finish in a few minutes on 2 cores.

    ``workload``: the trace and its splits (:class:`models.workload.TraceSpec`); ``spread_seeds``
    students are trained on it (training seeds ``seed``, ``seed + 1``, …): the first is explored,
    all of them give the seed-to-seed spread printed under the front. ``saliency=None``: class
    saliency when ``classes`` are given, else magnitude. Every field's :class:`Option` (its
    ``metadata["cli"]``) says how the command line sets it."""

    out: str = _opt("runs/explore", "output folder; rerun to resume", flags=("-o", "--output"), metavar="DIR")
    workload: TraceSpec = _opt(TraceSpec(), "the trace and its splits", kind="trace")
    arch: str = _opt("mixer", "student architecture", choices=ARCHS)
    method: str = _opt("none", "distillation: none (labels only), kd or packd", choices=METHODS)
    teacher_arch: str = _opt("mixer", "teacher architecture (kd, packd)", choices=ARCHS)
    teacher_preset: str = _opt("cpu", "teacher size (kd, packd)", choices=PRESETS)
    epochs: int = _opt(30, "student training epochs (early stopping on validation)")
    teacher_epochs: int = _opt(15, "teacher training epochs")
    spread_seeds: int = _opt(3, "students trained with seeds seed.. for the seed-to-seed spread")
    allow_degenerate: bool = _opt(False, "go on with a degenerate trace", kind="shared",
                                  flags=("--allow-degenerate",))
    formats: tuple[str, ...] = _opt(DEFAULT_FORMATS, "W = A formats to sweep, comma-separated", parse=_csv)
    ptq: tuple[str, ...] = _opt(("none",), "PTQ technique sets, comma-separated (e.g. none,weq+gptq)",
                                parse=_csv)
    lanes: int = _opt(16, "engine multipliers")
    pattern: tuple[str, ...] = _opt(DEFAULT_PATTERNS, "sparsity patterns explored beside dense (always "
                                    "included), comma-separated: N:M (sparse engine), N:M+bBkK (blocks of B "
                                    "weights, fraction K kept: block-skipping engine)", parse=_patterns,
                                    metavar="PATTERNS")
    prune_epochs: int = _opt(2, "SR-STE fine-tuning epochs of the pruned students (0 = one-shot)")
    saliency: str | None = _opt(None, "pruning saliency (default: class with --classes, else magnitude)",
                                choices=SALIENCIES)
    classes: str | None = _opt(None, "class-aware saliency for these outputs (e.g. top32)")
    device: str = _opt(DEFAULT_DEVICE, f"FPGA part for fmax and static power ({', '.join(DEVICES)})",
                       metavar="PART")
    activity_energy: bool = _opt(False, "after the front: dynamic energy of every front point from the switching "
                                 "activity of its engine's gate-level netlist (Yosys + Verilator) on the point's "
                                 "own quantized layers and test inputs, beside the action-count and vectorless "
                                 "figures (xc7 parts; 20-110 s per new design)", kind="flag")
    accel: bool = _opt(False, "after the front: every front point as a whole-network dataflow accelerator (paretofab "
                       "accel: one stage per layer, at most --lanes multipliers in all), costed beside the single "
                       "engine (students QONNX can map: resnet)", kind="flag")
    activity_samples: int = _opt(ACTIVITY_SAMPLES, "test inputs streamed through each front engine with "
                                 "--activity-energy (energies per inference)", metavar="N")
    seed: int = _opt(0, "training seed (and the trace's)", kind="shared", flags=("--seed",))
    jobs: int = _opt(1, "sweep worker processes")
    threads: int = _opt(2, "torch CPU threads for training (1 when other jobs share the cores)")
    progress: bool = _opt(True, "progress bars", kind="no-flag", flags=("--no-progress",))

    def __post_init__(self) -> None:
        if self.saliency is None:
            self.saliency = "class" if self.classes else "magnitude"

    def student_options(self) -> dict:
        """Everything the student stage depends on (its cache key)."""
        return {"workload": self.workload.to_dict(), "arch": self.arch, "method": self.method,
                "teacher_arch": self.teacher_arch, "teacher_preset": self.teacher_preset,
                "epochs": self.epochs, "teacher_epochs": self.teacher_epochs,
                "spread_seeds": self.spread_seeds, "seed": self.seed,
                "allow_degenerate": self.allow_degenerate}

    def kd_spec(self) -> KDSpec:
        """What the student stage distills (``models.distill`` validates it)."""
        return KDSpec(arch=self.arch, method=self.method, teacher_arch=self.teacher_arch,
                      teacher_preset=self.teacher_preset)

    def prune_config(self) -> PruneConfig:
        """How the pruning stage prunes (``models.prune`` validates it)."""
        return PruneConfig(saliency=self.saliency, classes=self.classes, epochs=self.prune_epochs, seed=self.seed,
                           progress=self.progress)

    def patterns(self) -> list[Pattern]:
        """The sparsity patterns explored: dense first, then :attr:`pattern` in its order (each
        once). Raises ``PruneError`` (a ``ValueError``) for a bad pattern."""
        out = [Pattern()]
        for text in self.pattern:
            p = parse_pattern(text)
            if not p.is_dense and str(p) not in map(str, out):
                out.append(p)
        return out

    def validate(self) -> None:
        """Check every option before any work starts; raises ``ValueError`` (or a subclass from
        the package that owns the option) with one line naming the fix."""
        _check_ranges(self)
        _check_names(self)
        self.kd_spec()
        self.prune_config()
        if not self.formats:
            raise ValueError("--formats is empty: give at least one format, e.g. --formats int8,e4m3")
        for f in self.formats:
            check_supported(f)
        for p in self.ptq:
            parse_techniques(p)
        get_device(self.device)
        if self.activity_samples != ACTIVITY_SAMPLES and not self.activity_energy:
            raise ValueError(f"--activity-samples {self.activity_samples} applies to --activity-energy only: add "
                             "--activity-energy or drop --activity-samples")
        if isinstance(self.pattern, str):
            raise ValueError(f"pattern={self.pattern!r}: give a tuple of patterns, e.g. ('2:4', '2:4+b8k0.5')")
        for pattern in self.patterns():  # a bad N:M / block / keep raises PruneError
            unit = pattern.block if pattern.has_blocks else 1
            for f in self.formats:  # lanes × pattern × format must make an engine the cost model knows
                estimate(engine_for(pattern, f, unit, self.lanes), self.device, k=1)


def _flag(name: str) -> str:
    f = next(f for f in fields(ExploreConfig) if f.name == name)
    return (f.metadata["cli"].flags or (f"--{name.replace('_', '-')}",))[-1]


def _check_ranges(cfg: ExploreConfig) -> None:
    lows = {"epochs": 1, "teacher_epochs": 1, "spread_seeds": 1, "lanes": 1, "prune_epochs": 0, "jobs": 1,
            "threads": 1, "activity_samples": 1}
    for name, low in lows.items():
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < low:
            raise ValueError(f"{_flag(name)} {v!r}: use an integer >= {low}")
    if cfg.activity_samples > MAX_ACTIVITY_SAMPLES:
        raise ValueError(f"--activity-samples {cfg.activity_samples}: use 1..{MAX_ACTIVITY_SAMPLES} (each test input "
                         "is one inference of gate-level simulation per front point)")
    w = cfg.workload
    if w.trace is None and w.scale not in SCALES:
        raise ValueError(f"--scale {w.scale}: use {SCALES.start}..{SCALES.stop - 1} (2**scale graph vertices)")
    for name in ("max_loads", "max_rows", "l1_kb", "l2_kb"):
        v = getattr(w, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} {v}: use 1 or more")


def _check_names(cfg: ExploreConfig) -> None:
    for name, allowed in (("arch", ARCHS), ("teacher_arch", ARCHS), ("teacher_preset", PRESETS)):
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{_flag(name)} {getattr(cfg, name)!r}: choose one of {', '.join(allowed)}")
    if cfg.workload.trace is None and cfg.workload.app not in APPS:
        raise ValueError(f"--app {cfg.workload.app!r}: choose one of {', '.join(APPS)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every :class:`ExploreConfig` option (shared with ``paretofab demo``), from its fields."""
    d = ExploreConfig()
    for f in fields(ExploreConfig):
        o: Option = f.metadata["cli"]
        if o.kind == "trace":
            add_trace_arguments(p)  # also adds the "shared" --seed and --allow-degenerate
        elif o.kind == "no-flag":
            p.add_argument(*o.flags, dest=f.name, action="store_false", help=f"no {o.help}")
        elif o.kind == "flag":
            p.add_argument(*(o.flags or (f"--{f.name.replace('_', '-')}",)), dest=f.name, action="store_true",
                           help=o.help)
        elif o.kind == "value":
            default = getattr(d, f.name) if f.name != "saliency" else None
            shown = "" if default is None else f" (default {_show(default)})"
            flags = o.flags or (f"--{f.name.replace('_', '-')}",)
            # --pattern: None when not given, so that its deprecated spellings can be told apart
            p.add_argument(*flags, dest=f.name, default=None if f.name == "pattern" else default,
                           type=o.parse or (type(default) if default is not None else str), choices=o.choices,
                           metavar=None if o.choices else o.metavar or flags[-1].lstrip("-").replace("-", "_").upper(),
                           help=o.help + shown)
    _add_deprecated(p)


#: the old spellings of --pattern (one release): N:M, block size, kept fraction
_OLD_PATTERN = (("--nm", "old_nm", _nm, (2, 4)), ("--block", "old_block", int, 8), ("--keep", "old_keep", float, 0.5))


def _add_deprecated(p: argparse.ArgumentParser) -> None:
    for flag, dest, parse, _ in _OLD_PATTERN:
        p.add_argument(flag, dest=dest, type=parse, default=None, help=argparse.SUPPRESS)


def _old_pattern(args: argparse.Namespace) -> tuple[str, ...] | None:
    """``--nm/--block/--keep`` (deprecated) as the ``--pattern`` they meant: N:M and N:M + blocks
    (:meth:`ExploreConfig.validate` checks it); a one-line note on stderr."""
    given = {dest: getattr(args, dest, None) for _, dest, _, _ in _OLD_PATTERN}
    if all(v is None for v in given.values()):
        return None
    (n, m), block, keep = (default if given[dest] is None else given[dest] for _, dest, _, default in _OLD_PATTERN)
    new = (f"{n}:{m}", f"{n}:{m}+b{block}k{keep:g}")
    old = "/".join(flag for flag, dest, _, _ in _OLD_PATTERN if given[dest] is not None)
    print(f"paretofab {getattr(args, 'command', None) or 'explore'}: note: {old} deprecated, going in the next "
          f"release; use --pattern {','.join(new)}", file=sys.stderr)
    return new


def from_args(args: argparse.Namespace) -> ExploreConfig:
    """The :class:`ExploreConfig` that :func:`add_arguments` options describe (the deprecated
    ``--nm/--block/--keep`` become the ``--pattern`` they meant, with a note on stderr)."""
    kw = {f.name: getattr(args, f.name) for f in fields(ExploreConfig)
          if f.metadata["cli"].kind != "trace"}
    if kw["pattern"] is not None and any(getattr(args, dest, None) is not None for _, dest, _, _ in _OLD_PATTERN):
        raise ValueError("give --pattern only (e.g. --pattern 2:4,2:4+b8k0.5); --nm/--block/--keep are its "
                         "deprecated spelling, not both")
    old = _old_pattern(args)
    kw["pattern"] = old or (DEFAULT_PATTERNS if kw["pattern"] is None else kw["pattern"])
    return ExploreConfig(workload=spec_from_args(args), **kw)


def to_argv(cfg: ExploreConfig) -> list[str]:
    """The command-line options that :func:`from_args` turns back into ``cfg`` (the trace's
    seed is ``cfg.seed``: one ``--seed`` sets both)."""
    argv: list[str] = []
    for f in fields(ExploreConfig):
        o: Option = f.metadata["cli"]
        v = getattr(cfg, f.name)
        if o.kind == "trace":
            for tf in fields(TraceSpec):
                tv = getattr(v, tf.name)
                if tf.name != "seed" and tv is not None:
                    argv += [f"--{tf.name.replace('_', '-')}", str(tv)]
        elif o.kind in ("no-flag", "shared", "flag") and isinstance(v, bool):
            argv += list(o.flags or (f"--{f.name.replace('_', '-')}",)) if v != (o.kind == "no-flag") else []
        elif v is not None:
            argv += [(o.flags or (f"--{f.name.replace('_', '-')}",))[-1], _show(v)]
    return argv
