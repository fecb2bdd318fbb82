"""One ``simulate()`` for every engine, over two backends: ``"pysim"`` (amaranth.sim) and
``"verilator"`` (a cached shared library built from the exported Verilog, see ``hw.verilator``).

Stream protocol (both backends, identical cycle semantics)
-----------------------------------------------------------
The device under test is a ``wiring.Component`` with an input stream ``i`` and an output stream
``o`` (``amaranth.lib.stream`` signatures, valid/ready); each payload is handled as its packed
bits, a non-negative Python int (``Value.cast(payload)``, LSB first as Amaranth lays it out).

Cycle ``c = 0, 1, …`` after reset, before the rising edge that ends cycle ``c``:
- source: ``i.valid = (k < len(inputs)) and in_valid[c % len(in_valid)]``, ``i.payload =
  inputs[k]``; the beat transfers when ``i.valid and i.ready``, then ``k += 1`` after the edge;
- sink: ``o.ready = out_ready[c % len(out_ready)]``; a beat is collected when
  ``o.valid and o.ready`` (sampled after combinational settling, before the edge).
``cycles`` is the index of the cycle in which the last of ``n_outputs`` beats transferred, plus
one. A run longer than ``max_cycles`` raises ``SimTimeout``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from amaranth.hdl import Value
from amaranth.sim import Simulator

from .simresult import SimResult, SimTimeout
from .verilator import simulate_verilator

__all__ = ["SimResult", "SimTimeout", "simulate", "cycle_limit", "BACKENDS"]

BACKENDS = ("pysim", "verilator")


def cycle_limit(n_inputs: int, n_outputs: int, stretch: int = 1, expected: int = 0) -> int:
    """Default ``max_cycles`` of a run, cycles: ``64 + 4 · stretch · (expected + n_inputs +
    n_outputs)``, with ``stretch`` the longest stall pattern (patterns slow a run down at most
    that much) and ``expected`` the closed-form cycles, if known."""
    return 64 + 4 * stretch * (expected + n_inputs + n_outputs)


def _as_component(dut_or_config: Any):
    return dut_or_config.build() if hasattr(dut_or_config, "build") else dut_or_config


def simulate(
    dut_or_config: Any,
    inputs: Sequence[int],
    n_outputs: int,
    *,
    backend: str = "pysim",
    out_ready: Sequence[bool] | None = None,
    in_valid: Sequence[bool] | None = None,
    max_cycles: int | None = None,
    taps: Sequence[Any] = (),
) -> SimResult:
    """Stream ``inputs`` (packed payloads) into a component and collect ``n_outputs`` beats.

    ``dut_or_config`` is a Component or a config with ``build()``. ``out_ready`` / ``in_valid``
    are repeating patterns (default: always 1) to exercise back-pressure and gaps. ``taps``:
    inner streams of the component (interfaces with ``valid``, ``ready``, ``payload``) whose
    transfers ``SimResult.taps`` records (pysim only).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown simulation backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    inputs = [int(x) for x in inputs]
    out_ready = [bool(x) for x in (out_ready if out_ready is not None else [True])]
    in_valid = [bool(x) for x in (in_valid if in_valid is not None else [True])]
    if not any(out_ready) or not any(in_valid):
        raise ValueError("out_ready and in_valid patterns need at least one True")
    if max_cycles is None:
        max_cycles = cycle_limit(len(inputs), n_outputs, max(len(out_ready), len(in_valid)))
    if backend == "verilator":
        if taps:
            raise ValueError("taps watch inner streams: pysim only")
        return simulate_verilator(
            _as_component(dut_or_config), inputs, n_outputs,
            out_ready=out_ready, in_valid=in_valid, max_cycles=max_cycles,
        )
    return _simulate_pysim(_as_component(dut_or_config), inputs, n_outputs, out_ready, in_valid, max_cycles,
                           list(taps))


def _simulate_pysim(dut, inputs: list[int], n_outputs: int, out_ready: list[bool],
                    in_valid: list[bool], max_cycles: int, taps: list[Any]) -> SimResult:
    outputs: list[int] = []
    tapped: list[list[int]] = [[] for _ in taps]
    tap_payloads = [(Value.cast(t.payload), (1 << len(Value.cast(t.payload))) - 1) for t in taps]
    out_cycles: list[int] = []
    in_cycles: list[int] = []
    timed_out = False

    i_payload = Value.cast(dut.i.payload)
    o_payload = Value.cast(dut.o.payload)
    o_mask = (1 << len(o_payload)) - 1  # signed payloads read back as negative ints

    async def testbench(ctx):
        nonlocal timed_out
        k = 0
        c = 0
        # drive a port only when its value changes: every ctx.set settles the design once
        driven: dict[str, int] = {"valid": 0, "ready": 0, "k": -1}
        while len(outputs) < n_outputs:
            if c >= max_cycles:
                timed_out = True
                return
            valid = int(k < len(inputs) and in_valid[c % len(in_valid)])
            ready = int(out_ready[c % len(out_ready)])
            if k < len(inputs) and driven["k"] != k:
                ctx.set(i_payload, inputs[k])
                driven["k"] = k
            if driven["valid"] != valid:
                ctx.set(dut.i.valid, valid)
                driven["valid"] = valid
            if driven["ready"] != ready:
                ctx.set(dut.o.ready, ready)
                driven["ready"] = ready
            in_fire = valid and ctx.get(dut.i.ready)
            if ready and ctx.get(dut.o.valid):
                outputs.append(int(ctx.get(o_payload)) & o_mask)
                out_cycles.append(c)
            if in_fire:
                in_cycles.append(c)
            for t, (payload, mask), got in zip(taps, tap_payloads, tapped):
                if ctx.get(t.valid) and ctx.get(t.ready):
                    got.append(int(ctx.get(payload)) & mask)
            await ctx.tick()
            if in_fire:
                k += 1
            c += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    if timed_out:
        raise SimTimeout(
            f"pysim: {len(outputs)} of {n_outputs} outputs after {max_cycles} cycles "
            f"({len(in_cycles)} of {len(inputs)} inputs accepted)"
        )
    cycles = out_cycles[-1] + 1 if out_cycles else 0
    return SimResult(outputs, cycles, np.array(out_cycles), np.array(in_cycles), "pysim", tapped)
