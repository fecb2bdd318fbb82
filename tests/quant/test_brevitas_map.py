"""Brevitas quantizers from quant.brevitas_map put values exactly on values(fmt) × scale and agree
with the numpy golden model element for element (weights and activations, per-tensor and
per-channel, ties and out-of-range values included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import brevitas.nn as qnn

from quant.brevitas_map import (
    UnsupportedFormatError,
    act_quant,
    check_supported,
    scale_divisor,
    format_of_quantizer,
    weight_quant,
)
from quant.formats import FormatError, MinifloatFormat, all_formats, parse_format
from quant.reference import quantize, values

torch.set_num_threads(1)

FORMATS = all_formats() + [parse_format(n) for n in ("e4m3ocpnosat", "e5m2ieeenosat", "e3m2ocp", "e4m3b11", "e2m0ieee")]
IDS = [str(f) for f in FORMATS]


def _hard_values(fmt, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Grid points, exact midpoints (ties), values beyond ±max, tiny values and random reals,
    all multiplied by a power-of-two ``scale`` (so ties stay exact ties)."""
    g = values(fmt)
    mid = (g[1:] + g[:-1]) / 2
    mx = float(np.abs(g).max())
    beyond = np.array([1.01, 1.5, 2.0, 7.0, 1e3]) * mx
    lo = g.min()
    beyond = np.concatenate([beyond, -beyond] if lo < 0 else [beyond, [-1.0, -mx]])
    tiny = np.array([1e-30, -1e-30, 0.0])
    rnd = rng.normal(0, mx / 3, 200)
    x = np.concatenate([g, mid, beyond, tiny, rnd]) * scale
    return x.astype(np.float32)


def _assert_same(q: np.ndarray, x: np.ndarray, fmt, scale) -> None:
    ref = quantize(x, fmt, scale)
    assert q.dtype == np.float32
    np.testing.assert_array_equal(q, ref)
    # and every finite output is a grid value times the scale (in float32, as Brevitas computes)
    sc = np.broadcast_to(np.asarray(scale, dtype=np.float64), q.shape)
    fin = np.isfinite(q)
    g = values(fmt)
    on = q[fin] / sc[fin]
    i = np.clip(np.searchsorted(g, on), 1, len(g) - 1)
    near = np.where(np.abs(g[i] - on) < np.abs(g[i - 1] - on), g[i], g[i - 1])
    np.testing.assert_array_equal((near * sc[fin]).astype(np.float32), q[fin])


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_weight_const_scale_ties_and_overflow(fmt):
    rng = np.random.default_rng(1)
    scale = 2.0**-3
    x = _hard_values(fmt, scale, rng)
    layer = qnn.QuantLinear(len(x), 1, bias=False, weight_quant=weight_quant(fmt, scaling="const", scale=scale))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(x)[None])
    qw = layer.quant_weight()
    assert float(qw.scale) == scale
    _assert_same(qw.value.detach().numpy()[0], x, fmt, np.float32(scale))


@pytest.mark.parametrize("per_channel", [False, True], ids=["tensor", "channel"])
@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_weight_stats_scale(fmt, per_channel):
    """Max-abs scaling: row r holds max·2^(r-2) (so the scale is a power of two, ties stay
    ties), the scaled grid midpoints and random values."""
    rng = np.random.default_rng(2)
    g = values(fmt)
    mx = scale_divisor(fmt)  # Brevitas' scale is max|w| / this
    mid = (g[1:] + g[:-1]) / 2
    rows = []
    for r in range(4):
        s = 2.0 ** (r - 2) if per_channel else 1.0
        row = np.concatenate([[mx], mid, rng.uniform(g.min(), mx, 300 - len(mid) - 1)]) * s
        rows.append(row)
    w = np.stack(rows).astype(np.float32)
    layer = qnn.QuantLinear(w.shape[1], 4, bias=False, weight_quant=weight_quant(fmt, per_channel=per_channel))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
    qw = layer.quant_weight()
    scale = qw.scale.detach().numpy()
    assert scale.shape == ((4, 1) if per_channel else ())
    expect = np.array([2.0 ** (r - 2) for r in range(4)])[:, None] if per_channel else 1.0
    np.testing.assert_array_equal(scale, np.float32(expect))
    _assert_same(qw.value.detach().numpy(), w, fmt, scale)
    assert format_of_quantizer(layer.weight_quant) == fmt


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_act_const_scale_ties_and_overflow(fmt):
    rng = np.random.default_rng(3)
    scale = 2.0**2
    x = _hard_values(fmt, scale, rng)
    act = qnn.QuantIdentity(act_quant=act_quant(fmt, scaling="const", scale=scale), return_quant_tensor=True)
    act.eval()
    y = act(torch.from_numpy(x)[None])
    assert float(y.scale) == scale
    _assert_same(y.value.detach().numpy()[0], x, fmt, np.float32(scale))
    assert format_of_quantizer(act.act_quant) == fmt


@pytest.mark.parametrize("per_channel", [None, 8], ids=["tensor", "channel"])
@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_act_calibrated(fmt, per_channel):
    """Scale learned from statistics in training mode, frozen in eval; then wider data (beyond
    max) quantizes exactly as the golden model with that scale."""
    torch.manual_seed(4)
    act = qnn.QuantIdentity(act_quant=act_quant(fmt, per_channel=per_channel), return_quant_tensor=True)
    act.train()
    for _ in range(3):
        act(torch.randn(128, 8) * torch.arange(1, 9))
    act.eval()
    x = torch.randn(256, 8) * torch.arange(1, 9) * 3
    y = act(x)
    scale = y.scale.detach().numpy()
    assert scale.shape == ((1, 8) if per_channel else ())
    if per_channel:
        assert len(np.unique(scale)) > 1
    _assert_same(y.value.detach().numpy(), x.numpy(), fmt, scale)


def test_act_per_channel_4d():
    act = qnn.QuantIdentity(act_quant=act_quant("e3m2", per_channel=3, ndim=4), return_quant_tensor=True)
    act(torch.randn(4, 3, 5, 5) * torch.tensor([1.0, 10.0, 100.0])[:, None, None])
    act.eval()
    x = torch.randn(4, 3, 5, 5) * 50
    y = act(x)
    assert y.scale.shape == (1, 3, 1, 1)
    _assert_same(y.value.detach().numpy(), x.numpy(), parse_format("e3m2"), y.scale.detach().numpy())


def test_brevitas_max_matches_ours_for_specials():
    """Brevitas' own max for our specials (computed from nan/inf codes) equals our max_value."""
    from brevitas.utils.float_quant_utils import get_max_available_float

    from quant.brevitas_map import float_specials

    for fmt in FORMATS:
        if isinstance(fmt, MinifloatFormat) and fmt.has_nan and fmt.mantissa_bits > 0:
            nan, inf = float_specials(fmt)
            assert get_max_available_float(fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, nan, inf, fmt.saturate) == fmt.max_value


@pytest.mark.parametrize("name", ["e4m3nosub", "e2m1nosub", "e3m0ieeenosat"])
def test_unsupported_formats_raise(name):
    with pytest.raises(UnsupportedFormatError, match="Brevitas"):
        weight_quant(name)
    with pytest.raises(FormatError):
        act_quant(name)
    with pytest.raises(ValueError):
        check_supported(name)


def test_bad_arguments():
    with pytest.raises(FormatError):
        weight_quant("fp8")
    with pytest.raises(ValueError, match="positive scale"):
        weight_quant("int8", scaling="const")
    with pytest.raises(ValueError, match="scaling"):
        weight_quant("int8", scaling="minmax")
    with pytest.raises(ValueError, match="channels"):
        act_quant("int8", per_channel=0)


def test_format_of_plain_brevitas_quantizers():
    """Quantizers not made here: the format is read from what the proxy reports."""
    from brevitas.quant.float import Fp8e4m3WeightPerTensorFloat
    from brevitas.quant.float_quant_ocp import Fp8e4m3OCPWeightPerTensorFloat, Fp8e5m2OCPWeightPerTensorFloat
    from brevitas.quant.scaled_int import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

    def fmt_of(q):
        return str(format_of_quantizer(qnn.QuantLinear(4, 4, weight_quant=q).weight_quant))

    assert fmt_of(Int8WeightPerTensorFloat) == "int8n"
    assert fmt_of(Int8WeightPerTensorFloat.let(bit_width=4, narrow_range=False)) == "int4"
    assert fmt_of(Fp8e4m3WeightPerTensorFloat) == "e4m3"
    assert fmt_of(Fp8e4m3OCPWeightPerTensorFloat) == "e4m3ocp"
    assert fmt_of(Fp8e5m2OCPWeightPerTensorFloat) == "e5m2ieee"
    act = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat)
    assert str(format_of_quantizer(act.act_quant)) == "uint8"
    with pytest.raises(ValueError, match="not quantized"):
        format_of_quantizer(qnn.QuantLinear(4, 4, weight_quant=None).weight_quant)
