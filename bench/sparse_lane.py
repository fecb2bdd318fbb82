"""A sparse engine's lane synthesized alone: the N:M index mux (:class:`hw.sparse.IndexMux`, one
lane, m:1) feeding the exact multiplier of the format pair, against the same two parts each
synthesized alone (LUTs of a family; Yosys, cached).

    .venv/bin/python bench/sparse_lane.py [--target ecp5] [--target xc7]

Why: on ECP5, a sparse engine's lanes cost up to 1.8 x what the cost model's terms give, by format
pair (e2m2 worst, e4m3 on the model), while its dense twin sits on the model. If the lane alone
shows the same excess over its parts, a table of measured lanes per (pair, m), as
``data/primitives.csv`` is for multipliers, can carry it: ``data/lanes.csv``
(``python -m costmodel.calibrate lanes --target ecp5``), which the ECP5 model now reads.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

# this file's folder holds scripts named like packages: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from costmodel.calibrate import SparseLane  # noqa: E402
from hw.arith import multiplier  # noqa: E402
from hw.rtl import SynthError, synthesize  # noqa: E402
from hw.sparse import IndexMux  # noqa: E402
from quant.formats import parse_format  # noqa: E402

#: (weight format, activation format, m) of the lanes compared
LANES = [("e2m2", "e2m2", 8), ("e2m3", "e2m3", 8), ("e3m2", "e3m2", 8), ("e4m3", "e4m3", 8), ("int4", "e2m2", 8),
         ("e2m2", "int4", 8), ("e2m2", "e2m2", 4), ("e2m2", "e2m2", 16), ("int4", "int4", 8)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", action="append", help="synthesis family (repeatable; default ecp5 and xc7)")
    args = ap.parse_args(argv)
    # a cached synthesis never elaborates its component
    warnings.filterwarnings("ignore", message=".*created but never used")
    for target in args.target or ["ecp5", "xc7"]:
        print(f"# {target}: LUTs of a sparse lane synthesized alone vs its index mux and multiplier alone")
        print(f"{'w x a':<14}{'m':>3}{'lane':>7}{'mult':>7}{'mux':>6}{'lane / (mult + mux)':>22}")
        for w, a, m in LANES:
            try:
                lane = synthesize(SparseLane(w, a, m), target).lut
                mult = synthesize(multiplier(w, a), target).lut
                mux = synthesize(IndexMux(1, 1, m, parse_format(a).bits), target).lut
            except SynthError as e:  # Yosys' own crashes (ECP5 int x int: rtlil.cc:3091)
                print(f"{w + ' x ' + a:<14}{m:>3}  Yosys failed: "
                      f"{next((ln for ln in str(e).splitlines() if 'ERROR' in ln), 'see its log')}")
                continue
            print(f"{w + ' x ' + a:<14}{m:>3}{lane:>7}{mult:>7}{mux:>6}{lane / (mult + mux):>22.2f}", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
