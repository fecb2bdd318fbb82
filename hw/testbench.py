"""Self-checking testbenches for exported engines, for any simulator a user has.

:func:`write_testbench` writes, beside ``<top>.v`` and ``<top>.json`` (:func:`hw.export.export_design`):

``tb_<top>.sv``
    a testbench in the SystemVerilog subset that Icarus Verilog 11 (``iverilog -g2012``) and
    Verilator 5 (``--binary --timing``) both accept (Verilog-2005 plus ``$fatal``; the design it
    drives is the portable Verilog of :mod:`hw.portable`, registers and ``assign`` only, so no
    ``always @*`` block waits for a time-0 event that IEEE 1800 initializers do not give). It
    holds reset for two cycles, drives the
    input beats with random valid gaps and takes the outputs with random ready back-pressure
    (xorshift32, seeded: the same gaps on every simulator), compares every output beat with the
    expected one, and prints ``PASS`` and finishes (exit 0), or prints ``FAIL`` with the first
    mismatch (beat index, expected, got) and stops with ``$fatal`` (a non-zero exit), also on a
    timeout.
``<top>_in.hex``, ``<top>_expected.hex``
    one beat per line, read with ``$readmemh``: the packed input payloads
    (``engine.pack_inputs``) and the expected output payloads, packed from the engine's numpy
    reference (``engine.reference``, exact) by the output payload layout of the JSON (every
    element two's complement at its offset) — never from simulating the RTL.

Valid and ready percentages of 100 give an all-ready, never-stalling run.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .engines import engine
from .axis import byte_width, expected_tlast
from .cocotb_bench import write_cocotb_test
from .export import export_design
from .verilator import verilator_command

__all__ = ["TestbenchFiles", "write_testbench", "compile_testbench", "expected_beats", "DEFAULT_VALID_PCT",
           "DEFAULT_READY_PCT", "SIMULATORS"]

#: default chance, percent, that the testbench offers a beat (valid) / accepts one (ready) in a cycle
DEFAULT_VALID_PCT = 70
DEFAULT_READY_PCT = 60


@dataclass(frozen=True)
class TestbenchFiles:
    """Paths of one exported design and its testbench, and the run's size."""

    verilog: Path
    json: Path
    testbench: Path
    inputs: Path
    expected: Path
    top: str
    in_beats: int
    out_beats: int
    cocotb: Path | None = None  # test_<top>.py (AXI4-Stream tops only)

    __test__ = False  # not a pytest test class


def expected_beats(reference: Any, n_outputs: int, field: dict[str, Any]) -> list[int]:
    """Output payloads (unsigned ints of ``field["width"]`` bits) of a reference array: one beat
    per row of ``reference`` reshaped to ``(n_outputs, count)``, element ``j`` two's complement in
    ``element_width`` bits at bit ``j · element_width`` (a single field: ``count`` 1)."""
    count = int(field.get("count", 1))
    ew = int(field.get("element_width", field["width"]))
    flat = np.asarray(reference, dtype=object).reshape(n_outputs, count)
    mask = (1 << ew) - 1
    return [sum((int(v) & mask) << (j * ew) for j, v in enumerate(row)) for row in flat]


def _hex_lines(words: Sequence[int], width: int) -> str:
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def _bare_dut(top: str) -> str:
    return f"""  wire [OW-1:0] out_data;

  {top} dut (
    .clk(clk), .rst(rst),
    .i__valid(in_valid), .i__ready(in_ready), .i__payload(in_data),
    .o__valid(out_valid), .o__ready(out_ready), .o__payload(out_data)
  );"""


def _axis_dut(top: str, iw: int, ow: int) -> str:
    """The AXI4-Stream top (hw.axis): tdata = payload without last, tlast = last; what is
    compared per output beat is {&tkeep, tlast, payload bits of tdata}."""
    pad_in, pad_out = byte_width(iw - 1) - (iw - 1), byte_width(ow - 2) - (ow - 2)
    tdata = f"{{{{{pad_in}{{1'b0}}}}, in_data[IW-2:0]}}" if pad_in else "in_data[IW-2:0]"
    return f"""  wire [{byte_width(ow - 2) - 1}:0] m_tdata;
  wire [{byte_width(ow - 2) // 8 - 1}:0] m_tkeep;
  wire m_tlast;
  // compared per beat: {{all tkeep bits set, tlast, the payload bits of tdata}}{" (the top " + str(pad_out) + " tdata bits are padding)" if pad_out else ""}
  wire [OW-1:0] out_data = {{&m_tkeep, m_tlast, m_tdata[OW-3:0]}};

  {top} dut (
    .clk(clk), .rst(rst),
    .s_axis_tvalid(in_valid), .s_axis_tready(in_ready), .s_axis_tdata({tdata}), .s_axis_tlast(in_data[IW-1]),
    .m_axis_tvalid(out_valid), .m_axis_tready(out_ready), .m_axis_tdata(m_tdata), .m_axis_tkeep(m_tkeep),
    .m_axis_tlast(m_tlast)
  );"""


def _testbench_text(top: str, n_in: int, n_out: int, iw: int, ow: int, seed: int, valid_pct: int,
                    ready_pct: int, max_cycles: int, dut: str) -> str:
    rng0 = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1  # xorshift32 needs a non-zero state
    return f"""`timescale 1ns / 1ps
// Self-checking testbench of {top} (paretofab). Drives {top}_in.hex ({n_in} beats) with random
// valid gaps ({valid_pct}% valid) and random ready back-pressure ({ready_pct}% ready), xorshift32 from
// seed {seed}; compares each output beat with {top}_expected.hex ({n_out} beats, from the exact
// numpy reference). PASS: prints PASS and finishes (exit 0). FAIL: prints the first mismatch and
// stops with $fatal (non-zero exit); also on a timeout of {max_cycles} cycles.
// Run (a comment starting with the word Verilator would be read as a Verilator pragma):
//   with Icarus 11:    iverilog -g2012 -o tb_{top}.vvp tb_{top}.sv {top}.v && vvp tb_{top}.vvp
//   with Verilator 5:  verilator --binary --timing [-CFLAGS -fcoroutines] --top-module tb_{top}
//                      {top}.vlt tb_{top}.sv {top}.v && obj_dir/Vtb_{top}
module tb_{top};
  localparam integer N_IN = {n_in};
  localparam integer N_OUT = {n_out};
  localparam integer IW = {iw};
  localparam integer OW = {ow};
  localparam integer VALID_PCT = {valid_pct};
  localparam integer READY_PCT = {ready_pct};
  localparam integer MAX_CYCLES = {max_cycles};

  reg [IW-1:0] in_mem [0:N_IN-1];
  reg [OW-1:0] exp_mem [0:N_OUT-1];
  reg clk = 1'b0;
  reg rst = 1'b1;
  reg in_valid = 1'b0;
  reg [IW-1:0] in_data = {{IW{{1'b0}}}};
  reg out_ready = 1'b0;
  wire in_ready;
  wire out_valid;
  reg [31:0] rng = 32'd{rng0};
  integer n_in = 0;
  integer n_out = 0;
  integer cycle = 0;

{dut}

  function [31:0] xorshift(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift = y ^ (y << 5);
    end
  endfunction

  initial begin
    $readmemh("{top}_in.hex", in_mem);
    $readmemh("{top}_expected.hex", exp_mem);
  end

  always #5 clk = ~clk;

  always @(posedge clk) begin
    cycle <= cycle + 1;
    if (cycle == 1) rst <= 1'b0;
    if (!rst) begin
      // input: a beat offered is held until taken; a new one is offered with VALID_PCT % chance
      if (in_valid && in_ready) n_in = n_in + 1;
      if (!in_valid || in_ready) begin
        rng = xorshift(rng);
        if (n_in < N_IN && (rng % 100) < VALID_PCT) begin
          in_valid <= 1'b1;
          in_data <= in_mem[n_in];
        end else begin
          in_valid <= 1'b0;
        end
      end
      // output: every beat taken is checked against the expected one
      if (out_valid && out_ready) begin
        if (out_data !== exp_mem[n_out]) begin
          $display("FAIL: output beat %0d: expected %h, got %h (cycle %0d)", n_out, exp_mem[n_out], out_data, cycle);
          $fatal(1, "output mismatch");
        end
        n_out = n_out + 1;
        if (n_out == N_OUT) begin
          $display("PASS: %0d output beats equal the reference (%0d input beats, %0d cycles)", N_OUT, N_IN, cycle);
          $finish;
        end
      end
      rng = xorshift(rng);
      out_ready <= (rng % 100) < READY_PCT;
    end
    if (cycle > MAX_CYCLES) begin
      $display("FAIL: timeout after %0d cycles: %0d of %0d input beats taken, %0d of %0d output beats seen",
               cycle, n_in, N_IN, n_out, N_OUT);
      $fatal(1, "timeout");
    end
  end
endmodule
"""


def write_testbench(config: Any, folder: str | Path, workload: Any, *, top: str | None = None, seed: int = 1,
                    valid_pct: int = DEFAULT_VALID_PCT, ready_pct: int = DEFAULT_READY_PCT,
                    axis: bool = False) -> TestbenchFiles:
    """Export ``config`` into ``folder`` (``<top>.v``, ``<top>.json``) with a self-checking
    testbench for ``workload`` (module docstring).

    Parameters
    ----------
    config : an engine config (``hw.engines``).
    folder : output folder (created).
    workload : the engine's workload (``engine.random_workload`` or codes a user holds).
    top : module name; None: named after the design.
    seed : seed of the valid / ready gaps (xorshift32 in the testbench).
    valid_pct, ready_pct : chance per cycle, percent (1–100), of offering an input beat and of
        taking an output beat; 100 and 100 never stall.
    axis : test the AXI4-Stream top (:mod:`hw.axis`): each expected beat also holds the expected
        ``tlast`` (:func:`hw.axis.expected_tlast`) and all ``tkeep`` bits set, above the payload.

    Raises
    ------
    ValueError
        for a percentage outside 1–100 or a negative seed.
    """
    for name, pct in (("valid_pct", valid_pct), ("ready_pct", ready_pct)):
        if not 1 <= int(pct) <= 100:
            raise ValueError(f"{name} must be a percentage in 1..100 (100: never stall), got {pct}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    mod = engine(config.engine)
    inputs = mod.pack_inputs(config, workload)  # raises the engine's WorkloadError on a bad workload
    n_out = int(mod.n_outputs(config, workload))
    reference = mod.reference(config, workload)
    vpath, jpath = export_design(config, folder, top=top, axis=axis)
    doc = json.loads(jpath.read_text())
    top = doc["top"]
    (out_field,) = doc["payload_fields"]["o"]
    expected = expected_beats(reference, n_out, out_field)
    if axis:
        iw, ow = doc["axis"]["in_bits"] + 1, doc["axis"]["out_bits"] + 2
        lasts = [beat >> (iw - 1) & 1 for beat in inputs]
        tlast = expected_tlast(mod.OUTPUT_PACKET, lasts, n_out)
        expected = [e | t << (ow - 2) | 1 << (ow - 1) for e, t in zip(expected, tlast)]
        dut = _axis_dut(top, iw, ow)
    else:
        widths = {p["name"]: p["width"] for p in doc["ports"]}
        iw, ow = widths["i__payload"], widths["o__payload"]
        dut = _bare_dut(top)
    folder = Path(folder)
    ipath, epath, tpath = folder / f"{top}_in.hex", folder / f"{top}_expected.hex", folder / f"tb_{top}.sv"
    ipath.write_text(_hex_lines(inputs, iw))
    epath.write_text(_hex_lines(expected, ow))
    slowest = min(int(valid_pct), int(ready_pct))
    max_cycles = 1000 + 4 * (int(mod.cycles(config, workload)) + len(inputs) + n_out) * 100 // slowest
    tpath.write_text(_testbench_text(top, len(inputs), n_out, iw, ow, int(seed), int(valid_pct), int(ready_pct),
                                     max_cycles, dut))
    cocotb = write_cocotb_test(folder, top, iw - 1, ow - 2, int(seed), int(valid_pct), int(ready_pct)) if axis else None
    return TestbenchFiles(vpath, jpath, tpath, ipath, epath, top, len(inputs), n_out, cocotb)


#: simulators :func:`compile_testbench` builds for
SIMULATORS = ("icarus", "verilator")


def compile_testbench(tb: TestbenchFiles, simulator: str, optimize: bool = False) -> list[str]:
    """Compile an exported testbench in its folder with Icarus 11 (``iverilog -g2012``) or
    Verilator 5 (``--binary --timing`` with ``<top>.vlt``; ``optimize``: ``-O3``), the commands its
    header gives; returns the command that runs it there (the hex files are read at run time, so
    it can run again after they change). ``subprocess.CalledProcessError`` if compiling fails."""
    folder = tb.testbench.parent
    if simulator == "icarus":
        subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", tb.testbench.name, tb.verilog.name], cwd=folder,
                       check=True, capture_output=True, text=True)
        return ["vvp", "-n", "tb.vvp"]
    if simulator != "verilator":
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")
    cmd, env = verilator_command("--binary", "--timing", *(["-O3"] if optimize else []), "-CFLAGS", "-fcoroutines",
                                 "--top-module", f"tb_{tb.top}", f"{tb.top}.vlt", tb.testbench.name, tb.verilog.name)
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True, text=True, env=env)
    return [str(folder / "obj_dir" / f"Vtb_{tb.top}")]

