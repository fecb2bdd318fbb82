"""``paretofab explore`` end to end on a small configuration: front ranks against a brute-force
dominance check, cycles against the engines' own closed forms (on the pruned students' real
weight patterns for the block-skipping engine), Verilog of the front (stale files removed),
resume; costs once per candidate and format; the options: every field on the command line, every
bad one refused before any work."""

import argparse
import contextlib
import io
import json
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costmodel import estimate
from hw.engines import config_from_dict, engine
from models import prune as P
from models.workload import TraceSpec
from paretofab.cli import main
from paretofab.explore import (OBJECTIVES, Candidate, ExploreConfig, attention_cost, cost_table, explore, rank,
                               train_student, write_front_verilog, _key)
from paretofab.mapping import LayerWorkload, attention_kernels, engine_for, layer_workloads
from paretofab.options import add_arguments, from_args, to_argv


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    cfg = ExploreConfig(out=str(out), method="none", arch="resnet", epochs=1, spread_seeds=2,
                        workload=TraceSpec(app="pr", scale=12, max_loads=200_000, max_rows=3000),
                        allow_degenerate=True, formats=("int4", "e2m3"), lanes=8, prune_epochs=1,
                        progress=False, accel=True)
    return cfg, explore(cfg)


def test_front_matches_brute_force_dominance(small):
    _, df = small
    v = np.column_stack([-df["micro_f1"].to_numpy()] + [df[c].to_numpy(float) for c in OBJECTIVES])
    dominated = [any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v))) for i in range(len(v))]
    assert list(df["rank"] == 1) == [not d for d in dominated]
    assert set(df["engine"]) == {"dense", "2:4", "2:4+b8k0.5"} and set(df["format"]) == {"int4", "e2m3"}
    assert len(df) == 6


def test_front_points_gain_their_whole_network_accelerator(small):
    """`--accel`: every front point (and only those) carries its whole-network accelerator within
    the multiplier budget, labelled, N:M stages for N:M points; the same figures come back from
    `paretofab accel` on the point's own QONNX export (the planner and cost model run apart from
    explore's bookkeeping)."""
    import torch
    from brevitas.export import export_qonnx

    from costmodel.accel import plan_cost
    from models.map_data import load_splits
    from paretofab.front_accel import ACCEL_KEYS
    from paretofab.front_energy import quantized_point
    from paretofab.netplan import plan_network
    from quant.qonnx_import import read_qonnx

    cfg, df = small
    front, rest = df[df["rank"] == 1], df[df["rank"] != 1]
    assert set(ACCEL_KEYS) <= set(pd.read_csv(Path(cfg.out) / "pareto.csv").columns)
    assert front["accel_lut"].notna().all() and rest["accel_lut"].isna().all()
    for _, row in front.iterrows():
        assert "no board measurement" in row["accel_source"]
        assert ("N:M" in row["accel_source"]) == (row["engine"] != "dense")
    row = front.iloc[0]
    q = quantized_point(Path(cfg.out) / row["student"], row["format"], row["ptq"], cfg)
    path = Path(cfg.out) / "check.onnx"
    x = torch.as_tensor(load_splits(Path(cfg.out) / row["student"] / "data.npz")["x_test"][:1])
    export_qonnx(q, x, export_path=str(path))
    g = read_qonnx(path)
    nm = None if row["engine"] == "dense" else tuple(int(v) for v in row["engine"].split("+")[0].split(":"))
    budget = max(cfg.lanes, len(g.compute))
    plan = plan_network(g, max_lanes=budget, nm=nm)
    macs = [st for st in plan.stages if st.kind == "mac"]
    assert sum(st.lanes for st in macs) <= budget + sum(st.nm[0] for st in macs if st.nm)  # N:M rounds up to N
    c = plan_cost(plan, cfg.device)
    assert (c["total"]["lut"], c["cycles_per_inference"]) == (row["accel_lut"], row["accel_cycles"])


def test_pruned_students_obey_their_patterns(small):
    from models.zoo import load_checkpoint

    cfg, df = small
    for _, row in df.drop_duplicates("engine").iterrows():
        model = load_checkpoint(f"{cfg.out}/{row['student']}/student.pt")
        for name, mod in P.prunable_layers(model):
            P.check_pattern(mod.weight, "dense" if row["engine"] == "dense" else row["engine"], name)
    lanes = dict(zip(df["engine"], df["lanes"]))
    assert lanes == {"dense": 8, "2:4": 8, "2:4+b8k0.5": 4}, "span 8 divides the block of 8 at 4 lanes"


def test_cycles_equal_engine_closed_forms(small):
    import torch

    from models.map_data import load_splits
    from models.zoo import load_checkpoint

    cfg, df = small
    student = train_student(cfg)  # reused
    layers = layer_workloads(load_checkpoint(f"{student}/student.pt"),
                             torch.as_tensor(load_splits(f"{student}/data.npz")["x_test"][:1]))
    assert layers and all(lr.k > 0 and lr.vectors > 0 for lr in layers)
    for _, row in df.iterrows():
        config = config_from_dict(json.loads(row["config"]))
        mod = engine(config.to_dict()["engine"])
        if getattr(config, "block", None):  # block skipping: the pruned weights' real zero blocks
            pruned = load_checkpoint(f"{cfg.out}/{row['student']}/student.pt")
            mods = dict(pruned.named_modules())
            wls = []
            for lr in layers:
                w = mods[lr.layer].weight.detach().numpy()
                nz = (w.reshape(w.shape[0], -1) != 0).astype(np.uint8)  # code 1 = a non-zero weight
                codes = np.tile(nz, (lr.vectors // len(nz), 1))
                wls.append(mod.Workload(codes, np.zeros_like(codes)))
            assert sum(mod.cycles(config, w) for w in wls) < sum(
                mod.cycles(config, mod.Workload(np.ones_like(w.w_codes), w.a_codes)) for w in wls)
        else:
            wls = [mod.Workload(np.zeros((lr.vectors, lr.k), np.uint8),
                                np.zeros((lr.vectors, lr.k), np.uint8)) for lr in layers]
        assert row["cycles"] == sum(mod.cycles(config, w) for w in wls)


def test_student_stage_is_keyed_by_its_options(small):
    """A changed option (here the app) never reuses another run's student; the seed spread is
    recorded for every training seed."""
    cfg, df = small
    changed = [replace(cfg, arch="mixer"), replace(cfg, seed=1), replace(cfg, method="kd"),
               replace(cfg, workload=replace(cfg.workload, scale=13)),
               replace(cfg, workload=replace(cfg.workload, app="bc")),
               replace(cfg, workload=replace(cfg.workload, seed=1))]
    keys = {_key(c.student_options()) for c in [cfg, *changed]}
    assert len(keys) == 1 + len(changed), "every option the student depends on is in its key"
    assert _key(replace(cfg, lanes=4, device="xczu3eg", pattern=("1:4",)).student_options()) == _key(
        cfg.student_options())
    d = train_student(cfg)
    m = json.loads((d / "metrics.json").read_text())
    assert len(m["seed_f1"]) == 2 and m["seed_f1"][0] == pytest.approx(m["f1"])
    assert set(df["student"].str.split("/").str[1]) == {d.name}
    other = replace(cfg, workload=replace(cfg.workload, app="bc", skip_loads=10_000), spread_seeds=1)
    assert cfg.student_options() != other.student_options()
    d2 = train_student(other)
    assert d2 != d and json.loads((d2 / "metrics.json").read_text())["app"] == "bc"


def test_degenerate_trace_is_refused_before_training(tmp_path):
    cfg = ExploreConfig(out=str(tmp_path), workload=TraceSpec(app="pr", scale=12, max_loads=200_000,
                                                              max_rows=3000), progress=False)
    with pytest.raises(ValueError, match="degenerate trace"):
        explore(cfg)
    assert not list(tmp_path.glob("students/*/student.pt"))
    assert replace(cfg, allow_degenerate=True).student_options() != cfg.student_options()


def test_front_verilog_and_resume(small):
    cfg, df = small
    rtl = Path(cfg.out) / "rtl"
    designs = sorted(p.stem for p in rtl.glob("*.v"))
    assert 0 < len(designs) <= int((df["rank"] == 1).sum())  # front points of one engine share a design
    assert sorted(p.stem for p in rtl.glob("*.json")) == sorted(designs + ["front"])
    again = explore(cfg)  # every stage reused: same table
    pd.testing.assert_frame_equal(again.reset_index(drop=True), df.reset_index(drop=True))


def test_layer_workloads_count_lstm_gates():
    """An LSTM student's gate matmuls are dot products too: per step, 4·hidden rows of
    K = inputs + hidden (dense only); the head is one Linear."""
    import torch

    from models.zoo import build

    m = build("lstm", "student", steps=10, hidden=28)  # LSTM(10 -> 28) over 10 steps, Linear(28 -> 256)
    rows = layer_workloads(m, torch.rand(3, 10, 10))
    assert rows == [LayerWorkload("lstm.l0", 10 + 28, 4 * 28 * 10, prunable=False), LayerWorkload("head", 28, 256)]
    macs = sum(r.k * r.vectors for r in rows)
    weights = sum(p.numel() for n, p in m.named_parameters() if "weight" in n)
    assert macs == 10 * (weights - 28 * 256) + 28 * 256  # every LSTM weight once per step


def test_attention_cost_of_a_swa_student():
    """Every head of every layer runs once per inference on one SWA kernel: cycles = heads ×
    layers × the kernel's closed-form cycles over the history; None without attention."""
    import torch

    from hw import swa
    from models.zoo import build

    m = build("swa", "student", depth=2)  # dim 24, 2 heads of 12, window 4, history 10
    kernels = attention_kernels(m, torch.rand(1, 10, 10), lanes=16)
    kernel = swa.SWAConfig(12, 4, 12, "int8", "int8")
    assert [(k.config, k.heads, k.tokens) for k in kernels] == [(kernel, 2, 10)] * 2
    att = attention_cost(kernels, "xc7z020")
    assert att["cycles"] == 2 * 2 * swa.cycles(kernel, 10)
    assert att["lut"] > 0 and att["dsp"] > 0
    assert "SWA" in att["resource_source"] and att["error_source"] and att["energy_source"]
    from paretofab.explore import network_cost

    from hw.dot import DotConfig

    net = network_cost(DotConfig(4, "int4", "int4", 16), [LayerWorkload("a", 16, 1)], "xc7z020", attention=att)
    assert "+ SWA attention kernel: Yosys-calibrated SWA model" in net["resource_source"]
    assert "+ SWA attention kernel:" in net["error_source"] and "fmax_clamped" in net
    assert attention_kernels(build("resnet", "student"), torch.rand(1, 10, 10), lanes=16) == []
    assert attention_cost([], "xc7z020") is None


# ---- costs joined to the sweep, Verilog of the front ---------------------------------------------

LAYERS = [LayerWorkload("a", 16, 10), LayerWorkload("b", 8, 4)]


def _candidates(lanes: int = 4, k_max: int = 16) -> list[Candidate]:
    pats = [P.Pattern(), P.Pattern(2, 4), P.Pattern(2, 4, 8, 0.5)]
    return [Candidate(p, Path("s") / str(i), {"a": 0.5 if p.has_blocks else 1.0, "b": 1.0},
                      {f: engine_for(p, f, k_max, lanes) for f in ("int4", "e2m1")}) for i, p in enumerate(pats)]


def test_costs_once_per_candidate_and_format_joined_to_every_ptq(tmp_path, monkeypatch):
    import paretofab.explore as E

    calls = []
    real = E.network_cost
    monkeypatch.setattr(E, "network_cost", lambda config, *a, **k: calls.append(config) or real(config, *a, **k))
    cands = _candidates()
    costs = cost_table(cands, LAYERS, "xczu3eg")
    assert len(calls) == len(costs) == 6, "one estimate per candidate and format"
    points = pd.DataFrame([{"format": f, "ptq": ptq, "micro_f1": 0.5 + 0.01 * i, "float_f1": 0.6,
                            "student": str(c.student), "engine": c.name}
                           for i, (c, f, ptq) in enumerate((c, f, ptq) for c in cands for f in ("int4", "e2m1")
                                                           for ptq in ("none", "weq"))])
    df = rank(points, costs, ExploreConfig(out=str(tmp_path)))
    assert len(df) == 12 and (tmp_path / "pareto.csv").exists()
    from paretofab.explore import LABEL_KEYS

    table = pd.read_csv(tmp_path / "pareto.csv")
    assert all(c in table.columns for c in LABEL_KEYS), "pareto.csv carries every figure's source and error"
    assert table["resource_source"].str.len().min() > 0 and table["fmax_clamped"].dtype == bool
    for (eng, fmt), g in table.groupby(["engine", "format"]):
        c = next(c for c in cands if c.name == eng).engines[fmt]
        one = estimate(c, "xczu3eg", k=LAYERS[0].k, vectors=LAYERS[0].vectors)
        assert g["error_source"].iloc[0] == one.error_source and bool(g["fmax_clamped"].iloc[0]) == one.fmax_clamped
    for (eng, fmt), g in df.groupby(["engine", "format"]):
        assert len(g) == 2 and g["lut"].nunique() == 1 and g["cycles"].nunique() == 1
        assert config_from_dict(json.loads(g["config"].iloc[0])) == next(
            c for c in cands if c.name == eng).engines[fmt]
    hybrid = df[(df["engine"] == "2:4+b8k0.5") & (df["format"] == "int4")]["cycles"].iloc[0]
    full = real(cands[2].engines["int4"], LAYERS, "xczu3eg")["cycles"]
    assert hybrid < full, "the candidate's block density reaches the estimate"


def test_front_verilog_follows_the_front(tmp_path):
    """Each front design is ``<top>.v`` with its top module named after the design, and a JSON of
    its ports and payload fields beside it; files of designs no longer on the front are removed
    (with their JSON); a design is rewritten only when its engine changed."""
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "dot_l16_int8_int8_k1024.v").write_text("// an older run's front point")
    (rtl / "dot_l16_int8_int8_k1024.json").write_text("{}")
    cands = _candidates()
    front = pd.DataFrame({"engine": ["dense", "2:4", "2:4+b8k0.5"], "format": ["int4", "int4", "e2m1"],
                          "rank": [1, 1, 2]})
    files = write_front_verilog(front, cands, rtl)
    names = ["dot_l4_int4_int4_k16", "sparse_l4_2of4_int4_int4_k16"]
    assert sorted(p.name for p in rtl.glob("*.v")) == sorted(p.name for p in files) == [f"{n}.v" for n in names]
    assert sorted(p.name for p in rtl.glob("*.json")) == sorted([f"{n}.json" for n in names] + ["front.json"])
    for name, (eng, fmt) in zip(names, [("dense", "int4"), ("2:4", "int4")]):
        v = (rtl / f"{name}.v").read_text()
        assert f"module {name}(" in v.replace(" (", "(") and "module dut" not in v
        doc = json.loads((rtl / f"{name}.json").read_text())
        config = next(c for c in cands if c.name == eng).engines[fmt]
        assert doc["top"] == name and config_from_dict(doc["config"]) == config
        ports = {p["name"]: p["width"] for p in doc["ports"]}
        fields_ = doc["payload_fields"]["i"]
        assert ports["i__payload"] == max(f["offset"] + f["width"] for f in fields_) == config.in_layout().size
    mtime = (rtl / f"{names[0]}.v").stat().st_mtime_ns
    moved = front.assign(rank=[1, 2, 1])
    write_front_verilog(moved, cands, rtl)
    assert sorted(p.name for p in rtl.glob("*.v")) == ["dot_l4_int4_int4_k16.v", "sparse_l4_2of4_e2m1_e2m1_k16_b8.v"]
    assert not (rtl / f"{names[1]}.json").exists(), "a removed design's JSON goes with it"
    assert (rtl / f"{names[0]}.v").stat().st_mtime_ns == mtime, "unchanged engine: not rewritten"
    (rtl / f"{names[0]}.json").unlink()  # a design missing its JSON is written again
    write_front_verilog(moved, cands, rtl)
    assert (rtl / f"{names[0]}.json").exists() and (rtl / f"{names[0]}.v").stat().st_mtime_ns != mtime
    write_front_verilog(moved, _candidates(k_max=64), rtl)  # longer reduction: new engines, new names
    assert sorted(p.name for p in rtl.glob("*.v")) == ["dot_l4_int4_int4_k64.v", "sparse_l4_2of4_e2m1_e2m1_k64_b8.v"]
    assert json.loads((rtl / "front.json").read_text())["dot_l4_int4_int4_k64.v"]["k_max"] == 64


# ---- options ------------------------------------------------------------------------------------------


def test_every_option_is_on_the_command_line_and_round_trips():
    d = ExploreConfig()
    cfg = ExploreConfig(out="o", workload=TraceSpec(app="bc", scale=12, seed=3, max_loads=1000, skip_loads=5,
                                                    l1_kb=32, l2_kb=256, prefetch_degree=1, max_rows=500,
                                                    trace="t.trace"),
                        arch="swa", method="kd", teacher_arch="resnet", teacher_preset="student", epochs=2,
                        teacher_epochs=3, spread_seeds=1, allow_degenerate=True, formats=("int8", "e4m3"),
                        ptq=("none", "weq+gptq"), lanes=8, pattern=("1:4", "1:4+b16k0.25"), prune_epochs=0,
                        saliency="class", classes="top32", device="xczu3eg", activity_energy=True, accel=True,
                        activity_samples=2, seed=3, jobs=2, threads=1, progress=False)
    assert [f.name for f in fields(cfg) if getattr(cfg, f.name) == getattr(d, f.name)] == []
    assert [f.name for f in fields(cfg.workload) if getattr(cfg.workload, f.name) == getattr(d.workload, f.name)] == []
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert from_args(p.parse_args(to_argv(cfg))) == cfg
    assert from_args(p.parse_args([])) == d
    assert from_args(p.parse_args(to_argv(d))) == d
    assert from_args(p.parse_args(["--classes", "top32"])).saliency == "class"


@pytest.mark.parametrize("argv, words", [
    (["--device", "nope"], "xc7z020"),
    (["--formats", "int4,int99"], "got 99"),
    (["--lanes", "0"], "--lanes"),
    (["--lanes", "1"], "lanes"),  # no 2:4 engine of one multiplier
    (["--pattern", "2:4", "--nm", "1:4"], "--pattern only"),
    (["--scale", "40"], "--scale"),
    (["--ptq", "foo"], "foo"),
    (["--classes", "top32", "--saliency", "magnitude"], "--saliency"),
])
def test_bad_option_exits_2_at_once(tmp_path, argv, words):
    """Every option is checked before any work: one line naming the fix, exit 2, no traceback,
    nothing written (no output folder: no stage ran; a wall-clock bound here failed under load)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["explore", "-o", str(tmp_path / "out"), *argv])
    msg = err.getvalue().strip()
    assert rc == 2 and "\n" not in msg and "Traceback" not in msg and words in msg, msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, words", [(["--nm", "2x4"], "N:M"), (["--pattern", "2:4,3:2"], "N <= M"),
                                         (["--pattern", "2x4"], "2:4+b8k0.5"),
                                         (["--pattern", "2:4+b6k0.5"], "multiple")])
def test_malformed_option_is_an_argparse_error(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        main(["explore", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err, err


def test_pattern_list_dense_always_and_deprecated_spellings(capsys):
    """``--pattern`` is a comma list explored beside dense (always first, each pattern once); the
    old ``--nm/--block/--keep`` still work for one release, with one note on stderr."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = from_args(p.parse_args(["--pattern", "1:4,dense,2:4+b16k0.25,1:4"]))
    assert [str(x) for x in cfg.patterns()] == ["dense", "1:4", "2:4+b16k0.25"]
    assert [str(x) for x in from_args(p.parse_args(["--pattern", "dense"])).patterns()] == ["dense"]
    assert [str(x) for x in ExploreConfig().patterns()] == ["dense", "2:4", "2:4+b8k0.5"]
    assert capsys.readouterr().err == ""
    old = from_args(p.parse_args(["--nm", "1:4", "--keep", "0.25"]))
    assert old.pattern == ("1:4", "1:4+b8k0.25")
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "deprecated" in err and "--pattern 1:4,1:4+b8k0.25" in err
    assert "--nm" not in p.format_help() and "--keep" not in p.format_help()
    with pytest.raises(ValueError, match="N <= M"):  # the old spelling is checked as --pattern is
        from_args(p.parse_args(["--nm", "3:2"])).validate()
    with pytest.raises(ValueError, match="multiple"):
        from_args(p.parse_args(["--block", "6"])).validate()


def test_help_shows_defaults_and_an_example(capsys):
    for cmd in ("explore", "demo", "cost", "pareto"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "example" in out and "paretofab " + cmd in out.split("example")[1], cmd
    with pytest.raises(SystemExit):
        main(["explore", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for shown in ("--device PART", "(default xc7z020)", "--pattern PATTERNS", "(default 2:4,2:4+b8k0.5)",
                  "(default 16)", "(default runs/explore)"):
        assert shown in out, shown


def test_one_default_device():
    from hw.devices import DEFAULT_DEVICE

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert ExploreConfig().device == from_args(p.parse_args([])).device == DEFAULT_DEVICE
    from paretofab.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for cmd in (["cost", "dot"], ["cost", "sparse"], ["cost", "swa"], ["pareto"]):
        parser = sub.choices[cmd[0]]
        if len(cmd) > 1:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[cmd[1]]
        assert parser.get_default("device") == DEFAULT_DEVICE, cmd


def test_mixer_front_points_gain_their_accelerator(tmp_path):
    """`--accel` on Mixer students (LayerNorm, GELU, residual sums: the general front end and row
    stages): every front point carries its whole-network accelerator, the 2:4 ones with N:M
    stages."""
    cfg = ExploreConfig(out=str(tmp_path), method="none", arch="mixer", epochs=1, spread_seeds=1,
                        workload=TraceSpec(app="pr", scale=12, max_loads=200_000, max_rows=3000),
                        allow_degenerate=True, formats=("int8",), lanes=16, pattern=("2:4",), prune_epochs=0,
                        progress=False, accel=True)
    df = explore(cfg)
    front = df[df["rank"] == 1]
    assert len(front) >= 1 and front["accel_lut"].notna().all() and (front["accel_interval"] > 0).all()
    for _, row in front.iterrows():
        assert "stages" in row["accel_source"] and ("N:M" in row["accel_source"]) == (row["engine"] != "dense")
