"""Shared fixtures for the hw tests: the simulation ``backend`` and engine runners."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw import dot, sparse
from hw.sim import simulate
from hw.swa import SWAConfig

ROOT = Path(__file__).resolve().parents[2]


def verilator_in_git() -> bool:
    """True once ``hw/verilator.py`` is committed (falls back to the file's presence when git
    is unavailable)."""
    try:
        out = subprocess.run(["git", "ls-files", "--error-unmatch", "hw/verilator.py"], cwd=ROOT,
                             capture_output=True, text=True, timeout=20)
        return out.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return (ROOT / "hw" / "verilator.py").exists()


SIM_BACKENDS = ["pysim"] + (["verilator"] if verilator_in_git() else [])


@pytest.fixture(params=SIM_BACKENDS)
def backend(request) -> str:
    """Each simulation backend in turn (``verilator`` once hw/verilator.py is in git)."""
    return request.param


def run_engine(mod, config, workload, backend: str = "pysim", **kw):
    """Simulate ``workload`` on ``config``'s engine; returns (exact outputs, SimResult)."""
    res = simulate(config, mod.pack_inputs(config, workload), mod.n_outputs(config, workload),
                   backend=backend, **kw)
    return mod.unpack_outputs(config, res.outputs), res


def assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-for-bit equality of exact integer arrays (int64 or Python-int object arrays)."""
    assert len(got) == len(want)
    bad = [j for j, (g, w) in enumerate(zip(got, want)) if int(g) != int(w)]
    assert not bad, f"{len(bad)} mismatches, first at {bad[0]}: got {int(got[bad[0]])}, want {int(want[bad[0]])}"


def backend_params(items: list, n_fast: int, id_of=str) -> list:
    """``pytest.param((item, backend))`` for every item on pysim, and on Verilator (when it is
    in git) for the first ``n_fast`` items in the default run and the rest under ``slow``:
    each distinct config costs one Verilator build (~20 s) the first time."""
    out = [pytest.param(it, "pysim", id=f"{id_of(it)}-pysim") for it in items]
    if "verilator" in SIM_BACKENDS:
        out += [pytest.param(it, "verilator", id=f"{id_of(it)}-verilator",
                             marks=() if j < n_fast else (pytest.mark.slow,))
                for j, it in enumerate(items)]
    return out


def random_config(kind: str, rng: random.Random):
    """A random small config of engine ``kind`` (dot, sparse, swa): mixed int / minifloat formats,
    lanes that are not powers of two, pipelines, N:M with and without blocks."""
    ints = ["int2", "int4", "int5n", "int8", "uint3", "uint6"]
    mfs = ["e2m1", "e3m2", "e4m3", "e1m4", "e5m2"]
    fmt = lambda: rng.choice(ints + mfs)  # noqa: E731
    if kind == "dot":
        lanes = rng.choice([1, 3, 4, 6, 8])
        return dot.DotConfig(lanes, fmt(), fmt(), rng.choice([32, 100, 1000]),
                             rng.randint(0, (lanes - 1).bit_length() + 1))
    if kind == "sparse":
        n, m = rng.choice([(1, 2), (2, 4), (1, 4), (3, 8)])
        lanes = n * rng.choice([1, 2])
        span = lanes // n * m
        return sparse.SparseConfig(lanes, n, m, fmt(), fmt(), 256, block=rng.choice([None, 2 * span]),
                                   pipeline=rng.randint(0, (lanes - 1).bit_length() + 1))
    lanes = rng.choice([1, 2, 4])
    return SWAConfig(lanes * rng.choice([1, 2]), rng.choice([3, 4, 6]), lanes, fmt(), fmt())


def sweep_channels(dut, channels: int, accs) -> dict[tuple[int, int], int]:
    """A combinational unit with ``channel``, ``acc`` and ``code`` ports (a requantizer, a
    threshold table) on every (channel, accumulator): its codes by ``(channel, acc)``."""
    got: dict[tuple[int, int], int] = {}

    async def bench(ctx):
        for c in range(channels):
            ctx.set(dut.channel, c)
            for a in accs:
                ctx.set(dut.acc, a)
                got[c, a] = ctx.get(dut.code)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return got
