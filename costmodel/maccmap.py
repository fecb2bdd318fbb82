"""Yosys' ``maccmap`` replayed: which adder output bits are constant once Yosys maps the adders
to gates (iCE40), and how many full adders a ``$macc`` takes (every family's fabric).

``synth_ice40`` maps every ``$alu`` to a chain of ``SB_CARRY`` cells and LUT4 sum bits
(``techlibs/ice40/arith_map.v``), and ``ice40_opt`` replaces a ``SB_CARRY`` with two constant-0
inputs by a constant 0. So a sum bit is constant when its operands' bits are 0 there and the
carry into it is: constants the coarse passes (``wreduce``, ``opt``) never saw. A ``$macc``
(several addends, merged by ``alumacc``) is first laid out by ``maccmap`` as rows of full adders
ending in one ``$alu``; where its rows keep a bit at the top, the carry chain does too.

Bits are replayed in ternary logic, each one either a structural constant (``None``: Yosys'
``S0`` at ``maccmap`` time), a wire that later folds to 0 (``False``), or a data bit (``True``).
The replay follows Yosys 0.70's ``passes/techmap/maccmap.cc`` (its bit columns, the packing of
low bits into carry slots, the three-row full-adder rounds with their constant ends trimmed, the
final ``$alu``); the order in which a column hands out its bits is taken as the addends' order.
``xc7``/``xcup`` (``CARRY4``/``CARRY8``) and ``ecp5`` (``CCU2C``) keep their carry cells opaque:
nothing folds there.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Bits", "word", "product_rows", "carry_chain", "macc", "full_adder_bits", "full_adder_rounds"]

#: one bit per position, LSB first: None = constant 0 at ``maccmap`` time, False = a wire that
#: folds to 0 on the gates, True = data
Bits = list


def word(width: int, wires: int, out: int) -> Bits:
    """A signed addend of ``width`` bits (a register) extended to ``out`` bits: its low ``wires``
    bits carry data, the rest are constant 0 in the netlist (an unsigned value's zero sign bit,
    narrowed by ``wreduce``); one whose sign bit is kept (``wires == width``) repeats it above."""
    bits: Bits = [True if i < wires else None for i in range(min(width, out))]
    fill = bits[-1] if wires >= width and bits else None
    return bits + [fill] * (out - len(bits))


def product_rows(a_bits: int, b_bits: int, out: int) -> list[Bits]:
    """The partial-product rows ``maccmap`` adds for an unsigned ``a × b`` port: one ``$and``
    row per bit of the narrower operand, a wire at every position (the row is a cell's output),
    data where the shifted wider operand lies."""
    a, b = max(a_bits, b_bits), min(a_bits, b_bits)
    return [[i <= k < i + a for k in range(out)] for i in range(b)]


def carry_chain(a: Bits, b: Bits, ci: bool | None = None) -> Bits:
    """Sum bits of an ``$alu`` mapped to ``SB_CARRY`` + LUT4 after constant folding: a sum bit
    is data when an operand bit or its carry is; a carry is data when two of its three inputs
    are (``ice40_opt``: two constant-0 inputs make a constant-0 carry)."""
    out: Bits = []
    c = bool(ci)
    for x, y in zip(a, b):
        x, y = bool(x), bool(y)
        out.append(x or y or c)
        c = (x + y + c) >= 2
    return out


def _fulladd(rows: Sequence[Bits], width: int) -> tuple[Bits, Bits, int]:
    """``maccmap``'s ``$fa`` over three rows, its constant-0 ends trimmed: (sum, carry) rows and
    the cell's width (bits)."""
    live = [k for k in range(width) if any(r[k] is not None for r in rows)]
    s: Bits = [None] * width
    c: Bits = [None] * width
    if not live:
        return s, c, 0
    for k in range(live[0], live[-1] + 1):
        n = sum(bool(r[k]) for r in rows)
        s[k], c[k] = n >= 1, n >= 2
    return s, c, live[-1] - live[0] + 1


def _maccmap(addends: Sequence[Bits], width: int) -> tuple[Bits, int]:
    """``maccmap`` of ``addends`` (rows of ``width`` bits): the output bits after the carry
    chain's constant folding, and the full-adder bits of its ``$fa`` rounds."""
    columns: list[list[bool]] = [[] for _ in range(width)]
    for row in addends:
        for k, bit in enumerate(row[:width]):
            if bit is not None:
                columns[k].append(bool(bit))
    summands: list[Bits] = []
    tree_bits: list[bool] = []
    while any(columns):
        summands.append([col.pop(0) if col else None for col in columns])
        while True:  # low bits packed into the full adders' free carry-in slots
            free = max(len(summands) - 1, 0) - len(tree_bits)
            depth = max(len(col) for col in columns)
            top = max(k for k in range(width) if len(columns[k]) == depth)
            if depth == 0 or top > 4:
                break
            deepest = [k for k in range(top + 1) if len(columns[k]) == depth]
            if sum(1 << k for k in deepest) > free:
                break
            for k in deepest:
                tree_bits += [columns[k].pop(0)] * (1 << k)
    if not summands:
        return [None] * width, 0
    if len(summands) == 1:
        return summands[0], 0
    adders = 0
    while len(summands) > 2:
        nxt: list[Bits] = []
        i = 0
        while i < len(summands):
            if i + 2 < len(summands):
                s, c, n = _fulladd(summands[i:i + 3], width)
                adders += n
                extra = tree_bits.pop() if tree_bits else None
                nxt += [s, [extra] + c[:width - 1]]
                i += 3
            else:
                nxt.append(summands[i])
                i += 1
        summands = nxt
    ci = tree_bits.pop() if tree_bits else None
    return carry_chain(summands[0], summands[-1], ci), adders


def macc(addends: Sequence[Bits], width: int) -> Bits:
    """Output bits of a ``$macc`` of ``addends`` (rows of ``width`` bits, :func:`word` /
    :func:`product_rows`) after ``maccmap`` and the carry chain's constant folding."""
    return _maccmap(addends, width)[0]


def full_adder_bits(addends: Sequence[Bits], width: int) -> int:
    """Full adders ``maccmap`` lays out to reduce ``addends`` (rows of ``width`` bits) to the two
    rows of its final ``$alu``: the summed width of its ``$fa`` cells (bits)."""
    return _maccmap(addends, width)[1]


def full_adder_rounds(rows: int) -> int:
    """Rounds of full adders ``maccmap`` takes to reduce ``rows`` addends to the two of its final
    ``$alu``: each round turns every three rows into two (a sum and a carry row)."""
    rounds = 0
    while rows > 2:
        rows -= rows // 3
        rounds += 1
    return rounds
