"""Cost of whole-network accelerators (costmodel.accel, issue 16 item 5): every part labelled,
parts summing to the totals, cycles from the closed form; the requantizer's DSPs by the Yosys rule
equal every stored standalone synthesis; DSP and BRAM of whole accelerators equal fresh Yosys
syntheses (slow)."""

from __future__ import annotations

import json

import pytest

from costmodel.accel import PARTS, SOURCES, plan_cost
from costmodel.requant_cost import _rows, requant_cost
from hw.dataflow.plan import schedule
from hw.requant import RequantSpec
from tests.hw.test_dataflow import random_plan


def test_parts_are_labelled_and_sum_to_the_totals():
    for seed in range(6):
        plan = random_plan(seed)
        cost = plan_cost(plan, "xc7z020")
        assert cost["cycles_per_inference"] == schedule(plan, 1).cycles
        for st, c in zip(plan.stages, cost["stages"]):
            assert set(c["parts"]) <= set(PARTS) and all(p in SOURCES for p in c["parts"])
            for k in ("lut", "ff", "dsp", "bram18"):
                assert c[k] == sum(p[k] for p in c["parts"].values())
        assert cost["total"]["dsp"] == sum(c["dsp"] for c in cost["stages"])


def test_requantizer_dsps_equal_every_stored_yosys_run():
    rows = _rows("xc7")
    assert len(rows) >= 40
    for _, row in rows.iterrows():
        d = json.loads(row["spec"])
        spec = RequantSpec(d["acc_bits"], tuple(d["multipliers"]), tuple(d["shifts"]), d["fmt"], relu=d["relu"],
                           biases=tuple(d["biases"]) if d["biases"] else None)
        assert requant_cost(spec)["dsp"] == row["dsp"], row["key"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 3, 5])
def test_dsp_and_bram_equal_fresh_yosys_synthesis(seed):
    """Random dense / N:M chains never fitted on: DSP and BRAM18 as Yosys synth_xilinx counts them;
    LUTs (incl. LUTRAM) and FFs reported, within a loose band."""
    from hw.dataflow.top import Accelerator
    from hw.rtl import _XILINX_LUTRAM, synthesize

    plan = random_plan(seed)
    r = synthesize(Accelerator(plan), "xc7")
    t = plan_cost(plan, "xc7z020")["total"]
    assert (t["dsp"], t["bram18"]) == (r.dsp, r.bram18)
    lut = r.lut + sum(_XILINX_LUTRAM.get(k.lstrip("\\$"), 0) * n for k, n in r.cells.items())
    assert 0.5 < t["lut"] / lut < 2 and 0.5 < t["ff"] / r.ff < 2, (t, lut, r.ff)
