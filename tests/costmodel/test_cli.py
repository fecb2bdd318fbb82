from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from paretofab.cli import main


def test_cost_json_keys(capsys):
    assert main(["cost", "dot", "--lanes", "8", "--wfmt", "int4", "--afmt", "int4", "--k-max", "256",
                 "--device", "xczu3eg", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert list(d)[:8] == ["lut", "ff", "dsp", "bram18", "cycles", "fmax_mhz", "latency_us", "energy_nj"]
    assert {"resource_source", "error", "error_source", "fmax_source", "fmax_clamped", "fmax_cap_mhz",
            "energy_source"} <= set(d)
    assert d["cycles"] == 256 // 8 + 1 + 1
    assert d["latency_us"] == pytest.approx(d["cycles"] / d["fmax_mhz"])


def test_cost_sparse_table(capsys):
    assert main(["cost", "sparse", "--lanes", "4", "--pattern", "2:4", "--wfmt", "e4m3", "--afmt", "int8",
                 "--block", "64", "--block-density", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "held-out error median" in out and "LUTs" in out
    assert "ASIC" in out and "fits xc7z020" in out


@pytest.mark.parametrize("argv,msg", [
    (["cost", "dot", "--lanes", "8", "--wfmt", "int4", "--afmt", "int4", "--device", "xc9"], "unknown device"),
    (["cost", "dot", "--lanes", "0", "--wfmt", "int4", "--afmt", "int4"], "lanes"),
    (["cost", "sparse", "--lanes", "3", "--pattern", "2:4", "--wfmt", "int4", "--afmt", "int4"], "multiple of n"),
    (["cost", "dot", "--lanes", "4", "--wfmt", "e9m9", "--afmt", "int4"], "Valid formats"),
])
def test_cost_errors_exit_2_one_line(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _results(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"name": [f"p{i}" for i in range(n)], "accuracy": rng.random(n).round(3),
                         "lut": rng.integers(10, 5000, n), "latency_us": rng.random(n).round(3)})


def _brute_front(df, maximize, minimize):
    v = np.column_stack([-df[c].to_numpy(float) for c in maximize] + [df[c].to_numpy(float) for c in minimize])
    keep = [i for i in range(len(v)) if not any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v)))]
    return set(df["name"].iloc[keep])


def test_pareto_csv_and_sqlite(tmp_path, capsys):
    df = _results()
    csv = tmp_path / "res.csv"
    df.to_csv(csv, index=False)
    png = tmp_path / "front.png"
    front_csv = tmp_path / "front.csv"
    assert main(["pareto", str(csv), "--out", str(png), "--csv-out", str(front_csv)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    got = set(pd.read_csv(front_csv)["name"])
    assert got == _brute_front(df, ["accuracy"], ["lut", "latency_us"])
    db = tmp_path / "res.sqlite"
    with sqlite3.connect(db) as con:
        df.to_sql("results", con, index=False)
        df.head(5).to_sql("other", con, index=False)
    assert main(["pareto", str(db), "--out", str(png)]) == 2  # two tables: must pick one
    assert "--table" in capsys.readouterr().err
    assert main(["pareto", str(db), "--table", "results", "--minimize", "lut", "--maximize", "accuracy",
                 "--out", str(tmp_path / "f.svg"), "--csv-out", str(front_csv)]) == 0
    assert set(pd.read_csv(front_csv)["name"]) == _brute_front(df, ["accuracy"], ["lut"])


def test_pareto_costs_a_config_table(tmp_path, capsys):
    cfg = pd.DataFrame({"lanes": [1, 4, 16, 16], "wfmt": ["int4", "int4", "int2", "e4m3"],
                        "afmt": ["int4", "int4", "int2", "e4m3"], "k_max": 256})
    path = tmp_path / "configs.csv"
    cfg.to_csv(path, index=False)
    assert main(["pareto", str(path), "--minimize", "lut", "latency_us", "--out", str(tmp_path / "p.png")]) == 0
    assert "Pareto front" in capsys.readouterr().out


def test_pareto_bad_file(tmp_path, capsys):
    assert main(["pareto", str(tmp_path / "missing.csv")]) == 2
    assert main(["pareto", str(tmp_path / "x.csv"), "--minimize", "zzz"]) == 2


@pytest.mark.parametrize("name", ["dot", "sparse", "swa"])
def test_cost_example_in_help_runs(name, capsys):
    """The example each `cost ENGINE --help` shows is a command that works."""
    from costmodel.cli import COST_EXAMPLES

    with pytest.raises(SystemExit):
        main(["cost", name, "--help"])
    out = capsys.readouterr().out
    example = COST_EXAMPLES[name]
    assert example in " ".join(out.split()) and "synth" not in out.split("options:")[0]
    assert main(example.split()[1:]) == 0
    assert "cycles" in capsys.readouterr().out


def test_cost_swa_seq_len_and_its_old_spelling(capsys):
    base = ["cost", "swa", "--head-dim", "16", "--window", "16", "--lanes", "16", "--qk-fmt", "int8",
            "--v-fmt", "int8", "--json"]
    assert main(base + ["--seq-len", "128"]) == 0
    new = capsys.readouterr()
    assert main(base) == 0
    default = json.loads(capsys.readouterr().out)
    assert json.loads(new.out)["cycles"] > default["cycles"] and new.err == ""
    assert main(base + ["--n", "128"]) == 0  # deprecated alias: same numbers, one note
    old = capsys.readouterr()
    assert old.out == new.out and "deprecated" in old.err and "--seq-len" in old.err
    assert len(old.err.strip().splitlines()) == 1
