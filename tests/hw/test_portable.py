"""The portable Verilog a user gets (hw.portable, hw.export): lint-clean under Verilator's own
``--lint-only -Wall`` with the two shipped waivers, no width warning even without them, and the
same logic as Amaranth's Verilog — proven by Yosys' equivalence checker (``equiv_make`` /
``equiv_induct``) on random dot and sparse configs; the SWA kernel, too big for the prover, runs
the exported self-checking testbench in Icarus and Verilator (test_testbench.py)."""

from __future__ import annotations

import random
import re

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.export import export_design
from hw.portable import lint, portable_verilog, waivers
from hw.rtl import run_yosys, verilog_text

from .conftest import random_config

CASES = [(kind, i) for kind in ("dot", "sparse", "swa") for i in range(3)]


def _rules(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines if (m := re.match(r"%Warning-([A-Z]+)", line))}


@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_exported_verilog_is_lint_clean(tmp_path, kind, i):
    cfg = random_config(kind, random.Random(f"lint {kind} {i}"))
    vpath, _ = export_design(cfg, tmp_path)
    vlt = vpath.with_suffix(".vlt")
    assert lint(vpath, vlt) == [], cfg
    bare = lint(vpath)  # without the waivers: only the two waived rules, never a width warning
    assert _rules(bare) <= {"PROCASSINIT", "UNUSEDSIGNAL"}, (cfg, bare[:5])
    named = [ln for ln in bare if "UNUSEDSIGNAL" in ln and not re.search(r"'(_\d+_|[^']*\$[^']*)'", ln)]
    assert not named, named[:3]


def test_amaranth_verilog_is_not(tmp_path):
    """What the portable pass removes is there in Amaranth's own Verilog (the check can fail)."""
    cfg = random_config("sparse", random.Random("lint raw"))
    raw = tmp_path / "dut.v"
    raw.write_text(verilog_text(cfg, "dut"))
    rules = _rules(lint(raw))
    assert {"WIDTHEXPAND", "UNUSEDSIGNAL"} <= rules, rules


class _Spare(wiring.Component):
    """An input whose high bits no one reads: the waivers must not hide a named signal."""

    def __init__(self) -> None:
        super().__init__({"a": In(8), "y": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a[:4])
        return m


def test_waivers_do_not_hide_named_signals(tmp_path):
    v, vlt = tmp_path / "spare.v", tmp_path / "spare.vlt"
    v.write_text(portable_verilog(_Spare(), "spare"))
    vlt.write_text(waivers("spare"))
    assert any("UNUSEDSIGNAL" in ln and "'a'" in ln for ln in lint(v, vlt))


EQUIV = """proc; flatten; memory -nomap; opt_clean
rename {top} gold
design -stash gold_design
read_verilog -sv gate.v
proc; memory -nomap; opt_clean
rename {top} gate
design -copy-from gold_design gold
equiv_make gold gate equiv
hierarchy -top equiv
equiv_simple -seq 2
equiv_induct -seq 2
tee -q -o status.txt equiv_status"""  # run_yosys has read dut.v (the gold design) first


EQUIV_CASES = [(kind, i) for kind in ("dot", "sparse") for i in range(3)]


@pytest.mark.parametrize("kind,i", EQUIV_CASES, ids=[f"{k}-{i}" for k, i in EQUIV_CASES])
def test_portable_verilog_is_equivalent_to_amaranth_verilog(kind, i):
    cfg = random_config(kind, random.Random(f"equiv {kind} {i}"))
    status = run_yosys(verilog_text(cfg, "top"), EQUIV.format(top="top"), ["status.txt"],
                       files={"gate.v": portable_verilog(cfg, "top")}, timeout=600)["status.txt"]
    assert "Equivalence successfully proven!" in status, (cfg, status[-400:])
