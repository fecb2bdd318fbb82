"""The ``paretofab`` command's error contract: user errors end in one line and exit 2, an external
tool's failure in one line naming the tool and exit 3, never a traceback (``paretofab.cli``)."""

from __future__ import annotations

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


def test_unwritable_output_is_one_line_exit_2(tmp_path, capsys):
    """A folder the user may not write: a read-only one for a normal user; for root (CI), sysfs,
    where even root may not create folders."""
    if os.geteuid() == 0:
        target = Path("/sys/paretofab_test/out")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "out"
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
