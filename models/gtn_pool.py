"""The digits student pool of the Generic Teacher Network: CNN students and their weight-sharing
supernet.

A student ``dDwW`` is ``D`` 3×3 convolutions of ``W`` channels (ReLU after each; the first reads
the 1×8×8 image), a 2×2 max-pool and one linear layer from the ``W·4·4`` pooled features to the 10
classes: ``10·W + (D-1)·(9·W² + W) + 160·W + 10`` parameters (``d1w12``: 2,050; ``d3w48``:
49,738). The pool is a finite set of such students; its :class:`Supernet` has the pool's largest
depth and width, and student ``dDwW`` is the supernet's first ``D`` convolutions restricted to
their first ``W`` output (and input) channels, and the matching ``W·16`` columns of the head
(once-for-all-style elastic depth and width): every pool member shares the supernet's weights.

A :class:`Family` bundles what the GTN training needs of a student family (spelling, builder,
supernet, checkpoints): :data:`DIGITS` here, :data:`models.gtn_map.MAP` for the MAP ResNets.

Checkpoints follow :func:`models.zoo.save_checkpoint` (``{"state_dict", "meta"}``, ``meta`` with
``arch``, ``preset`` and ``kwargs``; read with ``weights_only=True``); :func:`load_student` rebuilds
a student from one alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .specs import DIGITS_POOL as DEFAULT_POOL
from .specs import DIGITS_TEACHER as TEACHER
from .zoo import count_params, load_checkpoint, save_checkpoint

__all__ = ["ARCH", "CLASSES", "DEFAULT_POOL", "TEACHER", "StudentSpec", "DigitsCNN", "Supernet",
           "Family", "DIGITS", "parse_pool", "sandwich", "save_student", "load_student"]

#: ``meta["arch"]`` of a digits CNN checkpoint
ARCH = "digits-cnn"
CLASSES = 10
#: side of the (square) input image, pixels; the max-pool halves it
SIDE = 8
#: depth and width a pool member may have
DEPTHS = range(1, 5)
WIDTHS = range(2, 129)

_SPEC = re.compile(r"d(\d+)w(\d+)")


@dataclass(frozen=True, order=True)
class StudentSpec:
    """One digits CNN: ``depth`` convolutions of ``width`` channels.

    Attributes
    ----------
    depth : int
        3×3 convolutions (1..4).
    width : int
        Output channels of every convolution (2..128).
    """

    depth: int
    width: int

    def __post_init__(self) -> None:
        if self.depth not in DEPTHS or self.width not in WIDTHS:
            raise ValueError(f"student {self.name}: depth must be 1..{DEPTHS[-1]} and width "
                             f"{WIDTHS[0]}..{WIDTHS[-1]} (e.g. d2w16)")

    @property
    def name(self) -> str:
        """``dDwW``, the spelling :func:`parse_pool` reads."""
        return f"d{self.depth}w{self.width}"

    @property
    def params(self) -> int:
        """Trainable parameters of the standalone student (closed form)."""
        w, d = self.width, self.depth
        pooled = (SIDE // 2) ** 2
        return (9 * w + w) + (d - 1) * (9 * w * w + w) + (w * pooled * CLASSES + CLASSES)

    @classmethod
    def parse(cls, text: str) -> "StudentSpec":
        """``"d2w16"`` -> ``StudentSpec(2, 16)``; a ``ValueError`` naming the spelling otherwise."""
        m = _SPEC.fullmatch(text.strip().lower())
        if not m:
            raise ValueError(f"student {text.strip()!r}: write dDwW, D convolutions of W channels "
                             f"(e.g. d2w16)")
        return cls(int(m.group(1)), int(m.group(2)))


def parse_pool(text: str, family: "Family | None" = None) -> tuple[Any, ...]:
    """The pool a ``--pool`` value names: comma-separated students of ``family`` (default
    :data:`DIGITS`: ``dDwW``), at least two, distinct; sorted by parameters (then depth, width).

    Raises
    ------
    ValueError
        One line naming the fix (``--pool d1w12,d2w16,...``).
    """
    family = family or DIGITS
    parts = [p for p in (text or "").split(",") if p.strip()]
    try:
        specs = [family.parse(p) for p in parts]
    except ValueError as e:
        raise ValueError(f"--pool {text!r}: {e}") from None
    if len(set(specs)) != len(specs):
        raise ValueError(f"--pool {text!r}: a student appears twice; name each once")
    if len(specs) < 2:
        raise ValueError(f"--pool {text!r}: name at least two students (e.g. --pool {family.default_pool})")
    return tuple(sorted(specs, key=lambda s: (s.params, s.depth, s.width)))


class DigitsCNN(nn.Module):
    """A standalone digits student (or teacher): ``depth`` × (conv3×3(``width``) + ReLU),
    max-pool 2, flatten, linear(10), on 1×8×8 images; plain modules (traceable, quantizable).

    Parameters
    ----------
    depth, width : int
        As :class:`StudentSpec`.
    """

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.spec = StudentSpec(depth, width)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(1 if i == 0 else width, width, 3, padding=1), nn.ReLU()]
        layers += [nn.MaxPool2d(2), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * (SIDE // 2) ** 2, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 10)`` of images ``(B, 1, 8, 8)``."""
        return self.head(self.features(x))

    def convs(self) -> list[nn.Conv2d]:
        """The convolutions, input first."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)]


class Supernet(nn.Module):
    """The weight-sharing supernet of a pool: the pool's largest depth and width; student
    ``dDwW`` is its first ``D`` convolutions cut to their first ``W`` channels, and the head's
    columns of those channels.

    Parameters
    ----------
    pool : sequence of StudentSpec
        The students it holds (the supernet is ``d{max depth}w{max width}``).
    """

    def __init__(self, pool: tuple[StudentSpec, ...] | list[StudentSpec]) -> None:
        super().__init__()
        self.pool = tuple(pool)
        if not self.pool:
            raise ValueError("a supernet needs at least one student")
        self.depth = max(s.depth for s in self.pool)
        self.width = max(s.width for s in self.pool)
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else self.width, self.width, 3, padding=1)
                                   for i in range(self.depth))
        self.head = nn.Linear(self.width * (SIDE // 2) ** 2, CLASSES)

    def _check(self, spec: StudentSpec) -> None:
        if spec.depth > self.depth or spec.width > self.width:
            raise ValueError(f"student {spec.name} does not fit the supernet d{self.depth}w{self.width}")

    def _head(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = (SIDE // 2) ** 2  # flatten order: channel-major, so channel c owns columns c·16 ..
        w = self.head.weight.view(CLASSES, self.width, pooled)[:, :width].reshape(CLASSES, width * pooled)
        return w, self.head.bias

    def forward(self, x: torch.Tensor, spec: StudentSpec) -> torch.Tensor:
        """Logits ``(B, 10)`` of subnet ``spec`` on images ``(B, 1, 8, 8)``, computed on (views of)
        the shared weights, so gradients reach the supernet."""
        self._check(spec)
        w = spec.width
        h = x
        for i in range(spec.depth):
            conv = self.convs[i]
            cin = 1 if i == 0 else w
            h = F.relu(F.conv2d(h, conv.weight[:w, :cin], conv.bias[:w], padding=1))
        weight, bias = self._head(w)
        return F.linear(F.max_pool2d(h, 2).flatten(1), weight, bias)

    @torch.no_grad()
    def extract(self, spec: StudentSpec, calib: torch.Tensor | None = None) -> DigitsCNN:
        """A standalone :class:`DigitsCNN` holding a copy of subnet ``spec``'s current weights
        (``calib`` is ignored: the digits CNNs have no normalization statistics)."""
        self._check(spec)
        model = DigitsCNN(spec.depth, spec.width)
        w = spec.width
        for i, conv in enumerate(model.convs()):
            cin = 1 if i == 0 else w
            conv.weight.copy_(self.convs[i].weight[:w, :cin])
            conv.bias.copy_(self.convs[i].bias[:w])
        weight, bias = self._head(w)
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)
        return model.eval()


def sandwich(pool: tuple[StudentSpec, ...], n_random: int, gen: torch.Generator) -> list[StudentSpec]:
    """Sandwich sampling: the pool's largest and smallest student (by parameters) and
    ``n_random`` other members drawn uniformly without replacement (fewer if the pool is small).

    Parameters
    ----------
    pool : tuple of StudentSpec
        The pool (any order).
    n_random : int
        Members drawn besides the two extremes (>= 0).
    gen : torch.Generator
        Source of the draw (seeded by the caller: the same seed draws the same subnets).

    Returns
    -------
    list of StudentSpec
        Largest first, then smallest (once if they coincide), then the random draws.
    """
    order = sorted(pool, key=lambda s: (s.params, s.depth, s.width))
    extremes = list(dict.fromkeys([order[-1], order[0]]))
    rest = [s for s in order if s not in extremes]
    k = min(max(n_random, 0), len(rest))
    picks = torch.randperm(len(rest), generator=gen)[:k].tolist() if k else []
    return extremes + [rest[i] for i in picks]


def save_student(path: str | Path, model: DigitsCNN, **meta) -> None:
    """Save a digits CNN in the :func:`models.zoo.save_checkpoint` layout: ``meta`` holds
    ``arch`` (``digits-cnn``), ``preset`` (``gtn``), ``kwargs`` (depth, width), ``params`` and
    whatever else is given (teacher, seed, accuracy …: plain Python values)."""
    save_checkpoint(path, model, {"arch": ARCH, "preset": "gtn", "name": model.spec.name,
                                  "kwargs": {"depth": model.spec.depth, "width": model.spec.width},
                                  "params": count_params(model), **meta})


def load_student(path: str | Path) -> DigitsCNN:
    """Rebuild a digits CNN saved by :func:`save_student`, in eval mode, ``meta`` attached as
    ``model.meta`` (:func:`models.zoo.load_checkpoint`: ``weights_only=True``, a pickle payload
    is never executed).

    Raises
    ------
    FileNotFoundError
        No such file.
    models.zoo.ZooError
        ``"PATH: not a digits-cnn checkpoint (why)"``: anything else.
    """
    return load_checkpoint(path, classes={ARCH: DigitsCNN},
                           wanted=(ARCH, "give a student or teacher .pt written by `paretofab gtn`",
                                   "paretofab gtn --data digits -o DIR"))


@dataclass(frozen=True)
class Family:
    """A student family the GTN machinery trains: how a pool member is spelled, built, held in a
    weight-sharing supernet and saved. Members (``spec``) are frozen, ordered, and have ``name``,
    ``params``, ``depth`` and ``width``; the teachers are members of the same family.

    Attributes
    ----------
    arch : str
        ``meta["arch"]`` of its checkpoints.
    parse : callable
        ``str -> spec``; ``ValueError`` naming the spelling otherwise.
    build : callable
        ``spec -> nn.Module``, a fresh standalone model.
    supernet : callable
        ``pool -> nn.Module`` with ``forward(x, spec)``, ``extract(spec, calib)`` and ``pool``.
    save, load : callable
        ``save(path, model, **meta)``; ``load(path) -> nn.Module`` (``model.meta`` attached).
    default_pool, teacher : str
        The ``--pool`` and ``--teacher`` defaults.
    """

    arch: str
    parse: Callable[[str], Any]
    build: Callable[[Any], nn.Module]
    supernet: Callable[[tuple], nn.Module]
    save: Callable[..., None]
    load: Callable[[str | Path], nn.Module]
    default_pool: str
    teacher: str


def _build(spec: StudentSpec) -> DigitsCNN:
    return DigitsCNN(spec.depth, spec.width)


#: the digits CNN family (``dDwW``)
DIGITS = Family(ARCH, StudentSpec.parse, _build, Supernet, save_student, load_student, DEFAULT_POOL, TEACHER)
