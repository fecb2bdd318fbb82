"""The data of the built-in ``digits`` workload: scikit-learn's bundled 8×8 handwritten digits.

It needs no download (the images ship with scikit-learn). Splits are stratified and fixed by
``seed``: 60 % train, 20 % validation, 20 % test (1,797 images: 1,078 / 359 / 360). The students
of :mod:`models.gtn` and the reference CNN of :mod:`quant.digits` both train on it; quant
re-exports it (quant may import models, not the other way round).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DigitsData", "load_data"]


@dataclass(frozen=True)
class DigitsData:
    """Float32 images ``(N, 1, 8, 8)`` scaled to [0, 1] and int64 labels, per split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_data(seed: int = 0) -> DigitsData:
    """Stratified 60/20/20 split of ``sklearn.datasets.load_digits`` (1,797 images).

    Parameters
    ----------
    seed : int
        ``random_state`` of both stratified splits; the same seed gives the same split.

    Returns
    -------
    DigitsData
        Pixel intensities in [0, 1] (the 0..16 counts divided by 16), labels 0..9.
    """
    # heavy: sklearn (only the digits benchmark needs it)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    x_tr, x_rest, y_tr, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    x_va, x_te, y_va, y_te = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed)
    t = torch.from_numpy
    return DigitsData(t(x_tr), t(y_tr), t(x_va), t(y_va), t(x_te), t(y_te))
