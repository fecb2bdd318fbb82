"""quant.sweep: resumable SQLite store (SIGKILL-safe, one row per point), Dask and process
workers, clear errors for bad stores / formats / techniques / calibration sets (API and CLI)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from paretofab.cli import main
from quant.formats import FormatError
from quant.ptq import TechniqueError
from quant.sweep import SCHEMA, StoreError, SweepPoint, SweepSpace, grid, load_results, run_sweep

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    old = os.environ.get("PARETOFAB_CACHE")
    os.environ["PARETOFAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["PARETOFAB_CACHE"]
    else:
        os.environ["PARETOFAB_CACHE"] = old


def _rows(path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT count(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_key_is_hash_of_full_config():
    a = SweepPoint("digits", "int4", "int8", "weq+gptq", 0)
    assert a.key == SweepPoint("digits", "int4", "int8", "weq+gptq", 0).key
    assert len({a.key, SweepPoint("digits", "int4", "int8", "weq+gptq", 1).key,
                SweepPoint("digits", "int4", "int8", "gptq", 0).key,
                SweepPoint("digits", "int4", "int8", "weq+gptq", 0, per_channel=False).key}) == 4
    # normalised: spelling and technique order do not change the key
    (p,) = grid(SweepSpace(["digits"], ["INT4"], ["int8"], ["gptq+weq"]))
    assert p.key == a.key


def test_sweep_store_and_rerun(tmp_path):
    out = tmp_path / "s.sqlite"
    pts = grid(SweepSpace(["digits"], ["int8", "e2m1"], ["int8"], ["none", "bias_corr"]))
    r = run_sweep(pts, out, progress=False)
    assert (r["done"], r["skipped"]) == (4, 0)
    df = load_results(out)
    assert len(df) == 4 and df["key"].is_unique
    assert set(df["wfmt"]) == {"int8", "e2m1"} and set(df["ptq"]) == {"none", "bias_corr"}
    assert (df["metric_name"] == "accuracy").all()
    assert ((df["metric"] > 0.9) & (df["metric"] <= 1)).all()
    assert df["per_channel"].dtype == bool
    before = out.read_bytes()
    r = run_sweep(pts + grid(SweepSpace(["digits"], ["int4"], ["int8"], ["none"])), out, progress=False)
    assert (r["done"], r["skipped"]) == (1, 4)
    assert len(load_results(out)) == 5
    assert before != out.read_bytes()


def test_cli_sweep_and_results(tmp_path, capsys):
    out = tmp_path / "c.sqlite"
    assert main(["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8,e4m3", "--ptq", "none",
                 "-o", str(out), "-q"]) == 0
    assert "2 points run" in capsys.readouterr().out
    assert main(["results", str(out), "--csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("key,") and len(csv) == 3
    assert main(["results", str(out)]) == 0
    assert "e4m3" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["--wfmt", "int9"], "2..8 bits"),
    (["--wfmt", "fp8"], "Valid formats"),
    (["--afmt", "e0m3"], "exponent"),
    (["--ptq", "none,adaround"], "unknown PTQ technique 'adaround'"),
    (["--n-calib", "0"], "calibration"),
    (["--model", "no/such/student.pt"], "not found|no such"),
    (["--seeds", "a"], "seeds"),
    (["--jobs", "0"], "jobs"),
])
def test_cli_errors_one_line(tmp_path, capsys, argv, msg):
    import re

    out = tmp_path / "e.sqlite"
    args = {"--model": "digits", "--wfmt": "int8", "--afmt": "int8", "--ptq": "none"}
    rest = []
    for k, v in zip(argv[::2], argv[1::2]):
        if k in args:
            args[k] = v
        else:
            rest += [k, v]
    cmd = ["sweep", *[x for kv in args.items() for x in kv], *rest, "-o", str(out), "-q"]
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("paretofab sweep: error:")
    assert re.search(msg, err), err


def test_api_errors():
    with pytest.raises(FormatError):
        grid(SweepSpace(["digits"], ["int4", "e9m9"], ["int8"]))
    with pytest.raises(TechniqueError):
        grid(SweepSpace(["digits"], ["int4"], ["int8"], ["gptq+magic"]))
    with pytest.raises(ValueError, match="calibration"):
        grid(SweepSpace(["digits"], ["int4"], ["int8"], n_calib=0))
    with pytest.raises(ValueError, match="no wfmts"):
        grid(SweepSpace(["digits"], [], ["int8"]))
    with pytest.raises(FileNotFoundError):
        load_results("/nonexistent/x.sqlite")


@pytest.mark.parametrize("kind", ["garbage", "foreign", "wrong_schema"])
def test_bad_store_is_refused_and_untouched(tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.sqlite"
    if kind == "garbage":
        path.write_bytes(b"this is not a database\x00" * 100)
    else:
        con = sqlite3.connect(path)
        with con:
            if kind == "foreign":
                con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
                con.execute("INSERT INTO customers VALUES (1, 'x')")
            else:
                con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                con.execute("CREATE TABLE points (key TEXT)")
                con.execute("INSERT INTO meta VALUES ('schema', 'someone-else-7')")
        con.close()
    before = path.read_bytes()
    pts = grid(SweepSpace(["digits"], ["int8"], ["int8"]))
    with pytest.raises(StoreError, match="untouched"):
        run_sweep(pts, path, progress=False)
    with pytest.raises(StoreError):
        load_results(path)
    assert main(["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", "-o", str(path), "-q"]) == 2
    assert main(["results", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("paretofab ") for e in err)
    assert path.read_bytes() == before


def test_sigkill_mid_sweep_then_rerun(tmp_path):
    """Kill the sweep process with SIGKILL after it stored some points; the rerun completes the
    grid and every point appears exactly once."""
    out = tmp_path / "k.sqlite"
    argv = ["--model", "digits", "--wfmt", "int8,int4,e2m1,e3m2,int6,e4m3", "--afmt", "int8",
            "--ptq", "none", "-o", str(out), "-q"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "paretofab.cli", "sweep", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and _rows(out) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    n_killed = _rows(out)
    assert 2 <= n_killed < 6, f"{n_killed} rows at kill time: the kill did not land mid-sweep"
    assert main(["sweep", *argv]) == 0
    df = load_results(out)
    assert len(df) == 6 and df["key"].is_unique
    assert sorted(df["wfmt"]) == sorted(["int8", "int4", "e2m1", "e3m2", "int6", "e4m3"])


def test_dask_local_cluster(tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "d.sqlite"
    pts = grid(SweepSpace(["digits"], ["int8", "e3m2"], ["int8"], ["none"]))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        r = run_sweep(pts[:1], out, scheduler=cluster.scheduler_address, progress=False)  # by address
        with Client(cluster) as client:
            r2 = run_sweep(pts, out, scheduler=client, progress=False)  # by client; resumes
    assert (r["done"], r2["done"], r2["skipped"]) == (1, 1, 1)
    local = tmp_path / "l.sqlite"
    run_sweep(pts, local, progress=False)
    a, b = load_results(out), load_results(local)
    assert list(a["key"]) == list(b["key"])
    assert list(a["metric"]) == list(b["metric"])  # same seed, same numbers, wherever it ran


@pytest.mark.slow
def test_process_workers(tmp_path):
    out = tmp_path / "j.sqlite"
    pts = grid(SweepSpace(["digits"], ["int8", "e3m2", "int4"], ["int8"], ["none"]))
    assert run_sweep(pts, out, jobs=2, progress=False)["done"] == 3
    local = tmp_path / "l.sqlite"
    run_sweep(pts, local, progress=False)
    assert list(load_results(out)["metric"]) == list(load_results(local)["metric"])


@pytest.fixture(scope="module")
def lstm_student(tmp_path_factory):
    """A tiny (untrained) LSTM student folder: student.pt + data.npz of random MAP-shaped data."""
    import numpy as np

    from models.map_data import save_splits
    from models.zoo import build, preset_kwargs, save_checkpoint

    d = tmp_path_factory.mktemp("lstm_student")
    torch.manual_seed(0)
    save_checkpoint(d / "student.pt", build("lstm", "student"),
                    {"arch": "lstm", "preset": "student", "kwargs": preset_kwargs("lstm", "student")})
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 64), ("val", 32), ("test", 32)):
        splits[f"x_{split}"] = (rng.integers(0, 64, (n, 10, 10)) / 64.0).astype(np.float32)
        splits[f"y_{split}"] = rng.random((n, 256)) < 0.1
        splits[f"block_{split}"] = rng.integers(0, 1 << 20, (n, 10))
        splits[f"ip_{split}"] = np.zeros((n, 10), np.int64)
    save_splits(d / "data.npz", splits)
    return d


def test_degenerate_student_is_refused_before_any_work(tmp_path, capsys, lstm_student):
    """Random labels with no IP signal: the sweep refuses the student with one line naming the fix,
    writes no store, and goes on with --allow-degenerate."""
    out = tmp_path / "d.sqlite"
    with pytest.raises(ValueError, match="degenerate trace.*--allow-degenerate"):
        grid(SweepSpace([str(lstm_student)], ["int8"], ["int8"]))
    argv = ["sweep", "--model", str(lstm_student), "--wfmt", "int8", "--afmt", "int8", "-o", str(out), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "degenerate" in err and "\n" not in err and not out.exists()
    assert len(grid(SweepSpace([str(lstm_student)], ["int8"], ["int8"]), allow_degenerate=True)) == 1


def test_failing_point_is_recorded_and_does_not_stop_the_sweep(tmp_path, capsys, lstm_student):
    """bias_corr is refused for LSTM models: that point lands in `failures`, the others in `points`;
    the CLI exits 1 naming the error; a rerun tries the failed point again (and only it)."""
    from quant.sweep import load_failures

    out = tmp_path / "f.sqlite"
    pts = grid(SweepSpace([str(lstm_student)], ["int8"], ["int8"], ["bias_corr", "none"]), allow_degenerate=True)
    r = run_sweep(pts, out, progress=False)
    assert (r["done"], r["failed"]) == (1, 1)
    (err,) = r["errors"].values()
    assert err.startswith("TechniqueError: bias_corr")
    assert list(load_results(out)["ptq"]) == ["none"]
    fails = load_failures(out)
    assert list(fails["ptq"]) == ["bias_corr"] and fails["error"].iloc[0] == err
    argv = ["sweep", "--model", str(lstm_student), "--wfmt", "int8", "--afmt", "int8", "--ptq", "bias_corr,none",
            "--allow-degenerate", "-o", str(out), "-q"]
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert "0 points run, 1 already in" in text and "1 × TechniqueError: bias_corr" in text
    assert main(["results", str(out), "--failed"]) == 0
    assert "bias_corr" in capsys.readouterr().out
    assert len(load_failures(out)) == 1 and len(load_results(out)) == 1


def test_sparsity_axis(tmp_path, capsys):
    """Sparse points prune one-shot before quantizing: their float metric is the pruned float
    model's (lower than dense), keys of dense points are those of stores without the axis."""
    import hashlib
    import json

    out = tmp_path / "sp.sqlite"
    pts = grid(SweepSpace(["digits"], ["int8"], ["int8"], sparsities=["dense", "1:4", "2:4+b8k.5"]))
    assert [p.sparsity for p in pts] == ["dense", "1:4", "2:4+b8k0.5"]
    blob = json.dumps({"model": "digits", "wfmt": "int8", "afmt": "int8", "ptq": "none", "seed": 0,
                       "per_channel": True, "n_calib": 256}, sort_keys=True, separators=(",", ":"))
    assert pts[0].key == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert len({p.key for p in pts}) == 3
    run_sweep(pts, out, progress=False)
    df = load_results(out).set_index("sparsity")
    assert df.loc["1:4", "float_metric"] < df.loc["dense", "float_metric"]
    assert df.loc["2:4+b8k0.5", "float_metric"] < df.loc["dense", "float_metric"]
    assert main(["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", "--sparsity", "3:2",
                 "-o", str(out), "-q"]) == 2
    assert "N" in capsys.readouterr().err


def test_store_without_sparsity_column_is_upgraded(tmp_path):
    from quant.sweep import open_store

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
        con.execute(
            "CREATE TABLE points (key TEXT PRIMARY KEY, model TEXT NOT NULL, wfmt TEXT NOT NULL, "
            "afmt TEXT NOT NULL, ptq TEXT NOT NULL, seed INTEGER NOT NULL, per_channel INTEGER NOT NULL, "
            "n_calib INTEGER NOT NULL, metric_name TEXT NOT NULL, metric REAL NOT NULL, val_metric REAL, "
            "float_metric REAL, seconds REAL NOT NULL, finished_utc TEXT NOT NULL, config TEXT NOT NULL)")
        con.execute("INSERT INTO points VALUES ('k', 'digits', 'int8', 'int8', 'none', 0, 1, 256, 'accuracy', "
                    "0.9, 0.9, 0.95, 1.0, 't', '{}')")
    con.close()
    assert list(load_results(path)["sparsity"]) == ["dense"]  # read-only view
    open_store(path).close()
    df = load_results(path)
    assert list(df["sparsity"]) == ["dense"] and list(df["metric"]) == [0.9]


def test_map_threshold_protocol(tmp_path, lstm_student):
    """MAP points score test micro-F1 at the validation-best threshold by default (as `distill`
    reports) or at 0.5; both recomputed here from the quantized model's logits with numpy."""
    import numpy as np

    from models.map_data import load_splits
    from quant.ptq import PTQConfig, quantize_model
    from quant.sweep import load_workload

    out = tmp_path / "t.sqlite"
    pts = (grid(SweepSpace([str(lstm_student)], ["int8"], ["int8"]), allow_degenerate=True)
           + grid(SweepSpace([str(lstm_student)], ["int8"], ["int8"], threshold="0.5"), allow_degenerate=True))
    assert [p.threshold for p in pts] == ["val", "0.5"] and pts[0].key != pts[1].key
    assert grid(SweepSpace(["digits"], ["int8"], ["int8"]))[0].threshold == "0.5"  # accuracy: no threshold
    run_sweep(pts, out, progress=False)
    df = load_results(out).set_index("metric_name")
    assert set(df.index) == {"micro_f1@val", "micro_f1"}

    sp = load_splits(lstm_student / "data.npz")
    wl = load_workload(str(lstm_student))
    q = quantize_model(wl.model, "int8", "int8", calib_data=wl.calib, config=PTQConfig(seed=0))
    with torch.no_grad():
        pv = torch.sigmoid(q(torch.as_tensor(sp["x_val"]))).numpy()
        pt = torch.sigmoid(q(torch.as_tensor(sp["x_test"]))).numpy()

    def f1(p, y, t):
        pred = p >= t
        tp = (pred & (y == 1)).sum()
        return 2 * tp / (pred.sum() + (y == 1).sum())

    ts = np.round(np.arange(0.05, 0.96, 0.05), 2)
    best = ts[int(np.argmax([f1(pv, sp["y_val"], t) for t in ts]))]
    assert df.loc["micro_f1@val", "metric"] == pytest.approx(f1(pt, sp["y_test"], best), abs=1e-6)
    assert df.loc["micro_f1", "metric"] == pytest.approx(f1(pt, sp["y_test"], 0.5), abs=1e-6)
    assert df.loc["micro_f1@val", "val_metric"] >= df.loc["micro_f1", "val_metric"]
