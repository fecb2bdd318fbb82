"""hw.normalizer (LayerNorm's normalizer, issue 16's Mixer): the RTL equals
quant.reference.normalize bit for bit on random rows of every width (also under back-pressure and
on rows of equal values), a row takes the documented cycles, and the Verilog is lint-clean. The
reference itself is checked against exact integer square roots in tests/quant/test_qonnx_net.py."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.arith import ConfigError
from hw.normalizer import Normalizer
from hw.portable import lint, portable_verilog, waivers
from quant.reference import normalize


def _run(dut: Normalizer, rows: list[list[int]], rng: random.Random | None = None) -> tuple[list[int], list[int]]:
    """Stream ``rows`` through ``dut`` (``rng``: random valid / ready gaps); the outputs and the
    cycle each was taken."""
    got, stamps = [], []

    async def source(ctx):
        for r in rows:
            for k in r:
                while rng is not None and rng.random() < 0.3:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i.payload, k)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        cycle = 0
        while len(got) < len(rows) * dut.d:
            ready = rng is None or rng.random() < 0.7
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if valid and ready:
                got.append(payload)
                stamps.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return got, stamps


CASES = [(2, 2, 0), (3, 8, 1), (5, 12, 7), (10, 20, 12345), (32, 44, 3 << 60), (16, 30, 0), (7, 64, 1 << 90)]


@pytest.mark.parametrize("d, bits, extra", CASES)
def test_rtl_equals_reference_on_random_rows(d, bits, extra):
    rng = random.Random(d * 1000 + bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rows = [[rng.randint(lo, hi) for _ in range(d)] for _ in range(12)]
    rows += [[rng.randint(-3, 3) for _ in range(d)], [lo] * d, [hi] + [lo] * (d - 1), [0] * d]
    rows += [[rng.randint(lo >> s, hi >> s) for _ in range(d)] for s in range(0, bits, max(1, bits // 6))]
    dut = Normalizer(d, bits, extra)
    got, stamps = _run(dut, rows)
    assert got == [v for r in rows for v in normalize(r, extra)]
    assert stamps[2 * d - 1] - stamps[d - 1] == dut.row_cycles  # back to back: one row per row_cycles
    assert max(abs(v) for v in got) < 1 << (dut.out_bits - 1)


def test_back_pressure_keeps_every_output():
    rng = random.Random(5)
    rows = [[rng.randint(-500, 500) for _ in range(6)] for _ in range(8)]
    dut = Normalizer(6, 11, 40)
    got, _ = _run(dut, rows, random.Random(6))
    assert got == [v for r in rows for v in normalize(r, 40)]


def test_bad_parameters_are_refused():
    for args in ((1, 8), (4, 1), (4, 8, -1)):
        with pytest.raises(ConfigError):
            Normalizer(*args)
    with pytest.raises(ConfigError, match="frac_bits"):
        Normalizer(4, 8, 0, frac_bits=40)


def test_verilog_is_lint_clean(tmp_path):
    v, vlt = tmp_path / "norm.v", tmp_path / "norm.vlt"
    v.write_text(portable_verilog(Normalizer(8, 20, 99), "norm"))
    vlt.write_text(waivers("norm"))
    assert lint(v, vlt) == []
