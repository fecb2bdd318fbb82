"""Sliding-window attention engine: configuration (:mod:`.config`), the exact numpy model,
workloads, packing and closed-form cycles (:mod:`.model`, whose docstring gives the window
convention and the arithmetic) and the Amaranth kernel (:mod:`.kernel`)."""

from .config import ERROR_BOUND, MAX_DENSE_N, MAX_WINDOW, SWAConfig, dense_baseline
from .kernel import SWAKernel
from .model import *  # noqa: F401,F403 (the engine API, listed in model.__all__)
from .model import __all__ as _model_all

__all__ = [*_model_all, "SWAKernel"]
