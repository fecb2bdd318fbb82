"""``paretofab rtl|sim|synth``: outputs checked against an independent float64 dot product of
decoded codes (``quant.reference.decode``), files round-trip, bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hw.engines import ENGINES, config_from_dict
from paretofab.cli import main
from quant.formats import parse_format
from quant.reference import decode

PARETOFAB = Path(sys.executable).parent / "paretofab"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def exact_dots(w_codes, wfmt, a_codes, afmt, exponent: int) -> list[int]:
    """Independent reference: exact rational dot products of decoded values, in units of 2^exponent."""
    w = decode(np.asarray(w_codes, dtype=np.uint8), parse_format(wfmt))
    a = decode(np.asarray(a_codes, dtype=np.uint8), parse_format(afmt))
    out = []
    for wr, ar in zip(w, a):
        s = sum(Fraction(float(x)) * Fraction(float(y)) for x, y in zip(wr, ar)) / Fraction(2) ** exponent
        assert s.denominator == 1
        out.append(int(s))
    return out


def test_rtl_writes_verilog_and_config(tmp_path, capsys):
    rc, out, _ = run(capsys, "rtl", "dot", "--lanes", "4", "--wfmt", "e2m3", "--afmt", "int8", "-o", str(tmp_path))
    top = "dot_l4_e2m3_int8_k1024"
    assert rc == 0 and f"{top}.v" in out
    cfg = config_from_dict(json.loads((tmp_path / f"{top}.json").read_text())["config"])
    assert (cfg.lanes, str(cfg.wfmt), str(cfg.afmt), cfg.k_max) == (4, "e2m3", "int8", 1024)
    text = (tmp_path / f"{top}.v").read_text()
    in_bits = cfg.in_layout().size
    assert text.count("endmodule") >= 1 and f"module {top}(" in text
    assert f"input [{in_bits - 1}:0] i__payload" in text
    assert f"output [{cfg.acc_bits - 1}:0] o__payload" in text
    rc, out, _ = run(capsys, "rtl", "dot", "--lanes", "4", "--wfmt", "e2m3", "--afmt", "int8", "-o", str(tmp_path),
                     "--top", "my_dot")
    assert rc == 0 and "module my_dot(" in (tmp_path / "my_dot.v").read_text()
    assert json.loads((tmp_path / "my_dot.json").read_text())["top"] == "my_dot"


def test_sim_json_equals_independent_reference(capsys):
    rc, out, _ = run(capsys, "sim", "dot", "--lanes", "4", "--wfmt", "e2m3", "--afmt", "int4", "--k", "10",
                     "--vectors", "6", "--seed", "3", "--json")
    assert rc == 0
    r = json.loads(out)
    w, a = r["inputs"]["w_codes"], r["inputs"]["a_codes"]
    assert np.array(w).shape == (6, 10)
    assert r["outputs"] == exact_dots(w, "e2m3", a, "int4", r["output_exponent"])
    assert r["equal"] is True and r["backend"] == "pysim"
    assert r["cycles"] == r["cycles_closed_form"] and r["cycles_equal"] is True
    # the closed form, re-derived: ceil(K / lanes) beats per vector + pipeline + 1
    assert r["cycles"] == 6 * 3 + 1 + 1


def test_sim_same_seed_same_workload(capsys):
    argv = ["sim", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "--k", "4", "--vectors", "3", "--json"]
    _, o1, _ = run(capsys, *argv, "--seed", "5")
    _, o2, _ = run(capsys, *argv, "--seed", "5")
    _, o3, _ = run(capsys, *argv, "--seed", "6")
    assert json.loads(o1)["inputs"] == json.loads(o2)["inputs"] != json.loads(o3)["inputs"]


def test_sim_sparse_verilator_with_back_pressure(capsys):
    # the same engine config as tests/hw/test_verilator.py, so its cached build is reused
    argv = ["sim", "sparse", "--lanes", "4", "--pattern", "2:4", "--wfmt", "e2m3", "--afmt", "int4",
            "--k-max", "64", "--block", "16", "--k", "48", "--vectors", "8", "--backend", "verilator", "--json"]
    rc, out, _ = run(capsys, *argv)
    free = json.loads(out)
    assert rc == 0 and free["backend"] == "verilator" and free["cycles_equal"] is True
    assert free["outputs"] == exact_dots(free["inputs"]["w_codes"], "e2m3", free["inputs"]["a_codes"], "int4",
                                         free["output_exponent"])
    rc, out, _ = run(capsys, *argv, "--out-ready", "101", "--in-valid", "1101")
    stalled = json.loads(out)
    assert rc == 0 and stalled["outputs"] == free["outputs"]
    assert stalled["cycles_equal"] is None and stalled["cycles"] > free["cycles"]


def test_sim_plain_summary_and_codes_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    w = rng.integers(0, 16, (3, 5)).astype(np.uint8)
    a = rng.integers(0, 256, (3, 5)).astype(np.uint8)
    np.savez(tmp_path / "codes.npz", w_codes=w, a_codes=a)
    rc, out, _ = run(capsys, "sim", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int8",
                     "--codes", str(tmp_path / "codes.npz"))
    assert rc == 0 and "outputs == exact reference: yes (3/3)" in out
    rc, out, _ = run(capsys, "sim", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int8",
                     "--codes", str(tmp_path / "codes.npz"), "--json")
    assert json.loads(out)["outputs"] == exact_dots(w, "int4", a, "int8", 0)


def test_synth_json_keys_and_table(capsys):
    argv = ["synth", "dot", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "--k-max", "8", "--device", "xc7z020"]
    rc, out, _ = run(capsys, *argv, "--json")
    r = json.loads(out)
    assert rc == 0
    assert {"lut", "ff", "carry", "dsp", "bram18", "lutram"} <= set(r)
    assert r["target"] == "xc7" and r["device"] == "xc7z020" and r["yosys"].startswith("Yosys")
    assert r["dsp"] == 0 and r["lut"] > 0 and r["ff"] > 0  # 4x4 multipliers stay in LUTs (ANCHORS.md)
    # Resources sums Yosys' own cell counts
    assert r["lut"] == sum(v for k, v in r["cells"].items() if k.startswith("LUT") or k == "INV")
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and "LUT" in out and "DSP" in out and f"{r['lut']:>7}" in out


BAD = [
    (["sim", "dot", "--lanes", "0", "--wfmt", "int8", "--afmt", "int8"], "lanes"),
    (["sim", "sparse", "--lanes", "4", "--pattern", "5:4", "--wfmt", "int8", "--afmt", "int8"], "n <= m"),
    (["sim", "sparse", "--lanes", "4", "--pattern", "2:3", "--wfmt", "int8", "--afmt", "int8"], "power of two"),
    (["sim", "dot", "--lanes", "4", "--wfmt", "int8", "--afmt", "int8", "--k", "100", "--k-max", "50"], "k_max"),
    (["synth", "dot", "--lanes", "4", "--wfmt", "int9x", "--afmt", "int8"], "format"),
    (["rtl", "sparse", "--lanes", "4", "--pattern", "2:4", "--wfmt", "int8", "--afmt", "int8", "--block", "5",
      "-o", "unused"], "block"),
    (["sim", "dot", "--lanes", "4", "--wfmt", "int8", "--afmt", "int8", "--out-ready", "12"], "0s and 1s"),
    (["sim", "dot", "--lanes", "4", "--wfmt", "int8", "--afmt", "int8", "--codes", "no/such.npz"], "not found"),
    (["sim", "dot", "--lanes", "4", "--wfmt", "int8", "--afmt", "int8", "--vectors", "0"], ">= 1"),
]


@pytest.mark.parametrize("argv,word", BAD)
def test_bad_input_exits_2_with_one_line(argv, word, capsys):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"paretofab {argv[0]}: error:") and word in err
    assert "Traceback" not in err


def test_sparse_weights_breaking_nm_exit_2(tmp_path, capsys):
    w = np.zeros((2, 8), np.uint8)
    w[1, 4:7] = 1  # group 1 of vector 1 has three non-zeros
    np.savez(tmp_path / "bad.npz", w_codes=w, a_codes=np.ones((2, 8), np.uint8))
    rc, _, err = run(capsys, "sim", "sparse", "--lanes", "2", "--pattern", "2:4", "--wfmt", "int8",
                     "--afmt", "int8", "--codes", str(tmp_path / "bad.npz"))
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_device_or_family_exits_2_naming_the_parts(capsys):
    rc, _, err = run(capsys, "synth", "dot", "--lanes", "4", "--wfmt", "int8", "--afmt", "int8", "--device", "virtex2")
    assert rc == 2 and err.count("\n") == 1 and "xc7z020" in err
    rc, _, err = run(capsys, "synth", "dot", "--lanes", "4", "--wfmt", "int8", "--afmt", "int8", "--target", "virtex2")
    assert rc == 2 and "deprecated" in err.splitlines()[0] and "--device" in err.splitlines()[1]


def test_subprocess_bad_config_exit_2_no_traceback():
    proc = subprocess.run([str(PARETOFAB), "sim", "sparse", "--lanes", "4", "--pattern", "5:4",
                           "--wfmt", "e4m3", "--afmt", "int8"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})  # third-party import warnings
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "n <= m" in proc.stderr


def test_every_registered_engine_gets_commands_and_a_new_one_plugs_in(monkeypatch, capsys):
    import dataclasses

    from paretofab.cli import build_parser

    from hw import cli as hw_cli
    from hw import dot

    monkeypatch.setitem(ENGINES, "dot2", dot)  # a new engine: one registry entry, nothing else
    parser = build_parser()
    for name, mod in ENGINES.items():
        for cmd in ("rtl", "sim", "synth"):
            with pytest.raises(SystemExit):
                parser.parse_args([cmd, name, "--help"])
            helptext = capsys.readouterr().out
            combined = {f: spec[0] for fs, spec in hw_cli.COMBINED_OPTIONS.items() for f in fs}
            for f in dataclasses.fields(hw_cli.config_class(mod)):
                assert (combined.get(f.name) or "--" + f.name.replace("_", "-")) in helptext
            assert "example:" in helptext and f"paretofab {cmd} {name}" in helptext
    rc, out, _ = run(capsys, "sim", "dot2", "--lanes", "2", "--wfmt", "int4", "--afmt", "int4", "--k", "4",
                     "--vectors", "2", "--json")
    assert rc == 0 and json.loads(out)["equal"] is True


def test_swa_engine_plugs_in_without_cli_changes(monkeypatch, capsys):
    """An engine with other config fields and another workload signature (n, seed; q/k/v arrays):
    options come from its config dataclass and random_workload, nothing else is needed."""
    swa = pytest.importorskip("hw.swa")
    monkeypatch.setitem(ENGINES, "swa", swa)
    rc, out, err = run(capsys, "sim", "swa", "--head-dim", "4", "--window", "4", "--lanes", "2",
                       "--qk-fmt", "int4", "--v-fmt", "int4", "--seq-len", "5", "--seed", "2", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert set(r["inputs"]) == {"q", "k", "v"} and np.array(r["inputs"]["q"]).shape == (5, 4)
    assert r["equal"] is True and r["cycles_equal"] is True and r["workload"] == {"n": 5, "seed": 2, "special_fraction": 0.1}
    rc, _, err = run(capsys, "sim", "swa", "--head-dim", "3", "--window", "4", "--lanes", "2",
                     "--qk-fmt", "int4", "--v-fmt", "int4")
    assert rc == 2 and err.count("\n") == 1


def test_codes_out_of_range_exit_2(tmp_path, capsys):
    np.savez(tmp_path / "wide.npz", w_codes=np.full((1, 4), 300), a_codes=np.ones((1, 4), np.uint8))
    rc, _, err = run(capsys, "sim", "dot", "--lanes", "2", "--wfmt", "int8", "--afmt", "int8",
                     "--codes", str(tmp_path / "wide.npz"))
    assert rc == 2 and "0..255" in err and err.count("\n") == 1
