"""Ground truth for the resource model: synthesize grids of configs with Yosys and store them.

Two tables live in ``costmodel/data/`` (shipped as package data):

``primitives.csv``
    One exact multiplier (``hw.arith.multiplier``) per (weight, activation) format pair, alone and
    combinational: the per-primitive LUT / carry / DSP cost that :mod:`costmodel.resources` uses
    as a feature.
``buffers.csv``
    On-chip buffers (depth × width ``Memory``, one write and one synchronous read port): where
    Yosys puts them (LUTRAM or BRAM18) — checks :func:`costmodel.features.buffer_cost`.
``lanes.csv``
    One lane of a sparse engine alone (:class:`SparseLane`: an m:1 index mux feeding the exact
    multiplier of the format pair) per (weight, activation, m): on ECP5, abc9 maps a lane at up to
    twice its mux and multiplier alone, by format pair and m, in no pattern a formula of the
    formats follows; the model reads the measured lane where stored (:func:`lane_triples`).
``mult_curves.csv``
    The exact multiplier of a format pair alone under abc9 delay targets (ECP5, ``scratchpad -set
    abc9.D``): its area form (:data:`~costmodel.store.AREA_DELAY_PS`, a target no path reaches) for
    every pair, and its curve (:data:`~costmodel.store.CURVE_DELAYS_PS`) for each whose area form
    is smaller than its delay form (``primitives.csv``). In an engine with a register right after
    the multipliers abc9 recovers area on them down to what the slowest run of adders leaves them
    (:func:`costmodel.latency.multiplier_budget_ns`); the model reads the curve there. The pairs of
    the stored engines come first (:func:`synthesize_curves`).
``muxes.csv``
    The sparse engine's N:M index mux (``hw.sparse.IndexMux``) alone, over lanes, N:M and
    activation widths: checks the LUT6 count of an m:1 mux (:func:`costmodel.features.mux_lut6_per_bit`).
``swa_calibration.csv``
    The sliding-window attention kernel (``hw.swa``), causal int Q/K/V configs (grid ``swa``).
``doe_heldout.csv``
    Whole engines (``dot``, ``sparse``) drawn by a seeded random design of experiments over the
    space the CLI accepts (grid ``doe``, :func:`doe_grid`). **Every row of this file is held out**:
    the configs are fixed by ``(seed, index)`` before any synthesis, the file is never fitted on
    (:func:`heldout_keys`; :func:`costmodel.resources.fit` drops any calibration row whose key is
    in it), and it serves only to report the model's error on the space users ask for
    (:func:`costmodel.resources.heldout_report`). Each row stores its command, seed and index.
``doe_calibration.csv``
    The same kind of random draw with another seed (``--split calibration``, seed 1): fitted on
    beside ``calibration.csv``. Both draws run for every family (xc7, xcup, ice40, ecp5).
``swa_doe_calibration.csv``, ``swa_doe_heldout.csv``
    SWA kernels drawn at random (grid ``swa-doe``, :func:`swa_doe_grid`): causal, symmetric and
    dense-baseline kernels over every Q/K and V format; the same seeds and split rule as ``doe``.
``order_check.csv``
    Dense engines with a mixed format pair synthesized in both operand orders (grid ``order``,
    :func:`order_grid`): checks that the operand order changes neither Yosys' result (beyond a few
    LUTs) nor the estimate. Never fitted on.
``synth_failures.csv``
    Configs Yosys itself failed on (an internal assertion, say), with the table they were meant
    for, the error line, the Yosys version and the date: skipped by resumed runs, never fitted.
``calibration.csv``
    Whole engines (``hw.engines``: dense ``dot``, ``sparse`` N:M) over formats int2–8 and every
    minifloat of 4–8 bits, lanes 1–64, k_max, pipeline depth and N:M patterns (grids ``dense``,
    ``sparse``, and ``smallint``: LUT-multiplier int2–int4 engines, mostly unpipelined).

Every row carries the Yosys version, the UTC date and the wall time of its synthesis; the command
that produced a table is stored in ``calibration_meta.json``. Runs are resumable: rows whose
``key`` is already in the CSV are skipped, and each finished row is appended at once. After a
change to the generators (or the tools), ``--again-before DATE`` synthesizes the rows of the table
and target stored before ``DATE`` again, each new row in place of its old one; ``logic-cells``
then packs again every design synthesized since it was packed.

Calibration / validation split (documented rule, every engine and target)
------------------------------------------------------------------------
A row is *held out for validation* when ``int(key[:8], 16) % 5 == 0`` (``key`` = sha1 of the
config's canonical JSON plus the target), i.e. about 20 % of configs, chosen independently of
their results and stable when the grid grows. :func:`split` applies it.

Command line::

    python -m costmodel.calibrate primitives --target xc7
    python -m costmodel.calibrate buffers --target xc7
    python -m costmodel.calibrate muxes --target xc7
    python -m costmodel.calibrate lanes --target ecp5 [--limit N]                        # hours; resumable
    python -m costmodel.calibrate engines --grid dense --target xc7 [--limit N]
    python -m costmodel.calibrate engines --grid sparse --target xc7
    python -m costmodel.calibrate engines --grid smallint --target xc7
    python -m costmodel.calibrate engines --grid swa --target xc7
    python -m costmodel.calibrate engines --grid doe --split calibration --count 400 --target xc7  # seed 1, fitted
    python -m costmodel.calibrate engines --grid doe --split heldout --count 200 --target xc7      # seed 0, held out
    python -m costmodel.calibrate engines --grid swa-doe --split calibration --count 120 --target xc7  # SWA, seed 1
    python -m costmodel.calibrate engines --grid swa-doe --split heldout --count 60 --target xc7       # SWA, seed 0
    python -m costmodel.calibrate engines --grid order --target xc7                      # not fitted

``make calibrate`` runs all of them in sequence (hours; stop it any time and run it again to
resume); ``make bench-costmodel`` reports from the stored rows only (minutes).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.arith import ConfigError, multiplier
from hw.engines import config_from_dict
from hw.rtl import ABC9_TARGETS, TARGETS, SynthError, synthesize, verilog_text, yosys_version
from hw.sparse import IndexMux
from hw.swa import SWAConfig
from hw.engine import tree_levels
from quant.formats import IntFormat, MinifloatFormat, all_formats, parse_format

from .packing import measure_stored
from .pnr import PNR_CSV
from .store import (AREA_DELAY_PS, BUFFER_FIELDS, BUFFERS_CSV, CALIBRATION_CSV, CURVE_DELAYS_PS, CURVE_FIELDS,
                    CURVE_FLAT_LUTS, DOE_CSV, DOE_FIELDS, ENGINE_FIELDS, MULT_CURVES_CSV, FAILURES_CSV, LANE_FIELDS,
                    LANE_MS, LANES_CSV, MEASURED, META_JSON, MUX_FIELDS,
                    MUXES_CSV, ORDER_CHECK_CSV, PRIM_FIELDS, PRIMITIVES_CSV, SWA_CALIBRATION_CSV, SWA_DOE_CSV,
                    SWA_DOE_FIELDS, SWA_DOE_BOUNDS, SWA_FIELDS, SWABounds, append, config_columns, config_key, done_keys,
                    failed_keys, forget_failure, heldout_keys, now, parse_date, record_failure, replace_row,
                    stored_before, swa_doe_bounds)


INT_FORMATS = [f"int{b}" for b in range(2, 9)]
#: every ExMy minifloat of 4..8 bits (1 sign + E + M), default options
MINIFLOAT_FORMATS = [f"e{e}m{t - 1 - e}" for t in range(4, 9) for e in range(1, t)]
FORMATS = INT_FORMATS + MINIFLOAT_FORMATS
#: mixed (weight, activation) pairs synthesized besides the same-format ones
MIXED_PAIRS = [
    ("int2", "int8"), ("int4", "int8"), ("int8", "int4"), ("int3", "int6"), ("int4", "e4m3"),
    ("e2m1", "int8"), ("e2m1", "e4m3"), ("e4m3", "e5m2"), ("e3m2", "e2m3"), ("int8", "e4m3"),
    ("e2m1", "int4"), ("int6", "int6"),
]
#: the operand-order check: pairs of MIXED_PAIRS (and two new ones) synthesized in the other order
#: too, so that (w, a) and (a, w) are both measured (``hw.arith.multiplier`` builds the same
#: circuit up to the order of the ``$mul`` / ``$add`` operands; Yosys gives equal LUTs)
ORDER_PAIRS = [
    ("e4m3", "int8"), ("e4m3", "int4"), ("int8", "e2m1"), ("int4", "e2m1"), ("e2m3", "e3m2"),
    ("e3m2", "int8"), ("int8", "e3m2"), ("e4m3", "int6"), ("int6", "e4m3"),
]

#: narrow (symmetric range) and unsigned integer pairs around the DSP threshold: the product Yosys
#: sees is ``product_bits`` wide (the exact range), narrower than the operands' sum for narrow
#: formats, which moves a multiplier across ``DSP_Y_MINWIDTH``
NARROW_PAIRS = [
    ("int6n", "int3n"), ("int5n", "int4n"), ("int8n", "int8n"), ("int6n", "int8n"), ("uint4", "uint4"),
    ("uint5", "int4"), ("uint8", "uint8"), ("int4n", "uint5"), ("uint3", "uint6"), ("int2n", "uint4"),
    ("int7n", "int3n"), ("uint4", "int2n"),
]

#: (depth, width) of the synthesized on-chip buffers (one write port, one synchronous read port):
#: the first eight span LUTRAM and block RAM; the rest add the shallow memories an iCE40 leaves in
#: flip-flops (2 × 32: a 4-kbit block costs more than 64 bits of logic; 4 × 16: a tie), odd
#: widths and depths between the cells' own
BUFFER_SHAPES = [(32, 8), (64, 8), (128, 8), (256, 16), (512, 8), (1024, 18), (2048, 36), (4096, 4),
                 (2, 32), (4, 16), (8, 16), (16, 48), (40, 28), (300, 10), (3000, 20),
                 # near ties, where memory_libmap's integer best cost keeps LUTRAM over a block RAM
                 # that costs a fraction less (features._libmap_choice): xc7, xcup, ECP5 plain, ECP5
                 # transparent
                 (1900, 1), (80, 29), (240, 12), (70, 19), (185, 7), (200, 5), (40, 31), (170, 7)]
#: (lanes, n, m, activation bits) of the synthesized standalone index muxes
MUX_SHAPES = [(4, 2, 2, 5), (4, 2, 4, 5), (4, 2, 4, 3), (4, 2, 8, 5), (4, 1, 8, 3), (8, 4, 8, 8), (2, 1, 16, 4),
              (4, 4, 4, 2)]


# ---- grids ------------------------------------------------------------------------------------


#: format pairs drawn at random (seeded) over every format the CLI accepts, beside the chosen ones:
#: the multiplier formula is fitted on the space, not only on hand-picked pairs
RANDOM_PRIMITIVES = 40


def random_pairs(count: int = RANDOM_PRIMITIVES, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` (weight, activation) pairs drawn uniformly over :func:`quant.formats.all_formats`
    (seeded; a longer draw starts with the shorter one)."""
    names = [str(f) for f in all_formats()]
    rng = random.Random(seed)
    return [(rng.choice(names), rng.choice(names)) for _ in range(count)]


def primitive_pairs() -> list[tuple[str, str]]:
    """Same-format pairs of every format in :data:`FORMATS`, plus :data:`MIXED_PAIRS`,
    :data:`ORDER_PAIRS`, :data:`NARROW_PAIRS`, :func:`random_pairs`, and every other format the
    CLI accepts (:func:`quant.formats.all_formats`: narrow, unsigned, 3-bit minifloats, IEEE/OCP
    variants) with itself, every unordered pair of integer formats (signed, narrow, unsigned, 2–8
    bits), and then every other unordered pair of formats (minifloat × int, minifloat × minifloat),
    in either order once: every engine the CLI accepts then has a measured multiplier (the
    multiplier is operand-order free, :func:`costmodel.resources._primitive_table`). The list
    grows at its end only, so the stored runs of a shorter list stay valid (resumable)."""
    ints, mfs = _doe_formats()
    rest = [(f, f) for f in ints + mfs if f not in FORMATS]
    int_pairs = [(w, a) for i, w in enumerate(ints) for a in ints[i + 1:]]
    chosen = [(f, f) for f in FORMATS] + MIXED_PAIRS + ORDER_PAIRS + NARROW_PAIRS + random_pairs() + rest + int_pairs
    seen = {tuple(sorted(p)) for p in chosen}
    names = ints + mfs
    others = [(w, a) for i, w in enumerate(names) for a in names[i + 1:] if tuple(sorted((w, a))) not in seen]
    return chosen + others


def _pipeline_choices(lanes: int) -> list[int]:
    top = (lanes - 1).bit_length() + 1
    return sorted({0, 1, top})


def dense_grid(seed: int = 0) -> list[dict]:
    """Dense-engine configs: every format (w = a) at 3 random lane counts from 1–16 (1–4 for
    E ≥ 5 minifloats), the mixed pairs at one, and 32/64 lanes for six common formats; random
    k_max and pipeline depth."""
    rng = random.Random(seed)
    out = []
    pairs = [(f, f) for f in FORMATS]
    for w, a in pairs:
        # wide-exponent minifloats (E >= 5) align products into 60-260-bit words: at most 4 lanes,
        # to keep each synthesis within minutes
        choices = [1, 2, 4] if w.startswith(("e5", "e6", "e7")) else [1, 2, 4, 8, 16]
        for lanes in rng.sample(choices, 3):
            out.append(dict(engine="dot", lanes=lanes, wfmt=w, afmt=a, k_max=rng.choice([64, 1024, 4096]),
                            pipeline=rng.choice(_pipeline_choices(lanes))))
    for w, a in MIXED_PAIRS:
        lanes = rng.choice([2, 4, 8])
        out.append(dict(engine="dot", lanes=lanes, wfmt=w, afmt=a, k_max=rng.choice([64, 1024, 4096]),
                        pipeline=rng.choice(_pipeline_choices(lanes))))
    for f in ["int2", "int4", "int8", "e2m1", "e4m3", "e3m2"]:
        for lanes in (32, 64):
            out.append(dict(engine="dot", lanes=lanes, wfmt=f, afmt=f, k_max=4096, pipeline=1))
    return out


def sparse_grid(seed: int = 1) -> list[dict]:
    """Sparse-engine configs: N:M in {1:2, 2:4, 1:4, 2:8, 4:8} over a format subset, lanes 1–16
    (32 for a few), random k_max and block."""
    rng = random.Random(seed)
    fmts = ["int2", "int3", "int4", "int5", "int6", "int8", "e2m1", "e3m0", "e2m2", "e3m2", "e2m3",
            "e4m3", "e5m2", "e3m4", "e1m6", "e4m2", "e2m5"]
    nms = [(1, 2), (2, 4), (1, 4), (2, 8), (4, 8)]
    out = []
    for f in fmts:
        for n, m in rng.sample(nms, 3):
            lanes = n * rng.choice([1, 2, 4, 8])
            lanes = min(lanes, 16) if lanes > 16 and lanes % n == 0 else lanes
            out.append(dict(engine="sparse", lanes=lanes, n=n, m=m, wfmt=f, afmt=f,
                            k_max=rng.choice([64, 1024, 4096]), block=None,
                            pipeline=rng.choice(_pipeline_choices(lanes))))
    for f in ["int4", "int8", "e4m3"]:
        out.append(dict(engine="sparse", lanes=32, n=2, m=4, wfmt=f, afmt=f, k_max=4096, block=None, pipeline=1))
    return out


def smallint_grid(seed: int = 2) -> list[dict]:
    """Engines whose int × int multipliers Yosys builds in LUTs (int2–int4 on xc7), mostly with
    no pipeline register: there ``alumacc`` merges the multipliers and the adder tree into one
    ``$macc`` (full-adder compression) and ABC maps it very differently from the registered case.
    Per format: dense at two lane counts with pipeline 0, sparse at three random N:M patterns
    (pipeline 0, 0 and a random choice)."""
    rng = random.Random(seed)
    nms = [(1, 2), (2, 4), (1, 4), (2, 8), (4, 8)]
    out = []
    for f in ["int2", "int3", "int4"]:
        for lanes in rng.sample([2, 4, 8, 16], 2):
            out.append(dict(engine="dot", lanes=lanes, wfmt=f, afmt=f, k_max=rng.choice([64, 1024, 4096]),
                            pipeline=0))
        for i, (n, m) in enumerate(rng.sample(nms, 3)):
            lanes = min(n * rng.choice([1, 2, 4, 8]), 16)
            out.append(dict(engine="sparse", lanes=lanes, n=n, m=m, wfmt=f, afmt=f,
                            k_max=rng.choice([64, 1024, 4096]), block=None,
                            pipeline=0 if i < 2 else rng.choice(_pipeline_choices(lanes))))
    return out


def swa_grid(seed: int = 3) -> list[dict]:
    """SWA kernels (``hw.swa``), causal sliding window, int Q/K/V: head_dim, window and lanes
    around the shapes the students use (``seed`` unused: the grid is fixed)."""
    shapes = [(16, 16, 16, "int8"), (16, 16, 8, "int8"), (16, 16, 4, "int8"), (16, 64, 16, "int8"),
              (32, 16, 16, "int8"), (32, 32, 16, "int8"), (32, 64, 16, "int8"), (16, 32, 16, "int4"),
              (16, 32, 8, "int8"), (32, 16, 8, "int8"), (16, 16, 16, "int4"),
              # wider spread: 2 and 32 lanes, head_dim 8 and 64, windows 8 and 128, int6 / int4
              (16, 16, 2, "int8"), (8, 16, 8, "int8"), (64, 16, 16, "int8"), (16, 128, 16, "int8"),
              (16, 8, 16, "int8"), (16, 16, 16, "int6"), (32, 16, 16, "int4"), (32, 32, 32, "int8"),
              (64, 32, 8, "int6"),
              # LUT multipliers (int4/int5 Q·K below the DSP threshold): a family of its own
              (16, 16, 8, "int4"), (32, 32, 16, "int4"), (16, 64, 16, "int4"), (8, 16, 8, "int4"),
              (16, 32, 16, "int5")]
    return [SWAConfig(d, w, lanes, f, f).to_dict() for d, w, lanes, f in shapes]


def order_grid(seed: int = 4) -> list[dict]:
    """Dense engines of mixed minifloat × int pairs, each in both operand orders at the same
    shape (lanes, k_max, pipeline): the operand-order check (``order_check.csv``)."""
    shapes = [(8, "e3m2", "int8", 1024, 1), (6, "e4m3", "int6", 2000, 2), (5, "e2m3", "int8", 300, 0)]
    out = []
    for lanes, w, a, k, p in shapes:
        for ww, aa in ((w, a), (a, w)):
            out.append(dict(engine="dot", lanes=lanes, wfmt=ww, afmt=aa, k_max=k, pipeline=p))
    return out


#: every format the CLI accepts (quant.formats.all_formats: ints 2–8 signed / narrow / unsigned,
#: every ExMy minifloat of 3–8 bits, the OCP / IEEE FP8 variants)
def _doe_formats() -> tuple[list[str], list[str]]:
    fmts = [str(f) for f in all_formats()]
    ints = [str(f) for f in all_formats() if isinstance(f, IntFormat)]
    return ints, [f for f in fmts if f not in ints]


#: wide-exponent minifloats (E >= 5) align products into 60–260-bit words; the DOE caps their
#: engines at this many lanes so that one synthesis stays within minutes
DOE_WIDE_EXP_MAX_LANES = 8
DOE_MAX_LANES = 64
DOE_K_RANGE = (16, 16384)
#: the documented seed of each DOE split: the held-out draw and the calibration draw never share one
DOE_SEEDS = {"heldout": 0, "calibration": 1}


def _wide_exp(fmt: str) -> bool:
    f = parse_format(fmt)
    return isinstance(f, MinifloatFormat) and f.exponent_bits >= 5


def _log_uniform_int(rng: random.Random, lo: int, hi: int) -> int:
    """An integer log-uniform over ``lo..hi`` (one draw of ``rng``)."""
    return max(lo, min(hi, int(round(2 ** rng.uniform(np.log2(lo), np.log2(hi))))))


def doe_config(rng: random.Random) -> dict:
    """One random dot / sparse config over the space the CLI accepts (:func:`doe_grid`)."""

    ints, mfs = _doe_formats()
    kind = rng.choice(["same", "mf_int", "int_mf", "mf_mf", "int_int"])
    if kind == "same":
        w = rng.choice(ints + mfs)
        a = w
    else:
        w = rng.choice(mfs if kind in ("mf_int", "mf_mf") else ints)
        a = rng.choice(mfs if kind in ("int_mf", "mf_mf") else ints)
    cap = DOE_WIDE_EXP_MAX_LANES if (_wide_exp(w) or _wide_exp(a)) else DOE_MAX_LANES
    # lanes log-uniform over 1..cap (non-powers of two included), k_max log-uniform over DOE_K_RANGE
    lanes = _log_uniform_int(rng, 1, cap)
    k_max = _log_uniform_int(rng, *DOE_K_RANGE)
    engine = rng.choice(["dot", "sparse"])
    if engine == "dot":
        return dict(engine="dot", lanes=lanes, wfmt=w, afmt=a, k_max=k_max,
                    pipeline=rng.randint(0, tree_levels(lanes) + 1))
    m = rng.choice([2, 4, 8, 16])
    n = rng.randint(1, min(m - 1, cap))
    lanes = n * max(1, int(round(lanes / n)))
    while lanes > cap:
        lanes -= n
    lanes = max(lanes, n)
    span = lanes // n * m
    block = None if rng.random() < 0.5 else span * rng.choice([1, 2, 4, 8])
    return dict(engine="sparse", lanes=lanes, n=n, m=m, wfmt=w, afmt=a, k_max=k_max, block=block,
                pipeline=rng.randint(0, tree_levels(lanes) + 1))


def doe_grid(seed: int = 0, count: int = 400) -> list[dict]:
    """A seeded random design of experiments over the space the CLI accepts, ``count`` configs.

    Per config (each draw from ``random.Random(seed)``, in order, so that the first ``c`` configs
    of ``count`` > ``c`` are the ``c`` configs of a shorter run): the format pair — same format,
    minifloat × int, int × minifloat, minifloat × minifloat or int × int, each 1/5 — from every
    format of :func:`quant.formats.all_formats`; lanes log-uniform over 1–64 (non-powers of two
    included; at most :data:`DOE_WIDE_EXP_MAX_LANES` for E ≥ 5 minifloats); k_max log-uniform over
    16–16384; engine dot or sparse (1/2 each); for sparse, m in {2, 4, 8, 16}, n uniform in
    1..m-1, lanes rounded to a multiple of n, block none (1/2) or span × {1, 2, 4, 8}; pipeline
    uniform over every depth 0..tree_levels(lanes) + 1. Seed 0 is the held-out draw
    (``doe_heldout.csv``), seed 1 the calibration draw (``doe_calibration.csv``): module
    docstring, :data:`DOE_SEEDS`."""
    rng = random.Random(seed)
    return [doe_config(rng) for _ in range(count)]


def swa_doe_config(rng: random.Random, bounds: SWABounds = SWA_DOE_BOUNDS) -> dict:
    """One random SWA kernel config (:func:`swa_doe_grid`) within ``bounds``; configs
    ``SWAConfig`` rejects (an exponent constant or reciprocal too wide for the format) are drawn
    again."""
    ints, mfs = _doe_formats()
    while True:
        variant = rng.choice(["causal", "causal", "symmetric", "dense"])
        qk, v = rng.choice(ints + mfs), rng.choice(ints + mfs)
        cap = min(DOE_WIDE_EXP_MAX_LANES, bounds.max_lanes) if (_wide_exp(qk) or _wide_exp(v)) else bounds.max_lanes
        lanes = _log_uniform_int(rng, 1, cap)
        chunks = _log_uniform_int(rng, 1, max(1, bounds.max_head_dim // lanes))
        window = _log_uniform_int(rng, *bounds.window)
        if variant == "symmetric":
            window = max(3, window | 1)  # [i - h, i + h]: odd
        try:
            cfg = SWAConfig(lanes * chunks, window, lanes, qk, v, causal=variant != "symmetric",
                            dense=variant == "dense")
        except ConfigError:
            continue
        return cfg.to_dict()


def swa_doe_grid(seed: int = 0, count: int = 120, bounds: SWABounds = SWA_DOE_BOUNDS) -> list[dict]:
    """A seeded random design of experiments over the SWA kernels the CLI accepts, ``count``
    configs (prefix-stable like :func:`doe_grid`): variant causal (1/2), symmetric (1/4) or the
    dense baseline (1/4); Q/K and V formats each uniform over every format of
    :func:`quant.formats.all_formats`; geometry within ``bounds`` (default :data:`SWA_DOE_BOUNDS`:
    lanes log-uniform over 1–32, 1–8 with an E ≥ 5 minifloat; head_dim = lanes × chunks, chunks
    log-uniform up to head_dim 128; window log-uniform over 2–256 keys, odd when symmetric, the
    dense baseline's longest sequence; a family's own: :func:`swa_doe_bounds`). The softmax widths
    (``exp_bits``, ``recip_bits``, …) keep their defaults. Seeds as :data:`DOE_SEEDS`."""
    rng = random.Random(seed)
    return [swa_doe_config(rng, bounds) for _ in range(count)]


GRIDS = {"dense": dense_grid, "sparse": sparse_grid, "smallint": smallint_grid, "swa": swa_grid, "doe": doe_grid,
         "swa-doe": swa_doe_grid, "order": order_grid}


# ---- running ----------------------------------------------------------------------------------


def _record_command(kind: str, argv: list[str]) -> None:
    """Record the command that made ``kind``'s rows (without ``--jobs``: the rows do not depend on it)."""
    meta = json.loads(META_JSON.read_text()) if META_JSON.exists() else {}
    kept = [a for i, a in enumerate(argv) if not a.startswith("--jobs") and (i == 0 or argv[i - 1] != "--jobs")]
    meta.setdefault("commands", {})[kind] = " ".join(["python -m costmodel.calibrate", *kept])
    meta["yosys"] = yosys_version()
    meta["synth_scripts"] = TARGETS
    meta["updated"] = now()
    meta["split_rule"] = ("validation iff int(key[:8], 16) % 5 == 0 (key = sha1 of [config, target]); every row "
                          "of doe_heldout.csv (grid doe, drawn by seed before synthesis) is held out, never fitted")
    META_JSON.parent.mkdir(parents=True, exist_ok=True)
    META_JSON.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


@dataclass(frozen=True)
class SynthJob:
    """One synthesis to store: ``spec`` (hashed with the target into the row's key), ``build``
    (makes the component or engine config), the row's own identifying ``columns``, a ``label``
    for the progress line and ``options`` of :func:`hw.rtl.synthesize` (an abc9 delay target)."""

    spec: dict
    build: Callable[[], Any]
    columns: dict
    label: str
    options: dict = field(default_factory=dict)




def synthesize_missing(jobs: Iterable[SynthJob], path: Path, fields: list[str], target: str = "xc7",
                       limit: int | None = None, progress: bool = True,
                       failures: Path | None = None, workers: int = 1, retry_failed: bool = False,
                       before: str | None = None) -> int:
    """Synthesize every job whose key is not yet in ``path`` and append its row as soon as it
    finishes (a killed run loses at most the syntheses in flight); at most ``limit`` syntheses,
    ``workers`` Yosys processes at a time (the designs are elaborated to Verilog here, one at a
    time, in job order). A synthesis Yosys fails on is recorded in ``failures`` (default
    :data:`FAILURES_CSV`) with its error line and skipped, now and on every resumed run, so one
    tool crash never stops a long calibration; ``retry_failed``: run the recorded ones again (one
    that now runs loses its record). ``before`` (a :func:`~costmodel.store.parse_date` string):
    the jobs whose row was stored before then are synthesized again, each new row in place of its
    old one (after a change to the generators). Returns how many ran (failures included)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    failures = FAILURES_CSV if failures is None else failures
    again = stored_before(path, target, before) if before else set()
    done = done_keys(path) - again
    recorded = failed_keys(failures, path, target)
    failed = set() if retry_failed else recorded
    todo = list({key: (job, key) for job in jobs
                 if (key := config_key(job.spec, target)) not in done and key not in failed}.values())[:limit]
    if progress:
        retried = sum(key in recorded for _, key in todo) if retry_failed else 0
        print(f"{len(todo)} to synthesize for {target} into {path.name} ({workers} at a time)"
              + (f"; skipping {len(failed)} config(s) Yosys failed on before (listed in {failures})" if failed else "")
              + (f"; {retried} of them failed before" if retried else "")
              + (f"; {len(again)} of them again (stored before {before})" if again else ""), flush=True)
    t_start, finished = time.perf_counter(), 0

    def store(job: SynthJob, key: str, started: float, future: Future) -> None:
        nonlocal finished
        finished += 1
        left = (time.perf_counter() - t_start) / finished * (len(todo) - finished)
        count = f"{finished}/{len(todo)}" + (f", ~{_duration(left)} left" if finished < len(todo) else "")
        try:
            r = future.result()
        except SynthError as e:
            error = record_failure(failures, path, key, target, job.label, e, yosys_version())
            print(f"[{count}] [{job.label} {target}] Yosys failed, recorded in {failures.name} and skipped: "
                  f"{error}", flush=True)
            return
        (replace_row if key in again else append)(path, fields, {
            "key": key, "target": target, "date": now(), **job.columns, **{m: getattr(r, m) for m in MEASURED}})
        if key in recorded:
            forget_failure(failures, path, key, target)
        if progress:
            print(f"[{count}] [{job.label} {target}] {r.lut} LUT {r.ff} FF {r.dsp} DSP {r.bram18} BRAM18 "
                  f"{r.lutram} LUTRAM ({r.seconds:.1f} s, wall {time.perf_counter() - started:.1f} s)", flush=True)

    # Yosys runs as a subprocess, so threads overlap the syntheses; rows are appended by this thread
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: dict[Future, tuple[SynthJob, str, float]] = {}
        for job, key in todo:
            started = time.perf_counter()
            built = job.build()
            verilog = built if isinstance(built, str) else verilog_text(built)
            running[pool.submit(synthesize, verilog, target, **job.options)] = (job, key, started)
            if len(running) >= workers:
                ready, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in ready:
                    store(*running.pop(f), f)
        for f in as_completed(list(running)):
            store(*running.pop(f), f)
    return len(todo)


def _duration(seconds: float) -> str:
    """``seconds`` as a short duration: 42 s, 7 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class SparseLane(wiring.Component):
    """One lane of a sparse engine, combinational: ``p = w × acts[idx]`` (``acts``: m activation
    codes of ``afmt``), the index mux (:class:`hw.sparse.IndexMux`, one lane, m:1) and the exact
    multiplier (:func:`hw.arith.multiplier`) as the engine instantiates them."""

    def __init__(self, wfmt: str, afmt: str, m: int):
        self.m, self.abits = m, parse_format(afmt).bits
        self.mul = multiplier(wfmt, afmt)
        ports = self.mul.signature.members
        super().__init__({"acts": In(self.abits * m), "idx": In((m - 1).bit_length()), "w": In(ports["w"].shape),
                          "p": Out(ports["p"].shape)})

    def elaborate(self, platform):
        mod = Module()
        mod.submodules.mux = mux = IndexMux(1, 1, self.m, self.abits)
        mod.submodules.mul = mul = self.mul
        mod.d.comb += [mux.a.as_value().eq(self.acts), mux.idx.as_value().eq(self.idx),
                       mul.a.eq(mux.out.as_value()), mul.w.eq(self.w), self.p.eq(mul.p)]
        return mod


def _sparse_calibration_triples(target: str) -> list[tuple[str, str, int]]:
    """(w, a, m) of every stored sparse calibration engine of ``target``: the grids
    (``calibration.csv``), the random calibration draw and the place-and-route sample
    (``pnr.csv``), never a held-out key."""
    held = heldout_keys()
    out = set()
    for path in (CALIBRATION_CSV, DOE_CSV["calibration"], PNR_CSV):
        if path.exists():
            with path.open() as f:
                out |= {(r["wfmt"], r["afmt"], int(float(r["m"]))) for r in csv.DictReader(f)
                        if r["target"] == target and r["engine"] == "sparse" and r["key"] not in held}
    return sorted(out)


def lane_triples(target: str, seed: int = 5) -> list[tuple[str, str, int]]:
    """The sparse lanes ``lanes`` measures for ``target``, in order: first the (w, a, m) of the
    family's sparse calibration engines (:func:`_sparse_calibration_triples`), then every other
    ordered format pair of :func:`quant.formats.all_formats` (a lane is not operand-order free:
    the mux sits on the activation) at every m of :data:`LANE_MS`, shuffled by ``seed``, so that
    a stopped run has measured the fitted engines' lanes and a uniform sample of the rest."""
    ints, mfs = _doe_formats()
    names = ints + mfs
    first = _sparse_calibration_triples(target)
    seen = set(first)
    rest = [(w, a, m) for w in names for a in names for m in LANE_MS if (w, a, m) not in seen]
    random.Random(seed).shuffle(rest)
    return first + rest


def lane_jobs(target: str) -> Iterator[SynthJob]:
    """Standalone sparse lanes (:class:`SparseLane`) of :func:`lane_triples`."""
    for w, a, m in lane_triples(target):
        yield SynthJob({"primitive": "sparse_lane", "wfmt": w, "afmt": a, "m": m}, partial(SparseLane, w, a, m),
                       {"wfmt": w, "afmt": a, "m": m}, f"lane {w} x {a} {m}:1")


def primitive_jobs() -> Iterator[SynthJob]:
    """Standalone exact multipliers of every :func:`primitive_pairs` pair."""
    for w, a in primitive_pairs():
        yield SynthJob({"primitive": "multiplier", "wfmt": w, "afmt": a}, partial(multiplier, w, a),
                       {"wfmt": w, "afmt": a}, f"prim {w} x {a}")


def engine_pairs(target: str) -> set[tuple[str, str]]:
    """The format pairs (sorted) of every engine stored for ``target`` (calibration and DOE tables)."""
    out: set[tuple[str, str]] = set()
    for path in (CALIBRATION_CSV, *DOE_CSV.values()):
        if path.exists():
            d = pd.read_csv(path, usecols=["target", "wfmt", "afmt"])
            d = d[d["target"] == target]
            out |= {tuple(sorted(p)) for p in zip(d["wfmt"], d["afmt"])}
    return out


def curve_jobs(pairs: Iterable[tuple[str, str]], delays: Iterable[int]) -> Iterator[SynthJob]:
    """The exact multiplier of each pair alone under each abc9 delay target (ps): its LUTs
    against the delay it must meet (``mult_curves.csv``)."""
    for w, a in pairs:
        for d in delays:
            yield SynthJob({"primitive": "multiplier", "wfmt": w, "afmt": a, "abc9_delay_ps": d},
                           partial(multiplier, w, a), {"wfmt": w, "afmt": a, "delay_ps": d},
                           f"curve {w} x {a} @ {d} ps", {"abc9_delay_ps": d})


def curved_pairs(pairs: Iterable[tuple[str, str]], target: str,
                 slack_luts: int = CURVE_FLAT_LUTS) -> list[tuple[str, str]]:
    """The pairs whose stored area form (:data:`AREA_DELAY_PS`) takes more than ``slack_luts``
    LUT4 fewer than their delay form (``primitives.csv``; the carry cells are the same in both):
    those with a curve to measure. The model reads a curve once it is whole, and a pair with its
    area form alone as flat (:func:`costmodel.resources._curve_table`)."""
    if not MULT_CURVES_CSV.exists():
        return []
    c = pd.read_csv(MULT_CURVES_CSV)
    c = c[(c["target"] == target) & (c["delay_ps"] == AREA_DELAY_PS)]
    area = {tuple(sorted(p)): lut for *p, lut in zip(c["wfmt"], c["afmt"], c["lut"])}
    prim = pd.read_csv(PRIMITIVES_CSV)
    prim = prim[prim["target"] == target]
    delay = {tuple(sorted(p)): lut for *p, lut in zip(prim["wfmt"], prim["afmt"], prim["lut"])}
    return [p for p in pairs if (k := tuple(sorted(p))) in area and k in delay and area[k] < delay[k] - slack_luts]


def synthesize_curves(target: str, limit: int | None = None, **run) -> None:
    """Every multiplier's area form, then the curve (:data:`CURVE_DELAYS_PS`) of each whose area
    form is smaller than its delay form: the pairs of the stored engines first, then every other
    :func:`primitive_pairs` pair (resumable: each part skips what is stored)."""
    stored = engine_pairs(target)
    pairs = primitive_pairs()
    first = [p for p in pairs if tuple(sorted(p)) in stored]
    rest = [p for p in pairs if tuple(sorted(p)) not in stored]
    for part in (first, rest):
        synthesize_missing(curve_jobs(part, [AREA_DELAY_PS]), MULT_CURVES_CSV, CURVE_FIELDS, target, limit=limit, **run)
        synthesize_missing(curve_jobs(curved_pairs(part, target), CURVE_DELAYS_PS), MULT_CURVES_CSV, CURVE_FIELDS,
                           target, limit=limit, **run)


def buffer_component(depth: int, width: int, transparent: bool = False):
    """A ``depth`` × ``width`` simple dual-port buffer (``amaranth.lib.memory.Memory``: one write
    port, one synchronous read port), as a weight/activation buffer would be; ``transparent``: the
    read port returns the word written in the same cycle (as the SWA score row's)."""
    abits = max(1, (depth - 1).bit_length())

    class Buf(wiring.Component):
        def __init__(self):
            super().__init__({"waddr": In(abits), "wdata": In(width), "we": In(1),
                              "raddr": In(abits), "rdata": Out(width)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=width, depth=depth, init=[])
            w = mem.write_port()
            r = mem.read_port(transparent_for=(w,) if transparent else ())
            m.d.comb += [w.addr.eq(self.waddr), w.data.eq(self.wdata), w.en.eq(self.we),
                         r.addr.eq(self.raddr), self.rdata.eq(r.data)]
            return m

    return Buf()


def buffer_jobs() -> Iterator[SynthJob]:
    """The buffers of :data:`BUFFER_SHAPES`, each with a plain and with a transparent read port."""
    for transparent in (False, True):
        for depth, width in BUFFER_SHAPES:
            spec = {"primitive": "buffer", "depth": depth, "width": width, **({"transparent": True} if transparent else {})}
            yield SynthJob(spec, partial(buffer_component, depth, width, transparent),
                           {"depth": depth, "width": width, "transparent": transparent},
                           f"buffer {depth}x{width}{' transparent' if transparent else ''}")


def mux_jobs() -> Iterator[SynthJob]:
    """The standalone index muxes of :data:`MUX_SHAPES`."""
    for lanes, n, m, abits in MUX_SHAPES:
        yield SynthJob({"primitive": "index_mux", "lanes": lanes, "n": n, "m": m, "abits": abits},
                       partial(IndexMux, lanes, n, m, abits), {"lanes": lanes, "n": n, "m": m, "abits": abits},
                       f"mux lanes {lanes} {n}:{m} abits {abits}")


def engine_jobs(configs: Iterable[dict], target: str = "xc7") -> Iterator[SynthJob]:
    """Engine configs (``to_dict()`` form); SWA rows carry the SWA columns and the command."""
    for cfg in configs:
        config = config_from_dict(cfg)
        full = config.to_dict()
        if full["engine"] == "swa":
            cols = {"config": json.dumps(full, sort_keys=True), "head_dim": full["head_dim"], "window": full["window"],
                    "lanes": full["lanes"], "qk_fmt": str(full["qk_fmt"]), "v_fmt": str(full["v_fmt"]),
                    "command": f"python -m costmodel.calibrate engines --grid swa --target {target}"}
        else:
            cols = {k: v for k, v in config_columns(config, "", "").items() if k not in ("key", "target", "date")}
            cols["block"] = full.get("block") if full.get("block") is not None else ""
        yield SynthJob(cfg, lambda config=config: config, cols, f"{full['engine']} {cfg}")


def doe_jobs(configs: list[dict], seed: int, command: str, split: str = "heldout") -> Iterator[SynthJob]:
    """:func:`engine_jobs` of the DOE draw, each row marked with its ``split`` (``heldout`` or
    ``calibration``), (seed, index) and command, in draw order (a stopped run resumes where it
    stopped)."""
    for i, job in enumerate(engine_jobs(configs)):
        yield SynthJob(job.spec, job.build, {**job.columns, "split": split, "seed": seed, "index": i,
                                             "command": command}, f"doe {split} #{i} {job.label}")


def _date_arg(text: str) -> str:
    """argparse type of ``--again-before``: :func:`~costmodel.store.parse_date`."""
    try:
        return parse_date(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m costmodel.calibrate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--jobs", type=int, default=1,
                        help="Yosys processes at a time (default 1; each takes one core)")
    common.add_argument("--retry-failed", action="store_true",
                        help=f"run again the configs a tool failed on before (recorded in {FAILURES_CSV.name}, "
                             "skipped otherwise); one that now runs loses its record")
    common.add_argument("--again-before", metavar="DATE", type=_date_arg, default=None,
                        help="run again the stored configs of this table and target run before DATE (ISO 8601 UTC, "
                             "e.g. 2026-12-03T12:16: after a change to the generators or the tools), each new row "
                             "in place of its old one")
    pp = sub.add_parser("primitives", parents=[common])
    pp.add_argument("--target", default="xc7", choices=sorted(TARGETS))
    pb = sub.add_parser("buffers", parents=[common])
    pb.add_argument("--target", default="xc7", choices=sorted(TARGETS))
    pm = sub.add_parser("muxes", parents=[common])
    pm.add_argument("--target", default="xc7", choices=sorted(TARGETS))
    pl = sub.add_parser("lanes", parents=[common], help="sparse lanes (index mux + multiplier) alone; hours, resumable")
    pl.add_argument("--target", default="ecp5", choices=sorted(TARGETS))
    pl.add_argument("--limit", type=int, default=None)
    pv = sub.add_parser("mult-curves", parents=[common],
                        help="multipliers alone under abc9 delay targets (LUTs against delay); hours, resumable")
    pv.add_argument("--target", default="ecp5", choices=sorted(ABC9_TARGETS))
    pv.add_argument("--limit", type=int, default=None, help="at most this many syntheses per part")
    pc = sub.add_parser("logic-cells", parents=[common],
                        help="Lattice cells (nextpnr --pack-only: iCE40 logic cells, ECP5 TRELLIS_COMB) of the stored "
                             "engines of a draw; resumable")
    pc.add_argument("--split", choices=sorted(DOE_CSV), default="heldout")
    pc.add_argument("--target", default="ice40", choices=["ice40", "ecp5"])
    pc.add_argument("--engines", choices=["mac", "swa"], default="mac",
                    help="mac: the dot / sparse engines of doe_<split>.csv (default); swa: the SWA kernels of "
                         "swa_doe_<split>.csv")
    pc.add_argument("--limit", type=int, default=None)
    pe = sub.add_parser("engines", parents=[common])
    pe.add_argument("--grid", choices=sorted(GRIDS), action="append", required=True)
    pe.add_argument("--target", default="xc7", choices=sorted(TARGETS))
    pe.add_argument("--limit", type=int, default=None)
    pe.add_argument("--order", choices=["grid", "shuffle"], default="shuffle",
                    help="shuffle (seeded): any prefix of the run is a representative sample")
    pe.add_argument("--count", type=int, default=400, help="grid doe: configs drawn (default 400)")
    pe.add_argument("--seed", type=int, default=None,
                    help="grid doe: seed of the draw (default 0 for --split heldout, 1 for calibration)")
    pe.add_argument("--split", choices=sorted(DOE_CSV), default="heldout",
                    help="grid doe: heldout (doe_heldout.csv, never fitted) or calibration (doe_calibration.csv, "
                         "fitted); default heldout")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.what == "engines" and args.seed is not None:
        for split, seed in DOE_SEEDS.items():
            if split != args.split and args.seed == seed:
                p.error(f"--seed {seed} draws the {split} configs; give the {args.split} draw another seed")
    _record_command(args.what if args.what != "engines" else "engines:" + ",".join(args.grid), argv)
    run = dict(workers=args.jobs, retry_failed=args.retry_failed, before=args.again_before)
    if args.what == "primitives":
        synthesize_missing(primitive_jobs(), PRIMITIVES_CSV, PRIM_FIELDS, args.target, **run)
        return 0
    if args.what == "buffers":
        synthesize_missing(buffer_jobs(), BUFFERS_CSV, BUFFER_FIELDS, args.target, **run)
        return 0
    if args.what == "muxes":
        synthesize_missing(mux_jobs(), MUXES_CSV, MUX_FIELDS, args.target, **run)
        return 0
    if args.what == "logic-cells":
        measure_stored(args.split, args.target, jobs=args.jobs, limit=args.limit, engines=args.engines,
                       retry_failed=args.retry_failed, before=args.again_before)
        return 0
    if args.what == "mult-curves":
        synthesize_curves(args.target, limit=args.limit, **run)
        return 0
    if args.what == "lanes":
        synthesize_missing(lane_jobs(args.target), LANES_CSV, LANE_FIELDS, args.target, limit=args.limit, **run)
        return 0
    if "swa" in args.grid:
        synthesize_missing(engine_jobs(swa_grid(), args.target), SWA_CALIBRATION_CSV, SWA_FIELDS, args.target, **run)
    if "doe" in args.grid:
        seed = args.seed if args.seed is not None else DOE_SEEDS[args.split]
        command = f"python -m costmodel.calibrate engines --grid doe --split {args.split} --count {args.count} " \
                  f"--seed {seed} --target {args.target}"
        configs = doe_grid(seed, args.count)
        synthesize_missing(doe_jobs(configs, seed, command, args.split), DOE_CSV[args.split], DOE_FIELDS,
                           args.target, limit=args.limit, **run)
    if "swa-doe" in args.grid:
        seed = args.seed if args.seed is not None else DOE_SEEDS[args.split]
        command = f"python -m costmodel.calibrate engines --grid swa-doe --split {args.split} --count {args.count} " \
                  f"--seed {seed} --target {args.target}"
        jobs = (SynthJob(j.spec, j.build, {**j.columns, "causal": j.spec["causal"], "dense": j.spec["dense"]}, j.label)
                for j in doe_jobs(swa_doe_grid(seed, args.count, swa_doe_bounds(args.target)), seed, command,
                                 args.split))
        synthesize_missing(jobs, SWA_DOE_CSV[args.split], SWA_DOE_FIELDS, args.target, limit=args.limit, **run)
    if "order" in args.grid:
        command = f"python -m costmodel.calibrate engines --grid order --target {args.target}"
        jobs = (SynthJob(j.spec, j.build, {**j.columns, "command": command}, j.label) for j in engine_jobs(order_grid()))
        synthesize_missing(jobs, ORDER_CHECK_CSV, ENGINE_FIELDS + ["command"], args.target, **run)
    configs: list[dict] = []
    for g in (g for g in args.grid if g not in ("swa", "doe", "swa-doe", "order")):
        configs += GRIDS[g]()
    if args.order == "shuffle":
        random.Random(12345).shuffle(configs)
    if configs:  # the grids stored in calibration.csv (dense, sparse, smallint)
        synthesize_missing(engine_jobs(configs), CALIBRATION_CSV, ENGINE_FIELDS, args.target, limit=args.limit, **run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
