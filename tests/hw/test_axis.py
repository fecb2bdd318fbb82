"""The AXI4-Stream top (hw.axis, ``paretofab rtl … --axis``), driven by an independent AXI
model: cocotbext-axi's AxiStreamSource / AxiStreamSink under cocotb 2 and Icarus, through the
generated ``test_<top>.py``; also our own Verilog testbench, lint, and packet boundaries (tlast)
over several packets."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from hw.axis import AXIStreamTop, expected_tlast
from hw.engine import OUTPUT_PACKETS
from hw.engines import ENGINES, engine
from hw.export import export_design
from hw.portable import lint
from hw.testbench import compile_testbench, write_testbench

from .conftest import random_config

pytest.importorskip("cocotbext.axi", reason="cocotbext-axi not installed: pip install -e '.[flow]'")
needs_icarus = pytest.mark.skipif(not shutil.which("iverilog"), reason="Icarus Verilog not installed: apt-get install -y iverilog")


def _workload(config, seed: int):
    mod = engine(config.engine)
    if config.engine == "swa":
        return mod.random_workload(config, 9, seed)
    return mod.random_workload(config, 20, 5, seed)


def run_cocotb(tb) -> None:
    """Build the AXI top with Icarus and run its generated cocotb test (raises on a failure)."""
    from cocotb_tools.check_results import get_results  # heavy, optional: cocotb (the flow extra)
    from cocotb_tools.runner import get_runner  # heavy, optional: cocotb (the flow extra)

    folder = tb.verilog.parent
    runner = get_runner("icarus")
    runner.build(sources=[tb.verilog], hdl_toplevel=tb.top, build_dir=folder / "sim_build")
    try:
        results = runner.test(hdl_toplevel=tb.top, test_module=tb.cocotb.stem, test_dir=folder,
                              build_dir=folder / "sim_build")
    except SystemExit as e:  # cocotb's runner exits on a failed test
        raise AssertionError(f"cocotb test failed (exit {e.code}), log under {folder / 'sim_build'}") from None
    total, failed = get_results(results)
    assert total == 1 and failed == 0, (folder / "sim_build").as_posix()


def _repeat(tb, times: int) -> None:
    """Send the same packet(s) ``times`` over: the hex files repeated (every packet must reset the
    engine's state: a sequence for SWA)."""
    for path in (tb.inputs, tb.expected):
        path.write_text(path.read_text() * times)


CASES = [(kind, i) for kind in ("dot", "sparse", "swa") for i in range(2)]


@needs_icarus
@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_cocotbext_axi_drives_the_axis_top(tmp_path, kind, i):
    cfg = random_config(kind, random.Random(f"axis {kind} {i}"))
    tb = write_testbench(cfg, tmp_path, _workload(cfg, i), axis=True, seed=i, valid_pct=60, ready_pct=40)
    assert tb.top.endswith("_axis") and tb.cocotb.exists()
    _repeat(tb, 2)  # SWA: two sequences, two packets; dot/sparse: 10 vectors, 10 packets
    run_cocotb(tb)


@needs_icarus
def test_cocotb_test_fails_on_a_wrong_tlast(tmp_path):
    cfg = random_config("swa", random.Random("axis tlast"))
    tb = write_testbench(cfg, tmp_path, _workload(cfg, 1), axis=True)
    lines = tb.expected.read_text().split()
    beat = int(lines[-2], 16)  # {tkeep set, tlast, payload}: tlast is the bit below the top one
    lines[-2] = f"{beat | 1 << (beat.bit_length() - 2):0{len(lines[-2])}x}"  # a tlast one beat early
    tb.expected.write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError):
        run_cocotb(tb)


@needs_icarus
@pytest.mark.parametrize("kind", ["dot", "swa"])
def test_verilog_testbench_checks_tlast_and_tkeep(tmp_path, kind):
    cfg = random_config(kind, random.Random(f"axis tb {kind}"))
    tb = write_testbench(cfg, tmp_path, _workload(cfg, 2), axis=True, valid_pct=50, ready_pct=50)
    folder = tb.verilog.parent
    run = compile_testbench(tb, "icarus")
    ok = subprocess.run(run, cwd=folder, capture_output=True, text=True)
    assert ok.returncode == 0 and "PASS" in ok.stdout, ok.stdout[-1000:]
    lines = tb.expected.read_text().split()
    lines[0] = f"{int(lines[0], 16) ^ 1 << (int(lines[0], 16).bit_length() - 2):0{len(lines[0])}x}"  # flip tlast
    tb.expected.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(run, cwd=folder, capture_output=True, text=True)
    assert bad.returncode != 0 and "FAIL: output beat 0" in bad.stdout


@pytest.mark.parametrize("kind", ["dot", "sparse", "swa"])
def test_axis_top_is_lint_clean(tmp_path, kind):
    cfg = random_config(kind, random.Random(f"axis lint {kind}"))
    vpath, _ = export_design(cfg, tmp_path, axis=True)
    assert lint(vpath, vpath.with_suffix(".vlt")) == []


def test_expected_tlast():
    assert expected_tlast("one", [0, 0, 1, 0, 1], 2) == [1, 1]
    assert expected_tlast("beat_for_beat", [0, 0, 1, 0, 1], 5) == [0, 0, 1, 0, 1]
    with pytest.raises(ValueError):
        expected_tlast("beat_for_beat", [0, 1], 3)


def test_engines_declare_their_output_packet():
    """n_outputs agrees with OUTPUT_PACKET on a random workload of every engine."""
    for name, mod in ENGINES.items():
        assert mod.OUTPUT_PACKET in OUTPUT_PACKETS
        cfg = random_config(name, random.Random(f"packet {name}"))
        wl = _workload(cfg, 0)
        beats = mod.pack_inputs(cfg, wl)
        last_bit = AXIStreamTop(cfg).in_bits  # the payload's top bit
        lasts = sum(b >> last_bit & 1 for b in beats)
        want = lasts if mod.OUTPUT_PACKET == "one" else len(beats)
        assert mod.n_outputs(cfg, wl) == want, name
