"""The synthesized, classified netlist (:func:`netlist`): Yosys maps the engine for a family
(:data:`~costmodel.activity.coefficients.FAMILIES`), splits every net to single bits and renames
them ``n<k>_``; each kept net bit is classified by the cell that drives it (:data:`CLASSES`, per
cell library) with its fanout and the DSP data pins it drives. Cached in
``cache_root()/activity/<hash>/`` and in memory."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw.rtl import TARGETS, TOP, cache_root, run_synth, synth_command, verilog_text, yosys_version

from .coefficients import DSP_MULT_BITS, FAMILIES

__all__ = ["CLASSES", "Netlist", "netlist", "check_target"]

#: driver classes of a net bit (see the module docstring)
CLASSES = ("lut", "carry", "ff", "dsp", "mem", "input", "other")

# ---------------------------------------------------------------------------------------------
# Netlist

_POST = """splitnets
rename -hide w:* x:* %d
rename -enumerate -pattern n%_
opt_clean -purge
write_verilog -noattr net.v
write_json net.json
"""

#: the multiplier and ALU data inputs of a DSP48 (toggles there price its internal energy); on
#: ECP5 a MULT18X18D's A0…A17 / B0…B17 and an iCE40 SB_MAC16's A / B are its multiplier inputs
_DSP_MULT_PORTS = ("A", "B", "D", "ACIN", "BCIN")
_DSP_ALU_PORTS = ("C", "PCIN")
_LATTICE_MULT_PORT = re.compile(r"[AB]\d*")
#: DSP48 outputs that feed the next DSP over dedicated cascade wires (no general routing)
_DSP_CASCADE_OUT = ("PCOUT", "ACOUT", "BCOUT", "CARRYCASCOUT", "MULTSIGNOUT")


@dataclass(frozen=True)
class Netlist:
    """A synthesized, bit-split, classified netlist.

    Attributes
    ----------
    verilog : the mapped netlist (top ``dut``), ``write_verilog -noattr``.
    target : synthesis target (one of :data:`FAMILIES`); nodsp : synthesized with ``-nodsp``.
    bits : JSON bit ids of the nets kept (driven by a cell or an input, at least one sink).
    cls : index into :data:`CLASSES` per kept bit.
    fanout : sink pins (+ output-port bits) per kept bit.
    route_fanout : the fanout that uses general routing: 0 for DSP cascade nets (PCOUT → PCIN,
        ACOUT, BCOUT: dedicated paths inside the DSP column, UG479), else ``fanout``.
    names : ``(netname, bit index)`` → position in ``bits``, for every name of a kept bit.
    dsp_mult_pins, dsp_alu_pins : per kept bit, how many DSP multiplier / ALU data-input pins it
        drives (the DSP-internal energy follows their toggles).
    ff : flip-flops (clock loads); cells : cell type → count.
    """

    verilog: str
    target: str
    nodsp: bool
    bits: np.ndarray
    cls: np.ndarray
    fanout: np.ndarray
    route_fanout: np.ndarray
    names: dict[tuple[str, int], int]
    dsp_mult_pins: np.ndarray
    dsp_alu_pins: np.ndarray
    ff: int
    cells: dict[str, int] = field(default_factory=dict)

    def nets(self) -> dict[str, int]:
        """Kept nets per class."""
        return {c: int((self.cls == i).sum()) for i, c in enumerate(CLASSES)}


#: driver class of a cell type by its name's prefix, per cell library (first match wins; None: a
#: constant driver; anything else is "other")
_CELL_CLASSES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "xilinx": (("GND", None), ("VCC", None), ("LUT", "lut"), ("INV", "lut"), ("MUXF", "lut"),
               ("CARRY", "carry"), ("FD", "ff"), ("LD", "ff"), ("DSP48", "dsp"), ("RAM", "mem"), ("SRL", "mem")),
    "ice40": (("SB_LUT4", "lut"), ("SB_CARRY", "carry"), ("SB_DFF", "ff"), ("SB_MAC16", "dsp"), ("SB_RAM", "mem"),
              ("SB_SPRAM", "mem")),
    "ecp5": (("VLO", None), ("VHI", None), ("LUT4", "lut"), ("PFUMX", "lut"), ("L6MUX21", "lut"),
             ("CCU2C", "carry"), ("TRELLIS_FF", "ff"), ("MULT18X18D", "dsp"), ("ALU54B", "dsp"),
             ("DP16KD", "mem"), ("TRELLIS_DPR16X4", "mem")),
}
#: the cell library of each family
LIBRARY = {"xc7": "xilinx", "xcup": "xilinx", "ice40": "ice40", "ecp5": "ecp5"}


def _cell_class(typ: str, target: str = "xc7") -> str | None:
    """Driver class of a cell type of ``target``'s library (None: a constant driver)."""
    t = typ.lstrip("\\$")
    return next((cls for prefix, cls in _CELL_CLASSES[LIBRARY[target]] if t.startswith(prefix)), "other")


def _dsp_pin(target: str, port: str, j: int) -> str | None:
    """"mult" / "alu" / None: what a DSP cell's input ``port`` bit ``j`` feeds."""
    if LIBRARY[target] != "xilinx":
        return "mult" if _LATTICE_MULT_PORT.fullmatch(port) else None
    if port in _DSP_MULT_PORTS and (port in ("B", "BCIN") or j < DSP_MULT_BITS[target][0]):
        return "mult"  # A / ACIN / D bits above the multiplier width feed only the ALU path
    return "alu" if port in _DSP_ALU_PORTS else None


def check_target(target: str) -> str:
    """``target`` when this package classifies and simulates it (:data:`FAMILIES`); else a
    ``ValueError`` naming the fix."""
    if target not in TARGETS or target not in FAMILIES:
        raise ValueError(f"unknown synthesis target {target!r}; choose one of {', '.join(FAMILIES)}")
    return target


def _classify(js: dict, verilog: str, target: str, nodsp: bool) -> Netlist:
    mod = js["modules"][TOP]
    driver: dict[int, str] = {}
    fan: Counter = Counter()
    mult: Counter = Counter()
    alu: Counter = Counter()
    cells: Counter = Counter()
    cascade: set[int] = set()
    ff = 0
    for cell in mod["cells"].values():
        typ = cell["type"]
        cells[typ] += 1
        cls = _cell_class(typ, target)
        ff += cls == "ff"
        dirs = cell.get("port_directions", {})
        for port, conn in cell["connections"].items():
            out = dirs.get(port) == "output"
            for j, b in enumerate(conn):
                if not isinstance(b, int):
                    continue
                if out:
                    if cls is not None:
                        driver[b] = cls
                    if cls == "dsp" and port in _DSP_CASCADE_OUT:
                        cascade.add(b)
                    continue
                fan[b] += 1
                if cls == "dsp":
                    pin = _dsp_pin(target, port, j)
                    mult[b] += pin == "mult"
                    alu[b] += pin == "alu"
    for pname, port in mod["ports"].items():
        for b in port["bits"]:
            if not isinstance(b, int):
                continue
            if port["direction"] == "input":
                if pname != "clk":
                    driver.setdefault(b, "input")
            else:
                fan[b] += 1
    kept = sorted(b for b in driver if fan[b] > 0)
    pos = {b: i for i, b in enumerate(kept)}
    names = {}
    for name, nn in mod["netnames"].items():
        for j, b in enumerate(nn["bits"]):
            if isinstance(b, int) and b in pos:
                names[(name, j)] = pos[b]
    return Netlist(
        verilog=verilog, target=target, nodsp=nodsp, bits=np.array(kept, dtype=np.int64),
        cls=np.array([CLASSES.index(driver[b]) for b in kept], dtype=np.int8),
        fanout=np.array([fan[b] for b in kept], dtype=np.int64),
        route_fanout=np.array([0 if b in cascade else fan[b] for b in kept], dtype=np.int64), names=names,
        dsp_mult_pins=np.array([mult[b] for b in kept], dtype=np.int64),
        dsp_alu_pins=np.array([alu[b] for b in kept], dtype=np.int64), ff=int(ff), cells=dict(sorted(cells.items())))


_NETLISTS: dict[tuple[str, str, bool], Netlist] = {}


def netlist(config: Any, target: str = "xc7", *, nodsp: bool = False) -> Netlist:
    """The synthesized, classified netlist of an engine config (or component, or Verilog text
    with top ``dut``) for ``target``; Yosys runs once per design (cached on disk).

    Raises
    ------
    ValueError for a target not in :data:`FAMILIES`; ``hw.rtl.SynthError`` (``tool`` =
    ``"yosys"``) when Yosys fails.
    """
    check_target(target)
    verilog = config if isinstance(config, str) else verilog_text(config)
    key = (verilog, target, nodsp)
    if key in _NETLISTS:
        return _NETLISTS[key]
    cmd = synth_command(target, nodsp)
    version = yosys_version()
    h = hashlib.sha256(json.dumps([verilog, cmd, _POST, version]).encode()).hexdigest()[:32]
    folder = cache_root() / "activity" / h
    if (folder / "net.json").exists() and (folder / "net.v").exists():
        net_v, net_json = (folder / "net.v").read_text(), (folder / "net.json").read_text()
    else:
        out = run_synth(verilog, cmd, _POST, ["net.v", "net.json"])[0]
        net_v, net_json = out["net.v"], out["net.json"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in (("net.v", net_v), ("net.json", net_json)):
            tmp = folder / f".{name}.{os.getpid()}"
            tmp.write_text(text)
            os.replace(tmp, folder / name)
    net = _classify(json.loads(net_json), net_v, target, nodsp)
    _NETLISTS[key] = net
    return net
