"""The digits teacher of the data-free methods: a CNN with BatchNorm after every convolution, so
that model inversion has running statistics to match (the :mod:`models.gtn_pool` CNNs have none).

``BNTeacher(width)``: conv3×3(w)-BN-ReLU, conv3×3(2w)-BN-ReLU, max-pool 2 (4×4),
conv3×3(2w)-BN-ReLU, max-pool 2 (2×2), flatten (the ``8w`` *features*), linear(10). With the
default ``width=32``: 58,474 parameters (99.2 % test accuracy, seed 0). The teacher is trained on real data (its owner had the
data); the data-free methods then see only the trained model.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..digits_data import DigitsData
from ..gtn import GTNConfig, _fit_best, accuracy
from ..gtn_pool import CLASSES
from ..zoo import load_checkpoint, save_checkpoint

__all__ = ["ARCH", "BNTeacher", "train_bn_teacher", "save_teacher", "load_teacher"]

#: ``meta["arch"]`` of a BN teacher checkpoint
ARCH = "digits-bn-teacher"


class BNTeacher(nn.Module):
    """Digits CNN with BatchNorm after each of its three convolutions.

    Parameters
    ----------
    width : int
        Channels of the first convolution (the others have ``2·width``); >= 1.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"teacher width {width}: use a positive channel count (e.g. 32)")
        self.width = width
        w2 = 2 * width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(*block(1, width), *block(width, w2), nn.MaxPool2d(2),
                                  *block(w2, w2), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Linear(w2 * 4, CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, 8·width)`` (post-ReLU, pooled) of images ``(B, 1, 8, 8)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 10)`` of images ``(B, 1, 8, 8)`` in [0, 1]."""
        return self.head(self.body(x))

    def bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm layers, input first."""
        return [m for m in self.body if isinstance(m, nn.BatchNorm2d)]


def train_bn_teacher(data: DigitsData, epochs: int, seed: int, width: int = 32,
                     lr: float = 2e-3, batch_size: int = 64) -> tuple[BNTeacher, dict]:
    """Train a :class:`BNTeacher` by cross-entropy on the training split, keeping the epoch of best
    validation accuracy (:func:`models.gtn._fit_best`).

    Parameters
    ----------
    data : DigitsData
    epochs : int
        Epochs (>= 1).
    seed : int
        Initial weights and batch order.
    width : int
        :class:`BNTeacher` width.
    lr : float
        Adam learning rate.
    batch_size : int
        Images per step.

    Returns
    -------
    teacher : BNTeacher
        Eval mode.
    info : dict
        ``val_accuracy``, ``test_accuracy`` (fractions), ``epoch`` (kept, 1-based), ``cpu_seconds``
        (process CPU time, s).
    """
    t0 = time.process_time()
    torch.manual_seed(seed)
    teacher = BNTeacher(width)
    opt = torch.optim.Adam(teacher.parameters(), lr=lr)

    def step(idx: torch.Tensor) -> None:
        if len(idx) < 2:  # a BatchNorm batch of one has no variance
            return
        loss = F.cross_entropy(teacher(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    cfg = GTNConfig(batch_size=batch_size, lr=lr)
    val, epoch = _fit_best(teacher, data, cfg, seed, epochs, step)
    return teacher, {"val_accuracy": val, "epoch": epoch, "cpu_seconds": time.process_time() - t0,
                     "test_accuracy": accuracy(teacher, data.x_test, data.y_test)}


def save_teacher(path: str | Path, teacher: BNTeacher, **meta) -> None:
    """Save in the :func:`models.zoo.save_checkpoint` layout (``arch`` ``digits-bn-teacher``)."""
    save_checkpoint(path, teacher, {"arch": ARCH, "preset": "datafree", "kwargs": {"width": teacher.width},
                                    **meta})


def load_teacher(path: str | Path) -> BNTeacher:
    """Rebuild a teacher written by :func:`save_teacher` (``weights_only=True``), eval mode."""
    return load_checkpoint(path, classes={ARCH: BNTeacher},
                           wanted=(ARCH, "give the teacher.pt written by `paretofab datafree`",
                                   "paretofab datafree --data digits -o DIR"))
