"""The ``paretofab`` command's error contract: user errors end in one line and exit 2, an external
tool's failure in one line naming the tool and exit 3, never a traceback (``paretofab.cli``)."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw.rtl import SynthError
from paretofab.cli import describe_error, main


def _run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_output_below_a_file_is_one_line_exit_2(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, err = _run(["rtl", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "-o", str(afile / "sub")],
                   capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "a file sits where a folder is needed" in err and str(afile / "sub") in err


def test_unwritable_output_is_one_line_exit_2(unwritable_folder, capsys):
    """A folder the user may not write (the ``unwritable_folder`` fixture)."""
    target = unwritable_folder
    rc, err = _run(["rtl", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "-o", str(target)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "permi" in err  # "no permission" / "not permitted"


@pytest.mark.parametrize("code,word", [(errno.ENOTDIR, "folder"), (errno.EACCES, "permission"),
                                       (errno.EISDIR, "folder"), (errno.ENOSPC, "disk")])
def test_oserrors_name_the_path_and_the_fix(code, word):
    rc, line = describe_error(OSError(code, os.strerror(code), "/some/path"))
    assert rc == 2 and "/some/path" in line and word in line


def test_tool_failure_exits_3_naming_the_tool_and_log():
    e = SynthError("ERROR: something broke\nmore log")
    e.log = "/tmp/yosys.log"
    rc, line = describe_error(e)
    assert rc == 3 and line.startswith("yosys failed: ERROR: something broke") and "/tmp/yosys.log" in line
    assert "more log" not in line


def test_a_bug_is_not_disguised():
    """Anything else (a bug) is not reported as a user error: it raises."""
    assert describe_error(RuntimeError("boom"))[0] is None
    assert describe_error(KeyError("k"))[0] is None


def test_debug_shows_the_traceback(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    env = {**os.environ, "PARETOFAB_DEBUG": "1"}
    r = subprocess.run([sys.executable, "-m", "paretofab.cli", "rtl", "dot", "--lanes", "2", "--wfmt", "int4",
                        "--afmt", "int4", "-o", str(afile / "sub")], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" in r.stderr


# ---- cost, pareto, explore (issue 14: one row each) ------------------------------------------------


def _results_csv(tmp_path: Path) -> Path:
    path = tmp_path / "res.csv"
    path.write_text("name,accuracy,lut\na,0.5,10\nb,0.7,20\nc,0.6,30\n")
    return path


def test_pareto_on_a_truncated_store_is_one_line_exit_2(tmp_path, capsys):
    import sqlite3

    store = tmp_path / "sweep.sqlite"
    with sqlite3.connect(store) as con:
        con.execute("CREATE TABLE points (key TEXT, metric REAL, lut INT)")
        con.executemany("INSERT INTO points VALUES (?, ?, ?)", [(f"k{i}" * 50, i / 1000, i) for i in range(2000)])
    con.close()
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 3])  # header intact, pages missing
    rc, err = _run(["pareto", str(store), "--out", str(tmp_path / "p.png")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(store) in err and "damaged SQLite" in err


def test_pareto_on_a_folder_is_one_line_exit_2(tmp_path, capsys):
    rc, err = _run(["pareto", str(tmp_path), "--out", str(tmp_path / "p.png")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "is a folder" in err and str(tmp_path) in err


@pytest.mark.parametrize("flag", ["--out", "--csv-out"])
def test_pareto_output_below_a_file_is_one_line_exit_2(tmp_path, capsys, flag):
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, err = _run(["pareto", str(_results_csv(tmp_path)), flag, str(afile / "sub" / "front.png")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "a file sits where a folder is needed" in err


def test_pareto_unwritable_output_fails_before_reading(tmp_path, unwritable_folder, capsys, monkeypatch):
    import costmodel.cli as C

    monkeypatch.setattr(C, "read_table", lambda *a: pytest.fail("read before the output was checked"))
    rc, err = _run(["pareto", str(_results_csv(tmp_path)), "--out", str(unwritable_folder / "p.png")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "permi" in err


def test_explore_output_below_a_file_fails_before_any_work(tmp_path, unwritable_folder, capsys, monkeypatch):
    import paretofab.explore as E

    monkeypatch.setattr(E, "train_student", lambda cfg: pytest.fail("work started before the output check"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, err = _run(["explore", "-o", str(afile / "sub"), "--no-progress"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "a file sits where a folder is needed" in err
    rc, err = _run(["explore", "-o", str(unwritable_folder), "--no-progress"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "permi" in err


def test_explore_existing_but_unwritable_output_fails_before_any_work(tmp_path, capsys, monkeypatch):
    """An output folder that exists but cannot be written (mkdir succeeds): the write probe
    fails, before training."""
    import tempfile

    import paretofab.explore as E

    monkeypatch.setattr(E, "train_student", lambda cfg: pytest.fail("work started before the output check"))

    def refuse(*a, dir=None, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / ".paretofab-write-testXYZ"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    rc, err = _run(["explore", "-o", str(tmp_path / "out"), "--no-progress"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"{tmp_path / 'out'}: no permission" in err


def test_cost_block_density_without_block_is_refused(capsys):
    rc, err = _run(["cost", "sparse", "--lanes", "4", "--pattern", "2:4", "--wfmt", "int4", "--afmt", "int4",
                    "--block-density", "0.5"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--block" in err


def test_random_bytes_as_splits_file_is_one_line(tmp_path, capsys):
    """``prune --data`` on bytes that are not an .npz: one line naming the file, never numpy's
    advice to unpickle."""
    from models import map_data

    bad = tmp_path / "data.npz"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(map_data.MapDataError, match="not an .npz archive") as ei:
        map_data.load_splits(bad)
    assert "allow_pickle" not in str(ei.value) and str(bad) in str(ei.value)


COMMANDS = ["formats", "sweep", "results", "rtl", "sim", "synth", "traces", "distill", "prune", "cost", "pareto",
            "explore", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_description_an_example_and_defaults(command):
    """DESIGN.md: each subcommand has a description, an example, and shows defaults."""
    from paretofab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    assert p.description and len(p.description.split()) >= 4, command
    text = p.format_help()
    assert "example" in text.lower() and "paretofab " in (p.epilog or ""), command
    if any(a.default not in (None, False, argparse.SUPPRESS) and a.option_strings for a in p._actions
           if a.dest != "help"):
        assert "default" in text.lower(), command


@pytest.mark.parametrize("argv", [
    ["rtl", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "-o", "{out}"],
    ["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", "-o", "{out}/s.sqlite"],
    ["traces", "--app", "pr", "--scale", "8", "--max-loads", "2000", "-o", "{out}/t.txt"],
    ["explore", "--scale", "8", "-o", "{out}"],
])
def test_output_below_a_file_fails_in_one_line_before_work(argv, tmp_path, capsys):
    """A file where the output folder should be: every writing command ends in one line, exit 2."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = str(afile / "sub")
    rc = main([a.replace("{out}", out) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(afile) in err[0] and "folder" in err[0], err


@pytest.mark.parametrize("argv", [
    ["rtl", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "-o", "{out}"],
    ["sweep", "--model", "digits", "--wfmt", "int8", "--afmt", "int8", "-o", "{out}/s.sqlite"],
    ["traces", "--app", "pr", "--scale", "8", "--max-loads", "2000", "-o", "{out}/t.txt"],
    ["explore", "--scale", "8", "-o", "{out}"],
    ["pareto", "{csv}", "--out", "{out}/front.png"],
])
def test_unwritable_output_fails_in_one_line_before_work(argv, tmp_path, unwritable_folder, capsys):
    """An output folder the user may not write (the ``unwritable_folder`` fixture): one line, exit 2."""
    out = unwritable_folder
    csv = tmp_path / "t.csv"
    csv.write_text("lut,accuracy\n1,0.5\n2,0.6\n")
    rc = main([a.replace("{out}", str(out)).replace("{csv}", str(csv)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "permi" in err[0], err


def test_a_config_error_names_options_that_exist(capsys):
    """SWA configs refused in one line that names the command's own options, each of which the
    parser then accepts: a symmetric dense baseline (`--no-causal`, `--dense`), a dense baseline
    shorter than the sequence (`--seq-len`)."""
    argv = ["cost", "swa", "--head-dim", "16", "--window", "15", "--lanes", "4", "--qk-fmt", "int8", "--v-fmt", "int8"]
    assert main([*argv, "--no-causal", "--dense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-causal" in err[0] and "--dense" in err[0], err
    assert main([*argv, "--dense", "--seq-len", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seq-len" in err[0], err
    assert main([*argv, "--no-causal", "--json"]) == 0 and main([*argv, "--dense", "--seq-len", "15", "--json"]) == 0
