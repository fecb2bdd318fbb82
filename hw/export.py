"""Designs a user can drop in: ``export_design(config, folder)`` writes an engine as
``<top>.v``, ``<top>.json`` and ``<top>.vlt``.

- ``<top>.v``: one flat module named after the design (:func:`design_name`), in the portable
  Verilog of :mod:`hw.portable` (explicit operand widths, registers and ``assign`` only), with a
  comment block at its head listing every port and payload field;
- ``<top>.json``: the same as data: ports, every payload field of the input and output streams
  with its bit offset and width, the output exponent;
- ``<top>.vlt``: the Verilator waivers ``verilator --lint-only -Wall`` needs on it (two rules,
  :func:`hw.portable.waivers`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from quant.common import writable_folder

from .axis import AXIStreamTop
from .engines import engine
from .portable import portable_verilog, waivers

__all__ = ["design_name", "check_top_name", "export_design", "design_ports", "payload_fields"]

_VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign default
defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule endprimitive
endspecify endtable endtask event for force forever fork function generate genvar highz0 highz1 if
ifnone incdir include initial inout input instance integer join large liblist library localparam
macromodule medium module nand negedge nmos nor noshowcancelled not notif0 notif1 or output parameter
pmos posedge primitive pull0 pull1 pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small
specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1
triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
logic bit byte int shortint longint interface endinterface package endpackage class endclass
""".split())


def check_top_name(name: str) -> str:
    """``name`` if it is a usable Verilog module name (letter or ``_`` first, then letters, digits,
    ``_`` or ``$``; not a keyword), else ``ValueError`` naming the rule."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,127}", name or "") or name in _VERILOG_KEYWORDS:
        raise ValueError(f"top module name {name!r} is not a Verilog identifier (a letter or _ first, then "
                         f"letters, digits, _ or $, not a keyword, at most 128 characters); pass e.g. --top my_dot")
    return name


def design_name(config: Any) -> str:
    """Verilog module name of an engine config: ``<engine>_<config.design_tag()>``, e.g.
    ``dot_l16_int8_int8_k1024``, ``sparse_l8_2of4_e4m3_int8_k1024``,
    ``swa_d64_w16_l8_int8_int8``. Distinct configs get distinct names (fields the tag does not
    spell out add a hash, :meth:`hw.engine.EngineConfig.other_fields_tag`)."""
    return check_top_name(f"{config.engine}_{config.design_tag()}")


def _shape_fields(shape: Any, name: str, offset: int) -> list[dict[str, Any]]:
    """Leaf fields of a payload shape: ``{name, offset, width, signed}`` (bits); arrays add
    ``count`` and ``element_width`` (element ``j`` at ``offset + j·element_width``)."""
    from amaranth.hdl import Shape  # heavy: Amaranth
    from amaranth.lib import data  # heavy: Amaranth

    if isinstance(shape, data.StructLayout):
        out = []
        for fname, fld in shape:
            out += _shape_fields(fld.shape, f"{name}.{fname}" if name else fname, offset + fld.offset)
        return out
    if isinstance(shape, data.ArrayLayout):
        elem = Shape.cast(shape.elem_shape)
        if not isinstance(shape.elem_shape, (data.StructLayout, data.ArrayLayout)):
            return [{"name": name or "data", "offset": offset, "width": shape.size, "count": shape.length,
                     "element_width": elem.width, "signed": elem.signed}]
        out = []
        for j in range(shape.length):
            out += _shape_fields(shape.elem_shape, f"{name}[{j}]", offset + j * shape.elem_shape.size)
        return out
    s = Shape.cast(shape)
    return [{"name": name or "data", "offset": offset, "width": s.width, "signed": s.signed}]


def payload_fields(component: Any) -> dict[str, list[dict[str, Any]]]:
    """Payload fields of each stream port of a component (``{"i": [...], "o": [...]}``), from
    its Amaranth signature: every leaf field with ``offset`` and ``width`` in bits (LSB 0 of the
    ``<port>__payload`` vector), ``signed``, and for arrays ``count`` and ``element_width``."""
    out = {}
    for pname, member in component.signature.members.items():
        if member.is_signature and "payload" in member.signature.members:
            out[pname] = _shape_fields(member.signature.members["payload"].shape, "", 0)
    return out


_PORT_DECL = re.compile(r"^\s*(input|output|inout)\s+(?:(?:wire|reg|signed)\s+)*(?:\[(\d+):(\d+)\]\s*)?(\w+)\s*;", re.M)


def design_ports(verilog: str, top: str) -> list[dict[str, Any]]:
    """Ports of module ``top`` in Verilog text: ``{name, direction, width}`` (bits) in
    declaration order, read from the ``input``/``output`` declarations."""
    m = re.search(rf"^module\s+{re.escape(top)}\s*\((.*?)^endmodule", verilog, re.M | re.S)
    if m is None:
        raise ValueError(f"no module {top} in the Verilog text")
    return [{"name": name, "direction": d, "width": (int(hi) - int(lo) + 1) if hi else 1}
            for d, hi, lo, name in _PORT_DECL.findall(m.group(1))]


def _header(top: str, doc: dict[str, Any]) -> str:
    lines = [f"paretofab {doc['engine']} engine, top module {top}",
             "config: " + " ".join(f"{k}={v}" for k, v in doc["config"].items() if k != "engine" and v is not None),
             "clock: clk (rising edge); reset: rst (synchronous, active high)"]
    if "axis" in doc:
        ax = doc["axis"]
        lines += ["streams: AXI4-Stream, s_axis_* in, m_axis_* out (hw.axis)",
                  f"s_axis_tdata = the i payload below without its last bit ({ax['in_bits']} bits, zero-padded); "
                  "s_axis_tlast = that last bit",
                  f"m_axis_tdata = the o payload below ({ax['out_bits']} bits; padding: a single signed result "
                  "sign-extended, else zeros); m_axis_tkeep all ones; "
                  f"m_axis_tlast: {ax['tlast']}"]
    else:
        lines.append("streams: <s>__payload is valid when <s>__valid & <s>__ready (AXI-Stream-like handshake)")
    lines.append("ports (direction, width in bits):")
    lines += [f"  {p['direction']:<6} {p['width']:>4}  {p['name']}" for p in doc["ports"]]
    for port, flds in doc["payload_fields"].items():
        lines.append(f"{port}__payload fields (bit offset, width; array element j at offset + j*element_width):")
        for f in flds:
            arr = f" = {f['count']} x {f['element_width']}-bit" if "count" in f else ""
            kind = "signed" if f["signed"] else "unsigned"
            lines.append(f"  [{f['offset'] + f['width'] - 1}:{f['offset']}] {f['name']}{arr} {kind}")
    lines.append(f"outputs: exact results in units of 2^{doc['output_exponent']}")
    lines.append("full description: the JSON file of the same name")
    return "".join(f"// {line}\n" for line in lines)


#: what m_axis_tlast marks, per engine OUTPUT_PACKET
_TLAST = {"one": "every output beat (one result per input packet: a vector)",
          "beat_for_beat": "the last output beat of an input packet (as many output beats as it had input beats: "
                           "a sequence)"}


def export_design(config: Any, folder: str | os.PathLike, top: str | None = None,
                  axis: bool = False) -> tuple[Path, Path]:
    """Write an engine config as ``<top>.v`` and ``<top>.json`` into ``folder`` (created).

    Parameters
    ----------
    config : an engine config (``hw.engines``), with ``build()`` and ``to_dict()``.
    folder : output folder.
    top : module name; None: :func:`design_name` of the config (``_axis`` appended with ``axis``).
    axis : the AXI4-Stream top of :mod:`hw.axis` instead of the bare valid/ready streams; the
        JSON gains ``axis`` (``in_bits``, ``out_bits`` carried in tdata, ``output_packet``,
        ``tlast``).

    Returns
    -------
    (Verilog path, JSON path). The JSON holds ``top``, ``engine``, ``config`` (``to_dict()``),
    ``ports`` (``name``, ``direction``, ``width`` in bits), ``payload_fields`` per stream (each
    field's ``offset`` and ``width`` in bits, ``signed``; arrays ``count`` and
    ``element_width``) and ``output_exponent`` (outputs are integers times 2^it). The ``.v``
    starts with a comment block saying the same; ``<top>.vlt`` beside it holds its lint waivers.
    """
    top = check_top_name(top) if top is not None else design_name(config) + ("_axis" if axis else "")
    folder = writable_folder(folder)  # a file, or a folder that cannot be written: one line, before any work
    wrapper = AXIStreamTop(config) if axis else None
    comp = wrapper.engine if wrapper else config.build()
    verilog = portable_verilog(wrapper or comp, top)
    doc = {"top": top, "engine": config.engine, "config": config.to_dict(),
           "ports": design_ports(verilog, top), "payload_fields": payload_fields(comp),
           "output_exponent": int(engine(config.engine).output_exponent(config))}
    if wrapper:
        doc["axis"] = {"in_bits": wrapper.in_bits, "out_bits": wrapper.out_bits,
                       "output_packet": wrapper.output_packet, "tlast": _TLAST[wrapper.output_packet]}
    vpath, jpath = folder / f"{top}.v", folder / f"{top}.json"
    # a timescale of its own: simulators warn (Verilator: TIMESCALEMOD) when only the testbench has one
    vpath.write_text(_header(top, doc) + "`timescale 1ns / 1ps\n" + verilog)
    jpath.write_text(json.dumps(doc, indent=2) + "\n")
    (folder / f"{top}.vlt").write_text(waivers(top, axis=axis))
    return vpath, jpath
