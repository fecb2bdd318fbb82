"""Real FPGA parts with their capacities, static power, and the Yosys synthesis family
(``target``) each maps to: ``paretofab synth --device PART`` synthesizes for the part's family,
and the cost model (``costmodel``) sizes designs against its capacities.

Capacities are the vendors' datasheet totals (cited per part). Block RAM is given both in the
part's native blocks and in 18 Kbit equivalents (``bram18``), the unit of :class:`costmodel.Cost`;
on Lattice parts, whose blocks are 4 Kbit (iCE40 EBR) or 18 Kbit (ECP5 EBR), ``bram18`` is the
total block-RAM bits / 18 Kbit, rounded down. ``dsp`` counts the part's hard multiplier blocks
(DSP48E1 / DSP48E2 / SB_MAC16 / 18×18 multipliers).

Static power is the device's quiescent power at nominal core voltage and 25 °C junction, *typical*
process (a worst-case / hot-junction figure is several times higher). Every part says where its
figure comes from in ``static_source``, which starts with ``datasheet:`` (a vendor data-sheet
figure, cited) or ``estimate:`` (no vendor figure could be consulted here; the reason and the
basis are given). Only the iCE40 figure is a data-sheet number; for a real energy budget replace
the estimates with the vendor power estimator's figure for the design (Xilinx XPE / Vivado
``report_power``, Lattice Radiant / Diamond Power Calculator).
"""

from __future__ import annotations

from dataclasses import dataclass

from .rtl import TARGETS

__all__ = ["Device", "DEVICES", "DEFAULT_DEVICE", "DeviceError", "get_device", "TARGETS"]

#: the part every command uses unless told otherwise: the family the cost model is calibrated on
DEFAULT_DEVICE = "xc7z020"



class DeviceError(ValueError):
    """Unknown device name; the message lists the known parts."""


@dataclass(frozen=True)
class Device:
    """One FPGA part.

    Attributes
    ----------
    name : short part name (``"xczu3eg"``).
    family : vendor family, human-readable.
    target : ``hw.rtl.synthesize`` target whose primitives this part has.
    lut : logic LUTs (LUT6 on Xilinx, LUT4 on Lattice).
    ff : flip-flops.
    dsp : hard multiplier / DSP blocks.
    bram18 : block RAM in 18 Kbit equivalents.
    bram_kbit : total block RAM, Kbit.
    lutram : LUTs usable as distributed RAM (SLICEM LUTs on Xilinx); 0 where unknown / none.
    static_w : quiescent (static) power, W (typical, 25 °C).
    source : datasheet the capacities come from.
    static_source : where ``static_w`` comes from: ``datasheet: …`` (cited) or ``estimate: …``
        (basis and reason), typical vs maximum stated.
    part : the vendor tool's full part number (package, speed grade) of the usual board, for
        generated vendor projects (``hw.fusesoc``); empty where no vendor project is generated.
    """

    name: str
    family: str
    target: str
    lut: int
    ff: int
    dsp: int
    bram18: int
    bram_kbit: int
    lutram: int
    static_w: float
    source: str
    static_source: str
    part: str = ""

    def capacity(self) -> dict[str, int]:
        """Capacities keyed like :class:`costmodel.Cost` fields (``lut ff dsp bram18``)."""
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram18": self.bram18}


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device(
            "xc7z020", "Xilinx Zynq-7000 (PL of Z-7020)", "xc7",
            lut=53_200, ff=106_400, dsp=220, bram18=280, bram_kbit=5_040, lutram=17_400,
            static_w=0.12,
            source="Xilinx DS190 Zynq-7000 SoC Overview, Table 1 (Z-7020: 53,200 LUTs, 106,400 FFs, "
                   "140 × 36 Kb BRAM = 4.9 Mb, 220 DSP slices)",
            static_source="estimate: 0.12 W, the middle of the 0.10–0.14 W 'Device Static' commonly seen in "
                          "Vivado report_power outputs for small designs on a Z-7020 (Tj ≈ 25–30 °C, typical "
                          "process, whole device with the PS) — from memory of such reports, not re-checked "
                          "here. Not a data-sheet figure: DS187's per-rail quiescent currents could not be "
                          "consulted here",
            part="xc7z020clg400-1",  # PYNQ-Z1 / Z2, Zybo Z7-20
        ),
        Device(
            "xczu3eg", "Xilinx Zynq UltraScale+ MPSoC (PL of ZU3EG)", "xcup",
            lut=70_560, ff=141_120, dsp=360, bram18=432, bram_kbit=7_776, lutram=28_800,
            static_w=0.30,
            source="Xilinx DS891 Zynq UltraScale+ MPSoC Overview (ZU3EG: 70,560 LUTs, 141,120 FFs, "
                   "216 × 36 Kb BRAM = 7.6 Mb, 360 DSP48E2)",
            static_source="estimate: 0.30 W, the order of XPE / Vivado 'Device Static' for a ZU3EG "
                          "(Ultra96-class boards) at 25 °C typical process, PS always-on domains included — from "
                          "memory of such reports, not re-checked here. Not a data-sheet figure (DS925 gives no "
                          "static power); replace with XPE for the design",
            part="xczu3eg-sbva484-1-e",  # Ultra96
        ),
        Device(
            "u55c", "Xilinx Alveo U55C (XCU55C, Virtex UltraScale+ HBM)", "xcup",
            lut=1_304_000, ff=2_607_000, dsp=9_024, bram18=4_032, bram_kbit=72_576, lutram=0,
            static_w=20.0,
            source="Xilinx DS978 Alveo U55C Data Center Accelerator Card (1,304K LUTs, 2,607K "
                   "registers, 9,024 DSP slices, 2,016 × 36 Kb BRAM = 70.9 Mb, 960 UltraRAM)",
            static_source="estimate: 20 W, the order of an idle Alveo U55C / U280-class card as the card's "
                          "own sensors (xbutil) report it, HBM and board included — the relevant standing cost "
                          "of a card, not an XPE die-only static figure. DS978 gives only the 150 W maximum "
                          "(thermal design power), not an idle figure",
            part="xcu55c-fsvh2892-2L-e",  # the Alveo U55C card's part
        ),
        Device(
            "ice40up5k", "Lattice iCE40 UltraPlus UP5K", "ice40",
            lut=5_280, ff=5_280, dsp=8, bram18=6, bram_kbit=120, lutram=0,
            static_w=1.2 * 100e-6,
            source="Lattice FPGA-DS-02008 iCE40 UltraPlus Family Data Sheet (UP5K: 5,280 LUT4s, "
                   "30 × 4 Kb EBR = 120 Kb, 4 × 256 Kb SPRAM not counted, 8 SB_MAC16 DSPs)",
            static_source="datasheet: 120 µW = 100 µA × 1.2 V; Lattice FPGA-DS-02008 (iCE40 UltraPlus "
                          "Family Data Sheet) §1.1 Features: 'As low as 100 µA standby current typical' "
                          "(core VCC = 1.2 V, typical; the DC tables' maximum is higher, and VCCIO / SPI / "
                          "PLL rails are not included)",
            part="iCE40UP5K-SG48I",  # iCE40 UltraPlus breakout board
        ),
        Device(
            "ecp5-85f", "Lattice ECP5 LFE5U-85F", "ecp5",
            lut=83_640, ff=83_640, dsp=156, bram18=208, bram_kbit=3_744, lutram=0,
            static_w=0.10,
            source="Lattice FPGA-DS-02012 ECP5 and ECP5-5G Family Data Sheet (LFE5U-85: 84K LUTs, "
                   "208 × 18 Kb sysMEM EBR = 3,744 Kb, 156 18×18 multipliers)",
            static_source="estimate: 0.10 W, the order of the ECP5 Power Calculator's static figure for an "
                          "LFE5U-85F at 25 °C typical (core VCC = 1.1 V plus VCCAUX 2.5 V). Not a data-sheet "
                          "figure: the 'Supply Current (Standby)' table of FPGA-DS-02012 could not be "
                          "consulted here; TN1266 describes the calculator",
            part="LFE5U-85F-6BG381C",  # ECP5 evaluation board
        ),
    )
}

_ALIASES = {
    "z7020": "xc7z020", "zynq7020": "xc7z020", "xc7z020clg400": "xc7z020",
    "zu3eg": "xczu3eg", "ultra96": "xczu3eg",
    "alveo-u55c": "u55c", "xcu55c": "u55c", "alveo_u55c": "u55c",
    "up5k": "ice40up5k", "ice40-up5k": "ice40up5k",
    "ecp5_85f": "ecp5-85f", "lfe5u-85f": "ecp5-85f", "ecp585f": "ecp5-85f", "lfe5u85f": "ecp5-85f",
}


def get_device(name: str | Device) -> Device:
    """Look a part up by name (case-insensitive; a few aliases such as ``zu3eg``, ``up5k``).

    Raises
    ------
    DeviceError
        for an unknown name; the message lists the known parts.
    """
    if isinstance(name, Device):
        return name
    if not isinstance(name, str):
        raise DeviceError(f"a device is a part name, got {type(name).__name__}; known: {', '.join(DEVICES)}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    return DEVICES[key]
