"""iCE40 flip-flops of unsigned × unsigned engines: Yosys against the count, with and without the
folded-carry rule (``costmodel.maccmap``: kept top bits whose ``SB_CARRY`` chains fold share one
flip-flop).

    .venv/bin/python bench/ice40_ff.py [--seed 11] [--count 24]

Draws ``count`` seeded uint × uint dot / sparse engines (lanes 3–64, pipeline 1 … levels + 1,
k_max 16–4096), half of them engines where the rule changes the count, synthesizes each with
``synth_ice40`` (Yosys 0.70, cached) and prints one row per engine: Yosys FF, the model's, and the
count without the rule. Minutes (the first Yosys call about one more).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

# bench/costmodel.py is named like the package: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402

from costmodel.features import _msb_kept  # noqa: E402
from costmodel.resources import predict_frame  # noqa: E402
from hw.engine import tree_levels  # noqa: E402
from hw.engines import config_from_dict  # noqa: E402
from hw.rtl import synthesize  # noqa: E402

UINTS = [f"uint{b}" for b in range(2, 9)]


def draw(seed: int, count: int) -> list[dict]:
    """``count`` engine configs, alternately ones the rule changes and ones it leaves alone."""
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < count:
        lanes = rng.randint(3, 64)
        pipe = rng.randint(1, tree_levels(lanes) + 1)
        w, a = rng.choice(UINTS), rng.choice(UINTS)
        changed = _msb_kept(lanes, pipe) != _msb_kept(lanes, pipe, (int(w[4:]), int(a[4:])))
        if changed != (len(out) % 2 == 0):
            continue
        cfg = dict(engine=rng.choice(["dot", "sparse"]), lanes=lanes, wfmt=w, afmt=a, k_max=rng.randint(16, 4096),
                   pipeline=pipe)
        if cfg["engine"] == "sparse":
            m = rng.choice([2, 4, 8, 16])
            n = rng.randint(1, m - 1)
            if lanes % n:
                continue
            cfg.update(n=n, m=m)
        out.append(cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--count", type=int, default=24)
    args = ap.parse_args()
    cfgs = draw(args.seed, args.count)
    frame = pd.DataFrame(cfgs)
    model = predict_frame(frame, "ice40")["ff"].to_numpy()
    rows = []
    for cfg, ff in zip(cfgs, model):
        y = synthesize(config_from_dict(cfg), "ice40").ff
        gap = sum(k for k, _ in _msb_kept(cfg["lanes"], cfg["pipeline"])) - sum(
            k for k, _ in _msb_kept(cfg["lanes"], cfg["pipeline"], (int(cfg["wfmt"][4:]), int(cfg["afmt"][4:]))))
        rows.append(dict(engine=cfg["engine"], lanes=cfg["lanes"], formats=f"{cfg['wfmt']}x{cfg['afmt']}",
                         pipeline=cfg["pipeline"], yosys_ff=y, model_ff=int(ff), without_rule=int(ff) + gap))
        print(rows[-1], flush=True)
    t = pd.DataFrame(rows)
    print(t.to_string(index=False))
    print(f"exact: model {int((t.yosys_ff == t.model_ff).sum())} of {len(t)}, "
          f"without the rule {int((t.yosys_ff == t.without_rule).sum())} of {len(t)}")


if __name__ == "__main__":
    main()
