"""The PaCKD Mixer student as one dataflow accelerator (issue 16): MAC stages for its six layers
(a GELU as a threshold table, raw accumulators where a residual sum or a LayerNorm reads them),
row stages for the residual sums (a skip frame), the three LayerNorms and the mean over tokens
(:mod:`paretofab.netplan_net`). The plan's numpy model equals the exact integer model
(:func:`quant.qonnx_net.execute_net`, itself checked against QONNX execution in
tests/quant/test_qonnx_net.py) on every quantized tensor and the outputs, dense and 2:4-pruned,
int8 and e4m3; the RTL equals the plan's model on every stage, in the closed-form cycles."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qonnx", reason="qonnx not installed: pip install -e '.[qonnx]'")

from hw.dataflow.plan import run_plan, schedule  # noqa: E402
from hw.dataflow.row import RowStage  # noqa: E402
from paretofab.netplan_net import plan_net  # noqa: E402
from quant.qonnx_import import QonnxError  # noqa: E402
from quant.qonnx_net import execute_net, read_net  # noqa: E402

from .test_accel import student_exporter  # noqa: E402


@pytest.fixture(scope="module")
def mixer_students(tmp_path_factory):
    """The Mixer student's architecture (models.zoo: embedding, one token-mixing and one
    channel-mixing MLP with GELU, each pre-LayerNorm residual, final LayerNorm, mean over tokens,
    head) with random weights, PTQ'd as the sweep does, exported with export_qonnx (each (format,
    pruning) on first use)."""
    export = student_exporter(tmp_path_factory.mktemp("mixer"), "mixer", 5, (torch.nn.Linear,))
    return export, np.random.default_rng(7).random((24, 10, 10)).astype(np.float32)


MIXERS = [("int8", None), ("e4m3", None), ("int8", (2, 4))]


@pytest.mark.parametrize("fmt,prune", MIXERS, ids=["int8", "e4m3", "int8-2of4"])
def test_mixer_plan_equals_exact_integer_model(mixer_students, fmt, prune):
    """Every quantized tensor and the outputs of the plan's numpy model equal the exact integer
    model's; the plan has the shape the mapping promises (a row stage per residual sum and
    LayerNorm, the second sum folded into the last LayerNorm with the mean, skip frames from the
    embedding and the first sum); with --nm 2:4 every MAC stage is sparse."""
    export, x = mixer_students
    net = read_net(export(fmt, prune))
    acc = plan_net(net, nm=prune)
    kinds = [st.kind for st in acc.plan.stages]
    assert kinds == ["mac", "row", "mac", "mac", "row", "row", "mac", "mac", "row", "mac"]
    rows = [st for st in acc.plan.stages if isinstance(st, RowStage)]
    assert [st.skip for st in rows] == [None, 0, None, 4]
    assert [st.extra is not None for st in rows] == [True, False, True, True] and rows[-1].mean
    if prune:
        assert all(st.nm == prune for st in acc.plan.stages if st.kind == "mac")
    ref, codes = execute_net(net, x)
    outs = run_plan(acc.plan, acc.input_codes(x))
    assert np.array_equal(acc.outputs(outs[-1]), ref)
    assert set(acc.tensors) == set(codes) - {net.ops[0].output}
    for name, c in codes.items():
        if name in acc.tensors:
            assert np.array_equal(acc.tensor(name, outs), c), name


def test_deeper_wider_mixer_plan_equals_exact_integer_model(tmp_path):
    """A Mixer of another shape (two blocks, 24 channels, per-tensor weight scales): the same
    mapping, skip frames across two blocks, equal to the exact integer model."""
    from brevitas.export import export_qonnx

    from models.zoo import MixerNet
    from quant.ptq import PTQConfig, quantize_model

    torch.manual_seed(11)
    m = MixerNet(dim=24, depth=2, token_hidden=8, channel_hidden=12).eval()
    calib = torch.rand(32, 10, 10)
    q = quantize_model(m, "int6", "int8", calib_data=calib, config=PTQConfig(per_channel=False))
    path = tmp_path / "mixer2.onnx"
    with torch.no_grad():
        export_qonnx(q, calib[:1], export_path=str(path))
    net = read_net(path)
    acc = plan_net(net, lanes=3)
    x = np.random.default_rng(8).random((12, 10, 10)).astype(np.float32)
    ref, _ = execute_net(net, x)
    assert np.array_equal(acc.outputs(run_plan(acc.plan, acc.input_codes(x))[-1]), ref)
    assert sum(isinstance(st, RowStage) and st.skip is not None for st in acc.plan.stages) == 4
    assert schedule(acc.plan, 3).cycles > schedule(acc.plan, 1).cycles


def test_graphs_the_mapping_does_not_take_are_refused_in_one_line(tmp_path):
    """A LayerNorm reading the network's quantized input directly is fine (a row stage on codes);
    a residual sum with the network input is refused, naming the node."""
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint

    class InputSkip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q0 = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.l1 = qnn.QuantLinear(6, 6, weight_quant=Int8WeightPerTensorFixedPoint, bias=False)
            self.q1 = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.l2 = qnn.QuantLinear(6, 3, weight_quant=Int8WeightPerTensorFixedPoint, bias=False)

        def forward(self, x):
            q = self.q0(x)
            return self.l2(self.q1(self.l1(q) + q))

    path = tmp_path / "inskip.onnx"
    export_qonnx(InputSkip().eval(), torch.randn(1, 6), export_path=str(path))
    net = read_net(path)
    with pytest.raises(QonnxError, match="Add.*network input"):
        plan_net(net)


@pytest.mark.parametrize("fmt,prune", MIXERS[:1] + [pytest.param(*m, marks=pytest.mark.slow) for m in MIXERS[1:]],
                         ids=["int8", "e4m3", "int8-2of4"])
def test_mixer_accelerator_rtl_equals_plan_and_integer_model(mixer_students, fmt, prune):
    """Whole inferences through the Mixer's RTL (pysim): every stage's output equals the plan's
    numpy model, the outputs equal the exact integer model, in the closed-form cycles, which the
    cost model reports too."""
    from costmodel.accel import plan_cost
    from hw.dataflow.sim import simulate_plan

    export, x = mixer_students
    net = read_net(export(fmt, prune))
    acc = plan_net(net, nm=prune, max_lanes=24)
    xi = acc.input_codes(x[:2])
    run = simulate_plan(acc.plan, xi, "pysim")
    model = run_plan(acc.plan, xi)
    assert len(run.stages) == len(model)
    for st, a, b in zip(acc.plan.stages, run.stages, model):
        assert np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)), st.name
    ref, _ = execute_net(net, x[:2])
    assert np.array_equal(acc.outputs(run.outputs), ref)
    assert run.cycles == run.schedule.cycles == schedule(acc.plan, 2).cycles
    assert plan_cost(acc.plan)["cycles_per_inference"] == schedule(acc.plan, 1).cycles


@pytest.mark.slow
@pytest.mark.parametrize("fmt,prune", MIXERS, ids=["int8", "e4m3", "int8-2of4"])
def test_mixer_accelerator_verilator_equals_integer_model(mixer_students, fmt, prune):
    """The Mixer, 24 inferences through Verilator: equal to the exact integer model, in the
    closed-form cycles."""
    from hw.dataflow.sim import simulate_plan

    export, x = mixer_students
    net = read_net(export(fmt, prune))
    acc = plan_net(net, nm=prune)
    run = simulate_plan(acc.plan, acc.input_codes(x), "verilator")
    ref, _ = execute_net(net, x)
    assert np.array_equal(acc.outputs(run.outputs), ref) and run.cycles == run.schedule.cycles


def test_cli_simulates_the_mixer_and_writes_its_verilog(mixer_students, tmp_path, capsys):
    """`paretofab accel MIXER.onnx --inputs X --sim --check --json`: RTL equals the model and the
    exact integer model, QONNX's class agrees; `-o DIR --axis` writes lint-clean Verilog."""
    import json

    from paretofab.cli import main

    export, x = mixer_students
    path = export("int8", None)
    capsys.readouterr()  # the export's progress lines
    np.save(tmp_path / "x.npy", x[:2])
    assert main(["accel", str(path), "--inputs", str(tmp_path / "x.npy"), "--sim", "--check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rtl_equals_model"] and doc["rtl_equals_integer_model"] and doc["cycles"] == doc["closed_form_cycles"]
    assert doc["qonnx_argmax_agree"] == 1.0 and [s["kind"].split()[0] for s in doc["stages"]].count("row") == 4
    assert main(["accel", str(path), "-o", str(tmp_path / "rtl"), "--axis"]) == 0
    verilog = (tmp_path / "rtl" / "mixer_int8_dense_axis.v").read_text()
    assert "module mixer_int8_dense_axis" in verilog and "s_axis_tdata" in verilog


def test_folding_file_sets_each_layers_lanes(mixer_students, tmp_path, capsys):
    """`--lanes FOLDING.json`: a JSON object of layer names to lanes sets each MAC stage's; a
    report this command wrote reproduces its own lanes (N:M stages too: a report counts
    multipliers, --lanes window elements per beat); a file naming an unknown layer or missing one
    is refused in one line, exit 2."""
    import json

    from paretofab.cli import main

    export, _ = mixer_students
    path = export("int8", (2, 4))
    capsys.readouterr()  # the export's progress lines
    assert main(["accel", str(path), "--nm", "2:4", "--json"]) == 0
    report = capsys.readouterr().out
    (tmp_path / "report.json").write_text(report)
    assert main(["accel", str(path), "--nm", "2:4", "--lanes", str(tmp_path / "report.json"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [s["lanes"] for s in again["stages"]] == [s["lanes"] for s in json.loads(report)["stages"]]
    macs = [s["stage"] for s in again["stages"] if s["kind"] == "mac"]
    (tmp_path / "fold.json").write_text(json.dumps({name: {"lanes": 4} if i % 2 else 8 for i, name in enumerate(macs)}))
    assert main(["accel", str(path), "--lanes", str(tmp_path / "fold.json"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["lanes"] for s in doc["stages"] if s["kind"] == "mac"] == [4 if i % 2 else 8 for i in range(len(macs))]
    (tmp_path / "bad.json").write_text(json.dumps({macs[0]: 2, "Conv_9": 3}))
    assert main(["accel", str(path), "--lanes", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Conv_9" in err and macs[1] in err
