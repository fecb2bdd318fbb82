"""Activity-based FPGA energy vs the action-count (ASIC) energy vs the vendors' vectorless
estimate, per inference of the digits student, on real quantized data and on random codes.

    .venv/bin/python bench/energy_activity.py [--lanes 8] [--images 1] [--target xc7|ice40|ecp5]

Target: xc7 by default (7-series, the default part xc7z020's family); ice40 (no DSPs inferred);
ecp5 with its multipliers in LUTs (``nodsp``: Yosys ships no model of its MULT18X18D cells, nor of
UltraScale+ DSP48E2, see ``costmodel.activity``).

For each engine (dense int8, dense int4, 2:4 sparse int8, dense e4m3) the digits CNN
(``quant.digits``; 2:4 magnitude-pruned with ``models.prune`` for the sparse engine) is quantized
with ``quant.ptq.quantize_model`` (weights and activations in the engine's format), its layers'
weight and input-activation codes are exported and the convolutions lowered with im2col
(``paretofab.mapping.layer_codes``; zero padding: code 0 is zero in every format), and every
layer of ``--images`` test images streams through the engine (``costmodel.activity.layer_beats``).
The same shapes with the project's random codes (``hw.dot`` / ``hw.sparse.random_workload``) are
the comparison.
Columns (all per inference, nJ):

- ``act`` — toggles counted by Verilator gate-level simulation of the Yosys-mapped netlist ×
  the per-class FPGA coefficients of :mod:`costmodel.activity` (dynamic only);
- ``vectorless`` — the same netlist at the vendors' default 12.5 % toggle rate;
- ``actions`` — ``costmodel.estimate``'s action counts × ASIC (45 nm) energies (dynamic);
- ``static`` — ``hw.devices`` static power × latency at ``costmodel.estimate``'s fmax.

No board measurement stands behind any of these numbers.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from costmodel import activity as A  # noqa: E402
from costmodel.estimate import estimate  # noqa: E402
from hw import dot, sparse  # noqa: E402
from hw.engines import config_from_dict  # noqa: E402

ENGINES = [
    ("dense int8", {"engine": "dot", "wfmt": "int8", "afmt": "int8"}, None),
    ("dense int4", {"engine": "dot", "wfmt": "int4", "afmt": "int4"}, None),
    ("2:4 int8", {"engine": "sparse", "n": 2, "m": 4, "wfmt": "int8", "afmt": "int8"}, "2:4"),
    ("dense e4m3", {"engine": "dot", "wfmt": "e4m3", "afmt": "e4m3"}, None),
]
K_MAX = 512  # the widest reduction of the digits CNN (fc1: 32·4·4)
#: the families this bench simulates: the part whose static power and clock it takes, and whether
#: the multipliers go to LUTs (nodsp)
TARGETS = {"xc7": ("xc7z020", False), "ice40": ("ice40up5k", False), "ecp5": ("ecp5-85f", True)}


def student_layers(student, data, fmt: str, pattern: str | None,
                   images: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer, weight codes (out, K), activation codes (vectors, K)) of the quantized digits CNN
    ``student`` (2:4-pruned first when ``pattern``) on ``images`` test images of ``data``."""
    from models.prune import prune  # heavy: torch
    from paretofab.mapping import layer_codes
    from quant.ptq import quantize_model

    model = copy.deepcopy(student)
    if pattern:
        prune(model, pattern)
    q = quantize_model(model, fmt, fmt, calib_data=data.x_train[:256])
    codes, _ = layer_codes(q, data.x_test[:images])  # convolutions lowered by im2col (zero padding: code 0)
    return [(lc.layer, lc.w_codes, lc.a_codes) for lc in codes]


def run(cfg, layers, real: bool, target: str, seed: int = 0) -> dict:
    """Per-inference energies of one engine on real or random codes (summed over layers)."""
    mod = dot if cfg.engine == "dot" else sparse
    device, nodsp = TARGETS[target]
    tot = {"cycles": 0, "toggles": 0.0, "act": 0.0, "vectorless": 0.0, "actions": 0.0, "static": 0.0, "parts": {}}
    for i, (name, w, a) in enumerate(layers):
        k, vectors = w.shape[1], w.shape[0] * a.shape[0]
        if real:
            beats = A.layer_beats(cfg, w, a)
        else:
            extra = {"block_zero_fraction": 0.0} if cfg.engine == "sparse" else {}
            beats = mod.pack_inputs(cfg, mod.random_workload(cfg, k, vectors, seed + i, **extra))
        act = A.activity(cfg, beats, target, nodsp=nodsp)
        tot["cycles"] += act.cycles
        tot["toggles"] += sum(act.toggles.values())
        e = A.activity_energy(act)
        tot["act"] += e.dynamic_pj / 1e3
        for part, pj in e.parts.items():
            tot["parts"][part] = tot["parts"].get(part, 0.0) + pj / 1e3
        tot["vectorless"] += A.activity_energy(A.vectorless(cfg, act.cycles, target, nodsp=nodsp)).dynamic_pj / 1e3
        c = estimate(cfg, device, k=k, vectors=vectors)
        tot["actions"] += c.dynamic_nj
        tot["static"] += c.static_nj
    return tot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--images", type=int, default=1, help="test images per inference batch (energies are per image)")
    ap.add_argument("--target", choices=sorted(TARGETS), default="xc7",
                    help="synthesis family (default xc7; ecp5: multipliers in LUTs, nodsp)")
    args = ap.parse_args(argv)
    from quant.digits import load_data, load_model  # heavy: torch, sklearn

    data = load_data(0)
    student = load_model(0, data)
    rows = []
    t0 = time.perf_counter()
    for label, spec, pattern in ENGINES:
        cfg = config_from_dict({**spec, "lanes": args.lanes, "k_max": K_MAX})
        layers = student_layers(student, data, spec["wfmt"], pattern, args.images)
        for real in (True, False):
            r = run(cfg, layers, real, args.target)
            r["tog_per_cycle"] = r["toggles"] / r["cycles"]
            r["parts"] = {k: v / args.images for k, v in r["parts"].items()}
            r.update({k: r[k] / args.images for k in ("cycles", "act", "vectorless", "actions", "static")})
            rows.append((label, "student" if real else "random", r))
            print(f"  [{time.perf_counter() - t0:6.0f} s] {label} {'student' if real else 'random'} done",
                  file=sys.stderr)
    device, nodsp = TARGETS[args.target]
    print(f"digits CNN, {args.images} image(s), lanes={args.lanes}, k_max={K_MAX}, {device} ({args.target}"
          f"{', multipliers in LUTs: nodsp' if nodsp else ''}); energies per inference, nJ")
    print(f"{'engine':<12} {'data':<8} {'cycles':>7} {'tog/cyc':>8} {'act':>9} {'vectorless':>10} "
          f"{'actions':>9} {'static':>9} {'act/vl':>7}")
    for label, data, r in rows:
        print(f"{label:<12} {data:<8} {r['cycles']:>7.0f} {r['tog_per_cycle']:>8.1f} "
              f"{r['act']:>9.2f} {r['vectorless']:>10.2f} {r['actions']:>9.2f} {r['static']:>9.2f} "
              f"{r['act'] / r['vectorless']:>7.2f}")
    print("\nactivity energy by part, % of act (student data):")
    names = ["lut", "carry", "ff", "dsp", "routing", "clock", "dsp_internal"]
    print(f"{'engine':<12} " + " ".join(f"{n:>12}" for n in names))
    for label, data, r in rows:
        if data == "student":
            print(f"{label:<12} " + " ".join(f"{100 * r['parts'].get(n, 0.0) / r['act']:>12.1f}" for n in names))
    print()
    for data in ("student", "random"):
        for col in ("act", "vectorless", "actions"):
            order = sorted((r[col], label) for label, d, r in rows if d == data)
            print(f"ranking by {col:<10} on {data:<7}: " + " < ".join(label for _, label in order))
    print("act: measured toggles × FPGA per-class coefficients (Shang et al. FPGA'02 Virtex-II shares scaled to "
          "the family; DSP internals from Horowitz ISSCC'14, assumption); vectorless: 12.5 % on every net (UG440); "
          "actions: costmodel.estimate's ASIC action energies; static: hw.devices static power × latency. "
          "No board measurement stands behind these figures.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
