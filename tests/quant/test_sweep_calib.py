"""``paretofab sweep --calib synthetic:DIR`` (issue 18, data-free PTQ calibration): the calibration
source is swapped and recorded. The reference facts are built here: a synthetic set that *is* the
real calibration images must give the real point's metric exactly (only the source changed), a
set of near-black images must calibrate activations too narrow (a lower metric), and a real point
keeps the key it had before the axis existed (hash computed here)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
import torch

from models.datafree import run as R
from models.datafree.dafl import DAFLConfig
from models.datafree.dynamic import DynamicConfig
from models.datafree.inversion import InversionConfig
from models.datafree.kd import KDConfig
from models.digits_data import load_data
from models.gtn import GTNConfig
from models.gtn_pool import StudentSpec
from paretofab.cli import main
from quant.sweep import SweepSpace, grid, load_results, open_store, run_sweep

torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """The built-in digits model is trained into a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARETOFAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _synthetic(folder, images: torch.Tensor):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"images": images}, folder / "synthetic.pt")
    return folder


def test_synthetic_calibration_swaps_the_source_and_is_stored_apart(tmp_path):
    x = load_data(0).x_train[:64]
    same = _synthetic(tmp_path / "same", x.clone())
    dark = _synthetic(tmp_path / "dark", x * 0.02)
    out = tmp_path / "s.sqlite"
    pts = []
    for calib in ("real", f"synthetic:{same}", f"synthetic:{dark}"):
        pts += grid(SweepSpace(["digits"], ["int8"], ["int4"], n_calib=64, calib=calib))
    assert len({p.key for p in pts}) == 3
    blob = json.dumps({"model": "digits", "wfmt": "int8", "afmt": "int4", "ptq": "none", "seed": 0,
                       "per_channel": True, "n_calib": 64}, sort_keys=True, separators=(",", ":"))
    assert pts[0].key == hashlib.sha256(blob.encode()).hexdigest()[:16]  # real: the key before the axis
    sha = hashlib.sha256((same / "synthetic.pt").read_bytes()).hexdigest()[:12]
    assert pts[1].calib == f"synthetic:{same.resolve()}@{sha}"
    r = run_sweep(pts, out, progress=False)
    assert r["done"] == 3 and r["failed"] == 0
    df = load_results(out).set_index("key")
    real, syn_same, syn_dark = (df.loc[p.key] for p in pts)
    assert real["calib"] == "real" and syn_same["calib"].startswith("synthetic:")
    assert syn_same["metric"] == real["metric"]  # the same images: the same quantized model
    assert syn_dark["metric"] < real["metric"] - 0.05, (syn_dark["metric"], real["metric"])
    assert json.loads(syn_same["config"])["calib"] == pts[1].calib
    assert run_sweep(pts, out, progress=False)["skipped"] == 3


def test_a_datafree_folder_calibrates_the_sweep_of_its_student(tmp_path, capsys):
    """The whole data-free path: a (tiny) ``datafree`` run, then its student swept with real and
    with its own synthetic calibration, two points in one store."""
    tiny = R.Budget(teacher_epochs=2, real=GTNConfig(student_epochs=1, patience=1), images=40, batch=20,
                    inversion=InversionConfig(steps=5), kd=KDConfig(epochs=3), dafl=DAFLConfig(iterations=4),
                    condense_iterations=1, dynamic=DynamicConfig(iterations=4))
    run = tmp_path / "df"
    R.run(load_data(0), "deepinv", StudentSpec(1, 8), tiny, 0, run)
    out = tmp_path / "p.sqlite"
    for calib in ("real", f"synthetic:{run}"):  # --model DIR names DIR/student.pt
        assert main(["sweep", "--model", str(run), "--wfmt", "int8", "--afmt", "int8",
                     "--n-calib", "40", "--calib", calib, "-o", str(out), "-q"]) == 0
    df = load_results(out)
    assert len(df) == 2 and sorted(c.split(":")[0] for c in df["calib"]) == ["real", "synthetic"]
    assert set(df["model"]) == {str((run / "student.pt").resolve())}
    # its test images are those of split 0 only (run.json): another sweep seed is refused
    assert main(["sweep", "--model", str(run), "--wfmt", "int8", "--afmt", "int8", "--seeds", "1",
                 "-o", str(out), "-q"]) == 2
    assert "--seeds 0" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["results", str(out)]) == 0
    assert "calib" in capsys.readouterr().out


@pytest.mark.parametrize("calib, words", [
    ("synthetic:{tmp}/nowhere", "no "),
    ("synthetic:", "use real, or synthetic:DIR"),
    ("imagenet", "use real, or synthetic:DIR"),
    ("synthetic:{tmp}/small", "fewer than --n-calib"),
    ("synthetic:{tmp}/junk", "not a synthetic set"),
])
def test_bad_calibration_source_is_one_line_exit_2(tmp_path, capsys, calib, words):
    _synthetic(tmp_path / "small", torch.rand(10, 1, 8, 8))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "synthetic.pt").write_bytes(b"not a torch file")
    out = tmp_path / "e.sqlite"
    assert main(["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", "--n-calib", "16",
                 "--calib", calib.format(tmp=tmp_path), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("paretofab sweep: error:") and words in err, err
    assert not out.exists()


def test_store_without_calib_column_opens_and_reads_as_real(tmp_path):
    """A store as written before the axis: today's store with its calib column dropped."""
    path = tmp_path / "old.sqlite"
    open_store(path).close()
    con = sqlite3.connect(path)
    with con:
        con.execute("ALTER TABLE points DROP COLUMN calib")
        con.execute("INSERT INTO points (key, model, wfmt, afmt, ptq, seed, per_channel, n_calib, metric_name, "
                    "metric, seconds, finished_utc, config) VALUES ('k', 'digits', 'int8', 'int8', 'none', 0, 1, "
                    "256, 'accuracy', 0.9, 1.0, 't', '{}')")
    con.close()
    assert list(load_results(path)["calib"]) == ["real"]  # read-only view
    open_store(path).close()
    df = load_results(path)
    assert list(df["calib"]) == ["real"] and list(df["metric"]) == [0.9]
