"""The whole-network accelerator of every Pareto point (``explore --accel``): the point's student
quantized exactly as its sweep point was, exported with Brevitas' ``export_qonnx``, read by
:mod:`quant.qonnx_import` (or, for the Mixer's LayerNorms, GELUs and residual sums, by
:mod:`quant.qonnx_net`), planned by :func:`paretofab.netplan.plan_network` (or
:func:`paretofab.netplan_net.plan_net`: one stage per layer and per row op, ``--lanes``
multipliers in all, N:M stages for an N:M pattern) and costed by :func:`costmodel.accel.plan_cost`
— beside the time-multiplexed single engine of the table, labelled. Students neither front end
can map (the LSTM) say why in one line.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from costmodel.accel import plan_cost
from models.map_data import load_splits
from models.prune import parse_pattern
from quant.qonnx_import import QonnxError
from quant.qonnx_net import QNet

from .front_energy import quantized_point
from .netplan import plan_network
from .netplan_net import plan_net, read_model
from .qonnx_export import write_qonnx
from .options import ExploreConfig

__all__ = ["ACCEL_KEYS", "point_accel", "front_accel", "print_accel"]

#: the columns ``--accel`` adds (front points; NaN elsewhere): the whole-network accelerator's
#: resources, cycles per inference, initiation interval (cycles), latency (µs), energy per
#: inference (nJ) and the label saying where they come from
ACCEL_KEYS = ("accel_lut", "accel_ff", "accel_dsp", "accel_bram18", "accel_cycles", "accel_interval",
              "accel_latency_us", "accel_energy_nj", "accel_source")


def point_accel(student: Path, fmt: str, ptq: str, engine: str, cfg: ExploreConfig) -> dict[str, Any]:
    """:data:`ACCEL_KEYS` of one design point: ``student`` quantized to ``fmt`` with ``ptq``,
    exported to QONNX and planned with at most ``cfg.lanes`` multipliers (at least one per
    stage), its layers N:M sparse when ``engine`` is an N:M pattern and they fit it. Raises
    :class:`~quant.qonnx_import.QonnxError` or ``ValueError`` (one line) for a student the front
    end cannot map."""
    q = quantized_point(student, fmt, ptq, cfg)
    example = torch.as_tensor(load_splits(Path(student) / "data.npz")["x_test"][:1])
    pattern = parse_pattern(engine) if engine != "dense" else None
    nm = (pattern.n, pattern.m) if pattern is not None and pattern.n is not None else None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "point.onnx"
        write_qonnx(q, example, path)
        model = read_model(path)
    if isinstance(model, QNet):
        plan = plan_net(model, "auto", max_lanes=max(cfg.lanes, len(model.layers)), nm=nm).plan
    else:
        plan = plan_network(model, "auto", max_lanes=max(cfg.lanes, len(model.compute)), nm=nm)
    c = plan_cost(plan, cfg.device)
    return {"accel_lut": c["total"]["lut"], "accel_ff": c["total"]["ff"], "accel_dsp": c["total"]["dsp"],
            "accel_bram18": c["total"]["bram18"], "accel_cycles": c["cycles_per_inference"],
            "accel_interval": c["interval"], "accel_latency_us": c["latency_us"],
            "accel_energy_nj": c["energy_nj_per_inference"]["total"],
            "accel_source": f"whole-network dataflow accelerator (paretofab accel: {len(plan.stages)} stages, lanes "
                            f"{','.join(str(st.lanes) for st in plan.stages if st.kind == 'mac')}"
                            f"{', N:M ' + engine if nm else ''}) costed by costmodel.accel (per-part sources in "
                            "`paretofab accel --json`; LUT vs Yosys: bench/accel.py); no board measurement"}


def front_accel(df: pd.DataFrame, cfg: ExploreConfig) -> tuple[pd.DataFrame, str | None]:
    """:data:`ACCEL_KEYS` for every front point (``rank`` 1) by :func:`point_accel`; NaN for the
    others. ``pareto.csv`` is rewritten after every point. Returns ``(table, note)``: the note (one
    line) says for how many points no accelerator was built and why (a student or format the
    front end cannot map; each point's ``accel_source`` says its own reason), else None."""
    out = Path(cfg.out)
    df = df.copy()
    for key in ACCEL_KEYS:
        df[key] = "" if key == "accel_source" else np.nan
    failed = []
    for idx, row in df[df["rank"] == 1].iterrows():
        try:
            res = point_accel(out / row["student"], row["format"], row["ptq"], row["engine"], cfg)
        except (QonnxError, ValueError) as e:
            failed.append(f"{row['name']}: {e}")
            df.loc[idx, "accel_source"] = f"not built: {e}"
            continue
        for key in ACCEL_KEYS:
            df.loc[idx, key] = res[key]
        df.to_csv(out / "pareto.csv", index=False)
    df.to_csv(out / "pareto.csv", index=False)
    if not failed:
        return df, None
    built = int((df["rank"] == 1).sum()) - len(failed)
    return df, f"whole-network accelerator not built for {len(failed)} front point(s) ({built} built); first: {failed[0]}"


def print_accel(df: pd.DataFrame, note: str | None) -> None:
    """The front's whole-network accelerators beside the single engine's figures."""
    if note:
        print(f"\n{note}")
    front = df[(df["rank"] == 1) & df["accel_lut"].notna()].sort_values("micro_f1", ascending=False)
    if front.empty:
        return
    cols = ["engine", "format", "ptq", "micro_f1", "lut", "latency_us", "energy_nj", "accel_lut", "accel_dsp",
            "accel_bram18", "accel_latency_us", "accel_interval", "accel_energy_nj"]
    print("\nthe front as whole-network dataflow accelerators (accel_*: one stage per layer, at most --lanes "
          "multipliers in all) beside the time-multiplexed single engine (lut, latency_us, energy_nj):")
    with pd.option_context("display.width", 180):
        print(front[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
