"""The MAP student pool of the Generic Teacher Network: ResNet students of several widths, their
weight-sharing supernet, and the MAP workload a ``paretofab gtn --data TRACE-FOLDER`` run reads.

A student ``rDwW`` is a :class:`models.zoo.ResNetNet`: a 3×3 stem of ``max(2, W//4)`` channels, one
stage of ``D`` bottleneck blocks (1×1 to ``max(2, W//8)`` channels, 3×3, 1×1 to ``W``; BatchNorm
and ReLU; a projection shortcut in the first block), a global average pool and a linear head to
the 256 labels. ``r1w32`` is PaCKD's ResNet student exactly (``build("resnet", "student")``, 9,240
parameters); the head (``257·W``) holds most of every member's parameters. The default pool runs
from 1.9k (``r1w6``) to 42.9k (``r1w128``) parameters.

The :class:`Supernet` has the pool's largest depth and width; student ``rDwW`` is its first ``D``
blocks restricted to their first ``max(2, W//4)`` stem, ``max(2, W//8)`` middle and ``W`` output
channels, and the head's first ``W`` columns (elastic depth and width, as the digits pool). Its
BatchNorms normalize with the batch's statistics (each subnet has its own activation statistics,
so shared running averages would fit none of them); :meth:`Supernet.extract` recalibrates the
running statistics of an extracted student on given inputs (once-for-all's BN recalibration).

Students and teachers are saved as :func:`models.zoo.save_checkpoint` ``resnet`` checkpoints:
:func:`models.zoo.load_checkpoint` rebuilds them without this module, and with the splits beside
them (``data.npz``) they are ``paretofab sweep --model`` specs like a ``paretofab distill``
student.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import map_data, traces
from .gtn_pool import Family, parse_pool
from .map_data import LABELS
from .specs import MAP_POOL as DEFAULT_POOL
from .specs import MAP_TEACHER as TEACHER
from .workload import TraceSpec
from .zoo import ResNetNet, count_params, load_checkpoint, save_checkpoint

__all__ = ["ARCH", "DEFAULT_POOL", "TEACHER", "MapSpec", "Supernet", "MAP", "build_student", "parse_map_pool",
           "save_student", "load_student", "find_workload", "load_splits_of"]

#: ``meta["arch"]`` of a MAP student (a :class:`models.zoo.ResNetNet`)
ARCH = "resnet"
DEPTHS = range(1, 4)
WIDTHS = range(4, 257)

_SPEC = re.compile(r"r(\d+)w(\d+)")


@dataclass(frozen=True, order=True)
class MapSpec:
    """One MAP ResNet student: ``depth`` bottleneck blocks of ``width`` output channels.

    Attributes
    ----------
    depth : int
        Bottleneck blocks (1..3).
    width : int
        Output channels of the blocks (4..256); stem ``max(2, width//4)``, middle
        ``max(2, width//8)`` channels.
    """

    depth: int
    width: int

    def __post_init__(self) -> None:
        if self.depth not in DEPTHS or self.width not in WIDTHS:
            raise ValueError(f"student {self.name}: depth must be 1..{DEPTHS[-1]} and width "
                             f"{WIDTHS[0]}..{WIDTHS[-1]} (e.g. r1w32)")

    @property
    def name(self) -> str:
        """``rDwW``, the spelling :meth:`parse` reads."""
        return f"r{self.depth}w{self.width}"

    @property
    def stem(self) -> int:
        """Stem channels."""
        return max(2, self.width // 4)

    @property
    def mid(self) -> int:
        """Middle (bottleneck) channels."""
        return max(2, self.width // 8)

    @property
    def kwargs(self) -> dict:
        """:class:`models.zoo.ResNetNet` keyword arguments (lists: checkpoint-meta friendly)."""
        return {"stem": self.stem, "stages": [[self.mid, self.width, self.depth]]}

    @cached_property
    def params(self) -> int:
        """Trainable parameters of the standalone student."""
        return count_params(build_student(self))

    @classmethod
    def parse(cls, text: str) -> "MapSpec":
        """``"r1w32"`` -> ``MapSpec(1, 32)``; a ``ValueError`` naming the spelling otherwise."""
        m = _SPEC.fullmatch(text.strip().lower())
        if not m:
            raise ValueError(f"student {text.strip()!r}: write rDwW, D bottleneck blocks of W channels "
                             f"(e.g. r1w32)")
        return cls(int(m.group(1)), int(m.group(2)))


def build_student(spec: MapSpec) -> ResNetNet:
    """A fresh :class:`models.zoo.ResNetNet` of ``spec`` (``model.spec`` set)."""
    model = ResNetNet(stem=spec.stem, stages=((spec.mid, spec.width, spec.depth),), out=LABELS)
    model.spec = spec
    return model


def _bn(h: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
    """BatchNorm of the first ``c`` channels with the batch's statistics."""
    return F.batch_norm(h, None, None, bn.weight[:c], bn.bias[:c], training=True, eps=bn.eps)


class Supernet(nn.Module):
    """The weight-sharing supernet of a MAP pool: ``r{max depth}w{max width}``; student ``rDwW``
    is its first ``D`` blocks cut to the student's channels (module docstring).

    Parameters
    ----------
    pool : sequence of MapSpec
    """

    def __init__(self, pool: tuple[MapSpec, ...] | list[MapSpec]) -> None:
        super().__init__()
        self.pool = tuple(pool)
        if not self.pool:
            raise ValueError("a supernet needs at least one student")
        self.spec = MapSpec(max(s.depth for s in self.pool), max(s.width for s in self.pool))
        self.net = build_student(self.spec)  # the shared weights, in ResNetNet's layout

    def _check(self, spec: MapSpec) -> None:
        if spec.depth > self.spec.depth or spec.width > self.spec.width:
            raise ValueError(f"student {spec.name} does not fit the supernet {self.spec.name}")

    def forward(self, x: torch.Tensor, spec: MapSpec) -> torch.Tensor:
        """Logits ``(B, 256)`` of subnet ``spec`` on inputs ``(B, 10, 10)``, computed on slices of
        the shared weights (gradients reach the supernet), BatchNorm on batch statistics."""
        self._check(spec)
        s, m, w = spec.stem, spec.mid, spec.width
        feats = self.net.features
        conv, bn = feats[0], feats[1]
        h = F.relu(_bn(F.conv2d(x.unsqueeze(1), conv.weight[:s], padding=1), bn, s))
        cin = s
        for b in range(spec.depth):
            blk = feats[3 + b]
            c1, n1, _, c2, n2, _, c3, n3 = blk.body
            y = F.relu(_bn(F.conv2d(h, c1.weight[:m, :cin]), n1, m))
            y = F.relu(_bn(F.conv2d(y, c2.weight[:m, :m], padding=1), n2, m))
            y = _bn(F.conv2d(y, c3.weight[:w, :m]), n3, w)
            if isinstance(blk.short, nn.Identity):
                short = h
            else:
                short = _bn(F.conv2d(h, blk.short[0].weight[:w, :cin]), blk.short[1], w)
            h = F.relu(y + short)
            cin = w
        return F.linear(h.mean(dim=(2, 3)), self.net.head.weight[:, :w], self.net.head.bias)

    @torch.no_grad()
    def extract(self, spec: MapSpec, calib: torch.Tensor | None = None) -> ResNetNet:
        """A standalone student holding a copy of subnet ``spec``'s weights, in eval mode. Its
        BatchNorm running statistics are those of ``calib`` (inputs ``(N, 10, 10)``: cumulative
        averages over batches of 256) or, without it, the defaults (mean 0, variance 1): in train
        mode it computes exactly what ``self(x, spec)`` does."""
        self._check(spec)
        model = build_student(spec)
        src, dst = dict(self.net.named_parameters()), dict(model.named_parameters())
        for name, p in dst.items():
            p.copy_(src[name][tuple(slice(0, n) for n in p.shape)])
        if calib is not None:
            for mod in model.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.reset_running_stats()
                    mod.momentum = None  # cumulative average
            model.train()
            for i in range(0, len(calib), 256):
                model(calib[i:i + 256])
            for mod in model.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.momentum = 0.1
        return model.eval()


def save_student(path: str | Path, model: ResNetNet, **meta) -> None:
    """Save a MAP student or teacher in the :func:`models.zoo.save_checkpoint` layout: ``meta``
    holds ``arch`` (``resnet``), ``preset`` (``gtn``), ``name`` (``rDwW``), ``kwargs``, ``params``
    and whatever else is given (plain Python values)."""
    spec = model.spec
    save_checkpoint(path, model, {"arch": ARCH, "preset": "gtn", "name": spec.name, "kwargs": spec.kwargs,
                                  "params": count_params(model), **meta})


def load_student(path: str | Path) -> ResNetNet:
    """Rebuild a MAP student or teacher saved by :func:`save_student` (or any ``resnet``
    checkpoint of :func:`models.zoo.load_checkpoint`), in eval mode, ``meta`` attached and
    ``spec`` set when the meta names one.

    Raises
    ------
    FileNotFoundError
        No such file.
    models.zoo.ZooError
        ``"PATH: not a resnet checkpoint (why)"``: anything else.
    """
    model = load_checkpoint(path, classes={ARCH: ResNetNet},
                            wanted=(ARCH, "give a student or teacher .pt written by `paretofab gtn --data "
                                          "TRACE-FOLDER`", "paretofab gtn --data TRACE-FOLDER -o DIR"))
    name = model.meta.get("name")
    if isinstance(name, str) and _SPEC.fullmatch(name):
        model.spec = MapSpec.parse(name)
    return model


#: the MAP ResNet family (``rDwW``)
MAP = Family(ARCH, MapSpec.parse, build_student, Supernet, save_student, load_student, DEFAULT_POOL, TEACHER)


def parse_map_pool(text: str) -> tuple[MapSpec, ...]:
    """:func:`models.gtn_pool.parse_pool` for ``rDwW`` students."""
    return parse_pool(text, MAP)


# ---- the workload ------------------------------------------------------------------------------------

#: trace file names a trace folder may hold (``paretofab traces -o DIR/NAME``)
TRACE_SUFFIXES = (".txt", ".txt.xz", ".txt.gz", ".txt.bz2")


def find_workload(data: str | Path) -> tuple[str, Path]:
    """What ``--data PATH`` names: ``("splits", DIR/data.npz)`` for a folder holding the splits
    of a ``paretofab distill`` (or ``gtn``) run, ``("trace", FILE)`` for a trace file or a folder
    holding exactly one (``*.txt``, ``*.txt.xz``, ``*.txt.gz``, ``*.txt.bz2``).

    Raises
    ------
    ValueError
        One line naming what to give instead.
    """
    p = Path(data)
    fix = ("give --data digits, a folder holding one trace (`paretofab traces --app pr -o DIR/pr.txt.xz`), "
           "a trace file, or a `paretofab distill -o DIR` folder")
    if p.is_file():
        return "trace", p
    if not p.is_dir():
        raise ValueError(f"--data {str(data)!r}: no such file or folder; {fix}")
    if (p / "data.npz").is_file():
        return "splits", p / "data.npz"
    found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(TRACE_SUFFIXES))
    if len(found) != 1:
        what = "no trace file" if not found else f"{len(found)} trace files ({', '.join(f.name for f in found)})"
        raise ValueError(f"--data {str(data)!r}: the folder holds {what}; {fix}")
    return "trace", found[0]


def load_splits_of(data: str | Path, rows: int | None, seed: int = 0,
                   allow_degenerate: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """``(splits, info)`` of ``--data PATH`` (:func:`find_workload`): a trace preprocessed by the
    default protocol (:meth:`models.workload.TraceSpec.splits`: ``rows`` evenly spaced rows,
    validation drawn with ``seed``; a degenerate trace refused unless ``allow_degenerate``), or
    the splits of a distill folder as they are.

    Raises
    ------
    ValueError
        A bad path, an unreadable trace or splits file, a degenerate trace (one line each).
    """
    kind, path = find_workload(data)
    if kind == "splits":
        return map_data.load_splits(path), {"splits": str(path)}
    try:
        return TraceSpec(trace=str(path), max_rows=rows, seed=seed).splits(allow_degenerate=allow_degenerate)
    except traces.TraceError as e:
        raise ValueError(f"--data {str(data)!r}: {e}") from None
