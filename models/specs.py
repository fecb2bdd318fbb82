"""The light half of :mod:`models`: the names its options take (architectures, presets,
distillation methods, pruning saliencies, student pools, budgets, data-free recipes) and the small
specs they parse into (:class:`TrainConfig`, :class:`Pattern`). None of it needs torch, so a
command's parser offers them (``paretofab --help``) without importing what trains the models; the
modules that train, prune and distill import their own names from here.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ARCHS", "PRESETS", "METHODS", "FEATURES", "TEACHER_LR", "DistillError", "TrainConfig", "SALIENCIES",
           "PruneError", "Pattern", "parse_pattern", "DIGITS_POOL", "DIGITS_TEACHER", "MAP_POOL", "MAP_TEACHER",
           "TEACHERS", "BUDGET_NAMES", "REPLAYS", "RECIPES"]

# ---- students (models.zoo) ---------------------------------------------------------------------

ARCHS = ("lstm", "mixer", "resnet", "swa")
PRESETS = ("student", "cpu", "paper")

# ---- distillation (models.distill) -------------------------------------------------------------

METHODS = ("none", "kd", "packd")
FEATURES = ("ip", "addr", "delta")
#: Adam learning rate of the teachers (their larger models train best below the students' 2e-3)
TEACHER_LR = 1e-3


class DistillError(ValueError):
    """Bad distillation parameters."""


@dataclass
class TrainConfig:
    """Training hyper-parameters (epochs are upper bounds: early stopping on validation).

    Students leave the input-blind frequency plateau only after 3–20 epochs on scale-18 traces
    (measured), so patience (5, as PaCKD) counts only once the validation F1 has left it
    (:func:`models.distill.fit`), within a budget of 40 epochs; Adam and batch 256 as in PaCKD,
    with a learning rate raised from their 1.75e-4 / 4e-5 to fit tens of epochs on a CPU instead
    of 200."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    patience: int = 5
    alpha: float = 0.7
    temperature: float = 1.0
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise DistillError("epochs, batch_size and patience must be >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise DistillError(f"alpha {self.alpha} must lie in [0, 1]")
        if self.temperature <= 0:
            raise DistillError(f"temperature {self.temperature} must be > 0")
        if not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise DistillError(f"--seed {self.seed!r}: use a non-negative integer (e.g. --seed 0)")


# ---- pruning (models.prune) --------------------------------------------------------------------

SALIENCIES = ("magnitude", "class")


class PruneError(ValueError):
    """A bad pruning pattern / option, or a weight that breaks its pattern."""


@dataclass(frozen=True)
class Pattern:
    """What to prune to: N:M (``n``, ``m``), blocks (``block`` weights along the reduction,
    ``keep`` fraction of blocks kept in every row), both, or nothing (dense)."""

    n: int | None = None
    m: int | None = None
    block: int | None = None
    keep: float = 1.0

    def __post_init__(self) -> None:
        if (self.n is None) != (self.m is None):
            raise PruneError(f"give both N and M of N:M (got n={self.n}, m={self.m}), e.g. 2:4")
        if self.m is not None:
            if int(self.m) != self.m or self.m < 2:
                raise PruneError(f"M={self.m}: groups hold M >= 2 weights, e.g. 2:4")
            if int(self.n) != self.n or self.n < 1:
                raise PruneError(f"N={self.n}: keep at least one weight per group (N >= 1)")
            if self.n > self.m:
                raise PruneError(f"N={self.n} > M={self.m}: a group of M weights cannot keep N; use N <= M")
        if self.block is not None:
            if int(self.block) != self.block or self.block < 1:
                raise PruneError(f"block={self.block}: give a positive number of weights per block")
            if self.m is not None and self.block % self.m:
                raise PruneError(f"block={self.block} is not a multiple of M={self.m}; blocks hold whole "
                                 f"N:M groups, use block in {self.m}, {2 * self.m} …")
        if not (isinstance(self.keep, (int, float)) and 0.0 < self.keep <= 1.0):
            raise PruneError(f"keep={self.keep!r}: the kept fraction of blocks must lie in (0, 1]")
        if self.block is None and self.keep != 1.0:
            raise PruneError(f"keep={self.keep} needs a block size (e.g. b8k{self.keep:g})")

    @property
    def has_nm(self) -> bool:
        return self.n is not None and self.n < self.m

    @property
    def has_blocks(self) -> bool:
        return self.block is not None and self.keep < 1.0

    @property
    def is_dense(self) -> bool:
        return not (self.has_nm or self.has_blocks)

    def __str__(self) -> str:
        parts = []
        if self.n is not None:
            parts.append(f"{self.n}:{self.m}")
        if self.block is not None:
            parts.append(f"b{self.block}k{self.keep:g}")
        return "+".join(parts) or "dense"


_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^b(\d+)k([0-9.eE+-]+)$")


def parse_pattern(spec: "str | Pattern") -> Pattern:
    """``"dense"``, ``"2:4"``, ``"b8k0.5"``, ``"2:4+b8k0.5"`` (or a :class:`Pattern`) -> Pattern."""
    if isinstance(spec, Pattern):
        return spec
    s = str(spec).strip().lower()
    if s in ("dense", "none", ""):
        return Pattern()
    kw: dict[str, Any] = {}
    for part in s.split("+"):
        if (mt := _NM.match(part)) and "n" not in kw:
            kw["n"], kw["m"] = int(mt.group(1)), int(mt.group(2))
        elif (mt := _BLOCK.match(part)) and "block" not in kw:
            try:
                kw["block"], kw["keep"] = int(mt.group(1)), float(mt.group(2))
            except ValueError:
                raise PruneError(f"pattern {spec!r}: bad keep fraction {mt.group(2)!r}") from None
        else:
            raise PruneError(f"pattern {spec!r}: cannot read {part!r}; write dense, N:M, bBkF or N:M+bBkF "
                             f"(e.g. 2:4, b8k0.5, 2:4+b8k0.5)")
    return Pattern(**kw)


# ---- the Generic Teacher Network (models.gtn_pool, models.gtn_map, models.gtn_eval) ------------

#: digits: six students from 2k to 50k parameters (d1w12 2,050; d2w16 5,050; d2w24 9,298; d3w24
#: 14,506; d3w32 23,946; d3w48 49,738)
DIGITS_POOL = "d1w12,d2w16,d2w24,d3w24,d3w32,d3w48"
#: digits: the teacher architecture (generic, standard and custom teachers alike): 182,410 parameters
DIGITS_TEACHER = "d3w96"
#: MAP: six students from 1.9k to 42.9k parameters (r1w6 1,910; r1w12 3,519; r1w24 6,889; r1w32
#: 9,240, PaCKD's student; r1w64 18,560; r1w128 42,912)
MAP_POOL = "r1w6,r1w12,r1w24,r1w32,r1w64,r1w128"
#: MAP: the teachers' architecture: 49,632 parameters, two blocks of the widest student
MAP_TEACHER = "r2w128"
#: ``teacher`` values of results.csv
TEACHERS = ("generic", "standard", "custom", "none")
#: the training budgets of ``paretofab gtn`` and ``paretofab datafree``: the keys of
#: :data:`models.gtn_eval.BUDGETS`, :data:`models.gtn_eval.MAP_BUDGETS` and
#: :data:`models.datafree.run.BUDGETS`
BUDGET_NAMES = ("quick", "full")

# ---- data-free distillation (models.datafree.run) ----------------------------------------------

#: rehearsal of past generated samples in DAFL (models.datafree.replay)
REPLAYS = ("none", "vae", "store")
#: ``paretofab datafree --method NAME`` -> (inversion method, side information, rehearsal): the
#: names of issue 18, then the methods by their own names (side information and rehearsal only
#: when --condensed / --fewshot / --replay add them); the one table of these names
RECIPES = {
    "inversion": ("deepinv", "none", "none"),
    "condensed": ("deepinv", "condensed", "none"),
    "fewshot": ("deepinv", "fewshot", "none"),
    "vae-replay": ("dafl", "none", "vae"),
    "dynamic": ("dynamic", "none", "none"),
    "deepinv": ("deepinv", "none", "none"),
    "dafl": ("dafl", "none", "none"),
}
