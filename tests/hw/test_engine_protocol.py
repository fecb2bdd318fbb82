# amaranth: UnusedElaboratable=no
"""Every registered engine follows the engine protocol (``hw.engine``): the module exports the
uniform API, the config round-trips through ``to_dict``/``from_dict`` (and JSON), and a small
random config simulated with pysim gives exactly the numpy reference in exactly ``cycles()``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from amaranth.lib import wiring

from hw import dot, sparse, swa
from hw.engine import Engine, EngineModule, tree_levels
from hw.engines import ENGINES
from hw.sim import simulate

FORMATS = ["int8", "uint4", "int3", "e4m3", "e2m1", "e5m2", "int4n"]


def small_dot(rng: np.random.Generator) -> tuple[Any, dict]:
    lanes = int(rng.integers(1, 6))
    k = int(rng.integers(1, 20))
    cfg = dot.DotConfig(lanes, rng.choice(FORMATS), rng.choice(FORMATS), k + int(rng.integers(0, 50)),
                        int(rng.integers(0, tree_levels(lanes) + 2)))
    return cfg, dict(k=k, vectors=3)


def small_sparse(rng: np.random.Generator) -> tuple[Any, dict]:
    n, m = [(1, 2), (2, 4), (1, 4)][int(rng.integers(0, 3))]
    lanes = n * int(rng.integers(1, 3))
    span = lanes // n * m
    block = span * int(rng.integers(1, 3)) if rng.random() < 0.5 else None
    cfg = sparse.SparseConfig(lanes, n, m, rng.choice(FORMATS), rng.choice(FORMATS), 64, block,
                              int(rng.integers(0, tree_levels(lanes) + 2)))
    return cfg, dict(k=int(rng.integers(1, 40)), vectors=3)


def small_swa(rng: np.random.Generator) -> tuple[Any, dict]:
    lanes = int(rng.choice([1, 2]))
    causal = bool(rng.random() < 0.5)
    window = int(rng.choice([2, 3])) if causal else 3
    cfg = swa.SWAConfig(2 * lanes, window, lanes, rng.choice(["int4", "e2m1"]), rng.choice(["int4", "int3"]),
                        causal=causal, exp_bits=8, recip_bits=8, out_frac_bits=4)
    return cfg, dict(n=int(rng.integers(1, 6)))


#: a small random (config, random_workload kwargs) maker per registered engine
SMALL: dict[str, Callable[[np.random.Generator], tuple[Any, dict]]] = {
    "dot": small_dot, "sparse": small_sparse, "swa": small_swa,
}


def test_every_engine_has_a_small_config_maker():
    assert set(SMALL) == set(ENGINES)


@pytest.mark.parametrize("name", list(ENGINES))
def test_module_and_config_follow_the_protocol(name):
    mod = ENGINES[name]
    assert isinstance(mod, EngineModule)
    cfg, _ = SMALL[name](np.random.default_rng(0))
    assert isinstance(cfg, mod.Config) and isinstance(cfg, Engine)
    assert mod.Config.engine == name
    component = cfg.build()
    component._MustUse__silence = True  # built only to check its type
    assert isinstance(component, wiring.Component)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", list(ENGINES))
def test_round_trip_and_simulation_equal_reference(name, seed):
    mod = ENGINES[name]
    rng = np.random.default_rng(seed)
    cfg, wl_kw = SMALL[name](rng)
    d = cfg.to_dict()
    assert next(iter(d)) == "engine" and d["engine"] == name
    assert mod.Config.from_dict(d) == cfg
    assert mod.Config.from_dict(json.loads(json.dumps(d))) == cfg

    wl = mod.random_workload(cfg, **wl_kw, seed=seed)
    inputs = mod.pack_inputs(cfg, wl)
    n = mod.n_outputs(cfg, wl)
    expected_cycles = mod.cycles(cfg, wl)
    res = simulate(cfg, inputs, n, max_cycles=4 * expected_cycles + 100)
    got = np.asarray(mod.unpack_outputs(cfg, res.outputs))
    want = np.asarray(mod.reference(cfg, wl))
    assert got.shape == want.shape
    assert all(int(g) == int(w) for g, w in zip(got.ravel(), want.ravel()))
    assert res.cycles == expected_cycles
    assert isinstance(mod.output_exponent(cfg), int)
