"""Sparse lanes measured alone (``data/lanes.csv``): the order a resumable run measures them in, the
stored rows against a fresh Yosys run, and which estimates say their lane was not measured."""

from __future__ import annotations

import csv
import random

import numpy as np
import pandas as pd
import pytest

from costmodel import calibrate as C
from costmodel import estimate_frame, resources, store
from costmodel.resources import heldout_rows, lattice_rows
from hw.rtl import synthesize
from quant.formats import all_formats


def _stored(target: str) -> dict[tuple[str, str, int], int]:
    if not store.LANES_CSV.exists():
        return {}
    with store.LANES_CSV.open() as f:
        return {(r["wfmt"], r["afmt"], int(r["m"])): int(r["lut"]) for r in csv.DictReader(f) if r["target"] == target}


def test_lanes_measure_the_fitted_engines_first_then_a_shuffle_of_the_whole_space():
    """The first lanes are those of the family's sparse calibration engines (never a held-out
    engine's, unless a calibration engine shares it); the rest is every other ordered format pair
    the CLI accepts at m = 2, 4, 8 and 16, each once, in a seeded shuffle."""
    order = C.lane_triples("ecp5")
    rows = lattice_rows("ecp5")
    sparse = rows[rows["engine"] == "sparse"]
    fitted = {(w, a, int(m)) for w, a, m in zip(sparse["wfmt"], sparse["afmt"], sparse["m"])}
    assert set(order[:len(fitted)]) == fitted
    names = [str(f) for f in all_formats()]
    space = {(w, a, m) for w in names for a in names for m in (2, 4, 8, 16)}
    assert len(order) == len(set(order)) == len(space) and set(order) == space
    held = heldout_rows("ecp5")
    held = {(w, a, int(m)) for w, a, m, e in zip(held["wfmt"], held["afmt"], held["m"].fillna(0), held["engine"])
            if e == "sparse"}
    assert not (set(order[:len(fitted)]) & held) - fitted
    assert order == C.lane_triples("ecp5") and order[len(fitted):] != C.lane_triples("ecp5", seed=6)[len(fitted):]


@pytest.mark.parametrize("target", ["ecp5", "xc7"])
def test_stored_lanes_are_the_first_of_that_order(target):
    """A stopped run leaves a prefix: every lane up to the last stored one is stored or recorded
    as a tool failure (none since the ABC re-integration workaround: ``hw.rtl.run_synth``), at
    least those of the family's sparse calibration engines."""
    stored = _stored(target)
    if not stored:
        pytest.skip(f"no {target} lanes stored (python -m costmodel.calibrate lanes --target {target})")
    failed = store.failed_keys(store.FAILURES_CSV, store.LANES_CSV, target)
    order = C.lane_triples(target)
    keys = [store.config_key({"primitive": "sparse_lane", "wfmt": w, "afmt": a, "m": m}, target) for w, a, m in order]
    done = [t in stored or k in failed for t, k in zip(order, keys)]
    last = max(i for i, d in enumerate(done) if d)
    assert all(done[:last + 1]), ("a lane before the last stored one is missing (calibration engines added since?): "
                                  f"python -m costmodel.calibrate lanes --target {target}")
    assert last + 1 >= len(C._sparse_calibration_triples(target))


@pytest.mark.parametrize("target", ["ecp5", "xc7"])
def test_stored_lanes_equal_a_fresh_yosys_run(target):
    stored = _stored(target)
    if not stored:
        pytest.skip(f"no {target} lanes stored")
    for w, a, m in random.Random(0).sample(sorted(stored), 2):
        assert synthesize(C.SparseLane(w, a, m), target, cache=False).lut == stored[(w, a, m)], (w, a, m)


def test_estimates_say_when_their_sparse_lane_was_not_measured(tmp_path, monkeypatch):
    """Sparse estimates whose (w, a, m) lane is not in lanes.csv say so in their label; those whose
    lane is, and dense estimates, do not (ECP5, and xcup reading xc7's lanes). The lanes of every
    other held-out sparse engine are taken out of a copy of the table, so both kinds occur however
    complete the stored runs are."""
    lanes = pd.read_csv(store.LANES_CSV)
    try:
        for target, device, lanes_of in (("ecp5", "ecp5-85f", "ecp5"), ("xcup", "xczu3eg", "xc7")):
            held = heldout_rows(target)
            held = held[held["engine"] == "sparse"].drop(columns=["lut", "ff", "dsp", "bram18", "key"])
            triples = list(zip(held["wfmt"], held["afmt"], held["m"].astype(int)))
            drop = set(triples[::2])
            keep = [(t != lanes_of) or ((w, a, int(m)) not in drop)
                    for t, w, a, m in zip(lanes["target"], lanes["wfmt"], lanes["afmt"], lanes["m"])]
            kept = lanes[keep]
            path = tmp_path / f"lanes_{target}.csv"
            kept.to_csv(path, index=False)
            monkeypatch.setattr(resources, "LANES_CSV", path)
            resources._lane_table.cache_clear()
            kept = kept[kept["target"] == lanes_of]
            stored = set(zip(kept["wfmt"], kept["afmt"], kept["m"].astype(int)))
            want = np.array([t not in stored for t in triples])
            out = estimate_frame(held, device=device)
            said = out["resource_source"].astype(str).str.contains("not yet synthesized alone").to_numpy()
            assert (said == want).all() and want.any() and not want.all(), target
            dense = estimate_frame(pd.DataFrame([{"engine": "dot", "lanes": 8, "wfmt": "e2m2", "afmt": "e2m2",
                                                  "k_max": 512, "pipeline": 2}]), device=device)
            assert not dense["resource_source"].astype(str).str.contains("not yet synthesized").any()
    finally:
        monkeypatch.undo()
        resources._lane_table.cache_clear()
