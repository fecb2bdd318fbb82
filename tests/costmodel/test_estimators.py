"""One model for every engine: a mixed frame equals per-row estimates, cycles equal each engine's
own ``cycles()`` on concrete workloads, and SWA and the dot engines share the same rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from costmodel import estimate, estimate_frame
from costmodel.store import BUFFERS_CSV, SWA_CALIBRATION_CSV
from costmodel import estimators, features, swa as cm_swa
from hw import dot, sparse, swa
from hw.dot import DotConfig
from hw.sparse import SparseConfig

CONFIGS = [
    (swa.SWAConfig(16, 16, 16, "int8", "int8"), 40),
    (DotConfig(8, "int4", "int4", 256, 1), 200),
    (SparseConfig(8, 2, 4, "int8", "int8", 512, pipeline=0), 300),
    (swa.SWAConfig(8, 4, 4, "int4", "int4"), 12),
    (DotConfig(3, "e4m3", "int8", 64, 2), 50),
    (swa.SWAConfig(8, 5, 4, "int8", "int8", causal=False), 9),
    (SparseConfig(4, 1, 4, "int4", "int4", 256, block=32, pipeline=1), 256),
]


def _row(config, work: int) -> dict:
    d = config.to_dict()
    return {**d, "seq_len": work} if d["engine"] == "swa" else {**d, "block": d.get("block") or 0, "k": work,
                                                                  "vectors": 3}


def _estimate(config, work: int):
    if config.engine == "swa":
        return estimate(config, "xczu3eg", n=work)
    return estimate(config, "xczu3eg", k=work, vectors=3)


def test_mixed_frame_equals_per_row_estimate():
    df = pd.DataFrame([_row(c, w) for c, w in CONFIGS], index=[30, 10, 20, 5, 7, 1, 2])
    out = estimate_frame(df, "xczu3eg")
    assert list(out.index) == list(df.index) and list(out["engine"]) == list(df["engine"])
    for (c, w), (_, row) in zip(CONFIGS, out.iterrows()):
        e = _estimate(c, w)
        for k in ("lut", "ff", "dsp", "bram18"):
            assert (pd.isna(row[k]) and getattr(e, k) is None) or row[k] == getattr(e, k), (c, k)
        assert row["cycles"] == e.cycles
        for k in ("fmax_mhz", "latency_us", "energy_nj"):
            assert row[k] == pytest.approx(getattr(e, k)), (c, k)


@pytest.mark.parametrize("config,work", CONFIGS, ids=lambda x: str(x)[:30])
def test_cycles_equal_hw_cycles_on_concrete_workloads(config, work):
    """The estimate's cycles equal the engine module's own ``cycles(config, workload)`` for a
    concrete random workload (which the hw tests check against simulation)."""
    if config.engine == "swa":
        wl = swa.random_workload(config, work, seed=1)
        assert estimate(config, n=work).cycles == swa.cycles(config, wl)
        return
    mod = dot if config.engine == "dot" else sparse
    wl = mod.random_workload(config, work, 3, seed=1)
    if not getattr(config, "block", None):
        assert estimate(config, k=work, vectors=3).cycles == mod.cycles(config, wl)
        return
    # blocks: each vector's beats follow its own live-block fraction; the estimate of one vector
    # at that density, summed over the vectors, is the concrete workload's count
    bm = sparse.block_bitmap(config, wl)
    overhead = config.pipeline + 1
    beats = sum(estimate(config, k=work, vectors=1, block_density=float(row.mean())).cycles - overhead
                for row in bm)
    assert beats + overhead == mod.cycles(config, wl)


def test_swa_and_dense_share_the_bram_and_dsp_rules(monkeypatch):
    """Both estimators count DSPs with features.mult_dsp and memories with features.buffer_cost:
    a spy on each rule sees calls from both engines, and the rules reproduce Yosys' stored rows."""
    assert cm_swa.buffer_cost is features.buffer_cost and cm_swa.mult_dsp is features.mult_dsp
    calls = {"dsp": [], "buf": []}
    real_dsp, real_buf = features.mult_dsp, features.buffer_cost

    def spy_dsp(*a, **k):
        calls["dsp"].append(a)
        return real_dsp(*a, **k)

    def spy_buf(*a, **k):
        calls["buf"].append(a)
        return real_buf(*a, **k)

    monkeypatch.setattr(features, "mult_dsp", spy_dsp)
    monkeypatch.setattr(cm_swa, "mult_dsp", spy_dsp)
    monkeypatch.setattr(cm_swa, "buffer_cost", spy_buf)
    features.pair_props.cache_clear()
    try:
        estimate(DotConfig(8, "int6", "int7", 256, 1))
        n_dot = len(calls["dsp"])
        estimate(swa.SWAConfig(16, 16, 16, "int6", "int6"), n=20)
    finally:
        features.pair_props.cache_clear()
    assert n_dot > 0 and len(calls["dsp"]) > n_dot and calls["buf"]
    b = pd.read_csv(BUFFERS_CSV)
    b = b[b["target"] == "xc7"]
    got = real_buf(b["depth"].to_numpy(), b["width"].to_numpy(), "xc7")
    assert (got["bram18"] == b["bram18"].to_numpy()).all() and (got["lutram"] == b["lutram"].to_numpy()).all()


def test_buffer_rule_matches_yosys_on_swa_memories():
    """The one buffer rule gives the LUTRAM and BRAM18 of every stored SWA synthesis (its K, V, Q
    and score memories), the same rule the standalone buffers check."""
    d = pd.read_csv(SWA_CALIBRATION_CSV)
    configs, gid = cm_swa.swa_configs(pd.DataFrame([json.loads(c) for c in d["config"]]))
    f = cm_swa.swa_features(cm_swa.swa_props(configs, "xc7")).iloc[gid]
    assert (f["bram18"].to_numpy() == d["bram18"].to_numpy()).all()
    assert (f["lutram"].to_numpy() == d["lutram"].to_numpy()).all()


@pytest.mark.parametrize("target,sites", [("xc7", 1), ("ecp5", 6)])
def test_swa_lut_holds_the_distributed_ram_sites(target, sites):
    """An SWA estimate's LUT is the part's LUT sites: the fitted logic plus the distributed RAM
    Yosys maps its memories to (Xilinx: LUTs as RAM, 1 site each; ECP5: TRELLIS_DPR16X4, 6 sites:
    4 RAM + 2 RAMW LUTs, nextpnr-ecp5's count). On every stored held-out kernel of ``target`` with
    distributed RAM, read with the csv module: estimate LUT - the fitted model's LUT = sites × the
    synthesis's LUTRAM count (and, on ECP5, the pass-through LUTs of the SWA cell fit on top of
    those sites)."""
    import csv

    from costmodel.packing import extra_cells, load_fit
    from costmodel.resources import model_for, predict_swa, swa_rows
    from costmodel.store import SWA_DOE_CSV

    with SWA_DOE_CSV["heldout"].open() as fh:
        raw = {r["key"]: int(r["lutram"]) for r in csv.DictReader(fh) if r["target"] == target}
    d, f = swa_rows(target, heldout=True)
    keep = np.array([raw[k] > 0 for k in d["key"]])
    assert keep.sum() >= 40, target
    rows = pd.DataFrame([json.loads(c) for c in d["config"][keep]]).assign(seq_len=1)
    est = estimate_frame(rows, {"xc7": "xc7z020", "ecp5": "ecp5-85f"}[target])
    fitted = predict_swa(f[keep].reset_index(drop=True), model_for(target, "swa")[0], target)["lut"]
    want = sites * np.array([raw[k] for k in d["key"][keep]])
    cells = load_fit(target, "swa")
    more = extra_cells(f[keep].reset_index(drop=True), cells, fitted.to_numpy() + want) if cells else 0
    assert (est["lut"].to_numpy(dtype=np.int64) - fitted.to_numpy() - more == want).all()
    assert "TRELLIS_DPR16X4" in str(est["resource_source"].iloc[0]) or target != "ecp5"


def test_registry_covers_every_engine():
    from hw.engines import ENGINES

    assert set(estimators.ESTIMATORS) == set(ENGINES)
    with pytest.raises(ValueError, match="unknown engine"):
        estimate_frame(pd.DataFrame([{"engine": "systolic", "lanes": 4}]))
    assert np.isfinite(estimate_frame(pd.DataFrame([_row(*CONFIGS[1])]))["energy_nj"]).all()
