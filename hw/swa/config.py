"""Configuration of the sliding-window attention kernel: :class:`SWAConfig`, its derived widths
and constants (see :mod:`hw.swa` for the window convention and the arithmetic)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from quant.formats import Format, parse_format
from quant.reference import fixed_point

from ..arith import ConfigError, acc_bits, finite_codes, signed_bits, unit_exponent
from ..engine import EngineConfig, set_int
from .kernel import SWAKernel

__all__ = ["SWAConfig", "dense_baseline", "ERROR_BOUND", "MAX_WINDOW", "MAX_DENSE_N", "MAX_SCALE_BITS"]

#: documented bound on the relative (Frobenius) error vs float64 attention, default widths
ERROR_BOUND = 5e-3
#: largest sliding window the generator accepts (keys; the K/V buffers hold window·head_dim codes)
MAX_WINDOW = 4096
#: largest sequence of the dense baseline (its buffers hold the whole sequence)
MAX_DENSE_N = 8192
#: most fraction bits (and significant bits) of the exponent constant ``c``: bounds the width of
#: ``u = t·c`` in the exp unit for extreme ``score_scale`` × ``qk_fmt`` combinations
MAX_SCALE_BITS = 256


def _clog2(x: int) -> int:
    return (int(x) - 1).bit_length()


@dataclass(frozen=True)
class SWAConfig(EngineConfig):
    """Sliding-window attention kernel configuration.

    Parameters
    ----------
    head_dim : int
        Elements per Q/K/V row; a multiple of ``lanes``.
    window : int
        Keys per query row (causal: ``[i - window + 1, i]``; symmetric: ``[i - h, i + h]``,
        ``window = 2h + 1`` odd), 1..:data:`MAX_WINDOW`. For the dense
        baseline (``dense=True``) it is the longest sequence, 1..:data:`MAX_DENSE_N`.
    lanes : int
        Multipliers per unit (QKᵀ unit and SV unit each), elements per beat.
    qk_fmt, v_fmt : Format or str
        Formats of Q and K codes, and of V codes.
    causal : bool
        Causal window (True) or symmetric window (False; see module docstring).
    exp_bits : int
        Fraction bits of the softmax numerators ``p`` (units ``2^-exp_bits``): each ``p_j`` (the
        row max gives 1) is floored to this grid, so its absolute error is below
        ``2^-exp_bits`` and a key more than :attr:`drop_nats` = ``(exp_bits + 1)·ln 2`` nats below
        the row's best score gets weight 0. The default 18 (12.5 nats) keeps the error below
        :data:`ERROR_BOUND` also when one key per window dominates and the rest lie 6-10 nats
        lower (14 gave up to 8.3e-3 there).
    lut_bits : int
        Fraction bits of the base-2 exponent looked up in the ``2^lut_bits``-entry table.
    scale_bits : int
        Significant bits of the constant ``log2(e)·score_scale`` (per score unit).
    recip_bits : int
        Precision of the per-row reciprocal (relative error < ``2^-recip_bits``).
    out_frac_bits : int
        Fraction bits of the outputs below the V unit ``2^k_v``.
    score_scale : float or None
        Multiplier of ``q·k`` (decoded values) inside the softmax; None means ``1/sqrt(head_dim)``.
    dense : bool
        Build the dense causal baseline instead: the whole sequence (up to ``window`` tokens) is
        buffered, then every row computes all ``n`` scores with the upper triangle masked (no
        sliding reuse), with the same arithmetic.
    div_bits : int or None
        Quotient bits the reciprocal divider computes per cycle; None picks the fewest that keep
        the normalizer within a steady-state row (``norm_cycles <= window·chunks``).
    norm_lanes : int or None
        Multipliers of the normalizer (``a·r``, wide): a divisor of ``lanes``; an output beat
        takes ``lanes / norm_lanes`` cycles. None picks the fewest that keep the normalizer within
        a steady-state row (then the fewest divider bits per cycle).
    """

    head_dim: int
    window: int
    lanes: int
    qk_fmt: Format
    v_fmt: Format
    causal: bool = True
    exp_bits: int = 18
    lut_bits: int = 8
    scale_bits: int = 12
    recip_bits: int = 16
    out_frac_bits: int = 8
    score_scale: float | None = None
    dense: bool = False
    div_bits: int | None = None
    norm_lanes: int | None = None

    engine = "swa"

    def __post_init__(self) -> None:
        object.__setattr__(self, "qk_fmt", parse_format(self.qk_fmt))
        object.__setattr__(self, "v_fmt", parse_format(self.v_fmt))
        set_int(self, "lanes", 1, "use --lanes 1 or more", hi=256)
        set_int(self, "head_dim", 1, "use --head-dim 1..1024", hi=1024)
        if self.head_dim % self.lanes:
            raise ConfigError(
                f"head_dim={self.head_dim} is not a multiple of lanes={self.lanes}; pick lanes dividing head_dim"
            )
        wmax = MAX_DENSE_N if self.dense else MAX_WINDOW
        held = "dense baseline holds at most" if self.dense else "K/V buffers hold at most"
        set_int(self, "window", 1, f"the {held} {wmax} keys; use --window 1..{wmax}", hi=wmax)
        if not self.causal and self.dense:
            raise ConfigError("the dense baseline is causal; drop --no-causal (the symmetric window) or --dense")
        if not self.causal and self.window % 2 == 0:
            raise ConfigError(f"a symmetric window covers [i-h, i+h], an odd number of keys; "
                              f"use --window {self.window + 1} (or {self.window - 1})")
        set_int(self, "exp_bits", 2, "use --exp-bits 2..24", hi=24)
        set_int(self, "lut_bits", 0, "use --lut-bits 0..12", hi=12)
        set_int(self, "scale_bits", 2, "use --scale-bits 2..24", hi=24)
        set_int(self, "recip_bits", 1, "use --recip-bits 1..32", hi=32)
        set_int(self, "out_frac_bits", 0, "use --out-frac-bits 0..32", hi=32)
        if self.score_scale is not None:
            s = float(self.score_scale)
            if not (math.isfinite(s) and s > 0):
                raise ConfigError(f"score_scale must be a positive finite number, got {self.score_scale!r}")
            object.__setattr__(self, "score_scale", s)
        self._check_scale()
        if self.out_frac_bits > self.z_bits:
            raise ConfigError(f"out_frac_bits={self.out_frac_bits} exceeds the reciprocal's {self.z_bits} "
                              f"fraction bits; lower --out-frac-bits or raise --recip-bits")
        if self.div_bits is not None:
            set_int(self, "div_bits", 1, f"use --div-bits 1..{self.recip_width} (quotient bits per cycle)",
                    hi=self.recip_width)
        if self.norm_lanes is not None:
            set_int(self, "norm_lanes", 1, "use --norm-lanes dividing --lanes", hi=self.lanes)
            if self.lanes % self.norm_lanes:
                raise ConfigError(f"norm_lanes={self.norm_lanes} does not divide lanes={self.lanes}; "
                                  f"pick a divisor of lanes")
        if self.z_bits > 60:
            raise ConfigError(f"exp_bits + ceil(log2 window) + recip_bits = {self.z_bits} > 60; "
                              f"lower --exp-bits or --recip-bits")

    def _check_scale(self) -> None:
        """:class:`ConfigError` unless the exponent constant ``c = round(g·2^F)`` needs at most
        :data:`MAX_SCALE_BITS` fraction bits ``F`` and significant bits (``g`` = log2(e) ·
        score_scale · 2^(2 k_qk), one score unit in base-2 exponent units)."""
        u = unit_exponent(self.qk_fmt)
        # log2 g without forming g (it under/overflows for e7m0 with extreme scales)
        log2_g = math.log2(math.log2(math.e)) + math.log2(self.scale) + 2 * u
        frac = self.scale_bits - 1 - math.floor(log2_g)
        width = math.floor(log2_g) + max(frac, self.lut_bits) + 1
        if frac > MAX_SCALE_BITS or width > MAX_SCALE_BITS:
            lo = 2.0 ** (self.scale_bits - 1 - MAX_SCALE_BITS - 2 * u) / math.log2(math.e)
            hi = 2.0 ** (MAX_SCALE_BITS - 1 - self.lut_bits - 2 * u) / math.log2(math.e)
            raise ConfigError(
                f"score_scale={self.scale:g} with qk_fmt {self.qk_fmt} needs a {max(frac, width)}-bit exponent "
                f"constant (limit {MAX_SCALE_BITS}); use --score-scale in {lo:.3g}..{hi:.3g} for this format")

    # ---- derived widths and constants -------------------------------------------------------
    @property
    def drop_nats(self) -> float:
        """Score gap (nats, ``score_scale·(max - s_j)``) beyond which a key's numerator is
        floored to 0: ``(exp_bits + 1)·ln 2`` (12.5 nats at the default 18)."""
        return (self.exp_bits + 1) * math.log(2)

    @property
    def chunks(self) -> int:
        """Beats per token (and per output row): ``head_dim / lanes``."""
        return self.head_dim // self.lanes

    @property
    def scale(self) -> float:
        """Softmax scale of ``q·k`` on decoded values."""
        return self.score_scale if self.score_scale is not None else 1.0 / math.sqrt(self.head_dim)

    @property
    def score_bits(self) -> int:
        """Width of one exact score, bits (signed)."""
        return acc_bits(self.qk_fmt, self.qk_fmt, self.head_dim)

    @property
    def _g(self) -> float:
        return math.log2(math.e) * self.scale * 2.0 ** (2 * unit_exponent(self.qk_fmt))

    @property
    def scale_frac(self) -> int:
        """F: fraction bits of the exponent ``u = t·c`` (bits), at least ``lut_bits``."""
        return max(self.scale_bits - 1 - math.floor(math.log2(self._g)), self.lut_bits)

    @property
    def scale_const(self) -> int:
        """c = round(log2(e)·score_scale·2^(2 k_qk)·2^F), a positive integer."""
        return max(1, round(self._g * 2.0 ** self.scale_frac))

    @property
    def t_sat(self) -> int:
        """Smallest ``t`` that surely gives ``p = 0`` (``t·c >> F > exp_bits``)."""
        return -(-((self.exp_bits + 1) << self.scale_frac) // self.scale_const)

    @property
    def exp_table(self) -> np.ndarray:
        """LUT[x] = round(2^(-x/2^lut_bits) · 2^exp_bits), int64, ``2^lut_bits`` entries."""
        x = np.arange(2**self.lut_bits, dtype=np.float64)
        return np.round(np.exp2(-x / 2**self.lut_bits) * 2.0**self.exp_bits).astype(np.int64)

    @property
    def sum_bits(self) -> int:
        """Width of the softmax denominator S <= window·2^exp_bits, bits (unsigned)."""
        return (self.window << self.exp_bits).bit_length()

    @property
    def z_bits(self) -> int:
        """Z: the reciprocal is floor(2^Z / S)."""
        return self.exp_bits + _clog2(self.window) + self.recip_bits

    @property
    def recip_width(self) -> int:
        """Quotient bits of the reciprocal (= divider iterations, cycles)."""
        return self.recip_bits + _clog2(self.window) + 1

    def _norm_choice(self) -> tuple[int, int]:
        """(norm_lanes, div bits per cycle): the given ones, else the fewest normalizer
        multipliers, then the fewest divider bits, with ``norm_cycles <= window·chunks``."""
        qb, C, L, budget = self.recip_width, self.chunks, self.lanes, self.window * self.chunks
        nls = [self.norm_lanes] if self.norm_lanes else [d for d in range(1, L + 1) if L % d == 0]
        bs = [self.div_bits] if self.div_bits else list(range(1, qb + 1))
        for nl in nls:
            for b in bs:
                if 2 + -(-qb // b) + C * (L // nl) <= budget:
                    return nl, b
        nl = nls[-1]
        room = budget - 2 - C * (L // nl)
        return nl, (self.div_bits or min(qb, -(-qb // max(1, room))))

    @property
    def norm_mults(self) -> int:
        """Normalizer multipliers (``norm_lanes`` or the automatic choice)."""
        return self._norm_choice()[0]

    @property
    def div_step_bits(self) -> int:
        """Quotient bits per divider cycle (``div_bits`` or the automatic choice)."""
        return self._norm_choice()[1]

    @property
    def div_steps(self) -> int:
        """Divider cycles per row: ``ceil(recip_width / div_step_bits)``."""
        return -(-self.recip_width // self.div_step_bits)

    @property
    def norm_cycles(self) -> int:
        """Normalizer cycles per row: copy (2) + divider + ``chunks·lanes/norm_mults`` (output)."""
        return 2 + self.div_steps + self.chunks * (self.lanes // self.norm_mults)

    @property
    def half(self) -> int:
        """h: keys after the query (symmetric: ``(window - 1) / 2``; causal: 0)."""
        return 0 if self.causal else (self.window - 1) // 2

    @property
    def buffer_slots(self) -> int:
        """Rows held by each K/V buffer: ``window + 2`` (SWA), ``window`` = max n (dense)."""
        return self.window if self.dense else self.window + 2

    def _v_range(self) -> tuple[int, int]:
        ints, _ = fixed_point(finite_codes(self.v_fmt), self.v_fmt)
        return int(min(int(x) for x in ints)), int(max(int(x) for x in ints))

    @property
    def sv_bits(self) -> int:
        """Width of the SV accumulators, bits (signed)."""
        lo, hi = self._v_range()
        top = self.window << self.exp_bits
        return signed_bits(top * min(lo, 0), top * max(hi, 0))

    @property
    def out_bits(self) -> int:
        """Width of one output, bits (signed)."""
        lo, hi = self._v_range()
        return signed_bits(min(lo, 0) << self.out_frac_bits, max(hi, 0) << self.out_frac_bits)

    # ---- layouts and API ----------------------------------------------------------------------
    def design_tag(self) -> str:
        """``d<head_dim>_w<window>_l<lanes>_<qk_fmt>_<v_fmt>`` (+ ``_sym`` for a symmetric
        window, ``_dense`` for the dense baseline, ``_e<exp_bits>`` when not the default, and a
        hash of any other non-default field)."""
        tag = f"d{self.head_dim}_w{self.window}_l{self.lanes}_{self.qk_fmt}_{self.v_fmt}"
        tag += ("" if self.causal else "_sym") + ("_dense" if self.dense else "")
        tag += f"_e{self.exp_bits}" if self.exp_bits != type(self).exp_bits else ""
        shown = {"head_dim", "window", "lanes", "qk_fmt", "v_fmt", "causal", "dense", "exp_bits"}
        return tag + self.other_fields_tag(shown)

    def in_layout(self) -> data.StructLayout:
        """Input beat layout: ``q``, ``k``, ``v`` (``lanes`` codes each) and ``last``."""
        return data.StructLayout({
            "q": data.ArrayLayout(unsigned(self.qk_fmt.bits), self.lanes),
            "k": data.ArrayLayout(unsigned(self.qk_fmt.bits), self.lanes),
            "v": data.ArrayLayout(unsigned(self.v_fmt.bits), self.lanes),
            "last": unsigned(1),
        })

    def out_layout(self) -> data.ArrayLayout:
        """Output beat layout: ``lanes`` signed outputs."""
        return data.ArrayLayout(signed(self.out_bits), self.lanes)

    def build(self):
        return SWAKernel(self)


def dense_baseline(config: SWAConfig, max_n: int) -> SWAConfig:
    """The dense causal baseline with ``config``'s arithmetic for sequences up to ``max_n``."""
    d = config.to_dict()
    d.update(window=max_n, dense=True)
    return SWAConfig.from_dict(d)
