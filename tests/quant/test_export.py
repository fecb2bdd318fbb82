"""quant.export: codes × scales reproduce Brevitas' own quant_weight() / activation values bit
for bit, for integer and minifloat formats, per-channel and per-tensor, Linear and Conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import brevitas.nn as qnn

from quant import digits
from quant.brevitas_map import weight_quant
from quant.export import ExportError, capture_inputs, export_activation, export_layer
from quant.formats import parse_format
from quant.ptq import PTQConfig, quant_layers, quantize_model
from quant.reference import fixed_point

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    import os

    os.environ.setdefault("PARETOFAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    data = digits.load_data(0)
    return digits.load_model(0, data), data


@pytest.mark.parametrize("wfmt,afmt,per_channel", [("int8", "int8", True), ("int4", "uint8", False),
                                                   ("e4m3", "e2m3", True), ("e2m1", "e3m2", False)])
def test_model_roundtrip(work, wfmt, afmt, per_channel):
    model, data = work
    q = quantize_model(model, wfmt, afmt if afmt != "uint8" else "int8", calib_data=data.x_train[:128],
        config=PTQConfig(per_channel=per_channel, unsigned_acts=afmt == "uint8"))
    layers = dict(quant_layers(q))
    inputs = capture_inputs(q, data.x_test[:16], layers)
    for name, layer in layers.items():
        ex = export_layer(layer, inputs[name], name=name)
        qw = layer.quant_weight()
        assert str(ex.wfmt) == wfmt and ex.w_codes.dtype == np.uint8
        assert ex.w_codes.shape == tuple(layer.weight.shape)
        np.testing.assert_array_equal(ex.weight_values(), qw.value.detach().numpy())
        if per_channel:
            np.testing.assert_array_equal(ex.w_scale, qw.scale.detach().numpy().reshape(-1))
        else:
            assert len(np.unique(ex.w_scale)) == 1
        # integer formats: Brevitas' own int() equals our two's complement codes' values
        if wfmt.startswith("int"):
            ints, k = fixed_point(ex.w_codes, ex.wfmt)
            np.testing.assert_array_equal(ints, qw.int().detach().numpy())
        act = export_activation(inputs[name])
        np.testing.assert_array_equal(act.values(), inputs[name].value.detach().numpy())
        assert ex.a_scale == float(inputs[name].scale)
        assert ex.afmt == act.fmt


def test_activation_format_from_tensor(work):
    model, data = work
    q = quantize_model(model, "int8", "e3m2", calib_data=data.x_train[:64])
    layers = dict(quant_layers(q))
    inputs = capture_inputs(q, data.x_test[:4], layers)
    assert {str(export_activation(t).fmt) for t in inputs.values()} == {"e3m2"}


def test_errors():
    plain = torch.nn.Linear(4, 4)
    with pytest.raises(ExportError, match="only QuantLinear"):
        export_layer(plain)
    unq = qnn.QuantLinear(4, 4, weight_quant=None)
    with pytest.raises(ValueError, match="not quantized"):
        export_layer(unq)
    with pytest.raises(ExportError, match="QuantTensor"):
        export_activation(torch.zeros(3))


def test_foreign_grid_is_refused():
    """A weight that is not on the declared grid (tampered after quantization) is refused
    instead of exported with wrong codes."""
    layer = qnn.QuantLinear(8, 2, bias=False, weight_quant=weight_quant("int4", scaling="const", scale=0.5))
    ex = export_layer(layer)  # fine
    assert ex.wfmt == parse_format("int4")
    layer.weight_quant.quant_injector = layer.weight_quant.quant_injector.let(paretofab_format="int2")
    with pytest.raises(ExportError, match="not a int2 value"):
        torch.manual_seed(0)
        with torch.no_grad():
            layer.weight.copy_(torch.arange(16.0).reshape(2, 8) / 4)
        export_layer(layer)
