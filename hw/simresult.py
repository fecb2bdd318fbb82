"""What a simulation run returns (``SimResult``) and raises past its cycle budget
(``SimTimeout``): shared by ``hw.sim`` and its Verilator backend ``hw.verilator``, so that
neither imports the other's module for them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SimResult", "SimTimeout"]


class SimTimeout(RuntimeError):
    """The design did not produce the expected outputs within ``max_cycles``."""


@dataclass
class SimResult:
    """Outputs of one simulation run.

    Attributes
    ----------
    outputs : packed output payloads (Python ints), in order.
    cycles : cycles until the last output transferred (see ``hw.sim``'s module docstring).
    out_cycles : cycle index of each output transfer.
    in_cycles : cycle index of each input transfer.
    backend : which backend produced it.
    taps : per watched stream (``simulate(..., taps=...)``, pysim only), the payloads that
        transferred on it, in order.
    """

    outputs: list[int]
    cycles: int
    out_cycles: np.ndarray = field(repr=False)
    in_cycles: np.ndarray = field(repr=False)
    backend: str = "pysim"
    taps: list[list[int]] = field(default_factory=list, repr=False)
