"""``estimate(config) -> Cost`` and the vectorized ``estimate_frame(df) -> df``.

Resources come from :mod:`costmodel.resources` (fitted on Yosys data: xc7, with ``xcup`` using the
xc7 fit under its own DSP rule; ice40 / ecp5 fitted on the place-and-route sample's syntheses),
cycles from the engines' closed forms (:mod:`costmodel.latency`), fmax from nextpnr results for
ice40 / ecp5 and the logic-depth model for Xilinx parts (each labelled), energy from :mod:`costmodel.energy` (ASIC action
energies + the device's static power).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from hw import swa as hw_swa
from hw.arith import ConfigError
from hw.swa import SWAConfig

from .devices import Device, DeviceError, get_device
from .energy import energy_frame
from .features import config_row, frame_features, normalize_frame
from .latency import FMAX_SOURCE, cycles_array, fmax_model_frame, fmax_source
from .latency import cycles as closed_cycles
from .resources import load_coefficients, model_for, predict_frame
from .swa import SWA_ENERGY_SOURCE, SWA_FMAX_SOURCE, _check_n, swa_energy, swa_fmax, swa_resources

__all__ = ["Cost", "estimate", "estimate_frame", "DEFAULT_DEVICE", "COST_COLUMNS", "SWA_REQUIRED"]

DEFAULT_DEVICE = "xc7z020"
COST_COLUMNS = ["lut", "ff", "dsp", "bram18", "cycles", "fmax_mhz", "latency_us", "energy_nj"]


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one engine config running one workload.

    Attributes
    ----------
    lut, ff, dsp, bram18 : resources (LUTs, flip-flops, DSP blocks, 18 Kbit BRAMs); None where
        no calibrated model covers the config (``resource_source`` says so; SWA off xc7).
    cycles : clock cycles for the workload (closed form, equals simulation).
    fmax_mhz : clock estimate, MHz (see ``fmax_source``).
    latency_us : cycles / fmax, µs.
    energy_nj : dynamic (ASIC action energies) + static (device) energy, nJ.
    dynamic_nj, static_nj : the two parts, nJ; ``dynamic_nj`` uses ASIC figures.
    device, target : part and synthesis target the estimate is for.
    resource_source, fmax_source, energy_source : how each figure was obtained.
    error : held-out relative errors of this engine's resource model
        (``{"lut": {"median": …, "p90": …}, …}``) — the honest error bar.
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
    energy_source: str = ("dynamic: ASIC action energies (Horowitz ISSCC'14 45 nm; Accelergy Aladdin "
                          "40 nm) × action counts; static: device static power × latency")
    error: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def utilization(self, device: str | Device | None = None) -> dict[str, float]:
        """Fraction of each resource of ``device`` (default: the estimate's own) used. ``device``
        must have the primitives this estimate counts (LUT6 for xc7/xcup, LUT4 for ice40/ecp5)."""
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


#: columns an SWA row needs (besides ``engine = "swa"``); optional ones are the other
#: ``SWAConfig`` fields (``causal``, ``exp_bits``, ``dense``, …)
SWA_REQUIRED = ["head_dim", "window", "lanes", "qk_fmt", "v_fmt", "seq_len"]


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _swa_frame(df: pd.DataFrame, dev: Device, target: str, seq_len: int | None, breakdown: bool) -> pd.DataFrame:
    """Cost columns of SWA rows (same index): one :class:`hw.swa.SWAConfig` and one cost per
    distinct (config, sequence length); resources ``<NA>`` where no calibrated SWA model covers a
    config (``estimate(config, n=...).resource_source`` says why)."""
    need = [c for c in SWA_REQUIRED if c not in df.columns and not (c == "seq_len" and seq_len is not None)]
    if need:
        raise ConfigError(f"SWA rows need column(s) {need} (head_dim, window, lanes, qk_fmt, v_fmt and the "
                          f"sequence length seq_len, or estimate_frame(..., seq_len=N))")
    types = {f.name: str(f.type) for f in fields(SWAConfig)}
    cols = [c for c in types if c in df.columns]

    def typed(c: str, v: Any) -> Any:  # a mixed frame turns int columns into floats (NaN elsewhere)
        v = _py(v)
        if isinstance(v, float) and v.is_integer() and types[c].startswith("int"):
            return int(v)
        if isinstance(v, (int, float)) and types[c] == "bool" and v in (0, 1):
            return bool(v)
        return v

    configs: dict = {}
    costs: dict = {}
    rows = []
    for vals, n in zip(df[cols].itertuples(index=False, name=None),
                       [seq_len] * len(df) if seq_len is not None else df["seq_len"].tolist()):
        d = {c: typed(c, v) for c, v in zip(cols, vals) if not (v is None or (isinstance(v, float) and np.isnan(v)))}
        key = tuple(sorted(d.items()))
        if key not in configs:
            configs[key] = SWAConfig.from_dict(d)
        n = _py(n)
        n = int(n) if isinstance(n, float) and float(n).is_integer() else n
        if (key, n) not in costs:
            costs[(key, n)] = _estimate_swa(configs[key], dev, target, n)
        rows.append(costs[(key, n)])
    out = pd.DataFrame(index=df.index)
    for c in ("lut", "ff", "dsp", "bram18"):
        out[c] = pd.array([getattr(r, c) for r in rows], dtype="Int64")
    for c in ("cycles", "fmax_mhz", "latency_us", "energy_nj") + (("dynamic_nj", "static_nj") if breakdown else ()):
        out[c] = [getattr(r, c) for r in rows]
    return out


def estimate_frame(df: pd.DataFrame, device: str | Device | None = None, *, target: str | None = None,
                   k: int | None = None, vectors: int | None = None, block_density: float = 1.0,
                   breakdown: bool = False, seq_len: int | None = None) -> pd.DataFrame:
    """Cost of every config row, vectorized.

    Parameters
    ----------
    df : configs: ``engine`` (``dot``/``sparse``/``swa``; default dot), ``lanes``, ``wfmt``,
        ``afmt``, ``k_max``, and where they apply ``pipeline`` (default 1), ``n``, ``m``, ``block``;
        optional workload columns ``k`` (elements per dot product, default ``k_max``),
        ``vectors`` (default 1) and ``block_density``. SWA rows instead carry the
        ``SWAConfig`` fields (:data:`SWA_REQUIRED`: ``head_dim window lanes qk_fmt v_fmt``, and
        optionally ``causal``, ``dense``, ``exp_bits``, …) and the sequence length ``seq_len``
        (tokens); they are costed as :func:`estimate` costs them, once per distinct config.
    device : part (default ``xc7z020``); sets the target and the static power.
    k, vectors, block_density : workload for every dot/sparse row (override the columns).
    seq_len : sequence length for every SWA row (overrides the column).
    breakdown : also return action counts and the dynamic/static energy split.

    Returns
    -------
    A copy of ``df`` with ``lut ff dsp bram18 cycles fmax_mhz latency_us energy_nj`` appended
    (nullable ``Int64`` resources when SWA rows are present: ``<NA>`` where not calibrated).
    """
    dev, target = _resolve(device, target)
    if "engine" in df.columns and (df["engine"].astype(str) == "swa").any():
        is_swa = (df["engine"].astype(str) == "swa").to_numpy()
        pos = np.arange(len(df))
        flat = df.reset_index(drop=True)
        parts = [_swa_frame(flat[is_swa], dev, target, seq_len, breakdown)]
        if (~is_swa).any():
            rest = flat[~is_swa].dropna(axis=1, how="all")
            parts.append(estimate_frame(rest, dev, target=target, k=k, vectors=vectors, block_density=block_density,
                                        breakdown=breakdown)[list(parts[0].columns)])
        cost = pd.concat(parts).reindex(pos)
        out = df.copy()
        for c in cost.columns:
            out[c] = cost[c].to_numpy() if c not in ("lut", "ff", "dsp", "bram18") else cost[c].astype("Int64").array
        return out
    cfg = normalize_frame(df)
    feats, pairs = frame_features(cfg, target, normalized=True, return_pairs=True)
    res = predict_frame(cfg, target, model_for(target)[0], features=(feats, pairs))
    kk = (np.full(len(cfg), k) if k is not None else
          pd.to_numeric(df["k"]).to_numpy() if "k" in df.columns else cfg["k_max"].to_numpy())
    if (kk > cfg["k_max"].to_numpy()).any() or (kk < 1).any():
        raise ConfigError("workload K must lie in 1..k_max for every row; raise k_max or split the reduction")
    vv = (np.full(len(cfg), vectors) if vectors is not None else
          pd.to_numeric(df["vectors"]).to_numpy() if "vectors" in df.columns else np.ones(len(cfg), np.int64))
    dens = (pd.to_numeric(df["block_density"]).to_numpy() if "block_density" in df.columns and block_density == 1.0
            else np.full(len(cfg), block_density))
    cyc = cycles_array(cfg["engine"].to_numpy(), cfg["lanes"].to_numpy(), kk, vv, cfg["pipeline"].to_numpy(),
                       n=cfg["n"].to_numpy(), m=cfg["m"].to_numpy(), block=cfg["block"].to_numpy(),
                       block_density=dens)
    fmax = fmax_model_frame(target, feats)
    fmax = np.round(fmax, 2)  # the reported MHz; latency follows from it
    lat = cyc / fmax
    beats = cyc - cfg["pipeline"].to_numpy() - 1
    en = energy_frame(feats, beats, lat, dev.static_w)
    out = df.copy()
    for c in ("lut", "ff", "dsp", "bram18"):
        out[c] = res[c].to_numpy()
    out["cycles"] = cyc
    out["fmax_mhz"] = fmax
    out["latency_us"] = lat
    out["energy_nj"] = en["energy_nj"].to_numpy()
    if breakdown:
        for c in en.columns:
            if c != "energy_nj":
                out[c] = en[c].to_numpy()
    return out


def _estimate_swa(config: Any, dev: Device, target: str, n: int | None) -> Cost:
    """Cost of one ``SWAConfig`` for one sequence of ``n`` tokens (see :mod:`costmodel.swa`)."""
    if n is None:
        raise ConfigError("an SWA estimate needs the sequence length: estimate(config, n=...) / --n")
    n = _check_n(config, n)
    cyc = int(hw_swa.cycles(config, n))
    fmax = swa_fmax(config, target)
    lat = cyc / fmax
    en = swa_energy(config, n, lat, dev.static_w)
    res, src, err = swa_resources(config, target)
    res = res or {}
    return Cost(lut=res.get("lut"), ff=res.get("ff"), dsp=res.get("dsp"), bram18=res.get("bram18"),
                cycles=cyc, fmax_mhz=fmax, latency_us=lat, energy_nj=en["energy_nj"],
                dynamic_nj=en["dynamic_nj"], static_nj=en["static_nj"], device=dev.name, target=target,
                resource_source=src, fmax_source=SWA_FMAX_SOURCE, energy_source=SWA_ENERGY_SOURCE, error=err)


def estimate(config: Any, device: str | Device | None = None, *, target: str | None = None,
             k: int | None = None, vectors: int = 1, block_density: float = 1.0, n: int | None = None) -> Cost:
    """Cost of one ``hw`` engine config (``DotConfig`` / ``SparseConfig``) for ``vectors`` dot
    products of length ``k`` (default ``k_max``) on ``device`` (default ``xc7z020``); for an
    ``SWAConfig``, of one sequence of ``n`` tokens (``k``, ``vectors``, ``block_density`` unused).

    Raises
    ------
    hw.arith.ConfigError, costmodel.devices.DeviceError
        (both ``ValueError``) for a bad workload or an unknown device.
    """
    if not hasattr(config, "to_dict"):
        raise ConfigError(f"estimate() takes an hw engine config (DotConfig, SparseConfig), got "
                          f"{type(config).__name__}; build one with hw.engines.config_from_dict")
    dev, target = _resolve(device, target)
    if getattr(config, "engine", None) == "swa":
        return _estimate_swa(config, dev, target, n)
    c = closed_cycles(config, k, vectors, block_density)  # validates k / vectors
    row = estimate_frame(config_row(config), dev, target=target, k=k if k is not None else config.k_max,
                         vectors=vectors, block_density=block_density, breakdown=True).iloc[0]
    assert int(row["cycles"]) == c
    model, fitted = model_for(target)
    err = model.get("validation", {}).get(config.engine, {})
    if model.get("kind") == "lattice":
        src = (f"Yosys-calibrated {target} model: LUT4 fitted on {model['fitted_on']['rows']} synth_{target} runs of "
               f"the place-and-route sample ({load_coefficients()['date']}), FF counted, DSP by the synth_{target} "
               f"rule; errors are leave-one-out")
    else:
        src = (f"Yosys-calibrated model ({fitted} fit, {load_coefficients()['date']})"
               + ("" if fitted == target else f"; {target} DSP rule"))
    return Cost(
        lut=int(row["lut"]), ff=int(row["ff"]), dsp=int(row["dsp"]), bram18=int(row["bram18"]),
        cycles=int(row["cycles"]), fmax_mhz=float(row["fmax_mhz"]), latency_us=float(row["latency_us"]),
        energy_nj=float(row["energy_nj"]), dynamic_nj=float(row["dynamic_nj"]), static_nj=float(row["static_nj"]),
        device=dev.name, target=target,
        resource_source=src, fmax_source=fmax_source(target),
        error={r: {"median": v["median_rel_err"], "p90": v["p90_rel_err"]} for r, v in err.items()},
    )
