"""The per-toggle energy figures of the activity model, per family: each published figure
(cited), the first-order CV² node scaling from its process to the family's, and the labels that
say no board measurement stands behind them (:data:`COEFFICIENTS`, :data:`ENERGY_SOURCE`); the
vendors' default vectorless toggle rate (:data:`VECTORLESS_RATE`)."""

from __future__ import annotations

from typing import Any

from ..energy import ERT

__all__ = ["VECTORLESS_RATE", "XPE_DEFAULT_FANOUT", "FAMILIES", "NODE", "DSP_MULT_BITS", "COEFFICIENTS",
           "ENERGY_SOURCE"]

#: the vendors' default toggle rate: 12.5 % of clock cycles see a transition on a net
#: (AMD/Xilinx UG440 "Xilinx Power Estimator User Guide", Logic sheet: "The default value of
#: 12.5% means one transition every eight cycles"; default average fanout 3)
VECTORLESS_RATE = 0.125
XPE_DEFAULT_FANOUT = 3.0

#: synthesis targets whose cell library this package classifies and simulates
FAMILIES = ("xc7", "xcup", "ice40", "ecp5")

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
# 28 nm HPL, VCCINT 1.0 V (DS181/DS187, WP389); UltraScale+ 16 nm FinFET, VCCINT 0.85 V (DS925);
# iCE40 UltraPlus 40 nm, VCC 1.2 V (Lattice FPGA-DS-02008); ECP5 40 nm, VCC 1.1 V (Lattice
# FPGA-DS-02012; ECP5-5G runs at 1.2 V). Horowitz ISSCC'14 figures (costmodel.energy.ERT) are 45 nm
# at 0.9 V.
NODE = {"virtex2": (150.0, 1.5), "horowitz45": (45.0, 0.9), "xc7": (28.0, 1.0), "xcup": (16.0, 0.85),
        "ice40": (40.0, 1.2), "ecp5": (40.0, 1.1)}


def _scale(src: str, dst: str) -> float:
    """First-order CV² scaling of a switching energy from ``src`` to ``dst`` (assumption:
    switched capacitance ∝ feature size, energy ∝ C·V²)."""
    (l0, v0), (l1, v1) = NODE[src], NODE[dst]
    return (l1 / l0) * (v1 / v0) ** 2


#: multiplier array of the family's DSP block: DSP48E1 25×18 (UG479), DSP48E2 27×18 (UG579), iCE40
#: SB_MAC16 16×16 (Lattice TN1295; synth_ice40 infers none by default), ECP5 MULT18X18D 18×18
#: (FPGA-DS-02012 sysDSP)
DSP_MULT_BITS = {"xc7": (25, 18), "xcup": (27, 18), "ice40": (16, 16), "ecp5": (18, 18)}

_NO_BOARD = ("no board measurement stands behind this figure: published Virtex-II / ASIC figures scaled "
             "to the family by first-order CV² rules")


def _coefficients(fam: str) -> dict[str, dict[str, Any]]:
    s = _scale("virtex2", fam)
    sa = _scale("horowitz45", fam)
    a, b = DSP_MULT_BITS[fam]
    node = f"{NODE[fam][0]:g} nm, {NODE[fam][1]:g} V"
    conv = (f"scaled Virtex-II (150 nm, 1.5 V) → {fam} ({node}) by (L1/L0)·(V1/V0)² = {s:.4f} "
            "(assumption: C ∝ feature size" + (
                "; and a Lattice LUT4 fabric's routing and logic toggle as a Virtex-II one, also LUT4-based)"
                if fam in ("ice40", "ecp5") else ")"))
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
            "unit": f"one 0↔1 transition at a multiplier input bit of a DSP block ({a}×{b})",
            "source": (f"assumption: a DSP block is a hard (ASIC-like) block; its {a}×{b} multiply costs "
                       f"Horowitz ISSCC'14 45 nm 8×8 0.2 pJ × {a}·{b}/64 (Aladdin's wa·wb scaling, "
                       f"costmodel.energy.ERT) × {sa:.4f} (45 nm 0.9 V → {node}, C ∝ L, CV²), spread over "
                       f"the 0.5·({a}+{b}) input toggles of uniformly random operands; no published DSP-block "
                       "per-toggle figure at hand; " + _NO_BOARD)},
        "dsp_alu_input_toggle": {
            "pJ": ERT["add_bit"]["pJ"] * sa / 0.5,
            "unit": "one 0↔1 transition at a DSP block's ALU input bit (DSP48 C, PCIN cascade)",
            "source": (f"assumption: one adder bit (Horowitz ISSCC'14 45 nm, 32-bit add 0.1 pJ / 32) per "
                       f"0.5 input toggles of random operands, × {sa:.4f} (45 nm 0.9 V → {node}); "
                       + _NO_BOARD)},
    }


#: per-family coefficient tables: ``{"pJ", "unit", "source"}`` per entry
COEFFICIENTS: dict[str, dict[str, dict[str, Any]]] = {fam: _coefficients(fam) for fam in FAMILIES}

ENERGY_SOURCE = ("activity-based FPGA dynamic energy: toggles counted by Verilator gate-level simulation of the "
                 "Yosys-mapped netlist × per-class coefficients from Shang/Kaviani/Bathala FPGA'02 (Virtex-II "
                 "shares and 5.9 µW/MHz per CLB) and Horowitz ISSCC'14 (DSP-block internals, assumption), scaled to "
                 "the family by first-order CV² rules; zero-delay (no glitches), no place and route (fanout, "
                 "not wire length); no board measurement stands behind these figures")
