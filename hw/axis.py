"""AXI4-Stream top around any engine (``paretofab rtl … --axis``): the ports SoC interconnects,
DMAs and vendor IP expect, around the engine's valid/ready streams.

Slave (input) ``s_axis_*``: ``tdata`` is the input payload without its ``last`` bit, zero-padded
to whole bytes; ``tlast`` is that bit (the end of a packet: a vector for dot / sparse, a sequence
for SWA); ``tvalid`` / ``tready`` the handshake. Master (output) ``m_axis_*``: ``tdata`` is the
output payload padded to whole bytes (a single signed result sign-extended, so ``tdata`` reads
as a signed integer of its byte width; an array of results with zeros), ``tkeep`` all ones (every byte carries payload bits),
``tlast`` on the last output beat of each input packet (from the engine's ``OUTPUT_PACKET``:
``"one"`` — every output beat; ``"beat_for_beat"`` — after as many output beats as the packet had
input beats, counted here; up to :data:`PACKETS_IN_FLIGHT` packets may wait for their outputs,
beyond that ``s_axis_tready`` holds the next ``tlast`` beat back). Clock ``clk``, synchronous
active-high reset ``rst`` (Amaranth's ``sync`` domain), as the bare top.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .arith import ConfigError
from .engines import engine

__all__ = ["AXIStreamTop", "PACKETS_IN_FLIGHT", "COUNT_BITS", "byte_width", "expected_tlast"]

#: input packets whose output beats may still be pending (``beat_for_beat`` engines)
PACKETS_IN_FLIGHT = 4
#: width of the beat counters of a packet (bits): packets up to 2^32 - 1 beats
COUNT_BITS = 32


def byte_width(bits: int) -> int:
    """``bits`` rounded up to whole bytes (bits); at least 8."""
    return max(8, -(-int(bits) // 8) * 8)


def expected_tlast(output_packet: str, input_lasts: list[int], n_out: int) -> list[int]:
    """``m_axis_tlast`` of each of ``n_out`` output beats, from the input beats' ``last`` bits:
    every beat (``"one"``), or, one output beat per input beat (``"beat_for_beat"``), the beat
    whose input beat ended a packet."""
    if output_packet == "one":
        return [1] * n_out
    if len(input_lasts) != n_out:
        raise ValueError(f"beat_for_beat: {len(input_lasts)} input beats but {n_out} output beats")
    return [int(bool(x)) for x in input_lasts]


def _payload(component: Any, port: str):
    return component.signature.members[port].signature.members["payload"].shape


class AXIStreamTop(wiring.Component):
    """An engine config's component behind AXI4-Stream ports (module docstring).

    Parameters
    ----------
    config : an engine config (``hw.engines``) whose input payload ends in a 1-bit ``last`` field.

    Attributes
    ----------
    engine : the wrapped engine component.
    in_bits, out_bits : payload bits carried in ``s_axis_tdata`` / ``m_axis_tdata``.
    output_packet : the engine's ``OUTPUT_PACKET``.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.engine = config.build()
        self.output_packet = engine(config.engine).OUTPUT_PACKET
        layout = _payload(self.engine, "i")
        width = Shape.cast(layout).width
        try:
            last = layout["last"]
        except (KeyError, TypeError):
            raise ConfigError(f"{config.engine}: the input payload has no 'last' field for tlast") from None
        if Shape.cast(last.shape).width != 1 or last.offset != width - 1:
            raise ConfigError(f"{config.engine}: the input payload's 'last' must be its top bit for tlast")
        self.in_bits = width - 1
        self.out_bits = Shape.cast(_payload(self.engine, "o")).width
        ob = byte_width(self.out_bits)
        super().__init__({
            "s_axis_tdata": In(byte_width(self.in_bits)), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(ob), "m_axis_tkeep": Out(ob // 8), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        take_in = self.s_axis_tvalid & self.s_axis_tready
        take_out = self.m_axis_tvalid & self.m_axis_tready
        m.d.comb += [
            Value.cast(eng.i.payload).eq(Cat(self.s_axis_tdata[:self.in_bits], self.s_axis_tlast)),
            self.m_axis_tdata.eq(Value.cast(eng.o.payload)),
            self.m_axis_tkeep.eq(Const(-1, len(self.m_axis_tkeep))),
            self.m_axis_tvalid.eq(eng.o.valid),
            eng.o.ready.eq(self.m_axis_tready),
        ]
        if self.output_packet == "one":
            m.d.comb += [eng.i.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(eng.i.ready),
                         self.m_axis_tlast.eq(1)]
            return m
        # beat_for_beat: remember each packet's length; tlast when its outputs are all out
        m.submodules.lengths = lengths = fifo.SyncFIFOBuffered(width=COUNT_BITS, depth=PACKETS_IN_FLIGHT)
        n_in = Signal(COUNT_BITS)
        n_out = Signal(COUNT_BITS)
        hold = self.s_axis_tlast & ~lengths.w_rdy  # no room to remember this packet: wait
        m.d.comb += [
            eng.i.valid.eq(self.s_axis_tvalid & ~hold),
            self.s_axis_tready.eq(eng.i.ready & ~hold),
            lengths.w_data.eq(n_in + 1),
            lengths.w_en.eq(take_in & self.s_axis_tlast),
            self.m_axis_tlast.eq(lengths.r_rdy & (n_out + 1 == lengths.r_data)),
            lengths.r_en.eq(take_out & self.m_axis_tlast),
        ]
        with m.If(take_in):
            m.d.sync += n_in.eq(Mux(self.s_axis_tlast, 0, n_in + 1))
        with m.If(take_out):
            m.d.sync += n_out.eq(Mux(self.m_axis_tlast, 0, n_out + 1))
        return m
