"""Cost of a whole-network dataflow accelerator (:mod:`hw.dataflow`), per stage and in total, in
the spirit of FINN's ``estimate_layer_resources.json``: each stage's parts costed by the rule that
already exists for them, each figure labelled with its source.

Per MAC stage:

- **MAC pipeline**: the calibrated engine model (:func:`costmodel.estimate` of the equivalent
  ``DotConfig``, or ``SparseConfig`` for an N:M stage: lanes, formats, ``k_max`` = the window
  length, pipeline);
- **frame banks**: two banks of ``in_size`` codes, each read by ``span`` ports (window elements
  per beat); Yosys' ``memory_libmap`` gives every read port its own copy, so ``2 · span``
  buffers of the memory rule (:func:`costmodel.features.buffer_cost`);
- **ROMs**: the weights (registered read: ``channels · beats`` words × ``lanes · wbits``) and the
  window addresses (asynchronous; a fully connected layer's single window is constant-folded
  away): a large registered ROM in block RAM by the memory rule, others in logic (no LUTRAM: it
  needs a write port), with the registered output in flip-flops (:func:`_rom`; the thresholds and
  the LUTs per bit read off standalone ROM syntheses, never the networks);
- **requantizer**: :func:`costmodel.requant_cost.requant_cost` (LUTs fitted on standalone random
  requantizers; the product's DSPs by the Yosys rule), or for a threshold table
  :func:`costmodel.requant_cost.threshold_cost` (fitted on standalone random tables);
- **control and registers**: the counters, the beat register (pad flags, bank, last), the output
  register: flip-flops counted, one LUT per counter bit.

Pool stages have the banks (one read port per window element), the window ROM and a comparator
tree (one LUT per bit per comparison). Row stages (:class:`hw.dataflow.row.RowStage`: residual
sums, LayerNorm, means; :func:`row_cost`) have their banks (main and skip), address and
multiplier ROMs (a constant or repeated table free, one constant along rows or columns by its
distinct words), the multiply-adds, the normalizer (:func:`costmodel.norm_cost.norm_cost`: LUTs
fitted on standalone random normalizers, registers counted, multipliers by the DSP rule), the gain,
bias and mean (its sums a memory) and the requantizer as above. Dynamic energy per frame: the MAC engine's actions
(:func:`costmodel.estimate`), the frame-bank writes, window-ROM reads, pool reads and compares,
combiner and requantizer multiplies and adds (a threshold table's comparisons), each × an ASIC
per-action figure of
:data:`costmodel.energy.ERT`. Cycles per frame and the interval are the closed form of
:func:`hw.dataflow.plan.schedule`. The error of the total against Yosys synthesis of whole
accelerators is measured by ``bench/accel.py`` (README), never fitted here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hw.activation import ActivationSpec
from hw.dataflow.plan import NetworkPlan, Stage, schedule
from hw.dataflow.row import RowStage
from hw.dataflow.stage import weight_words
from hw.devices import Device, get_device
from hw.dot import DotConfig
from hw.normalizer import NORM_RSQRT_BITS, NORM_VAR_BITS
from hw.rtl import lut_sites
from hw.sparse import SparseConfig
from quant.formats import parse_format

from .energy import ERT, mult_pj
from .estimate import estimate
from .features import buffer_cost, mult_dsp
from .norm_cost import norm_cost
from .requant_cost import requant_cost, threshold_cost

__all__ = ["stage_cost", "row_cost", "plan_cost", "SOURCES", "PARTS"]

PARTS = ("mac", "banks", "weight_rom", "window_rom", "requant", "control")
SOURCES = {
    "mac": "calibrated engine model (costmodel.estimate of the stage's DotConfig or SparseConfig)",
    "banks": "memory rule (costmodel.features.buffer_cost; distributed RAM in LUT sites, hw.rtl.lut_sites) × 2 banks "
             "× one copy per read port (lane)",
    "weight_rom": "rule from standalone ROM syntheses: >= 256 words and 16 Kbit in BRAM (memory rule), else logic "
                  "(per live bit column — not constant, one of identical ones — a LUT6 per 64 words, + 1/3 for the "
                  "mux beyond 4), registered output",
    "window_rom": "rule from standalone ROM syntheses: logic, per live bit column a LUT6 per 64 words, + 1/3 beyond 4 "
                  "(Yosys also simplifies the addresses' arithmetic patterns: an upper bound)",
    "requant": "LUTs fitted on standalone random integer requantizers (costmodel/data/requant.csv), applied "
               "unchanged to minifloat outputs (no minifloat requantizer among its rows: unmeasured); DSPs by the "
               "Yosys rule (mult_dsp); a residual join's combiner counted (its multiplier by the DSP rule, a LUT per "
               "adder bit, its registers): not checked against Yosys; a threshold table: LUTs fitted on standalone "
               "random tables (hw.activation.thresholds of random requantizers, the same CSV)",
    "control": "counted: counters, beat and output registers (FF), 1 LUT per counter bit",
    "row": "a row stage (residual sum, LayerNorm, mean): the normalizer's LUTs fitted on standalone random "
           "normalizers (costmodel.norm_cost, data/normalizer.csv), its registers counted; the rest counted from the "
           "RTL's structure (a LUT per adder bit; multipliers by the Yosys DSP rule; banks, ROMs and the mean's sums "
           "by the rules above)",
}


def _bits(n: int) -> int:
    """Bits of a counter over ``0 .. n - 1`` (at least 1)."""
    return max(1, (max(2, n) - 1).bit_length())


def _memory(depth: int, width: int, copies: int, target: str) -> dict[str, int]:
    c = buffer_cost(depth, width, target)  # distributed RAM in LUT sites (hw.rtl.lut_sites)
    return {"lut": int(lut_sites(0, 0, target, c["lutram"])) * copies, "ff": int(c["ff"]) * copies, "dsp": 0,
            "bram18": int(c["bram18"]) * copies}


#: a registered ROM goes to block RAM when it has at least this many words and bits (Yosys
#: ``memory_libmap`` on xc7, read off 12 standalone ROM syntheses: 48–320 words or under 16 Kbit
#: stayed in logic — 320 × 40 among them — 256–5,504 words of 16 Kbit or more went to BRAM18, in
#: the numbers the memory rule gives; the rule itself is not derived from Yosys' cost model)
ROM_BRAM_WORDS, ROM_BRAM_BITS = 256, 16384


def _rom(depth: int, width: int, registered: bool, target: str, words: list[int] | None = None) -> dict[str, int]:
    """A ROM of ``depth`` words × ``width`` bits: block RAM by the memory rule when registered and
    large (:data:`ROM_BRAM_WORDS`, :data:`ROM_BRAM_BITS`), else logic — per bit one LUT6 per
    64 words, muxed for free by MUXF7/MUXF8 up to four of them, beyond that a third more for the
    mux tree (as Yosys maps random contents), the registered output in flip-flops. Given its
    ``words``, only its live columns count in logic (:func:`live_columns`)."""
    if depth == 0:
        return {"lut": 0, "ff": 0, "dsp": 0, "bram18": 0}
    if registered and depth >= ROM_BRAM_WORDS and depth * width >= ROM_BRAM_BITS:
        return _memory(depth, width, 1, target)
    if words is not None:
        width = live_columns(words, width)
    blocks = -(-depth // 64)
    per_bit = blocks if blocks <= 4 else blocks * 4 / 3
    return {"lut": round(width * per_bit), "ff": width if registered else 0, "dsp": 0, "bram18": 0}


def live_columns(words: list[int], width: int) -> int:
    """Bit columns of a ROM in logic that cost anything: not constant over the words, and one of
    each set of identical columns (Yosys folds constant outputs and merges identical logic and
    flip-flops: ``opt_expr``, ``opt_merge``)."""
    full = (1 << len(words)) - 1
    cols = set()
    for j in range(width):
        col = sum(((w >> j) & 1) << i for i, w in enumerate(words))
        if col not in (0, full):
            cols.add(col)
    return len(cols)


def _requant(st: Stage, target: str) -> dict[str, int]:
    combine = _combiner(st, target) if st.combines else {"lut": 0, "ff": 0, "dsp": 0}
    if st.requant is None:  # raw output: the bias adder and the ReLU
        return {"lut": st.out_bits * (2 if st.relu else 1) + combine["lut"], "ff": combine["ff"],
                "dsp": combine["dsp"], "bram18": 0}
    unit = threshold_cost(st.requant, target) if isinstance(st.requant, ActivationSpec) else \
        requant_cost(st.requant, target)
    parts = [unit, combine] + ([requant_cost(st.rescale, target)] if st.rescale else [])
    return {"lut": sum(p["lut"] for p in parts), "ff": combine["ff"], "dsp": sum(p["dsp"] for p in parts),
            "bram18": 0}


def _combiner(st: Stage, target: str) -> dict[str, int]:
    """A combining stage's segment multiplier (Yosys' DSP rule; none when every multiplier is 1),
    its adders (sum, bias, ReLU, the mean's sum: a LUT per bit each) and its partial and mean
    registers (counted)."""
    width = st.combined_bits
    dsp = mult_dsp(st.acc_bits, st.seg_mult_bits + 1, 0, target) if st.seg_mult_bits else 0
    adders = 2 + int(st.relu) + int(st.mean)
    return {"lut": adders * width, "ff": width * (1 + int(st.mean)), "dsp": dsp}


def _frame_io_pj(st: Stage) -> float:
    """pJ per frame of a stage's frame-bank writes and window-address ROM reads (ASIC SRAM figures
    of :data:`costmodel.energy.ERT`; the ROM is logic, so an upper estimate)."""
    abits = max(1, st.in_size.bit_length())
    rom_bits = 0 if st.positions == 1 else st.positions * st.beats * st.span * abits
    return st.in_size * parse_format(st.in_fmt).bits * ERT["sram_write_bit"]["pJ"] + rom_bits * ERT["sram_read_bit"]["pJ"]


def _around_mac_nj(st: Stage) -> float:
    """nJ per frame of what a MAC stage does beside its engine (whose actions, bank and weight
    reads included, :func:`costmodel.estimate` counts): frame-bank writes and window-ROM reads, a
    combining stage's segment multiplies and adds, and each requantization (its multiply by the
    per-channel multiplier, its bias add and rounding add)."""
    pj = _frame_io_pj(st)
    values = st.channels * st.positions  # accumulators out of the engine per segment
    if st.combines:
        m_bits = st.seg_mult_bits
        per = (mult_pj(st.acc_bits, m_bits, 0, 0, 0, 0) if m_bits else 0.0) + st.combined_bits * ERT["add_bit"]["pJ"]
        pj += values * len(st.seg_beats) * float(per)
        width = st.combined_bits
    else:
        width = st.acc_bits
    if isinstance(st.requant, ActivationSpec):  # L comparisons (subtractions) of width + 1 bits
        pj += st.out_size * st.requant.levels * (width + 1) * float(ERT["add_bit"]["pJ"])
    elif st.requant is not None:
        m_bits = max(st.requant.multipliers).bit_length()
        pj += st.out_size * float(mult_pj(width + 1, m_bits, 0, 0, 0, 0) + 2 * (width + m_bits) * ERT["add_bit"]["pJ"])
    return pj / 1e3


def stage_cost(st: Stage, device: str | Device | None = None) -> dict[str, Any]:
    """Resources of one stage by part (:data:`PARTS`; LUTs include LUTRAM), with the totals and
    the cycles per frame."""
    dev = get_device(device or "xc7z020")
    target = dev.target
    in_bits = parse_format(st.in_fmt).bits
    abits = max(1, st.in_size.bit_length())
    parts: dict[str, dict[str, int]] = {}
    parts["banks"] = _memory(st.in_size, in_bits, 2 * st.span, target)
    folded = st.positions == 1  # a fully connected layer's table is a constant per beat
    window_words = [sum(a << (j * abits) for j, a in enumerate(row)) for row in st.window_rows()] if not folded \
        else None
    parts["window_rom"] = _rom(0 if folded else st.positions * st.beats, st.span * abits, False, target, window_words)
    parts["window_rom"]["ff"] = st.span  # the pad flags
    counters = _bits(st.in_size) + _bits(st.beats) + _bits(st.positions * st.beats) + \
        _bits(st.out_size * st.beats) + 6
    if st.kind == "mac":
        engine = SparseConfig(st.lanes, *st.nm, st.wfmt, st.in_fmt, st.k, pipeline=st.pipeline) if st.nm else \
            DotConfig(st.lanes, st.wfmt, st.in_fmt, st.k, st.pipeline)
        dot = estimate(engine, dev, k=st.k, vectors=st.channels * st.positions)  # a frame: O · P dot products
        parts["mac"] = {"lut": dot.lut or 0, "ff": dot.ff or 0, "dsp": dot.dsp or 0, "bram18": dot.bram18 or 0}
        dynamic_nj, fmax = dot.dynamic_nj + _around_mac_nj(st), dot.fmax_mhz
        parts["weight_rom"] = _rom(st.channels * st.beats, st.lanes * st.weight_bits, True, target, weight_words(st))
        parts["requant"] = _requant(st, target)
        counters += _bits(st.channels * st.beats) + _bits(st.channels) + _bits(st.positions)
    else:
        parts["mac"] = {"lut": (st.lanes - 1) * 2 * in_bits, "ff": 0, "dsp": 0, "bram18": 0}  # comparator tree
        reads = st.positions * st.k * in_bits  # every window element read once, compared once
        dynamic_nj, fmax = (reads * (ERT["sram_read_bit"]["pJ"] + ERT["add_bit"]["pJ"]) + _frame_io_pj(st)) / 1e3, None
    parts["control"] = {"lut": counters, "ff": counters + st.out_bits + 4, "dsp": 0, "bram18": 0}
    total = {k: sum(p[k] for p in parts.values()) for k in ("lut", "ff", "dsp", "bram18")}
    return {"stage": st.name, "kind": st.kind, "lanes": st.lanes, "cycles_per_frame": st.busy_cycles,
            **total, "parts": parts, "dynamic_nj": dynamic_nj, "fmax_mhz": fmax}


def _row_roms(st: RowStage, tables: list[tuple[np.ndarray, int, bool]], target: str) -> dict[str, int]:
    """A row stage's per-element ROMs (address tables, read asynchronously; multipliers,
    registered), each ``(table (P, D), width, registered)``, in logic on their live columns: none
    for a constant table (the RTL makes it a constant) or one equal to an earlier one (Yosys'
    ``opt_merge``); with a power-of-two ``D`` (the element counter's low bits are the column) a
    table constant along the rows or the columns needs only ``D`` or ``P`` words."""
    total, seen = {"lut": 0, "ff": 0, "dsp": 0, "bram18": 0}, []
    p2 = st.d & (st.d - 1) == 0
    for table, width, registered in tables:
        t = np.asarray(table, dtype=object).reshape(st.rows, st.d)
        if np.all(t == t[0, 0]) or any(np.array_equal(t, u) for u, _ in seen if _ == registered):
            continue
        seen.append((t, registered))
        if p2 and np.all(t == t[:, :1]):
            t = t[:, :1]
        elif p2 and np.all(t == t[:1]):
            t = t[:1]
        words = [int(v) for v in t.ravel()]
        cost = _rom(len(words), max(1, width), False, target, words)
        cost["ff"] = max(1, width) if registered else 0
        total = {k: total[k] + cost[k] for k in total}
    return total


def row_cost(st: RowStage, device: str | Device | None = None) -> dict[str, Any]:
    """Resources of a row stage by part (:data:`PARTS`; ``mac``: its multiply-adds, ``requant``:
    normalizer, gain, bias, mean and requantizer), totals and cycles per frame (module docstring)."""
    dev = get_device(device or "xc7z020")
    target = dev.target
    d, p, w = st.d, st.rows, st.sum_bits
    parts: dict[str, dict[str, int]] = {"banks": _memory(st.in_size, st.in_bits, 2, target)}
    abits, mbits = _bits(st.in_size + 1), max(1, int(max(st.mults.flat)).bit_length())
    tables = [(st.windows, abits, False), (st.mults, mbits, True)]
    mults = [(st.in_bits, mbits, int(max(st.mults.flat)) > 1)]
    if st.skip is not None:
        skip_bank = _memory(st.skip_size, st.skip_bits, st.skip_depth, target)
        parts["banks"] = {k: parts["banks"][k] + skip_bank[k] for k in parts["banks"]}
        sbits = max(1, int(max(st.skip_mults.flat)).bit_length())
        tables += [(st.skip_windows, _bits(st.skip_size + 1), False), (st.skip_mults, sbits, True)]
        mults.append((st.skip_bits, sbits, int(max(st.skip_mults.flat)) > 1))
    parts["window_rom"] = _row_roms(st, tables, target)
    parts["weight_rom"] = {"lut": 0, "ff": 0, "dsp": 0, "bram18": 0}
    dsp = sum(mult_dsp(a, b + 1, 0, target) for a, b, real in mults if real)
    parts["mac"] = {"lut": w * len(mults), "ff": 0, "dsp": dsp, "bram18": 0}  # the read registers: the banks'
    lut, ff, dsp, bram = 0, 0, 0, 0
    vb = st.value_bits
    if st.extra is not None:  # hw.normalizer.Normalizer: LUTs fitted on standalone ones, the rest counted
        norm = norm_cost(d, w, st.extra, target)
        lut, ff, dsp = norm["lut"], norm["ff"], norm["dsp"]
    gains = max(abs(g) for g in st.gains)
    dsp += mult_dsp(vb, gains.bit_length() + 1, 0, target) if gains > 1 else 0
    lut += 2 * vb * (2 if st.mean else 1)
    if st.mean:  # the columns' running sums: a memory of D words
        sums = _memory(d, vb, 1, target)
        lut, ff, bram = lut + sums["lut"], ff + sums["ff"], sums["bram18"]
    if st.requant is not None:
        rq = requant_cost(st.requant, target)
        lut, dsp = lut + rq["lut"], dsp + rq["dsp"]
    parts["requant"] = {"lut": lut, "ff": ff, "dsp": dsp, "bram18": bram}
    counters = _bits(st.in_size) + _bits(p * d) + _bits(d) + _bits(p) + 6 + \
        (_bits(st.skip_size) + _bits(st.skip_depth) + 2 if st.skip is not None else 0)
    parts["control"] = {"lut": counters, "ff": counters + st.out_bits + 4, "dsp": 0, "bram18": 0}
    total = {k: sum(q[k] for q in parts.values()) for k in ("lut", "ff", "dsp", "bram18")}
    elements = p * d
    pj = elements * (st.in_bits + (st.skip_bits if st.skip is not None else 0)) * \
        (ERT["sram_write_bit"]["pJ"] + ERT["sram_read_bit"]["pJ"])
    pj += elements * sum(float(mult_pj(a, b, 0, 0, 0, 0)) for a, b, real in mults if real)
    pj += elements * w * ERT["add_bit"]["pJ"] * len(mults)
    if st.extra is not None:  # per element its square, its product with 1/sqrt; per row the divide and root
        pj += elements * float(mult_pj(w, w, 0, 0, 0, 0) + mult_pj(w + 4, NORM_RSQRT_BITS + 1, 0, 0, 0, 0))
        pj += p * 3 * NORM_RSQRT_BITS * 2 * NORM_VAR_BITS * ERT["add_bit"]["pJ"]
    if st.requant is not None:
        m_bits = max(st.requant.multipliers).bit_length()
        pj += st.out_size * float(mult_pj(vb + 1, m_bits, 0, 0, 0, 0))
    return {"stage": st.name, "kind": st.kind, "lanes": 1, "cycles_per_frame": st.busy_cycles, **total, "parts": parts,
            "dynamic_nj": float(pj) / 1e3, "fmax_mhz": None}


def plan_cost(plan: NetworkPlan, device: str | Device | None = None) -> dict[str, Any]:
    """Per-stage resources (:func:`stage_cost`), network totals, closed-form cycles for one
    inference and the steady-state interval, fmax-free (cycles only), each labelled."""
    dev = get_device(device or "xc7z020")
    stages = [row_cost(st, dev) if isinstance(st, RowStage) else stage_cost(st, dev) for st in plan.stages]
    total = {k: sum(s[k] for s in stages) for k in ("lut", "ff", "dsp", "bram18")}
    cycles, interval = schedule(plan, 1).cycles, schedule(plan, 8).interval
    fmax = min(s["fmax_mhz"] for s in stages if s["fmax_mhz"] is not None)
    dynamic = sum(s["dynamic_nj"] for s in stages)
    static = dev.static_w * interval / fmax * 1e3  # W · µs = nJ: the device's share of one interval
    return {"device": dev.name, "target": dev.target, "stages": stages, "total": total,
            "cycles_per_inference": cycles, "interval": interval, "fmax_mhz": fmax,
            "latency_us": cycles / fmax, "inferences_per_s": fmax * 1e6 / interval,
            "energy_nj_per_inference": {"dynamic": dynamic, "static": static, "total": dynamic + static},
            "sources": {**SOURCES, "cycles": "closed form (hw.dataflow.plan.schedule), equal to simulation",
                        "fmax": "the slowest stage's MAC engine by the engine path model (costmodel.latency); bank, "
                                "ROM and requantizer paths not modelled: an upper bound",
                        "energy": "dynamic: each stage's MAC actions per frame, its frame-bank writes, window-ROM reads "
                                  "(SRAM figure for a logic ROM: an upper estimate), pool reads and compares, combiner "
                                  "and requantizer multiplies and adds × ASIC per-action energies (costmodel.energy: "
                                  "Horowitz ISSCC'14 45 nm, Accelergy Aladdin 40 nm); static: "
                                  f"{dev.name} static power × one steady-state interval; no board measurement stands "
                                  "behind either"}}
