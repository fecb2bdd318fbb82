"""LUTs of a requantizer (:mod:`hw.requant`), calibrated on standalone Yosys syntheses of random
specs — not on the networks whose accelerators it is then checked against.

Features (:func:`requant_features`, bits): ``summed`` — the accumulator plus bias adder;
``shifter`` — the product width times the shift's levels (the barrel shifter and the remainder
compare of round-half-even); ``clamp`` — the output bits compared twice; ``tables`` — the
per-channel multiplier, shift and bias constants selected by the channel (one LUT6 per 64
channels per bit). LUT = non-negative least squares over ``data/requant.csv`` of those (plus one
constant); DSPs by the Yosys rule (:func:`costmodel.features.mult_dsp`), not fitted.

``python -m costmodel.requant_cost N`` synthesizes ``N`` more random specs (seeded, resumable:
the CSV is appended with the command's seed, the Yosys version and the date).
"""

from __future__ import annotations

import datetime
import math
import random
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

from hw.requant import RequantSpec, requantizer
from hw.rtl import synthesize, yosys_version
from quant.formats import parse_format

from .features import mult_dsp

__all__ = ["requant_features", "requant_cost", "requant_coefficients", "random_spec", "REQUANT_CSV", "FEATURES"]

REQUANT_CSV = Path(__file__).parent / "data" / "requant.csv"
FEATURES = ("one", "summed", "shifter", "clamp", "tables")
#: bits of the multipliers of the random specs (quant.qonnx_import.MULT_BITS)
MULT_BITS = 24


def requant_features(spec: RequantSpec) -> dict[str, float]:
    """Structural features of one requantizer (module docstring), and its product's widths."""
    bias_bits = max(abs(b).bit_length() + 1 for b in spec.biases or (0,))
    summed = max(spec.acc_bits, bias_bits) + 1
    mult = max(m.bit_length() for m in spec.multipliers) + 1
    levels = max(1, max(spec.shifts).bit_length())
    tables = math.ceil(spec.channels / 64) * (bias_bits + mult + levels) if spec.channels > 1 else 0
    return {"one": 1.0, "summed": summed, "shifter": (summed + mult) * levels,
            "clamp": 2 * parse_format(spec.fmt).bits, "tables": tables, "a_bits": summed, "b_bits": mult}


def random_spec(rng: random.Random) -> RequantSpec:
    """A random integer requantizer as a user's layer would have: accumulators of 8–32 bits,
    1–64 channels, per-channel scale ratios over 2^-20 .. 2^-2, biases or none, any int output."""
    acc = rng.randint(8, 32)
    ch = rng.choice([1, 1, 4, 10, 16, 32, 64])
    scales = [2.0 ** rng.uniform(-20, -2) for _ in range(ch)]
    fmt = rng.choice(["int2", "int3", "int4", "int5", "int6", "int8", "uint4", "uint8", "int8n"])
    biases = tuple(rng.randint(-(1 << (acc - 2)), 1 << (acc - 2)) for _ in range(ch)) if rng.random() < 0.7 else None
    return RequantSpec.from_scales(acc, scales, fmt, MULT_BITS, relu=rng.random() < 0.5, biases=biases)


@lru_cache(maxsize=None)
def requant_coefficients(target: str = "xc7") -> dict[str, float] | None:
    """NNLS coefficients of :data:`FEATURES` on ``target``'s stored runs (None: no runs)."""
    from scipy.optimize import nnls  # heavy: scipy

    if not REQUANT_CSV.exists():
        return None
    rows = pd.read_csv(REQUANT_CSV)
    rows = rows[rows["target"] == target]
    if rows.empty:
        return None
    X = rows[list(FEATURES)].to_numpy(float)
    coef, _ = nnls(X, rows["lut"].to_numpy(float))
    return dict(zip(FEATURES, coef.tolist()))


def requant_cost(spec: RequantSpec, target: str = "xc7") -> dict[str, int]:
    """LUTs (fitted; a LUT per feature bit where ``target`` has no runs) and DSPs (Yosys rule) of
    a requantizer."""
    f = requant_features(spec)
    coef = requant_coefficients(target) or {k: (0.0 if k == "one" else 1.0) for k in FEATURES}
    dsp = mult_dsp(int(f["a_bits"]), int(f["b_bits"]), 0, target)
    return {"lut": int(round(sum(coef[k] * f[k] for k in FEATURES))), "dsp": dsp}


def calibrate(n: int, seed: int, target: str = "xc7") -> None:
    """Synthesize ``n`` random specs of ``seed`` (skipping those stored) and append them."""
    rng = random.Random(seed)
    done = set(pd.read_csv(REQUANT_CSV)["key"]) if REQUANT_CSV.exists() else set()
    for i in range(n):
        spec = random_spec(rng)
        key = f"{seed}:{i}:{target}"
        if key in done:
            continue
        r = synthesize(requantizer(spec), target)
        row = {"key": key, "target": target, **{k: requant_features(spec)[k] for k in FEATURES},
               "channels": spec.channels, "acc_bits": spec.acc_bits, "fmt": spec.fmt, "lut": r.lut, "dsp": r.dsp,
               "seconds": r.seconds, "yosys": yosys_version(),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "command": f"python -m costmodel.requant_cost {n} --seed {seed}"}
        pd.DataFrame([row]).to_csv(REQUANT_CSV, mode="a", header=not REQUANT_CSV.exists(), index=False)
        print(f"{key}: {spec.channels} channels, acc {spec.acc_bits} bits -> {spec.fmt}: {r.lut} LUT, {r.dsp} DSP",
              flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 0
    calibrate(int(args[0]) if args and args[0].isdigit() else 30, seed)
