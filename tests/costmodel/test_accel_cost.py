"""Cost of whole-network accelerators (costmodel.accel, issue 16 item 5): every part labelled,
parts summing to the totals, cycles from the closed form; the requantizer's DSPs by the Yosys rule
equal every stored standalone synthesis; DSP and BRAM of whole accelerators equal fresh Yosys
syntheses (slow)."""

from __future__ import annotations


import pytest

from costmodel.accel import PARTS, SOURCES, plan_cost
from costmodel.requant_cost import _rows, cv_error, requant_cost, spec_from_json, threshold_cost
from hw.dataflow.plan import schedule
from tests.hw.test_dataflow import random_plan


def test_energy_beside_the_engines_by_hand():
    """A pool stage: 8 windows of 4 int8 codes read and compared, 32 codes written into its bank,
    8 × 1 beat × 4 addresses of 6 bits read from its window ROM (ERT's SRAM read/write and adder
    bit, pJ). A MAC stage: its engine's estimate plus the same bank writes and ROM reads plus one
    requantization per output (a 22 × 24-bit multiply and two adds of 45 bits)."""
    from costmodel import estimate
    from costmodel.accel import stage_cost
    from costmodel.energy import ERT, mult_pj
    from hw.dataflow.plan import Stage, pool_windows
    from hw.dot import DotConfig
    from hw.requant import RequantSpec

    rd, wr, add = ERT["sram_read_bit"]["pJ"], ERT["sram_write_bit"]["pJ"], ERT["add_bit"]["pJ"]
    pool = Stage("p", "pool", "int8", 32, pool_windows((2, 4, 4), (2, 2), (2, 2)))
    want = 8 * 4 * 8 * (rd + add) + 32 * 8 * wr + 8 * 4 * 6 * rd
    assert stage_cost(pool)["dynamic_nj"] == pytest.approx(want / 1e3)
    w = [[1, -2, 3, 0] * 8, [0, 1, 1, -1] * 8]
    rq = RequantSpec(21, ((1 << 23) + 5, (1 << 23) + 7), (30, 31), "int8")
    mac = Stage("fc", "mac", "int8", 32, [list(range(32))], w, "int8", 4, 1, rq)
    engine = estimate(DotConfig(4, "int8", "int8", 32, 1), "xc7z020", k=32, vectors=2).dynamic_nj
    extra = 32 * 8 * wr + 2 * (float(mult_pj(22, 24, 0, 0, 0, 0)) + 2 * 45 * add)  # one window: no ROM read
    assert stage_cost(mac)["dynamic_nj"] == pytest.approx(engine + extra / 1e3)


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
        e = cost["energy_nj_per_inference"]
        assert e["dynamic"] == pytest.approx(sum(c["dynamic_nj"] for c in cost["stages"])) and e["static"] > 0
        assert {"fmax", "energy", "cycles"} <= set(cost["sources"]) and "no board" in cost["sources"]["energy"]
        assert cost["latency_us"] == pytest.approx(cost["cycles_per_inference"] / cost["fmax_mhz"])


def test_requantizer_dsps_equal_every_stored_yosys_run():
    rows = _rows("xc7")
    assert len(rows) >= 40
    for _, row in rows.iterrows():
        assert requant_cost(spec_from_json(row["spec"]))["dsp"] == row["dsp"], row["key"]


def test_threshold_tables_take_no_dsp_and_their_fit_holds_out():
    """Every stored Yosys run of a standalone threshold table (hw.activation.thresholds of a
    random requantizer) has no DSP, as threshold_cost says; the LUT fit's 5-fold CV error on
    those runs stays at the README's figure (median 17 %, p90 38 %)."""
    from hw.activation import thresholds

    rows = _rows("xc7", "thresholds")
    assert len(rows) >= 30 and (rows["dsp"] == 0).all()
    assert all(threshold_cost(thresholds(spec_from_json(t)))["dsp"] == 0 for t in rows["spec"][:5])
    median, p90 = cv_error("xc7", unit="thresholds")
    assert median <= 0.19 and p90 <= 0.40


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 3, 5])
def test_dsp_and_bram_equal_fresh_yosys_synthesis(seed):
    """Random dense / N:M chains never fitted on: DSP and BRAM18 as Yosys synth_xilinx counts them;
    LUTs (incl. LUTRAM) and FFs reported, within a loose band."""
    from hw.dataflow.top import Accelerator
    from hw.rtl import synthesize

    plan = random_plan(seed)
    r = synthesize(Accelerator(plan), "xc7")
    t = plan_cost(plan, "xc7z020")["total"]
    assert (t["dsp"], t["bram18"]) == (r.dsp, r.bram18)
    lut = r.lut_sites
    assert 0.5 < t["lut"] / lut < 2 and 0.5 < t["ff"] / r.ff < 2, (t, lut, r.ff)


@pytest.mark.slow
@pytest.mark.parametrize("depth,width", [(90, 24), (400, 50), (250, 80), (160, 100), (600, 20), (200, 60)])
def test_rom_cost_against_fresh_yosys_synthesis(depth, width):
    """Registered ROMs of shapes the rule was not read from (random contents, so Yosys folds no
    bit): BRAM18 and FF exact, LUTs within 25 %."""
    import random

    from amaranth.hdl import Module, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    from costmodel.accel import _rom
    from hw.rtl import synthesize

    class Rom(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"a": In(range(depth)), "en": In(1), "o": Out(width)})

        def elaborate(self, platform):
            rng = random.Random(depth * width)
            m = Module()
            m.submodules.mem = mem = Memory(shape=unsigned(width), depth=depth,
                                            init=[rng.getrandbits(width) for _ in range(depth)])
            rp = mem.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(self.a), rp.en.eq(self.en), self.o.eq(rp.data)]
            return m

    r = synthesize(Rom(), "xc7")
    want = _rom(depth, width, True, "xc7")
    assert (want["bram18"], want["ff"]) == (r.bram18, r.ff) and abs(want["lut"] - r.lut) <= 0.25 * max(r.lut, 1)


def test_live_columns_by_hand():
    """Four 5-bit words: bit 0 constant 1, bit 4 constant 0, bits 1 and 3 identical, bit 2 its
    own: two live columns; a ROM in logic is costed on them alone (registered: two flip-flops)."""
    from costmodel.accel import _rom, live_columns

    words = [0b00001, 0b01011, 0b01111, 0b00101]  # columns: b0 1111, b1 0110, b2 1100, b3 0110, b4 0000
    assert live_columns(words, 5) == 2
    assert _rom(4, 5, True, "xc7", words) == {"lut": 2, "ff": 2, "dsp": 0, "bram18": 0}
    assert _rom(4, 5, True, "xc7") == {"lut": 5, "ff": 5, "dsp": 0, "bram18": 0}


#: the normalizer LUT fit's 5-fold CV (median, p90) bound: measured 2.2 %, 5.5 % on 24 runs of the
#: three-part normalizer (3.7 %, 9.7 % on the one-row-at-a-time one it replaced)
NORM_CV = (0.045, 0.12)


def test_normalizer_cost_against_every_stored_yosys_run():
    """Standalone random LayerNorm normalizers (hw.normalizer.Normalizer, data/normalizer.csv):
    DSPs equal Yosys' on every run (the DSP rule, constant products by a row length that is no
    power of two included), flip-flops within 5 % (counted: 3–5 over on all 24), the LUT fit's
    5-fold CV error at the README's figure."""
    from costmodel.norm_cost import _rows, norm_cost, norm_cv_error

    rows = _rows("xc7")
    assert len(rows) >= 20
    for r in rows.itertuples():
        c = norm_cost(int(r.d), int(r.in_bits), int(r.extra))
        assert c["dsp"] == r.dsp and abs(c["ff"] / r.ff - 1) < 0.05, r.key
    median, p90 = norm_cv_error("xc7")
    assert median <= NORM_CV[0] and p90 <= NORM_CV[1]
