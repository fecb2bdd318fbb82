"""``paretofab explore --students DIR``: student size as a design axis from a GTN folder (digits, or MAP
traces: the ResNet students ``rDwW``), and the one student of a ``paretofab datafree`` folder.

References are independent of the code under test: the front against a brute-force dominance
check over every point; each point's accuracy against a fresh Brevitas quantization
(``quant.ptq.quantize_model``) of the freshly loaded student, scored by a hand-written argmax on a
freshly loaded split, and its float accuracy against the one ``paretofab gtn`` measured when it
trained the student (so the split is the one it trained on); each layer's dot products against the
closed form of a 3×3 convolution (out_h·out_w·cout dot products of K = cin·9), and the cycles
against the engine's own ``cycles()``; the winners against a brute-force search of each budget.
For a MAP folder: each point's accuracy against a fresh quantization of the student reloaded with
``models.zoo``, scored by scikit-learn's micro-F1 on the splits beside the students at the
threshold (0.05 … 0.95) of best validation micro-F1, searched here; each layer's dot products
against the closed form of the ResNet's convolutions and head.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from hw.engines import config_from_dict, engine
from models import map_data, traces, zoo
from models.datafree import run as R
from models.datafree.dafl import DAFLConfig
from models.datafree.inversion import InversionConfig
from models.datafree.kd import KDConfig
from models.digits_data import load_data
from models.gtn import GTNConfig
from models.gtn_map import MapSpec
from models.gtn_pool import DEFAULT_POOL, DigitsCNN, StudentSpec, load_student, parse_pool, save_student
from models.prune import Pattern
from paretofab.cli import main
from paretofab.costing import COST_KEYS, network_cost
from paretofab.explore_students import (KINDS, OBJECTIVES, StudentsConfig, explore_students, lane_counts,
                                        open_folder, rank, student_layers, winners)
from paretofab.mapping import engine_for, layer_workloads
from quant.ptq import PTQConfig, quantize_model
from quant.sweep import SweepSpace, grid

POOL = "d1w4,d2w8"
FORMATS = ("int4", "int8")


@pytest.fixture(scope="module")
def gtn_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("gtn") / "run"
    rc = main(["gtn", "--data", "digits", "--pool", POOL, "--teacher", "d1w8", "--epochs", "2", "--custom", "none",
               "--threads", "1", "-o", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def ran(gtn_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore_students")
    cfg = StudentsConfig(str(gtn_folder), out=str(out), formats=FORMATS, lanes=4, threads=1, progress=False)
    return cfg, explore_students(cfg)


def test_every_point_is_there_and_written(ran):
    cfg, df = ran
    assert set(zip(df.student, df.format, df.lanes)) == {(s, f, la) for s in ("d1w4", "d2w8") for f in FORMATS
                                                       for la in (1, 2, 4)}
    assert len(df) == 2 * 2 * 3
    out = pd.read_csv(f"{cfg.out}/pareto.csv")
    assert len(out) == len(df) and (out["rank"] == df["rank"]).all()
    for name in ("pareto_lut_accuracy.png", "pareto_latency_accuracy.png", "winners.csv"):
        assert (Path(cfg.out) / name).stat().st_size > 0
    front = df[df["rank"] == 1]
    designs = {f"dot_l{r.lanes}_{r.format}_{r.format}_k{json.loads(r.config)['k_max']}.v" for r in front.itertuples()}
    assert {p.name for p in (Path(cfg.out) / "rtl").glob("*.v")} == designs


def test_front_matches_brute_force_dominance(ran):
    _, df = ran
    v = np.column_stack([-df["accuracy"].to_numpy()] + [df[c].to_numpy(float) for c in OBJECTIVES])
    dominated = [any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v))) for i in range(len(v))]
    assert list(df["rank"] == 1) == [not d for d in dominated]
    assert (df["rank"] == 1).any()
    # a worse copy of every student (same engines, 1 point less accurate) is dominated, the rest unmoved
    pts = df[["student", "params", "format", "ptq", "accuracy", "float_accuracy"]].drop_duplicates()
    costs = df[["student", "format", "lanes", "macs", "config", *COST_KEYS]].drop_duplicates()
    worse = pts.assign(student=pts["student"] + "x", accuracy=pts["accuracy"] - 0.01)
    again = rank(pd.concat([pts, worse]), pd.concat([costs, costs.assign(student=costs["student"] + "x")]))
    assert (again.loc[again["student"].str.endswith("x"), "rank"] > 1).all()
    mine = again[~again["student"].str.endswith("x")].set_index("name")["rank"]
    assert mine.sort_index().equals(df.set_index("name")["rank"].sort_index())


def test_accuracy_equals_a_fresh_quantization_of_the_student(ran, gtn_folder):
    cfg, df = ran
    results = pd.read_csv(gtn_folder / "results.csv")
    data = load_data(0)  # the split paretofab gtn trained on (its --seed, default 0)
    for (student, fmt), rows in df.groupby(["student", "format"]):
        model = load_student(gtn_folder / "students" / f"{student}-generic-seed0.pt")
        q = quantize_model(model, fmt, fmt, calib_data=data.x_train[:256], config=PTQConfig(seed=0))
        with torch.no_grad():
            acc = int((q.eval()(data.x_test).argmax(1) == data.y_test).sum()) / len(data.y_test)
        assert rows["accuracy"].to_numpy() == pytest.approx(acc, abs=1e-12), (student, fmt)
        trained = results[(results.student == student) & (results.teacher == "generic")]["accuracy"].item()
        assert rows["float_accuracy"].to_numpy() == pytest.approx(trained, abs=1e-6), "the split it trained on"  # gtn: float32


@pytest.mark.parametrize("spec", DEFAULT_POOL.split(","))
def test_conv_layers_are_their_macs(spec):
    s = StudentSpec.parse(spec)
    layers = layer_workloads(DigitsCNN(s.depth, s.width), torch.zeros(1, 1, 8, 8))
    w = s.width
    expect = [(9 * 1, 8 * 8 * w)] + [(9 * w, 8 * 8 * w)] * (s.depth - 1) + [(w * 16, 10)]
    assert [(lr.k, lr.vectors) for lr in layers] == expect
    macs = sum(lr.k * lr.vectors for lr in layers)
    assert macs == sum(8 * 8 * cin * w * 9 for cin in [1] + [w] * (s.depth - 1)) + w * 16 * 10


def test_cycles_are_the_engines_and_grow_with_macs():
    pool = parse_pool(DEFAULT_POOL)
    for fmt in ("int4", "e4m3"):
        for lanes in (1, 4, 16):
            got = []
            for s in pool:
                layers = layer_workloads(DigitsCNN(s.depth, s.width), torch.zeros(1, 1, 8, 8))
                config = engine_for(Pattern(), fmt, max(lr.k for lr in layers), lanes)
                mod = engine(config.to_dict()["engine"])
                cycles = network_cost(config, layers, "xc7z020")["cycles"]
                wls = [mod.Workload(np.zeros((lr.vectors, lr.k), np.uint8), np.zeros((lr.vectors, lr.k), np.uint8))
                       for lr in layers]
                assert cycles == sum(mod.cycles(config, wl) for wl in wls)
                got.append((sum(lr.k * lr.vectors for lr in layers), cycles))
            got.sort()
            assert all(b[1] > a[1] for a, b in zip(got, got[1:]) if b[0] > a[0]), (fmt, lanes, got)


def test_costed_layers_match_the_students(ran, gtn_folder):
    _, df = ran
    for student, rows in df.groupby("student"):
        layers = student_layers(gtn_folder / "students" / f"{student}-generic-seed0.pt")
        assert (rows["macs"] == sum(lr.k * lr.vectors for lr in layers)).all()
        for r in rows.itertuples():
            config = config_from_dict(json.loads(r.config))
            assert (config.lanes, str(config.wfmt), config.k_max) == (r.lanes, r.format, max(lr.k for lr in layers))
    # more lanes: fewer cycles, more LUTs, same student
    for _, g in df.groupby(["student", "format", "ptq"]):
        g = g.sort_values("lanes")
        assert g["cycles"].is_monotonic_decreasing and g["lut"].is_monotonic_increasing


def test_winners_are_the_best_fit_and_on_the_front(ran):
    _, df = ran
    w = winners(df)
    assert len(w) == w["lut_budget"].nunique() * w["latency_budget_us"].nunique()
    for r in w.itertuples():
        fit = df[(df.lut <= r.lut_budget) & (df.latency_us <= r.latency_budget_us)]
        if fit.empty:
            assert pd.isna(r.name)
            continue
        assert r.accuracy == fit["accuracy"].max()
        assert df.loc[df.name == r.name, "rank"].eq(1).all(), "a winner is never dominated"
    assert w["name"].notna().any()
    big = winners(df, [1e9], [1e9]).iloc[0]
    assert big["accuracy"] == df["accuracy"].max()


def test_lane_counts():
    assert lane_counts(16) == (1, 2, 4, 8, 16)
    assert lane_counts(12) == (1, 2, 4, 8, 12)
    assert lane_counts(1) == (1,)


def test_wrong_split_seed_is_refused(gtn_folder):
    ckpt = str(gtn_folder / "students" / "d1w4-generic-seed0.pt")
    assert len(grid(SweepSpace([ckpt], ["int8"], ["int8"], seeds=[0]))) == 1
    with pytest.raises(ValueError, match="seed 0"):
        grid(SweepSpace([ckpt], ["int8"], ["int8"], seeds=[1]))


def _one_line_exit_2(argv, capsys, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_bad_folders_and_options_are_one_line_exit_2(gtn_folder, tmp_path, capsys):
    base = ["explore", "--students"]
    out = ["-o", str(tmp_path / "o")]
    _one_line_exit_2(base + [str(tmp_path / "nowhere")] + out, capsys, "no such folder", "paretofab gtn")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_exit_2(base + [str(empty)] + out, capsys, "results.csv", "paretofab gtn")
    _one_line_exit_2(base + [str(gtn_folder), "--teacher", "genric"] + out, capsys, "--teacher", "generic")
    _one_line_exit_2(base + [str(gtn_folder), "--teacher", "custom"] + out, capsys, "no students of that teacher")
    _one_line_exit_2(base + [str(gtn_folder), "--seed", "3"] + out, capsys, "--seed 0")
    _one_line_exit_2(base + [str(gtn_folder), "--arch", "swa"] + out, capsys, "--arch", "drop it")
    _one_line_exit_2(base + [str(gtn_folder), "--formats", "int3x"] + out, capsys)
    assert not (tmp_path / "o").exists(), "refused before any work"


def test_missing_checkpoint_is_one_line_exit_2(gtn_folder, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(gtn_folder, copy)
    (copy / "students" / "d2w8-generic-seed0.pt").unlink()
    _one_line_exit_2(["explore", "--students", str(copy), "-o", str(tmp_path / "o")], capsys,
                     "d2w8-generic-seed0.pt is missing")
    with pytest.raises(ValueError, match="is missing"):
        open_folder(copy)


# ---- the one student of a `paretofab datafree` folder ----------------------------------------------

def _datafree_folder(path: Path, seed: int = 0, method: str = "dynamic") -> Path:
    """What ``paretofab datafree -o DIR`` leaves that explore reads, written by hand: an untrained
    d1w4 student, run.json, metrics.json."""
    path.mkdir(parents=True)
    torch.manual_seed(0)
    save_student(path / "student.pt", DigitsCNN(1, 4), seed=seed, method=method)
    (path / "run.json").write_text(json.dumps({"split_seed": 0, "method": method, "seed": seed}))
    (path / "metrics.json").write_text(json.dumps({"accuracy": 0.25}))
    return path


def test_a_datafree_folder_is_a_pool_of_one(tmp_path):
    d = _datafree_folder(tmp_path / "df", seed=2)
    f = open_folder(d, seed=2)
    params = sum(p.numel() for p in DigitsCNN(1, 4).parameters())
    assert f.students == (("d1w4", params, d / "student.pt"),)
    assert (f.teacher, f.seed, f.split_seed) == ("datafree:dynamic", 2, 0)
    assert f.float_accuracy.to_dict("records") == [{"student": "d1w4", "params": params, "seed": 2, "accuracy": 0.25}]


def test_bad_datafree_folders_and_options_are_one_line_exit_2(tmp_path, capsys):
    d = _datafree_folder(tmp_path / "df")
    out = ["-o", str(tmp_path / "o")]
    _one_line_exit_2(["explore", "--students", str(d), "--seed", "1"] + out, capsys, "--seed 0")
    _one_line_exit_2(["explore", "--students", str(d), "--teacher", "standard"] + out, capsys, "drop --teacher")
    (d / "metrics.json").unlink()
    _one_line_exit_2(["explore", "--students", str(d)] + out, capsys, "metrics.json")
    (d / "student.pt").unlink()
    _one_line_exit_2(["explore", "--students", str(d)] + out, capsys, "no student.pt", "paretofab datafree")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_exit_2(["explore", "--students", str(empty)] + out, capsys, "paretofab gtn", "paretofab datafree")
    assert not (tmp_path / "o").exists(), "refused before any work"


def test_explore_takes_a_datafree_student_end_to_end(tmp_path, monkeypatch, capsys):
    """``paretofab datafree`` (the quick budget shrunk to seconds, seed 1) then ``paretofab explore
    --students DIR --seed 1``: every (format, lanes) point of the one student, its accuracy that of
    a fresh quantization on the digits split of run.json, its float accuracy the one metrics.json
    measured when the student was distilled."""
    monkeypatch.setitem(R.BUDGETS, "quick", R.Budget(
        teacher_epochs=1, real=GTNConfig(student_epochs=1, patience=1), images=20, batch=10,
        inversion=InversionConfig(steps=3), kd=KDConfig(epochs=2), dafl=DAFLConfig(iterations=2),
        condense_iterations=1))
    d = tmp_path / "df"
    assert main(["datafree", "--method", "inversion", "--student", "d1w4", "--seed", "1", "-o", str(d)]) == 0
    out = tmp_path / "explore"
    assert main(["explore", "--students", str(d), "--seed", "1", "--formats", ",".join(FORMATS), "--lanes", "2",
                 "--threads", "1", "-o", str(out)]) == 0
    assert "datafree:deepinv-teacher" in capsys.readouterr().out
    df = pd.read_csv(out / "pareto.csv")
    assert sorted(zip(df.student, df.format, df.lanes)) == sorted(("d1w4", f, la) for f in FORMATS for la in (1, 2))
    split = json.loads((d / "run.json").read_text())["split_seed"]
    data = load_data(split)
    model = load_student(d / "student.pt")
    for fmt, rows in df.groupby("format"):
        q = quantize_model(model, fmt, fmt, calib_data=data.x_train[:256], config=PTQConfig(seed=split))
        with torch.no_grad():
            acc = int((q.eval()(data.x_test).argmax(1) == data.y_test).sum()) / len(data.y_test)
        assert rows["accuracy"].to_numpy() == pytest.approx(acc, abs=1e-12), fmt
    measured = json.loads((d / "metrics.json").read_text())["accuracy"]
    assert df["float_accuracy"].to_numpy() == pytest.approx(measured, abs=1e-6)
    assert (out / "winners.csv").stat().st_size > 0 and list((out / "rtl").glob("*.v"))


# ---- a MAP GTN folder (`paretofab gtn --data TRACE-FOLDER`): ResNet students rDwW -----------------------

MAP_POOL = ("r1w4", "r1w8")
MAP_LANES = (1, 2)


@pytest.fixture(scope="module")
def map_gtn(tmp_path_factory):
    """A MAP GTN folder: two students of one epoch on 1,200 rows of a small pr trace (scale 12 with
    small caches: not degenerate), no custom teacher; ~3 s on one core."""
    base = tmp_path_factory.mktemp("gtn_map")
    tr = traces.generate(traces.TraceConfig("pr", scale=12, seed=0, max_loads=200_000, l1_kb=3, l2_kb=8))
    (base / "trace").mkdir()
    traces.write_trace(base / "trace" / "pr.txt", tr)
    out = base / "run"
    assert main(["gtn", "--data", str(base / "trace"), "--pool", ",".join(MAP_POOL), "--teacher", "r1w8", "--rows",
                 "1200", "--epochs", "1", "--custom", "none", "--threads", "1", "--jobs", "1", "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def explored(map_gtn, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore_map") / "o"
    assert main(["explore", "--students", str(map_gtn), "--formats", ",".join(FORMATS), "--lanes", str(MAP_LANES[-1]),
                 "--threads", "1", "--jobs", "1", "--no-progress", "-o", str(out)]) == 0
    return out, pd.read_csv(out / "pareto.csv")


def test_the_folder_kind_is_detected(map_gtn, gtn_folder):
    assert open_folder(gtn_folder).kind is KINDS["digits"]
    f = open_folder(map_gtn)
    assert f.kind is KINDS["map"] and f.split_seed == 0
    assert [s[:2] for s in f.students] == [(s, MapSpec.parse(s).params) for s in MAP_POOL]


def test_every_student_format_and_lanes_is_explored_and_written(explored):
    out, df = explored
    assert sorted(zip(df.student, df.format, df.lanes)) == sorted((s, f, la) for s in MAP_POOL for f in FORMATS
                                                                  for la in MAP_LANES)
    assert set(df["metric"]) == {"micro_f1@val"} and df["accuracy"].between(0, 1).all()
    assert (df["rank"] == 1).any()
    for name in ("pareto_lut_accuracy.png", "pareto_latency_accuracy.png", "winners.csv"):
        assert (out / name).stat().st_size > 0
    front = df[df["rank"] == 1]
    designs = {f"dot_l{r.lanes}_{r.format}_{r.format}_k{json.loads(r.config)['k_max']}.v" for r in front.itertuples()}
    assert {p.name for p in (out / "rtl").glob("*.v")} == designs


def _micro_f1_at_val_best(model: torch.nn.Module, sp: dict[str, np.ndarray]) -> float:
    """The MAP protocol, by hand: test micro-F1 (scikit-learn) at the threshold among 0.05, 0.10 …
    0.95 of best validation micro-F1 (ties: the lowest), on float64 sigmoid probabilities."""
    with torch.no_grad():
        zv = model.eval()(torch.as_tensor(sp["x_val"])).double().numpy()
        zt = model(torch.as_tensor(sp["x_test"])).double().numpy()
    pv, pt = 1 / (1 + np.exp(-zv)), 1 / (1 + np.exp(-zt))
    yv, yt = sp["y_val"].astype(int), sp["y_test"].astype(int)
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    scores = [f1_score(yv, (pv >= t).astype(int), average="micro", zero_division=0) for t in grid]
    t = grid[int(np.argmax(scores))]
    return f1_score(yt, (pt >= t).astype(int), average="micro", zero_division=0)


def test_accuracy_equals_a_fresh_quantization_scored_with_sklearn(explored, map_gtn):
    _, df = explored
    sp = map_data.load_splits(map_gtn / "students" / "data.npz")
    student, fmt = "r1w8", "int4"
    model = zoo.load_checkpoint(map_gtn / "students" / f"{student}-generic-seed0.pt")
    q = quantize_model(model, fmt, fmt, calib_data=torch.as_tensor(sp["x_train"][:256]), config=PTQConfig(seed=0))
    rows = df[(df.student == student) & (df.format == fmt)]
    assert rows["accuracy"].to_numpy() == pytest.approx(_micro_f1_at_val_best(q, sp), abs=1e-6)
    trained = pd.read_csv(map_gtn / "results.csv").query("student == @student and teacher == 'generic'")
    assert rows["float_accuracy"].to_numpy() == pytest.approx(trained["accuracy"].item(), abs=1e-6)


def test_costed_layers_are_the_resnets(explored, map_gtn):
    _, df = explored
    for name in MAP_POOL:
        s = MapSpec.parse(name)
        layers = student_layers(map_gtn / "students" / f"{name}-generic-seed0.pt", KINDS["map"])
        # 10×10 positions: stem 3×3 (K 9), 1×1 to mid, 3×3 mid, 1×1 to width, 1×1 shortcut; head 256 of K width
        expect = [(9, 100 * s.stem), (s.stem, 100 * s.mid), (9 * s.mid, 100 * s.mid), (s.mid, 100 * s.width),
                  (s.stem, 100 * s.width), (s.width, 256)]
        assert sorted((lr.k, lr.vectors) for lr in layers) == sorted(expect)
        assert (df.loc[df.student == name, "macs"] == sum(k * v for k, v in expect)).all()
    for _, g in df.groupby(["student", "format"]):
        g = g.sort_values("lanes")
        assert g["cycles"].is_monotonic_decreasing and g["lut"].is_monotonic_increasing


def test_a_folder_of_neither_kind_is_one_line_exit_2(map_gtn, tmp_path, capsys):
    out = ["-o", str(tmp_path / "o")]
    other = tmp_path / "other"
    (other / "students").mkdir(parents=True)
    (other / "results.csv").write_text((map_gtn / "results.csv").read_text())
    (other / "run.json").write_text(json.dumps({"data": "cifar", "split_seed": 0}))
    _one_line_exit_2(["explore", "--students", str(other)] + out, capsys, "'cifar'", "neither digits nor map",
                     "paretofab gtn")
    (other / "run.json").write_text(json.dumps({"data": "map", "split_seed": 0}))
    _one_line_exit_2(["explore", "--students", str(other)] + out, capsys, "students/data.npz")
    (other / "students" / "data.npz").write_bytes((map_gtn / "students" / "data.npz").read_bytes())
    for s in MAP_POOL:  # digits checkpoints where MAP students belong
        torch.save({"state_dict": {}, "meta": {"arch": "digits-cnn"}}, other / "students" / f"{s}-generic-seed0.pt")
    _one_line_exit_2(["explore", "--students", str(other)] + out, capsys, "not a map student")
    assert not (tmp_path / "o").exists(), "refused before any work"


def test_a_degenerate_trace_is_refused_unless_allowed(map_gtn, tmp_path, capsys, monkeypatch):
    import quant.sweep as S
    from models.trace_stats import DegenerateTraceError

    def degenerate(stats, allow_degenerate=False):
        raise DegenerateTraceError("degenerate trace: made so here")

    monkeypatch.setattr(S, "check_workload", degenerate)
    argv = ["explore", "--students", str(map_gtn), "--formats", "int8", "--lanes", "1", "--threads", "1",
            "--no-progress"]
    _one_line_exit_2(argv + ["-o", str(tmp_path / "a")], capsys, "degenerate trace")
    assert main(argv + ["--allow-degenerate", "-o", str(tmp_path / "b")]) == 0
    assert len(pd.read_csv(tmp_path / "b" / "pareto.csv")) == len(MAP_POOL)
