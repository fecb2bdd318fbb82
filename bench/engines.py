"""Engine efficiency, measured by simulation: steady-state utilization of dense and N:M sparse
engines, sparse/dense cycle ratios against n/m, and accumulator widths against published formulas.

Run: ``.venv/bin/python bench/engines.py [--backend pysim|verilator] [--lanes 8] [--k 256]
[--vectors 32] [--seed 1]``. Goals (issue 3): utilization = useful MACs / (lanes × cycles) ≥ 95%
(useful MACs: K per vector dense, K·n/m per vector sparse, i.e. the non-zero slots a lane
computes); sparse n:m cycles / dense cycles at equal lanes within 5% of n/m for 1:4, 2:4, 2:8,
4:8. Every simulated output is checked against ``reference()`` and every cycle count against
``cycles()`` before it is printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from hw import dot, sparse
from hw.arith import a2q_bits, acc_bits, finite_codes, kulisch_bits
from hw.engine import random_codes
from hw.sim import simulate
from quant.formats import parse_format
from quant.reference import decode

NM = [(1, 4), (2, 4), (2, 8), (4, 8)]


def measure(mod, config, workload, backend: str) -> int:
    """Simulated cycles of one workload, after checking outputs and the closed form."""
    res = simulate(config, mod.pack_inputs(config, workload), mod.n_outputs(config, workload), backend=backend)
    got = mod.unpack_outputs(config, res.outputs)
    if not np.array_equal(got.astype(object), mod.reference(config, workload).astype(object)):
        raise AssertionError(f"{config}: simulated outputs differ from reference()")
    if res.cycles != mod.cycles(config, workload):
        raise AssertionError(f"{config}: measured {res.cycles} cycles, cycles() says {mod.cycles(config, workload)}")
    return res.cycles


def full_nm_workload(n: int, m: int, k: int, vectors: int, seed: int, wfmt: str, afmt: str) -> dot.Workload:
    """Weights with exactly n non-zeros in every group of m (the sparse engine's full load)."""
    rng = np.random.default_rng(seed)
    codes = finite_codes(parse_format(wfmt))
    nonzero = codes[decode(codes, wfmt) != 0]
    pos = np.argsort(rng.random((vectors, k // m, m)), axis=2)[:, :, :n]
    keep = np.zeros((vectors, k // m, m), dtype=bool)
    np.put_along_axis(keep, pos, True, axis=2)
    w = np.where(keep.reshape(vectors, k), rng.choice(nonzero, (vectors, k)), 0).astype(np.uint8)
    return dot.Workload(w, random_codes(parse_format(afmt), (vectors, k), rng))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="pysim", choices=["pysim", "verilator"])
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--vectors", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    wfmt, afmt = "e4m3", "int8"
    lanes, k, vectors = args.lanes, args.k, args.vectors
    print(f"engines: {wfmt} x {afmt}, {lanes} lanes, K={k}, {vectors} vectors, pipeline=2, "
          f"backend {args.backend}, seed {args.seed}")
    t0 = time.perf_counter()
    rows = []
    dense_cfg = dot.DotConfig(lanes, wfmt, afmt, k, pipeline=2)
    jobs = [("dense", None, dense_cfg)] + [
        (f"{n}:{m}", (n, m), sparse.SparseConfig(lanes, n, m, wfmt, afmt, k, pipeline=2)) for n, m in NM
    ] + [("2:4+block", (2, 4), sparse.SparseConfig(lanes, 2, 4, wfmt, afmt, k, block=4 * lanes // 2 * 4, pipeline=2))]
    dense_cycles = None
    for name, nm, cfg in tqdm(jobs, desc="simulate", leave=False):
        if nm is None:
            wl = dot.random_workload(cfg, k, vectors, args.seed)
            cyc = measure(dot, cfg, wl, args.backend)
            useful = vectors * k
            dense_cycles = cyc
        elif cfg.block is None:
            wl = full_nm_workload(nm[0], nm[1], k, vectors, args.seed, wfmt, afmt)
            cyc = measure(sparse, cfg, wl, args.backend)
            useful = vectors * k * nm[0] // nm[1]
        else:
            wl = sparse.random_workload(cfg, k, vectors, args.seed, block_zero_fraction=0.5)
            cyc = measure(sparse, cfg, wl, args.backend)
            live = sparse.block_bitmap(cfg, wl).mean()
            useful = int(round(vectors * k * nm[0] / nm[1] * live))
        rows.append((name, nm, cfg, wl, cyc, useful))

    print()
    head = f"{'engine':<10} {'cycles':>7} {'useful MACs':>11} {'utilization':>11} {'goal':>6} " \
           f"{'cycles/dense':>12} {'target':>7} {'off by':>7} {'goal':>6}"
    print(head)
    print("-" * len(head))
    for name, nm, cfg, wl, cyc, useful in rows:
        util = useful / (lanes * cyc)
        line = f"{name:<10} {cyc:>7} {useful:>11} {util:>10.1%} {'>=95%':>6} "
        if nm is None:
            line += f"{1.0:>12.4f} {'1':>7} {'':>7} {'':>6}"
        else:
            ratio = cyc / dense_cycles
            target = nm[0] / nm[1]
            if cfg.block is not None:
                target *= sparse.block_bitmap(cfg, wl).mean()
                tname = f"{target:.4f}"
            else:
                tname = f"{nm[0]}/{nm[1]}"
            off = ratio / target - 1
            line += f"{ratio:>12.4f} {tname:>7} {off:>+7.1%} {'<=5%':>6}"
        print(line)
    print(f"(2:4+block: block = {jobs[-1][2].block} dense weights, ~50% of blocks all-zero; its target is "
          f"n/m × live-block fraction; {time.perf_counter() - t0:.1f} s)")

    print()
    print("accumulator width, bits (ours: exact extremes; peers: ANCHORS.md formulas)")
    head = f"{'weights x acts':<16} {'K':>6} {'ours':>5} {'Kulisch':>8} {'A2Q':>5}"
    print(head)
    print("-" * len(head))
    for w, a, kk in [("int8", "int8", 4608), ("int4", "uint4", 4608), ("e2m3", "e2m3", 4608),
                     ("e4m3", "e4m3", 4608), ("e5m2", "e5m2", 4608), ("e4m3", "int8", 4608)]:
        both_int = w.startswith(("int", "uint")) and a.startswith(("int", "uint"))
        print(f"{w + ' x ' + a:<16} {kk:>6} {acc_bits(w, a, kk):>5} {kulisch_bits(w, a, kk):>8} "
              f"{(a2q_bits(w, a, kk) if both_int else '-'):>5}")


if __name__ == "__main__":
    main()
