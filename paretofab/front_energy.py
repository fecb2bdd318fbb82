"""Dynamic energy of the Pareto front from measured switching activity (``explore
--activity-energy``): each front point's own quantized layers streamed through the gate-level
netlist of its engine (:mod:`costmodel.activity`), beside the vectorless and the action-count
figures of the same layers. No board measurement stands behind any of them (the labels say so).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from costmodel import activity as A
from costmodel import estimate, get_device
from models.map_data import load_splits
from quant.ptq import PTQConfig, quantize_model
from quant.sweep import SweepSpace, grid, load_workload

from .mapping import EngineConfig, LayerCodes, layer_codes
from .options import ExploreConfig

__all__ = ["ACTIVITY_KEYS", "ACTIVITY_TARGETS", "front_codes", "quantized_point", "point_activity", "front_activity",
           "print_activity"]

#: the columns ``--activity-energy`` adds (front points; NaN elsewhere), per inference, nJ:
#: measured-activity, vectorless (same netlist, 12.5 %) and action-count dynamic energy of the
#: same simulated layers, and the label that says how they were obtained
ACTIVITY_KEYS = ("activity_dynamic_nj", "vectorless_dynamic_nj", "actions_dynamic_nj", "activity_energy_source")
#: the synthesis targets whose engines' gate-level netlists the activity model simulates as
#: mapped (Yosys ships no simulation model of UltraScale+ DSP48E2 or ECP5 MULT18X18D cells)
ACTIVITY_TARGETS = ("xc7", "ice40")


def front_codes(student: Path, fmt: str, ptq: str, cfg: ExploreConfig,
                samples: int) -> tuple[list[LayerCodes], list[str]]:
    """The quantized layers of one design point as its engine streams them: the student in
    ``student`` quantized exactly as its sweep point was (``quant.sweep``: same calibration set,
    PTQ set, seed, per-channel scales), its layers' weight codes and the activation codes of its
    first ``samples`` test inputs (:func:`paretofab.mapping.layer_codes`). Returns
    ``(lowered layers, names of layers left out)``."""
    q = quantized_point(student, fmt, ptq, cfg)
    x = torch.as_tensor(load_splits(Path(student) / "data.npz")["x_test"][:samples])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return layer_codes(q, x)


def quantized_point(student: Path, fmt: str, ptq: str, cfg: ExploreConfig) -> torch.nn.Module:
    """The student in ``student`` quantized exactly as its sweep point was (``quant.sweep``: same
    calibration set, PTQ set, seed, per-channel scales): a Brevitas model."""
    space = SweepSpace(models=[str(student)], wfmts=[fmt], afmts=[fmt], ptqs=[ptq], seeds=[cfg.seed])
    pt = grid(space, allow_degenerate=cfg.allow_degenerate)[0]
    wl = load_workload(pt.model, pt.seed, pt.n_calib, pt.threshold)
    with warnings.catch_warnings():  # brevitas / torch.fx chatter, as in quant.sweep.evaluate_point
        warnings.simplefilter("ignore")
        return quantize_model(wl.model, pt.wfmt, pt.afmt, calib_data=wl.calib,
                              config=PTQConfig(per_channel=pt.per_channel, techniques=pt.ptq, seed=pt.seed))


def point_activity(config: EngineConfig, codes: list[LayerCodes], device: str, samples: int,
                   density: dict[str, float] | None = None) -> dict[str, float]:
    """Dynamic energy of running the lowered layers ``codes`` (``samples`` inputs) on ``config``,
    per inference, nJ, three ways:

    - ``activity_dynamic_nj``: the layers' beats (``costmodel.activity.layer_beats``, layer after
      layer, one stream) through the gate-level simulation of the engine's netlist for
      ``device``'s family, toggles × the family's per-toggle energies
      (``costmodel.activity.activity_energy``);
    - ``vectorless_dynamic_nj``: the same netlist over the same cycles at the vendors' 12.5 %;
    - ``actions_dynamic_nj``: ``costmodel.estimate``'s action counts × ASIC energies of the same
      layers (``density``: each layer's fraction of live blocks, as :func:`network_cost` uses).

    Also ``activity_cycles`` (simulated cycles per inference) and ``activity_energy_source``.
    Raises ``ValueError`` for a device whose family the activity model does not simulate
    (:data:`ACTIVITY_TARGETS`) or no layers; ``hw.rtl.SynthError`` / ``hw.verilator.BuildError``
    (``tool`` attribute) when Yosys / Verilator fail.
    """
    target = get_device(device).target
    if target not in ACTIVITY_TARGETS:
        raise ValueError(f"activity-based energy simulates {', '.join(ACTIVITY_TARGETS)} parts, not {device} "
                         f"({target}); use e.g. --device xc7z020 or ice40up5k")
    if not codes:
        raise ValueError("no layers to simulate: pass the lowered layers of paretofab.mapping.layer_codes")
    density = density or {}
    beats: list[int] = []
    for lc in codes:
        beats += A.layer_beats(config, lc.w_codes, lc.a_codes)
    act = A.activity(config, beats, target)
    measured = A.activity_energy(act)
    vl = A.activity_energy(A.vectorless(config, act.cycles, target))
    actions = sum(estimate(config, device, k=lc.w_codes.shape[1], vectors=len(lc.a_codes) * len(lc.w_codes),
                           block_density=density.get(lc.layer, 1.0)).dynamic_nj for lc in codes)
    return {"activity_dynamic_nj": measured.dynamic_pj / 1e3 / samples,
            "vectorless_dynamic_nj": vl.dynamic_pj / 1e3 / samples,
            "actions_dynamic_nj": actions / samples, "activity_cycles": act.cycles / samples,
            "activity_energy_source": (f"{measured.source}; on {samples} test input(s) of the point's own quantized "
                                       f"layers ({', '.join(lc.layer for lc in codes)}), {target}; "
                                       "vectorless_dynamic_nj: same netlist and cycles at 12.5 % (UG440); "
                                       "actions_dynamic_nj: costmodel.estimate action counts × ASIC energies of "
                                       "the same layers")}


def front_activity(df: pd.DataFrame, cands: list[Any], cfg: ExploreConfig) -> tuple[pd.DataFrame, str | None]:
    """:data:`ACTIVITY_KEYS` for every front point (``rank`` 1 of ``df``; ``cands``: the
    ``paretofab.explore.Candidate`` list it was costed from) by :func:`point_activity` on its own
    data (:func:`front_codes`, ``cfg.activity_samples`` test inputs); NaN for the other
    points. ``pareto.csv`` is rewritten after every point, so a failing tool loses nothing already
    measured. Returns ``(table, note)``: the note (one line) says why nothing was measured (a
    family the activity model does not simulate), else None."""
    out = Path(cfg.out)
    df = df.copy()
    for key in ACTIVITY_KEYS:
        df[key] = "" if key == "activity_energy_source" else np.nan
    target = get_device(cfg.device).target
    if target not in ACTIVITY_TARGETS:
        cell = {"xcup": "DSP48E2", "ecp5": "MULT18X18D"}.get(target, "DSP")
        note = (f"activity energy skipped: {cfg.device} is an {target} part and Yosys ships no simulation model of "
                f"its {cell} cells; use an xc7 or iCE40 part (e.g. --device xc7z020)")
        df.loc[df["rank"] == 1, "activity_energy_source"] = f"not measured: {note}"
        df.to_csv(out / "pareto.csv", index=False)
        return df, note
    by_name = {c.name: c for c in cands}
    front = df[df["rank"] == 1]
    for i, (idx, row) in enumerate(front.iterrows()):
        t0 = time.perf_counter()
        cand = by_name[row["engine"]]
        codes, skipped = front_codes(out / row["student"], row["format"], row["ptq"], cfg, cfg.activity_samples)
        res = point_activity(cand.engines[row["format"]], codes, cfg.device, cfg.activity_samples, cand.density)
        if skipped:
            res["activity_energy_source"] += f"; not simulated: {', '.join(skipped)}"
        for key in ACTIVITY_KEYS:
            df.loc[idx, key] = res[key]
        df.to_csv(out / "pareto.csv", index=False)
        print(f"   [{i + 1}/{len(front)}] {row['name']}: {res['activity_cycles']:.0f} cycles per inference, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return df, None


def print_activity(df: pd.DataFrame, samples: int, note: str | None = None) -> None:
    """The three dynamic energies of every front point (per inference, nJ) and whether ranking
    the front by dynamic energy from measured activity differs from ranking it by action counts."""
    if note:
        print(f"\n{note}")
        return
    f = df[(df["rank"] == 1) & df["activity_dynamic_nj"].notna()]
    if f.empty:
        return
    print(f"\ndynamic energy of the front per inference, nJ ({samples} test input(s) of each point's own data, "
          "xc7 gate-level netlist; no board measurement stands behind these):")
    show = pd.DataFrame({"name": f["name"], "actions": f["actions_dynamic_nj"], "activity": f["activity_dynamic_nj"],
                         "vectorless": f["vectorless_dynamic_nj"],
                         "act/actions": f["activity_dynamic_nj"] / f["actions_dynamic_nj"]})
    print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    orders = {col: " < ".join(f.sort_values([col, "name"])["name"])
              for col in ("actions_dynamic_nj", "activity_dynamic_nj", "vectorless_dynamic_nj")}
    if orders["activity_dynamic_nj"] == orders["actions_dynamic_nj"]:
        print(f"ranking by dynamic energy: measured activity and action counts agree ({orders['actions_dynamic_nj']})")
    else:
        print(f"ranking by dynamic energy differs: measured activity {orders['activity_dynamic_nj']}; "
              f"action counts {orders['actions_dynamic_nj']}")
    if orders["vectorless_dynamic_nj"] != orders["activity_dynamic_nj"]:
        print(f"   vectorless (12.5 %): {orders['vectorless_dynamic_nj']}")
    print("actions: costmodel.estimate's ASIC action energies of the same layers; activity: measured toggles × "
          "FPGA per-toggle energies; vectorless: same netlist at 12.5 % (columns of pareto.csv)")
