"""``hw.export.export_design``: the top module carries the design's name, and the JSON beside the
``.v`` documents the payload bit layout. The layout is checked against the engine's own packing
(``pack_inputs``): a payload is sliced by the JSON's offsets/widths alone and the slices must
equal the workload's codes, placed by an independent rule written here; Yosys must accept the
module under its name."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hw import dot, rtl, sparse, swa
from hw.engines import config_from_dict
from hw.export import design_name, export_design


def field(doc: dict, port: str, name: str) -> dict:
    return next(f for f in doc["payload_fields"][port] if f["name"] == name)


def elements(payload: int, f: dict) -> list[int]:
    """Unsigned elements of a JSON field of one payload (one element for a scalar field)."""
    count, width = f.get("count", 1), f.get("element_width", f["width"])
    return [(payload >> (f["offset"] + j * width)) & ((1 << width) - 1) for j in range(count)]


def test_design_names_are_readable_and_distinct():
    assert design_name(dot.DotConfig(16, "int8", "int8", 1024)) == "dot_l16_int8_int8_k1024"
    assert design_name(dot.DotConfig(16, "int8", "int8", 1024, pipeline=2)) == "dot_l16_int8_int8_k1024_p2"
    assert design_name(sparse.SparseConfig(8, 2, 4, "e4m3", "int8", 256)) == "sparse_l8_2of4_e4m3_int8_k256"
    assert design_name(swa.SWAConfig(64, 16, 8, "int8", "e4m3")) == "swa_d64_w16_l8_int8_e4m3"
    a = swa.SWAConfig(64, 16, 8, "int8", "int8", recip_bits=12)
    b = swa.SWAConfig(64, 16, 8, "int8", "int8", recip_bits=13)
    assert design_name(a) != design_name(b) and design_name(a).startswith("swa_d64_w16_l8_int8_int8_x")


def test_dot_json_fields_slice_packed_beats(tmp_path):
    cfg = dot.DotConfig(4, "e2m3", "int8", 64)
    vpath, jpath = export_design(cfg, tmp_path)
    assert vpath.name == "dot_l4_e2m3_int8_k64.v" and jpath.name == "dot_l4_e2m3_int8_k64.json"
    doc = json.loads(jpath.read_text())
    assert doc["top"] == "dot_l4_e2m3_int8_k64" and config_from_dict(doc["config"]) == cfg
    wl = dot.random_workload(cfg, k=12, vectors=3, seed=5)
    beats = dot.pack_inputs(cfg, wl)
    assert len(beats) == 3 * 3
    for r, payload in enumerate(beats):
        vec, chunk = divmod(r, 3)  # 12 elements / 4 lanes = 3 beats per vector
        assert elements(payload, field(doc, "i", "w")) == list(wl.w_codes[vec, 4 * chunk:4 * chunk + 4])
        assert elements(payload, field(doc, "i", "a")) == list(wl.a_codes[vec, 4 * chunk:4 * chunk + 4])
        assert elements(payload, field(doc, "i", "last")) == [int(chunk == 2)]
    width = sum(f["width"] for f in doc["payload_fields"]["i"])
    ports = {p["name"]: p for p in doc["ports"]}
    assert ports["i__payload"] == {"name": "i__payload", "direction": "input", "width": width}
    assert ports["o__payload"]["direction"] == "output"
    assert ports["o__payload"]["width"] == field(doc, "o", "data")["width"] == cfg.acc_bits
    assert field(doc, "o", "data")["signed"] is True
    assert {p["name"] for p in doc["ports"]} == {"clk", "rst", "i__valid", "i__ready", "i__payload",
                                                 "o__valid", "o__ready", "o__payload"}
    assert doc["output_exponent"] == dot.output_exponent(cfg)


def test_sparse_json_fields_rebuild_dense_weights(tmp_path):
    """Compressed weights and their indices sliced from the beats put back at ``group·m + idx``
    must give the dense weights, and the activations the dense activations."""
    cfg = sparse.SparseConfig(4, 2, 4, "int4", "int8", 64)
    doc = json.loads(export_design(cfg, tmp_path)[1].read_text())
    wl = sparse.random_workload(cfg, k=16, vectors=2, seed=2)
    beats = sparse.pack_inputs(cfg, wl)
    span = cfg.span  # 8 dense elements per beat
    dense_w = np.zeros_like(wl.w_codes)
    for r, payload in enumerate(beats):
        vec, chunk = divmod(r, 16 // span)
        w, idx = elements(payload, field(doc, "i", "w")), elements(payload, field(doc, "i", "idx"))
        for lane, (code, i) in enumerate(zip(w, idx)):
            group = lane // cfg.n
            if code:
                dense_w[vec, chunk * span + group * cfg.m + i] = code
        assert elements(payload, field(doc, "i", "a")) == list(wl.a_codes[vec, chunk * span:(chunk + 1) * span])
    assert np.array_equal(dense_w, wl.w_codes)


def test_swa_json_fields_slice_packed_beats_and_outputs(tmp_path):
    cfg = swa.SWAConfig(8, 4, 4, "e4m3", "int4")
    doc = json.loads(export_design(cfg, tmp_path)[1].read_text())
    wl = swa.random_workload(cfg, n=3, seed=1)
    beats = swa.pack_inputs(cfg, wl)
    for r, payload in enumerate(beats):
        tok, chunk = divmod(r, 2)
        for name, arr in (("q", wl.q), ("k", wl.k), ("v", wl.v)):
            assert elements(payload, field(doc, "i", name)) == list(arr[tok, 4 * chunk:4 * chunk + 4])
        assert elements(payload, field(doc, "i", "last")) == [int(r == len(beats) - 1)]
    # the output field, sliced and sign-extended by hand, equals the engine's own unpacking
    o = field(doc, "o", "data")
    assert o["count"] == 4 and o["signed"]
    rng = np.random.default_rng(0)
    words = [int.from_bytes(rng.bytes(o["width"] // 8 + 1), "little") & ((1 << o["width"]) - 1) for _ in range(2)]
    w = o["element_width"]
    mine = [x - (x >> (w - 1) << w) for p in words for x in elements(p, o)]
    assert mine == list(swa.unpack_outputs(cfg, words).ravel())


def test_verilog_header_and_yosys_accepts_the_name(tmp_path):
    cfg = dot.DotConfig(2, "int4", "int4", 16)
    vpath, jpath = export_design(cfg, tmp_path, top="my_dot")
    text = vpath.read_text()
    doc = json.loads(jpath.read_text())
    head = text[:text.index("/*")]
    assert all(line.startswith("//") for line in head.splitlines()[:-1]) and head.splitlines()[-1] == "`timescale 1ns / 1ps"
    for p in doc["ports"]:
        assert re.search(rf"//\s+{p['direction']}\s+{p['width']}\s+{p['name']}$", head, re.M)
    for f in doc["payload_fields"]["i"]:
        assert f"[{f['offset'] + f['width'] - 1}:{f['offset']}] {f['name']}" in head
    assert re.search(r"^module my_dot\(", text, re.M) and "module dut(" not in text
    out = rtl.run_yosys(text, "hierarchy -check -top my_dot\ntee -q -o top.txt ls", ["top.txt"])
    assert "my_dot" in out["top.txt"]


@pytest.mark.parametrize("bad", ["1abc", "module", "a-b", "", "x" * 200])
def test_bad_top_names_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="not a Verilog identifier"):
        export_design(dot.DotConfig(2, "int4", "int4", 16), tmp_path, top=bad)
