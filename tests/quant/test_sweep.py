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
    (["--seeds", "-1"], "non-negative"),
    (["--threshold", "0.5"], "digits reports accuracy: drop --threshold"),
    (["--threshold", "val"], "drop --threshold"),
    (["--scheduler-timeout", "0"], "scheduler-timeout"),
    (["--pattern", "2:4", "--sparsity", "1:4"], "--pattern only"),
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
    with pytest.raises(ValueError, match="non-negative"):
        grid(SweepSpace(["digits"], ["int4"], ["int8"], seeds=[0, -1]))
    with pytest.raises(ValueError, match="drop --threshold"):
        grid(SweepSpace(["digits"], ["int4"], ["int8"], threshold="val"))


def _store_with_points(path, n: int = 40) -> None:
    """A real store with ``n`` (fake) finished points, big enough to span several pages."""
    from quant.sweep import open_store

    con = open_store(path)
    with con:
        for i in range(n):
            con.execute("INSERT INTO points (key, model, wfmt, afmt, ptq, seed, per_channel, n_calib, metric_name, "
                        "metric, seconds, finished_utc, config) VALUES (?, 'digits', 'int8', 'int8', 'none', 0, 1, "
                        "256, 'accuracy', 0.9, 1.0, 't', ?)", (f"k{i:04d}", "x" * 400))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()


@pytest.mark.parametrize("kind", ["garbage", "foreign", "wrong_schema", "truncated"])
def test_bad_store_is_refused_and_untouched(tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.sqlite"
    if kind == "garbage":
        path.write_bytes(b"this is not a database\x00" * 100)
    elif kind == "truncated":
        _store_with_points(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
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
    assert main(["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", "--pattern", "3:2",
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


def test_a_new_store_appears_whole_and_a_racing_creator_keeps_the_first(tmp_path):
    """A new store is linked into place with its tables already in it (a second sweep starting at
    the same moment never finds an SQLite file without them); a creator that comes second leaves
    the first store, its rows included, and no temporary file behind."""
    from quant.sweep import _check_store, _create_store

    path = tmp_path / "new.sqlite"
    _create_store(path)
    _check_store(path)  # a whole store: meta with the schema, points
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO failures VALUES ('k', '{}', 'e', 't')")
    con.close()
    _create_store(path)  # the racing second creator
    con = sqlite3.connect(path)
    assert con.execute("SELECT key FROM failures").fetchall() == [("k",)]
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.sqlite"]


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


# ---- one line for every bad input (issue 14) ------------------------------------------------------


def _one_line(capsys, prefix: str = "paretofab sweep: error:") -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(prefix), err
    assert "Traceback" not in err
    return err


def _sweep_argv(out, *extra: str) -> list[str]:
    return ["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", *extra, "-o", str(out), "-q"]


def test_store_path_that_is_a_folder_is_one_line(tmp_path, capsys):
    assert main(_sweep_argv(tmp_path)) == 2
    assert "folder" in _one_line(capsys)
    assert main(["results", str(tmp_path)]) == 2
    assert "folder" in _one_line(capsys, "paretofab results: error:")
    assert main(["results", str(tmp_path), "--failed"]) == 2
    assert "folder" in _one_line(capsys, "paretofab results: error:")


def test_store_below_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(_sweep_argv(afile / "sub" / "s.sqlite")) == 2
    err = _one_line(capsys)
    assert "a file sits where a folder is needed" in err and str(afile) in err


def test_empty_file_is_not_a_store_for_results(tmp_path, capsys):
    path = tmp_path / "empty.sqlite"
    path.touch()
    assert main(["results", str(path)]) == 2
    assert "empty" in _one_line(capsys, "paretofab results: error:")


@pytest.mark.parametrize("content", [b"\x93\x1f garbage \x00\xff" * 64, b"just some text, not a model\n"],
                         ids=["garbage", "text"])
def test_bad_checkpoint_fails_before_any_point(tmp_path, capsys, lstm_student, content):
    """A .pt that is not a paretofab checkpoint (random bytes, text) is refused while the grid is
    validated: one line from models ("not a paretofab checkpoint"), never torch's advice about
    weights_only or a KeyError, and no store is written."""
    import shutil

    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(lstm_student / "data.npz", d / "data.npz")
    (d / "garbage.pt").write_bytes(content)
    out = tmp_path / "s.sqlite"
    with pytest.raises(ValueError, match="not a paretofab checkpoint"):
        grid(SweepSpace([str(d / "garbage.pt")], ["int8"], ["int8"]), allow_degenerate=True)
    argv = ["sweep", "--model", f"digits,{d / 'garbage.pt'}", "--wfmt", "int8", "--afmt", "int8",
            "--allow-degenerate", "-o", str(out), "-q"]
    assert main(argv) == 2
    err = _one_line(capsys)
    assert "not a paretofab checkpoint" in err and "garbage.pt" in err
    assert "weights_only" not in err and "KeyError" not in err
    assert not out.exists()


def test_scheduler_not_answering_is_a_dask_failure(tmp_path, capsys):
    """No scheduler at the address: within the timeout, one line naming dask and the address, exit 3;
    nothing is written."""
    from quant.sweep import SchedulerError

    out = tmp_path / "s.sqlite"
    t0 = time.time()
    assert main(_sweep_argv(out, "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "2")) == 3
    assert time.time() - t0 < 20
    err = _one_line(capsys)
    assert "dask failed" in err and "tcp://127.0.0.1:1" in err and "2 s" in err
    assert not out.exists()
    with pytest.raises(SchedulerError) as e:
        run_sweep(grid(SweepSpace(["digits"], ["int8"], ["int8"])), out, scheduler="tcp://127.0.0.1:1",
                  scheduler_timeout=1, progress=False)
    assert e.value.tool == "dask"


# ---- vocabulary and help ---------------------------------------------------------------------------


def test_sparsity_is_a_deprecated_alias_of_pattern(tmp_path, capsys):
    out = tmp_path / "p.sqlite"
    assert main(_sweep_argv(out, "--sparsity", "2:4")) == 0
    cap = capsys.readouterr()
    assert cap.err.strip() == "paretofab sweep: note: --sparsity is deprecated and goes in the next release; " \
                              "write --pattern 2:4"
    assert "1 points run" in cap.out
    assert main(_sweep_argv(out, "--pattern", "2:4")) == 0  # the same point, already stored
    cap = capsys.readouterr()
    assert cap.err == "" and "0 points run, 1 already in" in cap.out
    assert list(load_results(out)["sparsity"]) == ["2:4"]


@pytest.mark.parametrize("cmd", ["formats", "sweep", "results"])
def test_help_has_description_example_and_defaults(cmd):
    from paretofab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    text = sub.choices[cmd].format_help()
    assert sub.choices[cmd].description and f"example:\n  paretofab {cmd}" in text
    assert "--sparsity" not in text
    if cmd == "sweep":
        for shown in ("(default none)", "(default dense)", "(default 256)", "(default 1)", "(default 5.0)",
                      "(default val)"):
            assert shown in " ".join(text.replace("(default: ", "(default ").split())
    if cmd == "formats":
        assert "not OCP FP8" in " ".join(text.split()) and "e4m3ocp" in text


def test_formats_notes_that_plain_e4m3_is_not_ocp(capsys):
    assert main(["formats", "e4m3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "e4m3 " in out and "not OCP FP8 E4M3, which is e4m3ocp" in out
    assert main(["formats", "int8"]) == 0
    assert "OCP" not in capsys.readouterr().out


# ---- concurrent sweeps into one store ---------------------------------------------------------------

_SWEEPER = """
import os, sys, time
from pathlib import Path
import quant.sweep as s

log, rendezvous = Path(sys.argv[1]), Path(sys.argv[2])
evaluate, first = s.evaluate_point, [True]

def logged(point):
    key = s.SweepPoint(**point).key if isinstance(point, dict) else point.key
    with open(log, "a") as f:  # O_APPEND: one whole line per write
        f.write(f"{key} {os.getpid()}\\n")
    if first[0]:  # hold the first point until the other sweep also runs one: both are mid-sweep
        first[0] = False
        (rendezvous / str(os.getpid())).touch()
        deadline = time.time() + 240
        while len(list(rendezvous.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.05)
    return evaluate(point)

s.evaluate_point = logged
from paretofab.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_two_sweeps_into_one_store_compute_each_point_once(tmp_path):
    """Two processes sweep the same digits grid into one store at the same time: every point is
    computed exactly once (per-point run log), no row is lost, and each reports what it really ran."""
    import re

    out, log, rv = tmp_path / "c.sqlite", tmp_path / "run.log", tmp_path / "rendezvous"
    rv.mkdir()
    script = tmp_path / "sweeper.py"
    script.write_text(_SWEEPER)
    argv = _sweep_argv(out)[:3] + ["--wfmt", "int8,int4,e2m1,e3m2", "--afmt", "int8,e4m3", "-o", str(out), "-q"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(script), str(log), str(rv), *argv], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, se
    keys = [line.split()[0] for line in log.read_text().splitlines()]
    df = load_results(out)
    assert len(df) == 8 and df["key"].is_unique
    assert sorted(keys) == sorted(df["key"])  # each point computed exactly once
    ran = [int(re.search(r"(\d+) points run", so).group(1)) for so, _ in outs]
    assert sum(ran) == 8 and min(ran) >= 1  # both really ran points
    for so, _ in outs:
        m = re.search(r"(\d+) points run, (\d+) already in .*?(?:, (\d+) running elsewhere)?, 8 in the grid", so)
        assert m, so
        assert int(m.group(1)) + int(m.group(2)) + int(m.group(3) or 0) == 8
    con = sqlite3.connect(out)
    assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 0  # every claim released
    con.close()


def test_claims_of_live_processes_are_respected_and_dead_ones_expire(tmp_path, capsys):
    """Points claimed by a live process (this host: pid alive; another host: claim recent) are
    skipped and reported as running elsewhere; a dead process's claim (pid gone here, or too old
    elsewhere) expires and the point runs."""
    import socket

    from quant.sweep import CLAIM_TIMEOUT_S, open_store

    out = tmp_path / "cl.sqlite"
    pts = grid(SweepSpace(["digits"], ["int8", "int4", "e2m1", "e3m2"], ["int8"]))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid is gone
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        time.sleep(0.5)
        host, now = socket.gethostname(), time.time()
        con = open_store(out)
        with con:
            con.executemany("INSERT INTO claims VALUES (?, ?, ?, ?)", [
                (pts[0].key, dead.pid, host, now),                              # dead here: expires
                (pts[1].key, alive.pid, host, now),                             # alive here: skipped
                (pts[2].key, 4242, host + "-other", now - 60),                  # other host, recent: skipped
                (pts[3].key, 4242, host + "-other", now - 2 * CLAIM_TIMEOUT_S),  # other host, stale: expires
            ])
        con.close()
        argv = ["sweep", "--model", "digits", "--wfmt", "int8,int4,e2m1,e3m2", "--afmt", "int8", "-o", str(out), "-q"]
        assert main(argv) == 0
        text = capsys.readouterr().out
        assert "2 points run, 0 already in" in text and "2 running elsewhere" in text
        assert set(load_results(out)["key"]) == {pts[0].key, pts[3].key}
        con = sqlite3.connect(out)
        left = {r[0] for r in con.execute("SELECT key FROM claims")}
        con.close()
        assert left == {pts[1].key, pts[2].key}  # the others' claims stay, ours are released
    finally:
        alive.kill()
        alive.wait()
    r = run_sweep(pts, out, progress=False)  # the live process is gone now: its point runs
    assert (r["done"], r["skipped"], r["elsewhere"]) == (1, 2, 1)


def test_unwritable_store_folder_is_one_line(unwritable_folder, capsys):
    """A folder the user may not write (the ``unwritable_folder`` fixture): one line, exit 2."""
    target = unwritable_folder / "s.sqlite"
    assert main(_sweep_argv(target)) == 2
    assert "permi" in _one_line(capsys)
