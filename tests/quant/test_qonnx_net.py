"""quant.qonnx_net (issue 16, the Mixer student): graphs whose float tensors between quantizers are
exact images of quantized ones (residual adds of accumulators, LayerNorm, GELU, transposes, means)
are executed in exact integers, checked against QONNX's own execution of the file — exactly with
power-of-two scales and no LayerNorm, within one code per quantizer (given QONNX's own inputs) for
the PaCKD Mixer student — and the LayerNorm normalizer against exact integer square roots."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qonnx", reason="qonnx not installed: pip install -e '.[qonnx]'")

import brevitas.nn as qnn  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint  # noqa: E402

from paretofab.accel import qonnx_outputs  # noqa: E402
from paretofab.cli import main  # noqa: E402
from paretofab.qonnx_export import export_student_qonnx  # noqa: E402
from quant.qonnx_import import QonnxError, QuantSpec  # noqa: E402
from quant.qonnx_net import Coded, _gelu, _run, execute_net, gelu_table, read_net  # noqa: E402
from quant.reference import NORM_FRAC_BITS, NORM_RSQRT_BITS, apply_breakpoints, element_ints, normalize  # noqa: E402


def test_normalize_within_its_bound_of_exact_square_roots():
    """``normalize`` against ``t · 2^Z / sqrt(V)`` to 30 more bits by exact integer square roots
    (``math.isqrt``): off by at most the documented relative error ``2^-(R-1)`` plus rounding."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        d, bits = int(rng.integers(2, 70)), int(rng.integers(1, 50))
        row = [int(v) for v in rng.integers(-2**bits, 2**bits, size=d)]
        extra = int(rng.integers(0, 2**int(rng.integers(1, 40))))
        s1 = sum(row)
        v = d * sum(k * k for k in row) - s1 * s1 + extra
        got = normalize(row, extra)
        for k, g in zip(row, got):
            t = (d * k - s1) << (NORM_FRAC_BITS + 30)
            ref = math.copysign(math.isqrt(t * t // v), t) / 2.0**30 if v else 0.0
            assert abs(g - ref) <= abs(ref) * 2.0**-(NORM_RSQRT_BITS - 1) + 0.5 + 2**-30, (d, bits, k)
    assert normalize([5, 5, 5], 0) == [0, 0, 0]


def test_gelu_is_torchs_exact_gelu():
    x = np.linspace(-8, 8, 4001)
    ref = torch.nn.functional.gelu(torch.tensor(x, dtype=torch.float64)).numpy()
    assert np.max(np.abs(_gelu(x) - ref)) < 1e-15


@pytest.mark.parametrize("fmt, unit, scale, zp", [("int8", 1.7e-3, 0.02, 0), ("uint8", 9e-4, 0.01, 3),
                                                  ("e4m3", 2.1e-3, 0.004, 0), ("int4", 0.011, 0.25, 0)])
def test_gelu_table_equals_torch_gelu_then_quantize(fmt, unit, scale, zp):
    """The threshold table the model (and the RTL) uses equals torch's GELU (float64) of every
    integer's value, quantized, over and beyond the table's range."""
    spec = QuantSpec(fmt, np.float64(scale), zp)
    breaks, values = gelu_table(unit, spec)
    xs = np.arange(-int(45 / unit), int(60 / unit))
    ref = spec.codes(torch.nn.functional.gelu(torch.tensor(xs * unit, dtype=torch.float64)).numpy())
    assert np.array_equal(apply_breakpoints(xs, breaks, values), ref)


class TokenNet(torch.nn.Module):
    """Per-token linears, a residual add of two unquantized accumulators, a transpose, a mean over
    tokens: every op of the general front end but LayerNorm / GELU, with power-of-two scales."""

    def __init__(self) -> None:
        super().__init__()
        kw = dict(weight_quant=Int8WeightPerTensorFixedPoint, bias=False)
        self.q0 = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.embed = qnn.QuantLinear(6, 8, **kw)
        self.r = qnn.QuantReLU(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.mix = qnn.QuantLinear(8, 8, **kw)
        self.qt = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.tok = qnn.QuantLinear(4, 4, **kw)
        self.qm = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.head = qnn.QuantLinear(8, 3, **kw)

    def forward(self, x):  # (B, 4 tokens, 6)
        h = self.embed(self.q0(x))
        h = h + self.mix(self.r(h))
        y = self.tok(self.qt(h.transpose(1, 2))).relu()  # (B, 8, 4)
        return self.head(self.qm(y.mean(dim=2)))


def _token_net(tmp_path):
    torch.manual_seed(0)
    m = TokenNet()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(32, 4, 6))
    m.eval()
    path = tmp_path / "tokens.onnx"
    export_qonnx(m, torch.randn(1, 4, 6), export_path=str(path))
    return path


def test_power_of_two_scales_equal_qonnx_exactly(tmp_path):
    path = _token_net(tmp_path)
    net = read_net(path)
    assert {op.kind for op in net.ops} >= {"MatMul", "Add", "Transpose", "Relu", "ReduceMean", "Quant"}
    x = np.random.default_rng(1).normal(size=(40, 4, 6)).astype(np.float32)
    out, _ = execute_net(net, x)
    assert np.array_equal(out, qonnx_outputs(path, x).astype(np.float64))


def _order(elements: np.ndarray, fmt: str) -> np.ndarray:
    """Elements by value order, one step per representable value (a minifloat's sign-magnitude
    codes as signed integers)."""
    if fmt.startswith("e"):
        return np.where(elements & 0x80, -(elements & 0x7F), elements & 0x7F)
    return np.asarray(elements)


def _local_mismatches(path, net, x) -> dict[str, tuple[int, float]]:
    """Per quantizer: the largest code distance and the mismatch rate of our codes, computed from
    QONNX's own codes of the quantizers before it, against QONNX's codes."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    mw = ModelWrapper(str(path))
    outs = [execute_onnx(mw, {mw.graph.input[0].name: row[None]}, return_full_exec_context=True) for row in x]
    env, found = {net.input_name: x.astype(np.float64)}, {}
    for op in net.ops:
        env[op.output] = _run(op, [env[i] for i in op.inputs])
        if op.kind == "Quant":
            ref = op.spec.codes(np.concatenate([o[op.output] for o in outs]).astype(np.float64))
            d = np.abs(_order(ref, op.spec.fmt) - _order(env[op.output].elements, op.spec.fmt))
            found[op.name] = (int(d.max()), float(np.mean(d > 0)))
            env[op.output] = Coded(ref, op.spec)
    return found


@pytest.mark.parametrize("fmt", ["int8", "e4m3"])
def test_mixer_student_within_one_code_of_qonnx(tmp_path, fmt):
    """The PaCKD Mixer student (untrained weights, `paretofab export --model zoo:mixer`): every
    quantizer within one code of QONNX's (float32 inside QONNX, the normalizer's rounding here),
    mismatches rare; end to end, the predicted class agrees."""
    path, _ = export_student_qonnx("zoo:mixer", fmt, fmt, tmp_path / "mixer.onnx")
    net = read_net(path)
    assert sum(op.kind == "LayerNormalization" for op in net.ops) == 3 and len(net.layers) == 6
    x = np.random.default_rng(2).random((48, 10, 10)).astype(np.float32)
    found = _local_mismatches(path, net, x)
    assert len(found) == 6
    assert all(worst <= 1 and rate < 0.02 for worst, rate in found.values()), found
    out, _ = execute_net(net, x)
    ref = qonnx_outputs(path, x)
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.95
    assert np.max(np.abs(out - ref)) < 0.05 * np.max(np.abs(ref))


def test_cli_runs_the_model_and_plans_its_accelerator(tmp_path, capsys):
    path, _ = export_student_qonnx("zoo:mixer", "int8", "int8", tmp_path / "mixer.onnx")
    np.save(tmp_path / "x.npy", np.random.default_rng(3).random((6, 10, 10)).astype(np.float32))
    assert main(["accel", str(path), "--inputs", str(tmp_path / "x.npy"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "LayerNormalization_0" in out and "general front end" in out and "QONNX execution: max |diff|" in out
    assert "row (layernorm)" in out and "row (skip+layernorm+mean)" in out


class GeluOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.l1 = qnn.QuantLinear(6, 4, weight_quant=Int8WeightPerTensorFixedPoint, bias=False)
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x):
        return torch.nn.functional.gelu(self.norm(self.l1(self.q0(x))))


def test_unquantized_gelu_is_refused(tmp_path, capsys):
    m = GeluOut().eval()
    path = tmp_path / "gelu.onnx"
    export_qonnx(m, torch.randn(1, 6), export_path=str(path))
    with pytest.raises(QonnxError, match="Gelu"):
        read_net(path)
    assert main(["accel", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_elements_order_helper_is_by_value():
    codes = np.arange(256)
    vals = element_ints(codes, "e4m3")
    order = _order(codes, "e4m3")
    keep = vals != 0
    assert np.array_equal(np.argsort(order[keep], kind="stable"), np.argsort(vals[keep], kind="stable"))
