"""A cocotb test of an exported AXI4-Stream top, for users who live in Python
(``paretofab rtl … --axis --testbench`` writes it as ``test_<top>.py``).

It needs cocotb 2.x and cocotbext-axi (the ``flow`` extra). cocotbext-axi's ``AxiStreamSource``
sends the packets of ``<top>_in.hex`` (the input beats up to each ``last`` bit, ``tdata`` in
little-endian byte lanes) with random valid gaps; its ``AxiStreamSink`` takes the output with
random back-pressure. Each received packet (split where ``m_axis_tlast`` is set) must equal the
expected packet of ``<top>_expected.hex`` beat for beat, so payloads, ``tlast`` and ``tkeep`` are
all checked. Run it with cocotb's runner, e.g. for Icarus::

    python -c "from cocotb_tools.runner import get_runner; r = get_runner('icarus'); \\
        r.build(sources=['<top>.v'], hdl_toplevel='<top>'); \\
        r.test(hdl_toplevel='<top>', test_module='test_<top>', test_dir='.')"
"""

from __future__ import annotations

from pathlib import Path

from .axis import byte_width

__all__ = ["cocotb_test_text", "write_cocotb_test"]


def cocotb_test_text(top: str, in_bits: int, out_bits: int, in_bytes: int, out_bytes: int, seed: int,
                     valid_pct: int, ready_pct: int) -> str:
    """Text of ``test_<top>.py`` (module docstring). ``in_bits`` / ``out_bits``: payload bits in
    ``tdata``; ``in_bytes`` / ``out_bytes``: ``tdata`` width in bytes; the expected hex holds
    ``{all tkeep set, tlast, payload}`` per beat (:func:`hw.testbench.write_testbench`)."""
    return f'''"""cocotb test of {top} (paretofab, generated): cocotbext-axi sends the packets of
{top}_in.hex ({valid_pct}% valid) and takes m_axis with back-pressure ({ready_pct}% ready); every
received packet must equal the expected one of {top}_expected.hex, beat for beat."""

import itertools
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

IN_BITS, OUT_BITS, IN_BYTES, OUT_BYTES = {in_bits}, {out_bits}, {in_bytes}, {out_bytes}
HERE = Path(__file__).resolve().parent


def words(name):
    return [int(x, 16) for x in (HERE / name).read_text().split()]


def packets(beats, bits, end_bit):
    """Split beats into packets at the beats whose bit ``end_bit`` is set; keep the low ``bits``."""
    out, cur = [], []
    for b in beats:
        cur.append(b & ((1 << bits) - 1))
        if b >> end_bit & 1:
            out.append(cur)
            cur = []
    assert not cur, "the last beat does not end a packet"
    return out


@cocotb.test()
async def test_{top}(dut):
    rng = random.Random({seed})
    send = packets(words("{top}_in.hex"), IN_BITS, IN_BITS)
    want = packets(words("{top}_expected.hex"), OUT_BITS + 1, OUT_BITS)  # tlast; the top bit: all tkeep set
    assert all(e >> (OUT_BITS + 1) & 1 for e in words("{top}_expected.hex"))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
    source.set_pause_generator(rng.randrange(100) >= {valid_pct} for _ in itertools.count())
    sink.set_pause_generator(rng.randrange(100) >= {ready_pct} for _ in itertools.count())
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for packet in send:
        await source.send(AxiStreamFrame(b"".join(b.to_bytes(IN_BYTES, "little") for b in packet)))
    for j, expected in enumerate(want):
        frame = await sink.recv()
        data = bytes(frame.tdata)
        got = [int.from_bytes(data[i:i + OUT_BYTES], "little") & ((1 << OUT_BITS) - 1)  # the padding aside
               for i in range(0, len(data), OUT_BYTES)]
        got = [g | 1 << OUT_BITS if i == len(got) - 1 else g for i, g in enumerate(got)]  # its tlast
        assert got == expected, f"packet {{j}}: expected {{[hex(e) for e in expected]}}, got {{[hex(g) for g in got]}}"
    dut._log.info(f"PASS: {{len(want)}} packets equal the reference")
'''


def write_cocotb_test(folder: str | Path, top: str, in_bits: int, out_bits: int, seed: int, valid_pct: int,
                      ready_pct: int) -> Path:
    """Write ``test_<top>.py`` into ``folder``; returns its path."""
    path = Path(folder) / f"test_{top}.py"
    path.write_text(cocotb_test_text(top, in_bits, out_bits, byte_width(in_bits) // 8, byte_width(out_bits) // 8,
                                     seed, valid_pct, ready_pct))
    return path
