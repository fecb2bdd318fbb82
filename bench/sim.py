"""Simulation speed, cycles/s: amaranth pysim vs the Verilator backend, on the same engines.

Run: ``.venv/bin/python bench/sim.py [--quick] [--cold]``. Designs: a 32-lane 2:4 sparse engine,
e4m3 × int8 (the issue's benchmark; dense 32-lane if the sparse engine is missing), and a
16-lane int8 × int8 dense engine (the design of ANCHORS.md's probe). Goal: Verilator ≥ 300× pysim.

Speeds are marginal rates: (cycles of a long run − cycles of a short run) / (time difference), so
the pysim figure excludes elaboration and the Verilator figure excludes the build and the load;
both include moving Python ints in and out (the Verilator run packs them into 32-bit words, the
harness runs the whole batch in one ctypes call). The build time is reported separately; with
``--cold`` it is measured on an empty cache (Verilator runtime compile included).

The exported self-checking testbench (``paretofab rtl … --testbench``, never stalling) is timed
too, under Icarus (``iverilog -g2012``, ``vvp``) and Verilator (``--binary --timing``): the
marginal rate between a short and a long workload (each its own compile; run time only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from hw.engines import ENGINES
from hw.sim import simulate
from hw.testbench import compile_testbench, write_testbench
from hw.verilator import VerilatorModel

#: ANCHORS.md, "Simulation speed measured here" (16 signed int8 MACs, 24-bit accumulators)
PEERS = [
    ("amaranth.sim (ANCHORS.md)", "4.3–4.9k"),
    ("cocotb + Verilator (ANCHORS.md)", "77k"),
    ("Verilator .so, one ctypes call per cycle (ANCHORS.md)", "1.27M"),
    ("Verilator .so, one call per numpy batch (ANCHORS.md)", "6.2M"),
]


def designs():
    out = []
    if "sparse" in ENGINES:
        sp = ENGINES["sparse"]
        out.append(("sparse 2:4, 32 lanes, e4m3×int8, K=256", sp,
                    sp.Config(lanes=32, n=2, m=4, wfmt="e4m3", afmt="int8", k_max=256), 256))
    else:
        d = ENGINES["dot"]
        out.append(("dense, 32 lanes, e4m3×int8, K=256", d, d.Config(lanes=32, wfmt="e4m3", afmt="int8", k_max=256), 256))
    d = ENGINES["dot"]
    out.append(("dense, 16 lanes, int8×int8, K=64", d, d.Config(lanes=16, wfmt="int8", afmt="int8", k_max=64), 64))
    return out


def workload(mod, cfg, k: int, vectors: int, seed: int = 1):
    wl = mod.random_workload(cfg, k=k, vectors=vectors, seed=seed)
    return mod.pack_inputs(cfg, wl), mod.n_outputs(cfg, wl), mod.reference(cfg, wl)


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t


def bench_design(label, mod, cfg, k, quick: bool):
    comp = cfg.build()
    # pysim: short and long run of the same component
    ins, n, ref = workload(mod, cfg, k, 80 if quick else 300)
    short, t_s = timed(lambda: simulate(comp, ins[: len(ins) // 8], n // 8, backend="pysim"))
    full, t_f = timed(lambda: simulate(comp, ins, n, backend="pysim"))
    assert [int(x) for x in mod.unpack_outputs(cfg, full.outputs)] == [int(x) for x in ref], "pysim != reference"
    py_rate = (full.cycles - short.cycles) / max(t_f - t_s, 1e-9)

    # verilator: build (or cache hit), then short and long batches of the same beats
    model, t_build = timed(lambda: VerilatorModel.from_component(comp))
    meta = json.loads((model.lib_path.parent / "meta.json").read_text())
    reps = max(1, (200_000 if quick else 2_000_000) // len(ins))
    big_ins, big_n = ins * reps, n * reps
    max_c = 10 * len(big_ins) + 100
    small, t_vs = timed(lambda: model.run(big_ins[: len(big_ins) // 10], big_n // 10, max_cycles=max_c))
    big, t_vb = timed(lambda: model.run(big_ins, big_n, max_cycles=max_c))
    got = [int(x) for x in mod.unpack_outputs(cfg, big.outputs[:n])]
    assert got == [int(x) for x in ref] and big.outputs[:n] == full.outputs, "verilator != pysim/reference"
    assert big.cycles == reps * (full.cycles - cfg.pipeline - 1) + cfg.pipeline + 1
    vl_rate = (big.cycles - small.cycles) / max(t_vb - t_vs, 1e-9)
    # the harness alone: pre-packed words, one ctypes call
    words = model.pack(big_ins)
    (hb, _), t_hb = timed(lambda: model.run_words(words, len(big_ins), big_n, max_cycles=max_c))
    (hs, _), t_hs = timed(lambda: model.run_words(words, len(big_ins) // 10, big_n // 10, max_cycles=max_c))
    core_rate = (hb.cycles - hs.cycles) / max(t_hb - t_hs, 1e-9)
    words = None  # free the packed copy before the next config
    return dict(label=label, in_bits=model.in_width, out_bits=model.out_width, py_rate=py_rate,
                py_cycles=full.cycles, vl_rate=vl_rate, vl_cycles=big.cycles, vl_seconds=t_vb,
                core_rate=core_rate, build_s=t_build, verilate_s=meta["verilate_s"],
                compile_s=meta["compile_s"], ratio=vl_rate / py_rate)


def _run_exported(tb, simulator: str) -> tuple[int, float]:
    """Compile and run an exported testbench; (cycles it reports, run seconds)."""
    cmd = compile_testbench(tb, simulator, optimize=True)
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=tb.testbench.parent, check=True, capture_output=True, text=True).stdout
    dt = time.perf_counter() - t
    m = re.search(r"PASS: .*?, (\d+) cycles\)", out)
    assert m, out[-500:]
    return int(m.group(1)), dt


def bench_exported(label, mod, cfg, k, quick: bool) -> dict:
    """Marginal cycles/s of the exported testbench under Icarus and Verilator (``nan`` where the
    simulator is missing)."""
    rates = {}
    with tempfile.TemporaryDirectory(prefix="paretofab-bench-tb-") as d:
        for sim, (short, long) in (("icarus", (20, 120 if quick else 400)), ("verilator", (200, 4000 if quick else 40000))):
            if sim == "icarus" and not shutil.which("iverilog"):
                rates[sim] = float("nan")
                continue
            runs = []
            for v in (short, long):
                tb = write_testbench(cfg, Path(d) / f"{sim}{v}", mod.random_workload(cfg, k=k, vectors=v, seed=1),
                                     valid_pct=100, ready_pct=100)
                runs.append(_run_exported(tb, sim))
            (c0, t0), (c1, t1) = runs
            rates[sim] = (c1 - c0) / max(t1 - t0, 1e-9)
    return dict(label=label, **rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (noisier rates)")
    ap.add_argument("--cold", action="store_true", help="build into an empty temporary cache (cold build time)")
    args = ap.parse_args()
    if args.cold:
        os.environ["PARETOFAB_CACHE"] = tempfile.mkdtemp(prefix="paretofab-bench-")
    rows = [bench_design(*d, quick=args.quick) for d in designs()]
    print(f"{'design':<40} {'payload in/out':>14} {'pysim c/s':>10} {'verilator c/s':>14} {'ratio':>7} "
          f"{'harness c/s':>12} {'ratio':>7} {'build s':>8} {'(verilate+g++)':>14}")
    for r in rows:
        print(f"{r['label']:<40} {r['in_bits']:>6}/{r['out_bits']:<7} {r['py_rate']:>10,.0f} {r['vl_rate']:>14,.0f} "
              f"{r['ratio']:>6,.0f}× {r['core_rate']:>12,.0f} {r['core_rate'] / r['py_rate']:>6,.0f}× {r['build_s']:>8.1f} {r['verilate_s']:>6.1f}+{r['compile_s']:<6.1f}")
    print()
    for r in rows:
        print(f"  {r['label']}: verilator {r['vl_cycles']:,} cycles in {r['vl_seconds']:.2f} s "
              f"end to end (Python ints in and out); pysim {r['py_cycles']:,} cycles; "
              f"goal ≥ 300×: {'met' if r['ratio'] >= 300 else 'NOT met'}")
    print("  harness c/s: the same batch as pre-packed uint32 words (VerilatorModel.run_words), C++ loop only")
    print("  build s: this run's VerilatorModel.from_component (export + build, or cache hit + load); "
          "verilate+g++: the recorded cold build of this design")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  machine: {os.cpu_count()} cores, load average {load:.1f} during the run (rates scale down under load)")
    print("\nexported self-checking testbench (paretofab rtl --testbench, never stalling), marginal cycles/s:")
    print(f"{'design':<40} {'Icarus 11':>12} {'Verilator --binary':>19} {'ours: pysim':>12} {'our Verilator':>14}")
    for r, d in zip(rows, designs()):
        e = bench_exported(*d, quick=args.quick)
        print(f"{r['label']:<40} {e['icarus']:>12,.0f} {e['verilator']:>19,.0f} {r['py_rate']:>12,.0f} "
              f"{r['vl_rate']:>14,.0f}")
    print("\npeers, ANCHORS.md (16 signed int8 MACs, 24-bit accumulators), cycles/s:")
    for name, v in PEERS:
        print(f"  {name:<56} {v:>10}")


if __name__ == "__main__":
    main()
