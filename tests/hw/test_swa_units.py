"""The SWA kernel's units, each on its own (amaranth.sim async testbenches, random inputs):
expected values come from the integer formulas of :mod:`hw.swa.model` computed in numpy, never
from the RTL."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hw import swa
from hw.swa.ingest import SWAIngest, q_per_slot
from hw.swa.scores import SWAScores
from hw.swa.softmax import ReciprocalDivider, SoftmaxNumerator, SWANormalizer
from hw.swa.sv import SWAWeightedSum
from quant.reference import fixed_point


def simulate_tb(dut, testbench, clock: bool = True) -> None:
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def pack(values, bits: int) -> int:
    """Lanes of ``bits``-bit fields (two's complement), lane 0 in the low bits."""
    return sum((int(v) & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(values))


def unpack(word: int, bits: int, n: int, signed: bool) -> list[int]:
    out = [(int(word) >> (i * bits)) & ((1 << bits) - 1) for i in range(n)]
    return [x - (1 << bits) if signed and x >> (bits - 1) else x for x in out]


def ints(codes, fmt) -> np.ndarray:
    return np.asarray(fixed_point(np.asarray(codes), fmt)[0], dtype=np.int64)


# ---- ingest and buffers ---------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(), dict(causal=False, window=5), dict(dense=True)],
                         ids=["causal", "symmetric", "dense"])
def test_ingest_writes_tokens_to_their_slots_and_reads_them_back(kw):
    cfg = swa.SWAConfig(**{**dict(head_dim=8, window=3, lanes=4, qk_fmt="int8", v_fmt="e2m3"), **kw})
    dut = SWAIngest(cfg)
    rng = np.random.default_rng(1)
    C, L, Wd = cfg.chunks, cfg.lanes, cfg.buffer_slots
    n = Wd + 2                                       # wraps around the buffers
    wl = swa.random_workload(swa.SWAConfig(8, 3, 4, "int8", "e2m3"), n, seed=2)   # same codes, any n
    layout = cfg.in_layout()
    lasts = rng.integers(0, 2, n)
    stored = {}                                      # (buffer, row, chunk) -> codes

    async def tb(ctx):
        for t in range(n):
            slot, bank = t % Wd, t % 2
            ctx.set(dut.active, 1), ctx.set(dut.slot, slot), ctx.set(dut.q_bank, bank)
            for c in range(C):
                while rng.random() < 0.3:            # source gaps
                    ctx.set(dut.i.valid, 0)
                    assert ctx.get(dut.i.ready) and not ctx.get(dut.ok)
                    await ctx.tick()
                cols = slice(c * L, (c + 1) * L)
                beat = {f: [int(x) for x in getattr(wl, f)[t, cols]] for f in "qkv"}
                word = sum(pack(beat[f], layout[f].shape.elem_shape.width) << layout[f].offset for f in "qkv")
                ctx.set(Value.cast(dut.i.payload), word | (int(lasts[t] and c == C - 1) << layout["last"].offset))
                ctx.set(dut.i.valid, 1)
                assert ctx.get(dut.i.ready)
                assert ctx.get(dut.ok) == (c == C - 1)
                await ctx.tick()
                stored["k", slot, c], stored["v", slot, c] = beat["k"], beat["v"]
                stored["q", slot if q_per_slot(cfg) else bank, c] = beat["q"]
            junk = int.from_bytes(rng.bytes(layout.size // 8 + 1), "little") & ((1 << layout.size) - 1)
            ctx.set(Value.cast(dut.i.payload), junk ^ (int(lasts[t]) << layout["last"].offset))
            ctx.set(dut.i.valid, 1)
            for _ in range(2):                       # the token is in: no more beats until go
                assert not ctx.get(dut.i.ready) and ctx.get(dut.ok) and ctx.get(dut.last) == lasts[t]
                await ctx.tick()
            ctx.set(dut.i.valid, 0), ctx.set(dut.go, 1)
            await ctx.tick()
            ctx.set(dut.go, 0)
        ctx.set(dut.active, 0)                       # an idle slot is done at once
        assert ctx.get(dut.ok) and not ctx.get(dut.i.ready)
        for (buf, row, c), want in stored.items():
            if buf == "q":
                ctx.set(dut.q_index, row), ctx.set(dut.q_chunk, c)
            else:
                ctx.set(getattr(dut, f"{buf}_slot"), row), ctx.set(getattr(dut, f"{buf}_chunk"), c)
            await ctx.tick()
            bits = cfg.v_fmt.bits if buf == "v" else cfg.qk_fmt.bits
            assert unpack(ctx.get(Value.cast(getattr(dut, buf))), bits, L, False) == want, (buf, row, c)

    simulate_tb(dut, tb)


# ---- QKᵀ --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["int8", "e4m3", "int4"])
def test_scores_are_exact_dot_products_with_running_max(fmt):
    cfg = swa.SWAConfig(12, 5, 4, fmt, fmt)
    dut = SWAScores(cfg)
    rng = np.random.default_rng(3)
    C, L, W = cfg.chunks, cfg.lanes, cfg.window
    rows = []                                        # (bank, q codes, k codes, masked)
    for r in range(6):
        nk = int(rng.integers(2, W + 1)) if r else 1
        wl = swa.random_workload(cfg, nk, seed=r)
        masked = np.r_[0, rng.integers(0, 2, nk - 1)]
        if nk > 1:                                   # a masked key with the row's top score
            top = int(np.argmax(ints(wl.k, cfg.qk_fmt) @ ints(wl.q[0], cfg.qk_fmt)))
            wl.k[[1, top]] = wl.k[[top, 1]]
            masked[1] = 1
        rows.append((r % 2, wl.q[0], wl.k, masked))
    scores = [ints(k, cfg.qk_fmt) @ ints(q, cfg.qk_fmt) for _, q, k, _ in rows]
    # the test can tell a masked key from an unmasked one
    assert any((s[mk == 1] > s[mk == 0].max()).any() for s, (*_, mk) in zip(scores, rows))

    async def tb(ctx):
        for (bank, q, k, masked), want in zip(rows, scores):
            for ki in range(len(k)):
                for c in range(C):
                    while rng.random() < 0.25:       # idle cycles hold the partial sums
                        ctx.set(dut.valid, 0)
                        await ctx.tick()
                    cols = slice(c * L, (c + 1) * L)
                    ctx.set(dut.valid, 1), ctx.set(dut.key, ki), ctx.set(dut.chunk, c), ctx.set(dut.bank, bank)
                    ctx.set(dut.masked, int(masked[ki]))
                    ctx.set(Value.cast(dut.q), pack(q[cols], cfg.qk_fmt.bits))
                    ctx.set(Value.cast(dut.k), pack(k[ki, cols], cfg.qk_fmt.bits))
                    await ctx.tick()
            ctx.set(dut.valid, 0)
            for ki, s in enumerate(want):
                ctx.set(dut.rd_bank, bank), ctx.set(dut.rd_key, ki)
                await ctx.tick()
                assert ctx.get(dut.rd_score) == s, (ki, s)
            assert ctx.get(dut.row_max[bank]) == want[masked == 0].max()

    simulate_tb(dut, tb)


# ---- softmax ----------------------------------------------------------------------------------------


def numerator(cfg: swa.SWAConfig, t: int, masked: bool) -> int:
    """Step 3 of the arithmetic (hw.swa.model), from ``t = max - score``."""
    E, T, F = cfg.exp_bits, cfg.lut_bits, cfg.scale_frac
    u = min(t, cfg.t_sat) * cfg.scale_const
    e, x = u >> F, (u >> (F - T)) & ((1 << T) - 1)
    return 0 if masked or e > E + 1 else int(cfg.exp_table[x]) >> e


@pytest.mark.parametrize("kw", [dict(), dict(lut_bits=0, exp_bits=6), dict(score_scale=0.37, lut_bits=5),
                                dict(qk_fmt="e2m3", score_scale=3.0)])
def test_numerator_follows_the_base2_table_rule(kw):
    cfg = swa.SWAConfig(**{**dict(head_dim=8, window=4, lanes=4, qk_fmt="int8", v_fmt="int8"), **kw})
    dut = SoftmaxNumerator(cfg)
    rng = np.random.default_rng(4)
    hi = 1 << (cfg.score_bits - 1)
    cases = [(0, 0, 0), (5, 5, 0), (hi - 1, -hi, 0), (7, 3, 1)]
    ts = [*range(4), cfg.t_sat - 1, cfg.t_sat, cfg.t_sat + 1, *rng.integers(0, 2 * cfg.t_sat + 2, 150)]
    for t in (int(t) for t in ts if 0 <= t < 2 * hi):          # max - score of two scores
        mx = int(rng.integers(-hi + t, hi))
        cases.append((mx, mx - t, int(rng.random() < 0.1)))

    async def tb(ctx):
        for mx, s, masked in cases:
            ctx.set(dut.max, mx), ctx.set(dut.score, s), ctx.set(dut.masked, masked)
            assert ctx.get(dut.p) == numerator(cfg, mx - s, bool(masked)), (mx, s, masked)

    simulate_tb(dut, tb, clock=False)


@pytest.mark.parametrize("div_bits", [1, 3, None])
def test_divider_steps_give_the_floor_reciprocal(div_bits):
    cfg = swa.SWAConfig(8, 6, 4, "int8", "int8", div_bits=div_bits, exp_bits=8, recip_bits=10)
    dut = ReciprocalDivider(cfg)
    rng = np.random.default_rng(5)
    lo, hi = 1 << cfg.exp_bits, cfg.window << cfg.exp_bits       # S of any row
    divisors = [lo, lo + 1, hi, hi - 1, *rng.integers(lo, hi + 1, 30)]
    Z = cfg.z_bits

    async def tb(ctx):
        for S in (int(x) for x in divisors):
            ctx.set(dut.divisor, S)
            rem, low, quo = dut.init_rem, dut.init_low, 0
            for _ in range(cfg.div_steps):           # the normalizer's DIV cycles
                ctx.set(dut.rem, rem), ctx.set(dut.low, low), ctx.set(dut.quo, quo)
                rem, low, quo = ctx.get(dut.rem_next), ctx.get(dut.low_next), ctx.get(dut.quo_next)
            assert quo == (1 << Z) // S and rem == (1 << Z) % S, S
            assert quo < 1 << cfg.recip_width

    simulate_tb(dut, tb, clock=False)


def random_row_sums(cfg: swa.SWAConfig, rng, nk: int) -> tuple[np.ndarray, int]:
    """Accumulators ``a = Σ p·v`` and ``S = Σ p`` of a random row (the max has ``p = 2^E``)."""
    p = np.r_[1 << cfg.exp_bits, rng.integers(0, (1 << cfg.exp_bits) + 1, nk - 1)]
    v = ints(swa.random_workload(cfg, nk, seed=int(rng.integers(1 << 30))).v, cfg.v_fmt)
    return p @ v, int(p.sum())


@pytest.mark.parametrize("kw", [dict(), dict(norm_lanes=1, div_bits=2), dict(norm_lanes=2, v_fmt="e2m3")])
def test_normalizer_outputs_floor_of_acc_times_reciprocal(kw):
    cfg = swa.SWAConfig(**{**dict(head_dim=8, window=3, lanes=4, qk_fmt="int8", v_fmt="int8"), **kw})
    dut = SWANormalizer(cfg)
    rng = np.random.default_rng(6)
    L, D = cfg.lanes, cfg.head_dim
    sh = cfg.z_bits - cfg.out_frac_bits
    rows = [random_row_sums(cfg, rng, int(rng.integers(1, cfg.window + 1))) for _ in range(4)]

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for r, (a, S) in enumerate(rows):
            ready_always = r < 2
            ctx.set(Value.cast(dut.acc), pack(a, cfg.sv_bits)), ctx.set(dut.sum, S)
            assert ctx.get(dut.ok)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got, cyc = [], 1
            while len(got) < D:
                if cyc == 3:                         # copied in cycle 2: later changes are ignored
                    ctx.set(Value.cast(dut.acc), pack(rng.integers(-99, 99, D), cfg.sv_bits)), ctx.set(dut.sum, 77)
                if not ready_always:
                    ctx.set(dut.o.ready, int(rng.random() < 0.6))
                if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                    got += unpack(ctx.get(Value.cast(dut.o.payload)), cfg.out_bits, L, True)
                    assert ctx.get(dut.ok) == (len(got) == D)
                else:
                    assert not ctx.get(dut.ok)
                await ctx.tick()
                cyc += 1
            if ready_always:
                assert cyc - 1 == cfg.norm_cycles
            ctx.set(dut.o.ready, 1)
            recip = (1 << cfg.z_bits) // S
            assert got == [(int(x) * recip) >> sh for x in a]

    simulate_tb(dut, tb)


# ---- SV ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vfmt", ["int8", "e2m3", "e4m3", "int4"])
def test_weighted_sum_of_v_and_numerator_sum(vfmt):
    cfg = swa.SWAConfig(8, 4, 4, "int8", vfmt)
    dut = SWAWeightedSum(cfg)
    rng = np.random.default_rng(7)
    C, L = cfg.chunks, cfg.lanes
    rows = []
    for r in range(3):
        nk = int(rng.integers(1, cfg.window + 1))
        rows.append((rng.integers(0, (1 << cfg.exp_bits) + 1, nk), swa.random_workload(cfg, nk, seed=r).v))

    async def tb(ctx):
        for p, v in rows:
            for ki in range(len(p)):
                for c in range(C):
                    while rng.random() < 0.25:
                        ctx.set(dut.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.valid, 1), ctx.set(dut.key, ki), ctx.set(dut.chunk, c), ctx.set(dut.p, int(p[ki]))
                    ctx.set(Value.cast(dut.v), pack(v[ki, c * L:(c + 1) * L], cfg.v_fmt.bits))
                    await ctx.tick()
            ctx.set(dut.valid, 0)
            await ctx.tick()
            assert unpack(ctx.get(Value.cast(dut.acc)), cfg.sv_bits, cfg.head_dim, True) == list(p @ ints(v, cfg.v_fmt))
            assert ctx.get(dut.sum) == p.sum()

    simulate_tb(dut, tb)
