"""Energy of measured or vectorless switching activity: toggles × the family's per-class
coefficients (:func:`activity_energy`), and static energy over a run (:func:`static_pj`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw.devices import DEVICES, Device, get_device

from .coefficients import COEFFICIENTS, ENERGY_SOURCE, XPE_DEFAULT_FANOUT
from .gatesim import Activity
from .netlist import CLASSES, check_target

__all__ = ["ActivityEnergy", "activity_energy", "static_pj"]

@dataclass(frozen=True)
class ActivityEnergy:
    """Dynamic energy of an :class:`Activity`, pJ, by part, with its labels.

    Attributes
    ----------
    parts : pJ per part: driver classes (``lut carry ff dsp mem input other``, output-driver
        energy), ``routing`` (toggles × fanout / 3 × ``route_toggle``), ``clock`` (cycles × FFs),
        ``dsp_internal`` (DSP data-input toggles).
    dynamic_pj : sum of the parts, pJ.
    static_pj : static power × latency, pJ (NaN unless a clock was given).
    source : how the figure was obtained (says that no board measurement stands behind it).
    coefficients : the coefficient table used (``pJ``, ``unit``, ``source`` each).
    """

    parts: dict[str, float]
    dynamic_pj: float
    static_pj: float
    source: str
    coefficients: dict[str, dict[str, Any]]

    @property
    def total_pj(self) -> float:
        """Dynamic + static, pJ (dynamic only when no clock was given)."""
        return self.dynamic_pj + (0.0 if np.isnan(self.static_pj) else self.static_pj)


def static_pj(device: str | Device, cycles: int, fmax_mhz: float) -> float:
    """Static energy of ``cycles`` at ``fmax_mhz``: ``static_w`` (``hw.devices``) × latency, pJ."""
    dev = get_device(device) if isinstance(device, str) else device
    if not fmax_mhz or fmax_mhz <= 0:
        raise ValueError(f"fmax_mhz must be > 0, got {fmax_mhz}; take it from costmodel.estimate(config).fmax_mhz")
    return float(dev.static_w * (cycles / fmax_mhz) * 1e6)  # W · µs = µJ = 1e6 pJ


def activity_energy(act: Activity, *, device: str | Device | None = None,
                    fmax_mhz: float | None = None) -> ActivityEnergy:
    """Dynamic energy (pJ) of measured or vectorless activity with the family's
    :data:`COEFFICIENTS`; with ``fmax_mhz`` also the static energy of ``device`` (default: the
    first part of the family in ``hw.devices``) over ``act.cycles``."""
    co = COEFFICIENTS[check_target(act.target)]
    logic, route = co["logic_toggle"]["pJ"], co["route_toggle"]["pJ"] / XPE_DEFAULT_FANOUT
    parts = {c: (0.0 if c == "input" else act.toggles[c] * logic) for c in CLASSES}
    parts["routing"] = sum(act.fanout_toggles.values()) * route
    parts["clock"] = act.cycles * act.ff * co["clock_ff_cycle"]["pJ"]
    parts["dsp_internal"] = (act.dsp_mult_toggles * co["dsp_mult_input_toggle"]["pJ"]
                             + act.dsp_alu_toggles * co["dsp_alu_input_toggle"]["pJ"])
    stat = float("nan")
    if fmax_mhz is not None:
        if device is None:
            device = next(d for d in DEVICES.values() if d.target == act.target)
        dev = get_device(device) if isinstance(device, str) else device
        if dev.target != act.target:
            raise ValueError(f"device {dev.name} is a {dev.target} part, the activity is on {act.target}; "
                             f"pass a {act.target} device")
        stat = static_pj(dev, act.cycles, fmax_mhz)
    kind = "vectorless (12.5 % toggle rate on every net, UG440 default)" if act.vectorless else "measured toggles"
    return ActivityEnergy(parts=parts, dynamic_pj=float(sum(parts.values())), static_pj=stat,
                          source=f"{kind}; {ENERGY_SOURCE}", coefficients=co)
