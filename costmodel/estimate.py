"""``estimate(config) -> Cost`` and the vectorized ``estimate_frame(df) -> df``: one model for
every engine.

``estimate_frame`` groups the rows by engine, asks each engine's estimator
(:mod:`costmodel.estimators`) for its rows at once, and puts the results back in the original
order; ``estimate`` is ``estimate_frame`` of one row. For every row: resources (fitted on Yosys
data or counted, :mod:`costmodel.resources`), cycles (the engine's own closed form in ``hw``),
fmax (critical path: nextpnr fit for ice40 / ecp5, logic-depth model for Xilinx parts; each
labelled), latency = cycles / fmax, energy = action counts × ASIC energies + static power ×
latency (:mod:`costmodel.energy`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hw.arith import ConfigError

from hw.devices import DEFAULT_DEVICE, Device, DeviceError, get_device
from .estimators import (ENERGY_SOURCE, ERROR_COLUMNS, RESOURCE_COLUMNS, Estimator, Workload, estimator,
                         label_column)
from .features import config_row
from .latency import DELAYS, FMAX_SOURCE
from .swa import SWA_REQUIRED

__all__ = ["Cost", "estimate", "estimate_frame", "DEFAULT_DEVICE", "COST_COLUMNS", "LABEL_COLUMNS", "SWA_REQUIRED"]

COST_COLUMNS = ["lut", "ff", "dsp", "bram18", "cycles", "fmax_mhz", "latency_us", "energy_nj"]
#: label columns of every ``estimate_frame`` result (after :data:`COST_COLUMNS`): how each figure
#: was obtained, where its error comes from, the compact held-out errors, and whether fmax hit the
#: family's clock cap (``fmax_cap_mhz``: the cap where it did, else NaN)
LABEL_COLUMNS = ["resource_source", "error_source", *ERROR_COLUMNS, "fmax_source", "fmax_clamped", "fmax_cap_mhz",
                 "energy_source"]
#: extra columns of ``estimate_frame(..., breakdown=True)`` besides the action counts
SOURCE_COLUMNS = [*LABEL_COLUMNS, "error"]


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one engine config running one workload.

    Attributes
    ----------
    lut, ff, dsp, bram18 : resources (LUT sites, flip-flops, DSP blocks, 18 Kbit BRAMs); None where
        no calibrated model covers the config (``resource_source`` says so). LUT sites are what the
        part's LUT count counts: on Xilinx logic LUTs and LUTs as distributed RAM (Vivado's "Slice
        LUTs", :func:`hw.rtl.lut_sites`); on ECP5 the TRELLIS_COMB sites nextpnr fills (LUT4 cells, 2
        per CCU2C, 6 per distributed-RAM cell, and pass-through LUTs); on iCE40 logic cells (LUT4s and
        the flip-flops and carries packed alone). The Lattice packing: :mod:`costmodel.packing`.
    cycles : clock cycles for the workload (closed form, equals simulation).
    fmax_mhz : clock estimate, MHz (see ``fmax_source``).
    latency_us : cycles / fmax, µs.
    energy_nj : dynamic (ASIC action energies) + static (device) energy, nJ.
    dynamic_nj, static_nj : the two parts, nJ; ``dynamic_nj`` uses ASIC figures.
    device, target : part and synthesis target the estimate is for.
    resource_source, fmax_source, energy_source : how each figure was obtained.
    error : held-out relative errors of this engine's resource model on this target
        (``{"lut": {"median": …, "p90": …, "n": …}, …}``) — the honest error bar; values None when
        the fit is another target's, reused here (not measured on this part), ``{}`` without a
        resource estimate.
    error_source : which fit and rows ``error`` comes from (held-out, leave-one-out, or "xc7 fit
        reused for xcup: error not measured on xcup").
    fmax_clamped : fmax hit the family's clock cap (:data:`costmodel.latency.DELAYS`); the path
        model gives a faster clock. fmax_cap_mhz : that cap where clamped, else None.
    """

    lut: int | None
    ff: int | None
    dsp: int | None
    bram18: int | None
    cycles: int
    fmax_mhz: float
    latency_us: float
    energy_nj: float
    dynamic_nj: float = 0.0
    static_nj: float = 0.0
    device: str = DEFAULT_DEVICE
    target: str = "xc7"
    resource_source: str = ""
    fmax_source: str = FMAX_SOURCE
    energy_source: str = ENERGY_SOURCE
    error: dict = field(default_factory=dict, compare=False)
    error_source: str = ""
    fmax_clamped: bool = False
    fmax_cap_mhz: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def utilization(self, device: str | Device | None = None) -> dict[str, float]:
        """Fraction of each resource of ``device`` (default: the estimate's own) used. ``device``
        must have the primitives this estimate counts (LUT6 sites for xc7/xcup, logic cells for ice40,
        TRELLIS_COMB sites for ecp5: the ``lut`` attribute)."""
        d = get_device(device or self.device)
        if _FAMILY.get(d.target, d.target) != _FAMILY.get(self.target, self.target):
            raise DeviceError(f"this estimate counts {self.target} primitives; {d.name} is a {d.target} part with "
                              f"other cells: estimate(config, device={d.name!r}) and ask that one")
        if any(getattr(self, k) is None for k in d.capacity()):
            raise ValueError(f"no resource estimate for this config ({self.resource_source}); "
                             f"utilization and fits() need calibrated resources")
        return {k: getattr(self, k) / cap for k, cap in d.capacity().items()}

    def fits(self, device: str | Device | None = None) -> bool:
        """True when every resource fits ``device`` (default: the estimate's own)."""
        return all(u <= 1.0 for u in self.utilization(device).values())


#: targets whose cells are the same (LUT6 + CARRY + DSP48 + BRAM18): an estimate for one may be
#: checked against a part of the other
_FAMILY = {"xc7": "xilinx", "xcup": "xilinx"}


def _resolve(device: str | Device | None, target: str | None) -> tuple[Device, str]:
    d = get_device(device or DEFAULT_DEVICE)
    if target is None:
        target = d.target
    elif target != d.target and device is not None:
        raise DeviceError(f"device {d.name} is a {d.target} part, not {target}; drop --target or pick a "
                          f"{target} device")
    return d, target


def _cost_part(est: Estimator, df: pd.DataFrame, dev: Device, target: str, wl: Workload,
               breakdown: bool) -> pd.DataFrame:
    """Cost columns of the rows of one engine (same index), by its estimator."""
    cfg = est.configs(df, wl)
    feats = est.features(cfg, target)
    res = est.resources(cfg, feats, target)
    cyc = np.asarray(est.cycles(cfg), dtype=np.int64)
    fmax, fsrc = est.fmax_mhz(feats, target)
    cap = DELAYS[target]["cap"]
    clamped = np.asarray(fmax, dtype=float) >= cap  # fmax = min(model, cap): the cap bound
    fmax = np.round(np.asarray(fmax, dtype=float), 2)  # the reported MHz; latency follows from it
    lat = cyc / fmax
    acts = est.actions(cfg, feats, cyc)
    dyn = est.dynamic_pj(acts, feats) / 1e3
    static = dev.static_w * lat * 1e3  # W · µs = µJ
    out = pd.DataFrame({c: res[c].to_numpy() for c in RESOURCE_COLUMNS}, index=df.index)
    out["cycles"], out["fmax_mhz"], out["latency_us"], out["energy_nj"] = cyc, fmax, lat, dyn + static
    # labels: one per fit / target (broadcast), never per-row Python work
    for c in ("resource_source", "error_source", *ERROR_COLUMNS):
        out[c] = res[c].array if isinstance(res[c].dtype, pd.CategoricalDtype) else res[c].to_numpy()
    out["fmax_source"] = label_column([fsrc], 0, len(out))
    out["fmax_clamped"] = clamped
    out["fmax_cap_mhz"] = np.where(clamped, cap, np.nan)
    out["energy_source"] = label_column([est.energy_source], 0, len(out))
    if breakdown:
        for c in acts.columns:
            out[c] = acts[c].to_numpy()
        out["dynamic_nj"], out["static_nj"] = dyn, static
        out["error"] = res["error"].to_numpy()
    return out


def estimate_frame(df: pd.DataFrame, device: str | Device | None = None, *, target: str | None = None,
                   k: int | None = None, vectors: int | None = None, block_density: float = 1.0,
                   breakdown: bool = False, seq_len: int | None = None) -> pd.DataFrame:
    """Cost of every config row, vectorized per engine.

    Parameters
    ----------
    df : configs, any mix of engines: ``engine`` (``dot``/``sparse``/``swa``; default dot).
        dot/sparse rows: ``lanes``, ``wfmt``, ``afmt``, ``k_max``, and where they apply
        ``pipeline`` (default 1), ``n``, ``m``, ``block``; optional workload columns ``k``
        (elements per dot product, default ``k_max``), ``vectors`` (default 1), ``block_density``.
        SWA rows: the ``SWAConfig`` fields (:data:`SWA_REQUIRED`: ``head_dim window lanes qk_fmt
        v_fmt``, optionally ``causal``, ``dense``, ``exp_bits``, …) and ``seq_len`` (tokens).
    device : part (default ``xc7z020``); sets the target and the static power.
    k, vectors, block_density : workload for every dot/sparse row (override the columns).
    seq_len : sequence length for every SWA row (overrides the column).
    breakdown : also return action counts, the dynamic/static energy split (nJ), and each row's
        held-out ``error`` as a dict (as ``Cost.error``).

    Returns
    -------
    A copy of ``df`` with ``lut ff dsp bram18 cycles fmax_mhz latency_us energy_nj`` appended
    (resources nullable ``Int64`` where some row has no calibrated figure: ``<NA>`` there), then
    the labels :data:`LABEL_COLUMNS`: ``resource_source``, ``error_source``, ``lut_err_median``,
    ``lut_err_p90``, ``ff_err_median``, ``ff_err_p90`` (held-out relative error of this engine's
    fit on this target; NaN where not measured on it), ``fmax_source``, ``fmax_clamped`` (bool),
    ``fmax_cap_mhz`` (the family clock cap where clamped, else NaN), ``energy_source``; the text
    labels are categoricals (one string per fit / target, broadcast, not per-row objects).
    """
    dev, target = _resolve(device, target)
    wl = Workload(k=k, vectors=vectors, block_density=None if block_density == 1.0 else block_density,
                  seq_len=seq_len)
    engines = (df["engine"].fillna("dot").astype(str) if "engine" in df.columns
               else pd.Series("dot", index=df.index)).to_numpy()
    for name in pd.unique(engines):
        estimator(name)  # unknown engines fail before any work
    flat = df.reset_index(drop=True)
    parts = [_cost_part(estimator(name), flat[engines == name].dropna(axis=1, how="all"), dev, target, wl, breakdown)
             for name in pd.unique(engines)]
    cost = pd.concat(parts).sort_index() if len(parts) != 1 else parts[0]
    out = df.copy()
    for c in cost.columns:
        col = cost[c]
        if c in RESOURCE_COLUMNS:
            col = col.astype("Int64") if col.isna().any() else col.astype(np.int64)
        keep = isinstance(col.dtype, pd.CategoricalDtype) or (c in RESOURCE_COLUMNS and col.dtype != np.int64)
        out[c] = col.array if keep else col.to_numpy()
    return out


def estimate(config: Any, device: str | Device | None = None, *, target: str | None = None,
             k: int | None = None, vectors: int = 1, block_density: float = 1.0, n: int | None = None) -> Cost:
    """Cost of one ``hw`` engine config: for ``DotConfig`` / ``SparseConfig``, ``vectors`` dot
    products of length ``k`` (default ``k_max``); for an ``SWAConfig``, one sequence of ``n``
    tokens (``k``, ``vectors``, ``block_density`` unused); on ``device`` (default ``xc7z020``).
    The one-row case of :func:`estimate_frame`.

    Raises
    ------
    hw.arith.ConfigError, hw.devices.DeviceError
        (both ``ValueError``) for a bad workload or an unknown device.
    """
    if not hasattr(config, "to_dict"):
        raise ConfigError(f"estimate() takes an hw engine config (DotConfig, SparseConfig, SWAConfig), got "
                          f"{type(config).__name__}; build one with hw.engines.config_from_dict")
    dev, target = _resolve(device, target)
    if getattr(config, "engine", None) == "swa":
        row = pd.DataFrame([config.to_dict()])
    else:
        row = config_row(config)
    if not (vectors is None or (isinstance(vectors, (int, np.integer)) and vectors >= 1)):
        raise ConfigError(f"vectors must be an integer >= 1, got {vectors!r}")
    if k is not None and not isinstance(k, (int, np.integer)):
        raise ConfigError(f"K must be an integer in 1..k_max={getattr(config, 'k_max', '?')}, got {k!r}")
    r = estimate_frame(row, dev, target=target, k=k, vectors=vectors, block_density=block_density,
                       breakdown=True, seq_len=n).iloc[0]
    res = {c: None if pd.isna(r[c]) else int(r[c]) for c in RESOURCE_COLUMNS}
    return Cost(**res, cycles=int(r["cycles"]), fmax_mhz=float(r["fmax_mhz"]), latency_us=float(r["latency_us"]),
                energy_nj=float(r["energy_nj"]), dynamic_nj=float(r["dynamic_nj"]), static_nj=float(r["static_nj"]),
                device=dev.name, target=target, resource_source=r["resource_source"], fmax_source=r["fmax_source"],
                energy_source=r["energy_source"], error=r["error"], error_source=r["error_source"],
                fmax_clamped=bool(r["fmax_clamped"]),
                fmax_cap_mhz=None if pd.isna(r["fmax_cap_mhz"]) else float(r["fmax_cap_mhz"]))
