"""quant.ptq: every technique changes the quantized model and keeps 8-bit accuracy; quantized
weights stay on the format grid; GPTQ moves weights; LSTM / MLP models quantize; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from quant import digits
from quant.formats import FormatError
from quant.ptq import (TECHNIQUES, CalibrationError, PTQConfig, TechniqueError, parse_techniques, quant_layers,
                       quantize_model)
from quant.reference import quantize

torch.set_num_threads(1)

#: at 8 bits a technique may cost at most this much test accuracy against round-to-nearest
TOLERANCE_8BIT = 0.02


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    import os

    os.environ.setdefault("PARETOFAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    data = digits.load_data(0)
    model = digits.load_model(0, data)
    return model, data


@pytest.fixture(scope="module")
def rtn8(work):
    model, data = work
    return quantize_model(model, "int8", "int8", calib_data=data.x_train[:256])


def _state(q):
    out = {}
    for name, layer in quant_layers(q):
        out[name + ".w"] = layer.quant_weight().value.detach().clone()
        out[name + ".s"] = layer.quant_weight().scale.detach().clone()
        if layer.bias is not None:
            out[name + ".b"] = layer.bias.detach().clone()
    return out


@pytest.mark.parametrize("tech", TECHNIQUES)
def test_technique_changes_model_and_keeps_accuracy(work, rtn8, tech):
    model, data = work
    q = quantize_model(model, "int8", "int8", calib_data=data.x_train[:256],
        config=PTQConfig(techniques=tech, learned_round_iters=60))
    a, b = _state(rtn8), _state(q)
    assert a.keys() == b.keys()
    changed = [k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    assert changed, f"{tech} left every weight, scale and bias as plain calibration did"
    acc_rtn = digits.accuracy(rtn8, data.x_test, data.y_test)
    acc = digits.accuracy(q, data.x_test, data.y_test)
    assert acc >= acc_rtn - TOLERANCE_8BIT
    # the float model is untouched
    assert digits.accuracy(model, data.x_test, data.y_test) > 0.95


def test_gptq_moves_weights_beyond_rounding(work):
    """GPTQ with parameter scales changes which grid point weights land on (not just the scale)."""
    model, data = work
    calib = data.x_train[:256]
    q0 = quantize_model(model, "int4", "int8", calib_data=calib)
    q1 = quantize_model(model, "int4", "int8", calib_data=calib, config=PTQConfig(techniques="gptq"))
    for (n, l0), (_, l1) in zip(quant_layers(q0), quant_layers(q1)):
        w0, w1 = l0.quant_weight(), l1.quant_weight()
        torch.testing.assert_close(w0.scale, w1.scale, rtol=0, atol=0)  # same scales…
        moved = (w0.value != w1.value).float().mean().item()
        assert moved > 0.01, f"{n}: GPTQ moved only {moved:.2%} of the weights"  # …different codes


@pytest.mark.parametrize("wfmt,tech", [("e2m1", "none"), ("e3m2", "learned_round"), ("int3", "gpfq"), ("e2m3", "gptq")])
def test_weights_on_grid(work, wfmt, tech):
    model, data = work
    q = quantize_model(model, wfmt, "e4m3", calib_data=data.x_train[:128],
        config=PTQConfig(techniques=tech, learned_round_iters=30))
    for _, layer in quant_layers(q):
        qw = layer.quant_weight()
        w, s = qw.value.detach().numpy(), qw.scale.detach().numpy()
        # the golden model leaves them where they are: each is a grid value × its scale
        np.testing.assert_array_equal(quantize(w, wfmt, s), w)
    assert digits.accuracy(q, data.x_test, data.y_test) > 0.5


def test_per_tensor_and_unsigned_acts(work):
    model, data = work
    q = quantize_model(model, "int8", "int8", calib_data=data.x_train[:128],
        config=PTQConfig(per_channel=False, unsigned_acts=True))
    for _, layer in quant_layers(q):
        assert layer.quant_weight().scale.numel() == 1
    assert any(not m.act_quant.is_signed for m in q.modules() if hasattr(m, "act_quant") and m.act_quant.is_quant_enabled)
    assert digits.accuracy(q, data.x_test, data.y_test) > 0.95


def test_mlp_and_lstm_models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = torch.randn(200, 12)
    q = quantize_model(mlp, "int8", "int8", calib_data=x, config=PTQConfig(techniques="weq+bias_corr"))
    torch.testing.assert_close(q(x), mlp(x), atol=0.05, rtol=0.05)

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 16, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.head(y[:, -1])

    net = Seq().eval()
    xs = torch.randn(64, 5, 6)
    q = quantize_model(net, "int8", "int8", calib_data=xs, config=PTQConfig(techniques="gptq"))
    import brevitas.nn as qnn

    assert any(isinstance(m, qnn.QuantLSTM) for m in q.modules())
    err = (q(xs) - net(xs)).abs().max().item()
    assert err < 0.1, err


def test_errors(work):
    model, data = work
    with pytest.raises(TechniqueError, match="unknown PTQ technique 'adaround'"):
        quantize_model(model, "int8", "int8", calib_data=data.x_train[:8], config=PTQConfig(techniques="adaround"))
    with pytest.raises(CalibrationError, match="empty"):
        quantize_model(model, "int8", "int8", calib_data=data.x_train[:0])
    with pytest.raises(CalibrationError, match="empty"):
        quantize_model(model, "int8", "int8", calib_data=[])
    with pytest.raises(CalibrationError, match="required"):
        quantize_model(model, "int8", "int8", calib_data=None)
    with pytest.raises(FormatError, match="Valid formats"):
        quantize_model(model, "fp8", "int8", calib_data=data.x_train[:8])
    assert parse_techniques("gptq+weq") == ("weq", "gptq")
    assert parse_techniques("none") == ()


@pytest.mark.parametrize("arch,fmt,bound", [
    ("resnet", "int8", 0.05), ("lstm", "int8", 0.15), ("swa", "int8", 0.3), ("swa", "e4m3", 0.15),
    ("mixer", "int8", 0.05),
])
def test_map_students(arch, fmt, bound):
    """PaCKD students from models.zoo quantize and stay close to the float model: finite outputs,
    max error relative to the output range within ``bound``."""
    from models.zoo import build

    torch.manual_seed(0)
    m = build(arch, "student").eval()
    x = torch.rand(256, 10, 10)
    y = m(x[128:])
    q = quantize_model(m, fmt, fmt, calib_data=x[:128], config=PTQConfig(techniques="gptq"))
    with torch.no_grad():
        yq = q(x[128:])
    assert torch.isfinite(yq).all()
    rel = ((yq - y).abs().max() / y.abs().max()).item()
    # measured (held-out inputs): resnet 0.007, lstm 0.064 (0.27 before the LSTM io-range fix),
    # swa int8 0.18 / e4m3 0.05 (NaN before the boolean window mask), mixer 0.013
    assert rel < bound, rel
