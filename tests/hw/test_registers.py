"""hw.registers.register_bits against registers counted by hand on small designs."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.registers import register_bits


class _Design(wiring.Component):
    """5 + 3 + 1 flip-flops (one driven by two statements), 4 combinational bits, a 8-bit memory
    with a clocked (8 bits) and a combinational (8 bits, not a register) read port, in a
    submodule."""

    def __init__(self):
        super().__init__({"a": In(5), "sel": In(1), "q": Out(8), "r": Out(8)})

    def elaborate(self, platform):
        m = Module()
        x, y, z, c = Signal(5), Signal(3), Signal(), Signal(4)
        m.d.comb += c.eq(self.a[:4])
        m.d.sync += x.eq(self.a)
        with m.If(self.sel):
            m.d.sync += [y.eq(x[:3]), z.eq(1)]
        with m.Else():
            m.d.sync += y.eq(c[:3])
        sub = Module()
        sub.submodules.mem = mem = Memory(shape=8, depth=16, init=[])
        rs, rc = mem.read_port(), mem.read_port(domain="comb")
        sub.d.comb += [rs.addr.eq(x), rc.addr.eq(c)]
        m.submodules.sub = sub
        m.d.comb += [self.q.eq(rs.data), self.r.eq(rc.data + z)]
        return m


def test_register_bits_counts_each_clocked_signal_once_and_clocked_read_ports():
    got = register_bits(_Design())
    assert (got.logic, got.memory_reads) == (5 + 3 + 1, 8)


def test_register_bits_of_a_config_builds_it():
    from hw.swa import SWAConfig

    cfg = SWAConfig(8, 4, 8, "int8", "int8")
    assert register_bits(cfg) == register_bits(cfg.build())
    assert register_bits(cfg).logic > 8 * cfg.sv_bits  # at least the SV accumulators
