"""The engine protocol and the plumbing every engine shares.

An engine is one module in ``hw`` registered in :mod:`hw.engines`; its frozen config dataclass
follows :class:`Engine`. Facts of the hardware that other packages need (register points of the
pipelined adder tree, closed-form cycles) live here or in the engine's own module, never
re-derived elsewhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tree_levels", "register_points"]


def tree_levels(lanes: int) -> int:
    """Adder-tree levels for ``lanes`` products: ``ceil(log2 lanes)``."""
    return (int(lanes) - 1).bit_length()


def register_points(lanes: int, pipeline: int) -> list[int]:
    """Tree levels after which a register stage sits (0 = right after the multipliers), for
    ``pipeline`` stages spread evenly over the ``tree_levels(lanes) + 1`` points."""
    points = tree_levels(lanes) + 1
    return sorted({round(j * points / pipeline) for j in range(pipeline)}) if pipeline else []


def ceil_div(a, b):
    """``ceil(a / b)`` for non-negative ints or int arrays."""
    return -(-np.asarray(a) // np.asarray(b)) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else -(-a // b)
