"""Estimated cycles and action counts against the pysim simulator (independent reference)."""

from __future__ import annotations

import pandas as pd
import pytest

from hw.arith import ConfigError
from hw.dot import DotConfig
from hw.engines import engine
from hw.sim import simulate
from hw.sparse import SparseConfig, block_bitmap

from costmodel import estimate, estimate_frame
from costmodel.energy import ERT
from costmodel.latency import fmax_mhz

# small configs: dense and sparse, pipeline depths, K not a multiple of the span, block skipping
GRID = [
    (DotConfig(1, "int4", "int4", 16, 0), 5, 2),
    (DotConfig(3, "int8", "e4m3", 32, 1), 7, 3),
    (DotConfig(4, "e2m1", "e2m1", 64, 3), 13, 2),
    (DotConfig(8, "int2", "uint4", 64, 2), 17, 1),
    (SparseConfig(2, 1, 2, "int4", "int4", 32, pipeline=0), 9, 2),
    (SparseConfig(4, 2, 4, "e4m3", "int8", 64, pipeline=2), 21, 3),
    (SparseConfig(2, 2, 8, "int3", "e2m1", 64, block=8, pipeline=1), 40, 3),
    (SparseConfig(4, 1, 4, "int8", "int8", 128, block=32, pipeline=1), 96, 2),
]


def _simulate(config, k, vectors, seed=0):
    mod = engine(config.engine)
    wl = mod.random_workload(config, k, vectors, seed)
    inputs = mod.pack_inputs(config, wl)
    res = simulate(config, inputs, mod.n_outputs(config, wl))
    assert (mod.unpack_outputs(config, res.outputs) == mod.reference(config, wl)).all()
    return wl, res


@pytest.mark.parametrize("config,k,vectors", GRID, ids=lambda x: str(x)[:40])
def test_cycles_equal_simulation(config, k, vectors):
    wl, res = _simulate(config, k, vectors)
    if getattr(config, "block", None) is None:
        assert estimate(config, k=k, vectors=vectors).cycles == res.cycles
        return
    # block skipping: with the workload's actual fraction of live blocks the estimate is exact
    bm = block_bitmap(config, wl)
    if bm.any(axis=1).all() and (bm.sum(axis=1) == bm.sum(axis=1)[0]).all():
        assert estimate(config, k=k, vectors=vectors, block_density=float(bm.mean())).cycles == res.cycles


@pytest.mark.parametrize("config,k,vectors", GRID[:6], ids=lambda x: str(x)[:40])
def test_action_counts_match_simulated_beats(config, k, vectors):
    """Multiplies, reads and mux selects per beat × the beats the simulator accepted."""
    wl, res = _simulate(config, k, vectors)
    beats = len(res.in_cycles)  # input transfers counted in simulation
    row = pd.DataFrame([{**config.to_dict(), "block": 0}])
    counts = estimate_frame(row, k=k, vectors=vectors, breakdown=True).iloc[0]
    assert counts["mult"] == beats * config.lanes
    payload_bits = config.in_layout().size
    assert counts["read_bits"] == beats * payload_bits
    if config.engine == "sparse":
        assert counts["mux_bits"] == beats * config.lanes * config.afmt.bits * (config.m - 1)
    else:
        assert counts["mux_bits"] == 0
    # multiplies by hand: every lane of every beat, padding included
    span = config.lane_span
    assert counts["mult"] == vectors * -(-k // span) * config.lanes


def test_ert_entries_cite_sources():
    for name, e in ERT.items():
        assert e["pJ"] > 0 and e["source"], name
        assert "ASIC" in e["source"] or "assumption" in e["source"], name


def test_fmax_labelled_and_pipelining_helps():
    f0, src = fmax_mhz(DotConfig(16, "int4", "int4", 1024, 0))
    f3, _ = fmax_mhz(DotConfig(16, "int4", "int4", 1024, 3))
    assert "model" in src and f3 > f0 > 0


def test_bad_workload_errors():
    c = DotConfig(4, "int4", "int4", 64)
    with pytest.raises(ConfigError, match="k_max"):
        estimate(c, k=65)
    with pytest.raises(ConfigError, match="vectors"):
        estimate(c, k=8, vectors=0)
