"""Every figure carries its source and held-out error, in JSON, ``Cost`` and ``estimate_frame``
alike, and fmax says when it hit the family's clock cap (issue 15, item 5)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from costmodel import estimate, estimate_frame
from costmodel.estimate import LABEL_COLUMNS
from costmodel.latency import DELAYS
from costmodel.resources import load_coefficients
from hw import swa
from hw.dot import DotConfig
from hw.sparse import SparseConfig
from paretofab.cli import main

LABELS = ["resource_source", "error", "error_source", "fmax_source", "fmax_clamped", "fmax_cap_mhz", "energy_source"]


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_carries_labels_that_differ_calibrated_vs_not(capsys):
    base = ["cost", "swa", "--head-dim", "16", "--window", "16", "--lanes", "16", "--v-fmt", "int8", "--qk-fmt",
            "e4m3", "--json"]
    cal = _json(capsys, base)
    # iCE40's SWA fit is drawn from kernels near an UP5K's size: 16 lanes lie beyond it
    unc = _json(capsys, base + ["--device", "ice40up5k"])
    for d in (cal, unc):
        assert all(k in d for k in LABELS)
        assert isinstance(d["fmax_clamped"], bool)
    assert cal["lut"] is not None and unc["lut"] is not None
    assert cal["resource_source"] != unc["resource_source"] and "extrapolated" in unc["resource_source"]
    assert cal["error_source"] != unc["error_source"] and "no error" in unc["error_source"]
    assert cal["error"]["lut"]["median"] is not None and cal["error"]["lut"]["n"] > 0 and unc["error"] == {}
    assert cal["energy_source"] and cal["fmax_source"]
    # dot on xc7 vs ice40: each error names its own family's rows (held-out draw, or leave-one-out
    # where no held-out draw of that family is stored)
    x7 = _json(capsys, ["cost", "dot", "--lanes", "8", "--wfmt", "int4", "--afmt", "int4", "--json"])
    ice = _json(capsys, ["cost", "dot", "--lanes", "8", "--wfmt", "int4", "--afmt", "int4", "--device",
                         "ice40up5k", "--json"])
    assert x7["error_source"].startswith("held-out") and "xc7" in x7["error_source"]
    assert ice["error_source"].startswith(("held-out", "leave-one-out")) and "ice40" in ice["error_source"]
    assert "xc7" not in ice["error_source"] and x7["error"] != ice["error"]
    assert x7["fmax_source"] != ice["fmax_source"]


def test_fmax_clamp_flagged():
    one = estimate(DotConfig(1, "int2", "int2", 1024), "xczu3eg")
    assert one.fmax_clamped and one.fmax_cap_mhz == DELAYS["xcup"]["cap"] == one.fmax_mhz
    wide = estimate(DotConfig(16, "int8", "int8", 1024, pipeline=0), "xczu3eg")
    assert not wide.fmax_clamped and wide.fmax_cap_mhz is None and wide.fmax_mhz < DELAYS["xcup"]["cap"]
    assert wide.to_dict()["fmax_clamped"] is False and one.to_dict()["fmax_cap_mhz"] == 644.0


def test_cli_text_says_clamp_and_no_foreign_error_bars(capsys):
    assert main(["cost", "dot", "--lanes", "1", "--wfmt", "int2", "--afmt", "int2", "--device", "xczu3eg"]) == 0
    out = capsys.readouterr().out
    assert "clamped at the xcup clock cap 644 MHz" in out
    if "mac" not in load_coefficients()["fits"].get("xcup", {}):
        assert "held-out error median" not in out, "xc7's error bars printed as the xcup part's"
        assert "xc7 fit reused for xcup: error not measured on xcup" in out
    assert main(["cost", "dot", "--lanes", "16", "--wfmt", "int8", "--afmt", "int8", "--pipeline", "0"]) == 0
    out = capsys.readouterr().out
    assert "clamped" not in out and "held-out error median" in out and "reused" not in out


def _drop_xcup(monkeypatch):
    import costmodel.resources as R

    real = R.load_coefficients

    def no_xcup(*a, **k):
        d = real(*a, **k)
        return {**d, "fits": {t: f for t, f in d["fits"].items() if t != "xcup"}}

    monkeypatch.setattr(R, "load_coefficients", no_xcup)


@pytest.mark.parametrize("drop", [False, True])
def test_reused_family_label_on_xcup_not_xc7(monkeypatch, drop):
    if drop:  # the reuse path, whatever fits ship
        _drop_xcup(monkeypatch)
    fitted_xcup = "mac" in __import__("costmodel.resources", fromlist=["x"]).load_coefficients()["fits"].get("xcup", {})
    cfg = DotConfig(8, "int8", "int8", 256, pipeline=0)
    x7, up = estimate(cfg, "xc7z020"), estimate(cfg, "xczu3eg")
    reused = "xc7 fit reused for xcup: error not measured on xcup"
    assert reused not in x7.error_source and "reused" not in x7.resource_source
    assert x7.error["lut"]["median"] is not None
    if fitted_xcup:
        assert "reused" not in up.error_source and up.error["lut"]["median"] is not None
    else:
        assert reused in up.error_source and "reused" in up.resource_source
        assert all(e["median"] is None and e["p90"] is None for e in up.error.values())
        f = estimate_frame(pd.DataFrame([{"lanes": 8, "wfmt": "int8", "afmt": "int8", "k_max": 256,
                                          "pipeline": 0}]), "xczu3eg")
        assert reused in f["error_source"].iloc[0] and np.isnan(f["lut_err_p90"].iloc[0])


def test_frame_labels_equal_per_row_estimates():
    configs = [DotConfig(1, "int2", "int2", 1024), DotConfig(16, "int8", "int8", 1024, pipeline=0),
               DotConfig(8, "e4m3", "int8", 512), SparseConfig(8, 2, 4, "int4", "int4", 256),
               swa.SWAConfig(16, 16, 16, "int8", "int8"), swa.SWAConfig(16, 16, 16, "e4m3", "int8")]
    rows = [dict(c.to_dict(), seq_len=64) for c in configs]
    for device in ("xc7z020", "xczu3eg", "ice40up5k"):
        f = estimate_frame(pd.DataFrame(rows), device)
        assert all(c in f.columns for c in LABEL_COLUMNS)
        for i, c in enumerate(configs):
            e = estimate(c, device, n=64) if c.engine == "swa" else estimate(c, device)
            r = f.iloc[i]
            for k in ("resource_source", "error_source", "fmax_source", "energy_source"):
                assert r[k] == getattr(e, k), (device, c, k)
            assert bool(r["fmax_clamped"]) == e.fmax_clamped
            assert (np.isnan(r["fmax_cap_mhz"]) and e.fmax_cap_mhz is None) or r["fmax_cap_mhz"] == e.fmax_cap_mhz
            for r_ in ("lut", "ff"):
                for s in ("median", "p90"):
                    want = (e.error.get(r_) or {}).get(s)
                    got = r[f"{r_}_err_{s}"]
                    assert (want is None and np.isnan(got)) or got == pytest.approx(want)
