"""``paretofab explore --activity-energy``: the dynamic energy of every front point from the
measured switching activity of its engine's gate-level netlist on the point's own quantized data,
beside the action-count and vectorless figures.

The fast tests use the 4-lane int8 dot engine of ``tests/costmodel/test_activity.py`` (its Yosys
netlist and Verilator model are cached after that file's first run, about 30 s cold); the end-to-end
run builds one gate-level model per front design (20-110 s each cold) and is marked slow."""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hw import dot
from hw.engines import config_from_dict
from models.workload import TraceSpec
from paretofab.cli import main
from paretofab.explore import ExploreConfig, explore
from paretofab.front_energy import ACTIVITY_KEYS, front_activity, point_activity
from paretofab.mapping import LayerCodes, layer_codes

XC7 = "xc7z020"


@pytest.fixture(scope="module")
def dot_int8():
    return config_from_dict({"engine": "dot", "lanes": 4, "wfmt": "int8", "afmt": "int8", "k_max": 64,
                             "pipeline": 1})


def test_point_activity_follows_the_data(dot_int8):
    """Known codes: measured-activity energy > 0 and lower on all-zero activations than on the
    real ones; the action-count and vectorless figures do not see the data; the simulated cycles
    are one per input beat plus the drain; per inference = total / samples."""
    rng = np.random.default_rng(1)
    w = rng.integers(0, 256, (3, 20)).astype(np.uint8)
    a = rng.integers(0, 256, (4, 20)).astype(np.uint8)  # 2 samples × 2 positions
    real = point_activity(dot_int8, [LayerCodes("l", w, a)], XC7, samples=2)
    zero = point_activity(dot_int8, [LayerCodes("l", w, np.zeros_like(a))], XC7, samples=2)
    assert real["activity_dynamic_nj"] > 0 and real["vectorless_dynamic_nj"] > 0 and real["actions_dynamic_nj"] > 0
    assert zero["activity_dynamic_nj"] < real["activity_dynamic_nj"]
    assert zero["actions_dynamic_nj"] == pytest.approx(real["actions_dynamic_nj"])
    assert zero["vectorless_dynamic_nj"] == pytest.approx(real["vectorless_dynamic_nj"])
    beats = dot.pack_inputs(dot_int8, dot.Workload(np.tile(w, (4, 1)), np.repeat(a, 3, axis=0)))
    assert len(beats) == 4 * 3 * 5  # (sample, position) × output, 20 elements on 4 lanes
    assert real["activity_cycles"] * 2 == len(beats) + dot_int8.pipeline + 3  # one beat a cycle, then the drain
    src = real["activity_energy_source"]
    assert "no board measurement" in src and "2 test input(s)" in src and "vectorless" in src
    with pytest.raises(ValueError, match="xc7z020"):
        point_activity(dot_int8, [LayerCodes("l", w, a)], "xczu3eg", samples=1)


def test_layer_codes_reproduce_the_quantized_layers():
    """Lowered codes (Linear over its last dimension, convolutions by im2col with the layer's own
    stride and padding) decode to the quantized layer's own output without bias."""
    from models.zoo import build
    from quant.export import capture_inputs, export_activation, export_layer
    from quant.ptq import quant_layers, quantize_model
    from quant.reference import decode

    torch.manual_seed(0)
    model = build("resnet", "student", stages=((4, 16, 1, 2),))  # a stride-2 3x3 convolution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize_model(model, "int8", "int8", calib_data=torch.rand(16, 10, 10))
    x = torch.rand(2, 10, 10)
    codes, skipped = layer_codes(q, x)
    layers = dict(quant_layers(q))
    assert [c.layer for c in codes] == list(layers) and skipped == []
    ins = capture_inputs(q, x, layers)
    for c in codes:
        layer = layers[c.layer]
        el, ea = export_layer(layer, ins[c.layer], c.layer), export_activation(ins[c.layer])
        got = (decode(c.a_codes, ea.fmt) * el.a_scale) @ (decode(c.w_codes, el.wfmt) * el.w_scale[:, None]).T
        xv, wv = torch.as_tensor(ea.values()).double(), torch.as_tensor(el.weight_values()).double()
        if el.kind == "conv2d":
            want = torch.nn.functional.conv2d(xv, wv, stride=layer.stride, padding=layer.padding)
            want = want.permute(0, 2, 3, 1).reshape(-1, wv.shape[0])
        else:
            want = xv.reshape(-1, wv.shape[1]) @ wv.T
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6, err_msg=c.layer)  # float32 values


def test_front_activity_skips_families_without_a_model(tmp_path):
    """An xcup or ECP5 part (DSP cells with no Yosys simulation model): one note, the columns
    present and NaN, nothing simulated."""
    df = pd.DataFrame({"rank": [1, 2], "name": ["a", "b"], "engine": ["dense", "dense"], "format": ["int4"] * 2})
    for device, words in (("xczu3eg", "DSP48E2"), ("ecp5-85f", "MULT18X18D")):
        out, note = front_activity(df, [], ExploreConfig(out=str(tmp_path), device=device))
        assert note and words in note and "\n" not in note and "--device xc7z020" in note
        assert all(k in out.columns for k in ACTIVITY_KEYS) and out["activity_dynamic_nj"].isna().all()
        assert out.loc[0, "activity_energy_source"].startswith("not measured")
        assert list(pd.read_csv(tmp_path / "pareto.csv").columns) == list(out.columns)


@pytest.mark.parametrize("argv, words", [
    (["--activity-samples", "2"], "--activity-energy"),
    (["--activity-energy", "--activity-samples", "0"], "--activity-samples"),
    (["--activity-energy", "--activity-samples", "1000"], "1..64"),
])
def test_bad_activity_options_exit_2(tmp_path, argv, words):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["explore", "-o", str(tmp_path / "out"), *argv])
    msg = err.getvalue().strip()
    assert rc == 2 and "\n" not in msg and words in msg, msg
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_explore_with_activity_energy(tmp_path, capsys):
    """A small explore run with ``--activity-energy``: every front point gets the three energies
    in pareto.csv, the summary prints them and the ranking verdict; a front point's measured
    energy on all-zero activations is below the one on its real activations."""
    from paretofab.front_energy import front_codes

    cfg = ExploreConfig(out=str(tmp_path), method="none", arch="mixer", epochs=1, spread_seeds=1,
                        workload=TraceSpec(app="pr", scale=12, max_loads=200_000, max_rows=3000),
                        allow_degenerate=True, formats=("int4",), lanes=8, pattern=("2:4",), prune_epochs=0,
                        progress=False, activity_energy=True, activity_samples=1)
    df = explore(cfg)
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "pareto.csv")
    front = table[table["rank"] == 1]
    assert len(front) >= 1
    for key in ACTIVITY_KEYS:
        assert key in table.columns and front[key].notna().all(), key
    assert (front["activity_dynamic_nj"] > 0).all() and (front["vectorless_dynamic_nj"] > 0).all()
    assert table.loc[table["rank"] != 1, "activity_dynamic_nj"].isna().all()
    # every layer simulated, no attention: the action counts of the simulated layers are dynamic_nj
    np.testing.assert_allclose(front["actions_dynamic_nj"], front["dynamic_nj"], rtol=1e-9)
    assert "dynamic energy of the front per inference" in out and "ranking by dynamic energy" in out
    row = df[df["rank"] == 1].iloc[0]
    config = config_from_dict(json.loads(row["config"]))
    codes, _ = front_codes(tmp_path / row["student"], row["format"], row["ptq"], cfg, 1)
    zero = point_activity(config, [LayerCodes(c.layer, c.w_codes, np.zeros_like(c.a_codes)) for c in codes],
                          XC7, 1)
    assert zero["activity_dynamic_nj"] < row["activity_dynamic_nj"]


def test_a_failing_tool_keeps_the_points_already_measured(tmp_path, monkeypatch):
    """pareto.csv is rewritten after every front point: when Yosys fails on the second design,
    the first one's energies are on disk and the error (``tool`` attribute: exit 3) propagates."""
    import paretofab.explore as E
    import paretofab.front_energy as F
    from hw.rtl import SynthError
    from models.prune import Pattern

    cand = E.Candidate(Pattern(), tmp_path / "s", {}, {"int4": object(), "int8": object()})
    df = pd.DataFrame({"rank": [1, 1, 2], "name": ["dense int4", "dense int8", "x"], "engine": ["dense"] * 3,
                       "format": ["int4", "int8", "int8"], "ptq": ["none"] * 3, "student": ["s"] * 3})
    calls = []

    def fake_point(config, codes, device, samples, density=None):
        calls.append(config)
        if len(calls) == 2:
            raise SynthError("yosys: out of memory")
        return {"activity_dynamic_nj": 2.0, "vectorless_dynamic_nj": 1.0, "actions_dynamic_nj": 3.0,
                "activity_cycles": 10.0, "activity_energy_source": "measured toggles"}

    monkeypatch.setattr(F, "front_codes", lambda *a, **k: ([LayerCodes("l", np.zeros((1, 1)), np.zeros((1, 1)))], []))
    monkeypatch.setattr(F, "point_activity", fake_point)
    with pytest.raises(SynthError) as e:
        front_activity(df, [cand], ExploreConfig(out=str(tmp_path), activity_energy=True))
    assert e.value.tool == "yosys"
    saved = pd.read_csv(tmp_path / "pareto.csv")
    assert saved["activity_dynamic_nj"].tolist()[0] == 2.0
    assert saved["activity_dynamic_nj"].isna().tolist()[1:] == [True, True]
