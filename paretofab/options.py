"""The options of ``paretofab explore`` as its stages take them: :class:`ExploreConfig`, the
:class:`paretofab.explore_cli.ExploreOptions` (every field, with its command-line spelling and
help) plus what the stages hand to ``models`` (:meth:`ExploreConfig.kd_spec`,
:meth:`ExploreConfig.prune_config`, :meth:`ExploreConfig.patterns`) and
:meth:`ExploreConfig.validate`, which checks every option before any work starts (formats, PTQ
technique sets, pruning pattern, device, engine lanes, ranges), raising one ``ValueError`` that
names the fix. :func:`from_args` builds it from a parsed command line.

The parser (:func:`add_arguments`, :func:`to_argv`, also importable from here) is
:mod:`paretofab.explore_cli`'s: apart from this module, whose checks need torch and Brevitas.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from costmodel import estimate, get_device
from models.distill import KDSpec
from models.prune import Pattern, PruneConfig, parse_pattern
from models.specs import ARCHS, PRESETS
from models.traces import APPS, SCALES
from quant.brevitas_map import check_supported
from quant.ptq import parse_techniques

from .explore_cli import (ACTIVITY_SAMPLES, DEFAULT_FORMATS, MAX_ACTIVITY_SAMPLES, ExploreOptions, Option,
                          add_arguments, options_of, to_argv)
from .mapping import engine_for

__all__ = ["DEFAULT_FORMATS", "ACTIVITY_SAMPLES", "ExploreConfig", "Option", "add_arguments", "from_args",
           "to_argv"]


@dataclass
class ExploreConfig(ExploreOptions):
    """What ``explore`` builds: the :class:`paretofab.explore_cli.ExploreOptions` (the fields, their
    defaults and command-line spelling), with what the stages hand to ``models`` and the checks
    :meth:`validate` runs before any work starts."""

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


def from_args(args: argparse.Namespace) -> ExploreConfig:
    """The :class:`ExploreConfig` that :func:`add_arguments` options describe (the deprecated
    ``--nm/--block/--keep`` become the ``--pattern`` they meant, with a note on stderr)."""
    return ExploreConfig(**options_of(args))
