"""Ingest unit of the sliding-window attention kernel: the input stream and the Q, K, V buffers.

A token arrives as ``chunks`` beats of ``lanes`` codes each of q, k and v (``hw.swa`` framing).
Beat ``c`` of the token in buffer slot ``s`` is written at word ``s·chunks + c`` of the K and V
buffers (``amaranth.lib.memory.Memory``, ``buffer_slots·chunks`` words of ``lanes`` codes), and of
the Q buffer when Q is kept per token slot (dense or symmetric window); the causal window keeps Q
in two ping-pong rows instead (word ``bank·chunks + c``). The unit takes at most one token per
lockstep slot and holds its ``ready`` low once the slot's token is in, until the slot ends.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SWAIngest", "q_per_slot"]


def q_per_slot(config) -> bool:
    """True when Q is buffered per token slot like K and V (dense or symmetric window), False
    when it sits in two ping-pong rows (causal sliding window)."""
    return config.dense or not config.causal


class SWAIngest(wiring.Component):
    """Input stream and Q/K/V buffers of the SWA kernel, with one read port per buffer.

    Parameters
    ----------
    config : SWAConfig

    Attributes
    ----------
    i : In(stream.Signature(config.in_layout()))
        Input beats (one chunk of one token each).
    active : In(1)
        The current slot takes a token.
    slot : In(range(buffer_slots + 1))
        K/V buffer slot of the current slot's token (and Q slot when :func:`q_per_slot`).
    q_bank : In(1)
        Ping-pong Q row the token goes to (causal sliding window only).
    go : In(1)
        The current slot ends with this cycle (the unit may take the next token after it).
    ok : Out(1)
        The unit is done with the current slot (inactive, or the token is in by this cycle).
    last : Out(1)
        ``last`` flag of the current slot's token (valid once ``ok``).
    k_slot, k_chunk : In(range(buffer_slots + 1)), In(range(chunks + 1))
        K read address (buffer slot and chunk); ``k`` holds the word one cycle later.
    k : Out(ArrayLayout(unsigned(qk_fmt.bits), lanes))
    v_slot, v_chunk, v : as for K, V buffer.
    q_index : In(range(max(window, buffer_slots) + 1)) or In(1)
        Q read row: the token's slot when :func:`q_per_slot`, else the ping-pong bank.
    q_chunk : In(range(chunks + 1))
    q : Out(ArrayLayout(unsigned(qk_fmt.bits), lanes))
        Q word one cycle after its address.
    """

    def __init__(self, config):
        self.config = config
        C, Wd = config.chunks, config.buffer_slots
        qk_row = data.ArrayLayout(unsigned(config.qk_fmt.bits), config.lanes)
        v_row = data.ArrayLayout(unsigned(config.v_fmt.bits), config.lanes)
        q_index = range(max(config.window, Wd) + 1) if q_per_slot(config) else unsigned(1)
        super().__init__({
            "i": In(stream.Signature(config.in_layout())),
            "active": In(1), "slot": In(range(Wd + 1)), "q_bank": In(1), "go": In(1),
            "ok": Out(1), "last": Out(1),
            "k_slot": In(range(Wd + 1)), "k_chunk": In(range(C + 1)), "k": Out(qk_row),
            "v_slot": In(range(Wd + 1)), "v_chunk": In(range(C + 1)), "v": Out(v_row),
            "q_index": In(q_index), "q_chunk": In(range(C + 1)), "q": Out(qk_row),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        C, Wd = cfg.chunks, cfg.buffer_slots
        q_ring = q_per_slot(cfg)
        qk_row = data.ArrayLayout(unsigned(cfg.qk_fmt.bits), cfg.lanes)
        v_row = data.ArrayLayout(unsigned(cfg.v_fmt.bits), cfg.lanes)
        m.submodules.kmem = kmem = Memory(shape=qk_row, depth=Wd * C, init=[])
        m.submodules.vmem = vmem = Memory(shape=v_row, depth=Wd * C, init=[])
        m.submodules.qmem = qmem = Memory(shape=qk_row, depth=(Wd * C if q_ring else 2 * C), init=[])
        kw, vw, qw = kmem.write_port(), vmem.write_port(), qmem.write_port()
        kr, vr, qr = kmem.read_port(), vmem.read_port(), qmem.read_port()

        done = Signal()                    # the current slot's token is in
        ci = Signal(range(C + 1))          # chunk of the next beat
        tok_last = Signal()
        m.d.comb += self.i.ready.eq(self.active & ~done)
        take = self.i.valid & self.i.ready
        fin = take & (ci == C - 1)
        waddr = self.slot * C + ci
        for port, f in ((kw, "k"), (vw, "v"), (qw, "q")):
            m.d.comb += [port.data.eq(self.i.payload[f]), port.en.eq(take)]
        m.d.comb += [kw.addr.eq(waddr), vw.addr.eq(waddr),
                     qw.addr.eq(waddr if q_ring else self.q_bank * C + ci)]
        with m.If(take):
            m.d.sync += ci.eq(Mux(ci == C - 1, 0, ci + 1))
        with m.If(fin):
            m.d.sync += [done.eq(1), tok_last.eq(self.i.payload.last)]
        with m.If(self.go):
            m.d.sync += done.eq(0)
        m.d.comb += [self.ok.eq(~self.active | done | fin),
                     self.last.eq(Mux(done, tok_last, self.i.payload.last))]

        m.d.comb += [kr.addr.eq(self.k_slot * C + self.k_chunk), vr.addr.eq(self.v_slot * C + self.v_chunk),
                     qr.addr.eq(self.q_index * C + self.q_chunk),
                     self.k.eq(kr.data), self.v.eq(vr.data), self.q.eq(qr.data)]
        return m
