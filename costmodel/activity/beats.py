"""Real data → input beats: the packed payloads of a Linear layer's weight and activation codes
on the dot or sparse engine (:func:`layer_beats`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hw.engines import engine

__all__ = ["layer_beats"]


def layer_beats(config: Any, w_codes: np.ndarray, a_codes: np.ndarray) -> list[int]:
    """Input beats of a Linear layer on a batch: one dot product per (sample, output), sample
    major, ``w_codes[o]`` against ``a_codes[s]`` (both already codes of ``config.wfmt`` /
    ``config.afmt``, e.g. from ``quant.reference.encode`` or ``quant.export``).

    Parameters
    ----------
    config : ``hw.dot.DotConfig`` or ``hw.sparse.SparseConfig``.
    w_codes : (outputs, K) weight codes; for the sparse engine they must obey its n:m pattern.
    a_codes : (samples, K) activation codes (extra dimensions are flattened into K).

    Returns
    -------
    Packed payloads, ``samples · outputs · beats per vector`` of them (the engine's ``pack_inputs``).
    """
    if getattr(config, "engine", None) not in ("dot", "sparse"):
        raise ValueError(f"layer_beats maps Linear layers onto the dot or sparse engine, not "
                         f"{getattr(config, 'engine', type(config).__name__)!r}")
    w = np.asarray(w_codes)
    a = np.asarray(a_codes)
    a = a.reshape(a.shape[0], -1)
    if w.ndim != 2 or w.shape[1] != a.shape[1]:
        raise ValueError(f"w_codes must be (outputs, K) and a_codes (samples, K) with the same K; got {w.shape} and "
                         f"{a.shape}: flatten or im2col the activations first")
    mod = engine(config.engine)
    o = w.shape[0]
    wl = mod.Workload(np.tile(w, (len(a), 1)).astype(np.uint8), np.repeat(a, o, axis=0).astype(np.uint8))
    return mod.pack_inputs(config, wl)
