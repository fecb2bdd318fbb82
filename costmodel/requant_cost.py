"""LUTs of a requantizer (:mod:`hw.requant`) and of a threshold table in its place
(:mod:`hw.activation`), calibrated on standalone Yosys syntheses of random specs — not on the
networks whose accelerators they are then checked against.

Features (:func:`requant_features`, bits): ``summed`` — the accumulator plus bias (the adder,
the rounding compare and the clamp all scale with it); ``var`` — the product width times the
levels of a shift that varies by channel (a barrel shifter; a per-tensor shift is wiring);
``sel`` — the channel select's bits times the bits of the per-channel constants (multiplier,
shift, bias) it picks; ``np2`` — the variable shifter again when the channel count is not a power
of two (Yosys maps those selects much worse: 10 channels cost more than 64). LUT = non-negative
least squares on relative error over ``data/requant.csv``; 5-fold cross-validation on those rows:
median 30 %, p90 50 % (:func:`cv_error`) — a rough part, labelled so. DSPs by the Yosys rule
(:func:`costmodel.features.mult_dsp`), not fitted.

A threshold table (:func:`hw.activation.thresholds` of a requantizer; column ``unit`` =
``thresholds``): features (:func:`threshold_features`, bits) ``cmp`` — its ``L`` comparators of
``acc_bits + 1`` bits; ``tbits`` — the thresholds' constant bits the comparators select among
(``channels · (2^L - 1) · (acc_bits + 1)``); ``vbits`` — the output codes' constant bits
(``channels · 2^L · bits``); ``cmpch`` — ``cmp`` per channel (Yosys compares the accumulator
with every channel's constants and selects the result: chosen by 5-fold CV over ``cmp`` alone,
median / p90 18.2 % / 41.1 % → 17.2 % / 38.0 % on 116 tables). Same fit (:func:`threshold_cost`).

``python -m costmodel.requant_cost N [--seed S] [--thresholds]`` synthesizes ``N`` more random
specs (seeded, resumable: the CSV is appended with the command, the Yosys version and the date).
"""

from __future__ import annotations

import json
import random
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from hw.activation import ActivationSpec, TableActivation, thresholds
from hw.requant import RequantSpec, requantizer
from hw.rtl import SynthError, synthesize, yosys_version
from quant.formats import parse_format

from .features import mult_dsp
from .store import append, done_keys, now

__all__ = ["requant_features", "threshold_features", "requant_cost", "threshold_cost", "requant_coefficients",
           "cv_error", "fit_relative", "cv_relative", "random_spec", "spec_json", "spec_from_json", "REQUANT_CSV", "FEATURES", "UNITS"]

REQUANT_CSV = Path(__file__).parent / "data" / "requant.csv"
FEATURES = ("summed", "var", "sel", "np2")
#: the fitted features of each kind of unit (``unit`` column of the CSV)
UNITS = {"multiplier": FEATURES, "thresholds": ("cmp", "tbits", "vbits", "cmpch")}
#: bits of the multipliers of the random specs (quant.qonnx_import.MULT_BITS)
MULT_BITS = 24


def requant_features(spec: RequantSpec) -> dict[str, float]:
    """Structural features of one requantizer (module docstring), and its product's widths
    ``a_bits``, ``b_bits``."""
    bias_bits = max(abs(b).bit_length() + 1 for b in spec.biases or (0,))
    summed = max(spec.acc_bits, bias_bits) + 1
    mult = max(m.bit_length() for m in spec.multipliers) + 1
    lo, hi = min(spec.shifts), max(spec.shifts)
    var = (summed + mult) * (hi - lo).bit_length() if spec.channels > 1 else 0
    sel = (spec.channels - 1).bit_length() * (bias_bits + mult + hi.bit_length())
    np2 = var if spec.channels & (spec.channels - 1) else 0
    return {"summed": summed, "var": var, "sel": sel, "np2": np2, "a_bits": summed, "b_bits": mult}


def threshold_features(spec: ActivationSpec) -> dict[str, float]:
    """Structural features of one threshold table (module docstring)."""
    levels, width = spec.levels, spec.acc_bits + 1
    return {"cmp": levels * width, "tbits": spec.channels * ((1 << levels) - 1) * width,
            "vbits": spec.channels * (1 << levels) * parse_format(spec.fmt).bits,
            "cmpch": spec.channels * levels * width}


def random_spec(rng: random.Random, thresholds_of: bool = False) -> RequantSpec:
    """A random integer requantizer as a user's layer would have: accumulators of 8–32 bits,
    1–64 channels, per-channel scale ratios over 2^-20 .. 2^-2, biases or none, any int output;
    with ``thresholds_of`` one whose threshold table synthesizes in seconds (accumulators of
    8–24 bits, 1–64 channels, minifloat outputs too; seeds 0 and 1 drew 1–16 channels and integer
    outputs only, seed 2 integer outputs only)."""
    acc = rng.randint(8, 24 if thresholds_of else 32)
    ch = rng.choice([1, 1, 4, 16, 24, 64] if thresholds_of else [1, 1, 4, 10, 16, 32, 64])
    scales = [2.0 ** rng.uniform(-20, -2) for _ in range(ch)]
    ints = ["int2", "int3", "int4", "int5", "int6", "int8", "uint4", "uint8", "int8n"]
    fmt = rng.choice(ints + (["e4m3", "e2m3", "e3m2", "e5m2", "e2m1"] if thresholds_of else []))
    biases = tuple(rng.randint(-(1 << (acc - 2)), 1 << (acc - 2)) for _ in range(ch)) if rng.random() < 0.7 else None
    return RequantSpec.from_scales(acc, scales, fmt, MULT_BITS, relu=rng.random() < 0.5, biases=biases)


def spec_json(spec: RequantSpec) -> str:
    """A stored run's spec (the features are recomputed from it when the model changes)."""
    return json.dumps({"acc_bits": spec.acc_bits, "multipliers": list(spec.multipliers), "shifts": list(spec.shifts),
                       "fmt": spec.fmt, "relu": spec.relu, "biases": list(spec.biases) if spec.biases else None})


def spec_from_json(text: str) -> RequantSpec:
    """The spec of :func:`spec_json`."""
    d = json.loads(text)
    return RequantSpec(d["acc_bits"], tuple(d["multipliers"]), tuple(d["shifts"]), d["fmt"], relu=d["relu"],
                       biases=tuple(d["biases"]) if d["biases"] else None)


def _rows(target: str, unit: str = "multiplier") -> pd.DataFrame:
    """``target``'s stored runs of ``unit`` (:data:`UNITS`) with their features."""
    if not REQUANT_CSV.exists():
        return pd.DataFrame()
    rows = pd.read_csv(REQUANT_CSV)
    kind = rows["unit"].fillna("multiplier")  # the first 40 runs predate the column: multipliers
    rows = rows[(rows["target"] == target) & (kind == unit)].reset_index(drop=True)
    if rows.empty:
        return rows
    specs = [spec_from_json(t) for t in rows["spec"]]
    feats = [requant_features(sp) if unit == "multiplier" else threshold_features(thresholds(sp)) for sp in specs]
    return pd.concat([rows, pd.DataFrame(feats)], axis=1)


def fit_relative(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares of ``X · c ≈ y`` on relative error (the coefficients ``c``)."""
    from scipy.optimize import nnls  # heavy: scipy

    return nnls(X / y[:, None], np.ones(len(y)))[0]


def cv_relative(X: np.ndarray, y: np.ndarray, folds: int = 5) -> tuple[float, float]:
    """(median, p90) relative error of ``folds``-fold cross-validation of :func:`fit_relative`
    (row ``i`` in fold ``i mod folds``)."""
    fold = np.arange(len(y)) % folds
    err = np.concatenate([np.abs(X[fold == f] @ fit_relative(X[fold != f], y[fold != f]) / y[fold == f] - 1)
                          for f in range(folds)])
    return float(np.median(err)), float(np.percentile(err, 90))


@lru_cache(maxsize=None)
def requant_coefficients(target: str = "xc7", unit: str = "multiplier") -> dict[str, float] | None:
    """NNLS coefficients of ``unit``'s features (:data:`UNITS`) on ``target``'s stored runs (None:
    no runs)."""
    rows, names = _rows(target, unit), UNITS[unit]
    if rows.empty:
        return None
    return dict(zip(names, fit_relative(rows[list(names)].to_numpy(float), rows["lut"].to_numpy(float)).tolist()))


def cv_error(target: str = "xc7", folds: int = 5, unit: str = "multiplier") -> tuple[float, float]:
    """(median, p90) relative LUT error of 5-fold cross-validation over the stored runs."""
    rows, names = _rows(target, unit), UNITS[unit]
    return cv_relative(rows[list(names)].to_numpy(float), rows["lut"].to_numpy(float), folds)


def requant_cost(spec: RequantSpec, target: str = "xc7") -> dict[str, int]:
    """LUTs (fitted on ``target``'s runs, else xc7's) and DSPs (Yosys rule) of a requantizer."""
    f = requant_features(spec)
    coef = requant_coefficients(target) or requant_coefficients("xc7") or {k: 1.0 for k in FEATURES}
    dsp = mult_dsp(int(f["a_bits"]), int(f["b_bits"]), 0, target)
    return {"lut": int(round(sum(coef[k] * f[k] for k in FEATURES))), "dsp": dsp}


def threshold_cost(spec: ActivationSpec, target: str = "xc7") -> dict[str, int]:
    """LUTs of a threshold table (fitted on ``target``'s runs, else xc7's); no DSP."""
    f = threshold_features(spec)
    coef = requant_coefficients(target, "thresholds") or requant_coefficients("xc7", "thresholds") or \
        {k: 1.0 for k in UNITS["thresholds"]}
    return {"lut": int(round(sum(coef[k] * f[k] for k in UNITS["thresholds"]))), "dsp": 0}


def calibrate(n: int, seed: int, target: str = "xc7", unit: str = "multiplier") -> None:
    """Synthesize ``n`` random specs of ``seed`` (skipping those stored) and append them."""
    rng = random.Random(seed)
    done = done_keys(REQUANT_CSV)
    tag = "" if unit == "multiplier" else ":thresholds"
    for i in range(n):
        spec = random_spec(rng, thresholds_of=bool(tag))
        key = f"{seed}:{i}:{target}{tag}"
        if key in done:
            continue
        table = None if unit == "multiplier" else thresholds(spec)
        if table is not None and table.levels == 0:
            continue  # a constant code: no logic to measure
        try:
            r = synthesize(requantizer(spec) if table is None else TableActivation(table), target)
        except SynthError as e:
            print(f"{key}: Yosys gave no count ({e}); skipped", flush=True)
            continue
        row = {"key": key, "target": target, "spec": spec_json(spec), "lut": r.lut, "dsp": r.dsp,
               "seconds": r.seconds, "yosys": yosys_version(),
               "date": now(),
               "command": f"python -m costmodel.requant_cost {n} --seed {seed}" + (" --thresholds" if tag else ""),
               "unit": unit}
        append(REQUANT_CSV, list(row), row)
        print(f"{key}: {spec.channels} channels, acc {spec.acc_bits} bits -> {spec.fmt} ({unit}): {r.lut} LUT, "
              f"{r.dsp} DSP", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 0
    calibrate(int(args[0]) if args and args[0].isdigit() else 30, seed,
              unit="thresholds" if "--thresholds" in args else "multiplier")
