"""`paretofab traces` / `paretofab distill` through the dispatcher: outputs and one-line errors."""

import numpy as np

from models import traces
from paretofab.cli import main


def test_traces_command_writes_mldpc(tmp_path, capsys):
    out = tmp_path / "pr.txt"
    assert main(["traces", "--app", "pr", "--scale", "10", "--max-loads", "50000", "-o", str(out)]) == 0
    tr = traces.read_trace(out)
    ref = traces.generate("pr", scale=10, max_loads=50_000)
    assert np.array_equal(tr.addr, ref.addr)
    assert "LLC accesses" in capsys.readouterr().out


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["traces", "--app", "pr", "--scale", "40", "-o", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "scale" in err and "\n" not in err and "Traceback" not in err
    assert main(["distill", "--trace", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not found" in err and "\n" not in err
