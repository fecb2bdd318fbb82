from __future__ import annotations

import pytest

from hw.devices import DEVICES, DeviceError, TARGETS, get_device


def test_parts_and_aliases():
    for name in ("xc7z020", "xczu3eg", "u55c", "ice40up5k", "ecp5-85f"):
        d = get_device(name)
        assert d.target in TARGETS
        assert d.lut > 0 and d.ff >= d.lut // 2 and d.dsp > 0 and d.bram18 > 0
        # bram18 is the block-RAM bits in 18 Kbit units
        assert d.bram18 == d.bram_kbit // 18
        assert d.source and d.static_source
    assert get_device("ZU3EG") is DEVICES["xczu3eg"]
    assert get_device("up5k").target == "ice40"


def test_unknown_device_message():
    with pytest.raises(DeviceError, match="choose one of .*xczu3eg"):
        get_device("xc7a35t")
    assert issubclass(DeviceError, ValueError)


def test_static_power_labelled_and_consistent():
    """Each static figure says whether it is a data-sheet number or an estimate, and the figure it
    quotes is the one used."""
    import re

    scale = {"W": 1.0, "mW": 1e-3, "µW": 1e-6}
    for d in DEVICES.values():
        m = re.match(r"(datasheet|estimate): ([\d.]+) (W|mW|µW)\b", d.static_source)
        assert m, (d.name, d.static_source[:40])
        assert float(m.group(2)) * scale[m.group(3)] == pytest.approx(d.static_w), d.name
        # names its basis, not just a number: the document it rests on (a data sheet's id), and for
        # an estimate, why it is not that document's figure
        assert re.search(r"\b(?:FPGA-)?DS-?\d{3,}\b", d.static_source), d.name
        if m.group(1) == "estimate":
            assert re.search(r"not a data-sheet figure|gives only", d.static_source, re.I), d.name
    assert DEVICES["ice40up5k"].static_source.startswith("datasheet: ") and "FPGA-DS-02008" in DEVICES["ice40up5k"].static_source
