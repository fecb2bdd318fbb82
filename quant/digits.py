"""The built-in ``digits`` workload: a small CNN on scikit-learn's bundled 8×8 digits.

It needs no download (the data ship with scikit-learn) and trains in a few seconds on one CPU
core, deterministically for a given seed; the trained weights are cached under
:func:`quant.common.cache_root` (``$PARETOFAB_CACHE``, default ``<sys.prefix>/.cache/paretofab``)
and loaded with ``weights_only=True``.
Splits (stratified, fixed by ``seed``): 60 % train, 20 % validation, 20 % test; calibration
uses the first ``n_calib`` training images. The data loader (:class:`DigitsData`,
:func:`load_data`) lives in :mod:`models.digits_data` (the students of :mod:`models.gtn` train on it
too) and is re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from models.digits_data import DigitsData, load_data

from .common import cache_root

__all__ = ["DigitsNet", "DigitsData", "load_data", "train", "load_model", "accuracy"]


class DigitsNet(nn.Module):
    """conv3×3(16)-ReLU-conv3×3(32)-ReLU-maxpool2-linear(64)-ReLU-linear(10) on 1×8×8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def train(data: DigitsData, seed: int = 0, epochs: int = 40) -> DigitsNet:
    """Adam, batch 64, cross-entropy; deterministic for a given seed."""
    torch.manual_seed(seed)
    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def cache_dir() -> Path:
    """Where the trained digits weights are cached: :func:`quant.common.cache_root`."""
    return cache_root()


def load_model(seed: int = 0, data: DigitsData | None = None) -> DigitsNet:
    """The trained classifier for ``seed``: from the cache, or trained (and cached) on first use."""
    path = cache_dir() / f"digits-cnn-seed{seed}.pt"
    model = DigitsNet()
    if path.exists():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval()
        except Exception:  # noqa: BLE001 - a damaged cache entry is retrained
            pass
    model = train(data if data is not None else load_data(seed), seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: concurrent workers never see a half-written file
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy (fraction)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)
