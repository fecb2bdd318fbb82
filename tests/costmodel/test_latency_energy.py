"""Estimated cycles and action counts against the pysim simulator (independent reference), and
the fmax model's pipeline runs against the elaborated MacPipeline netlist."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from amaranth.hdl import Fragment
# netlist node classes: amaranth 0.5 exports them only from its _ast module
from amaranth.hdl._ast import Assign, Concat, Const, Operator, Part, Signal, Slice, Switch, SwitchValue

from hw.arith import ConfigError
from hw.dot import DotConfig
from hw.engines import engine
from hw.sim import simulate
from hw.sparse import SparseConfig, block_bitmap

from costmodel import estimate, estimate_frame
from costmodel.energy import ERT
from costmodel.latency import DELAYS, FMAX_SOURCE, fmax_mhz, fmax_source, path_ns_frame, pipeline_runs

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


def _simulate(config, k, vectors, seed=0, wl=None):
    mod = engine(config.engine)
    wl = mod.random_workload(config, k, vectors, seed) if wl is None else wl
    inputs = mod.pack_inputs(config, wl)
    res = simulate(config, inputs, mod.n_outputs(config, wl))
    assert (mod.unpack_outputs(config, res.outputs) == mod.reference(config, wl)).all()
    return wl, res


def _equal_live_blocks(config, wl):
    """``wl`` with weight blocks zeroed so that every vector keeps the same number of live blocks
    (about half of them, at least one): the case where ``block_density`` gives exact cycles."""
    bm = block_bitmap(config, wl)
    live = max(1, int(bm.sum(axis=1).min()) // 2)
    w = wl.w_codes.copy()
    for row, bits in enumerate(bm):
        for b in np.flatnonzero(bits)[live:]:
            w[row, b * config.block:(b + 1) * config.block] = 0  # code 0 is zero in the integer formats used
    return type(wl)(w, wl.a_codes), live


@pytest.mark.parametrize("config,k,vectors", GRID, ids=lambda x: str(x)[:40])
def test_cycles_equal_simulation(config, k, vectors):
    wl, res = _simulate(config, k, vectors)
    if getattr(config, "block", None) is None:
        assert estimate(config, k=k, vectors=vectors).cycles == res.cycles
        return
    # block skipping: with the same number of live blocks in every vector, the estimate at that
    # fraction of live blocks is exact
    wl, live = _equal_live_blocks(config, wl)
    bm = block_bitmap(config, wl)
    assert (bm.sum(axis=1) == live).all() and live < bm.shape[1], "the workload skips blocks, equally per vector"
    wl, res = _simulate(config, k, vectors, wl=wl)
    est = estimate(config, k=k, vectors=vectors, block_density=live / bm.shape[1]).cycles
    assert est == res.cycles
    assert est < estimate(config, k=k, vectors=vectors).cycles, "skipped blocks save cycles"


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
    f3, src3 = fmax_mhz(DotConfig(16, "int4", "int4", 1024, 3))
    assert f3 > f0 > 0
    # the label says which model gave the figure: the logic-depth model (+ its ltp check) on xc7, the
    # nextpnr fit on the Lattice parts
    assert src == src3 == fmax_source("xc7") and src.startswith(FMAX_SOURCE) and "ltp" in src
    f_ice, src_ice = fmax_mhz(DotConfig(16, "int4", "int4", 1024, 0), "ice40")
    assert src_ice.startswith("nextpnr P&R fit") and src_ice != src and 0 < f_ice < DELAYS["ice40"]["cap"] + 1e-9


def test_bad_workload_errors():
    c = DotConfig(4, "int4", "int4", 64)
    with pytest.raises(ConfigError, match="k_max"):
        estimate(c, k=65)
    with pytest.raises(ConfigError, match="vectors"):
        estimate(c, k=8, vectors=0)


# ---- pipeline runs of the fmax model against the MacPipeline netlist -----------------------------


def _assigns(stmts):
    """(lhs signals, rhs) of every assignment, through m.If switches (their tests are control)."""
    for st in stmts:
        if isinstance(st, Assign):
            yield st.lhs._lhs_signals(), st.rhs
        elif isinstance(st, Switch):
            for _patterns, body, _loc in st.cases:
                yield from _assigns(body)


def _netlist(frag, name="top", out=None):
    """{id(signal): [(driving fragment, domain, rhs), ...]} over a fragment and its subfragments."""
    out = {} if out is None else out
    for domain, stmts in frag.statements.items():
        for lhs, rhs in _assigns(stmts):
            for sig in lhs:
                out.setdefault(id(sig), []).append((name, domain, rhs))
    for sub, sub_name, _loc in frag.subfragments:
        _netlist(sub, sub_name, out)
    return out


def _paths(value, where, net, memo):
    """Every register-to-register path profile ending in ``value``: {(multiplier, tree adders,
    accumulator adders)}; a '+' counts as a tree adder in the ``tree`` fragment, else (in the
    MacPipeline itself) as the accumulator adder; a signal driven in a ``mul*`` fragment is a
    multiplier output; registers and undriven inputs start paths."""
    if isinstance(value, Signal):
        key = id(value)
        if key not in memo:
            drivers = net.get(key, [])
            if any(frag.startswith("mul") for frag, _d, _r in drivers):
                memo[key] = {(1, 0, 0)}
            elif not drivers or any(d != "comb" for _f, d, _r in drivers):
                memo[key] = {(0, 0, 0)}
            else:
                memo[key] = set().union(*(_paths(r, f, net, memo) for f, _d, r in drivers))
        return memo[key]
    if isinstance(value, Const):
        return {(0, 0, 0)}
    if isinstance(value, (Slice, Part)):
        kids = [value.value] + ([value.offset] if isinstance(value, Part) else [])
    elif isinstance(value, Concat):
        kids = list(value.parts)
    elif isinstance(value, SwitchValue):
        kids = [value.test] + [v for _p, v in value.cases]
    elif isinstance(value, Operator):
        kids = list(value.operands)
    else:
        raise TypeError(f"unexpected netlist node {value!r}")
    paths = set().union(*(_paths(k, where, net, memo) for k in kids))
    if isinstance(value, Operator) and value.operator == "+":
        step = (0, 1, 0) if where == "tree" else (0, 0, 1)
        paths = {tuple(a + b for a, b in zip(p, step)) for p in paths}
    return paths


def _netlist_paths(lanes: int, pipeline: int) -> set[tuple[int, int, int]]:
    """All register-to-register path profiles of the elaborated dense engine (int4 × int4)."""
    frag = Fragment.get(DotConfig(lanes, "int4", "int4", 64, pipeline).build(), None)
    net, memo = _netlist(frag), {}
    regs = [r for drivers in net.values() for f, d, r in drivers if d != "comb"]
    return set().union(*(_paths(r, "top", net, memo) for r in regs))


def _configs(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    out = [(1, 0), (1, 1), (2, 2), (64, 7), (64, 0), (3, 2), (5, 2)]
    for _ in range(n):
        lanes = int(rng.integers(1, 65))
        out.append((lanes, int(rng.integers(0, (lanes - 1).bit_length() + 2))))
    return out


@pytest.mark.parametrize("lanes,pipeline", _configs(24, seed=11))
def test_model_runs_are_the_netlist_register_runs(lanes, pipeline):
    """Every run the fmax model uses is a real register-to-register path of the elaborated
    engine, and every real path is covered (component-wise) by one of the model's runs, so the
    model's slowest run is the netlist's slowest path under any non-negative delays."""
    paths = _netlist_paths(lanes, pipeline)
    runs = set(pipeline_runs(lanes, pipeline))
    assert runs <= paths, (runs - paths)
    uncovered = {p for p in paths if not any(all(a <= b for a, b in zip(p, r)) for r in runs)}
    assert not uncovered


def test_path_ns_is_the_slowest_netlist_path():
    """path_ns_frame equals the slowest netlist path priced by hand with the documented element
    delays: multiplier (LUT levels + product carry chain), adder level (1 LUT level + prod_bits +
    log2(lanes) carry bits), accumulator (1 LUT level + acc_bits carry bits)."""
    from costmodel.features import frame_features

    cfgs = _configs(10, seed=5)
    df = pd.DataFrame([{"engine": "dot", "lanes": ln, "wfmt": "int4", "afmt": "int4", "k_max": 64, "pipeline": p}
                       for ln, p in cfgs])
    for target in ("xc7", "ice40"):
        f = frame_features(df, target)
        d = DELAYS[target]
        assert (f["mult_dsp"] == 0).all() and (f["mf"] == 0).all()
        want = []
        for i, (ln, p) in enumerate(cfgs):
            r = f.iloc[i]
            mult = r["mult_levels"] * d["level"] + r["prod_bits"] * d["carry_bit"]
            add = d["level"] + (r["prod_bits"] + np.log2(ln)) * d["carry_bit"]
            acc = d["level"] + r["acc_bits"] * d["carry_bit"]
            want.append(max(m * mult + a * add + c * acc for m, a, c in _netlist_paths(ln, p)))
        np.testing.assert_allclose(path_ns_frame(target, f), want, rtol=1e-12)
