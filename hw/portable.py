"""Portable Verilog: what ``paretofab rtl`` hands to a user's simulator, linter and vendor tool.

Amaranth's own Verilog (:func:`hw.rtl.verilog_text`, what synthesis and the cost model read) is
a hierarchy of escaped-name modules whose combinational logic sits in ``always @*`` processes,
with operands narrower than their results left to Verilog's implicit extension. Linted with
``verilator --lint-only -Wall`` it gives thousands of warnings, and Icarus ``-g2012`` never
starts its ``always @*`` blocks. :func:`portable_verilog` passes it once more through Yosys, with
semantics-preserving passes only:

``proc``, ``flatten``
    registers and multiplexers instead of processes; one module named after the design (no
    sub-module names to clash with a user's own).
``opt_expr``, ``wreduce``, ``opt_clean -purge``
    constant-fold, drop result bits no one reads, remove dead nets.
``pmuxtree``
    one-hot ``case`` selectors as ``?:`` trees (no overlapping ``casez`` arms).
``techmap -map explicit_widths.v`` (:data:`EXPLICIT_WIDTHS`)
    every operator's operands extended or cut to the width it is evaluated at, explicitly
    (``{a[7], a}`` instead of Verilog's implicit sign extension): no WIDTH warning anywhere.
``splitnets -driver``
    split Yosys' own multi-bit nets where one operator drives only part of them.

:func:`waivers` writes the Verilator configuration that remains: two rules, each a pattern the
generator cannot avoid (see its text). :func:`lint` runs ``verilator --lint-only -Wall`` with it.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from .rtl import run_yosys, verilog_text
from .verilator import verilator_command

__all__ = ["EXPLICIT_WIDTHS", "PORTABLE_SCRIPT", "portable_verilog", "waivers", "lint", "LintError"]


def _extend(dst: str, src: str, signed: str) -> str:
    """Verilog: ``dst`` = ``src`` sign-extended (``signed`` true) or zero-extended / cut to ``dst``'s width."""
    return (f"  generate\n    if ({signed}) begin : {dst}_signed\n      assign {dst} = $signed({src});\n"
            f"    end else begin : {dst}_unsigned\n      assign {dst} = {src};\n    end\n  endgenerate\n")


def _cell(cell: str, ports: str, body: str) -> str:
    inputs = "".join(f"  input [{p}_WIDTH-1:0] {p};\n" for p in ports if p != "Y")
    return (f'(* techmap_celltype = "${cell}" *)\nmodule _explicit_{cell} ({", ".join(ports)});\n'
            "  parameter A_SIGNED = 0;\n  parameter B_SIGNED = 0;\n  parameter A_WIDTH = 1;\n"
            f"  parameter B_WIDTH = 1;\n  parameter Y_WIDTH = 1;\n{inputs}  output [Y_WIDTH-1:0] Y;\n"
            f"{body}endmodule\n")


def _at_result_width(cell: str, binary: bool) -> str:
    """Operators whose low ``Y_WIDTH`` result bits depend only on the operands' low bits (add,
    sub, mul, bitwise, neg, not): evaluate at ``Y_WIDTH`` with both operands extended or cut."""
    signed = "A_SIGNED && B_SIGNED" if binary else "A_SIGNED"
    same = "A_WIDTH == Y_WIDTH" + (" && B_WIDTH == Y_WIDTH" if binary else "")
    body = f"  wire _TECHMAP_FAIL_ = {same};\n  localparam S = {signed};\n  wire [Y_WIDTH-1:0] a;\n"
    body += _extend("a", "A", "S")
    if binary:
        body += "  wire [Y_WIDTH-1:0] b;\n" + _extend("b", "B", "S")
        body += (f"  \\${cell} #(.A_SIGNED(S), .B_SIGNED(S), .A_WIDTH(Y_WIDTH), .B_WIDTH(Y_WIDTH), "
                 ".Y_WIDTH(Y_WIDTH)) _TECHMAP_REPLACE_ (.A(a), .B(b), .Y(Y));\n")
        return _cell(cell, "ABY", body)
    body += f"  \\${cell} #(.A_SIGNED(S), .A_WIDTH(Y_WIDTH), .Y_WIDTH(Y_WIDTH)) _TECHMAP_REPLACE_ (.A(a), .Y(Y));\n"
    return _cell(cell, "AY", body)


def _compare(cell: str) -> str:
    """Comparisons: both operands extended to the wider one's width."""
    body = ("  wire _TECHMAP_FAIL_ = A_WIDTH == B_WIDTH;\n  localparam S = A_SIGNED && B_SIGNED;\n"
            "  localparam W = A_WIDTH > B_WIDTH ? A_WIDTH : B_WIDTH;\n  wire [W-1:0] a, b;\n")
    body += _extend("a", "A", "S") + _extend("b", "B", "S")
    body += (f"  \\${cell} #(.A_SIGNED(S), .B_SIGNED(S), .A_WIDTH(W), .B_WIDTH(W), .Y_WIDTH(Y_WIDTH)) "
             "_TECHMAP_REPLACE_ (.A(a), .B(b), .Y(Y));\n")
    return _cell(cell, "ABY", body)


def _shift(cell: str) -> str:
    """Shifts: the shifted operand extended to ``max(A_WIDTH, Y_WIDTH)`` (``x`` fill for
    ``$shiftx``, a part-select), shifted at that width, then the low ``Y_WIDTH`` bits taken."""
    body = ("  wire _TECHMAP_FAIL_ = A_WIDTH == Y_WIDTH;\n"
            "  localparam W = A_WIDTH > Y_WIDTH ? A_WIDTH : Y_WIDTH;\n  wire [W-1:0] a, y;\n")
    if cell == "shiftx":
        body += ("  generate\n    if (W > A_WIDTH) begin : a_x\n      assign a = {{(W-A_WIDTH){1'bx}}, A};\n"
                 "    end else begin : a_same\n      assign a = A;\n    end\n  endgenerate\n")
    else:
        body += _extend("a", "A", "A_SIGNED")
    body += (f"  \\${cell} #(.A_SIGNED(A_SIGNED), .B_SIGNED(B_SIGNED), .A_WIDTH(W), .B_WIDTH(B_WIDTH), "
             ".Y_WIDTH(W)) _TECHMAP_REPLACE_ (.A(a), .B(B), .Y(y));\n  assign Y = y[Y_WIDTH-1:0];\n")
    return _cell(cell, "ABY", body)


_LOGIC_NOT = _cell("logic_not", "AY", (
    "  wire _TECHMAP_FAIL_ = A_WIDTH == 1 && Y_WIDTH == 1;\n  wire zero = ~|A;\n"
    "  generate\n    if (Y_WIDTH > 1) begin : wide\n      assign Y = {{(Y_WIDTH-1){1'b0}}, zero};\n"
    "    end else begin : bit\n      assign Y = zero;\n    end\n  endgenerate\n"))

#: Yosys techmap file: every operator cell rewritten with operands of its evaluation width
EXPLICIT_WIDTHS = "".join([
    *(_at_result_width(c, True) for c in ("add", "sub", "mul", "and", "or", "xor", "xnor")),
    *(_at_result_width(c, False) for c in ("neg", "not", "pos")),
    *(_compare(c) for c in ("eq", "ne", "eqx", "nex", "lt", "le", "gt", "ge")),
    *(_shift(c) for c in ("shl", "sshl", "shr", "sshr", "shift", "shiftx")),
    _LOGIC_NOT,
])

#: the Yosys passes between Amaranth's Verilog and the portable one (module docstring)
PORTABLE_SCRIPT = """hierarchy -top {top}
proc
flatten
opt_expr
opt_clean -purge
wreduce
opt_clean -purge
pmuxtree
techmap -map explicit_widths.v
opt_clean -purge
splitnets -driver w:$*
opt_clean -purge
memory_collect
write_verilog -noattr portable.v"""


def portable_verilog(component: Any, top: str) -> str:
    """Verilog of ``component`` (or a config with ``build()``) as one flat module ``top`` with
    explicit operand widths (module docstring); the same logic as :func:`hw.rtl.verilog_text`."""
    out = run_yosys(verilog_text(component, top), PORTABLE_SCRIPT.format(top=top), ["portable.v"],
                    files={"explicit_widths.v": EXPLICIT_WIDTHS})
    return out["portable.v"]


def waivers(top: str, axis: bool = False) -> str:
    """Verilator configuration (``<top>.vlt``) with the waivers ``-Wall`` needs on ``<top>.v``;
    ``axis``: an AXI4-Stream top, whose ``s_axis_tdata`` padding bits are unread."""
    return f"""`verilator_config
// Waivers for `verilator --lint-only -Wall {top}.vlt {top}.v` (paretofab). Only patterns the
// generator cannot avoid:
// PROCASSINIT: every flip-flop is declared with its power-up value (`reg q = 1'h0;`, the
//   Amaranth init value, which FPGA tools load at configuration) and assigned in
//   `always @(posedge clk)`. Dropping the initializers would leave registers without a reset
//   undefined until the pipeline fills.
lint_off -rule PROCASSINIT -file "*{top}.v"
// UNUSEDSIGNAL on unnamed nets (Yosys' _123_, Amaranth's temporaries such as norm.$1): bits an
//   operator computes and the design drops, e.g. the low bits of a fixed-point product or the
//   high bits of a right shift, which Verilog evaluates at its operand's width. Signals the
//   design names get no waiver.
lint_off -rule UNUSEDSIGNAL -file "*{top}.v" -match "*: '_*_'*"
lint_off -rule UNUSEDSIGNAL -file "*{top}.v" -match "*: '*$*'*"
""" + (f"""// UNUSEDSIGNAL on s_axis_tdata: AXI4-Stream carries whole bytes; the bits above the payload are
//   padding the design does not read (hw.axis).
lint_off -rule UNUSEDSIGNAL -file "*{top}.v" -match "*'s_axis_tdata'*"
""" if axis else "")


class LintError(RuntimeError):
    """Verilator found warnings the waivers do not cover (its messages are in the text)."""

    tool = "verilator"


def lint(verilog: str | os.PathLike, waiver: str | os.PathLike | None = None) -> list[str]:
    """``verilator --lint-only -Wall [waiver] verilog``: the warning lines (empty: lint-clean)."""
    cmd, env = verilator_command("--lint-only", "-Wall", *([str(waiver)] if waiver else []), str(verilog))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("%")]
    if proc.returncode != 0 and not lines:
        raise LintError(f"verilator --lint-only exit {proc.returncode}: {(proc.stdout + proc.stderr)[-500:]}")
    return lines
