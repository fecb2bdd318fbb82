"""Energy, Accelergy-style: action counts (what the design does) × energy per action (what each
action costs), plus static power × latency.

The two halves are kept apart: :func:`action_counts_array` knows the engines and the workload,
:data:`ERT` (the energy-reference table) knows only primitive actions. Every ERT entry cites its
source. No published per-action energy for FPGA fabric at these granularities is at hand, so the
dynamic figures are **ASIC (45 nm / 40 nm) figures** — Horowitz, ISSCC'14, "Computing's energy
problem", and Accelergy's Aladdin plug-in (40 nm) — labelled ``ASIC`` wherever reported; FPGA
dynamic energy per operation is typically several times higher. Static power comes from
:mod:`hw.devices` (FPGA parts; see their ``static_source``).

Actions of the dot/sparse engines per workload (``beats`` input beats: the engine's cycles from
``hw`` minus its pipeline fill; the SWA kernel's actions are in :mod:`costmodel.swa`)
------------------------------------------------------------------------------------------------
``mult``            beats · lanes multiplies (padded lanes multiply zeros; the hardware still does)
``add_bits``        beats · adder-tree bits (``tree_bits``) — bit-additions
``acc_bits``        beats · accumulator bits
``reg_bits``        beats · register bits clocked (pipeline, accumulator, output)
``mux_bits``        beats · lanes · activation bits · (m − 1): 2:1-mux bits of the N:M index muxes
                    (an m:1 mux is m − 1 two-input muxes; sparse only)
``read_bits``       beats · input-beat bits read from an on-chip buffer (weights, indices,
                    activations)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ERT", "ACTIONS", "action_counts_array", "mac_dynamic_pj", "mult_pj"]

ACTIONS = ["mult", "add_bits", "acc_bits", "reg_bits", "mux_bits", "read_bits"]

#: Energy-reference table, pJ per action (ASIC figures; see each ``source``)
ERT: dict[str, dict] = {
    "int8_mult": {"pJ": 0.2, "unit": "8×8-bit integer multiply",
                  "source": "Horowitz ISSCC'14, 45 nm (ASIC); scaled by wa·wb/64 for other widths as "
                            "Accelergy's Aladdin plug-in scales multipliers with wa·wb"},
    "add_bit": {"pJ": 0.1 / 32, "unit": "one bit of a ripple/carry adder",
                "source": "Horowitz ISSCC'14, 45 nm (ASIC): 32-bit add 0.1 pJ, per bit"},
    "reg_bit": {"pJ": 0.009, "unit": "one register bit written",
                "source": "Accelergy Aladdin plug-in, 40 nm (ASIC): register 0.009 pJ/bit"},
    "mux_bit": {"pJ": 0.1 / 32, "unit": "one 2:1 mux bit (index mux, alignment shifter)",
                "source": "assumption: a 2:1 mux bit costs about one adder bit (Horowitz 45 nm ASIC "
                          "32-bit add / 32); no published figure at hand"},
    "sram_read_bit": {"pJ": 10.0 / 64, "unit": "one bit read from an 8 KB SRAM",
                      "source": "Horowitz ISSCC'14, 45 nm (ASIC): 64-bit read from 8 KB SRAM 10 pJ"},
    "sram_write_bit": {"pJ": 10.0 / 64, "unit": "one bit written to an 8 KB SRAM",
                       "source": "assumption: a write costs about a read (Horowitz ISSCC'14, 45 nm ASIC, "
                                 "64-bit 8 KB SRAM read 10 pJ); no published write figure at hand"},
}


def mult_pj(mul_a, mul_b, mf, exp_bits, prod_bits, shift_bits) -> np.ndarray:
    """Energy of one exact multiply, pJ (ASIC): significand/integer multiplier ∝ A·B; minifloats
    add an exponent adder (``exp_bits``) and an alignment shifter (``prod_bits × shift_bits``
    mux bits) and a negation (``prod_bits`` adder bits)."""
    mul_a, mul_b, mf = (np.asarray(x, dtype=float) for x in (mul_a, mul_b, mf))
    e = ERT["int8_mult"]["pJ"] * mul_a * mul_b / 64.0
    extra = (np.asarray(exp_bits) * ERT["add_bit"]["pJ"]
             + np.asarray(prod_bits) * np.asarray(shift_bits) * ERT["mux_bit"]["pJ"]
             + np.asarray(prod_bits) * ERT["add_bit"]["pJ"])
    return e + mf * extra


def action_counts_array(features: pd.DataFrame, beats: np.ndarray) -> pd.DataFrame:
    """Action counts per config row (see module docstring) for ``beats`` input beats each."""
    beats = np.asarray(beats, dtype=float)
    f = features
    lanes = f["lanes"].to_numpy(dtype=float)
    return pd.DataFrame({
        "mult": beats * lanes,
        "add_bits": beats * f["tree_bits"].to_numpy(dtype=float),
        "acc_bits": beats * f["acc_bits"].to_numpy(dtype=float),
        "reg_bits": beats * f["reg_bits"].to_numpy(dtype=float),
        "mux_bits": beats * lanes * f["ab"].to_numpy(dtype=float) * np.maximum(f["mux_m"].to_numpy() - 1, 0),
        "read_bits": beats * f["in_bits"].to_numpy(dtype=float),
    }, index=f.index)


def mac_dynamic_pj(counts: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    """Dynamic energy (pJ, ASIC figures of :data:`ERT`) of dot/sparse action counts
    (:func:`action_counts_array`) of :func:`costmodel.features.frame_features` rows."""
    f = features
    e_mult = mult_pj(f["mul_a"], f["mul_b"], f["mf"], f["exp_bits"], f["prod_bits"], f["shift_bits"])
    return (counts["mult"].to_numpy() * e_mult
            + (counts["add_bits"] + counts["acc_bits"]).to_numpy() * ERT["add_bit"]["pJ"]
            + counts["reg_bits"].to_numpy() * ERT["reg_bit"]["pJ"]
            + counts["mux_bits"].to_numpy() * ERT["mux_bit"]["pJ"]
            + counts["read_bits"].to_numpy() * ERT["sram_read_bit"]["pJ"])
