"""Resource model: per-primitive formulas composed per engine, coefficients fitted on Yosys data.

Primitives (bits and counts from :mod:`costmodel.features`; LUTs from fitted coefficients)
----------------------------------------------------------------------------------------
multiplier      LUTs of one exact multiplier for the format pair, operand-order free (the
                hardware is the same for (w, a) and (a, w)): the mean Yosys figure from
                ``data/primitives.csv`` where that pair was synthesized in either order, else
                the formula fitted on those standalone multipliers (each of the two scaled by
                one coefficient fitted on whole engines; symmetric in w and a;
                :func:`_mult_terms`): int × int in LUTs ``c1·A·B + c2·A·B·(min(A, B) − 1)``
                (partial products and adder depth);
                minifloat ``c3·A·B + c4·shifter + c5·P + c6·I`` (significand product A×B, the
                aligner's log-shifter mux bits, the negation P, a signed int operand's
                magnitude I), A·B → 0 when the Yosys DSP rule maps it to a DSP; a measured
                multiplier behind an N:M index mux at a coefficient of its own
                (``mult_measured_sparse``: ABC maps the mux's last level with the multiplier's
                first LUTs);
adder tree      LUTs per adder bit of the fabric, for levels that end in a pipeline register and
                those that feed the next level or the accumulator combinationally (Yosys/ABC
                map the two differently: about 0.7 vs 1.3 LUT/bit), minifloat and integer engines
                apart, a minifloat engine's combinational levels by where its significand
                products lie (DSP or LUTs); an unsigned sum's top bit is its carry chain's
                carry-out (no LUT; features.frame_features); int × int DSP engines on xc7: an
                unpipelined tree of full-width products
                (``full_product``: unsigned × unsigned or a native signed product) folds into the
                DSP48 cascade (one coefficient, near 0), one of truncated products (mixed sign,
                narrow formats: sign-extended from below the DSP48's product) packs its first
                level into the DSP48 post-adders and keeps the rest in the fabric (a coefficient
                each: about 0.1 and 0.9 LUT/bit), a pipelined one packs its first adder level
                (P = A·B + C; its own coefficient) and keeps the rest in the fabric; xcup packs
                none of it (a minifloat significand product in a DSP48E2 costs a term of its own;
                an unpipelined int × int DSP tree, one fabric ``$macc``, ``tree_intdsp_nopack_p0``);
multiply-accumulate merge
                int × int LUT multipliers (int2–int4 on xc7) with no register after them
                (pipeline 0): Yosys ``alumacc`` merges full-width products and the adder tree
                into the accumulator's ``$macc``, mapped as a full-adder compressor; LUTs per
                partial-product bit ``lanes · A · B`` on top of the multiplier and tree terms
                (``macc_pp_full``; truncated products, not merged, ``macc_pp_trunc``), and for a
                signed product maccmap's sign-extension rows, ``Σ_{i<B} (acc_bits − A − i)``
                bits per lane (``macc_signext``); integer engines whose accumulator's
                ``$macc`` lies in the fabric (the adder levels after the last pipeline register,
                or all of them, merged with the accumulator's adder): LUTs per sign-extension
                bit of its signed operands, each extended to the accumulator's width
                (``macc_signext_fabric``, ``features.macc_signext_bits``), and per full adder
                of maccmap's compressor, as it lays them out (``macc_fa``,
                ``features.macc_full_adders``: signed and unsigned terms at their own widths,
                checked against Yosys' ``$fa`` cells; until 2026-12-07 ``(terms − 1) ·
                acc_bits`` for a signed product only, ``macc_fa_signed``: on ECP5, whose CCU2C
                carry chains leave a plain adder's sum bits out of the LUT4 count, the bulk of
                an int × int DSP engine's LUT4s);
accumulator     LUTs per accumulator bit, minifloat and integer engines apart (about 1.7: the
                adder and its clear; a minifloat engine's by where its significand products lie,
                as its adders); one LUT per bit where Yosys packs the accumulator into a
                DSP48's P register (``acc_bits_intdsp``: every such dense xc7 calibration
                engine has acc_bits + 4 LUTs);
index mux       ``lanes · abits`` selected bits, one coefficient per m (2, 4, 8, 16): inside an
                engine ABC maps a wide mux more tightly than alone (a standalone 16:1
                :class:`hw.sparse.IndexMux` bit takes 8 LUT6, ``data/muxes.csv``; in engines about
                5); where the mux feeds a merged ``$macc`` (LUT multipliers, pipeline 0) a
                second coefficient on the mux's LUT6 count (``mux_macc``: ABC folds it into the
                compressor; sparse only); a third on the LUT6 count of a mux feeding int × int
                LUT multipliers at any depth (``mux_intlut``: each selected bit drives B
                partial products, kept apart from the multiplier's LUTs);
sparse lane     the index mux and the multiplier of one lane synthesized together, alone
                (``data/lanes.csv``, per (w, a, m)): where a family's lanes are stored (ECP5),
                a *lane model* prices a sparse engine whose lane is stored by its LUTs over the
                multiplier's (``lane_excess``) in place of the index-mux terms (abc9 maps a lane at
                1.0-1.9 x its two parts alone, by format pair and m, in no pattern of the
                formats); or, a candidate too (:data:`LANE_MODELS`), an int × int lane's excess
                (its mux alone) at one coefficient per m and a minifloat lane's at one of its
                own: inside an engine a 16:1 mux bit takes 5 LUT6, alone 8; dense engines by
                the same model; a sparse engine whose lane is not stored by the family's fit
                without it (``lut_lane_unmeasured``), and says so;
registers       FF counted, not fitted: pipeline + accumulator + output register bits (the
                adder tree's terms at their own widths: an odd lane count passes a narrower
                term through; no term wider than the accumulator, whose truncated sum reads
                only its own low bits: Yosys removes the bits above), minus what Yosys packs
                into DSP48 registers on xc7 for int × int DSP multipliers (products → MREG,
                first adder level → cascade PREG, a lone
                product passed unsummed to the first later register → its PREG, the accumulator
                → P with one lane or, unpipelined, for a native signed product), minus the
                constant sign bit of each registered term of an unsigned × unsigned product that
                Yosys' passes see as constant (``features._msb_kept`` replays ``opt_dff``,
                ``wreduce``'s sweeps and ``alumacc``: a ``$macc`` the ``wreduce`` wave missed keeps
                it; on iCE40 the kept bits whose carry chains fold on the gates share one
                flip-flop, :mod:`costmodel.maccmap`); xcup packs none (its syntheses keep every
                register in the fabric);
DSP             ``lanes · DSPs per multiplier`` by the Yosys inference rule (not fitted; a
                product narrower than 9 bits stays in LUTs, as for narrow ``int6n × int3n``);
BRAM18          0: the engines hold no memories (weights and activations stream in).

Fit
---
Non-negative least squares (``scipy.optimize.nnls``) on relative error (each row divided by its
synthesized value), over every calibration row — the grids of ``data/calibration.csv`` and the
seeded random calibration draw ``data/doe_calibration.csv`` (seed 1) — of xc7 and xcup together
(:func:`fit_xilinx`: one set of fabric coefficients, the same LUT6/CARRY fabric; each family's
own DSP48 packing rule in its design matrix; each family's errors measured on its own rows; each
family fitted on its own rows is a candidate of the selection too, and loses: CV goal score
0.809 against 0.776, 2026-12-04);
multiplier-formula coefficients over ``data/primitives.csv`` (xc7 syntheses; xcup maps a LUT
multiplier identically, :data:`PRIMITIVES_OF`). The held-out random draw
``data/doe_heldout.csv`` (seed 0, drawn before any fit) is never fitted on; its errors per group
are the model's stated accuracy (:func:`heldout_report`). Terms and fit (squared, absolute, or
kinked absolute relative error, :data:`LUT_FITS`) are chosen by 5-fold cross-validation over calibration rows
only, by their distance from issue 15's goals (:func:`select_lut_fit`, :data:`SELECTION_RULE`;
``python -m costmodel.resources --cv`` lists every candidate). ``python -m
costmodel.resources xc7 xcup ice40 ecp5`` refits and writes ``data/coefficients.json`` with the
data's sha256, the fitted and held-out keys, and both sets of errors.

Lattice targets (ice40, ecp5)
-----------------------------
Fitted on the bare-engine ``synth_ice40`` / ``synth_ecp5`` runs of the place-and-route sample
(``data/pnr.csv``, :mod:`costmodel.pnr`) and of the family's random calibration draw: LUT4 (ECP5:
LUT4 sites, every CCU2C carry cell counted as its two LUT4s, :func:`hw.rtl.lut_sites`, as
every stored table is read) by a non-negative fit over the :data:`LATTICE_CANDIDATES` term set and :data:`LUT_FITS` fit (squared, absolute
or kinked absolute relative error) that :func:`select_lut_fit` chooses (the Lattice terms, or the engine
terms on the family's own standalone multipliers where ``primitives.csv`` holds them),
errors on the family's held-out random draw; FF = the structural register count (no coefficient), DSP = SB_MAC16 (none: ``synth_ice40``
infers none by default) / MULT18X18D by the ``synth_ecp5`` rule, BRAM = 0. ``tests/costmodel/
test_pnr.py`` checks FF/DSP/BRAM against every stored Yosys run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from hw.engines import config_from_dict
from hw.rtl import lut_sites

from .store import (AREA_DELAY_PS, CALIBRATION_CSV, CURVE_DELAYS_PS, CURVE_FLAT_LUTS, DOE_CALIBRATION_CSV,
                    DOE_HELDOUT_CSV, LANE_MS, LANES_CSV, MULT_CURVES_CSV, PRIMITIVES_CSV,
                    SWA_CALIBRATION_CSV, SWA_DOE_CSV, heldout_keys, now, swa_doe_bounds)
from .features import CONFIG_COLUMNS, config_row, frame_features, pair_props
from .latency import multiplier_budget_ns, mux16_form
from .pnr import PNR_CSV
from .swa import SWA_CANDIDATES, SWA_FF_TERMS, SWA_LUT_TERMS, swa_configs, swa_design, swa_features, swa_props

__all__ = ["COEFFICIENTS_JSON", "fit", "fit_swa", "predict_swa", "model_for", "load_coefficients", "predict_frame",
           "design_matrix", "lane_luts", "index_mux_form", "mux_bound_lanes", "heldout_report", "HELDOUT_GROUPS",
           "LUT_TERMS", "FF_TERMS", "ResourceModelError"]

COEFFICIENTS_JSON = Path(__file__).parent / "data" / "coefficients.json"

MULT_TERMS = ["int_ab", "int_ab_depth", "mf_ab", "mf_shifter", "mf_prod", "mf_int_bits", "mf_const"]
#: terms of everything but the multipliers, as shipped until 2026-12 (every unpipelined int × int
#: DSP tree folded into the DSP48 cascade, one multiply-accumulate merge term)
_REST_TERMS_2026_12 = ["mux_bits_m2", "mux_bits_m4", "mux_bits_m8", "mux_bits_m16", "mux_macc", "macc_pp_bits",
                       "mf_dsp_nopack", "tree_bits_intdsp_nopipe", "tree_l1_intdsp_pipe", "tree_bits_reg_mf",
                       "tree_bits_comb_mf", "acc_bits_mf", "tree_bits_reg_int", "tree_bits_comb_int", "acc_bits_int"]
#: terms of everything but the multipliers: the DSP48 cascade folds an unpipelined tree of
#: full-width products only (``tree_bits_intdsp_fold``; truncated ones add in the fabric,
#: ``tree_bits_intdsp_nofold``), alumacc merges full-width LUT products into the accumulator's
#: $macc (``macc_pp_full``, signed ones with maccmap's sign-extension rows ``macc_signext``;
#: truncated ones stay multipliers of their own, ``macc_pp_trunc``)
_REST_TERMS = ["mux_bits_m2", "mux_bits_m4", "mux_bits_m8", "mux_bits_m16", "mux_macc", "macc_pp_full", "macc_pp_trunc",
               "macc_signext", "mf_dsp_nopack", "tree_bits_intdsp_fold", "tree_bits_intdsp_nofold",
               "tree_l1_intdsp_pipe", "tree_bits_reg_mf", "tree_bits_comb_mf", "acc_bits_mf", "tree_bits_reg_int",
               "tree_bits_comb_int", "acc_bits_int"]
_MULT_LUT_TERMS = ["const", "mult_measured", *[f"mult_{t}" for t in MULT_TERMS]]
#: the LUT terms shipped until the evening of 2026-12-03
_LUT_TERMS_2026_12_03 = [*_MULT_LUT_TERMS, *_REST_TERMS]
#: terms the calibration residuals showed missing (5-fold CV on calibration rows only): an
#: accumulator in a DSP48 still costs a LUT per bit (``acc_bits_intdsp``; the constant had taken
#: it), an index mux feeding int × int LUT multipliers at any depth (``mux_intlut``), the sign
#: extension of the operands of the accumulator's fabric $macc (``macc_signext_fabric``), and an
#: unfolded DSP tree (truncated products, pipeline 0) with its first level in the DSP48
#: post-adders like a pipelined one (``tree_l1_intdsp_nofold``), the rest in the fabric
_STRUCTURE_TERMS = ["acc_bits_intdsp", "mux_intlut", "macc_signext_fabric"]
_NOFOLD_SPLIT = ["tree_l1_intdsp_nofold", "tree_rest_intdsp_nofold"]
#: the LUT terms shipped until 2026-12-04
_LUT_TERMS_2026_12_04 = [*[t for t in _LUT_TERMS_2026_12_03 if t != "tree_bits_intdsp_nofold"], *_NOFOLD_SPLIT,
                         *_STRUCTURE_TERMS]
#: the LUT terms of 2026-12-04 + an unpipelined int × int DSP tree that no DSP packs (xcup) apart
_NOPACK_TERMS = [*_LUT_TERMS_2026_12_04, "tree_intdsp_nopack_p0"]
#: the split of a minifloat engine's combinational fabric adders and accumulator by where its
#: significand products lie (DSP / LUTs)
_MF_SPLIT = {"tree_bits_comb_mf": ["tree_bits_comb_mf_dsp", "tree_bits_comb_mf_lut"],
             "acc_bits_mf": ["acc_bits_mf_dsp", "acc_bits_mf_lut"]}


def _split(terms: list[str], split: dict[str, list[str]]) -> list[str]:
    """``terms`` with each term of ``split`` replaced by its parts."""
    return [x for t in terms for x in split.get(t, [t])]


#: the LUT terms shipped until the evening of 2026-12-04: multipliers synthesized alone
#: (primitives.csv) at their measured cost, the others by the multiplier formula's terms, each with
#: its coefficient fitted on whole engines; an unpipelined int × int DSP tree that no DSP packs
#: (xcup) and a minifloat engine's combinational adders and accumulator by where its significand
#: products lie, apart (the engine terms the Lattice fits choose from, :data:`LATTICE_CANDIDATES`)
_ENGINE_TERMS_2026_12_04 = _split(_NOPACK_TERMS, _MF_SPLIT)
#: the LUT terms of 2026-12-04 night (:func:`fit_mac`'s default): those, the measured multipliers of sparse engines (behind the index mux,
#: which ABC maps together with the multiplier's first LUTs) at a coefficient of their own
#: (``mult_measured_sparse``), and the full adders of the accumulator's fabric $macc
#: (``macc_fa_signed``)
LUT_TERMS = [*_ENGINE_TERMS_2026_12_04, "mult_measured_sparse", "macc_fa_signed"]
#: the LUT term sets the Xilinx fit chooses from (:func:`select_xilinx`, each by either fit of
#: :data:`LUT_FITS`; ``python -m costmodel.resources --cv`` lists their scores; the choice is
#: ``lut_terms_chosen`` in ``coefficients.json``). Until 2026-12-04 night the terms were chosen by
#: hand on median + p90 of the least-squares fits: :data:`LUT_TERMS` lowered median + p90 on
#: the random calibration rows of each of xc7 and xcup: 3.7 % + 10.5 %, 4.2 % + 10.5 % (2026-12-04 evening, 360 + 220 drawn rows), against
#: 4.1 % + 10.3 %, 4.4 % + 10.6 % for the terms shipped until then (and on average over five
#: other fold assignments by key, 13.95 % vs 14.52 % and 15.09 % vs 15.32 %: small gains, within
#: the spread between fold assignments); either new term alone raises one family's against it
#: (the sparse multipliers apart: xcup's; the full adders: xc7's). The terms shipped until then, on
#: their own data: 4.3 % + 10.1 %, 4.9 % + 9.9 % (2026-12-04, 360 + 100 drawn rows), against 4.2 % + 10.5 %,
#: 5.1 % + 11.4 % for the terms shipped until then on the same features (and 4.3 % + 10.6 %,
#: 4.8 % + 11.5 % before the unsigned carry-out); every other candidate raises at least one
#: family's. The terms shipped until 2026-12-04 had beaten 5.5 % + 13.1 %, 5.6 % + 14.9 %
#: of the terms before them, which had beaten 5.8 % + 14.8 %, 6.0 % + 16.7 % of the formula fitted
#: on the standalone multipliers and scaled by one coefficient
CANDIDATES = {
    "grid-era terms (one tree coefficient per register regime, DSP trees by first-level register)": [
        "const", "mult_lut_dense", "mult_lut_sparse", "tree_bits_reg", "tree_bits_comb", "tree_bits_intdsp_nopipe",
        "tree_bits_intdsp_l1comb", "tree_bits_intdsp_l1reg", "acc_bits", "mux_lut6", "mux_macc", "macc_pp_bits"],
    "2026-12-03 terms (every unpipelined int DSP tree folds, one macc term)": [*_MULT_LUT_TERMS, *_REST_TERMS_2026_12],
    "2026-12-03 terms, the fold for full-width products only": [
        *_MULT_LUT_TERMS, *[x for t in _REST_TERMS_2026_12 for x in (
            ["tree_bits_intdsp_fold", "tree_bits_intdsp_nofold"] if t == "tree_bits_intdsp_nopipe" else [t])]],
    "2026-12-03 terms, the fold for full-width products only, the macc merge of full-width products": [
        *_MULT_LUT_TERMS, *[t for t in _REST_TERMS if t != "macc_signext"]],
    "terms shipped until 2026-12-03 evening": _LUT_TERMS_2026_12_03,
    "those + the accumulator in a DSP48": [*_LUT_TERMS_2026_12_03, "acc_bits_intdsp"],
    "those + the accumulator in a DSP48, the index mux into int LUT multipliers": [
        *_LUT_TERMS_2026_12_03, "acc_bits_intdsp", "mux_intlut"],
    "those + the accumulator in a DSP48, the fabric $macc's sign extension": [
        *_LUT_TERMS_2026_12_03, "acc_bits_intdsp", "macc_signext_fabric"],
    "those + the accumulator in a DSP48, the index mux into int LUT multipliers, the fabric $macc's sign "
    "extension": [*_LUT_TERMS_2026_12_03, *_STRUCTURE_TERMS],
    "terms shipped until 2026-12-04 (those + an unfolded DSP tree's first level apart)": _LUT_TERMS_2026_12_04,
    "those + an unpipelined int DSP tree no DSP packs apart": _NOPACK_TERMS,
    "those, a minifloat engine's combinational fabric adders apart by DSP / LUT significand products": _split(
        _NOPACK_TERMS, {"tree_bits_comb_mf": _MF_SPLIT["tree_bits_comb_mf"]}),
    "terms shipped until 2026-12-04 evening (those, its accumulator apart too)": _ENGINE_TERMS_2026_12_04,
    "those, its registered fabric adders apart too": _split(
        _ENGINE_TERMS_2026_12_04, {"tree_bits_reg_mf": ["tree_bits_reg_mf_dsp", "tree_bits_reg_mf_lut"]}),
    "those + the sparse engines' multipliers (behind the index mux) apart": [
        *_ENGINE_TERMS_2026_12_04, "mult_measured_sparse"],
    "those + the fabric $macc's full adders (signed products)": [*_ENGINE_TERMS_2026_12_04, "macc_fa_signed"],
    "terms of 2026-12-04 night (those + the sparse engines' multipliers apart + the fabric $macc's full adders)":
        LUT_TERMS,
    "2026-12-04 night terms + the index mux's bits apart for minifloat and integer engines": LUT_TERMS + ["mux_bits_mf", "mux_bits_int"],
    "2026-12-04 night terms, the fabric $macc's full adders as maccmap lays them out": [
        *_ENGINE_TERMS_2026_12_04, "mult_measured_sparse", "macc_fa"],
    "the standalone multiplier formula scaled by one coefficient, the rest of 2026-12-04 night": [
        "const", "mult_measured", "mult_formula", *_REST_TERMS, *_STRUCTURE_TERMS],
    "the multiplier formula fitted on the standalone multipliers (primitives.csv), dense and sparse apart": [
        "const", "mult_lut_dense", "mult_lut_sparse", *_REST_TERMS, *_STRUCTURE_TERMS],
    "2026-12-04 night terms + a constant for sparse engines": LUT_TERMS + ["sparse_const"],
    "2026-12-04 night terms, the index mux as one LUT6 count (standalone IndexMux LUT6 per bit by m)": [
        t for t in LUT_TERMS if not t.startswith("mux_bits_m")] + ["mux_lut6"],
}
#: FF is counted, not fitted: the structural register bits minus those Yosys packs into DSP48s
FF_TERMS = ["ff_struct"]


class ResourceModelError(ValueError):
    """No coefficients for a target, or a damaged coefficients file; the message names the fix."""


# ---- multiplier primitive -------------------------------------------------------------------


def _mult_terms(props: dict) -> np.ndarray:
    """The multiplier formula's terms (:data:`MULT_TERMS`) of one format pair: a LUT array
    multiplier's partial-product bits ``A·B`` and ``A·B·(min(A, B) - 1)`` (its adder depth; 0 in
    a DSP); for a minifloat pair the significand product ``A·B`` (0 in a DSP), the aligner's
    log-shifter mux bits, the negation (product bits), the integer operand's magnitude (its code
    bits) and a constant. Chosen by leave-one-out over ``primitives.csv``."""
    a, b = props["mul_a"], props["mul_b"]
    lut_mul = a * b * (props["mult_dsp"] == 0)
    if props["mf"]:
        return np.array([0.0, 0.0, lut_mul, props["shifter_bits"], props["prod_bits"], props["mf_int_bits"], 1.0])
    return np.array([lut_mul, lut_mul * (min(a, b) - 1), 0.0, 0.0, 0.0, 0.0, 0.0])


#: the standalone multiplier syntheses a target reads: xcup maps a LUT multiplier exactly as xc7
#: (same LUT6 / CARRY fabric and the same synth_xilinx script: every stored engine without DSPs
#: synthesizes to the same LUT and FF count for both, ``tests/costmodel/test_resources.py``); the
#: same map says whose fit a family falls back to (:func:`model_for`, :func:`reuse_swa`)
PRIMITIVES_OF = {"xcup": "xc7"}
#: Xilinx families fitted together: one set of fabric coefficients (LUTs per adder bit, per
#: multiplier, per mux LUT6), each family with its own DSP48 packing rule (:func:`design_matrix`)
#: and its own measured errors
XILINX_TARGETS = ("xc7", "xcup")


def _primitive_table(target: str) -> dict[tuple[str, str], float]:
    """Measured multiplier LUTs per format pair, operand-order free: ``hw.arith.multiplier(w, a)``
    and ``multiplier(a, w)`` are the same circuit up to the order of the ``$mul`` / ``$add``
    operands (:class:`hw.arith.IntMultiplier`: ``w * a``; :class:`hw.arith.MinifloatMultiplier`:
    decoders of both operands, ``wdec.mag * adec.mag``, ``wdec.shift + adec.shift``; the product
    width and alignment are symmetric), so both orders get the mean of every stored synthesis of
    either order (Yosys/ABC differ by a few LUTs between orders: ``data/primitives.csv``,
    :data:`costmodel.calibrate.ORDER_PAIRS`)."""
    p = _read_csv(PRIMITIVES_CSV)
    p = p[p["target"] == PRIMITIVES_OF.get(target, target)]
    runs: dict[tuple[str, str], list[float]] = {}
    for w, a, l in zip(p["wfmt"], p["afmt"], p["lut"]):
        runs.setdefault(_pair_key(w, a), []).append(float(l))
    out = {}
    for (w, a), ls in runs.items():
        out[(w, a)] = out[(a, w)] = float(np.mean(ls))
    return out


def _pair_key(w: str, a: str) -> tuple[str, str]:
    """The operand-order-free key of a format pair (sorted names)."""
    return (w, a) if w <= a else (a, w)


def fit_multiplier(target: str = "xc7") -> dict:
    """Fit the multiplier LUT formula on ``primitives.csv`` (relative-error NNLS), on the
    syntheses of ``PRIMITIVES_OF[target]`` (xcup: xc7's); a fresh copy of one fit per table."""
    fit = _fit_multiplier(target, _file_stamp(PRIMITIVES_CSV))
    return {**fit, "terms": list(fit["terms"]), "coef": list(fit["coef"])}


@lru_cache(maxsize=None)
def _fit_multiplier(target: str, stamp: tuple) -> dict:
    p = _read_csv(PRIMITIVES_CSV)
    p = p[p["target"] == PRIMITIVES_OF.get(target, target)]
    X = np.array([_mult_terms(pair_props(w, a, target)) for w, a in zip(p["wfmt"], p["afmt"])])
    y = p["lut"].to_numpy(dtype=float)
    coef = _nnls_rel(X, y, floor=4.0)
    pred = X @ coef
    rel = np.abs(pred - y) / np.maximum(y, 1.0)
    return {"terms": MULT_TERMS, "coef": coef.tolist(), "rows": int(len(y)),
            "median_rel_err": float(np.median(rel)) if len(y) else None}


def mult_lut(wfmt: str, afmt: str, target: str, mult_coef: dict | None) -> float:
    """LUTs of one multiplier: measured (primitives.csv, either operand order) when available,
    else the formula; the same for (wfmt, afmt) and (afmt, wfmt)."""
    table = _cached_primitive_table(target)
    if (wfmt, afmt) in table:
        return table[(wfmt, afmt)]
    if mult_coef is None:
        return 0.0
    return float(_mult_terms(pair_props(wfmt, afmt, target)) @ np.asarray(mult_coef["coef"]))


@lru_cache(maxsize=None)
def _cached_primitive_table(target: str) -> dict:
    try:
        return _primitive_table(target)
    except FileNotFoundError:
        return {}


def _curve_table(target: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Each format pair's multiplier alone under abc9 delay targets (``data/mult_curves.csv``,
    ``python -m costmodel.calibrate mult-curves``): the targets (ns, ascending) and the mean LUT
    sites at each, both operand orders, for every pair whose whole curve is stored (every
    :data:`~costmodel.store.CURVE_DELAYS_PS` and the area form) or whose area form alone is stored
    and is no smaller than its delay form (a flat curve: no more to measure); empty for a family
    with none."""
    return _parsed_curves(_file_stamp(MULT_CURVES_CSV), target) if MULT_CURVES_CSV.exists() else {}


@lru_cache(maxsize=8)
def _parsed_curves(stamp: tuple, target: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    c = _parsed_csv(stamp)
    c = c[c["target"] == target]
    delay_form = _cached_primitive_table(target)
    whole = {*CURVE_DELAYS_PS, AREA_DELAY_PS}
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for (w, a), g in c.groupby([c["wfmt"].where(c["wfmt"] <= c["afmt"], c["afmt"]),
                                c["afmt"].where(c["wfmt"] <= c["afmt"], c["wfmt"])]):
        mean = g.groupby("delay_ps")["lut"].mean()
        flat = set(mean.index) == {AREA_DELAY_PS} and mean.iloc[0] >= delay_form.get((w, a), np.inf) - CURVE_FLAT_LUTS
        if whole <= set(mean.index) or flat:
            out[(w, a)] = out[(a, w)] = (mean.index.to_numpy(dtype=float) / 1000.0, mean.to_numpy(dtype=float))
    return out


def mult_luts_at(pairs: Sequence[tuple[str, str]], pair_id: np.ndarray, budget_ns: np.ndarray,
                 measured: np.ndarray, target: str) -> np.ndarray:
    """LUTs of each row's multiplier when abc9 may let it take ``budget_ns`` (ns; 0: mapped for
    delay): its curve (:func:`_curve_table`) interpolated between the stored delay targets, from
    its delay form ``measured`` (``primitives.csv``) at 0; ``measured`` itself for a pair with no
    curve stored (every family but ECP5)."""
    curves = _curve_table(target)
    out = np.asarray(measured, dtype=float).copy()
    if not curves:
        return out
    budget = np.asarray(budget_ns, dtype=float)
    given = np.flatnonzero(budget > 0)
    given = given[np.argsort(pair_id[given], kind="stable")]  # the rows with a budget, by pair
    ids, starts = np.unique(pair_id[given], return_index=True)
    for i, rows in zip(ids, np.split(given, starts[1:])):
        if pairs[i] in curves:
            ns, luts = curves[pairs[i]]
            out[rows] = np.interp(budget[rows], np.r_[0.0, ns], np.r_[out[rows[0]], luts])
    return out


def mult_forms(f: pd.DataFrame, pairs: Sequence[tuple[str, str]], target: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a :func:`costmodel.features.frame_features` frame ``f`` (format ``pairs`` by its
    ``pair_id``), ECP5: the multipliers' budget (ns, :func:`costmodel.latency.multiplier_budget_ns`),
    one multiplier's delay form (LUT sites, ``primitives.csv``; NaN where not measured) and its
    curve at that budget (:func:`mult_luts_at`)."""
    pid = f["pair_id"].to_numpy()
    table = _cached_primitive_table(target)
    delay = np.array([table.get(p, np.nan) for p in pairs], dtype=float)[pid]
    budget = multiplier_budget_ns(f)
    return budget, delay, mult_luts_at(pairs, pid, budget, delay, target)


#: a multiplier's curve "acts" where it leaves under this share of the delay form
CURVE_ACTS = 0.95


def mult_curve_state(f: pd.DataFrame, pairs: Sequence[tuple[str, str]], target: str) -> np.ndarray:
    """Per row of a :func:`costmodel.features.frame_features` frame ``f`` (format ``pairs`` by its
    ``pair_id``): 1 where abc9 gives the multipliers slack and their curve prices them under
    :data:`CURVE_ACTS` of their delay form, 2 where they have slack but no curve is stored for the
    pair (a minifloat or LUT multiplier: priced at its delay form), else 0 (every family but ECP5)."""
    out = np.zeros(len(f), dtype=np.int64)
    if target != "ecp5":
        return out
    budget, delay, at = mult_forms(f, pairs, target)
    share = at / np.maximum(delay, 1e-9)
    curves = _curve_table(target)
    stored = np.array([p in curves for p in pairs], dtype=bool)[f["pair_id"].to_numpy()]
    curvable = (f["mf"].to_numpy() > 0) | (f["mult_dsp"].to_numpy() == 0)
    return np.where(budget > 0, np.where(stored, (share < CURVE_ACTS).astype(np.int64), 2 * curvable), 0)


@lru_cache(maxsize=None)
def _lane_table(target: str, carry_cells: bool = True) -> dict[tuple[str, str, int], float]:
    """Measured LUTs of one sparse lane alone (``data/lanes.csv``: an m:1 index mux feeding the
    multiplier, :class:`costmodel.calibrate.SparseLane`) per (w, a, m), the mean of every stored
    run; the family's own syntheses (``PRIMITIVES_OF`` as for multipliers); empty without the
    table. LUT sites; ``carry_cells=False``: the LUT cells alone (the carry cells' sites left out:
    what a wider index mux adds to)."""
    if not LANES_CSV.exists():
        return {}
    source = PRIMITIVES_OF.get(target, target)
    p = _read_csv(LANES_CSV)
    p = p[p["target"] == source]
    if not carry_cells:
        p = p.assign(lut=p["lut"] - lut_sites(0, p["carry"].fillna(0), source))
    return {(w, a, int(m)): float(v) for (w, a, m), v in p.groupby(["wfmt", "afmt", "m"])["lut"].mean().items()}


def lane_luts(pairs: Sequence[tuple[str, str]], pair_id: np.ndarray, m: np.ndarray, target: str,
              carry_cells: bool = True) -> np.ndarray:
    """LUTs of each row's sparse lane measured alone (``data/lanes.csv``; format pair
    ``pairs[pair_id]``, index mux ``m``:1), NaN where none is stored (a dense row: ``m`` 0);
    ``carry_cells`` as :func:`_lane_table`'s."""
    table = _lane_table(target, carry_cells)
    m = np.asarray(m).astype(np.int64)
    span = int(m.max(initial=0)) + 1
    combo, inv = np.unique(np.asarray(pair_id).astype(np.int64) * span + m, return_inverse=True)
    return np.array([table.get((*pairs[int(c) // span], int(c) % span), np.nan) for c in combo])[inv.reshape(-1)]


#: the 16:1 / 8:1 ratio of a minifloat lane's LUT cells measured alone (``data/lanes.csv``; carry
#: cells left out: a wider mux adds none) from which abc9 mapped the lone lane's 16:1 index mux
#: for delay. ECP5's ratios are bimodal (2,263 lanes: a mode at 1.1-1.3, a trough at 2.1 with 8
#: lanes in 2.1-2.2, a second mode at 2.3-2.4); 295 of the 314 lanes from the trough up have an
#: e1mX operand, a multiplier so small that the mux is the lone lane's critical path (e1m4 x e1m4:
#: 62 LUT4 at 8:1, 177 at 16:1). 5-fold CV of the ECP5 fit over the threshold: 1.8 / 2.1 / 2.4:
#: 0.800 / 0.796 / 0.808 (0.816 without)
LONE_MUX16_DELAY_MAPPED = 2.1


def mux_bound_lanes(pairs: Sequence[tuple[str, str]], pair_id: np.ndarray, m: np.ndarray,
                    target: str) -> np.ndarray:
    """ECP5 (abc9's view): rows whose sparse lane is a minifloat one at 16:1 with its significand
    product in a DSP whose mux abc9 mapped for delay when the lane was measured alone (its LUT
    cells at 16:1 at least :data:`LONE_MUX16_DELAY_MAPPED` × those at 8:1): the lane's excess over
    its multiplier is its mux, as an int × int lane's, and the mux's form in the engine follows the
    engine's slack (``latency.mux16_form``). False elsewhere and on every other family."""
    m = np.asarray(m).astype(np.int64)
    if target != "ecp5" or not (m == 16).any():
        return np.zeros(len(m), dtype=bool)
    at16 = np.where(m == 16, 16, 0)
    c16 = lane_luts(pairs, pair_id, at16, target, carry_cells=False)
    c8 = lane_luts(pairs, pair_id, at16 // 2, target, carry_cells=False)
    props = [pair_props(w, a, target) for w, a in pairs]
    mf_dsp = np.array([bool(pp["mf"]) and pp["mult_dsp"] > 0 for pp in props], dtype=bool)[np.asarray(pair_id)]
    with np.errstate(invalid="ignore"):
        return mf_dsp & (m == 16) & (c16 >= LONE_MUX16_DELAY_MAPPED * c8) & (c8 > 0)


def index_mux_form(f: pd.DataFrame, pairs: Sequence[tuple[str, str]], target: str) -> np.ndarray:
    """``latency.mux16_form`` of each row of a :func:`costmodel.features.frame_features` frame ``f``
    (format ``pairs`` by its ``pair_id``), the minifloat lanes of :func:`mux_bound_lanes` included."""
    bound = mux_bound_lanes(pairs, f["pair_id"].to_numpy(), f["mux_m"].to_numpy(), target)
    return mux16_form(f, target, bound)


#: the LUT terms that price a sparse engine's index mux (and its multipliers apart): a lane model
#: (:func:`lane_terms`) prices a measured lane by its own terms (:data:`LANE_MODELS`) instead
LANE_PRICED = ("mux_bits_m2", "mux_bits_m4", "mux_bits_m8", "mux_bits_m16", "mux_lut6", "mux_macc", "mux_intlut",
               "mux_bits_mf", "mux_bits_int", "mult_measured_sparse")
#: the lane models a fit is offered, by what each adds to its fallback's name: the measured lane's
#: LUTs over its multiplier's (``lane_excess``) at one coefficient; or an int × int lane's at one
#: coefficient per m (its excess is the m:1 mux alone, and inside an engine ABC maps a wide mux more
#: tightly than alone: 5 LUT6 per 16:1 bit against 8, ``data/muxes.csv``) and a lane with a
#: minifloat operand at one of its own (``lane_excess_mux_m*``, ``lane_excess_mf``; on ECP5 a
#: minifloat lane whose lone mux abc9 mapped for delay is priced as its mux too, :func:`mux_bound_lanes`)
LANE_MODELS = {", the sparse lanes measured alone where stored": ("lane_excess",),
               ", the sparse lanes measured alone where stored, a lane whose excess is its index mux by its m": (
                   "lane_excess_mux_m2", "lane_excess_mux_m4", "lane_excess_mux_m8", "lane_excess_mux_m16",
                   "lane_excess_mux_m16_delay_mapped", "lane_excess_mf")}
#: lane terms priced at coefficient 1, never fitted: an ECP5 int × int 16:1 lane whose mux abc9
#: maps wholly for delay costs what it costs alone (design_matrix; bench/abc9_slack.py: the 9 stored
#: such engines within ±0.6 %, fresh ones too). A fit leaves out one that none of its rows carries
FIXED_TERMS = ("lane_excess_mux_m16_delay_mapped",)


#: the fewest fitted rows on which each of a lane model's own terms must be non-zero for the model
#: to be a candidate: a coefficient fitted on fewer (ECP5 int × int lanes at 8:1: none, most
#: crash Yosys) would price those lanes by chance
MIN_LANE_TERM_ROWS = 10


def lane_model_of(name: str) -> tuple[str, ...] | None:
    """The lane terms (a :data:`LANE_MODELS` value) a candidate's ``name`` ends with; None for a
    candidate without a lane model."""
    return next((own for suffix, own in LANE_MODELS.items() if name.endswith(suffix)), None)


def lane_terms(terms: list[str], own: Sequence[str]) -> list[str]:
    """The lane model of LUT ``terms``: the index mux's terms (:data:`LANE_PRICED`) dropped, the
    measured lane's terms ``own`` (a :data:`LANE_MODELS` value) added. It prices dense engines and
    sparse engines whose lane is stored in ``data/lanes.csv``; ``terms`` the others."""
    return [t for t in terms if t not in LANE_PRICED] + list(own)


def with_fixed(fitter, terms: Sequence[str]):
    """``fitter`` (one of :data:`LUT_FITS`, which take an ``offset``) over the columns ``terms`` with
    the :data:`FIXED_TERMS` among them at coefficient 1: the others fitted to the LUTs less those
    terms' (each row's error still relative to all its LUTs)."""
    fixed = np.isin(list(terms), FIXED_TERMS)
    if not fixed.any():
        return fitter

    def fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
        coef = np.ones(X.shape[1])
        coef[~fixed] = fitter(X[:, ~fixed], y, offset=X[:, fixed].sum(1))
        return coef
    return fit


def with_lane_model(lut: dict, matrix, applies: np.ndarray, y: np.ndarray, fitter, own: Sequence[str]) -> dict:
    """``lut`` (``{"lut": {"terms", "coef"}}``) with a lane model on top: :func:`lane_terms` of its
    terms and ``own`` fitted by ``fitter`` on the ``applies`` rows (dense engines, sparse ones
    whose lane is measured) as ``"lut"``, ``lut``'s own fit as ``"lut_lane_unmeasured"``;
    ``matrix(terms)`` is the LUT design matrix of the fitted rows, ``y`` their LUTs. A
    :data:`FIXED_TERMS` term is priced at 1 where a fitted row carries it, else left out."""
    own = [t for t in own if t not in FIXED_TERMS or matrix([t])[applies].any()]
    terms = lane_terms(lut["lut"]["terms"], own)
    return {"lut": {"terms": terms, "coef": with_fixed(fitter, terms)(matrix(terms)[applies], y[applies]).tolist(),
                    "rows": "dense engines and sparse engines whose lane is stored in lanes.csv"},
            "lut_lane_unmeasured": {**lut["lut"], "rows": "sparse engines whose lane is not stored"}}


def _lane_oof(matrix, applies: np.ndarray, y: np.ndarray, fold: np.ndarray, fitter, terms: list[str],
              parts: Sequence[np.ndarray], fallback_oof: np.ndarray, own: Sequence[str]) -> np.ndarray:
    """Out-of-fold LUTs of the lane model (``terms`` with lane terms ``own``, fitted on the
    ``applies`` rows of each of ``parts``) on the rows it prices, ``fallback_oof`` (those of
    ``terms``) on the others."""
    lane_cols = lane_terms(terms, own)
    lane = _out_of_fold(matrix(lane_cols), y, fold, with_fixed(fitter, lane_cols), [p & applies for p in parts])
    return np.where(applies, lane, fallback_oof)


def score_lane_model(rows: pd.DataFrame, matrix, applies: np.ndarray, chosen: str, terms: list[str], fitter,
                     parts: Sequence[np.ndarray], scores: dict, oof: dict) -> str:
    """Add every lane model (:data:`LANE_MODELS`) of the chosen candidate (``chosen``: ``terms``,
    ``fitter``, fitted on ``parts``) to a :func:`select_lut_fit` result (``scores``, ``oof``, name
    ``chosen`` + the model's suffix; those whose own terms are non-zero on at least
    :data:`MIN_LANE_TERM_ROWS` ``applies`` rows each) and return whichever has the least goal
    score, ``chosen`` included."""
    y = rows["lut"].to_numpy(dtype=float)
    fold, drawn = cv_fold(config_ids(rows)), _drawn(rows)
    names = [chosen]
    for suffix, own in LANE_MODELS.items():
        fitted = [t for t in own if t not in FIXED_TERMS]
        if (np.count_nonzero(matrix(fitted)[applies], axis=0) < MIN_LANE_TERM_ROWS).any():
            continue
        name = chosen + suffix
        oof[name] = _lane_oof(matrix, applies, y, fold, fitter, terms, parts, oof[chosen], own)
        scores[name] = goal_score(rows[drawn], oof[name][drawn])
        names.append(name)
    return min(names, key=scores.get)


# ---- engine design matrices -----------------------------------------------------------------


def design_matrix(df: pd.DataFrame, target: str, mult_coef: dict | None,
                  features: tuple[pd.DataFrame, list] | None = None,
                  lut_terms: list[str] | None = None) -> dict[str, np.ndarray]:
    """LUT and FF design matrices (columns ``lut_terms``, default :data:`LUT_TERMS`, and
    :data:`FF_TERMS`) and the DSP count of every config row; ``features`` =
    ``frame_features(..., return_pairs=True)``. ``lut_columns`` holds every candidate LUT term
    (the menu of :data:`CANDIDATES`)."""
    f, pairs = frame_features(df, target, return_pairs=True) if features is None else features
    per_pair = np.array([mult_lut(w, a, target, mult_coef) for w, a in pairs], dtype=float)
    pid = f["pair_id"].to_numpy()
    ml = per_pair[pid]
    # the multiplier formula's terms per pair (MULT_TERMS), and whether the pair was synthesized
    # alone (primitives.csv): candidates that fit the formula on whole engines instead
    table = _cached_primitive_table(target)
    measured = np.array([(w, a) in table for w, a in pairs], dtype=bool)[pid]
    props = [pair_props(w, a, target) for w, a in pairs]
    mterms = np.array([_mult_terms(pp) for pp in props],
                      dtype=float).reshape(-1, len(MULT_TERMS))[pid]
    ml_measured = np.array([table.get((w, a), 0.0) for w, a in pairs], dtype=float)[pid]
    # ECP5: with a register right after them, abc9 recovers area on the multipliers down to what
    # the slowest run of adders leaves them (their curve at that budget, mult_luts_at)
    ml_budget = mult_luts_at(pairs, pid, multiplier_budget_ns(f), ml_measured, target) if target == "ecp5" \
        else ml_measured
    lanes = f["lanes"].to_numpy(dtype=float)
    dspm = f["mult_dsp"].to_numpy() > 0
    # DSP48s take whole int × int products (and a cascade absorbs the first adder level); a
    # minifloat's significand product in a DSP still goes through the LUT aligner and tree
    mf = f["mf"].to_numpy() > 0
    int_dsp = dspm & ~mf
    sparse = f["mux_m"].to_numpy() > 0
    tree = f["tree_bits"].to_numpy(dtype=float)
    pipe = f["pipeline"].to_numpy()
    acc = f["acc_bits"].to_numpy()
    # Yosys packs into the DSP48s of int × int multipliers, on xc7 only (on xcup every adder and
    # register stays in the fabric: its syntheses equal xc7's LUT for LUT, FF for FF on every
    # engine without DSPs, and differ exactly there, data/doe_calibration.csv): the first adder
    # level (P = A·B + C), a whole unpipelined tree (one $macc), and the accumulator (P = P + …,
    # when it fits 48 bits) with a single lane, or with no pipeline for a native signed product
    # (``native_product``: a zero-extended unsigned or a truncated narrow product is not
    # accumulated across a DSP48 cascade)
    packs = target == "xc7"
    tree_dsp = int_dsp & packs
    acc_in_dsp = tree_dsp & (acc <= 48) & ((lanes == 1) | ((pipe == 0) & (f["native_product"].to_numpy() > 0)))
    tree_reg = f["tree_reg"].to_numpy(dtype=float)
    tree_l1 = f["tree_l1"].to_numpy(dtype=float)
    l1_reg = f["l1_reg"].to_numpy() > 0
    dsp_pipe = tree_dsp & (pipe > 0)
    # int × int LUT multipliers with no register after them (pipeline 0): Yosys alumacc merges
    # the multipliers and the adder tree into one $macc, mapped as a full-adder compressor of
    # the lanes · A · B partial-product bits (extra LUTs on top of the separate-multiplier cost)
    # (sparse: the index mux then feeds the partial products; ABC maps it into the compressor's
    # LUTs at about twice its standalone cost, hence mux_macc)
    int_lut = (~dspm) & ~mf
    int_lut_macc = int_lut & (pipe == 0)
    ab_bits = lanes * f["mul_a"].to_numpy(dtype=float) * f["mul_b"].to_numpy(dtype=float)
    mux6 = f["mux_lut6"].to_numpy(dtype=float)
    fabric_reg = tree_reg * ~tree_dsp + (tree_reg - tree_l1 * l1_reg) * dsp_pipe  # adder bits in LUTs,
    fabric_comb = (tree - tree_reg) * ~tree_dsp + (tree - tree_reg - tree_l1 * ~l1_reg) * dsp_pipe  # by regime
    cols = {
        "const": np.ones(len(f)), "mult_lut_dense": lanes * ml * ~sparse, "mult_lut_sparse": lanes * ml * sparse,
        "tree_bits_reg": tree_reg * ~tree_dsp, "tree_bits_comb": (tree - tree_reg) * ~tree_dsp,
        "tree_bits_intdsp_nopipe": tree * (tree_dsp & (pipe == 0)),
        "tree_bits_intdsp_l1comb": tree * (dsp_pipe & ~l1_reg), "tree_bits_intdsp_l1reg": tree * (dsp_pipe & l1_reg),
        "acc_bits": acc * ~acc_in_dsp, "mux_lut6": mux6, "mux_macc": mux6 * int_lut_macc,
        "macc_pp_bits": ab_bits * int_lut_macc,
        "mult_measured": lanes * ml_budget,
        # the multiplier formula fitted on primitives.csv, where the pair was not synthesized alone
        "mult_formula": lanes * ml * ~measured,
        **{f"mult_{t}": lanes * mterms[:, j] * ~measured for j, t in enumerate(MULT_TERMS)},
        # only the first adder level of a pipelined DSP tree packs into the DSP48s (P = A·B + C)
        "tree_l1_intdsp_pipe": tree_l1 * dsp_pipe,
        # the fabric's adders and accumulator, minifloat engines apart (they add aligned, mostly
        # sparse words) from integer ones
        "tree_bits_reg_mf": fabric_reg * mf, "tree_bits_comb_mf": fabric_comb * mf, "acc_bits_mf": acc * mf,
        "tree_bits_reg_int": fabric_reg * ~mf, "tree_bits_comb_int": fabric_comb * ~mf,
        "acc_bits_int": acc * ~acc_in_dsp * ~mf,
        # a minifloat's significand product in a DSP where Yosys packs nothing around it (xcup)
        "mf_dsp_nopack": lanes * f["prod_bits"].to_numpy(dtype=float) * (dspm & mf & ~packs),
        # candidates the cross-validation weighed and left out (CANDIDATES)
        "sparse_const": sparse.astype(float),
        # a minifloat engine's combinational fabric adders and accumulator apart for significand
        # products in DSPs (the aligner's shifter and negation stand between the DSP's product and
        # the adders) and in LUTs (ABC maps the aligner and the adders' first bits together)
        "tree_bits_comb_mf_dsp": fabric_comb * mf * dspm, "tree_bits_comb_mf_lut": fabric_comb * mf * ~dspm,
        "acc_bits_mf_dsp": acc * mf * dspm, "acc_bits_mf_lut": acc * mf * ~dspm,
        # candidates the cross-validation weighed and left out (CANDIDATES): the registered
        # fabric adders of minifloat engines apart the same way, the index mux's selected bits
        # apart for minifloat and integer engines
        "tree_bits_reg_mf_dsp": fabric_reg * mf * dspm, "tree_bits_reg_mf_lut": fabric_reg * mf * ~dspm,
        # the measured multipliers of sparse engines (behind the index mux) at their own
        # coefficient (shipped: the mux's last level and the multiplier's first LUTs map together)
        "mult_measured_sparse": lanes * ml_measured * sparse,
        "mux_bits_mf": lanes * f["ab"].to_numpy(dtype=float) * sparse * mf,
        "mux_bits_int": lanes * f["ab"].to_numpy(dtype=float) * sparse * ~mf,
        # an unpipelined tree of int × int DSP products where Yosys packs none of it into the
        # DSPs (xcup; ECP5's MULT18X18D): the products, the adders and the accumulator's adder are
        # one $macc in the fabric (maccmap's compressor, not carry-chain adders)
        "tree_intdsp_nopack_p0": tree * (int_dsp & ~packs & (pipe == 0)),
        # product bits summed with no pipeline register (a Lattice candidate: ECP5's calibration
        # rows had 5-fold CV residuals of −20 % on every pipeline-0 group; iCE40's none)
        "prod_bits_comb": lanes * f["prod_bits"].to_numpy(dtype=float) * (pipe == 0),
        # index-mux bits (lanes · abits) per m: in an engine ABC maps a wide mux more tightly
        # than the standalone IndexMux syntheses (16:1: ~5 LUT6 per bit instead of 8)
        **{f"mux_bits_m{mm}": lanes * f["ab"].to_numpy(dtype=float) * (f["mux_m"].to_numpy() == mm)
           for mm in (2, 4, 8, 16)},
    }
    # the DSP48 cascade folds an unpipelined tree only of products at the $mul's full width
    # (``full_product``): a mixed-sign or a narrow format's truncated product is sign-extended
    # from a bit below the DSP48's own product, so its adders stay in the fabric (their own
    # coefficient: plain carry-chain adders of DSP outputs). Calibration rows, pipeline 0, xc7:
    # 40 lanes uint7 × uint7 take 51 LUT, 57 lanes int3n × uint7 597, 8 lanes int7n × int7n 104
    full = f["full_product"].to_numpy() > 0
    fold, nofold = tree_dsp & full & (pipe == 0), tree_dsp & ~full & (pipe == 0)
    cols["tree_bits_intdsp_fold"] = tree * fold
    cols["tree_bits_intdsp_nofold"] = tree * nofold
    # alumacc merges a $mul into the accumulator's $macc only when the product reaches the adders
    # at its full width: a truncated product (mixed sign, narrow formats) stays a $mul of its own
    merge = int_lut_macc & full
    cols["macc_pp_full"] = ab_bits * merge
    cols["macc_pp_trunc"] = ab_bits * (int_lut_macc & ~full)
    # maccmap sign-extends a signed product's wider operand (A bits) to the $macc's width (the
    # accumulator's, W bits) and adds one partial-product row per bit i of the narrower (B bits):
    # sum over i < B of (W - A - i) sign-extension bits per lane on top of the A·B ones
    a_op = np.maximum(f["mul_a"].to_numpy(), f["mul_b"].to_numpy())
    b_op = np.minimum(f["mul_a"].to_numpy(), f["mul_b"].to_numpy())
    ext = sum(np.maximum(acc - a_op - i, 0) * (i < b_op) for i in range(int(b_op.max(initial=0))))
    cols["macc_signext"] = lanes * ext * (merge & (f["unsigned_product"].to_numpy() == 0))
    # an accumulator packed into a DSP48's P register still costs one LUT per bit in the fabric
    # (every such dense xc7 calibration engine synthesizes to acc_bits + 4 LUTs);
    # without this term the constant took it (22 LUTs), over-estimating every tiny engine
    cols["acc_bits_intdsp"] = acc * acc_in_dsp
    # an index mux feeding int × int LUT multipliers, at any pipeline depth: each selected bit
    # drives B partial products, and ABC keeps the mux's LUTs apart from the multiplier's (a
    # minifloat's decoder absorbs it; the mux_bits_m* coefficients average over both)
    cols["mux_intlut"] = mux6 * int_lut
    # Yosys alumacc merges the adder levels after the last pipeline register and the
    # accumulator's adder into one $macc, and maccmap sign-extends each of its operands to the
    # accumulator's width (``macc_signext_bits``): full adders on the replicated sign bits, for
    # a signed product (an unsigned one extends a constant 0: nothing to add), where that $macc
    # lies in the fabric: integer engines, except a tree the DSP48 cascade folds and the LUT
    # multipliers' own $macc at pipeline 0 (their partial products: ``macc_signext``)
    cols["macc_signext_fabric"] = (f["macc_signext_bits"].to_numpy(dtype=float) * (~mf & ~fold & ~int_lut_macc)
                                   * (f["unsigned_product"].to_numpy() == 0))
    # that fabric $macc's full adders (a Lattice candidate): maccmap reduces its operands (the
    # ``macc_terms`` terms after the last pipeline register, each sign-extended to the
    # accumulator's width, and the accumulator) to two rows with full adders, (terms - 1) ·
    # acc_bits of them for a signed product (an unsigned one extends constant 0s: nothing to
    # add), before one carry-chain adder. On ECP5 a carry-chain adder's sum bits are CCU2C cells,
    # no LUT4, but each full adder takes LUT4s (sum and carry): the ECP5 calibration engine int4 ×
    # int4, 4 lanes (MULT18X18D products) takes 110 LUT4 at pipeline 0 and 1 (four terms and the
    # accumulator in one $macc) and 20 at pipeline 3 (one term: a CCU2C adder); on LUT6 / SB_CARRY
    # fabrics the adder terms price most of it (5-fold CV: on xc7 a gain only together with
    # ``mult_measured_sparse``)
    terms_in = f["macc_terms"].to_numpy(dtype=float)
    cols["macc_fa_signed"] = (np.maximum(terms_in - 1, 0) * acc * (~fold & ~int_lut_macc)
                              * (f["unsigned_product"].to_numpy() == 0))
    # the same full adders counted as maccmap lays them out (a candidate of every family;
    # features.macc_full_adders): an unsigned tree's terms too, each at its own width, their
    # constant top bits taking none (ECP5, seed-4 held-out draw, 28 lanes uint6 x uint6, pipeline
    # 1: 1,079 LUT sites, 28 % under the terms above, which price its 28-term $macc at nothing)
    cols["macc_fa"] = f["macc_fa_bits"].to_numpy(dtype=float) * (~fold & ~int_lut_macc)
    # the $maccs of 5 or more terms (3+ rounds of full adders) in front of the pipeline registers
    # (features.inner_macc_adders, DEEP_MACC_TERMS; a Lattice candidate): their full adders, on top
    # of the tree's adders or in place of the adders merged into them (those are no carry-chain
    # adders of their own). ECP5, 5-fold CV: int × int DSP engines at pipeline 2 whose last
    # register follows an 8- or 16-term $macc were 19-29 % under without them (21 lanes int8 ×
    # int8: 343 full-adder bits, 285 of them in front of the register)
    int_fabric = ~tree_dsp & ~mf  # an integer tree whose adders lie in the fabric
    cols["deep_macc_fa"] = f["deep_macc_fa_bits"].to_numpy(dtype=float) * int_fabric
    cols["tree_bits_comb_int_unmerged"] = (cols["tree_bits_comb_int"]
                                           - f["deep_macc_merged_bits"].to_numpy(dtype=float) * int_fabric)
    # the minifloat aligners' shifter mux bits in front of an unpipelined multi-operand sum (a
    # Lattice candidate): synth_ecp5 maps LUTs with abc9, which maps for delay, and duplicates the
    # aligners' logic that feeds the $macc's full adders and the carry chain behind them. ECP5,
    # 2 lanes e7m0 × uint3: 2,912 LUT4 at pipeline 0 and 1,199 at pipeline 1 from the same gates
    # before LUT mapping; with abc -lut 4 (area) in place of abc9, 1,199 at pipeline 0 too; one
    # lane (no multi-operand sum): 526 and 530
    shifter = np.array([pp["shifter_bits"] for pp in props], dtype=float)[pid]
    cols["aligner_dup_p0"] = lanes * shifter * (pipe == 0) * (f["macc_terms"].to_numpy() >= 2)
    # an unpipelined DSP tree of truncated products (not folded): its first level in the DSP48
    # post-adders (P = A·B + C, as in a pipelined tree: fitted near 0.1 LUT/bit), the rest in the
    # fabric (near 1 LUT/bit)
    cols["tree_l1_intdsp_nofold"] = tree_l1 * nofold
    cols["tree_rest_intdsp_nofold"] = (tree - tree_l1) * nofold
    # a sparse lane (m:1 index mux + multiplier) measured alone: its LUTs over the multiplier's per
    # lane, in place of the mux terms (ECP5: abc9 maps a lane at up to twice its mux and multiplier
    # alone, by format pair and m: e2m2 x e2m2 8:1 1.94 x, e4m3 x e4m3 1.04 x, bench/sparse_lane.py)
    lane = lane_luts(pairs, pid, f["mux_m"].to_numpy(), target)
    measured_lane = sparse & ~np.isnan(lane)
    cols["lane_excess"] = np.where(measured_lane, lanes * (np.nan_to_num(lane) - ml), 0.0)
    # the same apart by operand kind, a lane whose excess is its m:1 mux alone per m (LANE_MODELS):
    # an int × int lane's (its multiplier's LUTs are the DSP's glue or a LUT multiplier's), and on
    # ECP5 a minifloat lane's whose lone mux abc9 mapped for delay (mux_bound_lanes)
    # ECP5: abc9 maps such an engine's 16:1 index mux wholly for delay (2 levels of LUT6, as
    # alone) where even its next faster form would be slower than the slowest other segment abc9
    # sees, and recovers area where it has slack (latency.mux16_form; bench/abc9_slack.py): those
    # lanes apart, priced at their standalone cost (FIXED_TERMS)
    bound = mux_bound_lanes(pairs, pid, f["mux_m"].to_numpy(), target)
    delay_mapped = mux16_form(f, target, bound) == 2
    mux_lane = ~mf | bound
    for m_ in LANE_MS:
        cols[f"lane_excess_mux_m{m_}"] = cols["lane_excess"] * (mux_lane & (f["mux_m"].to_numpy() == m_) & ~delay_mapped)
    cols["lane_excess_mux_m16_delay_mapped"] = cols["lane_excess"] * delay_mapped
    cols["lane_excess_mf"] = cols["lane_excess"] * ~mux_lane
    lut = np.column_stack([cols[t] for t in (LUT_TERMS if lut_terms is None else lut_terms)])
    # Yosys packs into DSP48 registers, for int × int DSP multipliers: the registers after the
    # multipliers (MREG) and after the first adder level (PREG of the cascade), a lone product
    # that an odd lane count passes unsummed to the first later register (its DSP's PREG), or
    # the register after the adder where it first meets a sum with none before (``reg_meet_last``:
    # that adder is its DSP's post-adder), and the accumulator (``acc_in_dsp``); on xcup Yosys
    # packs none of them
    absorbed = np.where(tree_dsp, f["reg_l01"].to_numpy() + f["reg_raw_last"].to_numpy() + f["reg_meet_last"].to_numpy()
                        + f["reg_l1_raw"].to_numpy() + np.where(acc_in_dsp, acc, 0), 0)
    # a product of two unsigned operands is never negative: each registered tree term's sign bit
    # is constant 0 and Yosys drops that flip-flop where its passes see the constant (those in
    # DSP48 registers are gone already; features._msb_kept: the terms whose bit stays)
    const_msb = np.where(f["unsigned_product"].to_numpy() > 0, f["reg_terms"].to_numpy() - np.where(
        tree_dsp, f["reg_terms_dsp"].to_numpy() + f["reg_msb_kept_dsp"].to_numpy(), f["reg_msb_kept"].to_numpy()), 0)
    ff = (f["reg_bits"].to_numpy(dtype=float) - absorbed - const_msb)[:, None]
    dsp = lanes * f["mult_dsp"].to_numpy()
    return {"lut": lut, "ff": ff, "dsp": dsp, "features": f, "lut_columns": cols,
            "lane_model_rows": ~sparse | measured_lane}


def _nnls_rel(X: np.ndarray, y: np.ndarray, floor: float = 10.0, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """The one fitter: non-negative least squares on relative error (rows scaled by
    ``1 / max(y, floor)``) of ``X · coef + offset`` (``offset``: LUTs priced outside the fit)."""
    from scipy.optimize import nnls  # heavy: scipy (comes with scikit-learn; only the fit needs it)

    s = 1.0 / np.maximum(y, floor)
    coef, _ = nnls(X * s[:, None], (y - offset) * s)
    return coef


def _nnls_rel_l1(X: np.ndarray, y: np.ndarray, floor: float = 10.0, offset: np.ndarray | float = 0.0,
                 iters: int = 10, eps: float = 0.01) -> np.ndarray:
    """Non-negative least *absolute* relative error: :func:`_nnls_rel`'s system, reweighted
    ``iters`` times from its solution by ``1 / sqrt(max(|relative residual|, eps))`` (iteratively
    reweighted least squares; a few far-off rows pull the fit less than under squares)."""
    from scipy.optimize import nnls  # heavy: scipy

    s = 1.0 / np.maximum(y, floor)
    A, b = X * s[:, None], (y - offset) * s
    coef, _ = nnls(A, b)
    for _ in range(iters):
        w = 1.0 / np.sqrt(np.maximum(np.abs(A @ coef - b), eps))
        coef, _ = nnls(A * w[:, None], b * w)
    return coef


#: relative error (a fraction) beyond which :func:`_lp_rel_kinked` weighs each row's error twice:
#: issue 15's median goal (:data:`LUT_GOALS`)
KINK = 0.05


def _lp_rel_kinked(X: np.ndarray, y: np.ndarray, floor: float = 10.0, offset: np.ndarray | float = 0.0,
                   kink: float = KINK) -> np.ndarray:
    """Non-negative least absolute relative error with the part of each row's error beyond
    ``kink`` counted twice: min over ``coef >= 0`` of sum_i |r_i| + max(|r_i| - kink, 0), ``r`` =
    :func:`_nnls_rel`'s scaled residuals, as a linear program (HiGHS). Where absolute error lets
    the few far-off rows lie (their weight no more than any other's), this pulls them in by the
    rule that scores a fit (:func:`goal_score`: a missed goal weighs twice)."""
    from scipy import sparse  # heavy: scipy
    from scipy.optimize import linprog  # heavy: scipy

    s = 1.0 / np.maximum(y, floor)
    A, b = sparse.csr_matrix(X * s[:, None]), (y - offset) * s
    n, k = A.shape
    eye = sparse.identity(n, format="csr")
    # variables: coef (k), the residual's positive and negative parts (n each), its excess beyond
    # the kink (n): A coef - pos + neg = b, excess >= pos + neg - kink
    res = linprog(np.r_[np.zeros(k), np.ones(3 * n)], A_eq=sparse.hstack([A, -eye, eye, sparse.csr_matrix((n, n))]),
                  b_eq=b, A_ub=sparse.hstack([sparse.csr_matrix((n, k)), eye, eye, -eye]), b_ub=np.full(n, kink),
                  bounds=(0, None), method="highs")
    if res.status != 0:
        raise ResourceModelError(f"the kinked relative-error fit found no solution: {res.message}")
    return res.x[:k]


#: folds of the cross-validation that chooses the model's terms (``int(id[:8], 16) % 5`` of a
#: sha1 hex id: the config's own, :func:`config_ids`, for dot/sparse rows)
CV_FOLDS = 5


def cv_fold(ids: pd.Series, folds: int = CV_FOLDS) -> np.ndarray:
    """The cross-validation fold of each row: ``int(id[:8], 16) % folds`` of its sha1 hex ``ids``
    (:func:`config_ids` for dot/sparse rows, the stored key for SWA), fixed before any result."""
    return ids.map(lambda k: int(k[:8], 16) % folds).to_numpy()


def config_ids(rows: pd.DataFrame) -> pd.Series:
    """sha1 hex of each dot/sparse row's config alone (:data:`~costmodel.features.CONFIG_COLUMNS`,
    the target left out): the folds of every dot/sparse CV. The stored key hashes the target too,
    and the random draws give xc7 and xcup the same configs (400 twins, 241 with equal LUTs): a
    fold by key would fit on each row's twin and predict the row. Measured, the leak was small
    (the Xilinx goal score of the chosen fit 0.772 by key, 0.776 by config; xc7 sparse CV median
    2.9 % either way)."""
    def canon(v) -> str:
        if v is None or (isinstance(v, float) and not np.isfinite(v)) or v == "":
            return ""
        return str(int(v)) if isinstance(v, (int, float, np.integer, np.floating)) else str(v)
    cols = [c for c in CONFIG_COLUMNS if c in rows]
    return rows[cols].apply(lambda r: hashlib.sha1("|".join(canon(v) for v in r).encode()).hexdigest(), axis=1)


#: the LUT fits every family chooses from by 5-fold CV (:func:`select_lut_fit`), with its term
#: sets (ECP5's calibration rows hold a few engines far off any term set, −30 % to +40 %; squares
#: let them tilt every coefficient, absolute error lets them lie; the kinked fit, added on
#: 2026-12-06, weighs the error beyond 5 % twice, as the goal score weighs a missed goal)
LUT_FITS = {"least squares of relative error": _nnls_rel, "least absolute relative error": _nnls_rel_l1,
            "least absolute relative error, beyond 5 % counted twice": _lp_rel_kinked}


def _counted(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """No fit: every term at coefficient 1 (for term sets that are a count: registers less the
    bits Yosys removes)."""
    return np.ones(X.shape[1])


#: the SWA FF fits (:func:`swa_cv_table`): a count where the family's CV finds it as good as a fit
#: (listed first: a tie goes to the count), else the LUT fits
FF_FITS = {"counted (every term at coefficient 1, no fit)": _counted, **LUT_FITS}


def _method(fitter) -> str:
    """How ``fitter`` (one of :data:`FF_FITS`) fits, for the record's ``method``."""
    if fitter is _counted:
        return "counted: every term at coefficient 1, no fit"
    if fitter is _lp_rel_kinked:
        return (f"scipy.optimize.linprog (HiGHS) on rows scaled by 1/max(y, 10): least sum of |relative residual| + "
                f"max(|relative residual| - {KINK}, 0), coefficients >= 0")
    return METHOD if fitter is _nnls_rel else (
        "scipy.optimize.nnls on rows scaled by 1/max(y, 10), reweighted 10 times by 1/sqrt(max(|relative residual|, "
        "0.01)) (least absolute relative error)")


def fitter_of(method: str):
    """The fitter (one of :data:`FF_FITS`) whose :func:`_method` is a stored record's ``method``."""
    return {_method(fit): fit for fit in FF_FITS.values()}[method]


def lut_fit_of(record: dict) -> tuple[list[str], object, tuple[str, ...] | None]:
    """The LUT terms and fitter (one of :data:`LUT_FITS`) of a stored fit ``record``, and the lane
    terms of the lane model (:func:`with_lane_model`) that sits on them (the terms are then its
    fallback's; None without one)."""
    res = record["resources"]
    fitter = fitter_of(record.get("method", METHOD))
    if "lut_lane_unmeasured" not in res:
        return res["lut"]["terms"], fitter, None
    fallback = res["lut_lane_unmeasured"]["terms"]
    return fallback, fitter, tuple(t for t in res["lut"]["terms"] if t not in lane_terms(fallback, ()))


#: issue 15's goals for each group's LUT error on the random held-out draw (relative)
LUT_GOALS = {"median": 0.05, "p90": 0.12}
#: how a family's LUT terms and fit are chosen (:func:`select_lut_fit`; set on 2026-12-04, night,
#: before the fit it chose was scored on any held-out row; until then: the least median + p90
#: of all calibration rows, which once chose an ECP5 fit that doubled its median for a smaller
#: p90)
SELECTION_RULE = ("least goal_score of the 5-fold out-of-fold LUTs (fold = int(config_id[:8], 16) % 5, the config "
                  "without its target) on the random "
                  "calibration draw: the mean, over targets x goal groups x {median, p90}, of the error in goals "
                  "(median / 5 %, p90 / 12 %), a ratio above 1 counted twice")


def goal_score(rows: pd.DataFrame, pred_lut: np.ndarray) -> float:
    """How far LUT predictions ``pred_lut`` of synthesized ``rows`` lie from :data:`LUT_GOALS`:
    the mean, over each target (column ``target``) x goal group (:data:`HELDOUT_GROUPS` but
    "all", those with rows) x {median, p90}, of the relative error in goals (median / 5 %, p90 /
    12 %), a ratio ``r`` above 1 counted as ``2 r - 1`` (a missed goal weighs twice). 1.0: on the
    goals on average; lower is better."""
    y = rows["lut"].to_numpy(dtype=float)
    rel = np.abs(np.asarray(pred_lut, dtype=float) - y) / np.maximum(y, 1.0)
    masks = []
    for _, idx in _by_target(rows).items():
        for g, m in heldout_groups(rows.iloc[idx]).items():
            if g != "all":
                whole = np.zeros(len(rows), bool)
                whole[idx[m]] = True
                masks.append(whole)
    return _score_in_goals(rel, masks, LUT_GOALS)


def _score_in_goals(rel: np.ndarray, masks: Sequence[np.ndarray], goals: dict[str, float]) -> float:
    """:func:`goal_score`'s rule on relative errors ``rel``: the mean over the groups ``masks``
    that hold rows and {median, p90} of the error in ``goals``, a ratio r above 1 as 2 r − 1."""
    r = np.array([stat / goals[name] for m in masks if m.any()
                  for name, stat in (("median", np.median(rel[m])), ("p90", np.percentile(rel[m], 90)))])
    return float(np.mean(r + np.maximum(r - 1.0, 0.0)))


def select_lut_fit(rows: pd.DataFrame, matrix, candidates: dict[str, list[str]], scored: np.ndarray,
                   folds: int = CV_FOLDS, pools: dict[str, list[np.ndarray]] | None = None
                   ) -> tuple[str, dict[str, tuple[list[str], object, str]], dict[str, float], dict[str, np.ndarray]]:
    """The LUT term set x fit (:data:`LUT_FITS`) x pooling of least :func:`goal_score` on the
    ``scored`` rows (the random calibration draw) by ``folds``-fold CV over all calibration
    ``rows`` (folds by :func:`config_ids`); ``matrix(terms)`` is the LUT design matrix of
    ``rows``; ``pools`` maps a name suffix to the row masks fitted apart (default: all rows
    together, suffix ""). Returns the chosen name (a fit other than squares named with its
    :data:`LUT_FITS` key after its terms, then the pool's suffix), every candidate ``name ->
    (terms, fitter, pool suffix)``, their scores, and their out-of-fold LUTs (rounded, as
    predicted)."""
    y = rows["lut"].to_numpy(dtype=float)
    fold = cv_fold(config_ids(rows), folds)
    pools = pools or {"": [np.ones(len(rows), bool)]}
    cands = {f"{n}{'' if fitter is _nnls_rel else ', ' + method}{pool}": (terms, fitter, pool)
             for pool in pools for method, fitter in LUT_FITS.items() for n, terms in candidates.items()}
    oof, scores = {}, {}
    for name, (terms, fitter, pool) in cands.items():
        oof[name] = _out_of_fold(matrix(terms), y, fold, fitter, pools[pool])
        scores[name] = goal_score(rows[scored], oof[name][scored])
    return min(scores, key=scores.get), cands, scores, oof


def _out_of_fold(X: np.ndarray, y: np.ndarray, fold: np.ndarray, fitter, parts: Sequence[np.ndarray]) -> np.ndarray:
    """LUTs of each row predicted by ``fitter`` on the other folds of its part (rounded, as
    predicted)."""
    pred = np.zeros(len(y))
    for part in parts:
        for k in np.unique(fold):
            test, train = (fold == k) & part, (fold != k) & part
            pred[test] = X[test] @ fitter(X[train], y[train])
    return np.rint(np.maximum(pred, 0))


def cv_predictions(target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The random calibration draw of ``target`` and its 5-fold out-of-fold predictions under the
    shipped fit's terms and fitter (what its selection scored; DSP, FF and BRAM18 as counted):
    the calibration-side figure beside the held-out one."""
    model, _ = model_for(target)
    terms, fitter, lanes = lut_fit_of(model)
    if target in LATTICE_TARGETS:
        rows = lattice_rows(target)
        pred = predict_frame(rows, target, model)
        mult = model.get("multiplier")
        matrix = lambda t: _lattice_lut_matrix(rows, target, t, mult)  # noqa: E731
        y, fold, every = rows["lut"].to_numpy(dtype=float), cv_fold(config_ids(rows)), [np.ones(len(rows), bool)]
        oof = _out_of_fold(matrix(terms), y, fold, fitter, every)
        if lanes:
            applies = design_matrix(rows, target, mult)["lane_model_rows"]
            oof = _lane_oof(matrix, applies, y, fold, fitter, terms, every, oof, lanes)
        pred["lut"] = oof.astype(np.int64)
    else:
        rows = calibration_rows(tuple(model.get("fitted_with", [target])))
        pred = cross_validate(rows, terms, fitter=fitter, lanes=lanes)
    keep = _drawn(rows) & (rows["target"] == target).to_numpy()
    return rows[keep], pred[keep]


def _file_stamp(path: Path) -> tuple:
    """(path, mtime, size) of a data file: the key of what was read from it."""
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def _read_csv(path: Path) -> pd.DataFrame:
    """A stored table, parsed once per file version (a copy each call: callers may change it)."""
    return _parsed_csv(_file_stamp(path)).copy()


@lru_cache(maxsize=64)
def _parsed_csv(stamp: tuple) -> pd.DataFrame:
    """A stored table as the model reads it: where it holds ``target``, ``lut`` and ``carry``, ``lut``
    in LUT sites (:func:`hw.rtl.lut_sites`: ECP5 counts each CCU2C's LUT4 pair)."""
    d = pd.read_csv(stamp[0], keep_default_na=False, na_values=[""])
    if {"target", "lut", "carry"} <= set(d.columns):
        for target, idx in d.groupby("target").groups.items():
            d.loc[idx, "lut"] = lut_sites(d.loc[idx, "lut"], d.loc[idx, "carry"].fillna(0), str(target))
    return d


def _errors(pred: np.ndarray, y: np.ndarray) -> dict:
    rel = np.abs(pred - y) / np.maximum(np.abs(y), 1.0)
    return {"n": int(len(y)), "median_rel_err": float(np.median(rel)) if len(y) else None,
            "p90_rel_err": float(np.percentile(rel, 90)) if len(y) else None,
            "median_abs_err": float(np.median(np.abs(pred - y))) if len(y) else None}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: how every fit is made and how its rows are held out (one rule for every engine and target)
METHOD = "scipy.optimize.nnls on rows scaled by 1/max(y, 10) (relative error)"
CV_RULE = ("validation = every row of the held-out random draws (data/doe_heldout.csv: seed 0, seed 2 drawn "
           "after the terms were chosen and, ECP5, seed 4 after its calibration draw was doubled), never fitted on; "
           "terms chosen by 5-fold cross-validation over the calibration rows (fold by the config without its "
           "target: costmodel.resources.config_ids)")
SWA_CV_RULE = ("validation = every row of the held-out random SWA draws (data/swa_doe_heldout.csv: seed 0, "
               "seed 2 drawn after the terms were chosen and seed 3 after the int-V terms were added), never "
               "fitted on; terms and fits chosen by 5-fold "
               "cross-validation over the calibration rows (fold = int(key[:8], 16) % 5)")
SPLIT_RULE = "validation iff int(key[:8], 16) % 5 == 0 (key = sha1 of [config, target]; costmodel.store.split)"
#: the command that rewrites data/coefficients.json (every fit in it)
FIT_COMMAND = "python -m costmodel.resources xc7 xcup ice40 ecp5"


def _record(engines: list[str], target: str, kind: str, resources: dict, counted: dict, files: list[Path],
            keys: dict, split_rule: str, yosys: list[str], validation: dict, **extra) -> dict:
    """One fit in the one schema of ``coefficients.json``: coefficients, what is counted instead
    of fitted, the data files and their sha256, the fitted and held-out keys, the command that
    reproduces it, the Yosys version(s) of the data, the date, and held-out errors per engine."""
    return {"engines": engines, "target": target, "kind": kind, "resources": resources, "counted": counted,
            "data": {f.name: _sha256(f) for f in files}, "keys": keys, "split_rule": split_rule,
            "method": METHOD, "command": FIT_COMMAND, "yosys": yosys, "date": now(),
            "validation": validation, **extra}


def _engine_errors(pred: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Relative errors per engine and resource of ``pred`` against the synthesized ``rows``."""
    out = {}
    for eng in sorted(rows["engine"].unique()):
        sel = (rows["engine"] == eng).to_numpy()
        out[eng] = {r: _errors(pred[r].to_numpy(dtype=float)[sel], rows[r].to_numpy(dtype=float)[sel])
                    for r in ("lut", "ff", "dsp", "bram18")}
    return out


def calibration_rows(targets: str | tuple[str, ...] = "xc7") -> pd.DataFrame:
    """Every stored dot/sparse synthesis of ``targets`` the MAC model may be fitted on: the grids
    (``data/calibration.csv``) and the random calibration draw (``data/doe_calibration.csv``),
    minus any key of the held-out draw (``data/doe_heldout.csv``); column ``target`` says whose."""
    targets = (targets,) if isinstance(targets, str) else targets
    rows = pd.concat([stored_rows(path, t) for t in targets for path in (CALIBRATION_CSV, DOE_CALIBRATION_CSV)],
                     ignore_index=True)
    return rows[~rows["key"].isin(heldout_keys())].drop_duplicates("key").reset_index(drop=True)


def _by_target(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    return {str(t): idx for t, idx in rows.groupby("target", sort=True).indices.items()}


def _mac_multiplier(rows: pd.DataFrame) -> dict | None:
    """The multiplier formula of the first target of ``rows`` (fitted on its standalone
    multipliers, ``primitives.csv``; None where none are stored)."""
    first = str(rows["target"].iloc[0])
    return fit_multiplier(first) if _cached_primitive_table(first) else None


def mac_lut_columns(rows: pd.DataFrame, mult: dict | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every candidate LUT column (``design_matrix``'s ``lut_columns``) of ``rows`` of one or
    several targets (column ``target``), each row by its own target's rules, and the rows a lane
    model prices (``lane_model_rows``)."""
    cols: dict[str, np.ndarray] = {}
    applies = np.zeros(len(rows), bool)
    for t, idx in _by_target(rows).items():
        dm = design_matrix(rows.iloc[idx], t, mult)
        for name, col in dm["lut_columns"].items():
            cols.setdefault(name, np.zeros(len(rows)))[idx] = col
        applies[idx] = dm["lane_model_rows"]
    return cols, applies


def fit_mac(rows: pd.DataFrame, lut_terms: list[str] | None = None, fitter=_nnls_rel,
            lanes: Sequence[str] | None = None) -> dict:
    """The dot/sparse model fitted on synthesized ``rows`` of one or several targets (column
    ``target``, each row's design matrix by its own target's rules): LUT over ``lut_terms``
    (default :data:`LUT_TERMS`) by ``fitter`` (one of :data:`LUT_FITS`; default relative NNLS),
    with a lane model of lane terms ``lanes`` on top (:func:`with_lane_model`), the multiplier formula over
    ``data/primitives.csv``; FF counted (:data:`FF_TERMS`, coefficient 1). Returns
    ``{"multiplier", "resources"}``."""
    terms = LUT_TERMS if lut_terms is None else list(lut_terms)
    mult = _mac_multiplier(rows)
    cols, applies = mac_lut_columns(rows, mult)
    matrix = lambda ts: np.column_stack([cols[t] for t in ts])  # noqa: E731
    y = rows["lut"].to_numpy(dtype=float)
    lut = {"lut": {"terms": terms, "coef": fitter(matrix(terms), y).tolist()}}
    if lanes:
        lut = with_lane_model(lut, matrix, applies, y, fitter, lanes)
    return {"multiplier": mult, "resources": {**lut, "ff": {"terms": FF_TERMS, "coef": [1.0]}}}


def predict_rows(rows: pd.DataFrame, model: dict) -> pd.DataFrame:
    """:func:`predict_frame` of rows of one or several targets (column ``target``)."""
    parts = [predict_frame(rows.iloc[idx], t, model) for t, idx in _by_target(rows).items()]
    return pd.concat(parts).loc[rows.index] if parts else pd.DataFrame(columns=["lut", "ff", "dsp", "bram18"])


def cross_validate(rows: pd.DataFrame, lut_terms: list[str] | None = None, folds: int = CV_FOLDS,
                   fitter=_nnls_rel, lanes: Sequence[str] | None = None) -> pd.DataFrame:
    """Out-of-fold predictions of :func:`fit_mac` on calibration ``rows``: each row predicted by
    the model fitted on the other folds (folds by :func:`config_ids`: a config's xc7 and xcup
    rows fall in one fold). The held-out draw takes no part."""
    fold = cv_fold(config_ids(rows), folds)
    parts = []
    for f in range(folds):
        test = fold == f
        if test.any() and (~test).any():
            parts.append(predict_rows(rows[test], fit_mac(rows[~test], lut_terms, fitter, lanes)))
    return pd.concat(parts).loc[rows.index]


def _drawn(rows: pd.DataFrame, path: Path = DOE_CALIBRATION_CSV) -> np.ndarray:
    """Which ``rows`` belong to the random calibration draw stored at ``path`` (dot/sparse:
    ``doe_calibration.csv``; SWA: ``swa_doe_calibration.csv``); every row where none is stored."""
    drawn = rows["key"].isin(_read_csv(path)["key"]).to_numpy() if path.exists() else np.zeros(len(rows), bool)
    return drawn if drawn.any() else np.ones(len(rows), bool)


#: the name suffix of a Xilinx candidate fitted on each family's own rows (xc7 and xcup apart)
APART = ", each family on its own rows"


def select_xilinx(rows: pd.DataFrame):
    """:func:`select_lut_fit` over :data:`CANDIDATES` of the Xilinx calibration ``rows``, each
    fitted on both families together (one set of fabric coefficients) and on each family's own
    rows apart (suffix :data:`APART`); scored on each target's random calibration draw."""
    cols, applies = mac_lut_columns(rows, _mac_multiplier(rows))
    matrix = lambda terms: np.column_stack([cols[t] for t in terms])  # noqa: E731
    pools = {"": [np.ones(len(rows), bool)], APART: [(rows["target"] == t).to_numpy()
                                                      for t in sorted(rows["target"].unique())]}
    chosen, cands, scores, oof = select_lut_fit(rows, matrix, CANDIDATES, _drawn(rows), pools=pools)
    if _lane_table(str(rows["target"].iloc[0])):  # the chosen fit with a lane model on top
        base = chosen
        terms, fitter, pool = cands[base]
        chosen = score_lane_model(rows, matrix, applies, base, terms, fitter, pools[pool], scores, oof)
        cands[chosen] = cands[base]
    return chosen, cands, scores, oof


def cv_table(targets: tuple[str, ...] = XILINX_TARGETS) -> pd.DataFrame:
    """The selection of the Xilinx LUT fit (:func:`select_xilinx`): for every :data:`CANDIDATES`
    term set x :data:`LUT_FITS` fit, its :func:`goal_score` and its 5-fold cross-validated LUT
    median / p90 on each target's random calibration draw, best first. Stored rows only."""
    rows = calibration_rows(targets)
    _, _, scores, oof = select_xilinx(rows)
    drawn = _drawn(rows)
    y = rows["lut"].to_numpy(dtype=float)
    out = []
    for name, score in sorted(scores.items(), key=lambda kv: kv[1]):
        rel = np.abs(oof[name] - y) / np.maximum(y, 1.0)
        rec = {"terms, fit": name, "goal score": score}
        for t in targets:
            m = drawn & (rows["target"] == t).to_numpy()
            if m.any():
                rec[f"{t} median"], rec[f"{t} p90"] = float(np.median(rel[m])), float(np.percentile(rel[m], 90))
        out.append(rec)
    return pd.DataFrame(out)


def fit_xilinx(targets: tuple[str, ...] = XILINX_TARGETS) -> dict[str, dict]:
    """Fit the dot/sparse model of the Xilinx ``targets`` on every calibration row of each
    (:func:`calibration_rows`), together or each family apart as :func:`select_xilinx` chooses:
    one record per target (:func:`_record`; ``fitted_with`` names the families whose rows it was
    fitted on) with that target's own errors: on its held-out random draw per engine
    (``validation``) and per group (``heldout_groups``), and by 5-fold cross-validation over its
    calibration rows per engine (``cv``) and per group (``cv_groups``)."""
    rows = calibration_rows(targets)
    missing = [t for t in targets if not (rows["target"] == t).any()]
    if missing:
        raise ResourceModelError(f"no calibration rows for target(s) {missing}; run python -m costmodel.calibrate "
                                 f"engines --grid doe --split calibration --target {missing[0]}")
    chosen, cands, scores, _ = select_xilinx(rows)
    terms, fitter, pool = cands[chosen]
    lanes = lane_model_of(chosen)
    parts = [rows["target"].unique()] if pool != APART else [[t] for t in targets]
    models, cv = {}, []
    for part in parts:
        mine = rows[rows["target"].isin(part)]
        model = fit_mac(mine, terms, fitter, lanes)
        models.update(dict.fromkeys(part, model))
        cv.append(cross_validate(mine, terms, fitter=fitter, lanes=lanes))
    cv = pd.concat(cv).loc[rows.index]
    files = [f for f in (CALIBRATION_CSV, DOE_CALIBRATION_CSV, PRIMITIVES_CSV) + ((LANES_CSV,) if lanes else ())
             if f.exists()]
    out = {}
    for t in targets:
        own = (rows["target"] == t).to_numpy()
        mine, mine_cv, model = rows[own], cv[own], models[t]
        held = heldout_rows(t)
        held_pred = predict_frame(held, t, model) if not held.empty else held
        out[t] = _record(
            ["dot", "sparse"], t, "xilinx", model["resources"],
            {"dsp": "Yosys mul2dsp rule of the family per multiplier (costmodel.features.mult_dsp)",
             "ff": "counted: register bits minus those Yosys packs into DSP48s (xc7 only) and constant sign bits",
             "bram18": "no memories in the dot/sparse engines"},
            files, {"calibration": sorted(mine["key"]), "validation": sorted(held["key"])}, CV_RULE,
            sorted(set(mine["yosys"])), _engine_errors(held_pred, held) if not held.empty else {},
            multiplier=model["multiplier"], fitted_with=[t] if pool == APART else list(targets),
            cv=_engine_errors(mine_cv, mine),
            lut_terms_chosen=chosen, lut_terms_cv={n: round(v, 4) for n, v in scores.items()},
            selection_rule=SELECTION_RULE, method=_method(fitter),
            calibration_fit=_engine_errors(predict_frame(mine, t, model), mine),
            cv_groups=error_report(mine, mine_cv).to_dict("records"),
            heldout_groups=error_report(held, held_pred).to_dict("records"),
            never_fitted=f"every key of data/{DOE_HELDOUT_CSV.name} (the held-out random design of experiments, "
                         "costmodel.calibrate.doe_grid seeds 0 and 2)")
    return out


def fit(target: str = "xc7") -> dict:
    """The dot/sparse (MAC) resource fit of ``target``: Xilinx targets by :func:`fit_xilinx`
    (fitted together), Lattice targets by :func:`fit_lattice`."""
    if target in LATTICE_TARGETS:
        return fit_lattice(target)
    return fit_xilinx()[target]


def swa_rows(target: str, paths: Sequence[Path] = (SWA_CALIBRATION_CSV, SWA_DOE_CSV["calibration"]),
             heldout: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored SWA syntheses of ``target`` and their :func:`costmodel.swa.swa_features`:
    the calibration rows (grid ``swa`` and the random draw ``swa-doe``, minus any held-out key),
    or with ``heldout`` the held-out random draw (``data/swa_doe_heldout.csv``, never fitted)."""
    held = SWA_DOE_CSV["heldout"]
    frames = [_read_csv(q) for q in ([held] if heldout else paths) if q.exists()]
    d = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["target", "config", "key"])
    d = d[d["target"] == target]
    if not heldout and held.exists():
        d = d[~d["key"].isin(_read_csv(held)["key"])]
    d = d.drop_duplicates("key").reset_index(drop=True)
    return d, (swa_row_features(d, target) if not d.empty else pd.DataFrame())


def swa_row_features(d: pd.DataFrame, target: str) -> pd.DataFrame:
    """:func:`costmodel.swa.swa_props` + :func:`costmodel.swa.swa_features` of stored SWA rows
    ``d`` (their ``config`` JSON) on ``target``, one row per row of ``d``."""
    configs, gid = swa_configs(pd.DataFrame([json.loads(c) for c in d["config"]]))
    props = swa_props(configs, target)
    return pd.concat([props, swa_features(props, target)], axis=1).iloc[gid].reset_index(drop=True)


def _swa_mult_lut(features: pd.DataFrame, target: str, mult: dict | None, in_dsp: bool = False) -> np.ndarray:
    """LUTs of the Q·K multipliers of each SWA row: lanes × :func:`mult_lut` of the (Q, K)
    format pair (the family's measured primitive, else its formula), 0 where they are DSPs
    (``qk_mult_lut``). With ``in_dsp`` the other rows (``qk_mult_lut_dsp``): the fabric LUTs of
    multipliers whose significand product is a DSP (a minifloat pair's aligner, negation and
    exponent adder stay in LUTs; an int × int one in a DSP measures 0)."""
    per = {f: mult_lut(f, f, target, mult) for f in features["qk_fmt"].unique()}
    lut = features["qk_fmt"].map(per).to_numpy(dtype=float)
    dsp = features["qk_dsp"].to_numpy() > 0
    return features["lanes"].to_numpy(dtype=float) * lut * (dsp if in_dsp else ~dsp)


def _with_mult_lut(features: pd.DataFrame, target: str, mult: dict | None, terms: Sequence[str]) -> pd.DataFrame:
    """``features`` with the multiplier columns (:func:`_swa_mult_lut`) that ``terms`` name;
    ``qk_mult_lut_int`` / ``qk_mult_lut_mf``: ``qk_mult_lut`` of int / minifloat Q·K formats."""
    cols = {c: _swa_mult_lut(features, target, mult, in_dsp=c.endswith("_dsp"))
            for c in ("qk_mult_lut", "qk_mult_lut_dsp") if c in terms}
    if "qk_mult_lut_int" in terms or "qk_mult_lut_mf" in terms:
        lut, mf = _swa_mult_lut(features, target, mult), features["qk_mf"].to_numpy() > 0
        cols.update(qk_mult_lut_int=lut * ~mf, qk_mult_lut_mf=lut * mf)
    return features.assign(**cols) if cols else features


def predict_swa(features: pd.DataFrame, model: dict, target: str = "xc7", memory: bool = False) -> pd.DataFrame:
    """LUT, FF (fitted), DSP, BRAM18 (counted) of :func:`costmodel.swa.swa_props` +
    :func:`costmodel.swa.swa_features` rows under a stored SWA ``model`` of ``target``. LUT: the
    fitted logic's LUT sites; with ``memory`` (as the estimate gives it) plus the distributed RAM's
    sites, counted by the memory rule (``lutram``, :func:`hw.rtl.lut_sites`)."""
    lut, ff = model["resources"]["lut"], model["resources"]["ff"]
    features = _with_mult_lut(features, target, model.get("multiplier"), [*lut["terms"], *ff["terms"]])
    dm = swa_design(features, lut["terms"], ff["terms"])
    ram = lut_sites(0, 0, target, features["lutram"].to_numpy(dtype=np.int64)) if memory else 0
    return pd.DataFrame({
        "lut": np.rint(np.maximum(dm["lut"] @ np.asarray(lut["coef"]), 0)).astype(np.int64) + ram,
        "ff": np.rint(np.maximum(dm["ff"] @ np.asarray(ff["coef"]), 0)).astype(np.int64),
        "dsp": dm["dsp"].astype(np.int64), "bram18": dm["bram18"].astype(np.int64)}, index=features.index)


def _fit_swa_terms(d: pd.DataFrame, f: pd.DataFrame, target: str, lut_terms: Sequence[str],
                   ff_terms: Sequence[str], fitters: dict | None = None) -> dict:
    """The SWA model of ``target`` fitted on rows ``d`` (features ``f``): each resource by its
    fitter of :data:`LUT_FITS` (``fitters``, ``{"lut": …, "ff": …}``; default relative NNLS)."""
    fitters = fitters or {}
    mult = fit_multiplier(target) if _cached_primitive_table(target) else None
    f = _with_mult_lut(f, target, mult, [*lut_terms, *ff_terms])
    dm = swa_design(f, lut_terms, ff_terms)
    return {"multiplier": mult, "resources": {
        res: {"terms": list(terms), "coef": fitters.get(res, _nnls_rel)(dm[res], d[res].to_numpy(dtype=float)).tolist()}
        for res, terms in (("lut", lut_terms), ("ff", ff_terms))}}


def swa_cross_validate(d: pd.DataFrame, f: pd.DataFrame, target: str, lut_terms: Sequence[str] = SWA_LUT_TERMS,
                       ff_terms: Sequence[str] = SWA_FF_TERMS, folds: int = CV_FOLDS,
                       fitters: dict | None = None) -> pd.DataFrame:
    """Out-of-fold SWA predictions (folds by key: each target's SWA model is fitted on its own rows)."""
    fold = cv_fold(d["key"], folds)
    out = []
    for k in range(folds):
        test = fold == k
        if test.any() and (~test).any():
            m = _fit_swa_terms(d[~test], f[~test], target, lut_terms, ff_terms, fitters)
            out.append(predict_swa(f[test], m, target))
    return pd.concat(out).loc[d.index]


#: issue 15's goal for the SWA kernel's FF error (relative; LUT: :data:`LUT_GOALS`)
SWA_FF_GOALS = {"median": 0.02, "p90": 0.02}
#: how the SWA model's LUT and FF terms and fits are chosen (:func:`swa_cv_table`; set on
#: 2026-12-04 night with :data:`SELECTION_RULE`; until then: least median + p90 of every row)
SWA_SELECTION_RULE = ("per resource, least goal score of the 5-fold out-of-fold predictions (fold = int(key[:8], 16) "
                      "% 5) on the random SWA calibration draw: the mean, over the SWA groups but 'swa' x {median, "
                      "p90}, of the error in goals (LUT median / 5 %, p90 / 12 %; FF / 2 %), a ratio above 1 counted "
                      "twice; the other resource at its default terms")


def swa_goal_scores(d: pd.DataFrame, f: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """LUT and FF :func:`goal_score` rule of SWA predictions ``pred`` (columns ``lut``, ``ff``) of
    the rows ``d`` (features ``f``): over :data:`SWA_GROUPS` but "swa" on the random calibration
    draw (LUT: :data:`LUT_GOALS`; FF: :data:`SWA_FF_GOALS`)."""
    drawn = _drawn(d, SWA_DOE_CSV["calibration"])
    masks = [m[drawn] for g, m in swa_groups(f).items() if g != "swa"]
    out = {}
    for res, goals in (("lut", LUT_GOALS), ("ff", SWA_FF_GOALS)):
        y = d[res].to_numpy(dtype=float)
        rel = np.abs(pred[res].to_numpy(dtype=float) - y) / np.maximum(y, 1.0)
        out[res] = _score_in_goals(rel[drawn], masks, goals)
    return out


def swa_cv_table(target: str = "xc7", rows: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every :data:`costmodel.swa.SWA_CANDIDATES` term set x fit (LUT: :data:`LUT_FITS`; FF:
    :data:`FF_FITS`) per resource on the SWA calibration rows of ``target`` (``rows``:
    :func:`swa_rows` already read; the held-out draw takes no part), the other resource at its
    default terms: the :func:`goal_score` rule
    over :data:`SWA_GROUPS` (but "swa") on the random calibration draw (LUT: :data:`LUT_GOALS`;
    FF: :data:`SWA_FF_GOALS`), and the 5-fold CV median / p90 over every row."""
    d, f = swa_rows(target) if rows is None else rows
    recs = []
    for res, cands in SWA_CANDIDATES.items():
        for method, fitter in (LUT_FITS if res == "lut" else FF_FITS).items():
            for name, terms in cands.items():
                other = SWA_FF_TERMS if res == "lut" else SWA_LUT_TERMS
                lt, ft = (terms, other) if res == "lut" else (other, terms)
                pred = swa_cross_validate(d, f, target, lt, ft, fitters={res: fitter})
                y = d[res].to_numpy(dtype=float)
                rel = np.abs(pred[res].to_numpy(dtype=float) - y) / np.maximum(y, 1.0)
                recs.append({"resource": res, "candidate": name, "fit": method, "terms": " + ".join(terms),
                             "n": len(d), "goal score": swa_goal_scores(d, f, pred)[res],
                             "median": float(np.median(rel)), "p90": float(np.percentile(rel, 90))})
    return pd.DataFrame(recs)


def swa_terms(table: pd.DataFrame) -> dict[str, tuple[list[str], object, str]]:
    """Per resource of a :func:`swa_cv_table`, the terms, fitter and name (``candidate, fit``)
    of least goal score."""
    best = table.sort_values("goal score", kind="stable").groupby("resource").head(1)
    return {r["resource"]: (SWA_CANDIDATES[r["resource"]][r["candidate"]], FF_FITS[r["fit"]],
                            f"{r['candidate']}, {r['fit']}") for _, r in best.iterrows()}


def fit_swa(target: str = "xc7") -> dict:
    """Fit the SWA resource model of ``target`` on its SWA calibration rows (:func:`swa_rows`:
    grid ``swa`` and the random draw ``swa-doe``): LUT and FF by relative NNLS over the
    :data:`costmodel.swa.SWA_CANDIDATES` term sets the family's own 5-fold CV picks
    (:func:`swa_cv_table`, :func:`swa_terms`; on xc7 :data:`~costmodel.swa.SWA_LUT_TERMS` and
    :data:`~costmodel.swa.SWA_FF_TERMS`), DSP and BRAM18 counted by the shared rules. Errors: on the
    held-out random draw (``swa_doe_heldout.csv``) where stored, and 5-fold CV."""
    d, f = swa_rows(target)
    if d.empty:
        raise ResourceModelError(f"no SWA syntheses for target {target!r}; run python -m costmodel.calibrate "
                                 f"engines --grid swa-doe --split calibration --target {target}")
    table = swa_cv_table(target, (d, f))
    best = swa_terms(table)
    (lt, lfit, lname), (ft, ffit, fname) = best["lut"], best["ff"]
    fitters = {"lut": lfit, "ff": ffit}
    model = _fit_swa_terms(d, f, target, lt, ft, fitters)
    d = d.assign(engine="swa")
    cvpred = swa_cross_validate(d, f, target, lt, ft, fitters=fitters)
    cv = _engine_errors(cvpred.assign(engine="swa"), d)
    held = _swa_heldout(model, target)
    files = [q for q in (SWA_CALIBRATION_CSV, SWA_DOE_CSV["calibration"]) if q.exists()]
    bounds = swa_doe_bounds(target)
    return _record(
        ["swa"], target, "swa", model["resources"],
        {"dsp": "Yosys mul2dsp rule of the family per multiplier (costmodel.features.mult_dsp)",
         "bram18": "Yosys memory_libmap cost rule per memory (costmodel.features.buffer_cost)"},
        files, {"calibration": sorted(d["key"]), "validation": held["heldout_keys"]},
        SWA_CV_RULE if held["heldout_keys"] else
        "5-fold cross-validation by key over the calibration rows (no held-out SWA draw stored)",
        sorted(set(d["yosys"])), held["validation"], multiplier=model["multiplier"], cv=cv,
        lut_terms_chosen=lname, ff_terms_chosen=fname, selection_rule=SWA_SELECTION_RULE,
        cv_goal_score={k: round(v, 4) for k, v in swa_goal_scores(d, f, cvpred).items()},
        method={"lut": _method(lfit), "ff": _method(ffit)},
        terms_cv={f"{r['resource']}: {r['candidate']}, {r['fit']}": round(r["goal score"], 4)
                  for _, r in table.iterrows()},
        domain=f"causal, symmetric and dense-baseline SWA kernels, int and minifloat Q/K/V, {bounds.describe()}",
        draw_bounds=asdict(bounds),
        heldout_groups=held["heldout_groups"])


def swa_config_ids(d: pd.DataFrame) -> pd.Series:
    """sha1 hex of each SWA row's stored config (its JSON, the target left out): the random draws
    give every family the same configs, so a cross-family score folds by these (as
    :func:`config_ids` for dot/sparse rows)."""
    return d["config"].map(lambda c: hashlib.sha1(c.encode()).hexdigest())


def _swa_fit_of(record: dict) -> tuple[list[str], list[str], dict]:
    """The LUT terms, FF terms and fitters (:data:`FF_FITS`, per resource) of a stored SWA fit."""
    return (record["resources"]["lut"]["terms"], record["resources"]["ff"]["terms"],
            {res: fitter_of(m) for res, m in record["method"].items()})


def _cross_family_oof(record: dict, fitted: str, target: str, d: pd.DataFrame, f: pd.DataFrame,
                      joint: bool) -> pd.DataFrame:
    """Out-of-fold predictions of ``target``'s SWA rows ``d`` (features ``f``) by ``fitted``'s terms
    and fits (``record``), refitted for each fold on ``fitted``'s calibration rows whose config is
    not in that fold (folds by config, :func:`swa_config_ids`: no row is predicted by a fit on its
    own config's twin), with ``joint`` on ``target``'s rows of the other folds too."""
    dp, fp = swa_rows(fitted)
    lt, ft, fitters = _swa_fit_of(record)
    fold, fold_p = cv_fold(swa_config_ids(d)), cv_fold(swa_config_ids(dp))
    out = []
    for k in range(CV_FOLDS):
        if (fold == k).any():
            fd, ff_ = dp[fold_p != k], fp[fold_p != k]
            if joint:
                fd, ff_ = pd.concat([fd, d[fold != k]]), pd.concat([ff_, f[fold != k]])
            out.append(predict_swa(f[fold == k], _fit_swa_terms(fd, ff_, fitted, lt, ft, fitters), target))
    return pd.concat(out).loc[d.index]


def _swa_heldout(model: dict, target: str) -> dict:
    """A fit's ``validation`` and ``heldout_groups`` on ``target``'s held-out SWA draw (empty
    without one) and their keys."""
    hd, hf = swa_rows(target, heldout=True)
    if hd.empty:
        return {"validation": {}, "heldout_groups": [], "heldout_keys": []}
    hpred = predict_swa(hf, model, target)
    return {"validation": _engine_errors(hpred, hd.assign(engine="swa")),
            "heldout_groups": swa_error_report(hd, hf, hpred).to_dict("records"), "heldout_keys": sorted(hd["key"])}


def reuse_swa(record: dict, fitted: str, target: str, joint: bool = False) -> dict | None:
    """``target``'s SWA record from ``fitted``'s fit (xcup from xc7's: the same LUT6/CARRY fabric;
    the DSP and memory rules stay ``target``'s): reused as it is (``reused_from``) or, with
    ``joint``, its terms and fits refitted on both families' calibration rows (``fitted_with``, as
    the joint dot/sparse fit; ``keys`` are ``target``'s own, as there).
    Its error is measured on ``target``'s own held-out SWA draw (``measured_on``) and, where
    ``target`` has calibration rows, its goal scores on them (``goal_score_on_own_rows``,
    :func:`swa_goal_scores` of :func:`_cross_family_oof`). ``None`` without a held-out draw, or
    ``joint`` without rows of ``target``."""
    d, f = swa_rows(target)
    if joint and d.empty:
        return None
    model = {"multiplier": record.get("multiplier"), "resources": record["resources"]}
    keys = record["keys"]["calibration"]
    if joint:
        dp, fp = swa_rows(fitted)
        lt, ft, fitters = _swa_fit_of(record)
        model = _fit_swa_terms(pd.concat([dp, d], ignore_index=True), pd.concat([fp, f], ignore_index=True),
                               fitted, lt, ft, fitters)
        keys = sorted(d["key"])
    held = _swa_heldout(model, target)
    if not held["heldout_keys"]:
        return None
    rec = {k: v for k, v in record.items() if k not in ("cv_goal_score", "fit_choice")}
    rec.update(target=target, measured_on=target, cv={}, resources=model["resources"], multiplier=model["multiplier"],
               keys={"calibration": keys, "validation": held["heldout_keys"]},
               validation=held["validation"], heldout_groups=held["heldout_groups"],
               **({"fitted_with": [fitted, target]} if joint else {"reused_from": fitted}))
    if not d.empty:
        oof = _cross_family_oof(record, fitted, target, d, f, joint)
        rec["goal_score_on_own_rows"] = {k: round(v, 4) for k, v in swa_goal_scores(d, f, oof).items()}
        if joint:
            rec["cv"] = _engine_errors(oof.assign(engine="swa"), d.assign(engine="swa"))
    return rec


def fit_origin(record: dict, target: str) -> str:
    """Whose syntheses a stored fit of ``target`` was fitted on, in words (labels, reports)."""
    n, parent = len(record["keys"]["calibration"]), record.get("reused_from")
    if parent:
        return f"{parent} fit on {n} {parent} syntheses, reused"
    others = [f for f in record.get("fitted_with", []) if f != target]
    return f"{target} fit on its {n} syntheses" + (f" together with {' and '.join(others)}'s" if others else "")


#: how a family with its own SWA calibration rows and a parent (:data:`PRIMITIVES_OF`) picks
#: among its own fit, its parent's and the two fitted together (:func:`pick_swa_fit`)
SWA_REUSE_RULE = ("the least LUT + FF goal score on the family's own calibration rows, out of fold: its own fit "
                  "(at least MIN_SWA_ROWS kernels; 5-fold CV), its parent's terms and fits refitted per fold on "
                  "the parent's rows of the other folds' configs, or the same on both families' rows of the "
                  "other folds (folds by config); a tie keeps the earlier")


def pick_swa_fit(own: dict | None, reused: dict | None, joint: dict | None = None) -> dict | None:
    """The SWA record a family ships (:data:`SWA_REUSE_RULE`) among ``own`` (:func:`fit_swa`, None
    with too few rows), ``reused`` and ``joint`` (:func:`reuse_swa`, None without a parent fit or
    held-out draw); where there was a choice, the chosen one carries every score (``fit_choice``).
    Without own rows to score on, the parent's fit as it is."""
    named = {"own fit": (own, "cv_goal_score"), "parent's fit": (reused, "goal_score_on_own_rows"),
             "both families' rows": (joint, "goal_score_on_own_rows")}
    scores = {name: sum(r[key].values()) for name, (r, key) in named.items() if r is not None and key in r}
    if not scores:
        return reused
    pick = min(scores, key=scores.get)
    if len(scores) == 1:
        return named[pick][0]
    return {**named[pick][0], "fit_choice": {"rule": SWA_REUSE_RULE, "lut + ff goal score": {
        k: round(v, 4) for k, v in scores.items()}}}


#: LUT4 terms of the Lattice (ice40 / ecp5) model, per config: LUT multipliers' operand-bit
#: products (lanes · A · B, 0 where synth_ecp5 maps the multiplier to a MULT18X18D), the minifloat
#: aligner (lanes · P · S) and negation (lanes · P), adder-tree bits of registered and of
#: combinational levels, accumulator bits and index-mux bits
LATTICE_LUT_TERMS = ["const", "lut_mult_ab", "mf_shift", "mf_prod", "tree_bits_reg", "tree_bits_comb",
                     "acc_bits", "mux_bits"]
LATTICE_TARGETS = ("ice40", "ecp5")


def lattice_design_matrix(df: pd.DataFrame, target: str,
                          features: tuple[pd.DataFrame, list] | None = None) -> dict[str, np.ndarray]:
    """LUT4 design matrix (:data:`LATTICE_LUT_TERMS`), structural FF bits and the DSP count
    (``synth_ice40``: none; ``synth_ecp5``: MULT18X18D by :func:`costmodel.features.pair_props`).
    The multiplier terms are fitted per target (no shared multiplier model)."""
    f, _ = frame_features(df, target, return_pairs=True) if features is None else features
    lanes = f["lanes"].to_numpy(dtype=float)
    lut_mul = (f["mult_dsp"].to_numpy() == 0)
    mf = f["mf"].to_numpy() > 0
    pb = f["prod_bits"].to_numpy(dtype=float)
    tree = f["tree_bits"].to_numpy(dtype=float)
    tree_reg = f["tree_reg"].to_numpy(dtype=float)
    lut = np.column_stack([np.ones(len(f)), lanes * f["mul_a"].to_numpy() * f["mul_b"].to_numpy() * lut_mul,
                           lanes * pb * f["shift_bits"].to_numpy() * mf, lanes * pb * mf, tree_reg, tree - tree_reg,
                           f["acc_bits"].to_numpy(dtype=float), f["mux_bits"].to_numpy(dtype=float)])
    # registers, less the constant sign bit of each registered term of an unsigned × unsigned
    # product that Yosys' coarse passes (shared by every synth script) see (features._msb_kept)
    ff = f["reg_bits"].to_numpy(dtype=float) - f["unsigned_product"].to_numpy() * (
        f["reg_terms"].to_numpy() - f["reg_msb_kept"].to_numpy())
    return {"lut": lut, "ff": ff[:, None],
            "dsp": lanes * f["mult_dsp"].to_numpy(), "features": f}


def _pnr_rows(target: str) -> pd.DataFrame:
    d = _read_csv(PNR_CSV)
    d = d[d["target"] == target].reset_index(drop=True)
    if d.empty:
        raise ResourceModelError(f"no {target} syntheses in {PNR_CSV.name}; run python -m costmodel.pnr --target {target}")
    cfg = pd.concat([config_row(config_from_dict(json.loads(c))) for c in d["config"]], ignore_index=True)
    for c in ("key", "lut", "ff", "dsp", "bram"):
        cfg[c] = d[c].to_numpy()
    return cfg.rename(columns={"bram": "bram18"})


def lattice_rows(target: str) -> pd.DataFrame:
    """The stored bare-engine syntheses of ``target`` (ice40 / ecp5) the Lattice model is fitted
    on: the place-and-route sample (``data/pnr.csv``) and the random calibration draw
    (``data/doe_calibration.csv``), minus any held-out key; column ``target`` says whose."""
    rows = _pnr_rows(target).assign(target=target)
    drawn = stored_rows(DOE_CALIBRATION_CSV, target)
    if not drawn.empty:
        rows = pd.concat([rows, drawn[[c for c in drawn.columns if c in rows.columns or c == "yosys"]]],
                         ignore_index=True)
    return rows[~rows["key"].isin(heldout_keys())].drop_duplicates("key").reset_index(drop=True)


def _lattice_lut_matrix(rows: pd.DataFrame, target: str, terms: list[str], mult: dict | None) -> np.ndarray:
    """LUT4 design matrix of ``rows`` over ``terms``: :data:`LATTICE_LUT_TERMS`, or engine terms
    (:data:`LUT_TERMS`) built on the family's own measured multipliers and formula ``mult``."""
    if terms == LATTICE_LUT_TERMS:
        return lattice_design_matrix(rows, target)["lut"]
    return design_matrix(rows, target, mult, lut_terms=terms)["lut"]


#: the engine terms ECP5 chose before the deep $maccs (below): the sparse engines' multipliers apart, the index
#: mux's bits apart for minifloat and integer engines, the fabric $macc's full adders as maccmap
#: lays them out
_MACCMAP_TERMS = [*_MULT_LUT_TERMS, *_REST_TERMS, "prod_bits_comb", "macc_fa", "aligner_dup_p0",
                  "mult_measured_sparse", "mux_bits_mf", "mux_bits_int"]
#: the LUT term sets a Lattice fit chooses from by 5-fold CV (engine terms only where the family's
#: own multipliers are stored in ``primitives.csv``; "engine terms" are the Xilinx terms shipped
#: until the evening of 2026-12-04; "the multiplier formula's terms fitted on whole engines" the
#: engine terms shipped until 2026-12-03 evening, without the structure terms of
#: :data:`LUT_TERMS`; "the fabric $macc's full adders": ``macc_fa_signed``, which ECP5's CCU2C
#: carry chains, pricing a carry-chain adder's sum bits at no LUT4, set apart most; "abc9's
#: duplicated aligners": ``aligner_dup_p0``, design_matrix)
LATTICE_CANDIDATES = {
    "Lattice LUT4 terms": LATTICE_LUT_TERMS, "engine terms, the family's own multipliers": _ENGINE_TERMS_2026_12_04,
    "engine terms + unpipelined product bits": _ENGINE_TERMS_2026_12_04 + ["prod_bits_comb"],
    "engine terms, the multiplier formula's terms fitted on whole engines": [*_MULT_LUT_TERMS, *_REST_TERMS],
    "engine terms, the multiplier formula's terms fitted on whole engines + unpipelined product bits": [
        *_MULT_LUT_TERMS, *_REST_TERMS, "prod_bits_comb"],
    "2026-12-03 engine terms": [*_MULT_LUT_TERMS, *_REST_TERMS_2026_12],
    "2026-12-03 engine terms + unpipelined product bits": [*_MULT_LUT_TERMS, *_REST_TERMS_2026_12, "prod_bits_comb"],
    "engine terms, the family's own multipliers + the fabric $macc's full adders": _ENGINE_TERMS_2026_12_04 + [
        "macc_fa_signed"],
    "engine terms + unpipelined product bits + the fabric $macc's full adders": _ENGINE_TERMS_2026_12_04 + [
        "prod_bits_comb", "macc_fa_signed"],
    "engine terms, the multiplier formula's terms fitted on whole engines + unpipelined product bits + the fabric "
    "$macc's full adders": [*_MULT_LUT_TERMS, *_REST_TERMS, "prod_bits_comb", "macc_fa_signed"],
    "engine terms, the multiplier formula's terms fitted on whole engines + unpipelined product bits + the fabric "
    "$macc's full adders + abc9's duplicated aligners": [*_MULT_LUT_TERMS, *_REST_TERMS, "prod_bits_comb",
                                                         "macc_fa_signed", "aligner_dup_p0"],
    # the sparse engines' multipliers (behind the index mux) at a coefficient of their own, as in
    # the Xilinx terms of 2026-12-04 night: on ECP5 a sparse engine's lanes cost 1.3-1.8 x what
    # the terms above give, at every lane count (e2m2 x e2m2, 2:8, pipeline 3, k_max 5114: 539 /
    # 1,099 / 2,296 / 4,625 / 6,970 LUT4 for 4-48 lanes, 1.82-1.77 x), while the dense engine is
    # on it (8 lanes: 367 against 362)
    "those + the sparse engines' multipliers apart": [*_MULT_LUT_TERMS, *_REST_TERMS, "prod_bits_comb",
                                                       "macc_fa_signed", "aligner_dup_p0", "mult_measured_sparse"],
    "those + the sparse engines' multipliers apart, the index mux's bits apart for minifloat and integer engines": [
        *_MULT_LUT_TERMS, *_REST_TERMS, "prod_bits_comb", "macc_fa_signed", "aligner_dup_p0", "mult_measured_sparse",
        "mux_bits_mf", "mux_bits_int"],
    "the terms of 2026-12-04 night, the family's own multipliers": LUT_TERMS,
    "those + the sparse engines' multipliers apart, the index mux's bits apart for minifloat and integer engines, "
    "the fabric $macc's full adders as maccmap lays them out": _MACCMAP_TERMS,
    # the deep $maccs in front of the pipeline registers (design_matrix's deep_macc_fa)
    "those + the deep $maccs' full adders in front of the pipeline registers": [
        *_MACCMAP_TERMS, "deep_macc_fa"],
    "those, the deep $maccs' full adders in place of the adders merged into them": [
        *_split(_MACCMAP_TERMS, {"tree_bits_comb_int": ["tree_bits_comb_int_unmerged"]}), "deep_macc_fa"]}


def fit_lattice(target: str) -> dict:
    """Fit the LUT4 model of ``target`` (ice40 / ecp5) on its bare-engine Yosys syntheses
    (:func:`lattice_rows`); FF is the structural register count (no fitted coefficient), DSP the
    synth rule. LUT terms and fit: the :data:`LATTICE_CANDIDATES` set and :data:`LUT_FITS` fit
    chosen by :func:`select_lut_fit` (:data:`SELECTION_RULE`). Errors: on the held-out random
    draw of ``target`` where one is stored; ``cv`` holds the 5-fold CV errors either way."""
    rows = lattice_rows(target)
    own = fit_multiplier(target) if _cached_primitive_table(target) else None
    menu = {n: t for n, t in LATTICE_CANDIDATES.items() if t == LATTICE_LUT_TERMS or own is not None}
    chosen, cands, scores, oof = select_lut_fit(
        rows, lambda terms: _lattice_lut_matrix(rows, target, terms, own), menu, _drawn(rows))
    y = rows["lut"].to_numpy(dtype=float)
    applies = design_matrix(rows, target, own)["lane_model_rows"] if own is not None and _lane_table(target) else None
    if applies is not None:
        # a lane model on top of each fit's best engine-term candidate (not only the best one's: the
        # two fits' base scores lie close, and the lane model moves them apart)
        matrix = lambda ts: _lattice_lut_matrix(rows, target, ts, own)  # noqa: E731
        tops = {}
        for fit_ in LUT_FITS.values():
            named = [n for n, (t, f_, _) in cands.items() if f_ is fit_ and t != LATTICE_LUT_TERMS]
            if named:
                base = min(named, key=scores.get)
                tops[score_lane_model(rows, matrix, applies, base, cands[base][0], fit_, [np.ones(len(rows), bool)],
                                      scores, oof)] = base
        best = min(tops, key=scores.get)
        if scores[best] < scores[chosen]:
            chosen = best
            cands[chosen] = cands[tops[best]]
    terms, fitter, _ = cands[chosen]
    mult = own if terms != LATTICE_LUT_TERMS else None
    matrix = lambda ts: _lattice_lut_matrix(rows, target, ts, mult)  # noqa: E731
    lut = {"lut": {"terms": terms, "coef": fitter(matrix(terms), y).tolist()}}
    lanes = lane_model_of(chosen)
    if lanes:  # built on engine terms: mult is own
        lut = with_lane_model(lut, matrix, applies, y, fitter, lanes)
    model = {"kind": "lattice", "multiplier": mult, "resources": {**lut, "ff": {"terms": ["reg_bits"], "coef": [1.0]}}}
    pred = predict_frame(rows, target, model)
    pred["lut"] = oof[chosen].astype(np.int64)  # out-of-fold LUTs
    cv = _engine_errors(pred, rows)
    held = heldout_rows(target)
    held_pred = predict_frame(held, target, model) if not held.empty else held
    if held.empty:
        validation, rule = cv, "5-fold cross-validation by key over the fitted syntheses (no held-out random draw of this target stored)"
    else:
        validation, rule = _engine_errors(held_pred, held), CV_RULE
    drawn = rows["key"].isin(_read_csv(DOE_CALIBRATION_CSV)["key"]).any() if DOE_CALIBRATION_CSV.exists() else False
    files = ([PNR_CSV] + ([DOE_CALIBRATION_CSV] if drawn else []) + ([PRIMITIVES_CSV] if mult else [])
             + ([LANES_CSV] if "lut_lane_unmeasured" in lut else []) + ([MULT_CURVES_CSV] if _curve_table(target) else []))
    yosys = sorted(set(_read_csv(PNR_CSV)["yosys"]) | set(rows.get("yosys", pd.Series(dtype=str)).dropna()))
    return _record(
        ["dot", "sparse"], target, "lattice", model["resources"],
        {"ff": "structural register count", "dsp": f"synth_{target} rule (costmodel.features.mult_dsp)",
         "bram18": "no memories in the dot/sparse engines"},
        files, {"calibration": sorted(rows["key"]), "validation": sorted(held["key"]) if not held.empty else []},
        rule, yosys, validation, multiplier=mult, cv=cv, lut_terms_chosen=chosen,
        lut_terms_cv={n: round(v, 4) for n, v in scores.items()}, selection_rule=SELECTION_RULE,
        method=_method(fitter),
        heldout_groups=error_report(held, held_pred).to_dict("records") if not held.empty else [])


#: the fewest SWA calibration kernels a family's SWA model is fitted on (with fewer, as while its
#: draw is still running, its SWA estimates stay "not calibrated")
MIN_SWA_ROWS = 20


def write_coefficients(targets: list[str], path: Path = COEFFICIENTS_JSON) -> dict:
    """Refit ``targets`` (every engine with stored syntheses for each) and write ``coefficients.json``:
    ``{"schema": 2, "fits": {target: {"mac": record, "swa": record}}}`` (:func:`_record`); the
    stored fits of the other families are kept as they are."""
    try:
        stored = json.loads(path.read_text()).get("fits", {}) if path.exists() else {}
    except ValueError:
        stored = {}
    fits: dict = {t: rec for t, rec in stored.items() if t not in targets}
    xilinx = tuple(t for t in XILINX_TARGETS if t in targets)
    joint = fit_xilinx(xilinx) if xilinx else {}
    for t in sorted(targets, key=lambda t: t in PRIMITIVES_OF):  # a family another reuses comes first
        fits[t] = {"mac": joint[t] if t in joint else fit(t)}
        own = fit_swa(t) if len(swa_rows(t)[0]) >= MIN_SWA_ROWS else None
        parent = fits.get(PRIMITIVES_OF.get(t, ""), {}).get("swa")
        swa = pick_swa_fit(own, *((reuse_swa(parent, PRIMITIVES_OF[t], t, joint=j) for j in (False, True))
                                  if parent else (None, None)))
        if swa is not None:
            fits[t]["swa"] = swa
    rec = {"schema": 2, "fits": fits}
    path.write_text(json.dumps(rec, indent=1) + "\n")
    load_coefficients.cache_clear()
    return rec


@lru_cache(maxsize=None)
def load_coefficients(path: str = str(COEFFICIENTS_JSON)) -> dict:
    p = Path(path)
    if not p.exists():
        raise ResourceModelError(f"{p} is missing; run python -m costmodel.resources xc7 to fit it")
    return json.loads(p.read_text())


def model_for(target: str, family: str = "mac") -> tuple[dict | None, str]:
    """The fit of ``family`` (``"mac"``: dot/sparse, ``"swa"``) for ``target`` and the target it
    was fitted on (``xcup`` falls back to ``xc7``: same LUT6/CARRY fabric; DSP widths still follow
    ``target``'s rule; a reused fit stored under ``target`` (:func:`reuse_swa`) carries its error
    measured there). ``(None, target)`` for an SWA model never fitted on that target."""
    fits = load_coefficients()["fits"]
    for t in (target, PRIMITIVES_OF[target]) if target in PRIMITIVES_OF else (target,):
        if family in fits.get(t, {}):
            return fits[t][family], fits[t][family].get("reused_from", t)
    if family != "mac":
        return None, target
    raise ResourceModelError(f"no resource calibration for target {target!r} (have {sorted(fits)}); "
                             f"run python -m costmodel.calibrate engines --grid dense --target {target}, then "
                             f"python -m costmodel.resources xc7 {target}")


def predict_frame(df: pd.DataFrame, target: str = "xc7", model: dict | None = None,
                  features: tuple[pd.DataFrame, list] | None = None) -> pd.DataFrame:
    """LUT, FF, DSP, BRAM18 of every config row (vectorized).

    Returns
    -------
    DataFrame with ``lut ff dsp bram18`` (float LUT/FF rounded to whole cells; ints), same index.
    """
    if model is None:
        model, _ = model_for(target)
    terms = model["resources"]["lut"]["terms"]
    engine = None  # the engine-term design matrix (every fit but the Lattice LUT4 terms)
    if model.get("kind") == "lattice":
        dm = lattice_design_matrix(df, target, features)
        if terms != LATTICE_LUT_TERMS:  # the engine terms, on the family's own multipliers
            engine = design_matrix(df, target, model.get("multiplier"), features, lut_terms=terms)
            dm["lut"] = engine["lut"]
    else:
        dm = engine = design_matrix(df, target, model["multiplier"], features, lut_terms=terms)
    lut = dm["lut"] @ np.asarray(model["resources"]["lut"]["coef"])
    fallback = model["resources"].get("lut_lane_unmeasured")
    if fallback is not None:  # a lane model: sparse engines whose lane is not measured take its fallback
        cols = engine["lut_columns"]
        other = np.column_stack([cols[t] for t in fallback["terms"]]) @ np.asarray(fallback["coef"])
        lut = np.where(engine["lane_model_rows"], lut, other)
    ff = dm["ff"] @ np.asarray(model["resources"]["ff"]["coef"])
    return pd.DataFrame({
        "lut": np.rint(np.maximum(lut, 0)).astype(np.int64),
        "ff": np.rint(np.maximum(ff, 0)).astype(np.int64),
        "dsp": dm["dsp"].astype(np.int64),
        "bram18": np.zeros(len(df), dtype=np.int64),
    }, index=df.index)


#: the groups of the held-out DOE report (a row may be in several: "non-power-of-two lanes" cuts
#: across the others)
HELDOUT_GROUPS = ["dense same-format", "dense mixed", "sparse", "sparse+blocks", "non-power-of-two lanes", "all"]


def heldout_groups(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`HELDOUT_GROUPS` over config ``rows``."""
    eng = rows["engine"].to_numpy()
    same = (rows["wfmt"].astype(str) == rows["afmt"].astype(str)).to_numpy()
    block = rows["block"] if "block" in rows else pd.Series([None] * len(rows), index=rows.index)
    has_block = block.map(lambda b: b is not None and b == b and str(b) != "").to_numpy(dtype=bool)
    lanes = rows["lanes"].to_numpy(dtype=int)
    return {"dense same-format": (eng == "dot") & same, "dense mixed": (eng == "dot") & ~same,
            "sparse": (eng == "sparse") & ~has_block, "sparse+blocks": (eng == "sparse") & has_block,
            "non-power-of-two lanes": (lanes & (lanes - 1)) != 0, "all": np.ones(len(rows), bool)}


def stored_rows(path: Path, target: str = "xc7") -> pd.DataFrame:
    """The stored dot/sparse syntheses of ``target`` in ``path`` (a table with ``config`` JSON
    and the measured columns): config columns plus ``key lut ff dsp bram18 yosys date`` (empty
    when none)."""
    cols = ["key", "engine", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m", "block", "lut", "ff", "dsp",
            "bram18", "yosys", "date", "target"]
    if not path.exists():
        return pd.DataFrame(columns=cols)
    d = _read_csv(path)
    d = d[d["target"] == target].reset_index(drop=True)
    if d.empty:
        return pd.DataFrame(columns=cols)
    cfg = pd.DataFrame([json.loads(c) for c in d["config"]])
    for c in ("n", "m", "block"):
        if c not in cfg:
            cfg[c] = None
    for c in ("key", "lut", "ff", "dsp", "bram18", "yosys", "date"):
        cfg[c] = d[c].to_numpy()
    cfg["target"] = target
    return cfg


def heldout_rows(target: str = "xc7", path: Path = DOE_HELDOUT_CSV) -> pd.DataFrame:
    """The stored held-out DOE syntheses of ``target`` (empty when none)."""
    return stored_rows(path, target)


#: resamples of the bootstrap confidence intervals of the held-out LUT statistics (seeded)
BOOTSTRAP_RESAMPLES = 2000


def lut_stats(rel: np.ndarray) -> dict:
    """LUT statistics of signed relative errors ``rel`` (one group's rows): median and p90 of
    ``|rel|``, the signed median (bias), and a 95 % bootstrap confidence interval (percentile
    method, :data:`BOOTSTRAP_RESAMPLES` resamples of the rows, seed 0) of the median and of the
    p90: how far a draw of this many rows may move either figure."""
    a = np.abs(rel)
    boot = a[np.random.default_rng(0).integers(0, len(a), (BOOTSTRAP_RESAMPLES, len(a)))]
    ci = {name: tuple(float(v) for v in np.percentile(stat, [2.5, 97.5]))
          for name, stat in (("lut_median_ci", np.median(boot, axis=1)), ("lut_p90_ci", np.percentile(boot, 90, axis=1)))}
    return dict(lut_median=float(np.median(a)), lut_p90=float(np.percentile(a, 90)), lut_bias=float(np.median(rel)), **ci)


def error_report(rows: pd.DataFrame, pred: pd.DataFrame) -> pd.DataFrame:
    """Error of predictions ``pred`` against synthesized ``rows`` per group of
    :data:`HELDOUT_GROUPS`: rows ``n``, LUT median / p90 relative error with their 95 % bootstrap
    intervals, signed LUT median bias (:func:`lut_stats`), and the fraction of rows where FF, DSP
    and BRAM18 are exact."""
    cols = ["group", "n", "lut_median", "lut_p90", "lut_bias", "lut_median_ci", "lut_p90_ci", "ff_exact", "dsp_exact",
            "bram18_exact"]
    if rows.empty:
        return pd.DataFrame([{"group": g, "n": 0} for g in HELDOUT_GROUPS], columns=cols)
    y = {r: rows[r].to_numpy(dtype=float) for r in ("lut", "ff", "dsp", "bram18")}
    rel = (pred["lut"].to_numpy(dtype=float) - y["lut"]) / np.maximum(np.abs(y["lut"]), 1.0)
    out = []
    for g, m in heldout_groups(rows).items():
        rec = {"group": g, "n": int(m.sum())}
        if m.any():
            rec.update(lut_stats(rel[m]),
                       **{f"{r}_exact": float(np.mean(pred[r].to_numpy()[m] == y[r][m])) for r in ("ff", "dsp", "bram18")})
        out.append(rec)
    return pd.DataFrame(out, columns=cols)


#: groups of the SWA held-out report (:func:`swa_error_report`)
SWA_GROUPS = ["swa causal", "swa symmetric", "swa dense baseline", "swa int Q/K/V", "swa minifloat", "swa"]


def swa_groups(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`SWA_GROUPS` over SWA rows (their :func:`swa_rows` features)."""
    dense, sym = features["dense"].to_numpy() > 0, features["symmetric"].to_numpy() > 0
    ints = np.array([q.startswith(("int", "uint")) and v.startswith(("int", "uint"))
                     for q, v in zip(features["qk_fmt"], features["v_fmt"])])
    return {"swa causal": ~dense & ~sym, "swa symmetric": sym, "swa dense baseline": dense, "swa int Q/K/V": ints,
            "swa minifloat": ~ints, "swa": np.ones(len(features), bool)}


def swa_error_report(rows: pd.DataFrame, features: pd.DataFrame, pred: pd.DataFrame) -> pd.DataFrame:
    """Error of SWA predictions ``pred`` against synthesized ``rows`` (features ``features``) per
    group of :data:`SWA_GROUPS`: ``n``, LUT median / p90 / signed median, FF median / p90 relative
    error (LUT with 95 % bootstrap intervals, :func:`lut_stats`), and the fraction of rows where
    DSP and BRAM18 are exact."""
    cols = ["group", "n", "lut_median", "lut_p90", "lut_bias", "lut_median_ci", "lut_p90_ci", "ff_median", "ff_p90",
            "dsp_exact", "bram18_exact"]
    if rows.empty:
        return pd.DataFrame([{"group": g, "n": 0} for g in SWA_GROUPS], columns=cols)
    rel = {r: (pred[r].to_numpy(dtype=float) - rows[r].to_numpy(dtype=float))
           / np.maximum(np.abs(rows[r].to_numpy(dtype=float)), 1.0) for r in ("lut", "ff")}
    out = []
    for g, m in swa_groups(features).items():
        rec = {"group": g, "n": int(m.sum())}
        if m.any():
            a = {r: np.abs(rel[r][m]) for r in rel}
            rec.update(lut_stats(rel["lut"][m]), ff_median=float(np.median(a["ff"])),
                       ff_p90=float(np.percentile(a["ff"], 90)),
                       **{f"{r}_exact": float(np.mean(pred[r].to_numpy()[m] == rows[r].to_numpy(dtype=float)[m]))
                          for r in ("dsp", "bram18")})
        out.append(rec)
    return pd.DataFrame(out, columns=cols)


def swa_heldout_report(target: str = "xc7", model: dict | None = None) -> pd.DataFrame:
    """:func:`swa_error_report` of the SWA model (the shipped fit of ``target`` unless ``model``)
    on the held-out SWA draw (``data/swa_doe_heldout.csv``, never fitted on); stored rows only."""
    d, f = swa_rows(target, heldout=True)
    if d.empty:
        return swa_error_report(d, f, d)
    model = model if model is not None else model_for(target, "swa")[0]
    return swa_error_report(d, f, predict_swa(f, model, target))


def heldout_report(target: str = "xc7", model: dict | None = None, path: Path = DOE_HELDOUT_CSV) -> pd.DataFrame:
    """:func:`error_report` of the resource model (the shipped fit of ``target`` unless
    ``model``) on the held-out DOE rows (``data/doe_heldout.csv``, never fitted on). Stored rows
    only; no synthesis."""
    rows = heldout_rows(target, path)
    return error_report(rows, predict_frame(rows, target, model) if not rows.empty else rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m costmodel.resources [TARGET …]``: refit every model from the stored syntheses
    and write ``data/coefficients.json``."""
    ap = argparse.ArgumentParser(prog="python -m costmodel.resources", description=(
        "Refit the resource models (MAC engines, SWA, Lattice LUT4) from the stored Yosys syntheses in "
        "costmodel/data and write costmodel/data/coefficients.json."))
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help="synthesis targets to fit: xc7, xcup, ice40, ecp5 (default xc7; all four = the shipped file)")
    ap.add_argument("--cv", action="store_true",
                    help="instead of refitting, print every candidate LUT term set x fit of the xc7 + xcup model with its "
                         "goal score and 5-fold cross-validated median / p90 on the random calibration draws, best "
                         "first (the refit takes the first)")
    ap.add_argument("--swa-cv", action="store_true",
                    help="instead of refitting, print the 5-fold cross-validation of every candidate SWA LUT and FF "
                         "term set on the stored xc7 SWA calibration rows")
    args = ap.parse_args(argv)
    if args.cv:
        print(cv_table().to_string(index=False, formatters={"goal score": "{:.3f}".format}, float_format="{:.1%}".format))
        return 0
    if args.swa_cv:
        table = swa_cv_table().sort_values(["resource", "goal score"], kind="stable").drop(columns=["terms", "n"])
        print(table.to_string(index=False, formatters={"goal score": "{:.3f}".format}, float_format="{:.1%}".format))
        return 0
    targets = args.targets or ["xc7"]
    bad = sorted(set(targets) - {"xc7", "xcup", "ice40", "ecp5"})
    if bad:
        ap.error(f"no calibration data for target(s) {', '.join(bad)}: choose from xc7, xcup, ice40, ecp5")
    rec = write_coefficients(targets)
    for t, fits in rec["fits"].items():
        for family, r in fits.items():
            k = r["keys"]
            print(f"[{t} {family}] {fit_origin(r, t)}, held out {len(k['validation'])} ({r['split_rule']})")
            for eng, errs in r["validation"].items():
                print(f"  {eng}: " + ", ".join(f"{k} median {v['median_rel_err']:.1%} p90 {v['p90_rel_err']:.1%}"
                                              for k, v in errs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
