"""Format -> Brevitas 0.13 quantizer classes whose grid is exactly ``values(fmt) × scale``.

Integers map onto ``brevitas.quant.scaled_int`` (``bit_width``, ``signed``, ``narrow_range``),
minifloats onto ``brevitas.quant.float`` / ``float_quant_ocp`` with ``.let(exponent_bit_width=…,
mantissa_bit_width=…, exponent_bias=…)``. Brevitas rounds half to even (``torch.round``), keeps
subnormals, clamps to ±max after rounding (the same as our clip-then-round for saturating
formats) and, for non-saturating formats, turns what rounds above max into inf (when the format
has an inf code) or NaN. The specials of our formats are passed through as Brevitas'
``nan_values`` / ``inf_values`` mantissa codes of the all-ones exponent, and the largest finite
value as ``max_available_float``, so the grid and the scale statistics (``max|x| / max``) match.

Not expressible in Brevitas 0.13 (raise :class:`UnsupportedFormatError`): minifloats without
subnormals (``nosub``; Brevitas always keeps them), and non-saturating (``nosat``) minifloats with
0 mantissa bits (Brevitas names specials by mantissa bit strings, which need at least one bit).

Examples
--------
>>> import brevitas.nn as qnn
>>> layer = qnn.QuantLinear(16, 4, bias=False, weight_quant=weight_quant("e2m3", per_channel=True))
>>> act = qnn.QuantIdentity(act_quant=act_quant("int8"), return_quant_tensor=True)
"""

from __future__ import annotations

from typing import Literal

from brevitas.inject import ExtendedInjector
from brevitas.inject.enum import ScalingPerOutputType
from brevitas.quant.float import Fp8e4m3ActPerTensorFloat, Fp8e4m3WeightPerChannelFloat, Fp8e4m3WeightPerTensorFloat
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)

from .formats import Format, FormatError, IntFormat, MinifloatFormat, parse_format

__all__ = [
    "UnsupportedFormatError",
    "weight_quant",
    "act_quant",
    "check_supported",
    "scale_divisor",
    "float_specials",
    "format_of_quantizer",
]

Scaling = Literal["stats", "parameter_from_stats", "const"]


class UnsupportedFormatError(FormatError):
    """A valid format that Brevitas 0.13 cannot express exactly."""


def check_supported(fmt: Format | str) -> Format:
    """Parse ``fmt`` and raise :class:`UnsupportedFormatError` if Brevitas cannot express it."""
    fmt = parse_format(fmt)
    if isinstance(fmt, MinifloatFormat):
        if not fmt.subnormals:
            raise UnsupportedFormatError(
                f"{fmt}: Brevitas 0.13 minifloats always keep subnormals; use {str(fmt).replace('nosub', '')}"
            )
        if not fmt.saturate and fmt.mantissa_bits == 0:
            raise UnsupportedFormatError(
                f"{fmt}: Brevitas 0.13 names inf/NaN by mantissa bits, which e{fmt.exponent_bits}m0 lacks; "
                f"use the saturating {str(fmt).replace('nosat', '')}"
            )
    return fmt


def float_specials(fmt: MinifloatFormat) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Brevitas ``(nan_values, inf_values)``: mantissa bit strings of the all-ones exponent.

    ``(None, None)`` for formats without specials and for M = 0 formats (saturating, so the
    codes never appear in Brevitas' output; the grid is set by ``max_available_float``).
    """
    m = fmt.mantissa_bits
    if not fmt.has_nan or m == 0:
        return None, None
    codes = [format(i, f"0{m}b") for i in range(2**m)]
    if fmt.ieee_like:
        return tuple(codes[1:]), (codes[0],)
    return (codes[-1],), None  # ocp (non-E5M2): only S.1..1.1..1 is NaN


def _float_let(fmt: MinifloatFormat) -> dict:
    nan, inf = float_specials(fmt)
    return dict(
        bit_width=fmt.bits,
        exponent_bit_width=fmt.exponent_bits,
        mantissa_bit_width=fmt.mantissa_bits,
        exponent_bias=fmt.bias,
        nan_values=nan,
        inf_values=inf,
        max_available_float=fmt.max_value,
        saturating=fmt.saturate,
        # Brevitas floors scales at 1e-10; wide formats (e7m0: max 2^64) need smaller scales
        scaling_min_val=1e-30,
    )


def scale_divisor(fmt: Format | str) -> float:
    """What Brevitas divides the range statistic (max |x|) by to get the scale.

    ``-min_int`` for signed ints (so a non-narrow int8 scale is max|x| / 128 and the largest
    weight saturates to 127, as in Brevitas), ``max_int`` for unsigned ints, the largest finite
    value for minifloats.
    """
    fmt = parse_format(fmt)
    if isinstance(fmt, IntFormat):
        return float(-fmt.min_int if fmt.signed else fmt.max_int)
    return fmt.max_value


def _scaling_let(scaling: Scaling, scale: float | None, fmt: Format) -> dict:
    if scaling == "const":
        if scale is None or not scale > 0:
            raise ValueError(f"scaling='const' needs a positive scale, got {scale!r}")
        # Brevitas' const "scaling" is the range threshold; the scale is threshold / divisor
        return dict(scaling_impl_type="const", scaling_init=float(scale) * scale_divisor(fmt))
    if scale is not None:
        raise ValueError(f"a fixed scale only goes with scaling='const', not {scaling!r}")
    if scaling not in ("stats", "parameter_from_stats"):
        raise ValueError(f"scaling must be 'stats', 'parameter_from_stats' or 'const', got {scaling!r}")
    return dict(scaling_impl_type=scaling)


def weight_quant(
    fmt: Format | str,
    *,
    per_channel: bool = False,
    scaling: Scaling = "stats",
    scale: float | None = None,
) -> type[ExtendedInjector]:
    """Brevitas weight quantizer for ``fmt`` with max-abs scaling.

    Parameters
    ----------
    fmt : format or name
    per_channel : one scale per output channel (dim 0 of the weight) instead of one per tensor.
    scaling : ``"stats"`` (recomputed from the weights every call, Brevitas' default),
        ``"parameter_from_stats"`` (a learnable scale initialised from the stats: GPTQ / GPFQ /
        learned rounding need it to move weights), or ``"const"`` (``scale``, tests and export).
    """
    fmt = check_supported(fmt)
    if isinstance(fmt, IntFormat):
        base = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
        q = base.let(bit_width=fmt.bits, signed=fmt.signed, narrow_range=fmt.narrow)
    else:
        base = Fp8e4m3WeightPerChannelFloat if per_channel else Fp8e4m3WeightPerTensorFloat
        q = base.let(**_float_let(fmt))
    if per_channel and scaling == "const":
        raise ValueError("scaling='const' is per-tensor; use per_channel=False")
    return q.let(**_scaling_let(scaling, scale, fmt), paretofab_format=str(fmt))


def act_quant(
    fmt: Format | str,
    *,
    per_channel: int | None = None,
    ndim: int = 2,
    scaling: Scaling = "parameter_from_stats",
    scale: float | None = None,
) -> type[ExtendedInjector]:
    """Brevitas activation quantizer for ``fmt``.

    The scale is learned from runtime statistics (99.999th percentile of ``|x|``, Brevitas'
    default) during calibration and frozen in eval mode.

    Parameters
    ----------
    fmt : format or name (unsigned ints give an unsigned quantizer, e.g. after ReLU)
    per_channel : number of channels (dim 1) for one scale per channel, or None for per-tensor.
    ndim : rank of the activations when ``per_channel`` (2 for ``(N, C)``, 4 for ``(N, C, H, W)``).
    scaling : ``"parameter_from_stats"`` (default) or ``"const"`` with ``scale``.
    """
    fmt = check_supported(fmt)
    if isinstance(fmt, IntFormat):
        base = Int8ActPerTensorFloat if fmt.signed else Uint8ActPerTensorFloat
        q = base.let(bit_width=fmt.bits, signed=fmt.signed, narrow_range=fmt.narrow)
    else:
        q = Fp8e4m3ActPerTensorFloat.let(**_float_let(fmt))
    if scaling == "stats":
        raise ValueError("activations use scaling='parameter_from_stats' or 'const'")
    q = q.let(**_scaling_let(scaling, scale, fmt), paretofab_format=str(fmt))
    if per_channel is not None:
        if scaling == "const":
            raise ValueError("scaling='const' is per-tensor; use per_channel=None")
        if not isinstance(per_channel, int) or per_channel < 1:
            raise ValueError(f"per_channel is the number of channels (>= 1), got {per_channel!r}")
        if ndim < 2:
            raise ValueError(f"per-channel activations need ndim >= 2 (channels on dim 1), got {ndim}")
        shape = (1, per_channel) + (1,) * (ndim - 2)
        permute = (1, 0) + tuple(range(2, ndim))
        q = q.let(
            scaling_per_output_type=ScalingPerOutputType.CHANNEL,
            scaling_per_output_channel=True,
            per_channel_broadcastable_shape=shape,
            scaling_stats_permute_dims=permute,
        )
    return q


def format_of_quantizer(proxy) -> Format:
    """Our format of a Brevitas quant proxy (``layer.weight_quant``, ``act.act_quant``).

    Quantizers made here carry their format name (``paretofab_format``); for others it is read
    from the bit widths (and bias / specials for minifloats) that the proxy reports. Raises
    ``ValueError`` for a proxy that is not quantizing.
    """
    if not getattr(proxy, "is_quant_enabled", False):
        raise ValueError("the layer is not quantized (its quant proxy is disabled); quantize it first")
    try:
        name = proxy.quant_injector.paretofab_format
    except Exception:  # dependencies' DependencyError: not one of ours
        name = None
    if isinstance(name, str):
        return parse_format(name)
    if hasattr(proxy, "exponent_bit_width") and callable(getattr(proxy, "exponent_bit_width")):
        e = int(proxy.exponent_bit_width())
        m = int(proxy.mantissa_bit_width())
        bias = int(proxy.exponent_bias())
        nan = proxy.nan_values() if callable(getattr(proxy, "nan_values", None)) else None
        inf = proxy.inf_values() if callable(getattr(proxy, "inf_values", None)) else None
        sat = proxy.is_saturating() if callable(getattr(proxy, "is_saturating", None)) else True
        specials = "none"
        if inf:
            specials = "ieee"
        elif nan:
            specials = "ocp"
        fmt = MinifloatFormat(e, m, bias=bias, specials=specials, saturate=bool(sat))
        if fmt.specials == "none" and proxy_max_value(proxy) not in (None, fmt.max_value):
            # saturating M=0 formats with specials only show up as a smaller max
            for sp in ("ocp", "ieee"):
                alt = MinifloatFormat(e, m, bias=bias, specials=sp)
                if alt.max_value == proxy_max_value(proxy):
                    return alt
        return fmt
    bits = int(proxy.bit_width())
    return IntFormat(bits, signed=bool(proxy.is_signed), narrow=bool(proxy.is_narrow_range))


def proxy_max_value(proxy) -> float | None:
    """The ``max_available_float`` baked into a minifloat proxy, if any."""
    try:
        clamp = proxy.tensor_quant.float_clamp_impl
    except AttributeError:
        return None
    mx = getattr(clamp, "max_available_float", None)
    return None if mx is None else float(mx())
