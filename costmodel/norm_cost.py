"""LUTs of LayerNorm's normalizer (:class:`hw.normalizer.Normalizer`), calibrated on standalone
Yosys syntheses of random normalizers — not on the networks whose accelerators they are then
checked against (``bench/accel.py``).

Features (:func:`norm_features`, bits; ``w`` the input width, ``d`` the row length): ``sums`` —
the adders of Σk, Σk², ``V = d·S2 − S1² + extra`` and ``t = d·k − S1``; ``shift`` — the even
normalization's two barrel shifters of ``V`` (its width times its levels); ``rne`` — the output
rounding's variable shift (the product's width times the levels of its shift); ``mux`` — the read
of the output part's row register (``w`` bits out of ``d`` words); ``one`` — a constant (the
restoring divider's and the square root's fixed ``2P + 3`` and ``2R + 2``-bit datapaths, the
state machine). LUT =
non-negative least squares on relative error over ``data/normalizer.csv``; 5-fold
cross-validation on those rows: :func:`norm_cv_error`. DSPs by the Yosys rule
(:func:`costmodel.features.mult_dsp`), registers counted (:func:`norm_cost`), not fitted.

``python -m costmodel.norm_cost N [--seed S]`` synthesizes ``N`` more random normalizers
(seeded, resumable: the CSV is appended with the command, the Yosys version and the date).
"""

from __future__ import annotations

import random
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

from hw.normalizer import NORM_RSQRT_BITS, NORM_VAR_BITS, Normalizer
from hw.rtl import SynthError, synthesize, yosys_version

from .features import mult_dsp
from .requant_cost import cv_relative, fit_relative
from .store import append, done_keys, now

__all__ = ["norm_features", "norm_cost", "norm_coefficients", "norm_cv_error", "NORM_CSV", "NORM_FEATURES"]

NORM_CSV = Path(__file__).parent / "data" / "normalizer.csv"
NORM_FEATURES = ("sums", "shift", "rne", "mux", "one")


def _widths(d: int, w: int, extra: int) -> dict[str, int]:
    """The normalizer's internal widths (bits), as :class:`hw.normalizer.Normalizer` sizes them."""
    lg = max(1, (d - 1).bit_length())
    v = max((d * d << (2 * w - 2)).bit_length(), extra.bit_length()) + 1
    t = w + lg + 3
    prod = t + NORM_RSQRT_BITS + 2
    return {"s1": w + lg + 1, "s2": 2 * w + lg, "v": v, "t": t, "prod": prod,
            "rne": max(prod, NORM_VAR_BITS + NORM_RSQRT_BITS + v) + 1}


def norm_features(d: int, w: int, extra: int) -> dict[str, float]:
    """Structural features of one normalizer (module docstring)."""
    b = _widths(d, w, extra)
    levels = lambda n: max(1, (n - 1).bit_length())  # noqa: E731
    return {"sums": b["s1"] + b["s2"] + b["v"] + b["t"], "shift": 2 * b["v"] * levels(b["v"]),
            "rne": b["rne"] * levels(NORM_VAR_BITS + NORM_RSQRT_BITS + b["v"]), "mux": w * (d - 1), "one": 1.0}


def _rows(target: str) -> pd.DataFrame:
    if not NORM_CSV.exists():
        return pd.DataFrame()
    rows = pd.read_csv(NORM_CSV, dtype={"extra": str})  # epsilon terms beyond 64 bits
    rows = rows[rows["target"] == target].reset_index(drop=True)
    if rows.empty:
        return rows
    feats = [norm_features(int(r.d), int(r.in_bits), int(r.extra)) for r in rows.itertuples()]
    return pd.concat([rows, pd.DataFrame(feats)], axis=1)


@lru_cache(maxsize=None)
def norm_coefficients(target: str = "xc7") -> dict[str, float] | None:
    """NNLS coefficients of :data:`NORM_FEATURES` on ``target``'s stored runs (None: no runs)."""
    rows = _rows(target)
    if rows.empty:
        return None
    X, y = rows[list(NORM_FEATURES)].to_numpy(float), rows["lut"].to_numpy(float)
    return dict(zip(NORM_FEATURES, fit_relative(X, y).tolist()))


def norm_cv_error(target: str = "xc7", folds: int = 5) -> tuple[float, float]:
    """(median, p90) relative LUT error of 5-fold cross-validation over the stored runs."""
    rows = _rows(target)
    return cv_relative(rows[list(NORM_FEATURES)].to_numpy(float), rows["lut"].to_numpy(float), folds)


def norm_cost(d: int, w: int, extra: int, target: str = "xc7") -> dict[str, int]:
    """LUTs (fitted on ``target``'s runs, else xc7's), DSPs (the Yosys rule: ``k²``, ``S1²``,
    ``t · r``, and ``d · S2``, ``d · k`` when ``d`` is no power of two) and flip-flops (counted: the
    three parts' rows — load, compute, output —, the loader's sums, ``S1`` again in the compute and
    output parts, ``V``, ``e`` twice, the divider's and the square root's registers — the root's
    one-hot bit only ever at even positions —, the output's copy of the root unless it sits in the
    DSPs' input registers, the three counters, the state and the loader's and output's busy
    flags) of one normalizer of rows of ``d`` signed ``w``-bit integers."""
    b = _widths(d, w, extra)
    coef = norm_coefficients(target) or norm_coefficients("xc7") or {k: 1.0 for k in NORM_FEATURES}
    f = norm_features(d, w, extra)
    P, R = NORM_VAR_BITS, NORM_RSQRT_BITS
    # t · r: the product takes ``d·k - S1`` as Amaranth emits it, a bit narrower than t's signal
    t_dsp = mult_dsp(b["t"] - 1, R + 1, 0, target)
    dsp = mult_dsp(w, w, 0, target) + mult_dsp(b["s1"], b["s1"], 0, target) + t_dsp
    if d & (d - 1):  # d · S2 and d · k are products by a constant that is no power of two
        db = d.bit_length() + 1
        dsp += mult_dsp(b["s2"], db, 0, target, y_bits=b["s2"] + db - 1) + mult_dsp(w, db, 0, target)
    e_bits = max(P, b["v"]).bit_length() + 2
    oroot = 0 if t_dsp else R + 1  # the output's root: in the DSPs' input registers when t · r is on DSPs
    ff = 3 * d * w + 3 * b["s1"] + b["s2"] + b["v"] + 2 * e_bits + (2 * P + 2) + (2 * P + 3) + (2 * R + 1) + \
        2 * (2 * R + 2) + (R + 1) + oroot + 2 * max(1, (d - 1).bit_length()) + (2 * R).bit_length() + 3 + 2
    return {"lut": int(round(sum(coef[k] * f[k] for k in NORM_FEATURES))), "ff": ff, "dsp": dsp}


def random_normalizer(rng: random.Random) -> tuple[int, int, int]:
    """A random normalizer as a user's LayerNorm would have: rows of 2–128 elements, inputs of
    4–64 bits, epsilon terms from 0 to beyond the variance's range."""
    d = int(round(2 ** rng.uniform(1, 7)))
    w = rng.randint(4, 64)
    extra = rng.choice([0, rng.randint(0, 1 << rng.randint(1, 2 * w + 8))])
    return d, w, extra


def calibrate(n: int, seed: int, target: str = "xc7") -> None:
    """Synthesize ``n`` random normalizers of ``seed`` (skipping those stored) and append them."""
    rng = random.Random(seed)
    done = done_keys(NORM_CSV)
    for i in range(n):
        d, w, extra = random_normalizer(rng)
        key = f"{seed}:{i}:{target}"
        if key in done:
            continue
        try:
            r = synthesize(Normalizer(d, w, extra), target)
        except SynthError as e:
            print(f"{key}: Yosys gave no count ({e}); skipped", flush=True)
            continue
        row = {"key": key, "target": target, "d": d, "in_bits": w, "extra": str(extra), "lut": r.lut_sites,
               "ff": r.ff, "dsp": r.dsp, "seconds": r.seconds, "yosys": yosys_version(),
               "date": now(),
               "command": f"python -m costmodel.norm_cost {n} --seed {seed}"}
        append(NORM_CSV, list(row), row)
        print(f"{key}: d={d}, {w} bits: {row['lut']} LUT, {r.ff} FF, {r.dsp} DSP ({r.seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 0
    calibrate(int(args[0]) if args and args[0].isdigit() else 24, seed)
