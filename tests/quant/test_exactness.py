"""The exactness thread, end to end: a quantized Linear layer of a real student (the digits CNN and
a PaCKD ResNet MAP student) -> exported codes ->
the simulated dense engine (hw.dot, Amaranth pysim) gives exactly the integers of the numpy
reference, and those integers, dequantized, equal Brevitas' float output within float32 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw.dot import DotConfig, output_exponent, pack_inputs, reference, unpack_outputs
from hw.sim import simulate
from paretofab.mapping import dot_workload
from quant import digits
from quant.export import capture_inputs, export_activation, export_layer
from quant.ptq import PTQConfig, quant_layers, quantize_model
from quant.reference import fixed_point

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits_work(tmp_path_factory):
    import os

    os.environ.setdefault("PARETOFAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    data = digits.load_data(0)
    return digits.load_model(0, data), data.x_train[:256], data.x_test


@pytest.fixture(scope="module")
def packd_work():
    """A PaCKD ResNet student (models.zoo) trained one epoch on a generated pr trace."""
    from tests.students import trained_student

    model, sp = trained_student(rows=2000, epochs=1)
    return model, torch.as_tensor(sp["x_train"][:256]), torch.as_tensor(sp["x_test"])


@pytest.fixture
def work(request):
    return request.getfixturevalue(f"{request.param}_work")


@pytest.mark.parametrize("work,wfmt,afmt,layer_name,n", [
    ("digits", "int8", "int8", "fc2", 8),
    ("digits", "int8", "int8", "fc1", 1),
    ("digits", "e4m3", "e2m3", "fc2", 8),
    ("digits", "e4m3", "e2m3", "fc1", 1),
    ("packd", "int8", "int8", "head", 4),
    ("packd", "e4m3", "e2m3", "head", 4),
], indirect=["work"])
def test_student_layer_on_dense_engine(work, wfmt, afmt, layer_name, n):
    model, calib, x_test = work
    q = quantize_model(model, wfmt, afmt, calib_data=calib, config=PTQConfig(techniques="bias_corr"))
    layers = dict(quant_layers(q))
    layer = layers[layer_name]
    x = x_test[:n]
    inp = capture_inputs(q, x, {layer_name: layer})[layer_name]
    ex = export_layer(layer, inp, name=layer_name)
    act = export_activation(inp)
    assert (str(ex.wfmt), str(ex.afmt)) == (wfmt, afmt)

    wl, out_ch = dot_workload(ex, act)
    k = wl.k
    config = DotConfig(lanes=16, wfmt=ex.wfmt, afmt=ex.afmt, k_max=k, pipeline=2)
    sim = simulate(config, pack_inputs(config, wl), wl.vectors, backend="pysim")
    got = unpack_outputs(config, sim.outputs)

    # 1. the RTL equals the engine's numpy reference bit for bit …
    ref = reference(config, wl)
    np.testing.assert_array_equal(got, ref)
    # … and an independent integer matmul of the exported codes
    wi, kw = fixed_point(ex.w_codes, ex.wfmt)
    ai, ka = fixed_point(act.codes.reshape(n, -1), ex.afmt)
    e = output_exponent(config)
    mine = (ai.astype(object) @ wi.astype(object).T).reshape(-1) * (2 ** (kw + ka - e))
    np.testing.assert_array_equal(got.astype(object), mine)
    assert np.count_nonzero(got) > len(got) // 2

    # 2. dequantized, it equals Brevitas' float32 output within float32 summation rounding
    with torch.no_grad():
        brevitas_out = layer(inp).detach().numpy().astype(np.float64).reshape(-1)
    ours = ex.dequantize(got, e, out_ch)
    w = ex.weight_values().astype(np.float64)
    a = act.values().reshape(n, -1).astype(np.float64)
    mag = (np.abs(a) @ np.abs(w).T).reshape(-1) + np.abs(ex.bias[out_ch])
    tol = (k + 2) * 2.0**-24 * mag
    err = np.abs(ours - brevitas_out)
    assert (err <= tol).all(), f"max error {err.max():.3g}, tolerance {tol[np.argmax(err)]:.3g}"
