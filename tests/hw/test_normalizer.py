"""hw.normalizer (LayerNorm's normalizer, issue 16's Mixer): the RTL equals
quant.reference.normalize bit for bit on random rows of every width (also under back-pressure and
on rows of equal values), rows follow each other every ``row_cycles`` in steady state and, that
far apart, each takes ``row_span`` cycles without ever finding the input not ready (the pipeline
of load, compute and output), and the Verilog is lint-clean. The
reference itself is checked against exact integer square roots in tests/quant/test_qonnx_net.py."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.arith import ConfigError
from hw.normalizer import Normalizer
from hw.portable import lint, portable_verilog, waivers
from quant.reference import normalize


def _run(dut: Normalizer, rows: list[list[int]], rng: random.Random | None = None, ready_p: float = 0.7,
         spacing: int = 0, in_stamps: list[int] | None = None) -> tuple[list[int], list[int]]:
    """Stream ``rows`` through ``dut`` (``rng``: random valid gaps and ready with probability
    ``ready_p``; ``spacing``: each row's first beat offered that many cycles after the previous
    row's); the outputs and the cycle each was taken (``in_stamps``: gets the cycle each input
    beat was taken, on the same count)."""
    got, stamps = [], []

    async def source(ctx):
        cycle, row_start = 0, None
        for r in rows:
            while row_start is not None and cycle < row_start + spacing:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            row_start = cycle
            for k in r:
                while rng is not None and rng.random() < 0.3:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.i.payload, k)
                ctx.set(dut.i.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.i.ready)
                    cycle += 1
                    if ready:
                        break
                if in_stamps is not None:
                    in_stamps.append(cycle)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        cycle = 0
        while len(got) < len(rows) * dut.d:
            ready = rng is None or rng.random() < ready_p
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


@pytest.mark.parametrize("d, ready_p", [(6, 0.7), (6, 0.08), (2, 0.3), (60, 0.9), (60, 0.5)])
def test_back_pressure_keeps_every_output(d, ready_p):
    """Random input gaps and a sink ready with probability ``ready_p``: rows wait in the loader,
    in the computation (its result held until the output is free) and in the output; none is lost
    or reordered."""
    rng = random.Random(5 + d)
    rows = [[rng.randint(-500, 500) for _ in range(d)] for _ in range(8)]
    rows[3] = [7] * d
    dut = Normalizer(d, 11, 40)
    got, _ = _run(dut, rows, random.Random(6 + d), ready_p)
    assert got == [v for r in rows for v in normalize(r, 40)]


@pytest.mark.parametrize("d", [2, 5, 32, 55, 70])
def test_rows_row_cycles_apart_never_wait(d):
    """Rows offered exactly ``row_cycles`` apart (the row engine's issue period) to a ready sink:
    every beat is taken the cycle it is offered, and each row's last output is ``row_span - 1``
    cycles after its first input — rows overlap (load, compute and output at once)."""
    rng = random.Random(d)
    rows = [[rng.randint(-(1 << 9), (1 << 9) - 1) for _ in range(d)] for _ in range(6)]
    dut = Normalizer(d, 10, 3)
    assert dut.row_cycles == max(d, 3 * 16 + 4) and dut.row_span == 2 * d + 3 * 16 + 4
    ins: list[int] = []
    got, stamps = _run(dut, rows, spacing=dut.row_cycles, in_stamps=ins)
    assert got == [v for r in rows for v in normalize(r, 3)]
    assert ins == [ins[0] + p * dut.row_cycles + j for p in range(len(rows)) for j in range(d)]
    for p in range(len(rows)):
        assert stamps[p * d + d - 1] - ins[p * d] == dut.row_span - 1
        assert stamps[p * d: p * d + d] == list(range(stamps[p * d], stamps[p * d] + d))


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
