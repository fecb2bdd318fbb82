"""A row stage of a dataflow accelerator in hardware (:class:`RowEngine`): two frame banks of its
main input, ``skip_depth`` banks of its skip input, an element issuer, an optional LayerNorm
normalizer (:class:`hw.normalizer.Normalizer`), gain and bias, an optional sum over rows and a
requantizer — :func:`hw.dataflow.row.run_row` bit for bit.

Ports: as :class:`hw.dataflow.stage.StageEngine`'s — ``i`` (main elements: codes, or signed raw
integers of ``in_bits``), ``o`` (output elements: codes, or signed raw values of ``value_bits``),
``credit`` (in), ``release`` (out), ``skip_credit`` (in, one bit per skip reader of this stage's
own frames) — plus, with a skip input, ``skip_i`` (the skip source's elements, broadcast to this
stage as they go to the source's next stage) and ``skip_release`` (out: a pulse when a skip bank
is freed, wired to the source's ``skip_credit`` bit for this reader).

Inside, per cycle:

- **writers**: main elements fill the two main banks in turn (as StageEngine's); skip elements
  fill the ``skip_depth`` skip banks in turn (frame ``n`` in bank ``n mod skip_depth``).
- **issue** (stage A): when the main bank and the frame's skip bank are full and the next stage
  has a free bank (a credit; and every skip reader of this stage a free skip bank), the element
  counter walks rows ``p`` and columns ``j``, one element per cycle: ROMs (asynchronous) give the
  main and skip addresses of element ``(p, j)``, which address the banks' registered read ports;
  registered ROMs give its multipliers. With normalization, after a row's last element the issuer
  waits so that rows issue every :attr:`RowStage.row_cycles` cycles, the normalizer's steady-state
  period: no row then waits in the normalizer.
- **beat** (stage B, the beat register: the read ports' outputs and ``valid``): ``v = main · mult
  + skip · skip_mult`` of the elements' exact integers; into the normalizer (a pipeline of three
  rows: it loads one while it computes the one before and outputs the one before that; it stalls
  the beat register only when the sink holds it back) or straight on. The frame's last element leaving the
  beat register frees its main and skip banks (``release``, ``skip_release``).
- **output**: ``y = v · gain[j] + bias[j]`` (``v`` normalized, or as is), with ``mean`` added to
  the column's running sum (a memory of ``D`` sums) and passed on only in the last row; then
  requantized for column ``j`` (:func:`hw.requant.requantizer`) or raw, into the output register.

Timing with an always-valid source and ready sink, from the frame's first issue ``A``: element
``(p, j)`` issues at ``A + p · row_cycles + j``; the frame's last element leaves the beat register
(its banks are released) at ``A + release``, ``release = (P - 1) · row_cycles + D``; the last
output transfers at ``A + busy_cycles - 1 + latency`` (``busy_cycles = P · row_cycles``, latency 2:
the beat register and the output register; with normalization ``row_cycles = max(D, 3R + 4)`` and
the latency ``2 + row_span - row_cycles``, ``row_span = 2D + 3R + 4`` the normalizer's cycles from
a row's first input to its last output); the next frame issues from ``A + busy_cycles`` on (its
rows keep the period). This is :func:`hw.dataflow.plan.schedule`'s closed form.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant.formats import parse_format

from ..normalizer import Normalizer
from ..requant import requantizer
from .row import RowStage
from .stage import _bank_writer, _element_int, _rom, _skip_credits, element_shape, engine_ports

__all__ = ["RowEngine"]


def _int_of(m: Module, code: Value, fmt: str | None) -> Value:
    """The exact integer of a frame element: a raw element's signed value, or a code's
    (:func:`hw.dataflow.stage._element_int`)."""
    return code.as_signed() if fmt is None else _element_int(m, code, parse_format(fmt))


def _table(m: Module, name: str, values: list[int], addr: Value, signed_: bool, domain: str, en: Value | None = None):
    """``values[addr]``: a constant when all are equal, else a ROM read through a ``domain`` port
    (``en``: its enable, registered ports) — the values as signed or unsigned integers."""
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        v = values[0]
        return Const(v, signed(max(2, v.bit_length() + 1)) if signed_ else unsigned(max(1, v.bit_length())))
    bits = max(max(abs(v).bit_length() for v in values) + int(signed_), 1)
    rd = _rom(m, name, [[v & ((1 << bits) - 1)] for v in values], bits, domain=domain)
    m.d.comb += rd.addr.eq(addr)
    if en is not None:
        m.d.comb += rd.en.eq(en)
    return rd.data.as_signed() if signed_ else rd.data


class RowEngine(wiring.Component):
    """A :class:`~hw.dataflow.row.RowStage` in hardware (module docstring).

    Parameters
    ----------
    stage : RowStage
    credited : whether a next stage returns credits (False for the last stage).
    skip_depths : per skip reader of this stage's frames, its ``skip_depth`` (frames).
    """

    def __init__(self, stage: RowStage, credited: bool, skip_depths: tuple[int, ...] = ()) -> None:
        self.stage, self.credited, self.skip_depths = stage, credited, tuple(skip_depths)
        members = engine_ports(element_shape(stage.in_fmt, stage.in_bits), stage, self.skip_depths)
        if stage.skip is not None:
            members["skip_i"] = In(stream.Signature(element_shape(stage.skip_fmt, stage.skip_bits)))
            members["skip_release"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        st = self.stage
        m = Module()
        rows, d, total = st.rows, st.d, st.rows * st.d
        has_skip, norm = st.skip is not None, st.extra is not None

        # ---- frame banks and their writers ----
        banks = [Memory(shape=unsigned(st.in_bits), depth=max(2, st.in_size), init=[]) for _ in (0, 1)]
        for b, mem in enumerate(banks):
            m.submodules[f"bank{b}"] = mem
        full = _bank_writer(m, self.i, [[mem] for mem in banks], st.in_size)
        if has_skip:
            depth = st.skip_depth
            sbanks = [Memory(shape=unsigned(st.skip_bits), depth=max(2, st.skip_size), init=[]) for _ in range(depth)]
            for b, mem in enumerate(sbanks):
                m.submodules[f"skip_bank{b}"] = mem
            sfull = _bank_writer(m, self.skip_i, [[mem] for mem in sbanks], st.skip_size, prefix="skip_")

        # ---- issue (stage A) ----
        e = Signal(range(max(2, total)))  # element index p · D + j within the frame
        col = Signal(range(max(2, d)))
        busy, rb = Signal(), Signal()
        credits = Signal(range(3), init=2)
        valid_b, bank_b, end_b = Signal(), Signal(), Signal()
        sink_ready, adv, start = Signal(), Signal(), Signal()
        gap = Signal(range(max(2, st.row_cycles - d + 1)))  # cycles the issuer still waits: the row period
        can_start = full[rb] & ((credits != 0) if self.credited else 1)
        if self.skip_depths:
            can_start &= _skip_credits(m, self.skip_depths, self.skip_credit, start)
        if has_skip:
            sb, sbank_b = Signal(range(max(2, depth))), Signal(range(max(2, depth)))
            can_start &= sfull[sb]
        go = (busy | can_start) & (gap == 0)
        issue = go & adv
        final, row_end = e == total - 1, col == d - 1
        m.d.comb += [adv.eq(~valid_b | sink_ready), start.eq(issue & ~busy)]

        def reader(prefix: str, mems: list[Memory], windows, mults, size: int):
            """Element ``e``'s address (an asynchronous ROM) on a registered read port of every
            bank of ``mems``, and its multiplier (registered): the read ports and the multiplier."""
            win_rd = _rom(m, f"{prefix}windows", [[int(a)] for a in windows.ravel()], max(1, size.bit_length()),
                          domain="comb")
            m.d.comb += win_rd.addr.eq(e)
            ports = [mem.read_port(domain="sync") for mem in mems]
            for port in ports:
                m.d.comb += [port.addr.eq(win_rd.data), port.en.eq(adv)]
            return ports, _table(m, f"{prefix}mults", list(mults.ravel()), e, False, "sync", adv)

        reads, mult = reader("", banks, st.windows, st.mults, st.in_size)
        if has_skip:
            sreads, smult = reader("skip_", sbanks, st.skip_windows, st.skip_mults, st.skip_size)

        with m.If(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        with m.If(adv):
            m.d.sync += valid_b.eq(go)
        with m.If(issue):
            m.d.sync += [bank_b.eq(rb), end_b.eq(final), busy.eq(~final),
                         e.eq(Mux(final, 0, e + 1)), col.eq(Mux(row_end, 0, col + 1))]
            if has_skip:
                m.d.sync += sbank_b.eq(sb)
            with m.If(final):
                m.d.sync += rb.eq(~rb)
                if has_skip:
                    m.d.sync += sb.eq(Mux(sb == depth - 1, 0, sb + 1))
            if norm:
                with m.If(row_end):
                    m.d.sync += gap.eq(st.row_cycles - d)
        if self.credited:
            m.d.sync += credits.eq(credits - start + self.credit)

        # ---- beat (stage B): v = main · mult (+ skip · skip_mult) ----
        v = Signal(signed(st.sum_bits))
        main = _int_of(m, Mux(bank_b, reads[1].data, reads[0].data), st.in_fmt)
        value = main * mult
        if has_skip:
            skip = _int_of(m, Array(p.data for p in sreads)[sbank_b], st.skip_fmt)
            value = value + skip * smult
        m.d.comb += v.eq(value)
        release = valid_b & sink_ready & end_b
        m.d.comb += self.release.eq(release)
        with m.If(release):
            m.d.sync += full[bank_b].eq(0)
        if has_skip:
            m.d.comb += self.skip_release.eq(release)
            with m.If(release):
                m.d.sync += sfull[sbank_b].eq(0)

        # ---- normalizer, or straight on ----
        valid_o = Signal()
        post_ready = ~valid_o | self.o.ready
        if norm:
            m.submodules.normalizer = nz = Normalizer(d, st.sum_bits, st.extra)
            m.d.comb += [nz.i.valid.eq(valid_b), nz.i.payload.eq(v), sink_ready.eq(nz.i.ready), nz.o.ready.eq(post_ready)]
            src_valid, src = nz.o.valid, nz.o.payload
        else:
            m.d.comb += sink_ready.eq(post_ready)
            src_valid, src = valid_b, v

        # ---- output: y = v · gain + bias, the sum over rows, requantization ----
        take = src_valid & post_ready
        pcol, prow = Signal(range(max(2, d))), Signal(range(max(2, rows)))
        gain = _table(m, "gains", list(st.gains), pcol, True, "comb")
        bias = _table(m, "biases", list(st.biases), pcol, True, "comb")
        y = Signal(signed(st.value_bits))
        m.d.comb += y.eq(src * gain + bias)
        emit = 1
        if st.mean:
            sums = Memory(shape=signed(st.value_bits), depth=max(2, d), init=[])
            m.submodules.sums = sums
            sum_rd, sum_wr = sums.read_port(domain="comb"), sums.write_port()
            summed = Signal(signed(st.value_bits))
            m.d.comb += [sum_rd.addr.eq(pcol), summed.eq(Mux(prow == 0, 0, sum_rd.data) + y),
                         sum_wr.addr.eq(pcol), sum_wr.data.eq(summed), sum_wr.en.eq(take)]
            y, emit = summed, prow == rows - 1
        result = y
        if st.requant is not None:
            m.submodules.requant = rq = requantizer(st.requant)
            m.d.comb += [rq.acc.eq(y), rq.channel.eq(pcol if st.requant.channels > 1 else 0)]
            result = rq.code
        m.d.comb += self.o.valid.eq(valid_o)
        with m.If(self.o.ready):
            m.d.sync += valid_o.eq(0)
        with m.If(take):
            m.d.sync += pcol.eq(Mux(pcol == d - 1, 0, pcol + 1))
            with m.If(pcol == d - 1):
                m.d.sync += prow.eq(Mux(prow == rows - 1, 0, prow + 1))
            with m.If(emit):
                m.d.sync += [valid_o.eq(1), self.o.payload.eq(result)]
        return m
