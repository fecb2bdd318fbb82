"""Whole inferences through an :class:`~hw.dataflow.top.Accelerator`, on either simulation
backend of :func:`hw.sim.simulate` (:func:`simulate_plan`), with every stage's output read back
as integer values (pysim watches the streams between stages): codes, or raw signed integers of a
stage's ``out_bits`` (a MAC stage's accumulators plus bias, a row stage's values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from quant.formats import IntFormat, parse_format

from ..engine import unpack_signed
from ..sim import simulate
from .plan import NetworkPlan, Schedule, schedule
from .stage import code_bits
from .top import Accelerator

__all__ = ["PlanRun", "simulate_plan", "element_values"]


def element_values(payloads: Sequence[int], fmt: str | None, bits: int) -> np.ndarray:
    """Output elements from payloads: ``fmt``'s codes (sign-extended for signed integer formats,
    as they are for unsigned ones and minifloats) or, with ``fmt`` None, signed ``bits``-bit raw
    values (int64, or object ints beyond 62 bits)."""
    f = parse_format(fmt) if fmt is not None else None
    if f is None or (isinstance(f, IntFormat) and f.signed):
        return unpack_signed(payloads, bits)
    return np.array([int(v) for v in payloads], dtype=np.int64)


@dataclass
class PlanRun:
    """One simulation of whole inferences.

    Attributes
    ----------
    outputs : (frames, out_size) integer values of the last stage's output elements.
    stages : per stage, (frames, out_size) values of its output (pysim; empty for verilator).
    cycles : cycles until the last output transferred.
    schedule : the closed-form timing of the same frames.
    backend : ``"pysim"`` or ``"verilator"``.
    """

    outputs: np.ndarray
    stages: list[np.ndarray]
    cycles: int
    schedule: Schedule
    backend: str


def simulate_plan(plan: NetworkPlan, x: np.ndarray, backend: str = "pysim", *,
                  out_ready: Sequence[bool] | None = None, in_valid: Sequence[bool] | None = None,
                  accelerator: Accelerator | None = None) -> PlanRun:
    """Stream frames of input integer values ``x`` (frames, in_size) through the plan's
    accelerator (``accelerator``: an already built one) and read back every output."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != plan.in_size:
        raise ValueError(f"inputs must be (frames, {plan.in_size}) integers, got {x.shape}")
    frames = len(x)
    sch = schedule(plan, frames)
    acc = accelerator if accelerator is not None else Accelerator(plan)
    stretch = max(len(out_ready or [1]), len(in_valid or [1]))
    taps = [e.o for e in acc.engines[:-1]] if backend == "pysim" else []
    first = plan.stages[0]
    payloads = code_bits(x.ravel(), first.in_fmt) if first.in_fmt is not None else \
        [int(v) & ((1 << first.in_bits) - 1) for v in x.ravel()]  # a row stage's raw input
    res = simulate(acc, payloads, frames * plan.out_size, backend=backend,
                   out_ready=out_ready, in_valid=in_valid, max_cycles=64 + 4 * stretch * sch.cycles, taps=taps)
    stages = [element_values(t, st.out_fmt, st.out_bits).reshape(frames, -1) for t, st in zip(res.taps, plan.stages)]
    last = plan.stages[-1]
    out = element_values(res.outputs, last.out_fmt, last.out_bits).reshape(frames, -1)
    if backend == "pysim":
        stages.append(out)
    return PlanRun(out, stages, res.cycles, sch, backend)
