"""Synthesis table: LUT / FF / CARRY / DSP of the dense vs the 2:4 sparse engine on xc7 (Yosys).

Run: ``.venv/bin/python bench/synth.py [--quick] [--afmt FMT] [--k-max K] [--target xc7] [--no-cache]``.
Grid: throughput 4, 8, 16, 32 dense elements per cycle × formats int4, int8, e2m3, e4m3 (weights
and activations in the same format unless ``--afmt`` is given). At equal throughput the dense
engine has ``lanes`` multipliers and the 2:4 engine ``lanes / 2`` (each covers a group of 4 with
its 2 non-zeros). ``--quick``: 4 and 16 lanes, int8 and e4m3. Every run is cached
(``hw.rtl.synthesize``), so a rerun prints at once; ``s`` is the time of the original Yosys run.
Also synthesizes the 16-lane int8 dense engine with ``-nodsp`` for ANCHORS.md's LUT-only figure.
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from hw.engines import ENGINES
from hw.rtl import synthesize, yosys_version

#: ANCHORS.md "Synthesis facts measured here" (Yosys 0.70 synth_xilinx, int8, 32-bit accumulators):
#: lanes -> (sparse 2:4 LUT, dense LUT, sparse DSP, dense DSP)
PEER_SPARSE_VS_DENSE = {4: (79, 214, 2, 4), 16: (812, 1394, 8, 16)}
PEER_NODSP_16_INT8 = dict(lut=3400, ff=384, carry=96)


def configs(lanes: int, wfmt: str, afmt: str, k_max: int):
    dot, sp = ENGINES["dot"], ENGINES.get("sparse")
    out = [("dense", lanes, dot.Config(lanes=lanes, wfmt=wfmt, afmt=afmt, k_max=k_max))]
    if sp is not None:
        out.append(("2:4", lanes // 2, sp.Config(lanes=lanes // 2, n=2, m=4, wfmt=wfmt, afmt=afmt, k_max=k_max)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 and 16 lanes, int8 and e4m3 only")
    ap.add_argument("--afmt", default=None, help="activation format (default: same as the weights)")
    ap.add_argument("--k-max", type=int, default=4096, help="reduction length the accumulators hold (default 4096)")
    ap.add_argument("--target", default="xc7", help="synthesis target (default xc7)")
    ap.add_argument("--no-cache", action="store_true", help="synthesize again even if cached")
    args = ap.parse_args()
    lanes_list = [4, 16] if args.quick else [4, 8, 16, 32]
    fmts = ["int8", "e4m3"] if args.quick else ["int4", "int8", "e2m3", "e4m3"]
    jobs = [(fmt, lanes, eng, mults, cfg) for fmt in fmts for lanes in lanes_list
            for eng, mults, cfg in configs(lanes, fmt, args.afmt or fmt, args.k_max)]
    jobs.append(("int8", 16, "dense -nodsp", 16, ENGINES["dot"].Config(lanes=16, wfmt="int8", afmt="int8", k_max=args.k_max)))

    rows = []
    t0 = time.perf_counter()
    for fmt, lanes, eng, mults, cfg in tqdm(jobs, desc="yosys", unit="run"):
        r = synthesize(cfg, args.target, nodsp=eng.endswith("-nodsp"), cache=not args.no_cache)
        rows.append((fmt, lanes, eng, mults, cfg.acc_bits, r))
    wall = time.perf_counter() - t0

    print(f"\n{yosys_version()}, target {args.target}, k_max {args.k_max}, pipeline 1; "
          f"activations {'= weights' if args.afmt is None else args.afmt}")
    head = (f"{'w×a':<12} {'lanes':>5} {'engine':<13} {'mults':>5} {'acc':>4} {'LUT':>7} {'FF':>6} {'CARRY':>6} "
            f"{'DSP':>4} {'MUXF':>5} {'s':>6}  peer (ANCHORS.md)")
    print(head)
    print("-" * len(head))
    for fmt, lanes, eng, mults, acc, r in rows:
        peer = ""
        if fmt == "int8" and args.afmt in (None, "int8") and lanes in PEER_SPARSE_VS_DENSE and args.target == "xc7":
            sl, dl, sd, dd = PEER_SPARSE_VS_DENSE[lanes]
            peer = {"dense": f"{dl} LUT, {dd} DSP", "2:4": f"{sl} LUT, {sd} DSP"}.get(eng, "")
            if eng.endswith("-nodsp"):
                p = PEER_NODSP_16_INT8
                peer = f"~{p['lut']:,} LUT, {p['ff']} FF, {p['carry']} CARRY4"
        pair = f"{fmt}×{args.afmt or fmt}"
        print(f"{pair:<12} {lanes:>5} {eng:<13} {mults:>5} {acc:>4} {r.lut:>7,} {r.ff:>6,} {r.carry:>6} {r.dsp:>4} "
              f"{r.muxf:>5} {r.seconds:>6.1f}  {peer}")
    print(f"\n{len(rows)} configs in {wall:.0f} s wall ({sum(r.cached for *_, r in rows)} from the cache); "
          f"lanes = dense elements per cycle; 'acc' = accumulator bits; s = Yosys run time per config. "
          f"Peers: 32-bit accumulators, ours from k_max.")


if __name__ == "__main__":
    main()
