"""The full adders of the deep ``$macc`` cells in front of an integer tree's pipeline registers (the
cost model's ``deep_macc_fa`` term; issue 15; Yosys, cached).

    .venv/bin/python bench/deep_macc.py [--target ecp5] [--fresh 30] [--baseline OLD_COEFFICIENTS.json]

Why: between two pipeline registers Yosys' ``alumacc`` merges the adders read only by another adder
into one ``$macc``, and ``maccmap`` reduces its terms with rounds of full adders (LUT4s on ECP5, where
a plain adder's sum bits are CCU2C carry cells) before one carry chain. A ``$macc`` of five or more
terms takes three or more rounds (``costmodel.features.DEEP_MACC_TERMS``): 21 lanes int8 x int8 at
pipeline 2 hold two 8-term ones and a 5-term one, 285 full-adder bits
(``costmodel.features.inner_macc_adders``, equal to Yosys' ``$fa`` cells). The ECP5 fit prices those
bits on top of the tree's adders; the Xilinx fits are not offered the term (README, the seventeenth
session: their fresh engines split), and with ``--target xc7`` / ``xcup`` this prints their shipped fits
on the same kind of engines (the term's column is 0 there; xc7's DSP trees, whose adders the DSP48
cascade takes in part, are left out).

1. Stored integer engines of ``--target`` (default ecp5) with such a ``$macc`` (calibration: the
   shipped fit's 5-fold out-of-fold error, ``costmodel.resources.cv_predictions``; held out: the
   shipped fit's), against the shipped model with the term's columns taken out (its other coefficients as shipped; where the term
   replaced the merged adders, those back at the tree's coefficient) and, with ``--baseline``, a
   stored fit (a ``coefficients.json``; e.g. ``git show 67eb13e:costmodel/data/coefficients.json``,
   the fit before the term).
2. Fresh engines (``--fresh N``, default 30; 0 skips): the first N integer engines (dense or sparse)
   with such a ``$macc`` of a DOE draw with a seed no stored table uses (``--seed``, default
   :data:`FRESH_SEED`), and as a control the first N / 2 integer engines of pipeline >= 1 without
   one, synthesized now (Yosys, cached; uncached on 2 cores about 3 minutes for ECP5, 8 for xc7 or xcup).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

# this file's folder holds scripts named like packages: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from costmodel.calibrate import doe_grid  # noqa: E402
from costmodel.features import config_row  # noqa: E402
from costmodel.resources import cv_predictions, design_matrix, heldout_rows, model_for, predict_frame  # noqa: E402
from hw.engines import config_from_dict  # noqa: E402
from hw.rtl import synthesize  # noqa: E402
from quant.formats import IntFormat, parse_format  # noqa: E402

#: the DOE seed of the fresh engines (costmodel.calibrate.doe_grid; stored draws use 0, 1, 2, 4)
FRESH_SEED = 13


def _sites(cfg: dict, target: str) -> int:
    return synthesize(config_from_dict(cfg), target).lut_sites


def _int_pair(c: dict) -> bool:
    return all(isinstance(parse_format(c[k]), IntFormat) for k in ("wfmt", "afmt"))


#: the design-matrix columns the term touches
_COLUMNS = ("deep_macc_fa", "tree_bits_comb_int", "tree_bits_comb_int_unmerged")


def _columns(rows: pd.DataFrame, target: str) -> dict[str, np.ndarray]:
    """:data:`_COLUMNS` of ``rows`` under the shipped fit of ``target``."""
    cols = design_matrix(rows, target, model_for(target)[0].get("multiplier"))["lut_columns"]
    return {c: cols[c] for c in _COLUMNS}


def _predictions(rows: pd.DataFrame, cols: dict[str, np.ndarray], target: str, pred: np.ndarray,
                 baseline: dict | None) -> dict[str, np.ndarray]:
    """LUT sites of ``rows`` (their :func:`_columns` ``cols``): shipped (``pred``), the term taken out,
    and the ``baseline`` fit's."""
    lut = model_for(target)[0]["resources"]["lut"]
    coef = dict(zip(lut["terms"], lut["coef"]))
    out = pred - coef.get("deep_macc_fa", 0.0) * cols["deep_macc_fa"]
    if "tree_bits_comb_int_unmerged" in coef:  # the merged adders back at the tree's coefficient
        out += coef["tree_bits_comb_int_unmerged"] * (cols["tree_bits_comb_int"] - cols["tree_bits_comb_int_unmerged"])
    preds = {"shipped": pred, "term taken out": out}
    if baseline is not None:
        preds["baseline"] = predict_frame(rows, target, baseline)["lut"].to_numpy(float)
    return preds


def _table(title: str, groups: list[tuple[str, pd.DataFrame, np.ndarray, dict[str, np.ndarray]]]) -> None:
    """Median / p90 / bias of the relative LUT-site error per group and prediction."""
    names = list(groups[0][3])
    print(f"\n# {title}")
    print(f"| group | engines | {' | '.join(f'{n}: median / p90 / bias' for n in names)} |")
    print("|---|---|" + "---|" * len(names))
    for name, rows, y, preds in groups:
        if len(y):
            cells = []
            for n in names:
                rel = (preds[n] - y) / y
                if np.isnan(rel).all():
                    cells.append("not stored")
                    continue
                cells.append(f"{np.median(np.abs(rel)):.1%} / {np.quantile(np.abs(rel), 0.9):.1%} / {np.median(rel):+.1%}")
            print(f"| {name} | {len(y)} | {' | '.join(cells)} |")


def stored(target: str, baseline: dict | None) -> None:
    cal, cal_pred = cv_predictions(target)
    held = heldout_rows(target)
    groups = []
    for name, rows, pred in (("calibration (out of fold)", cal, cal_pred["lut"].to_numpy(float)),
                             ("held out", held, predict_frame(held, target)["lut"].to_numpy(float))):
        cols = _columns(rows, target)
        keep = cols["deep_macc_fa"] > 0  # a deep $macc the model prices (integer trees in the fabric)
        rows = rows[keep].reset_index(drop=True)
        preds = _predictions(rows, {c: v[keep] for c, v in cols.items()}, target, pred[keep], baseline)
        if baseline is not None and name.startswith("calibration"):
            preds["baseline"] = np.full(len(rows), np.nan)  # a baseline's own out-of-fold fit is not stored
        groups.append((name, rows, rows["lut"].to_numpy(float), preds))
    _table(f"stored {target} integer engines with a $macc of 5+ terms in front of a pipeline register: LUT-site "
           "error", groups)


def fresh(target: str, count: int, seed: int, baseline: dict | None, jobs: int = 2) -> None:
    pool_cfgs = [c for c in doe_grid(seed=seed, count=5000) if _int_pair(c) and c["pipeline"] >= 1]
    rows = pd.concat([config_row(config_from_dict(c)) for c in pool_cfgs], ignore_index=True)
    cols = _columns(rows, target)
    deep = cols["deep_macc_fa"] > 0
    pick = {"with one": np.where(deep)[0][:count], "without one (control)": np.where(~deep)[0][:count // 2]}
    every = np.concatenate(list(pick.values()))
    with ProcessPoolExecutor(jobs) as pool:  # both groups in one pool
        sites = dict(zip(every, pool.map(partial(_sites, target=target), [pool_cfgs[i] for i in every])))
    groups = []
    for name, idx in pick.items():
        cfgs = [pool_cfgs[i] for i in idx]
        sub = rows.iloc[idx].reset_index(drop=True)
        y = np.array([sites[i] for i in idx], dtype=float)
        preds = _predictions(sub, {c: v[idx] for c, v in cols.items()}, target,
                             predict_frame(sub, target)["lut"].to_numpy(float), baseline)
        groups.append((name, sub, y, preds))
        if name == "with one":
            print(f"\n# fresh {target} integer engines of pipeline >= 1 with a deep $macc (doe_grid seed {seed}, never "
                  "stored), Yosys now")
            print(f"| engine | lanes | formats | k_max | pipeline | LUT sites | {' | '.join(preds)} |")
            print("|---|---|---|---|---|---|" + "---|" * len(preds))
            for i, c in enumerate(cfgs):
                errs = " | ".join(f"{(p[i] - y[i]) / y[i]:+.1%}" for p in preds.values())
                print(f"| {c['engine']} | {c['lanes']} | {c['wfmt']} x {c['afmt']} | {c['k_max']} | {c['pipeline']} | "
                      f"{int(y[i])} | {errs} |", flush=True)
    _table(f"fresh {target} integer engines of pipeline >= 1 (doe_grid seed {seed}): LUT-site error by whether a "
           "$macc of 5+ terms stands in front of a pipeline register", groups)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="ecp5", choices=("ecp5", "xc7", "xcup"), help="device family (default ecp5)")
    ap.add_argument("--fresh", type=int, default=30, help="fresh engines with a deep $macc to synthesize (0: none)")
    ap.add_argument("--seed", type=int, default=FRESH_SEED, help=f"their DOE seed (default {FRESH_SEED})")
    ap.add_argument("--baseline", type=Path, help="a coefficients.json whose fit of --target to print beside the shipped one")
    args = ap.parse_args(argv)
    baseline = None
    if args.baseline is not None:
        try:
            baseline = json.loads(args.baseline.read_text())["fits"][args.target]["mac"]
        except (OSError, ValueError, KeyError) as e:
            print(f"error: --baseline {args.baseline}: not a coefficients.json with a {args.target} fit ({e}); "
                  "e.g. git show 67eb13e:costmodel/data/coefficients.json > old.json", file=sys.stderr)
            return 2
    stored(args.target, baseline)
    if args.fresh:
        fresh(args.target, args.fresh, args.seed, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
