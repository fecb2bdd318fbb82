from __future__ import annotations

import pytest

from costmodel.devices import DEVICES, DeviceError, TARGETS, get_device


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
