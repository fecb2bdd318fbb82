"""The calibration runner's random design of experiments (issue 15, item 1): a seeded draw over
the space the CLI accepts, cached and resumable like the other grids, every row held out."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from costmodel import calibrate as C
from costmodel import store
from hw.engine import tree_levels
from hw.engines import config_from_dict
from quant.formats import IntFormat, MinifloatFormat, parse_format

DOE = C.doe_grid(0, 400)


def test_doe_is_seeded_and_prefix_stable():
    assert C.doe_grid(0, 400) == DOE
    assert C.doe_grid(0, 24) == DOE[:24]
    assert C.doe_grid(1, 24) != DOE[:24]


def test_doe_covers_the_space_the_cli_accepts():
    for cfg in DOE:
        config_from_dict(cfg)  # every draw is a valid engine config
    kinds = {(type(parse_format(c["wfmt"])), type(parse_format(c["afmt"]))) for c in DOE}
    assert {(MinifloatFormat, IntFormat), (IntFormat, MinifloatFormat)} <= kinds  # both orders
    fmts = {c["wfmt"] for c in DOE} | {c["afmt"] for c in DOE}
    assert any(f.startswith("uint") for f in fmts) and any(f.endswith("n") for f in fmts)  # unsigned, narrow
    lanes = {c["lanes"] for c in DOE}
    assert min(lanes) == 1 and max(lanes) <= C.DOE_MAX_LANES and any(l & (l - 1) for l in lanes)
    ks = [c["k_max"] for c in DOE]
    assert C.DOE_K_RANGE[0] <= min(ks) and max(ks) <= C.DOE_K_RANGE[1]
    assert min(ks) < 64 and max(ks) > 8192
    depths = {(c["lanes"], c["pipeline"]) for c in DOE}
    assert all(0 <= p <= tree_levels(l) + 1 for l, p in depths)
    assert any(p not in (0, 1, tree_levels(l) + 1) for l, p in depths)  # intermediate depths
    sparse = [c for c in DOE if c["engine"] == "sparse"]
    assert any(c["block"] is None for c in sparse) and any(c["block"] is not None for c in sparse)
    assert {c["m"] for c in sparse} == {2, 4, 8, 16}


def test_doe_runner_is_cached_and_resumable(tmp_path, monkeypatch):
    """Same runner as the other grids: each row appended at once, keyed by the config hash, marked
    held out with its (seed, index) and command; a second run synthesizes nothing."""
    calls = []

    class R:
        lut = ff = carry = dsp = bram18 = lutram = muxf = 1
        seconds, yosys = 0.0, "Yosys test"

    monkeypatch.setattr(C, "synthesize", lambda design, target: calls.append(design) or R())
    path = tmp_path / "doe.csv"
    jobs = lambda: C.doe_jobs(DOE[:6], 0, "cmd")  # noqa: E731
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, limit=4, progress=False) == 4
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False) == 2  # resumes
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False) == 0
    d = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert list(d["index"]) == list(range(6)) and set(d["split"]) == {"heldout"} and set(d["command"]) == {"cmd"}
    assert list(d["key"]) == [store.config_key(c, "xc7") for c in DOE[:6]]
    assert [json.loads(c) == config_from_dict(DOE[i]).to_dict() for i, c in enumerate(d["config"])] == [True] * 6


def _stand_in(calls: list[str], fails):
    """A stand-in for ``hw.rtl.synthesize`` that records each design in ``calls`` and raises Yosys'
    re-integration assert where ``fails(design)``, else returns counts of 1."""
    from hw.rtl import SynthError

    class Counts:
        lut = ff = carry = dsp = bram18 = lutram = muxf = 1
        seconds, yosys = 0.0, "Yosys test"

    def synth(design, target):
        calls.append(design)
        if fails(design):
            raise SynthError(f"...\nERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed"
                             f" (run {len(calls)})\n")
        return Counts()

    return synth


def test_a_yosys_failure_is_recorded_and_skipped(tmp_path, monkeypatch):
    """A config Yosys crashes on is written to the failures table with its error line, the run
    goes on to the next config, and a resumed run skips it (no second attempt)."""
    calls: list[str] = []
    monkeypatch.setattr(C, "synthesize", _stand_in(calls, lambda design: len(calls) == 2))
    path, fails = tmp_path / "doe.csv", tmp_path / "fail.csv"
    jobs = lambda: C.doe_jobs(DOE[:4], 0, "cmd")  # noqa: E731
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, failures=fails) == 4
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, failures=fails) == 0
    assert len(calls) == 4
    d, f = pd.read_csv(path), pd.read_csv(fails)
    assert len(d) == 3 and list(f["key"]) == [store.config_key(DOE[1], "xc7")]
    assert f["table"][0] == "doe.csv" and f["error"][0].startswith("ERROR: Assert")
    # another family's run of the same table counts none of these as its own failures
    assert store.failed_keys(fails, path, "xc7") == set(f["key"]) and store.failed_keys(fails, path, "ice40") == set()


def test_retry_failed_runs_the_recorded_failures_again_and_drops_the_ones_that_pass(tmp_path, monkeypatch):
    """``retry_failed``: the configs recorded as failed are synthesized again; one that now passes
    gets its row and loses its record, one that fails again keeps one record (the new error);
    another table's and another family's records are left as they were."""
    failing = {"design 1", "design 2"}
    calls: list[str] = []
    monkeypatch.setattr(C, "synthesize", _stand_in(calls, failing.__contains__))
    path, fails = tmp_path / "doe.csv", tmp_path / "fail.csv"
    jobs = lambda: [C.SynthJob(j.spec, lambda i=i: f"design {i}", j.columns, j.label)  # noqa: E731
                    for i, j in enumerate(C.doe_jobs(DOE[:4], 0, "cmd"))]
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, failures=fails) == 4
    other = dict(key=store.config_key(DOE[1], "xc7"), target="ice40", table="doe.csv", label="x", error="E",
                 yosys="y", date="d")
    store.append(fails, store.FAILURE_FIELDS, other)
    store.append(fails, store.FAILURE_FIELDS, {**other, "target": "xc7", "table": "lanes.csv"})
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, failures=fails) == 0
    failing.discard("design 1")
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, failures=fails,
                                retry_failed=True) == 2
    assert calls == ["design 0", "design 1", "design 2", "design 3", "design 1", "design 2"]
    d, f = pd.read_csv(path), pd.read_csv(fails)
    assert sorted(d["index"]) == [0, 1, 3]
    assert store.failed_keys(fails, path, "xc7") == {store.config_key(DOE[2], "xc7")}
    assert sorted(zip(f["table"], f["target"])) == [("doe.csv", "ice40"), ("doe.csv", "xc7"), ("lanes.csv", "xc7")]
    assert f["error"][f["target"] == "xc7"].str.contains("run 6").any()


def test_again_before_takes_the_old_rows_again_in_place(tmp_path, monkeypatch):
    """``before``: the rows of this table and target stored before the date are synthesized again,
    each new row where its old one stood (one row per key; the others, and another family's row of
    the same config, untouched); a second run with the same date takes none again."""
    calls: list[str] = []
    monkeypatch.setattr(C, "synthesize", _stand_in(calls, lambda design: False))
    path = tmp_path / "doe.csv"
    jobs = lambda: [C.SynthJob(j.spec, lambda i=i: f"design {i}", j.columns, j.label)  # noqa: E731
                    for i, j in enumerate(C.doe_jobs(DOE[:4], 0, "cmd"))]
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False) == 4
    d = pd.read_csv(path)
    d.loc[[1, 3], "date"] = "2026-12-01T10:00:00Z"  # two old rows
    d.loc[[0, 2], "date"] = "2026-12-05T10:00:00Z"
    d.loc[:, "lut"] = 7
    other = d.iloc[[1]].assign(target="ice40", key=store.config_key(DOE[1], "ice40"))
    pd.concat([d, other]).to_csv(path, index=False)
    before = store.parse_date("2026-12-03")
    assert store.stored_before(path, "xc7", before) == {store.config_key(DOE[i], "xc7") for i in (1, 3)}
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, before=before) == 2
    assert calls[4:] == ["design 1", "design 3"]
    after = pd.read_csv(path)
    assert list(after["key"]) == list(d["key"]) + list(other["key"])  # in place, nothing appended
    assert list(after["lut"]) == [7, 1, 7, 1, 7] and after["date"].iloc[1] > before
    assert C.synthesize_missing(jobs(), path, store.DOE_FIELDS, progress=False, before=before) == 0


@pytest.mark.parametrize("text,stored", [("2026-12-03", "2026-12-03T00:00:00Z"),
                                         ("2026-12-03T12:16", "2026-12-03T12:16:00Z"),
                                         ("2026-12-03T12:16:05Z", "2026-12-03T12:16:05Z")])
def test_parse_date_spells_dates_as_the_rows_do(text, stored):
    assert store.parse_date(text) == stored


def test_again_before_refuses_a_date_it_cannot_read(capsys):
    with pytest.raises(SystemExit) as e:
        C.main(["engines", "--grid", "doe", "--again-before", "last tuesday"])
    assert e.value.code == 2 and "ISO 8601" in capsys.readouterr().err


def test_stored_doe_rows_are_the_seeded_draw_and_never_fitted():
    """Every stored held-out row is the draw at its (seed, index), and no key of it is among the
    shipped fit's calibration rows (the fit drops them before splitting)."""
    if not store.DOE_HELDOUT_CSV.exists():
        pytest.skip("no held-out DOE rows stored yet")
    d = pd.read_csv(store.DOE_HELDOUT_CSV, keep_default_na=False, na_values=[""])
    # each seed's draw once, as long as its last stored index (the draw is prefix-stable:
    # test_doe_is_seeded_and_prefix_stable), not once per row
    draws = {seed: C.doe_grid(int(seed), int(g["index"].max()) + 1) for seed, g in d.groupby("seed")}
    for r in d.itertuples():
        cfg = draws[r.seed][int(r.index)]
        assert r.key == store.config_key(cfg, r.target) and r.split == "heldout"
        assert r.yosys and r.date and r.command.startswith("python -m costmodel.calibrate engines --grid doe")
    from costmodel.resources import load_coefficients

    fitted = set(load_coefficients()["fits"]["xc7"]["mac"]["keys"]["calibration"])
    assert fitted.isdisjoint(store.heldout_keys())


def test_heldout_report_groups():
    from costmodel.resources import HELDOUT_GROUPS, heldout_report

    rep = heldout_report("xc7")
    assert list(rep["group"]) == HELDOUT_GROUPS
    assert (rep["n"] >= 0).all()


@pytest.mark.parametrize("target", ["xc7", "ice40"])
def test_swa_doe_draw_covers_the_swa_space(target):
    """The SWA draw spans what the CLI accepts within the family's bounds: causal, symmetric (odd
    windows) and dense kernels; int (signed, narrow, unsigned) and minifloat Q/K and V; lanes from
    1 including non-powers of two; head_dim a multiple of lanes; prefix-stable and different per
    seed. iCE40 draws smaller kernels than the other families, from the same stream of draws."""
    from hw.swa import SWAConfig

    bounds = C.swa_doe_bounds(target)
    draw = C.swa_doe_grid(1, 120, bounds)
    assert draw[:30] == C.swa_doe_grid(1, 30, bounds) and draw[:30] != C.swa_doe_grid(0, 30, bounds)
    kinds = {("dense" if c["dense"] else "causal" if c["causal"] else "symmetric") for c in draw}
    assert kinds == {"causal", "symmetric", "dense"}
    assert all(c["window"] % 2 for c in draw if not c["causal"])
    fmts = {c["qk_fmt"] for c in draw} | {c["v_fmt"] for c in draw}
    assert any(f.startswith("e") for f in fmts) and any(f.startswith("uint") for f in fmts)
    assert any(f.startswith("int") and f.endswith("n") for f in fmts)
    lanes = {c["lanes"] for c in draw}
    assert min(lanes) == 1 and max(lanes) <= bounds.max_lanes and any(l & (l - 1) for l in lanes)
    for c in draw:
        cfg = SWAConfig.from_dict({k: v for k, v in c.items() if k != "engine"})
        assert cfg.head_dim % cfg.lanes == 0 and bounds.holds(cfg.lanes, cfg.head_dim, cfg.window)
    assert (C.swa_doe_bounds(target) == C.SWA_DOE_BOUNDS) == (target != "ice40")
    assert C.SWA_DOE_BOUNDS.max_lanes == 32 and C.SWA_DOE_BOUNDS.max_head_dim == 128


def test_stored_swa_doe_rows_are_the_seeded_draw():
    """Every stored SWA DOE row is the draw at its (seed, index) within its family's bounds, with its
    split and command, and no row takes the other split's seed."""
    for split, path in store.SWA_DOE_CSV.items():
        if not path.exists():
            continue
        d = pd.read_csv(path, keep_default_na=False, na_values=[""])
        # each (seed, family) draw once, as long as its last stored index (prefix-stable:
        # test_swa_doe_draw_covers_the_swa_space)
        draws = {(seed, target): C.swa_doe_grid(int(seed), int(g["index"].max()) + 1, C.swa_doe_bounds(target))
                 for (seed, target), g in d.groupby(["seed", "target"])}
        for r in d.itertuples():
            cfg = draws[r.seed, r.target][int(r.index)]
            other = {C.DOE_SEEDS[s] for s in C.DOE_SEEDS if s != split}
            assert r.key == store.config_key(cfg, r.target) and r.split == split and r.seed not in other
            assert r.command.startswith("python -m costmodel.calibrate engines --grid swa-doe") and r.yosys


def test_parallel_runner_stores_each_synthesis_under_its_own_key(tmp_path):
    """``workers=2`` overlaps real Yosys runs that finish out of order (a small lane and larger
    ones): every row holds the LUTs Yosys gives its own design synthesized alone, uncached, and a
    second run synthesizes nothing."""
    from hw.rtl import synthesize

    triples = [("e4m3", "e4m3", 8), ("int2", "int2", 2), ("e2m1", "int4", 4), ("e3m2", "e2m2", 2)]
    jobs = lambda: (j for j in C.lane_jobs("ice40")  # noqa: E731
                    if (j.columns["wfmt"], j.columns["afmt"], j.columns["m"]) in triples)
    path = tmp_path / "lanes.csv"
    assert C.synthesize_missing(jobs(), path, store.LANE_FIELDS, "ice40", progress=False, workers=2) == 4
    assert C.synthesize_missing(jobs(), path, store.LANE_FIELDS, "ice40", progress=False, workers=2) == 0
    d = pd.read_csv(path)
    got = {(w, a, m): lut for w, a, m, lut in zip(d["wfmt"], d["afmt"], d["m"], d["lut"])}
    want = {t: synthesize(C.SparseLane(*t), "ice40", cache=False).lut for t in triples}
    assert got == want and len(set(want.values())) == 4
    assert list(d["key"].map(lambda k: k in {store.config_key(j.spec, "ice40") for j in jobs()})) == [True] * 4


def test_calibrate_rejects_a_worker_count_below_one(capsys):
    with pytest.raises(SystemExit) as e:
        C.main(["lanes", "--jobs", "0", "--limit", "0"])
    assert e.value.code == 2 and "--jobs must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["heldout", "calibration"])
@pytest.mark.parametrize("grid", ["doe", "swa-doe"])
def test_a_draw_cannot_take_the_other_splits_seed(split, grid, capsys, monkeypatch):
    """A held-out draw with the calibration draw's seed would hold out the fitted configs (and the
    reverse would fit the held-out ones): one line, exit 2, nothing recorded or synthesized."""
    recorded = []
    monkeypatch.setattr(C, "_record_command", lambda *a: recorded.append(a))
    monkeypatch.setattr(C, "synthesize_missing", lambda *a, **k: recorded.append(a))
    other = next(s for s in C.DOE_SEEDS if s != split)
    with pytest.raises(SystemExit) as e:
        C.main(["engines", "--grid", grid, "--split", split, "--seed", str(C.DOE_SEEDS[other]), "--count", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"draws the {other} configs" in err and not recorded
    drawn = {split: set(map(str, C.doe_grid(seed, 50))) for split, seed in C.DOE_SEEDS.items()}
    assert not drawn["heldout"] & drawn["calibration"]


def test_recorded_command_leaves_out_the_worker_count(tmp_path, monkeypatch):
    """The rows do not depend on ``--jobs``, so the command stored beside them omits it."""
    monkeypatch.setattr(C, "META_JSON", tmp_path / "meta.json")
    C._record_command("lanes", ["lanes", "--jobs", "4", "--target", "xc7"])
    C._record_command("muxes", ["muxes", "--jobs=3", "--target", "xc7"])
    cmds = json.loads((tmp_path / "meta.json").read_text())["commands"]
    assert cmds == {"lanes": "python -m costmodel.calibrate lanes --target xc7",
                    "muxes": "python -m costmodel.calibrate muxes --target xc7"}


def test_runner_counts_what_is_left_and_synthesizes_a_repeated_config_once(tmp_path, monkeypatch, capsys):
    class R:
        lut = ff = carry = dsp = bram18 = lutram = muxf = 1
        seconds, yosys = 0.0, "Yosys test"

    calls = []
    monkeypatch.setattr(C, "synthesize", lambda design, target: calls.append(design) or R())
    jobs = list(C.doe_jobs(DOE[:3], 0, "cmd"))
    path = tmp_path / "doe.csv"
    assert C.synthesize_missing([*jobs, jobs[1]], path, store.DOE_FIELDS) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 to synthesize for xc7 into doe.csv (1 at a time)")
    heads = [ln.split("]")[0] for ln in out[1:]]
    assert [h.split(",")[0] for h in heads] == ["[1/3", "[2/3", "[3/3"]
    assert all(h.endswith(" s left") for h in heads[:2]) and "left" not in heads[2]
    assert len(calls) == 3 and len(pd.read_csv(path)) == 3
