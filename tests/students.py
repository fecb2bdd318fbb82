"""A real MAP student for tests: a PaCKD ResNet student trained briefly on a generated pr trace."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn


@lru_cache(maxsize=4)
def trained_student(rows: int = 2000, epochs: int = 1, arch: str = "resnet") -> tuple[nn.Module, dict[str, np.ndarray]]:
    """``(model, splits)``: ``arch`` student trained ``epochs`` epochs (seed 0) on ``rows`` rows of
    a scale-12 pr trace. Cached per process: callers must not modify the model in place."""
    from models import map_data, traces, zoo
    from models.distill import TrainConfig, fit

    tr = traces.generate(traces.TraceConfig("pr", scale=12, seed=0, max_loads=200_000))
    sp = map_data.make_splits(tr.addr, tr.ip, max_rows=rows)
    torch.manual_seed(0)
    model = zoo.build(arch, "student")
    fit(model, (sp["x_train"], sp["y_train"]), (sp["x_val"], sp["y_val"]),
        TrainConfig(epochs=epochs, patience=2, progress=False))
    return model.eval(), sp
