"""Shared fixtures for the hw tests: the simulation ``backend`` and engine runners."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from hw.sim import simulate

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
