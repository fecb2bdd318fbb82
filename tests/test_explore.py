"""``paretofab explore`` end to end on a small configuration: front ranks against a brute-force
dominance check, cycles against the engines' own closed forms (on the pruned students' real
weight patterns for the block-skipping engine), Verilog of the front, resume."""

import json

import numpy as np
import pandas as pd
import pytest

from hw.engines import config_from_dict, engine
from models import prune as P
from models.workload import TraceSpec
from paretofab.explore import OBJECTIVES, ExploreConfig, explore, layer_workloads, train_student


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    cfg = ExploreConfig(out=str(out), method="none", arch="resnet", epochs=1, spread_seeds=2,
                        workload=TraceSpec(app="pr", scale=12, max_loads=200_000, max_rows=3000),
                        allow_degenerate=True, formats=("int4", "e2m3"), lanes=8, prune_epochs=1,
                        progress=False)
    return cfg, explore(cfg)


def test_front_matches_brute_force_dominance(small):
    _, df = small
    v = np.column_stack([-df["micro_f1"].to_numpy()] + [df[c].to_numpy(float) for c in OBJECTIVES])
    dominated = [any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v))) for i in range(len(v))]
    assert list(df["rank"] == 1) == [not d for d in dominated]
    assert set(df["engine"]) == {"dense", "2:4", "2:4+b8k0.5"} and set(df["format"]) == {"int4", "e2m3"}
    assert len(df) == 6


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
    assert layers and all(lr["k"] > 0 and lr["vectors"] > 0 for lr in layers)
    for _, row in df.iterrows():
        config = config_from_dict(json.loads(row["config"]))
        mod = engine(config.to_dict()["engine"])
        if getattr(config, "block", None):  # block skipping: the pruned weights' real zero blocks
            pruned = load_checkpoint(f"{cfg.out}/{row['student']}/student.pt")
            mods = dict(pruned.named_modules())
            wls = []
            for lr in layers:
                w = mods[lr["layer"]].weight.detach().numpy()
                nz = (w.reshape(w.shape[0], -1) != 0).astype(np.uint8)  # code 1 = a non-zero weight
                codes = np.tile(nz, (lr["vectors"] // len(nz), 1))
                wls.append(mod.Workload(codes, np.zeros_like(codes)))
            assert sum(mod.cycles(config, w) for w in wls) < sum(
                mod.cycles(config, mod.Workload(np.ones_like(w.w_codes), w.a_codes)) for w in wls)
        else:
            wls = [mod.Workload(np.zeros((lr["vectors"], lr["k"]), np.uint8),
                                np.zeros((lr["vectors"], lr["k"]), np.uint8)) for lr in layers]
        assert row["cycles"] == sum(mod.cycles(config, w) for w in wls)


def test_student_stage_is_keyed_by_its_options(small):
    """A changed option (here the app) never reuses another run's student; the seed spread is
    recorded for every training seed."""
    from dataclasses import replace

    cfg, df = small
    d = train_student(cfg)
    m = json.loads((d / "metrics.json").read_text())
    assert len(m["seed_f1"]) == 2 and m["seed_f1"][0] == pytest.approx(m["f1"])
    assert set(df["student"].str.split("/").str[1]) == {d.name}
    other = replace(cfg, workload=replace(cfg.workload, app="bc", skip_loads=10_000), spread_seeds=1)
    assert cfg.student_options() != other.student_options()
    d2 = train_student(other)
    assert d2 != d and json.loads((d2 / "metrics.json").read_text())["app"] == "bc"


def test_degenerate_trace_is_refused_before_training(tmp_path):
    from dataclasses import replace

    cfg = ExploreConfig(out=str(tmp_path), workload=TraceSpec(app="pr", scale=12, max_loads=200_000,
                                                              max_rows=3000), progress=False)
    with pytest.raises(ValueError, match="degenerate trace"):
        explore(cfg)
    assert not list(tmp_path.glob("students/*/student.pt"))
    assert replace(cfg, allow_degenerate=True).student_options() != cfg.student_options()


def test_front_verilog_and_resume(small):
    cfg, df = small
    rtl = sorted(p.name for p in (pd.io.common.Path(cfg.out) / "rtl").glob("*.v"))
    assert len(rtl) == int((df["rank"] == 1).sum())
    again = explore(cfg)  # every stage reused: same table
    pd.testing.assert_frame_equal(again.reset_index(drop=True), df.reset_index(drop=True))


def test_layer_workloads_count_lstm_gates():
    """An LSTM student's gate matmuls are dot products too: per step, 4·hidden rows of
    K = inputs + hidden (dense only); the head is one Linear."""
    import torch

    from models.zoo import build

    m = build("lstm", "student", steps=10, hidden=28)  # LSTM(10 -> 28) over 10 steps, Linear(28 -> 256)
    rows = layer_workloads(m, torch.rand(3, 10, 10))
    assert rows == [
        {"layer": "lstm.l0", "k": 10 + 28, "vectors": 4 * 28 * 10, "prunable": False},
        {"layer": "head", "k": 28, "vectors": 256, "prunable": True},
    ]
    macs = sum(r["k"] * r["vectors"] for r in rows)
    weights = sum(p.numel() for n, p in m.named_parameters() if "weight" in n)
    assert macs == 10 * (weights - 28 * 256) + 28 * 256  # every LSTM weight once per step


def test_attention_cost_of_a_swa_student():
    """Every head of every layer runs once per inference on one SWA kernel: cycles = heads ×
    layers × the kernel's closed-form cycles over the history; None without attention."""
    import torch

    from hw import swa
    from models.zoo import build
    from paretofab.explore import attention_cost

    cfg = ExploreConfig(lanes=16, device="xc7z020")
    m = build("swa", "student", depth=2)  # dim 24, 2 heads of 12, window 4, history 10
    att = attention_cost(m, torch.rand(1, 10, 10), cfg)
    kernel = swa.SWAConfig(12, 4, 12, "int8", "int8")
    assert att["cycles"] == 2 * 2 * swa.cycles(kernel, 10)
    assert att["lut"] > 0 and att["dsp"] > 0
    assert attention_cost(build("resnet", "student"), torch.rand(1, 10, 10), cfg) is None
