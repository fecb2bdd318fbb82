"""``paretofab accel`` / quant.qonnx_import (issue 16, item 1 and the numpy side of item 4): a
Brevitas model exported with ``export_qonnx`` is read as integer layers whose codes reproduce
Brevitas' own quantized weights, and its exact integer execution equals QONNX's own execution of
the file — exactly with power-of-two scales, within one code of every hidden tensor with float
scales. Unsupported nodes and bad files: one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qonnx", reason="qonnx not installed: pip install -e '.[qonnx]'")

import brevitas.nn as qnn  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8WeightPerTensorFixedPoint,  # noqa: E402
                            Int8WeightPerTensorFloat, Int32Bias, Uint8ActPerTensorFloat)

from paretofab.accel import qonnx_outputs  # noqa: E402
from paretofab.cli import main  # noqa: E402
from quant.qonnx_import import QonnxError, execute_int, read_qonnx  # noqa: E402

QUANTS = {"fixed": (Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Int8ActPerTensorFixedPoint),
          "float": (Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat)}


class MLP(torch.nn.Module):
    def __init__(self, wq, aq, rq, tail: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True)
        self.l1 = qnn.QuantLinear(64, 24, bias=True, weight_quant=wq, bias_quant=Int32Bias, return_quant_tensor=True)
        self.r1 = qnn.QuantReLU(act_quant=rq, return_quant_tensor=True)
        self.l2 = qnn.QuantLinear(24, 10, bias=True, weight_quant=wq, bias_quant=Int32Bias)
        self.tail = tail

    def forward(self, x):
        y = self.l2(self.r1(self.l1(self.q0(x))))
        return self.tail(y) if self.tail is not None else y


def _export(tmp, name: str, tail=None):
    torch.manual_seed(0)
    m = MLP(*QUANTS["fixed" if name == "sigmoid" else name], tail=tail)
    with torch.no_grad():  # calibrate the activation scales in training mode
        for _ in range(4):
            m(torch.randn(64, 64))
    m.eval()
    path = tmp / f"{name}.onnx"
    export_qonnx(m, torch.randn(1, 64), export_path=str(path))
    return m, path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qonnx")
    return {name: _export(tmp, name) for name in QUANTS}


class CNN(torch.nn.Module):
    """conv3x3(6)-ReLU-conv3x3 stride 2 (6)-ReLU-maxpool2-flatten-linear(10) on 1×8×8."""

    def __init__(self, wq, aq, requant: bool = False) -> None:
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True)
        self.requant = qnn.QuantIdentity(act_quant=aq, bit_width=5, return_quant_tensor=True) if requant else None
        self.c1 = qnn.QuantConv2d(1, 6, 3, padding=1, weight_quant=wq, bias_quant=Int32Bias, return_quant_tensor=True)
        self.r1 = qnn.QuantReLU(act_quant=aq, return_quant_tensor=True)
        self.c2 = qnn.QuantConv2d(6, 6, 3, stride=2, padding=1, weight_quant=wq, bias_quant=Int32Bias,
                                  return_quant_tensor=True)
        self.r2 = qnn.QuantReLU(act_quant=aq, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(6 * 2 * 2, 10, bias=True, weight_quant=wq, bias_quant=Int32Bias)

    def forward(self, x):
        y = torch.flatten(self.pool(self.r2(self.c2(self.r1(self.c1(self.q0(x)))))), 1)
        return self.fc(self.requant(y) if self.requant is not None else y)


def _cnn(folder, requant: bool = False, seed: int = 1, prune: tuple[int, int] | None = None):
    """The FixedPoint CNN (every layer pruned N:M with ``prune``), calibrated and exported to
    ``folder/cnn.onnx``: ``(model, path)``."""
    torch.manual_seed(seed)
    m = CNN(*QUANTS["fixed"][:2], requant=requant)
    with torch.no_grad():
        if prune:
            for layer in (m.c1, m.c2, m.fc):
                _prune_nm(layer.weight, *prune)
        for _ in range(3):
            m(torch.rand(32, 1, 8, 8) * (1 + 3 * torch.rand(1)))  # a re-quantizer sees another range
    m.eval()
    path = folder / "cnn.onnx"
    export_qonnx(m, torch.rand(1, 1, 8, 8), export_path=str(path))
    return m, path


def test_cnn_equals_qonnx_execution_exactly(tmp_path):
    """Convolutions (padding, stride 2), max pooling of codes and a flatten, end to end."""
    m, path = _cnn(tmp_path)
    g = read_qonnx(path)
    assert [op.kind for op in g.compute] == ["conv", "conv", "linear"] and g.compute[1].stride == (2, 2)
    x = np.random.default_rng(3).random((40, 1, 8, 8)).astype(np.float32)
    out, _ = execute_int(g, x)
    assert np.array_equal(out, qonnx_outputs(path, x.reshape(40, -1)).astype(np.float64))
    with torch.no_grad():  # and Brevitas itself
        assert np.array_equal(out.astype(np.float32), m(torch.from_numpy(x)).numpy())


def _x(n: int = 64) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n, 64)).astype(np.float32)


def test_weight_codes_reproduce_brevitas(exported):
    model, path = exported["float"]
    g = read_qonnx(path)
    for layer, mod in zip(g.layers, (model.l1, model.l2)):
        want = mod.quant_weight().value.detach().numpy()  # float32: code · scale, rounded once
        np.testing.assert_array_equal((layer.weight * layer.weight_quant.scale).astype(np.float32), want)


def test_power_of_two_scales_equal_qonnx_execution_exactly(exported):
    _, path = exported["fixed"]
    g = read_qonnx(path)
    out, _ = execute_int(g, _x())
    ref = qonnx_outputs(path, _x())
    assert np.array_equal(out, ref.astype(np.float64))


def test_float_scales_within_one_code_of_qonnx(exported):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    _, path = exported["float"]
    g = read_qonnx(path)
    x = _x(200)
    _, codes = execute_int(g, x)
    mw = ModelWrapper(str(path))
    relu = next(n for n in mw.graph.node if n.op_type == "Relu")
    quant = next(n for n in mw.graph.node if n.op_type == "Quant" and n.input[0] == relu.output[0])
    hidden = np.concatenate([execute_onnx(mw, {mw.graph.input[0].name: row[None]}, return_full_exec_context=True)
                             [quant.output[0]] for row in x])
    ref = np.round(hidden / float(g.layers[0].out_quant.scale)).astype(np.int64)
    diff = np.abs(ref - codes[1])
    assert diff.max() <= 1 and np.mean(diff != 0) < 0.01  # float32 rounding inside QONNX's own execution


def test_cli_prints_layers_and_checks(exported, tmp_path, capsys):
    _, path = exported["fixed"]
    np.save(tmp_path / "x.npy", _x(5))
    assert main(["accel", str(path), "--inputs", str(tmp_path / "x.npy"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "equal, exactly" in out and "int8n" in out and "2 layers with weights" in out


def test_unsupported_node_is_named(tmp_path, capsys):
    _, path = _export(tmp_path, "sigmoid", tail=torch.nn.Sigmoid())
    with pytest.raises(QonnxError, match=r"\(Sigmoid\): not supported"):
        read_qonnx(path)
    assert main(["accel", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Sigmoid" in err and len(err.strip().splitlines()) == 1


def test_bad_files_exit_2(exported, tmp_path, capsys):
    _, path = exported["fixed"]
    (tmp_path / "junk.onnx").write_text("not onnx")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    for argv in (["accel", str(tmp_path / "junk.onnx")], ["accel", str(tmp_path / "missing.onnx")],
                 ["accel", str(path), "--inputs", str(tmp_path / "wrong.npy")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# ---- the whole-network accelerator (issue 16, items 3-4) ----------------------------------------

from hw.dataflow.plan import run_plan  # noqa: E402
from hw.dataflow.sim import simulate_plan  # noqa: E402
from paretofab.netplan import auto_lanes, plan_network  # noqa: E402
from quant.qonnx_import import dequantize, output_quant  # noqa: E402
from quant.reference import decode, values  # noqa: E402
from tests.hw.conftest import SIM_BACKENDS  # noqa: E402


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    return _cnn(tmp_path_factory.mktemp("cnn"))[1]


def test_requantized_layer_input_folds_into_the_layer_before(tmp_path):
    """A QuantIdentity on a pooled tensor (as Brevitas PTQ puts before a Linear) is a QRequant;
    folded into the convolution before the pool, the RTL still equals QONNX execution exactly."""
    from quant.qonnx_import import QRequant

    _, path = _cnn(tmp_path, requant=True)
    g = read_qonnx(path)
    assert any(isinstance(op, QRequant) for op in g.layers)
    plan = plan_network(g, lanes=[3, 9, 6], requant="multiplier")
    assert plan.stages[1].rescale is not None and plan.stages[2].in_fmt == plan.stages[1].out_fmt
    x = np.random.default_rng(8).random((3, 1, 8, 8)).astype(np.float32) * 3
    run = simulate_plan(plan, g.in_quant.codes(x).reshape(3, -1), "pysim")
    assert np.array_equal(dequantize(g, run.outputs), qonnx_outputs(path, x.reshape(3, -1)).astype(np.float64))


def test_threshold_requantizers_equal_qonnx_execution_exactly(tmp_path, capsys):
    """`--requant thresholds`: every requantizer a threshold table (the rescale of a re-quantized
    input folded into the table before it); the RTL still equals QONNX's execution bit for bit."""
    from hw.activation import ActivationSpec

    _, path = _cnn(tmp_path, requant=True)
    g = read_qonnx(path)
    plan = plan_network(g, lanes=[3, 9, 6], requant="thresholds")
    assert all(isinstance(st.requant, ActivationSpec) and st.rescale is None for st in plan.stages if st.requant)
    x = np.random.default_rng(9).random((3, 1, 8, 8)).astype(np.float32) * 3
    run = simulate_plan(plan, g.in_quant.codes(x).reshape(3, -1), "pysim")
    assert np.array_equal(dequantize(g, run.outputs), qonnx_outputs(path, x.reshape(3, -1)).astype(np.float64))
    np.save(tmp_path / "x.npy", x)
    assert main(["accel", str(path), "--requant", "thresholds", "--inputs", str(tmp_path / "x.npy"), "--sim",
                 "--check"]) == 0
    out = capsys.readouterr().out
    assert "thresholds" in out and "equal, exactly" in out and "RTL equals" in out


@pytest.mark.parametrize("backend", SIM_BACKENDS)
def test_accelerator_cnn_equals_qonnx_execution_exactly(cnn_file, backend):
    """Power-of-two scales: the RTL's dequantized outputs equal QONNX's execution bit for bit, its
    hidden codes equal the exact integer model's, its cycles the closed form."""
    g = read_qonnx(cnn_file)
    plan = plan_network(g, lanes=[4, 14, 5])
    x = np.random.default_rng(5).random((3, 1, 8, 8)).astype(np.float32)
    xi = g.in_quant.codes(x).reshape(3, -1)
    run = simulate_plan(plan, xi, backend)
    out, codes = execute_int(g, x)
    if backend == "pysim":
        assert np.array_equal(run.stages[0], codes[1].reshape(3, -1))
        assert np.array_equal(run.stages[1], codes[2].reshape(3, -1))
    assert np.array_equal(dequantize(g, run.outputs), qonnx_outputs(cnn_file, x.reshape(3, -1)).astype(np.float64))
    assert run.cycles == run.schedule.cycles


def test_accelerator_float_scales_equal_integer_model(exported):
    """Float scales: the RTL equals the exact integer model (fixed-point requantization), which is
    within one code of QONNX's float32 execution (test_float_scales_within_one_code_of_qonnx)."""
    _, path = exported["float"]
    g = read_qonnx(path)
    plan = plan_network(g, lanes=8)
    x = _x(6)
    run = simulate_plan(plan, g.in_quant.codes(x), "pysim")
    out, codes = execute_int(g, x)
    assert np.array_equal(run.stages[0], codes[1]) and np.array_equal(dequantize(g, run.outputs), out)
    assert all(np.array_equal(a, b) for a, b in zip(run.stages, run_plan(plan, g.in_quant.codes(x))))


def test_auto_lanes_balances_within_budget():
    """Brute force over every lane split of three layers: the greedy never exceeds the budget and
    reaches the best bottleneck a budget-respecting split can."""
    import itertools

    work = [(64, 9), (16, 54), (10, 24)]
    cyc = lambda lanes: max(n * -(-k // ln) for (n, k), ln in zip(work, lanes))  # noqa: E731
    for budget in (3, 8, 20, 40, 87):
        got = auto_lanes(work, budget)
        best = min(cyc(c) for c in itertools.product(*(range(1, k + 1) for _, k in work)) if sum(c) <= budget)
        assert sum(got) <= budget and cyc(got) == best, (budget, got)


def test_cli_sim_json_and_verilog(cnn_file, tmp_path, capsys):
    import json

    np.save(tmp_path / "x.npy", np.random.default_rng(2).random((2, 1, 8, 8)).astype(np.float32))
    assert main(["accel", str(cnn_file), "--inputs", str(tmp_path / "x.npy"), "--sim", "--check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["qonnx_equal"] and doc["rtl_equals_model"] and doc["cycles"] == doc["closed_form_cycles"]
    assert np.asarray(doc["outputs"]).shape == (2, 10) and len(doc["stages"]) == 4
    assert main(["accel", str(cnn_file), "-o", str(tmp_path / "rtl"), "--axis"]) == 0
    names = sorted(p.name for p in (tmp_path / "rtl").iterdir())
    assert names == ["cnn_axis.json", "cnn_axis.v", "cnn_axis.vlt"]
    v = (tmp_path / "rtl" / "cnn_axis.v").read_text()
    assert "module cnn_axis" in v and "m_axis_tlast" in v and "s_axis_tready" in v
    from hw.portable import lint

    assert lint(tmp_path / "rtl" / "cnn_axis.v", tmp_path / "rtl" / "cnn_axis.vlt") == []  # verilator -Wall


def test_cli_bad_accelerator_options_exit_2(cnn_file, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 64), np.float32))
    (tmp_path / "afile").write_text("")
    for argv in (["accel", str(cnn_file), "--sim"], ["accel", str(cnn_file), "--lanes", "0"],
                 ["accel", str(cnn_file), "--lanes", "1,2"], ["accel", str(cnn_file), "--lanes", "x"],
                 ["accel", str(cnn_file), "-o", str(tmp_path / "afile")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def _qonnx_activations(path, x: np.ndarray) -> list[np.ndarray]:
    """QONNX's own execution of every activation ``Quant`` / ``FloatQuant`` (graph order), divided
    by its scale: integer codes, or minifloat values."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    mw = ModelWrapper(str(path))
    quants = [n for n in mw.graph.node if n.op_type in ("Quant", "FloatQuant") and mw.get_initializer(n.input[0]) is None]
    name = mw.graph.input[0].name
    outs = [execute_onnx(mw, {name: row[None]}, return_full_exec_context=True) for row in x]
    return [np.concatenate([o[q.output[0]] for o in outs]) / float(mw.get_initializer(q.input[1])) for q in quants]


def _qonnx_activation_codes(path, x: np.ndarray) -> list[np.ndarray]:
    """QONNX's own execution of every activation ``Quant`` (graph order), as integer codes."""
    return [np.round(a) for a in _qonnx_activations(path, x)]


def test_export_digits_cnn_through_accel(tmp_path, capsys):
    """`paretofab export --qonnx` of the PTQ'd digits CNN (float scales, float biases, a
    re-quantized Linear input): the accelerator's RTL equals the exact integer model; that model's
    hidden codes are within one code of QONNX's execution (the mismatch rate is small) and its
    predictions agree with QONNX's."""
    path = tmp_path / "digits.onnx"
    assert main(["export", "--qonnx", str(path), "--model", "digits", "--wfmt", "int4", "--afmt", "int4",
                 "--unsigned-acts", "--save-inputs", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")[:40]
    g = read_qonnx(path)
    out, codes = execute_int(g, x)
    ref_codes = _qonnx_activation_codes(path, x)
    assert len(ref_codes) == len(codes)
    for mine, theirs in zip(codes, ref_codes):
        diff = np.abs(mine.reshape(len(x), -1) - theirs.reshape(len(x), -1))
        assert diff.max() <= 1 and np.mean(diff) < 0.05  # measured 0.6-2.1 % (float bias, float32 inside QONNX)
    ref = qonnx_outputs(path, x.reshape(len(x), -1))
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.95
    plan = plan_network(g, max_lanes=16)
    run = simulate_plan(plan, g.in_quant.codes(x[:1]).reshape(1, -1), "pysim")
    assert all(np.array_equal(a, b) for a, b in zip(run.stages, run_plan(plan, g.in_quant.codes(x[:1]).reshape(1, -1))))
    assert np.array_equal(dequantize(g, run.outputs), out[:1]) and run.cycles == run.schedule.cycles


@pytest.mark.slow
def test_export_digits_cnn_int8_verilator_equals_integer_model(tmp_path):
    """The int8 digits CNN, 64 inferences through Verilator: equal to the exact integer model."""
    path = tmp_path / "digits.onnx"
    assert main(["export", "--qonnx", str(path), "--save-inputs", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")[:64]
    g = read_qonnx(path)
    out, _ = execute_int(g, x)
    run = simulate_plan(plan_network(g), g.in_quant.codes(x).reshape(64, -1), "verilator")
    assert np.array_equal(dequantize(g, run.outputs), out) and run.cycles == run.schedule.cycles


def _grid_rank(v: np.ndarray, fmt: str) -> np.ndarray:
    """Position of the grid value nearest each ``v`` on ``fmt``'s sorted finite values
    (neighbouring codes: ranks one apart; ±0 share a rank)."""
    grid = np.unique(np.abs(values(fmt))[np.isfinite(values(fmt))])
    grid = np.concatenate([-grid[:0:-1], grid])
    return np.searchsorted((grid[1:] + grid[:-1]) / 2, np.asarray(v, dtype=np.float64))


@pytest.fixture(scope="module")
def digits_e4m3(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mf")
    path = tmp / "digits_e4m3.onnx"
    assert main(["export", "--qonnx", str(path), "--wfmt", "e4m3", "--afmt", "e4m3", "--save-inputs",
                 str(tmp / "x.npy")]) == 0
    return path, np.load(tmp / "x.npy")


def test_export_digits_cnn_minifloat_through_accel(digits_e4m3):
    """The digits CNN PTQ'd to e4m3 (Brevitas FloatQuant nodes, float scales): every hidden tensor
    of the exact integer model lies within one grid step of QONNX's own execution (almost always
    on it), its outputs within float32 rounding of QONNX's; the accelerator's RTL equals the plan's
    numpy model on every stage and the integer model, in the closed-form cycles."""
    path, x = digits_e4m3
    x = x[:40]
    g = read_qonnx(path)
    assert g.in_quant.fmt == "e4m3" and all(op.weight_quant.fmt == "e4m3" for op in g.compute)
    out, codes = execute_int(g, x)
    specs = _activation_specs(g)
    ref = _qonnx_activations(path, x)
    assert len(ref) == len(codes) == len(specs)
    for mine, theirs, spec in zip(codes, ref, specs):
        diff = np.abs(_grid_rank(decode(mine, spec.fmt), spec.fmt) - _grid_rank(theirs, spec.fmt).reshape(mine.shape))
        assert diff.max() <= 1 and np.mean(diff) < 0.01, (spec, np.mean(diff))  # measured: 0 of 61,440 off
    qref = qonnx_outputs(path, x.reshape(len(x), -1))
    assert np.max(np.abs(out - qref)) < 1e-4 * np.max(np.abs(qref)) and np.all(out.argmax(1) == qref.argmax(1))
    plan = plan_network(g, max_lanes=16)
    xi = g.in_quant.codes(x[:1]).reshape(1, -1)
    run = simulate_plan(plan, xi, "pysim")
    assert all(np.array_equal(a, b) for a, b in zip(run.stages, run_plan(plan, xi)))
    assert np.array_equal(dequantize(g, run.outputs), out[:1]) and run.cycles == run.schedule.cycles


@pytest.mark.slow
def test_export_digits_cnn_minifloat_verilator_equals_integer_model(digits_e4m3):
    """The e4m3 digits CNN, 64 inferences through Verilator: equal to the exact integer model."""
    path, x = digits_e4m3
    g = read_qonnx(path)
    out, _ = execute_int(g, x[:64])
    run = simulate_plan(plan_network(g), g.in_quant.codes(x[:64]).reshape(64, -1), "verilator")
    assert np.array_equal(dequantize(g, run.outputs), out) and run.cycles == run.schedule.cycles


def test_minifloat_quantizers_the_accelerator_cannot_build_are_refused_in_one_line(digits_e4m3, tmp_path, capsys):
    """A FloatQuant that does not saturate, or whose maximum is no variant of its format: one line
    naming the node, exit 2."""
    import onnx

    for attr, value, expect in (("saturation", 0, "saturating"), (None, 100.0, "max value")):
        model = onnx.load(str(digits_e4m3[0]))
        node = next(n for n in model.graph.node if n.op_type == "FloatQuant")
        if attr:
            next(a for a in node.attribute if a.name == attr).i = value
        else:
            init = next(i for i in model.graph.initializer if i.name == node.input[5])
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(value, dtype=np.float32), init.name))
        bad = tmp_path / f"bad_{expect[:3]}.onnx"
        onnx.save(model, str(bad))
        capsys.readouterr()
        assert main(["accel", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "FloatQuant" in err and expect in err and len(err.strip().splitlines()) == 1, err


def _prune_nm(weight: torch.Tensor, n: int, m: int) -> None:
    """Zero all but the ``n`` largest magnitudes of every group of ``m`` along each output row
    (flattened C, kh, kw order, zero-padded to whole groups), in place."""
    w = weight.data.reshape(weight.shape[0], -1)
    k = w.shape[1]
    g = torch.nn.functional.pad(w, (0, -k % m)).reshape(w.shape[0], -1, m)
    keep = torch.zeros_like(g, dtype=torch.bool).scatter_(2, g.abs().topk(n, dim=2).indices, True)
    weight.data.copy_((g * keep).reshape(w.shape[0], -1)[:, :k].reshape(weight.shape))


def test_two_of_four_pruned_cnn_runs_on_sparse_stages_and_equals_qonnx(tmp_path, capsys):
    """A CNN whose every layer is pruned 2:4 (as CRISP prunes): with --nm 2:4 each layer becomes
    an N:M stage (compressed weight ROM, index mux, half the multipliers per window element) and
    the RTL still equals QONNX execution exactly; the CLI says so."""
    import json

    _, path = _cnn(tmp_path, seed=3, prune=(2, 4))
    g = read_qonnx(path)
    plan = plan_network(g, lanes=[8, 16, 8], nm=(2, 4))
    assert [s.nm for s in plan.stages if s.kind == "mac"] == [(2, 4)] * 3
    assert [s.lanes for s in plan.stages if s.kind == "mac"] == [4, 8, 4]
    x = np.random.default_rng(4).random((3, 1, 8, 8)).astype(np.float32)
    run = simulate_plan(plan, g.in_quant.codes(x).reshape(3, -1), "pysim")
    assert np.array_equal(dequantize(g, run.outputs), qonnx_outputs(path, x.reshape(3, -1)).astype(np.float64))
    assert run.cycles == run.schedule.cycles
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()  # the exporter's own messages
    assert main(["accel", str(path), "--nm", "2:4", "--inputs", str(tmp_path / "x.npy"), "--sim", "--check",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["qonnx_equal"] and [r["nm"] for r in doc["stages"]] == ["2:4", "2:4", None, "2:4"]


def student_exporter(tmp, arch: str, seed: int, prunable: tuple[type, ...]):
    """``export(fmt, prune) -> path``: the untrained ``zoo`` student ``arch`` (random weights of
    ``seed``), its ``prunable`` layers pruned N:M when ``prune`` is given, PTQ'd as the sweep does
    and exported with export_qonnx into ``tmp`` — each (format, pruning) on first use."""
    from paretofab.qonnx_export import untrained_student
    from quant.ptq import PTQConfig, quantize_model

    files: dict = {}

    def export(fmt: str, prune: tuple[int, int] | None):
        if (fmt, prune) not in files:
            m, x = untrained_student(arch, seed=seed, n_calib=64)
            for mod in m.modules():
                if prune and isinstance(mod, prunable):
                    _prune_nm(mod.weight, *prune)
            q = quantize_model(m, fmt, fmt, calib_data=x, config=PTQConfig())
            path = tmp / f"{arch}_{fmt}_{'dense' if prune is None else '2of4'}.onnx"
            with torch.no_grad():
                export_qonnx(q, x[:1], export_path=str(path))
            files[fmt, prune] = path
        return files[fmt, prune]

    return export


@pytest.fixture(scope="module")
def resnet_students(tmp_path_factory):
    """The PaCKD ResNet student's architecture (models.zoo, preset ``student``: 3x3 stem, one
    bottleneck with a projection shortcut, residual add, ReLU, global average pool, Linear head;
    9,324 parameters) with random weights and BatchNorm statistics (exactness needs no training),
    PTQ'd as the sweep does, exported with export_qonnx (each (format, pruning) on first use)."""
    export = student_exporter(tmp_path_factory.mktemp("resnet"), "resnet", 3, (torch.nn.Conv2d, torch.nn.Linear))
    torch.manual_seed(0)
    return export, torch.rand(16, 10, 10).numpy()


#: the ResNet students checked: int8 dense, int8 pruned 2:4, e2m3 dense (minifloat residual block);
#: the last two run in the slow target (the default run keeps under 15 minutes)
RESNETS = [("int8", None), pytest.param("int8", (2, 4), marks=pytest.mark.slow),
           pytest.param("e2m3", None, marks=pytest.mark.slow)]


def _activation_specs(g) -> list:
    """The quantizers of the tensors execute_int returns, in its order."""
    return [g.in_quant] + [q for op in g.layers if (q := output_quant(op)) is not None]


@pytest.mark.parametrize("fmt,prune", RESNETS, ids=["int8", "int8-2of4", "e2m3"])
def test_resnet_student_residual_block_through_accel(resnet_students, fmt, prune):
    """The residual block (Add of the body's last conv and the shortcut conv, ReLU, ReduceMean):
    the integer model's hidden codes are within one code of QONNX's execution and its outputs
    within float32 rounding; the accelerator (a combining stage for the join, the skip tensor
    carried through the body as identity channels; with --nm 2:4 every MAC stage sparse) equals
    the plan's numpy model on every stage and the integer model, in the closed-form cycles."""
    export, x = resnet_students
    path = export(fmt, prune)
    g = read_qonnx(path)
    assert [type(op).__name__ for op in g.layers] == ["QLayer", "QLayer", "QLayer", "QResidual", "QLayer"]
    assert g.layers[3].mean and g.layers[3].relu and g.layers[3].skip is not None
    out, codes = execute_int(g, x)
    for mine, theirs, spec in zip(codes, _qonnx_activations(path, x), _activation_specs(g)):
        v = decode(mine, spec.fmt) if spec.fmt == "e2m3" else mine
        diff = np.abs(_grid_rank(v, spec.fmt) - _grid_rank(theirs, spec.fmt).reshape(mine.shape))
        assert diff.max() <= 1 and np.mean(diff) < 0.01, (spec, np.mean(diff))
    ref = qonnx_outputs(path, x.reshape(len(x), -1))
    assert np.max(np.abs(out - ref)) < 1e-4 * np.max(np.abs(ref))
    plan = plan_network(g, max_lanes=24, nm=prune)
    assert all(st.nm == prune for st in plan.stages)
    assert plan.stages[3].segments is not None and plan.stages[3].mean
    xi = g.in_quant.codes(x[:1].reshape(1, *g.input_shape[1:])).reshape(1, -1)
    run = simulate_plan(plan, xi, "pysim")
    assert all(np.array_equal(a, b) for a, b in zip(run.stages, run_plan(plan, xi)))
    assert np.array_equal(dequantize(g, run.outputs), out[:1]) and run.cycles == run.schedule.cycles


@pytest.mark.slow
@pytest.mark.parametrize("fmt,prune", RESNETS, ids=["int8", "int8-2of4", "e2m3"])
def test_resnet_student_verilator_equals_integer_model(resnet_students, fmt, prune):
    """The ResNet student, 16 inferences through Verilator: equal to the exact integer model."""
    export, x = resnet_students
    g = read_qonnx(export(fmt, prune))
    out, _ = execute_int(g, x)
    run = simulate_plan(plan_network(g, nm=prune), g.in_quant.codes(x.reshape(len(x), 1, 10, 10)).reshape(len(x), -1),
                        "verilator")
    assert np.array_equal(dequantize(g, run.outputs), out) and run.cycles == run.schedule.cycles


def test_conv1d_network_equals_qonnx_execution_exactly(tmp_path):
    """A 1-D CNN (QuantConv1d with padding and stride 2, MaxPool1d, Linear; FixedPoint scales):
    the integer model equals QONNX's execution exactly; the accelerator (1-D layers as 2-D ones of
    height 1) equals it on pysim, in the closed-form cycles."""
    wq, aq = QUANTS["fixed"][:2]
    torch.manual_seed(4)
    m = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True),
        qnn.QuantConv1d(2, 5, 3, padding=1, weight_quant=wq, bias_quant=Int32Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=aq, return_quant_tensor=True),
        qnn.QuantConv1d(5, 4, 3, stride=2, padding=1, weight_quant=wq, bias_quant=Int32Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=aq, return_quant_tensor=True), torch.nn.MaxPool1d(2), torch.nn.Flatten(),
        qnn.QuantLinear(4 * 4, 6, bias=True, weight_quant=wq, bias_quant=Int32Bias))
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(32, 2, 16) * 2)
    m.eval()
    path = tmp_path / "cnn1d.onnx"
    export_qonnx(m, torch.rand(1, 2, 16), export_path=str(path))
    g = read_qonnx(path)
    assert [op.kind for op in g.compute] == ["conv", "conv", "linear"] and g.compute[1].stride == (1, 2)
    x = np.random.default_rng(2).random((12, 2, 16)).astype(np.float32) * 2
    out, _ = execute_int(g, x)
    assert np.array_equal(out, qonnx_outputs(path, x.reshape(len(x), -1)).astype(np.float64))
    plan = plan_network(g, lanes=[3, 5, 4])
    run = simulate_plan(plan, g.in_quant.codes(x[:2]).reshape(2, -1), "pysim")
    assert np.array_equal(dequantize(g, run.outputs), out[:2]) and run.cycles == run.schedule.cycles


def _with_zero_points(path, out, zps: list[int]):
    """A copy of the QONNX file ``path`` at ``out`` whose activation ``Quant`` nodes (graph order)
    get the zero points ``zps`` (Brevitas 0.13 cannot export them from a QuantLinear net, see the
    README; qonnx executes them)."""
    import onnx

    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    acts = [n for n in model.graph.node if n.op_type == "Quant" and n.input[0] not in inits
            and not any(n.input[0] in m.output and m.op_type == "Quant" for m in model.graph.node)]
    for node, zp in zip(acts, zps):
        name = f"{node.name or node.output[0]}_zp"
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(zp, dtype=np.float32), name))
        node.input[2] = name
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("which", ["mlp", "cnn", "cnn_requant"])
def test_zero_points_equal_qonnx_execution_exactly(exported, cnn_file, tmp_path, which):
    """Activations with zero points (FixedPoint scales): the integer model equals QONNX's execution
    exactly, and so does the accelerator (the zero point taken off as a bias correction, padding
    reading the code of real 0; a re-quantized Linear input's old zero point as the folded
    rescale's bias)."""
    src, shape, zps = {"mlp": (exported["fixed"][1], (64,), [5, -20]), "cnn": (cnn_file, (1, 8, 8), [7, -9, 3]),
                       "cnn_requant": (_cnn(tmp_path, requant=True)[1], (1, 8, 8), [7, -9, 3, 2])}[which]
    path = _with_zero_points(src, tmp_path / "zp.onnx", zps)
    g = read_qonnx(path)
    assert [spec.zero_point for spec in _activation_specs(g)] == zps
    x = (np.random.default_rng(11).normal(size=(24, *shape)) * 30).astype(np.float32)  # saturating: zps matter
    out, _ = execute_int(g, x)
    ref = qonnx_outputs(path, x.reshape(len(x), -1)).astype(np.float64)
    assert np.array_equal(out, ref)
    assert not np.array_equal(out, execute_int(read_qonnx(src), x)[0])  # the zero points matter
    plan = plan_network(g, max_lanes=12)
    xi = g.in_quant.codes(x[:2].reshape(2, *g.input_shape[1:])).reshape(2, -1)
    run = simulate_plan(plan, xi, "pysim")
    assert all(np.array_equal(a, b) for a, b in zip(run.stages, run_plan(plan, xi)))
    assert np.array_equal(dequantize(g, run.outputs), ref[:2]) and run.cycles == run.schedule.cycles
