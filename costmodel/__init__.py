"""Analytic resource / latency / energy model of the hw engines, and Pareto ranking.

>>> from costmodel import estimate, estimate_frame, pareto
>>> from hw.dot import DotConfig
>>> c = estimate(DotConfig(lanes=16, wfmt="int4", afmt="int4", k_max=1024), device="xczu3eg")
>>> c.lut, c.dsp, c.cycles, c.fits(), c.fits("u55c")
"""

from hw.devices import DEVICES, Device, DeviceError, get_device
from .estimate import COST_COLUMNS, Cost, estimate, estimate_frame
from .pareto import PlotOptions, pareto, pareto_ranks, plot

__all__ = ["Cost", "estimate", "estimate_frame", "pareto", "pareto_ranks", "plot", "PlotOptions", "DEVICES", "Device",
           "DeviceError", "get_device", "COST_COLUMNS"]
