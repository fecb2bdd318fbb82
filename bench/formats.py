"""Quantize throughput of the numpy golden model next to ml_dtypes' C++ casts, on 10M values.

Run: ``.venv/bin/python bench/formats.py [--n 10000000] [--repeat 3]``. Goal: ours within 2× of
ml_dtypes (ratio = our time / ml_dtypes' time). ml_dtypes casts float32 -> float8 -> float32;
ours rounds onto the grid with the same result (checked here on the benchmark data).
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from quant.formats import parse_format
from quant.reference import encode, quantize

PAIRS = {
    "e4m3ocp": ml_dtypes.float8_e4m3fn,
    "e5m2ieee": ml_dtypes.float8_e5m2,
    "e3m2": ml_dtypes.float6_e3m2fn,
    "e2m1": ml_dtypes.float4_e2m1fn,
}


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"quantize {args.n:,} float32 values (best of {args.repeat})")
    head = f"{'format':<10} {'ours quantize':>14} {'ml_dtypes cast':>15} {'ratio':>6} {'goal':>5} {'ours encode':>12} {'ml_dtypes view':>15}"
    print(head)
    print("-" * len(head))
    for name, dt in PAIRS.items():
        fmt = parse_format(name)
        x = (rng.standard_normal(args.n) * fmt.max_value / 3).astype(np.float32)
        xc = np.clip(x, -fmt.max_value, fmt.max_value)
        assert np.array_equal(quantize(x, fmt), xc.astype(dt).astype(np.float32))
        t_ours = best_of(lambda: quantize(x, fmt), args.repeat)
        t_ml = best_of(lambda: np.clip(x, -fmt.max_value, fmt.max_value).astype(dt).astype(np.float32), args.repeat)
        t_enc = best_of(lambda: encode(x, fmt), args.repeat)
        t_mlv = best_of(lambda: np.clip(x, -fmt.max_value, fmt.max_value).astype(dt).view(np.uint8), args.repeat)
        ratio = t_ours / t_ml
        print(f"{name:<10} {args.n / t_ours / 1e6:>10.1f} M/s {args.n / t_ml / 1e6:>11.1f} M/s {ratio:>6.2f} {'≤2':>5} "
              f"{args.n / t_enc / 1e6:>8.1f} M/s {args.n / t_mlv / 1e6:>11.1f} M/s")


if __name__ == "__main__":
    main()
