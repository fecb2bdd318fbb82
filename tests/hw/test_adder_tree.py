# amaranth: UnusedElaboratable=no
"""AdderTree: the registered output equals the numpy sum of the terms loaded ``latency`` enabled
cycles earlier, for random widths, term counts (1..33), register sets and stall patterns; the tag
travels with its sum; widths are exactly ``width + ceil(log2 count)``."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.adder_tree import AdderTree

CYCLES = 40


def random_terms(rng: np.random.Generator, width: int, count: int) -> np.ndarray:
    """Signed ``width``-bit terms, about half of them at the extremes (all-min, all-max)."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    pick = rng.random()
    if pick < 0.2:
        return np.full(count, lo, dtype=np.int64)
    if pick < 0.4:
        return np.full(count, hi, dtype=np.int64)
    return rng.integers(lo, hi + 1, size=count, dtype=np.int64)


def tree_cases(count: int, seed: int) -> list[tuple[int, int, tuple[int, ...], int, int]]:
    """(width, count, register_levels, tag_bits, seed) cases, counts spanning 1..33."""
    rng = np.random.default_rng(seed)
    counts = [1, 2, 3, 5, 8, 17, 32, 33] + [int(x) for x in rng.integers(1, 34, count - 8)]
    cases = []
    for j, n in enumerate(counts):
        levels = (n - 1).bit_length()
        regs = tuple(int(x) for x in np.flatnonzero(rng.random(levels + 1) < 0.4))
        cases.append((int(rng.integers(1, 20)), n, regs, int(rng.choice([0, 1, 2, 5])), seed + j))
    return cases


@pytest.mark.parametrize("width,count,regs,tag_bits,seed", tree_cases(14, seed=11),
                         ids=lambda v: str(v))
def test_tree_sum_latency_and_stalls(width, count, regs, tag_bits, seed):
    rng = np.random.default_rng(seed)
    dut = AdderTree(width, count, regs, tag_bits=tag_bits)
    levels = (count - 1).bit_length()
    assert dut.out_bits == width + levels
    assert dut.latency == len(regs)
    terms = [random_terms(rng, width, count) for _ in range(CYCLES)]
    tags = rng.integers(0, 1 << max(tag_bits, 1), size=CYCLES) if tag_bits else np.zeros(CYCLES, dtype=np.int64)
    en = rng.random(CYCLES) < 0.7
    mismatches = []

    async def testbench(ctx):
        # independent model: a shift register of (sum, tag) entries, advancing when en is 1
        stages = [(0, 0)] * len(regs)
        for c in range(CYCLES):
            for n in range(count):
                ctx.set(dut.terms[n], int(terms[c][n]))
            ctx.set(dut.en, int(en[c]))
            if tag_bits:
                ctx.set(dut.tag_in, int(tags[c]))
            now = (int(np.sum(terms[c])), int(tags[c]))
            want = stages[-1] if stages else now
            got = (ctx.get(dut.total), ctx.get(dut.tag_out) if tag_bits else 0)
            if got != want:
                mismatches.append((c, got, want))
            if regs:
                await ctx.tick()
            else:  # a purely combinational tree has no clock domain
                await ctx.delay(1e-8)
            if en[c] and stages:
                stages = [now] + stages[:-1]

    sim = Simulator(dut)
    if regs:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert not mismatches, f"first mismatches (cycle, got, want): {mismatches[:3]}"


def test_no_tag_ports_without_tag_bits():
    members = AdderTree(4, 3).signature.members
    assert "tag_in" not in members and "tag_out" not in members
    assert {"tag_in", "tag_out"} <= set(AdderTree(4, 3, tag_bits=2).signature.members)


@pytest.mark.parametrize("width,count,regs", [(4, 3, (3,)), (4, 1, (1,)), (4, 0, ()), (0, 2, ())])
def test_bad_parameters_raise(width, count, regs):
    with pytest.raises(ValueError):
        AdderTree(width, count, regs)
