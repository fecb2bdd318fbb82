"""Structural features of engine configs, vectorized over a DataFrame.

Everything here is *counted from the design*, not fitted: operand and product widths, the
accumulator width (``hw.arith.acc_bits``), adder-tree adders and their bits, pipeline-register
bits (``hw.engine.register_points``; tree bits at or above the accumulator's width are dead and
left out, :func:`_tree_dead`), index-mux inputs and LUT6s, and the Yosys DSP-inference
rule (:func:`mult_dsp`, the one DSP rule every engine's estimator uses). Facts of the hardware
come from ``hw`` (once per distinct value), never re-derived here.
:mod:`costmodel.resources` turns them into LUT / FF / DSP counts with fitted coefficients.

DSP-inference rule (Yosys ``synth_xilinx``, techlibs/xilinx/synth_xilinx.cc): a ``$mul`` goes to
a DSP48 when both operands are at least 2 bits (``DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2``) and the
product at least 9 bits (``DSP_Y_MINWIDTH=9``, "UG901 suggests small multiplies are those 4x4 and
smaller"); operands wider than 25×18 (xc7) / 27×18 (xcup) split over several DSPs. ``ice40``'s
default flow infers none; ``synth_ecp5`` maps every multiplier with both operands ≥ 2 bits to
18×18 MULT18X18D blocks (no minimum product width, no signed-only rule; wider operands split into
18-bit slices, a remainder under 2 bits stays in LUTs). The rule is checked against Yosys' own
mapping of every multiplier in ``data/primitives.csv`` (``tests/costmodel/test_resources.py``).
Memories: ``memory_libmap``'s cost rule over each family's RAM cells (:func:`buffer_cost`),
checked against every buffer in ``data/buffers.csv``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from hw.arith import ConfigError, acc_bits, product_bits, product_range
from hw.engine import register_points, tree_levels
from quant.formats import IntFormat, parse_format

from .maccmap import full_adder_bits, full_adder_rounds, macc, product_rows, word

__all__ = ["pair_props", "mult_dsp", "buffer_cost", "write_port_glue", "MemoryCell", "MEMORY_CELLS", "frame_features", "config_row", "normalize_frame", "mux_lut6_per_bit",
           "FEATURE_COLUMNS"]

@lru_cache(maxsize=None)
def pair_props(wfmt: str, afmt: str, target: str = "xc7") -> dict:
    """Widths of the exact multiplier for one format pair (see ``hw.arith``).

    Returns
    -------
    dict with ``wb``, ``ab`` (code bits), ``prod_bits`` (exact product, signed), ``mul_a``,
    ``mul_b`` (widths of the hardware ``$mul`` operands: codes for int × int, significand /
    integer magnitudes otherwise), ``mul_y`` (its product width), ``mf`` (1 if a minifloat is
    involved), ``shift_bits`` (alignment shift width), ``exp_bits`` (Ew + Ea), ``mult_dsp``
    (DSPs per multiplier by the Yosys rule), ``mult_levels`` (LUT levels of a LUT multiplier),
    ``plo``/``phi`` (exact product range, Python ints), ``shifter_bits`` (mux bits of the
    minifloat aligner's log shifter), ``mf_int_bits`` (code bits of a signed integer operand of
    a minifloat × int pair: its magnitude is taken in LUTs; an unsigned one is its own), ``unsigned_product`` (1 if the product is
    never negative), ``native_product`` (1 for a signed int × signed int product as wide as its
    operands together: the only kind Yosys accumulates inside a DSP48), ``full_product`` (1 for an
    int × int ``$mul`` whose whole result reaches the adder tree: unsigned × unsigned, zero-extended,
    or a native signed product; a mixed-sign ``$mul`` (Amaranth sign-extends the unsigned operand
    by one bit, so its result is one bit narrower than its operands) or a narrow format's truncated
    product is sign-extended from a bit below the DSP48's own product, which Yosys cannot take as a
    DSP48 P output into a post-adder).
    """
    w, a = parse_format(wfmt), parse_format(afmt)
    lo, hi = product_range(w, a)
    pb = product_bits(w, a)

    def mag(f):
        if isinstance(f, IntFormat):
            return f.bits, 0, 0
        return f.mantissa_bits + 1, f.max_normal_field - 1, f.exponent_bits

    mw, sw, ew = mag(w)
    ma, sa, ea = mag(a)
    mf = int(not (isinstance(w, IntFormat) and isinstance(a, IntFormat)))
    if mf:
        mul_a, mul_b = mw, ma
        mul_y = mw + ma
        signed_only_extra = 1  # unsigned magnitudes gain a sign bit under DSP_SIGNEDONLY
    else:
        mul_a, mul_b = w.bits, a.bits
        # the product signal is product_bits wide (the exact range): narrow formats' products
        # are a bit narrower than the operands' sum, and Yosys (wreduce) shrinks the $mul to it
        mul_y = min(w.bits + a.bits, pb)
        signed_only_extra = 0 if (w.signed and a.signed) else 1
    shift_bits = max(1, (sw + sa).bit_length()) if mf else 0
    dsp = mult_dsp(mul_a, mul_b, signed_only_extra, target, mul_y)
    # the aligner: a log shifter of the (mul_a + mul_b)-bit significand product into prod_bits, one
    # stage per shift bit, stage k at most (mul_a + mul_b) + 2^(k+1) - 1 bits wide (mux bits)
    shifter = sum(min(pb, mul_a + mul_b + 2 ** (k + 1) - 1) for k in range(shift_bits)) if mf else 0
    int_bits = sum(f.bits for f in (w, a) if isinstance(f, IntFormat) and f.signed) if mf else 0
    levels = math.ceil(math.log2(max(2, min(mul_a, mul_b)))) + 1 + (math.ceil(math.log2(shift_bits + 1)) + 1 if mf else 0)
    return dict(wb=w.bits, ab=a.bits, prod_bits=pb, mul_a=mul_a, mul_b=mul_b, mul_y=mul_y, mf=mf,
                shift_bits=shift_bits, exp_bits=ew + ea, mult_dsp=dsp, mult_levels=levels,
                plo=lo, phi=hi, a_signed=int(getattr(a, "signed", True)), shifter_bits=shifter,
                mf_int_bits=int_bits,
                unsigned_product=int(lo >= 0),
                native_product=int(not mf and w.signed and a.signed and pb == w.bits + a.bits),
                full_product=int(not mf and ((not w.signed and not a.signed)
                                             or (w.signed and a.signed and pb == w.bits + a.bits))))


def mult_dsp(a_bits: int, b_bits: int, signed_extra: int = 0, target: str = "xc7", y_bits: int | None = None,
             used_bits: int | None = None) -> int:
    """DSP blocks of one ``a_bits × b_bits`` ``$mul`` with a ``y_bits`` product (default
    ``a_bits + b_bits``) by the Yosys rule of ``target`` (module docstring). ``signed_extra`` = 1
    for an unsigned × unsigned ``$mul``, which gains a sign bit per operand under
    ``DSP_SIGNEDONLY`` (Xilinx only; ecp5 maps unsigned 18×18 directly). A product narrower than 9
    bits stays in LUTs on Xilinx even when the operands' widths add up to 9 (narrow formats:
    ``int6n × int3n`` has an 8-bit product). Yosys' own ``mul2dsp`` decomposition with the
    family's macros (:func:`_mul2dsp`, :data:`_MUL2DSP`); iCE40: none. ``used_bits``: the low
    product bits anything reads (default all ``y_bits``): a DSP slice above them is removed."""
    y = a_bits + b_bits if y_bits is None else min(y_bits, a_bits + b_bits)
    if target == "ice40":
        return 0
    return _mul2dsp(a_bits, b_bits, not signed_extra, y, *_MUL2DSP[target], True, used_bits)


#: Yosys ``mul2dsp`` macros per family: A max width, B max width, the width of partial products
#: (``DSP_A_MAXWIDTH_PARTIAL``; B's is B's max width), the sign headroom of a slice (1 under
#: ``DSP_SIGNEDONLY``: slices of ``partial - 1`` bits, and an unsigned ``$mul`` gains a sign bit
#: per operand) and the least product width (``DSP_Y_MINWIDTH``). ``synth_xilinx``: signed only,
#: products at least 9 bits, partial A of 18 (slices meet over the 17-bit PCOUT→PCIN cascade
#: shift); ``synth_ecp5``: 18 × 18 MULT18X18D, unsigned kept, slices of 18 bits, no product
#: minimum; every family: operands at least 2 bits (``synth_ice40`` infers no DSP)
_MUL2DSP = {"xc7": (25, 18, 18, 1, 9), "xcup": (27, 18, 18, 1, 9), "ecp5": (18, 18, 18, 0, 0)}


@lru_cache(maxsize=None)
def _mul2dsp(a: int, b: int, signed: bool, y: int, amax: int, bmax: int, apart: int, headroom: int, ymin: int,
             top: bool = True, used: int | None = None) -> int:
    """DSP cells Yosys' ``techlibs/common/mul2dsp.v`` makes of one ``a × b → y`` ``$mul``
    (both operands ``signed`` or both unsigned), following its recursion: too small a slice (an
    operand under 2 bits, a product under ``ymin``) stays in LUTs; at the top, under a sign
    ``headroom``, an unsigned ``$mul`` gains a sign bit per operand, and the wider operand becomes
    A; an A wider than ``amax`` splits into slices of ``apart - headroom`` bits plus a last slice,
    else a B wider than ``bmax`` into slices of ``bmax - headroom`` bits plus a last one; each
    slice is mapped the same way. ``used``: the product bits read (default ``y``); a slice whose
    shifted outputs all lie at or above them is unread, and Yosys removes it."""
    used = y if used is None else used
    if a < 2 or b < 2 or y < ymin or used <= 0:
        return 0
    if top:
        if headroom and not signed:
            a, b = a + 1, b + 1
        a, b = max(a, b), min(a, b)
    args = (amax, bmax, apart, headroom, ymin, False)
    if a > amax:
        step = apart - headroom
        n = (a - amax + step - 1) // step
        last = a - n * step
        return (sum(_mul2dsp(apart, b, True, min(y, b + apart), *args, used - i * step) for i in range(n))
                + _mul2dsp(last, b, True, b + last, *args, used - n * step))
    if b > bmax:
        step = bmax - headroom
        n = (b - 1 - headroom) // step
        last = b - n * step
        return (sum(_mul2dsp(a, bmax, True, min(y, a + bmax), *args, used - i * step) for i in range(n))
                + _mul2dsp(a, last, True, a + last, *args, used - n * step))
    return 1


@lru_cache(maxsize=None)
def _acc_bits(wfmt: str, afmt: str, k: int) -> int:
    return acc_bits(wfmt, afmt, k)


@lru_cache(maxsize=None)
def _register_levels(lanes: int, pipeline: int) -> tuple[int, ...]:
    return tuple(register_points(lanes, pipeline))


#: columns a configs frame needs (``n``, ``m``, ``block``, ``pipeline`` optional)
CONFIG_COLUMNS = ["engine", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m", "block"]

FEATURE_COLUMNS = ["lanes", "pipeline", "unsigned_product", "native_product", "full_product", "prod_bits", "acc_bits", "mult_dsp", "mult_levels", "mf", "wb", "ab",
                   "shift_bits", "mul_a", "mul_b", "exp_bits", "tree_bits", "tree_reg", "tree_l1", "l1_reg", "tree_adders", "reg_bits", "reg_l01", "reg_raw_last", "reg_meet_last", "reg_l1_raw", "reg_terms", "reg_terms_dsp", "reg_msb_kept", "reg_msb_kept_dsp", "macc_signext_bits", "macc_terms", "macc_term_bits", "macc_fa_bits", "deep_macc_fa_bits", "deep_macc_merged_bits", "mux_bits", "mux_lut6", "mux_levels", "mux_m", "in_bits"]


#: LUT6s per selected bit of an m:1 index mux, read off standalone Yosys syntheses of
#: :class:`hw.sparse.IndexMux` (``data/muxes.csv``; no MUXF7/F8 used): a 2:1 or 4:1 mux is one
#: LUT6, 8:1 takes three (two 4:1 + a 2:1), 16:1 eight
MUX_LUT6_PER_BIT = {2: 1, 4: 1, 8: 3, 16: 8}


def mux_lut6_per_bit(m) -> np.ndarray:
    """LUT6s of one bit of an ``m``:1 mux as Yosys ``synth_xilinx`` maps it (vectorized; 0 for
    m < 2): :data:`MUX_LUT6_PER_BIT` where measured, beyond that extrapolated as two m/2:1 muxes
    and a 2:1 (unmeasured). ``tests/costmodel/test_resources.py`` checks it against every row of
    ``data/muxes.csv``."""
    m = np.asarray(m, dtype=np.int64)

    def one(v: int) -> int:
        if v < 2:
            return 0
        if v in MUX_LUT6_PER_BIT:
            return MUX_LUT6_PER_BIT[v]
        return 2 * one(v // 2) + 1

    u, inv = np.unique(m, return_inverse=True)
    return np.array([one(int(v)) for v in u], dtype=np.int64)[inv].reshape(m.shape)


@lru_cache(maxsize=None)
def _tree_shape(lanes: int) -> tuple[tuple[int, int, int, int, int], ...]:
    """Per level of a ``lanes``-term :class:`hw.adder_tree.AdderTree` (0 = its inputs): the
    adders, their width beyond the term width summed over them, the terms left, their width
    beyond the term width summed over them (bits), and 1 while the last term is still a product
    that passed through every level unchanged. A sum is one bit wider than its wider operand; an
    odd last term passes through unchanged."""
    extra = [0] * int(lanes)
    raw = True  # the last term is still a product, passed through every level so far
    out = [(0, 0, len(extra), 0, 1)]
    for _ in range(tree_levels(lanes)):
        sums = [max(extra[2 * i], extra[2 * i + 1]) + 1 for i in range(len(extra) // 2)]
        raw = raw and len(extra) % 2 == 1
        extra = sums + ([extra[-1]] if len(extra) % 2 else [])
        out.append((len(sums), sum(sums), len(extra), sum(extra), int(raw)))
    return tuple(out)


@lru_cache(maxsize=None)
def _tree_dead(lanes: int, room: int, unsigned: int) -> tuple[tuple[int, int, int], ...]:
    """Per level of a ``lanes``-term :class:`hw.adder_tree.AdderTree` (0 = its inputs) whose
    accumulator is ``room`` bits wider than a product: the term bits at or above the
    accumulator's width (summed over the terms), the terms that reach it, and the adder output
    bits at or above it. Those bits are dead: the accumulator (``acc + partial``, truncated to
    its width) reads only its own low bits of the tree's sum, and a sum's low bits depend only on
    its operands' low bits, so Yosys (``opt_clean``, ``wreduce``) removes them from the adders
    and the pipeline registers. Only a tree wider than its accumulator (``k_max`` below the lane
    count) has any. An unsigned × unsigned product's adders have a constant-0 top bit already
    (``unsigned``: one bit fewer counted live)."""
    extra = [0] * int(lanes)
    out = [(sum(max(0, e - room) for e in extra), sum(e > room for e in extra), 0)]
    for _ in range(tree_levels(lanes)):
        sums = [max(extra[2 * i], extra[2 * i + 1]) + 1 for i in range(len(extra) // 2)]
        extra = sums + ([extra[-1]] if len(extra) % 2 else [])
        out.append((sum(max(0, e - room) for e in extra), sum(e > room for e in extra),
                    sum(max(0, e - unsigned - room) for e in sums)))
    return tuple(out)


def _tree_dead_matrix(lanes: np.ndarray, room: np.ndarray, unsigned: np.ndarray) -> np.ndarray:
    """:func:`_tree_dead` of every row, zero-padded to the deepest tree: (rows, levels + 1, 3)."""
    code = np.stack([lanes, np.clip(room, 0, None), unsigned], axis=1).astype(np.int64)
    uniq, inv = np.unique(code, axis=0, return_inverse=True)
    maxl = max((tree_levels(int(v)) for v in np.unique(lanes)), default=0)
    table = np.zeros((len(uniq), maxl + 1, 3), dtype=np.int64)
    for i, (ln, rm, un) in enumerate(uniq):
        dead = _tree_dead(int(ln), int(rm), int(un))
        table[i, :len(dead)] = dead
    return table[inv.reshape(-1)]


def _tree_shape_matrix(lanes: np.ndarray) -> np.ndarray:
    """:func:`_tree_shape` of every row, zero-padded to the deepest tree: (rows, levels + 1, 5)."""
    ul, inv = np.unique(lanes.astype(np.int64), return_inverse=True)
    maxl = max((tree_levels(int(v)) for v in ul), default=0)
    table = np.zeros((len(ul), maxl + 1, 5), dtype=np.int64)
    for i, v in enumerate(ul):
        shape = _tree_shape(int(v))
        table[i, :len(shape)] = shape
    return table[inv.reshape(-1)]


def _register_matrix(lanes: np.ndarray, pipeline: np.ndarray) -> np.ndarray:
    """(rows, max tree levels + 1) bool: a pipeline register after tree level l (0 = after the
    multipliers), from ``hw.engine.register_points`` once per distinct (lanes, pipeline)."""
    maxl = max((tree_levels(int(v)) for v in np.unique(lanes)), default=0)
    pair_id, upairs = pd.factorize(lanes.astype(np.int64) * (int(pipeline.max(initial=0)) + 1) + pipeline)
    table = np.zeros((len(upairs), maxl + 1), dtype=bool)
    for i, code in enumerate(upairs):
        ln, p = divmod(int(code), int(pipeline.max(initial=0)) + 1)
        table[i, list(_register_levels(ln, p))] = True
    return table[pair_id]


class _Tree(NamedTuple):
    """A ``lanes``-term :class:`hw.adder_tree.AdderTree` with the registers of ``pipeline`` as a
    netlist: node kinds (``product``, ``add``, ``reg``), operands, the registers of each level,
    the adders in level order, and the tree's last term (what the accumulator's adder adds)."""

    kind: list[str]
    ins: list[tuple[int, ...]]
    levels: dict[int, list[int]]
    adders: list[int]
    root: int


def _adder_tree(lanes: int, pipeline: int) -> _Tree:
    """:class:`_Tree` of a ``lanes``-term adder tree with the registers of ``pipeline``."""
    regs = set(register_points(lanes, pipeline))
    kind: list[str] = []
    ins: list[tuple[int, ...]] = []

    def node(k: str, operands: tuple[int, ...] = ()) -> int:
        kind.append(k)
        ins.append(operands)
        return len(kind) - 1

    levels: dict[int, list[int]] = {}
    adders: list[int] = []
    terms = [node("product") for _ in range(int(lanes))]
    for lvl in range(tree_levels(lanes) + 1):
        if lvl:
            sums = [node("add", (terms[2 * i], terms[2 * i + 1])) for i in range(len(terms) // 2)]
            adders += sums
            terms = sums + ([terms[-1]] if len(terms) % 2 else [])
        if lvl in regs:
            terms = levels[lvl] = [node("reg", (t,)) for t in terms]
    return _Tree(kind, ins, levels, adders, terms[0])


def _node_widths(tree: _Tree, prod_bits: int, signed: bool, acc_bits: int) -> list[int]:
    """Data bits of every node of ``tree`` (a product of ``prod_bits`` bits, one fewer unsigned: its
    top bit is a constant 0; a sum one bit wider than its wider operand, at most ``acc_bits``)."""
    width = [0] * len(tree.kind)
    for n, k in enumerate(tree.kind):
        ops = tree.ins[n]
        width[n] = (prod_bits - (not signed) if k == "product" else width[ops[0]] if k == "reg"
                    else min(max(width[i] for i in ops) + 1, acc_bits))
    return width


def _merged(tree: _Tree, root: int) -> tuple[list[int], list[int]]:
    """The terms of the ``$macc`` that ``alumacc`` makes of adder ``root`` and every adder read
    only by another adder below it (products and registers), and those merged adders."""
    terms, merged, todo = [], [], [root]
    while todo:
        n = todo.pop(0)
        if tree.kind[n] == "add":
            merged.append(n)
            todo += tree.ins[n]
        else:
            terms.append(n)
    return terms, merged


@lru_cache(maxsize=None)
def macc_full_adders(lanes: int, pipeline: int, prod_bits: int, signed: bool, acc_bits: int) -> int:
    """Full-adder bits (:func:`costmodel.maccmap.full_adder_bits`) of the ``$macc`` that sums a
    ``lanes``-term tree's terms after its last pipeline register (the products without one) into
    the accumulator.

    ``alumacc`` merges every adder read only by another adder into its reader: the levels after
    the last register and the accumulator's adder become one ``$macc`` of those terms and the
    accumulator (``acc_bits`` wide), each term sign-extended (``signed``: a product of
    ``prod_bits`` bits, a sum one bit wider than its wider operand, at most ``acc_bits``). An
    unsigned tree's sum enters the signed accumulator's adder zero-extended: it is merged only
    where it reaches the accumulator's width, else its own ``$macc`` (of three or more terms) feeds a
    plain adder. An unsigned term's top bit is a constant 0 and takes no full adder. Checked
    against the ``$fa`` cells of Yosys 0.70's ``maccmap`` on ECP5 engines
    (``tests/costmodel/test_resources.py``)."""
    tree = _adder_tree(lanes, pipeline)
    width = _node_widths(tree, prod_bits, signed, acc_bits)
    terms = _merged(tree, tree.root)[0]
    merged_acc = signed or width[tree.root] >= acc_bits
    out = acc_bits if merged_acc else width[tree.root]
    rows = [word(width[n] + (not signed), width[n], out) for n in terms]
    if merged_acc:
        rows.append(word(acc_bits, acc_bits, out))
    return full_adder_bits(rows, out) if len(rows) >= 3 else 0


#: rounds of full adders from which a ``$macc`` in front of a pipeline register counts as deep
#: (:func:`inner_macc_adders`): the ECP5 fit prices the full adders of the deep ones
#: (``costmodel.resources.design_matrix``'s ``deep_macc_fa``); counting those of 4 terms (two
#: rounds) too made its 5-fold CV worse
DEEP_MACC_ROUNDS = 3
#: the fewest terms of a ``$macc`` that ``maccmap`` reduces in :data:`DEEP_MACC_ROUNDS` rounds (5)
DEEP_MACC_TERMS = next(n for n in range(3, 64) if full_adder_rounds(n) >= DEEP_MACC_ROUNDS)


@lru_cache(maxsize=None)
def inner_macc_adders(lanes: int, pipeline: int, prod_bits: int, signed: bool, acc_bits: int,
                      min_terms: int = 3) -> tuple[int, int]:
    """The ``$macc`` cells of at least ``min_terms`` terms in front of a ``lanes``-term tree's
    pipeline registers: (their full-adder bits, the data bits of the adders merged into them).

    Between two pipeline registers ``alumacc`` merges every adder read only by another adder into
    its reader (as :func:`macc_full_adders` after the last one): an adder whose sum a register
    holds and its unregistered operand adders become one ``$macc`` of their terms, which
    ``maccmap`` reduces with full adders to one carry-chain adder of the registered sum's width
    (widths as :func:`macc_full_adders`). The merged adders (not that last one) are then no
    carry-chain adders of their own. Equal to the ``$fa`` cells of Yosys 0.70's ``maccmap`` on
    signed ECP5 engines (``tests/costmodel/test_resources.py``); on unsigned ones (with
    :func:`macc_full_adders`) off by up to a fifth either way (uint4 × uint4, 58 lanes, pipeline
    2: 499 against 528; uint5 × uint7, 40 lanes, pipeline 3: 341 against 314), where Yosys keeps
    some constant top bits as wires and leaves narrowed adders apart (:func:`_msb_kept`)."""
    tree = _adder_tree(lanes, pipeline)
    width = _node_widths(tree, prod_bits, signed, acc_bits)
    fa_bits = merged_bits = 0
    for regs in tree.levels.values():
        for reg in regs:
            root = tree.ins[reg][0]
            if tree.kind[root] != "add":
                continue
            terms, merged = _merged(tree, root)
            if len(terms) < max(min_terms, 3):
                continue
            out = width[root]
            fa_bits += full_adder_bits([word(width[n] + (not signed), width[n], out) for n in terms], out)
            merged_bits += sum(width[n] for n in merged[1:])
    return fa_bits, merged_bits


def _verilog_order(adders: list[int], levels: dict[int, list[int]]) -> list[int]:
    """``adders`` (level order) in the order of their ``assign`` lines in the tree module's
    Verilog. Amaranth names the module's cells ``$1``, ``$2`` … after its unnamed wires (the
    next value of each pipeline register: one per registered term and one per level's tag), the
    adders first, in level order, and its ``write_verilog`` writes them sorted by name as text:
    ``$100`` before ``$62``."""
    first = 1 + sum(len(regs) + 1 for regs in levels.values())
    return [adders[i] for i in sorted(range(len(adders)), key=lambda i: str(first + i))]


@lru_cache(maxsize=None)
def _msb_kept(lanes: int, pipeline: int, fold: tuple[int, int] | None = None) -> tuple[tuple[int, int], ...]:
    """Per tree level (0 = the products) of a ``lanes``-term :class:`hw.adder_tree.AdderTree`
    with the registers of ``pipeline`` and an unsigned × unsigned product (its sign bit and every
    exact sum's are constant 0): how many registered terms keep that constant top bit as a
    flip-flop after ``synth_xilinx``, and 1 if the level's last term is one of them.

    Yosys (0.70) removes a constant-0 top bit only where it can see it, replayed here:

    1. ``opt`` (``opt_dff``) before ``wreduce``: a register of a product (its top bit is the
       zero extension of the ``$mul``) or of such a register, passed through, loses it;
    2. ``wreduce``: an ``$add`` whose operands both have a constant-0 top bit becomes unsigned
       and drops its top output bit. Its cells are visited in two sweeps, the adders in the
       order of the Verilog's ``assign`` lines (:func:`_verilog_order`) except the first,
       visited last, then the registers (first sweep only): an adder reads what the visits
       before it left (and drops an operand's constant top bit from its port), a register is
       narrowed when its sum was, and the second sweep reaches the adders after them (an
       adder's narrowed output queues none of its readers: the wave stops at the next register);
    3. ``alumacc`` merges an adder read only by another adder into that adder's ``$macc``, but
       not one narrowed after its reader's last visit (the reader's port still zero-extends
       the old width); the later ``opt`` passes narrow the remaining two-operand ``$alu`` cells
       whose operands have a constant top bit, and drop the registers whose input bit is
       constant, to a fixpoint, but never narrow a ``$macc``;
    4. ``synth_ice40`` only (``fold``: the product's operand widths): the kept bits whose carry
       chains fold once the adders are gates share one flip-flop (:func:`_carry_lut_tops`).

    Checked against every stored unsigned × unsigned engine synthesis of every family (FF
    counts, ``tests/costmodel/test_resources.py``): a register of a ``$macc`` the wave did not
    reach (a 3-term root ``(a + b) + c`` after a register, the first pair's 4-term sum) keeps
    the bit. Probed on 50 fresh ECP5 engines of 30–64 lanes, the count is off on three (45
    lanes, pipeline 3 and 4: one or two FF over), where Yosys' second sweep skips an adder
    this replay revisits.
    """
    kind, ins, levels, adders, _ = _adder_tree(lanes, pipeline)
    const = [k == "product" for k in kind]
    ffs = [r for lvl in sorted(levels) for r in levels[lvl]]
    if adders:
        adders = _verilog_order(adders, levels)
        adders = adders[1:] + adders[:1]  # the Verilog's first adder is visited last
    reduced: set[tuple[int, int]] = set()  # (adder, operand): the port dropped the operand's constant top bit

    def settle(cells: list[int], allowed=lambda n: True) -> bool:
        changed = False
        for n in cells:
            if kind[n] == "add":
                reduced.update((n, i) for i in ins[n] if const[i])
            if not const[n] and allowed(n) and all(const[i] for i in ins[n]):
                const[n] = changed = True
        return changed

    while settle(ffs):  # 1. opt_dff
        pass
    settle(adders)  # 2. wreduce: first sweep, adders then registers
    settle(ffs)
    settle(adders)  # second sweep
    readers = {i: n for n in range(len(kind)) for i in ins[n]}
    # alumacc merges an adder read only by another adder unless that reader's port kept the
    # adder's old top bit as a zero extension (the reader's last visit came before the narrowing)
    merged = {a for a in adders if a in readers and kind[readers[a]] == "add"
              and (not const[a] or (readers[a], a) in reduced)}
    alu = lambda n: n not in merged and not any(i in merged for i in ins[n])  # noqa: E731
    while settle(adders, alu) | settle(ffs):  # 3. alumacc, then opt to a fixpoint
        pass
    lut_top = _carry_lut_tops(kind, ins, const, merged, fold) if fold else set()
    first_lut = min((lvl for lvl, regs_l in levels.items() if lut_top & set(regs_l)), default=-1)
    return tuple((sum(not const[r] and r not in lut_top for r in levels.get(lvl, [])) + (lvl == first_lut),
                  int(lvl in levels and not const[levels[lvl][-1]]))
                 for lvl in range(tree_levels(lanes) + 1))


def _carry_lut_tops(kind: list[str], ins: list[tuple[int, ...]], const: list[bool], merged: set[int],
                    fold: tuple[int, int]) -> set[int]:
    """4. ``synth_ice40`` (:func:`_msb_kept`): the registers whose kept top bit its adder's carry
    chain leaves with constant inputs only (:mod:`costmodel.maccmap`). ``ice40_opt`` turns that
    bit's ``SB_CARRY`` wrapper into a ``$lut`` that no later pass folds; every such ``$lut`` is the
    same cell (one init, inputs all 0), so ``opt_merge`` makes them one, and their flip-flops
    (one clock, enable and reset) one. ``fold``: the unsigned product's operand widths (bits);
    a node is one bit wider than its wider operand (a product: a + b + 1, its sign bit)."""
    width: list[int] = []
    out: set[int] = set()
    for n, k in enumerate(kind):
        if k == "product":
            width.append(sum(fold) + 1)
            continue
        width.append(width[ins[n][0]] if k == "reg" else max(width[i] for i in ins[n]) + 1)
        src = ins[n][0]
        if k != "reg" or const[n] or kind[src] != "add":
            continue
        rows: list = []
        todo = list(ins[src])
        while todo:  # the $macc's addends: merged adders open up, a $mul gives its partial products
            i = todo.pop(0)
            if i in merged:
                todo += ins[i]
            elif kind[i] == "product":
                rows += product_rows(*fold, width[src])
            else:  # a register: every kept bit is a wire
                rows.append(word(width[i], width[i] - const[i], width[src]))
        if not macc(rows, width[src])[width[src] - 1]:
            out.add(n)
    return out


def _msb_kept_matrix(lanes: np.ndarray, pipeline: np.ndarray, fold: np.ndarray | None = None) -> np.ndarray:
    """:func:`_msb_kept` of every row, zero-padded to the deepest tree: (rows, levels + 1, 2).
    ``fold``: (rows, 2) operand widths of an unsigned product whose carry chains fold
    (``synth_ice40``), 0 where none do."""
    fold = np.zeros((len(lanes), 2), dtype=np.int64) if fold is None else fold
    code = np.column_stack([lanes, pipeline, fold]).astype(np.int64)
    uniq, inv = np.unique(code, axis=0, return_inverse=True)
    maxl = max((tree_levels(int(v)) for v in np.unique(lanes)), default=0)
    table = np.zeros((len(uniq), maxl + 1, 2), dtype=np.int64)
    for i, (ln, p, a, b) in enumerate(uniq):
        kept = _msb_kept(int(ln), int(p), (int(a), int(b)) if a else None)
        table[i, :len(kept)] = kept
    return table[inv.reshape(-1)]


class MemoryCell(NamedTuple):
    """One memory primitive as Yosys ``memory_libmap`` scores it (its library files)."""

    name: str
    words: int  #: depth of one cell in this mode
    bits: int  #: width of one cell in this mode
    cost: float  #: the library's ``cost``
    widthscale: float  #: the part of ``cost`` that scales with the bits used (Xilinx LUTRAM)
    bram: int  #: block RAMs per cell (18-kbit units on Xilinx: a RAMB36 counts 2)
    lutram: int  #: LUTRAM units per cell (Xilinx: LUTs; ECP5: TRELLIS_DPR16X4 cells)
    byte: int  #: write-enable granularity of a block RAM (bits; 0: the whole word)
    emulation: int  #: ``memory_libmap``'s emulation score for a non-transparent read port


#: memory primitives per family (share/xilinx/lutrams_xc5v.txt — lutrams_xcu.txt on UltraScale+ —
#: and brams_xc4v.txt, share/lattice/lutrams_trellis.txt and brams_16kd.txt, share/ice40/brams.txt
#: of Yosys 0.70; UltraScale+ URAM, 4096 × 72 at cost 1024, is left out: no engine buffer is that big).
#: Simple-dual-port modes only (one write and one read port, as every buffer of the engines
#: has). Emulation score: 1 for the read port of its own (every family); Lattice block RAMs have
#: no read-old-data capability across ports, so Yosys emulates read-first (3) and transparency (3)
#: there: 7. A transparent read port (:data:`_TRANSPARENT_EMULATION`) is emulated on every cell.
_XILINX_BRAM = [
    *[MemoryCell("RAMB18", 16384 // w if w < 9 else 18432 // w, w, 129, 0, 1, 0, 9, 1) for w in (1, 2, 4, 9, 18, 36)],
    *[MemoryCell("RAMB36", 32768 // w if w < 9 else 36864 // w, w, 257, 0, 2, 0, 9, 1)
      for w in (1, 2, 4, 9, 18, 36, 72)],
]
MEMORY_CELLS: dict[str, list[MemoryCell]] = {
    "xc7": [MemoryCell("RAM32M", 32, 6, 8, 7, 0, 4, 0, 1), MemoryCell("RAM64M", 64, 3, 8, 7, 0, 4, 0, 1),
            *_XILINX_BRAM],
    # UltraScale+ SLICEM: RAM32M16 (32 × 14) and RAM64M8 (64 × 7), 8 LUTs each, cost all width-scaled
    "xcup": [MemoryCell("RAM32M16", 32, 14, 16, 16, 0, 8, 0, 1), MemoryCell("RAM64M8", 64, 7, 16, 16, 0, 8, 0, 1),
             *_XILINX_BRAM],
    "ecp5": [MemoryCell("TRELLIS_DPR16X4", 16, 4, 4, 0, 0, 1, 0, 1),
             *[MemoryCell("DP16KD", 16384 // w if w < 9 else 18432 // w, w, 128, 0, 1, 0, 9, 7) for w in (1, 2, 4, 9, 18)],
             MemoryCell("PDPW16KD", 512, 36, 128, 0, 1, 0, 9, 7)],
    # with per-bit write enables (option HAS_BE: byte 1) every mode packs bits across address blocks
    "ice40": [MemoryCell("SB_RAM40_4K", 4096 // w, w, 64, 0, 1, 0, 1, 7) for w in (2, 4, 8, 16)],
}
#: ``memory_libmap``'s weights of the soft read mux, the write demux and an emulation point, and
#: its cost of a memory bit left in flip-flops (``-logic-cost-ram``, default 1)
_MUX_COST = _DEMUX_COST = 0.5
_EMU_COST = 2.0
_LOGIC_COST = 1.0
#: the emulation score of every cell for a read port transparent to the write port (3 for the
#: transparency logic + 1 for the read port of its own)
_TRANSPARENT_EMULATION = 4
#: families whose block RAMs cannot read old data across ports (read-first emulation glue)
_READ_FIRST_EMULATED = ("ecp5", "ice40")


def _address_bits(depth: np.ndarray) -> np.ndarray:
    """Address bits of memories ``depth`` words deep (at least 1)."""
    return np.ceil(np.log2(np.maximum(depth, 2))).astype(np.int64)


def write_port_glue(depth, target: str = "xc7") -> np.ndarray:
    """Flip-flops of a block RAM's read-first emulation (:func:`buffer_cost`'s Lattice glue) that
    depend on the write port alone: its registered address (``ceil(log2 depth)`` bits) and write
    enable (1 bit); 0 where the family reads old data natively. Memories written at one address
    with one enable share them (``opt_merge``: read off the SWA kernel's netlists, 2026-12-06)."""
    return (_address_bits(np.asarray(depth, dtype=np.int64)) + 1) * (target in _READ_FIRST_EMULATED)


def _libmap_choice(costs: np.ndarray, distributed: list[bool]) -> np.ndarray:
    """Index of the option ``memory_libmap`` maps to, per memory: ``costs[0]`` flip-flops, then one
    row per cell (``distributed``: a LUTRAM cell, else a block RAM). Yosys keeps the cheapest
    configuration of each kind (the first of equal costs), then walks the kinds in library order
    (LUTRAM first) holding the best cost so far in an ``int``: a kind wins only if its cost is below
    the *truncated* best, so LUTRAM at 131.7 keeps a RAMB18 at 131 out."""
    best_cost, best = np.floor(costs[0]), np.zeros(costs.shape[1:], dtype=np.int64)
    distributed = np.asarray(distributed)
    for kind in (True, False):
        rows = 1 + np.flatnonzero(distributed == kind)
        if not len(rows):
            continue
        pick = rows[np.argmin(costs[rows], axis=0)]
        cost = np.take_along_axis(costs, pick[None], 0)[0]
        take = cost < best_cost
        best, best_cost = np.where(take, pick, best), np.where(take, np.floor(cost), best_cost)
    return best


def buffer_cost(depth, width, target: str = "xc7", transparent: bool = False) -> dict[str, np.ndarray]:
    """Cost of simple dual-port buffers of ``depth`` words × ``width`` bits on ``target``
    (vectorized): the cell Yosys ``memory_libmap`` picks, by its own cost rule. ``transparent``:
    the read port returns the word written in the same cycle (the SWA score row's).

    For each :class:`MemoryCell` of ``MEMORY_CELLS[target]``: ``a = ceil(depth / words)`` address
    blocks, ``r`` cells (``a · ceil(width / bits)``; a block RAM with bytes of ``B`` bits packs
    them: ``ceil(a · ceil(width / B) · B / bits)``), cost ``(cost − widthscale) · r + widthscale ·
    a · width / bits + 0.5 · (a − 1) · width + 0.5 · a · [a > 1] + 2 · emulation`` (read mux,
    write demux, emulated features); the cheapest wins, unless flip-flops cost no more
    (``depth · width``), and a LUTRAM cell only loses to a block RAM that costs less than its cost
    truncated to an integer (:func:`_libmap_choice`). Flip-flops: LUTRAM reads are asynchronous,
    so a ``width``-bit read register is added (transparent: the ``ceil(log2 depth)``-bit address
    is registered instead); a memory in flip-flops has ``depth · width`` of them plus that
    register; a block RAM has the emulation's glue (transparent: ``width + 1``; else on Lattice,
    read-first too: ``2 · width + ceil(log2 depth) + 2``) and the registered block select (``ceil(log2 a)``). Checked against
    every stored Yosys buffer (``data/buffers.csv``, each family, both read kinds; random unseen
    shapes in the slow tests) and the SWA kernel's memories (``data/swa_*.csv``).

    Returns
    -------
    dict of arrays: ``bram18`` (block RAMs: 18 Kbit on Xilinx, a RAMB36 counts 2; the family's own
    block on Lattice), ``lutram`` (Xilinx: LUTs as RAM; ECP5: DPR16X4 cells), ``ff`` (flip-flops
    of the memory: read registers, emulation glue, every bit of a memory left in flip-flops).
    """
    depth = np.asarray(depth, dtype=np.int64)
    width = np.asarray(width, dtype=np.int64)
    if (depth < 1).any() or (width < 1).any():
        raise ConfigError("buffer depth and width must be >= 1")
    if target not in MEMORY_CELLS:
        raise ConfigError(f"no memory rule for target {target!r}; choose one of {', '.join(MEMORY_CELLS)}")
    # flip-flops first: memory_libmap keeps them unless a cell costs strictly less
    costs, brams, luts, blocks = [np.floor(depth * width * _LOGIC_COST)], [depth * 0], [depth * 0], [depth * 0 + 1]
    for c in MEMORY_CELLS[target]:
        a = -(-depth // c.words)
        if c.byte:
            padded = -(-width // min(c.byte, c.bits)) * min(c.byte, c.bits)
            cells = -(-(a * padded) // c.bits)
        else:
            cells = a * -(-width // c.bits)
        costs.append((c.cost - c.widthscale) * cells + c.widthscale * a * width / c.bits
                     + _MUX_COST * (a - 1) * width + _DEMUX_COST * np.where(a > 1, a, 0)
                     + _EMU_COST * (_TRANSPARENT_EMULATION if transparent else c.emulation))
        brams.append(cells * c.bram)
        luts.append(cells * c.lutram)
        blocks.append(a)
    best = _libmap_choice(np.stack(costs), [bool(c.lutram) for c in MEMORY_CELLS[target]])
    pick = lambda rows: np.take_along_axis(np.stack(rows), best[None], 0)[0]  # noqa: E731
    lutram, bram, in_ff = pick(luts), pick(brams), best == 0
    abits = _address_bits(depth)
    read_reg = abits if transparent else width
    if transparent:
        glue = width + 1
    else:  # read-first emulation: the write data and the read-side flag, and the write port's own
        glue = (2 * width + 1) * (target in _READ_FIRST_EMULATED) + write_port_glue(depth, target)
    select = np.ceil(np.log2(pick(blocks))).astype(np.int64)
    ff = (np.where(lutram > 0, read_reg, 0) + np.where(in_ff, depth * width + read_reg, 0)
          + np.where(bram > 0, glue + select, 0))
    return {"bram18": bram, "lutram": lutram, "ff": ff}


def _as_str(col: pd.Series) -> pd.Series:
    if col.dtype == object and len(col) and all(isinstance(x, str) for x in col.iloc[:1]):
        return col
    return col.astype(str)


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Fill optional config columns with defaults and check the required ones.

    Raises
    ------
    hw.arith.ConfigError
        naming the missing column, an unknown engine, or a non-positive lane count.
    """
    missing = [c for c in ("lanes", "wfmt", "afmt", "k_max") if c not in df.columns]
    if missing:
        raise ConfigError(f"configs frame lacks column(s) {missing}; it needs engine, lanes, wfmt, afmt, "
                          f"k_max (and pipeline, n, m, block where they apply)")
    out = pd.DataFrame(index=df.index)
    out["engine"] = _as_str(df["engine"]) if "engine" in df.columns else "dot"
    bad = sorted(set(out["engine"]) - {"dot", "sparse"})
    if bad:
        hint = ("; SWA rows go through costmodel.estimate_frame (columns head_dim, window, lanes, qk_fmt, "
                "v_fmt, seq_len) or costmodel.estimate(SWAConfig(...), n=...)" if "swa" in bad else "")
        raise ConfigError(f"unknown engine(s) {bad}; estimate_frame knows 'dot' and 'sparse'{hint}")
    for c, default in (("lanes", None), ("k_max", None), ("pipeline", 1), ("n", 1), ("m", 1), ("block", 0)):
        col = df[c] if c in df.columns else pd.Series(default, index=df.index)
        col = pd.to_numeric(col, errors="coerce")
        if c in ("n", "m", "block", "pipeline"):
            col = col.fillna(default)
        if col.isna().any() or (col < 0).any():
            raise ConfigError(f"column {c!r} needs non-negative integers (found NaN or negative values)")
        out[c] = col.astype(np.int64)
    if (out["lanes"] < 1).any() or (out["k_max"] < 1).any():
        raise ConfigError("lanes and k_max must be >= 1 in every row")
    sp = out["engine"] == "sparse"
    if sp.any():
        n, m = out.loc[sp, "n"], out.loc[sp, "m"]
        if ((n < 1) | (m < 2) | (n > m) | (m & (m - 1) != 0) | (out.loc[sp, "lanes"] % n != 0)).any():
            raise ConfigError("sparse rows need 1 <= n <= m, m a power of two >= 2, lanes a multiple of n")
    out["wfmt"] = _as_str(df["wfmt"])
    out["afmt"] = _as_str(df["afmt"])
    return out


def frame_features(df: pd.DataFrame, target: str = "xc7", normalized: bool = False, return_pairs: bool = False):
    """Structural features of every config row (vectorized; per-format-pair work is cached).

    Parameters
    ----------
    df : configs with columns ``engine lanes wfmt afmt k_max`` [``pipeline n m block``].
    target : synthesis target (DSP rule).
    normalized : ``df`` already went through :func:`normalize_frame`.

    Returns
    -------
    DataFrame of :data:`FEATURE_COLUMNS` (bits, counts) plus ``pair_id`` (index into the list
    of distinct (wfmt, afmt) pairs, returned too when ``return_pairs``), same index.
    """
    cfg = df if normalized else normalize_frame(df)
    cw, uw = pd.factorize(cfg["wfmt"].to_numpy())
    ca, ua = pd.factorize(cfg["afmt"].to_numpy())
    pair_id, upair = pd.factorize(cw.astype(np.int64) * len(ua) + ca)
    pairs = [(str(uw[c // len(ua)]), str(ua[c % len(ua)])) for c in upair]
    props = [pair_props(w, a, target) for w, a in pairs]
    f = pd.DataFrame(index=cfg.index)
    for col in ("prod_bits", "mult_dsp", "mult_levels", "mf", "wb", "ab", "shift_bits", "mul_a", "mul_b", "exp_bits",
                "unsigned_product", "native_product", "full_product"):
        f[col] = np.array([p[col] for p in props], dtype=np.int64)[pair_id]
    # accumulator width: hw.arith.acc_bits once per distinct (wfmt, afmt, k_max)
    ck, uk = pd.factorize(cfg["k_max"].to_numpy())
    trip_id, utrip = pd.factorize(pair_id.astype(np.int64) * len(uk) + ck)
    accs = np.array([_acc_bits(*pairs[t // len(uk)], int(uk[t % len(uk)])) for t in utrip], dtype=np.int64)
    f["acc_bits"] = accs[trip_id]
    f["pair_id"] = pair_id
    lanes = cfg["lanes"].to_numpy()
    pipe = cfg["pipeline"].to_numpy()
    pb = f["prod_bits"].to_numpy()
    f["lanes"] = lanes
    f["pipeline"] = pipe
    # adder tree (hw.adder_tree.AdderTree): level l adds neighbouring pairs, each sum one bit
    # wider than its wider operand; an odd last term passes through at its own width
    unsigned = f["unsigned_product"].to_numpy()
    carry_free = 2 if target in ("xc7", "xcup") else 1  # LUT-free adder bits of an unsigned sum
    shape = _tree_shape_matrix(lanes)  # (rows, levels + 1, 5): adders, their extra bits, terms, theirs, raw last
    # tree bits at or above the accumulator's width: dead (rows, levels + 1, 3: term bits, terms, adder bits)
    dead = _tree_dead_matrix(lanes, f["acc_bits"].to_numpy() - pb, unsigned)
    # (rows, levels + 1, 2): registered terms keeping a constant top bit; iCE40's carry chains fold
    # (an unsigned product's operand widths)
    folds = (target == "ice40") & (unsigned > 0)
    fold = np.where(folds[:, None], np.column_stack([f["mul_a"].to_numpy(), f["mul_b"].to_numpy()]), 0)
    msb = _msb_kept_matrix(lanes, pipe, fold)
    reg_kept = np.zeros(len(lanes), dtype=np.int64)
    reg_kept_fabric = np.zeros(len(lanes), dtype=np.int64)
    tree_bits = np.zeros(len(lanes), dtype=np.int64)
    reg_bits = np.zeros(len(lanes), dtype=np.int64)
    regs_at = _register_matrix(lanes, pipe)
    maxl = regs_at.shape[1] - 1
    tree_l1 = np.zeros(len(lanes), dtype=np.int64)
    reg_l01 = np.zeros(len(lanes), dtype=np.int64)
    tree_reg = np.zeros(len(lanes), dtype=np.int64)
    reg_raw_last = np.zeros(len(lanes), dtype=np.int64)
    reg_terms = np.zeros(len(lanes), dtype=np.int64)
    reg_terms_l01 = np.zeros(len(lanes), dtype=np.int64)
    seen_reg = np.zeros(len(lanes), dtype=bool)  # a register after level 0 came before this level
    raw_terms = np.zeros(len(lanes), dtype=np.int64)
    # the lone product of an odd lane count passes raw until the first level with an even term
    # count, where it meets a sum of 2^(L-1) products: with no register on the way, that adder is
    # its DSP48's post-adder (P = A·B + C) and a register after it is that DSP's PREG
    lone_raw = (shape[:, 1, 4] > 0) if maxl >= 1 else np.zeros(len(lanes), bool)
    reg_meet = np.zeros(len(lanes), dtype=np.int64)
    meet_terms = np.zeros(len(lanes), dtype=np.int64)
    # the level whose adder made the last term (0: a product): an odd term count passes the last
    # term on unsummed. A first-level sum passed on so to the first register after level 1 leaves
    # a DSP48 post-adder (P = A·B + C) straight into that register: its PREG
    origin = np.zeros(len(lanes), dtype=np.int64)
    reg_l1_raw = np.zeros(len(lanes), dtype=np.int64)
    l1_raw_terms = np.zeros(len(lanes), dtype=np.int64)
    for lvl in range(0, maxl + 1):
        adders, adder_extra, terms, term_extra, raw_last = (shape[:, lvl, j] for j in range(5))
        dead_bits, dead_terms, dead_adder = (dead[:, lvl, j] for j in range(3))
        if lvl >= 1:
            passes = (shape[:, lvl - 1, 2] % 2 == 1) & (shape[:, lvl - 1, 2] > 1)
            origin = np.where(passes, origin, lvl)
        if lvl >= 2:
            held_l1 = regs_at[:, lvl] & ~seen_reg & (origin == 1) & (terms > 1)
            reg_l1_raw += np.where(held_l1, pb + 1, 0)
            l1_raw_terms += held_l1
            first = regs_at[:, lvl] & ~seen_reg & (raw_last > 0)
            reg_raw_last += np.where(first, pb, 0)
            raw_terms += first
            meets = lone_raw & (raw_last == 0)
            held = meets & regs_at[:, lvl] & ~seen_reg
            # the whole term, its constant-0 top bit included (an unsigned product's): the PREG
            # takes every bit of the post-adder's sum
            reg_meet += np.where(held, pb + lvl, 0)
            meet_terms += held
            lone_raw &= ~meets
            # the level's last term goes into that DSP48's PREG (raw product, post-adder sum)
            dsp_last = first | held | held_l1
        else:
            dsp_last = np.zeros(len(lanes), dtype=bool)
        # registered terms of an unsigned product whose constant-0 top bit Yosys keeps
        # (_msb_kept; a term cut to the accumulator's width has no top bit), all of them and
        # those outside the DSP48 registers of an xc7 int × int DSP tree (levels 0–1 and that
        # last term)
        kept = np.maximum(msb[:, lvl, 0] - dead_terms, 0)
        reg_kept += kept
        if lvl >= 2:
            reg_kept_fabric += kept - (dsp_last & (msb[:, lvl, 1] > 0) & (kept > 0))
        if lvl >= 1:
            seen_reg |= regs_at[:, lvl]
        if lvl > 0:
            # an unsigned × unsigned product's sign bit is constant 0, and so is every sum's: one
            # adder bit fewer per adder (Yosys drops the constant top bit), and on Xilinx one more:
            # an unsigned sum's top bit is its carry chain's carry-out (CARRY4/CARRY8 CO, no LUT)
            level_bits = adders * (pb - carry_free * unsigned) + adder_extra - dead_adder
            tree_bits += level_bits
            # adder bits whose sums go straight into a pipeline register (the rest feed the next
            # adder level or the accumulator combinationally)
            tree_reg += np.where(regs_at[:, lvl], level_bits, 0)
            if lvl == 1:
                tree_l1 = level_bits
        here = np.where(regs_at[:, lvl], terms * pb + term_extra - dead_bits, 0)
        # the terms the last register so far holds (before any: the products) and their bits
        if lvl == 0:
            last_terms, last_bits = terms.copy(), terms * pb + term_extra - dead_bits
        last_terms = np.where(regs_at[:, lvl], terms, last_terms)
        last_bits = np.where(regs_at[:, lvl], here, last_bits)
        # registered terms that keep their top (sign) bit: a term cut to the accumulator's width has none
        reg_terms += np.where(regs_at[:, lvl], terms - dead_terms, 0)
        if lvl <= 1:
            reg_terms_l01 += np.where(regs_at[:, lvl], terms, 0)
        reg_bits += np.where(regs_at[:, lvl], here + 2, 0)
        if lvl <= 1:
            reg_l01 += here
    f["tree_bits"] = tree_bits
    f["tree_reg"] = tree_reg  # adder bits whose level ends in a pipeline register
    f["tree_l1"] = tree_l1  # bits of the first adder level (a DSP cascade can absorb it)
    f["l1_reg"] = regs_at[:, 1].astype(np.int64) if maxl >= 1 else np.zeros(len(lanes), np.int64)
    f["reg_l01"] = reg_l01  # data-register bits after the multipliers and after the first adders
    # product bits of the last lane held, still unsummed, by the first register after level 1
    # (an odd lane count passes that product through the first levels; a DSP48's PREG takes it)
    f["reg_raw_last"] = reg_raw_last
    # registered tree terms (pipeline registers after the multipliers and after adder levels):
    # all of them, those of levels 0–1 and that lone product (a DSP48 may take them)
    f["reg_terms"] = reg_terms
    f["reg_terms_dsp"] = reg_terms_l01 + raw_terms + meet_terms + l1_raw_terms
    # of those, the unsigned × unsigned product's terms whose constant-0 top bit stays a flip-flop
    # (_msb_kept): all, and those outside an xc7 DSP48's registers
    f["reg_msb_kept"] = np.where(unsigned > 0, reg_kept, 0)
    f["reg_msb_kept_dsp"] = np.where(unsigned > 0, reg_kept_fabric, 0)
    # bits of a first-level sum held unsummed by the first register after level 1 (its PREG)
    f["reg_l1_raw"] = reg_l1_raw
    # bits of the register after the adder where that lone product first meets a sum (its DSP48's
    # PREG when no register came before: see the loop)
    f["reg_meet_last"] = reg_meet
    f["tree_adders"] = lanes - 1
    # the adder levels after the last pipeline register (all of them without one) and the
    # accumulator's adder are one multi-operand sum (Yosys alumacc merges the chain into a $macc
    # with the accumulator as one more addend; maccmap sign-extends every operand to the $macc's
    # width, the accumulator's): the bits between the width of each term entering it and the
    # accumulator's (0 where one term enters: acc + partial is a plain adder)
    acc_w = f["acc_bits"].to_numpy()
    f["macc_signext_bits"] = np.where(last_terms > 1, np.maximum(last_terms * acc_w - last_bits, 0), 0)
    # the terms that enter that $macc with the accumulator and their bits at their own widths
    # (1 term: acc + partial, a plain adder)
    f["macc_terms"] = last_terms
    f["macc_term_bits"] = last_bits
    # the full adders maccmap lays out for that $macc (a fabric one: priced where it is); one
    # term and the accumulator are a plain adder: none
    # each distinct tree shape replayed once, and only where it has such a $macc (last_terms and
    # pipe follow from the shape)
    shape = np.column_stack([lanes, pipe, pb, unsigned, acc_w]).astype(np.int64)
    uniq, inv = np.unique(shape, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    summed, piped = np.zeros(len(uniq), dtype=bool), np.zeros(len(uniq), dtype=bool)
    summed[inv[last_terms >= 2]], piped[inv[pipe >= 1]] = True, True
    trees = [(int(ln), int(p), int(b), not u, int(w)) for ln, p, b, u, w in uniq]
    f["macc_fa_bits"] = np.array([macc_full_adders(*t) if s else 0 for t, s in zip(trees, summed)],
                                 dtype=np.int64)[inv]
    # the $maccs of DEEP_MACC_TERMS or more terms in front of the pipeline registers
    # (inner_macc_adders): their full adders and the adder bits merged into them
    inner = np.array([inner_macc_adders(*t, DEEP_MACC_TERMS) if d else (0, 0) for t, d in zip(trees, piped)],
                     dtype=np.int64).reshape(-1, 2)[inv]
    f["deep_macc_fa_bits"], f["deep_macc_merged_bits"] = inner[:, 0], inner[:, 1]
    f["reg_bits"] = reg_bits + 2 * f["acc_bits"].to_numpy() + 1  # + accumulator + output register + valid
    sp = (cfg["engine"] == "sparse").to_numpy()
    m = cfg["m"].to_numpy()
    ab = f["ab"].to_numpy()
    # index mux: mux_bits (a LUT-count proxy the Lattice LUT4 fit uses), mux_lut6 (the LUT6s
    # synth_xilinx spends: lanes · abits · mux_lut6_per_bit(m); 3 per bit for 8:1, not 2)
    f["mux_bits"] = np.where(sp, lanes * ab * np.maximum(1, m // 4), 0)
    f["mux_lut6"] = np.where(sp, lanes * ab * mux_lut6_per_bit(np.where(sp, m, 0)), 0)
    f["mux_m"] = np.where(sp, m, 0)
    f["mux_levels"] = np.where(sp, np.ceil(np.log2(np.maximum(m, 2)) / 2).astype(np.int64), 0)
    n = np.maximum(cfg["n"].to_numpy(), 1)
    span = np.where(sp, lanes // n * m, lanes)
    idx_bits = np.where(sp, np.log2(np.maximum(m, 2)).astype(np.int64), 0)
    f["in_bits"] = lanes * f["wb"].to_numpy() + span * ab + lanes * idx_bits + 1
    out = f[FEATURE_COLUMNS + ["pair_id"]]
    return (out, pairs) if return_pairs else out


def config_row(config) -> pd.DataFrame:
    """One-row configs frame of an ``hw`` engine config."""
    d = config.to_dict()
    row = {c: d.get(c) for c in CONFIG_COLUMNS}
    row["engine"] = d.get("engine", "dot")
    row["block"] = d.get("block") or 0
    row["n"] = d.get("n", 1)
    row["m"] = d.get("m", 1)
    return pd.DataFrame([row])
