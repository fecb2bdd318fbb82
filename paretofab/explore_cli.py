"""``paretofab explore``: the main job, from address traces to a Pareto front of accelerators.

Its command line, and ``paretofab demo``'s (the same options): :class:`ExploreOptions`, whose
fields carry their command-line spelling and help (:class:`Option` in each field's metadata), so
the parser (:func:`add_arguments`), the options a parsed command line gives (:func:`options_of`)
and the command line that rebuilds them (:func:`to_argv`) all come from the one definition. The
trace options are ``models.cli``'s (:func:`models.cli.add_trace_arguments`), shared with
``traces`` and ``distill``; their ``--seed`` and ``--allow-degenerate`` also set
:attr:`ExploreOptions.seed` and :attr:`ExploreOptions.allow_degenerate`.

What the options mean to the packages below, and their checks, is
:class:`paretofab.options.ExploreConfig`; the run is :mod:`paretofab.explore`. Both need torch, so
the parser names what it runs (``"paretofab.explore:_run"``), imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from hw.devices import DEFAULT_DEVICE, DEVICES
from models.cli import add_trace_arguments, spec_from_args
from models.specs import ARCHS, METHODS, PRESETS, SALIENCIES, TEACHERS, parse_pattern
from models.workload import TraceSpec

__all__ = ["DEFAULT_FORMATS", "DEFAULT_PATTERNS", "ACTIVITY_SAMPLES", "MAX_ACTIVITY_SAMPLES", "Option",
           "ExploreOptions", "add_arguments", "add_student_arguments", "options_of", "to_argv", "register"]

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
    """How one :class:`ExploreOptions` field appears on the command line.

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
class ExploreOptions:
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every :class:`ExploreOptions` option (shared with ``paretofab demo``), from its fields."""
    d = ExploreOptions()
    for f in fields(ExploreOptions):
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
    (:meth:`paretofab.options.ExploreConfig.validate` checks it); a one-line note on stderr."""
    given = {dest: getattr(args, dest, None) for _, dest, _, _ in _OLD_PATTERN}
    if all(v is None for v in given.values()):
        return None
    (n, m), block, keep = (default if given[dest] is None else given[dest] for _, dest, _, default in _OLD_PATTERN)
    new = (f"{n}:{m}", f"{n}:{m}+b{block}k{keep:g}")
    old = "/".join(flag for flag, dest, _, _ in _OLD_PATTERN if given[dest] is not None)
    print(f"paretofab {getattr(args, 'command', None) or 'explore'}: note: {old} deprecated, going in the next "
          f"release; use --pattern {','.join(new)}", file=sys.stderr)
    return new


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`ExploreOptions` fields that :func:`add_arguments` options describe, as keyword
    arguments (the deprecated ``--nm/--block/--keep`` become the ``--pattern`` they meant, with a
    note on stderr)."""
    kw = {f.name: getattr(args, f.name) for f in fields(ExploreOptions)
          if f.metadata["cli"].kind != "trace"}
    if kw["pattern"] is not None and any(getattr(args, dest, None) is not None for _, dest, _, _ in _OLD_PATTERN):
        raise ValueError("give --pattern only (e.g. --pattern 2:4,2:4+b8k0.5); --nm/--block/--keep are its "
                         "deprecated spelling, not both")
    old = _old_pattern(args)
    kw["pattern"] = old or (DEFAULT_PATTERNS if kw["pattern"] is None else kw["pattern"])
    return {"workload": spec_from_args(args), **kw}


def to_argv(cfg: ExploreOptions) -> list[str]:
    """The command-line options that :func:`options_of` turns back into ``cfg`` (the trace's
    seed is ``cfg.seed``: one ``--seed`` sets both)."""
    argv: list[str] = []
    for f in fields(ExploreOptions):
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


def add_student_arguments(p: argparse.ArgumentParser) -> None:
    """``--students`` and ``--teacher`` on the explore parser (:mod:`paretofab.explore_students`)."""
    p.add_argument("--students", metavar="DIR", default=None,
                   help="explore student size instead of a trace student: the students of a `paretofab gtn` "
                        "folder, digits or MAP (training seed --seed), or the one student of a `paretofab "
                        "datafree` folder, × --formats × lanes 1, 2, 4 … up to --lanes, on the dense engine")
    p.add_argument("--teacher", default="generic", metavar="|".join(TEACHERS),
                   help="with --students: whose distilled students (default generic)")


EXAMPLES = """examples:
  paretofab explore --threads 1
  paretofab explore --arch swa -o runs/explore_swa --threads 1
  paretofab explore --pattern 2:4,1:4,2:4+b8k0.5 --formats int4,int8,e4m3 --device xczu3eg
  paretofab explore --students runs/gtn_quick --teacher generic --formats int4,int8,e4m3 -o runs/explore_gtn
  paretofab explore --students runs/gtn_map_quick --threads 1 -o runs/explore_gtn_map
  paretofab explore --students runs/datafree --formats int4,int8,e4m3 -o runs/explore_datafree"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore", help="traces -> student -> PTQ sweep -> cost -> Pareto front (the main job)",
                       description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    add_student_arguments(p)
    p.set_defaults(func="paretofab.explore:_run")
