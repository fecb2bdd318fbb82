"""What a design point costs: the resources, cycles, latency and energy of running a student's
layers (:class:`paretofab.mapping.LayerWorkload`, one inference) on one engine, one layer after
another, from ``costmodel`` (cycles from the engine's own closed form), with the source and held-out
error of every figure; and the Verilog of a front's engines. Shared by ``explore`` on MAP traces
(:mod:`paretofab.explore`) and on a GTN folder's student sizes (:mod:`paretofab.explore_students`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from costmodel import estimate
from costmodel.estimate import LABEL_COLUMNS, Cost
from hw.export import design_name, export_design

from .mapping import AttentionKernel, EngineConfig, LayerWorkload

__all__ = ["COST_KEYS", "ATTENTION_KEYS", "LABEL_KEYS", "cost_labels", "network_cost", "attention_cost",
           "export_front"]

#: the cost columns of every design point (``dynamic_nj``: the action-count part of ``energy_nj``)
COST_KEYS = ("lut", "ff", "dsp", "bram18", "fmax_mhz", "cycles", "latency_us", "energy_nj", "dynamic_nj")
#: what the attention of a SWA student adds, per inference, to every design point
ATTENTION_KEYS = ("lut", "ff", "dsp", "bram18", "cycles", "latency_us", "energy_nj", "dynamic_nj")
#: the label columns of every design point (``costmodel.estimate.LABEL_COLUMNS``): the source and
#: held-out error of the engine's figures and whether its fmax hit the family's clock cap
LABEL_KEYS = tuple(LABEL_COLUMNS)
#: labels that name the SWA attention kernel too when it is added to a point
_JOINED_LABELS = ("resource_source", "error_source", "energy_source")


def cost_labels(c: Cost) -> dict:
    """:data:`LABEL_KEYS` of one estimate, as ``estimate_frame`` gives them (NaN: not measured)."""
    err = {f"{r}_err_{s}": (c.error.get(r) or {}).get(s) for r in ("lut", "ff") for s in ("median", "p90")}
    return {"resource_source": c.resource_source, "error_source": c.error_source,
            **{k: np.nan if v is None else v for k, v in err.items()}, "fmax_source": c.fmax_source,
            "fmax_clamped": c.fmax_clamped, "fmax_cap_mhz": np.nan if c.fmax_cap_mhz is None else c.fmax_cap_mhz,
            "energy_source": c.energy_source}


def network_cost(config: EngineConfig, layers: list[LayerWorkload], device: str,
                 density: dict[str, float] | None = None, attention: dict | None = None) -> dict[str, float]:
    """Resources of ``config`` and the cycles / latency / energy of running every layer on it, one
    after another, for one inference (``density``: each layer's fraction of live blocks), plus
    ``attention`` (:func:`attention_cost`), the SWA kernel beside it, when given; keys
    :data:`COST_KEYS`, and the engine's labels :data:`LABEL_KEYS` (the attention kernel's sources
    appended to ``resource_source``, ``error_source`` and ``energy_source``)."""
    density = density or {}
    costs = [estimate(config, device, k=lr.k, vectors=lr.vectors, block_density=density.get(lr.layer, 1.0))
             for lr in layers]
    c0 = costs[0]
    out = {"lut": c0.lut, "ff": c0.ff, "dsp": c0.dsp, "bram18": c0.bram18, "fmax_mhz": c0.fmax_mhz,
           "cycles": sum(c.cycles for c in costs), "latency_us": sum(c.latency_us for c in costs),
           "energy_nj": sum(c.energy_nj for c in costs), "dynamic_nj": sum(c.dynamic_nj for c in costs),
           **cost_labels(c0)}
    for key, v in (attention or {}).items():
        if key in ATTENTION_KEYS:
            out[key] += v
        elif key in _JOINED_LABELS:
            out[key] = f"{out[key]}; + SWA attention kernel: {v}"
    return out


def attention_cost(kernels: list[AttentionKernel], device: str) -> dict[str, float] | None:
    """Cost of a SWA student's attention (:func:`paretofab.mapping.attention_kernels`): one kernel
    sized for the largest layer serves every layer and head (resources: the largest), heads and
    layers run one after another (cycles, latency, energy: summed); keys :data:`ATTENTION_KEYS`
    and the kernel's ``resource_source``, ``error_source``, ``energy_source``. None without
    attention."""
    if not kernels:
        return None
    total = dict.fromkeys(ATTENTION_KEYS, 0.0)
    for ak in kernels:
        c = estimate(ak.config, device, n=ak.tokens)
        for key in ("lut", "ff", "dsp", "bram18"):
            total[key] = max(total[key], getattr(c, key))
        for key in ("cycles", "latency_us", "energy_nj", "dynamic_nj"):
            total[key] += ak.heads * getattr(c, key)
        for key in _JOINED_LABELS:
            total.setdefault(key, getattr(c, key))
    return total


def export_front(configs: list[EngineConfig], rtl: Path) -> list[Path]:
    """Verilog and port JSON (:func:`hw.export.export_design`) of every engine in ``configs``
    (duplicates once) in ``rtl``. A design is rewritten only when its engine changed
    (``rtl / front.json`` records each file's engine config); the files of designs not in
    ``configs`` are removed. Returns the ``.v`` files."""
    front = {f"{design_name(config)}.v": config for config in configs}
    rtl.mkdir(parents=True, exist_ok=True)
    index = rtl / "front.json"
    written = json.loads(index.read_text()) if index.exists() else {}
    for stale in rtl.glob("*.v"):
        if stale.name not in front:
            stale.unlink()
            stale.with_suffix(".json").unlink(missing_ok=True)
    want = {name: config.to_dict() for name, config in front.items()}
    for name, config in front.items():
        v = rtl / name
        if not (v.exists() and v.with_suffix(".json").exists()) or written.get(name) != want[name]:
            export_design(config, rtl)
    index.write_text(json.dumps(want, indent=1, sort_keys=True))
    return [rtl / name for name in front]
