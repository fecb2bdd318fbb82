"""A guard for the rule "the data-free methods never read the training split": :func:`sealed`
replaces a split's training tensors by :class:`SealedTensor`, on which every torch operation
(indexing, arithmetic, ``len`` aside) raises :class:`SplitReadError`. The data-free stage of a run
is handed the sealed split, so a method that touches the training images fails the run.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..digits_data import DigitsData

__all__ = ["SplitReadError", "SealedTensor", "sealed"]


class SplitReadError(RuntimeError):
    """A data-free method read the training split."""


class SealedTensor(torch.Tensor):
    """A tensor whose every torch operation raises :class:`SplitReadError` (its shape stays
    readable)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.shape.__get__, torch.Tensor.__len__, torch.Tensor.dim):
            return super().__torch_function__(func, types, args, kwargs)
        raise SplitReadError(f"a data-free method read the training split ({getattr(func, '__name__', func)}); "
                             f"it may use only the teacher and the side information it is given")


def sealed(data: DigitsData) -> DigitsData:
    """``data`` with ``x_train`` and ``y_train`` sealed (validation and test left readable)."""
    return replace(data, x_train=data.x_train.as_subclass(SealedTensor),
                   y_train=data.y_train.as_subclass(SealedTensor))
