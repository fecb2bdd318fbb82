"""Sliding-window attention kernel vs the dense causal baseline: cycles vs n, the n = 4096 ratio
table beside SWAT's published figures, MAC utilization, and xc7 synthesis.

Run: ``.venv/bin/python bench/swa.py [--quick] [--no-synth] [--backend pysim|verilator]``.

- Cycles come from the closed form ``hw.swa.cycles`` and are checked against simulation at the
  small n (``--check-n``). Time assumes one nominal clock for both designs (``--mhz``, default
  200; before place and route nothing better is known).
- SWAT (Bai et al., DAC'24, "SWAT: Scalable and Efficient Window Attention-based Transformers
  Acceleration on FPGAs") reports 22× lower latency and 5.7× better energy than a dense FPGA
  baseline at n = 4096 (ANCHORS-style peer figures, printed beside ours).
- Energy is an action-count estimate with Horowitz' ISSCC'14 45 nm ASIC figures (ANCHORS.md),
  dynamic energy only: per MAC one 8-bit multiply (0.2 pJ) and one 32-bit add (0.1 pJ); per
  buffer word read, the 64-bit SRAM read energy of the buffer's size (10 / 20 / 100 pJ for
  <= 8 KB / 32 KB / 1 MB), scaled by word bits / 64. ASIC, not FPGA: SWAT's figure is measured
  board energy, so compare the shape, not the digits.
- Synthesis: Yosys ``synth_xilinx -family xc7`` (hw.rtl), before place and route.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hw import swa
from hw.sim import simulate

SWAT_LATENCY_X = 22.0   # SWAT, DAC'24: dense FPGA baseline latency / SWAT latency at n = 4096
SWAT_ENERGY_X = 5.7     # SWAT, DAC'24: dense FPGA baseline energy / SWAT energy at n = 4096

PJ_MAC = 0.2 + 0.1      # Horowitz ISSCC'14, 45 nm: 8b int mult + 32b int add (ASIC)


def sram_pj_per_64b(size_bytes: int) -> float:
    """Horowitz ISSCC'14 64-bit SRAM read energy by array size (ASIC, 45 nm)."""
    return 10.0 if size_bytes <= 8 << 10 else 20.0 if size_bytes <= 32 << 10 else 100.0


def energy_nj(cfg: swa.SWAConfig, n: int) -> float:
    """Dynamic action energy (nJ) of one sequence: MACs of both units and K/V/Q buffer reads."""
    C, D, L = cfg.chunks, cfg.head_dim, cfg.lanes
    keys = swa.total_keys(cfg, n)                                # (row, key) pairs computed
    macs = 2 * keys * D                                          # QKᵀ and SV
    word_k = L * cfg.qk_fmt.bits
    word_v = L * cfg.v_fmt.bits
    size = cfg.buffer_slots * D * max(cfg.qk_fmt.bits, cfg.v_fmt.bits) // 8
    reads = keys * C * (2 * word_k + word_v) / 64                # K and Q, V per chunk (64-bit units)
    return (macs * PJ_MAC + reads * sram_pj_per_64b(size)) / 1e3


def sim_check(cfg: swa.SWAConfig, n: int, backend: str) -> tuple[int, float]:
    """Simulated cycles of one random sequence (outputs checked against the reference)."""
    wl = swa.random_workload(cfg, n, seed=n)
    t = time.perf_counter()
    res = simulate(cfg, swa.pack_inputs(cfg, wl), swa.n_outputs(cfg, wl), backend=backend,
                   max_cycles=2 * swa.cycles(cfg, n) + 1000)
    secs = time.perf_counter() - t
    if not np.array_equal(swa.unpack_outputs(cfg, res.outputs), swa.reference(cfg, wl)):
        raise SystemExit(f"simulation disagrees with the reference for {cfg} at n={n}")
    return res.cycles, secs


def cycles_table(cfg: swa.SWAConfig, ns: list[int], check_n: list[int], backend: str, mhz: float) -> None:
    dense = swa.dense_baseline(cfg, max(ns))
    print(f"\n## cycles vs n  (head_dim {cfg.head_dim}, window {cfg.window}, lanes {cfg.lanes}, "
          f"{cfg.qk_fmt}/{cfg.v_fmt}; time at {mhz:.0f} MHz)")
    head = (f"{'n':>5} {'SWA cycles':>11} {'SWA/n':>7} {'SWA us':>8} {'dense cycles':>13} {'dense/n^2':>9} "
            f"{'dense us':>9} {'ratio':>6} {'sim check':>24}")
    print(head)
    print("-" * len(head))
    for n in ns:
        cs, cd = swa.cycles(cfg, n), swa.cycles(dense, n)
        check = ""
        if n in check_n:
            ss, ts = sim_check(cfg, n, backend)
            sd, td = sim_check(swa.dense_baseline(cfg, n), n, backend)
            ok = ss == cs and sd == swa.cycles(swa.dense_baseline(cfg, n), n)
            check = f"{backend} {'==' if ok else '!='} ({ts + td:.0f} s)"
            if not ok:
                raise SystemExit(f"closed form != simulation at n={n}: SWA {ss} vs {cs}, dense {sd}")
        print(f"{n:>5} {cs:>11,} {cs / n:>7.1f} {cs / mhz:>8.1f} {cd:>13,} {cd / n**2:>9.2f} {cd / mhz:>9.1f} "
              f"{cd / cs:>6.1f} {check:>24}")
    per = [swa.cycles(cfg, n) / n for n in ns if n >= 16 * cfg.window]
    if len(per) > 1:
        print(f"SWA cycles/n spread over n >= 16·window: {100 * (max(per) / min(per) - 1):.1f}% (goal < 5%); "
              f"steady row = {swa.steady_row_cycles(cfg)} cycles")


def ratio_table(configs: list[swa.SWAConfig], n: int, mhz: float) -> None:
    print(f"\n## n = {n}: dense baseline / SWA  (peer: SWAT DAC'24 reports {SWAT_LATENCY_X:g}x latency, "
          f"{SWAT_ENERGY_X:g}x energy)")
    head = (f"{'head_dim':>8} {'window':>6} {'lanes':>5} {'SWA ms':>8} {'dense ms':>9} {'latency x':>9} "
            f"{'SWAT':>5} {'SWA uJ':>8} {'dense uJ':>9} {'energy x':>8} {'SWAT':>5}")
    print(head)
    print("-" * len(head))
    for cfg in configs:
        dense = swa.dense_baseline(cfg, n)
        cs, cd = swa.cycles(cfg, n), swa.cycles(dense, n)
        es, ed = energy_nj(cfg, n), energy_nj(dense, n)
        print(f"{cfg.head_dim:>8} {cfg.window:>6} {cfg.lanes:>5} {cs / mhz / 1e3:>8.3f} {cd / mhz / 1e3:>9.2f} "
              f"{cd / cs:>9.1f} {SWAT_LATENCY_X:>5g} {es / 1e3:>8.2f} {ed / 1e3:>9.1f} {ed / es:>8.1f} "
              f"{SWAT_ENERGY_X:>5g}")
    print("energy: dynamic action counts x Horowitz 45 nm ASIC pJ (see module docstring), not FPGA board energy")


def utilization_table(configs: list[swa.SWAConfig], n: int) -> None:
    print("\n## MAC utilization (useful multiplies / (lanes x cycles), per unit; goal >= 95% steady state)")
    head = (f"{'head_dim':>8} {'window':>6} {'lanes':>5} {'norm mults':>10} {'div b/cyc':>9} {'row cycles':>10} "
            f"{'steady':>7} {f'n={n}':>7} {'dense n=' + str(n):>12}")
    print(head)
    print("-" * len(head))
    for cfg in configs:
        steady = cfg.window * cfg.chunks / swa.steady_row_cycles(cfg)
        print(f"{cfg.head_dim:>8} {cfg.window:>6} {cfg.lanes:>5} {cfg.norm_mults:>10} {cfg.div_step_bits:>9} "
              f"{swa.steady_row_cycles(cfg):>10} {100 * steady:>6.1f}% {100 * swa.mac_utilization(cfg, n):>6.1f}% "
              f"{100 * swa.mac_utilization(swa.dense_baseline(cfg, n), n):>11.1f}%")
    print("dense: the masked upper triangle is computed but is not useful work (hence ~50%)")


def synth_xc7(cfg: swa.SWAConfig):
    """``hw.rtl.synthesize(cfg, "xc7")`` and a note when the run took Yosys' assert workaround
    (``Resources.workaround``). Returns (Resources, note)."""
    from hw import rtl

    res = rtl.synthesize(cfg, "xc7")
    return res, " (splitnets, yosys#4349)" if res.workaround else ""


def synth_table(pairs: list[tuple[str, swa.SWAConfig]]) -> None:
    print("\n## xc7 synthesis (Yosys synth_xilinx, before P&R; int8, lanes 16)")
    head = (f"{'design':<8} {'head_dim':>8} {'window/n':>8} {'LUT':>7} {'FF':>7} {'CARRY4':>6} {'DSP':>4} "
            f"{'BRAM18':>6} {'LUTRAM':>6} {'buffer bits':>11} {'s':>5}")
    print(head)
    print("-" * len(head))
    for name, cfg in pairs:
        r, note = synth_xc7(cfg)
        bits = cfg.buffer_slots * cfg.head_dim * (cfg.qk_fmt.bits + cfg.v_fmt.bits)
        print(f"{name:<8} {cfg.head_dim:>8} {cfg.window:>8} {r.lut:>7,} {r.ff:>7,} {r.carry:>6} {r.dsp:>4} "
              f"{r.bram18:>6} {r.lutram:>6} {bits:>11,} {r.seconds:>5.0f}{' (cached)' if r.cached else ''}{note}",
              flush=True)
    print("SWA buffers: (window + 2) x head_dim codes per K/V; dense: n x head_dim (grows with n)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small synthesis subset and simulation check")
    ap.add_argument("--no-synth", action="store_true", help="skip synthesis")
    ap.add_argument("--backend", default="pysim", choices=["pysim", "verilator"])
    ap.add_argument("--mhz", type=float, default=200.0, help="nominal clock for time columns (MHz)")
    ap.add_argument("--fmt", default="int8", help="Q/K and V format (default int8)")
    args = ap.parse_args()

    main_cfg = swa.SWAConfig(64, 64, 16, args.fmt, args.fmt)
    small = swa.SWAConfig(16, 16, 16, args.fmt, args.fmt)
    check = [64] if args.quick or args.backend == "pysim" else [64, 256]
    cycles_table(small, [64, 256, 1024, 4096], check, args.backend, args.mhz)
    cycles_table(main_cfg, [64, 256, 1024, 4096], [], args.backend, args.mhz)
    configs = [swa.SWAConfig(d, w, 16, args.fmt, args.fmt) for d in (32, 64) for w in (16, 64, 256)]
    ratio_table(configs, 4096, args.mhz)
    utilization_table(configs + [swa.SWAConfig(64, 16, 64, args.fmt, args.fmt)], 4096)
    if args.no_synth:
        return
    if args.quick:
        pairs = [("SWA", swa.SWAConfig(32, w, 16, args.fmt, args.fmt)) for w in (16, 64)]
        pairs += [("dense", swa.dense_baseline(swa.SWAConfig(32, 16, 16, args.fmt, args.fmt), 256))]
    else:
        pairs = [("SWA", c) for c in configs]
        pairs += [("dense", swa.dense_baseline(swa.SWAConfig(d, 16, 16, args.fmt, args.fmt), n))
                  for d in (32, 64) for n in (256, 1024)]
    synth_table(pairs)


if __name__ == "__main__":
    main()
