"""CRISP-style hybrid structured pruning: N:M, blocks, and both, with class-aware saliency and
SR-STE fine-tuning.

Structure (matches ``hw.sparse``)
---------------------------------
Every ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` weight is pruned along its reduction
dimension: the rows of ``weight.reshape(out, -1)`` (for a convolution the reduction order is
``(in_channel, kernel…)``, the order of im2col and of the engines' K).

* **N:M** — in every row, consecutive groups of ``m`` inputs hold at most ``n`` non-zeros. A row
  whose length K is not a multiple of ``m`` ends in a shorter tail group that keeps
  ``min(n, tail)`` weights; this is exactly zero-padding K to a multiple of ``m``, which is what
  the sparse engine does (``hw.sparse`` pads every vector to its beat span).
* **blocks** — a block is ``block`` consecutive reduction positions of one output row (what
  ``hw.sparse.block_bitmap`` skips); the last block of a row may be shorter (zero padding
  again). Pruning is *balanced*: every row keeps ``ceil(keep · blocks_per_row)`` blocks, so every
  output vector costs the engine the same beats (the sparse engine's closed-form cycles are
  then exact) and no row is emptied; rows of one block are never block-pruned.
* **hybrid** (``2:4+b8k0.5``) — N:M first, then blocks ranked by the saliency N:M left in them.

Saliency
--------
``"magnitude"``: ``|w|``. ``"class"`` (CRISP): ``Σ_batches |∂L/∂w ⊙ w|`` where ``L`` is the BCE
of the user's preferred outputs only, over the rows with at least one preferred label. For MAP
students (multi-label) the classes are output delta bits; ``"top32"`` picks the 32 most frequent
bits of the training labels. Magnitude breaks ties (rows no preferred output depends on, e.g.
head rows of other classes, have zero class saliency).

Fine-tuning (SR-STE, Zhou et al. ICLR'21)
-----------------------------------------
The forward pass uses ``w ⊙ mask``; the backward pass sends the gradient straight to the dense
``w`` plus ``λ_w · (¬mask) ⊙ w`` (the sparse-refined decay pulling pruned weights to zero);
masks are recomputed from the dense weights every ``mask_every`` steps, so pruned weights can
come back. The best epoch on validation micro-F1 is kept.

Layers: every prunable layer is pruned by default — one sparse engine then runs the whole
student. ``skip`` leaves named layers (or ``"first"`` / ``"last"``) dense, as CRISP and most
papers do for the first layer. LSTM weights are not pruned (not Linear/Conv).
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from . import metrics
from .distill import kd_loss, predict
from .map_data import load_splits
from .specs import SALIENCIES, Pattern, PruneError, parse_pattern
from .zoo import load_checkpoint, save_checkpoint

__all__ = ["Pattern", "PruneError", "parse_pattern", "resolve_classes", "prunable_layers", "masks",
           "prune", "finetune", "check_pattern", "live_blocks", "sparsity",
           "SALIENCIES", "evaluate", "prune_student"]

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: weight of the normalized magnitude that breaks ties in class saliency
TIE_BREAK = 1e-3


# ---- masks from scores -------------------------------------------------------------------------


def _blocks_kept(k: int, block: int, keep: float) -> tuple[int, int]:
    """(blocks per row, blocks kept per row) for a row of ``k`` weights."""
    nb = -(-k // block)
    return nb, max(1, math.ceil(keep * nb - 1e-9))


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """bool (rows, K): the ``n`` highest scores of every group of ``m`` (tail group shorter)."""
    rows, k = score.shape
    pad = -k % m
    s = torch.cat([score, score.new_full((rows, pad), -math.inf)], dim=1) if pad else score
    g = s.reshape(rows, -1, m)
    top = g.topk(n, dim=-1).indices
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, top, True)
    return mask.reshape(rows, -1)[:, :k]


def block_mask(score: torch.Tensor, block: int, keep: float) -> torch.Tensor:
    """bool (rows, K): in every row the ``ceil(keep · blocks)`` blocks with the highest score sum."""
    rows, k = score.shape
    nb, kept = _blocks_kept(k, block, keep)
    pad = nb * block - k
    s = torch.cat([score, score.new_zeros((rows, pad))], dim=1) if pad else score
    bs = s.reshape(rows, nb, block).sum(-1)
    top = bs.topk(kept, dim=-1).indices
    bm = torch.zeros((rows, nb), dtype=torch.bool).scatter_(-1, top, True)
    return bm.repeat_interleave(block, dim=1)[:, :k]


def mask_from_score(score: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """bool mask of a weight's shape from its saliency (same shape) under ``pattern``."""
    pattern = parse_pattern(pattern)
    s = score.detach().reshape(score.shape[0], -1).to(torch.float64)
    mask = torch.ones_like(s, dtype=torch.bool)
    if pattern.has_nm:
        mask = nm_mask(s, pattern.n, pattern.m)
    if pattern.has_blocks:
        mask &= block_mask(torch.where(mask, s, torch.zeros_like(s)), pattern.block, pattern.keep)
    return mask.reshape(score.shape)


# ---- layers, classes, saliency -----------------------------------------------------------------


def prunable_layers(model: nn.Module, skip: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv1d/Conv2d to prune, in module order; ``skip``
    holds layer names, or ``"first"`` / ``"last"``, to leave dense."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    names = [n for n, _ in layers]
    drop = set()
    for s in skip:
        if s == "first" and names:
            drop.add(names[0])
        elif s == "last" and names:
            drop.add(names[-1])
        elif s in names:
            drop.add(s)
        else:
            raise PruneError(f"skip: no prunable layer {s!r}; choose first, last or one of {', '.join(names)}")
    return [(n, m) for n, m in layers if n not in drop]


def resolve_classes(classes: "str | Sequence[int] | None", y: np.ndarray | torch.Tensor | None) -> np.ndarray | None:
    """Preferred output indices: None/"all" -> None (every output); ``"topK"`` -> the K most
    frequent label bits of ``y`` (ties: lower index first); ``"3,17"`` or a list -> those."""
    if classes is None or (isinstance(classes, str) and classes.strip().lower() in ("", "all")):
        return None
    if isinstance(classes, str):
        c = classes.strip().lower()
        if mt := re.fullmatch(r"top(\d+)", c):
            if y is None:
                raise PruneError(f"classes {classes!r} needs labels to count frequencies (pass data=(x, y))")
            yy = np.asarray(y)
            k = int(mt.group(1))
            if not 1 <= k <= yy.shape[1]:
                raise PruneError(f"classes {classes!r}: K must lie in 1..{yy.shape[1]} (the label bits)")
            freq = yy.reshape(len(yy), -1).astype(np.int64).sum(axis=0)  # (uint8 labels: no wrap on -freq)
            return np.sort(np.argsort(-freq, kind="stable")[:k])
        try:
            idx = [int(v) for v in c.split(",") if v.strip()]
        except ValueError:
            raise PruneError(f"classes {classes!r}: give topK (e.g. top32), all, or comma-separated "
                             f"output indices") from None
    else:
        idx = [int(v) for v in classes]
    out = np.unique(np.asarray(idx, dtype=np.int64))
    if len(out) == 0:
        raise PruneError("classes: empty set of preferred outputs")
    if y is not None and (out.min() < 0 or out.max() >= np.asarray(y).shape[1]):
        raise PruneError(f"classes {classes!r}: indices must lie in 0..{np.asarray(y).shape[1] - 1}")
    return out


def _dense_weight(mod: nn.Module) -> torch.Tensor:
    """The dense (unmasked) weight: the SR-STE original when parametrized."""
    if parametrize.is_parametrized(mod, "weight"):
        return mod.parametrizations.weight.original
    return mod.weight


def class_saliency(model: nn.Module, layers: list[tuple[str, nn.Module]], x, y, classes=None,
                   batch_size: int = 256, max_rows: int = 4096) -> dict[str, torch.Tensor]:
    """``Σ_batches |∂L/∂w ⊙ w|`` per layer (float64, weight shape), ``L`` = mean BCE-with-logits of
    the ``classes`` outputs, over (up to ``max_rows``, evenly spaced) rows with a preferred label.
    Gradients are taken w.r.t. the weight the forward pass uses (masked, under SR-STE), ``w`` is
    the dense weight. The model runs in eval mode (BatchNorm statistics untouched)."""
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float32)
    cls = torch.arange(yt.shape[1]) if classes is None else torch.as_tensor(np.asarray(classes))
    rows = torch.nonzero(yt[:, cls].sum(1) > 0).reshape(-1)
    if len(rows) == 0:
        rows = torch.arange(len(yt))
    if len(rows) > max_rows:
        rows = rows[torch.linspace(0, len(rows) - 1, max_rows).round().long()]
    was = model.training
    model.eval()
    sal = {n: torch.zeros(_dense_weight(m).shape, dtype=torch.float64) for n, m in layers}
    # under SR-STE the dense weight's gradient is the used weight's, once the decay is off
    srste = [m.parametrizations.weight[0] for _, m in layers if parametrize.is_parametrized(m, "weight")]
    decays = [p.decay for p in srste]
    for p in srste:
        p.decay = 0.0
    try:
        for i in range(0, len(rows), batch_size):
            b = rows[i:i + batch_size]
            model.zero_grad(set_to_none=True)
            out = model(xt[b])
            loss = nn.functional.binary_cross_entropy_with_logits(out[:, cls], yt[b][:, cls])
            loss.backward()
            for n, m in layers:
                w = _dense_weight(m)
                if w.grad is not None:
                    sal[n] += (w.grad.detach() * w.detach()).abs().to(torch.float64)
    finally:
        for p, d in zip(srste, decays):
            p.decay = d
        model.zero_grad(set_to_none=True)
        model.train(was)
    return sal


def scores(model: nn.Module, saliency: str = "magnitude", data=None, classes=None,
           skip: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Saliency (float64, weight shape) of every prunable layer's dense weight."""
    if saliency not in SALIENCIES:
        raise PruneError(f"unknown saliency {saliency!r}: choose one of {', '.join(SALIENCIES)}")
    layers = prunable_layers(model, skip)
    mags = {n: _dense_weight(m).detach().abs().to(torch.float64) for n, m in layers}
    if saliency == "magnitude":
        return mags
    if data is None:
        raise PruneError("class saliency needs data=(x, y): the inputs and labels to take gradients on")
    x, y = data
    cls = resolve_classes(classes, y)
    sal = class_saliency(model, layers, x, y, cls)
    out = {}
    for n, s in sal.items():
        mg = mags[n]
        out[n] = s / max(float(s.max()), 1e-300) + TIE_BREAK * mg / max(float(mg.max()), 1e-300)
    return out


def masks(model: nn.Module, pattern: "str | Pattern", *, saliency: str = "magnitude", data=None,
          classes=None, skip: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """bool keep-masks (weight shape) of every prunable layer under ``pattern``; ``data = (x, y)``
    (arrays or tensors) and ``classes`` (``"top32"``, indices, None = all) for class saliency."""
    pattern = parse_pattern(pattern)
    return {n: mask_from_score(s, pattern)
            for n, s in scores(model, saliency, data, classes, skip).items()}


@torch.no_grad()
def _apply(model: nn.Module, ms: dict[str, torch.Tensor]) -> None:
    mods = dict(model.named_modules())
    for n, mk in ms.items():
        w = _dense_weight(mods[n])
        w.mul_(mk.to(w.dtype))


def prune(model: nn.Module, pattern: "str | Pattern", *, saliency: str = "magnitude", data=None,
          classes=None, skip: Sequence[str] = ()) -> nn.Module:
    """One-shot pruning in place (pruned weights set to 0); returns ``model``."""
    _apply(model, masks(model, pattern, saliency=saliency, data=data, classes=classes, skip=skip))
    return model


# ---- SR-STE ------------------------------------------------------------------------------------


class _SRSTEFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, mask, decay):
        ctx.save_for_backward(w, mask)
        ctx.decay = decay
        return w * mask

    @staticmethod
    def backward(ctx, g):
        w, mask = ctx.saved_tensors
        return g + ctx.decay * (~mask.bool()).to(w.dtype) * w, None, None


class SRSTE(nn.Module):
    """Weight parametrization ``w -> w ⊙ mask`` whose backward is SR-STE's."""

    def __init__(self, mask: torch.Tensor, decay: float):
        super().__init__()
        self.register_buffer("mask", mask.clone().bool())
        self.decay = decay

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _SRSTEFn.apply(w, self.mask, self.decay)


@dataclass(frozen=True)
class PruneConfig:
    """How a student is pruned (:func:`prune_student`) or fine-tuned (:func:`finetune`).

    Attributes
    ----------
    saliency : ``magnitude``, or ``class`` (CRISP: saliency on the preferred classes' rows).
    classes : the preferred classes of class saliency (``"top4"``, indices; None: all).
    epochs : SR-STE passes over the training rows (0: one-shot pruning, :func:`prune_student`
        only); the epoch with the best validation micro-F1 (best threshold) is kept.
    lr : Adam learning rate.
    decay : λ_w, the SR-STE decay on pruned weights (per unit weight, added to the gradient).
    mask_every : steps between mask recomputations from the dense weights.
    batch_size : rows per step.
    skip : names of layers left dense.
    seed : seeds torch and the batch order.
    progress : show progress bars.
    """

    saliency: str = "magnitude"
    classes: "str | Sequence[int] | None" = None
    epochs: int = 4
    lr: float = 1e-3
    decay: float = 2e-4
    mask_every: int = 50
    batch_size: int = 256
    skip: Sequence[str] = ()
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.saliency not in SALIENCIES:
            raise PruneError(f"unknown saliency {self.saliency!r}: choose one of {', '.join(SALIENCIES)}")
        if self.classes is not None and self.saliency != "class":
            raise PruneError(f"classes {self.classes!r} only steer class saliency: add --saliency class "
                             "(or drop --classes)")
        if self.epochs < 0:
            raise PruneError(f"epochs={self.epochs}: use 0 (one-shot) or more (SR-STE)")
        if self.mask_every < 1 or self.batch_size < 1:
            raise PruneError("mask_every and batch_size must be >= 1")
        if not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise PruneError(f"--seed {self.seed!r}: use a non-negative integer (e.g. --seed 0)")
        object.__setattr__(self, "skip", tuple(self.skip))


def finetune(model: nn.Module, pattern: "str | Pattern", splits: dict[str, np.ndarray],
             cfg: PruneConfig = PruneConfig()) -> nn.Module:
    """SR-STE fine-tuning in place to ``pattern`` for ``cfg.epochs`` (>= 1) epochs; returns
    ``model`` with pruned weights exactly 0.

    ``splits`` holds ``x_train``, ``y_train``, ``x_val``, ``y_val`` (MAP: (n, 10, 10) inputs and
    (n, 256) 0/1 labels). Class saliency is recomputed on the training rows of the preferred
    classes at every mask refresh.
    """
    pattern = parse_pattern(pattern)
    if cfg.epochs < 1:
        raise PruneError("SR-STE fine-tuning needs epochs >= 1")
    x, y, x_val, y_val = (splits[k] for k in ("x_train", "y_train", "x_val", "y_val"))
    epochs, lr, saliency, skip = cfg.epochs, cfg.lr, cfg.saliency, cfg.skip
    batch_size, mask_every, progress = cfg.batch_size, cfg.mask_every, cfg.progress
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = (x, y)
    cls = resolve_classes(cfg.classes, y) if saliency == "class" else None
    mods = dict(model.named_modules())
    ms = masks(model, pattern, saliency=saliency, data=data, classes=cls, skip=skip)
    for n, mk in ms.items():
        parametrize.register_parametrization(mods[n], "weight", SRSTE(mk, cfg.decay))
    try:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
        yt = torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float32)
        best, best_f1, step = None, -1.0, 0
        for epoch in range(epochs):
            model.train()
            order = rng.permutation(len(xt))
            bar = tqdm(range(0, len(order), batch_size), desc=f"SR-STE {pattern} epoch {epoch + 1}/{epochs}",
                       leave=False, disable=not progress, unit="batch")
            for i in bar:
                b = torch.from_numpy(order[i:i + batch_size])
                loss = kd_loss(model(xt[b]), yt[b], None)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step % mask_every == 0:
                    _refresh(model, mods, pattern, saliency, data, cls, skip)
            _refresh(model, mods, pattern, saliency, data, cls, skip)
            _, f = metrics.best_threshold(predict(model, x_val), y_val, logits=True)
            if f > best_f1:
                best, best_f1 = copy.deepcopy(model.state_dict()), f
        model.load_state_dict(best)
    finally:
        for n in ms:
            if parametrize.is_parametrized(mods[n], "weight"):
                parametrize.remove_parametrizations(mods[n], "weight", leave_parametrized=True)
    model.eval()
    for n in ms:
        check_pattern(mods[n].weight, pattern)
    return model


def _refresh(model, mods, pattern, saliency, data, cls, skip) -> None:
    """Recompute every SR-STE mask from the dense weights (decay off while taking gradients)."""
    srste = {n: mods[n].parametrizations.weight[0] for n in mods
             if isinstance(mods[n], PRUNABLE) and parametrize.is_parametrized(mods[n], "weight")}
    new = masks(model, pattern, saliency=saliency, data=data, classes=cls, skip=skip)
    for n, mk in new.items():
        srste[n].mask.copy_(mk)


# ---- checks and summaries ----------------------------------------------------------------------


def live_blocks(nonzero: np.ndarray, block: int) -> np.ndarray:
    """bool (rows, blocks): which ``block``-wide blocks of each row of ``nonzero`` (rows, K)
    hold a non-zero (the last block zero-padded): what the block-skipping engine streams."""
    rows, k = nonzero.shape
    nb = -(-k // block)
    return np.pad(nonzero, ((0, 0), (0, nb * block - k))).reshape(rows, nb, block).any(-1)


def check_pattern(weight: "torch.Tensor | np.ndarray", pattern: "str | Pattern", name: str = "weight") -> None:
    """Raise :class:`PruneError` naming the first row/group (or row's blocks) where ``weight``
    (non-zero = kept) breaks ``pattern``."""
    pattern = parse_pattern(pattern)
    w = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    w = w.reshape(w.shape[0], -1) != 0
    rows, k = w.shape
    if pattern.has_nm:
        m = pattern.m
        g = np.pad(w, ((0, 0), (0, -k % m))).reshape(rows, -1, m).sum(-1)
        if (g > pattern.n).any():
            r, j = np.argwhere(g > pattern.n)[0]
            raise PruneError(f"{name} breaks {pattern.n}:{m}: row {r}, group {j} (columns {j * m}.."
                             f"{min(k, j * m + m) - 1}) has {g[r, j]} non-zeros")
    if pattern.has_blocks:
        nb, kept = _blocks_kept(k, pattern.block, pattern.keep)
        live = live_blocks(w, pattern.block).sum(-1)
        if (live > kept).any():
            r = int(np.argmax(live > kept))
            raise PruneError(f"{name} breaks {pattern}: row {r} has {live[r]} non-zero blocks of "
                             f"{pattern.block}, at most {kept} of {nb} allowed")


def sparsity(model: nn.Module, skip: Sequence[str] = ()) -> dict[str, float]:
    """Fraction of zero weights per prunable layer and ``"total"`` over them."""
    out, z, t = {}, 0, 0
    for n, m in prunable_layers(model, skip):
        w = m.weight.detach()
        out[n] = float((w == 0).float().mean())
        z, t = z + int((w == 0).sum()), t + w.numel()
    out["total"] = z / max(t, 1)
    return out


# ---- students on disk (CLI, explore, bench) ------------------------------------------------------


def evaluate(model: nn.Module, splits: dict, classes=None) -> dict[str, float]:
    """Test micro-F1 at the validation threshold (``metrics.summarize``), plus ``f1_classes``:
    micro-F1 over the preferred outputs only (same threshold), and the weight ``sparsity``."""
    val, test = predict(model, splits["x_val"]), predict(model, splits["x_test"])
    res = metrics.summarize(val, splits["y_val"], test, splits["y_test"])
    cls = resolve_classes(classes, splits["y_train"])
    if cls is not None:
        res["f1_classes"] = metrics.micro_f1(test[:, cls], splits["y_test"][:, cls], res["threshold"], logits=True)
    res["sparsity"] = sparsity(model)["total"]
    return res


def prune_student(checkpoint: str, out_dir: str, pattern: "str | Pattern", cfg: PruneConfig = PruneConfig(),
                  *, data: str | None = None) -> dict:
    """Prune the student ``checkpoint`` (``student.pt``) to ``pattern`` and write ``out_dir``
    with ``student.pt`` (meta: pattern, saliency, classes), ``data.npz`` (the splits, so the
    folder is a student folder for ``quant.sweep`` / ``explore``) and ``metrics.json``.

    ``data``: splits file (default ``data.npz`` beside the checkpoint). ``cfg.epochs=0``:
    one-shot pruning; otherwise SR-STE fine-tuning. Returns the metrics dict (``dense`` = the
    input's).
    """
    pattern = parse_pattern(pattern)
    saliency, classes, epochs, skip = cfg.saliency, cfg.classes, cfg.epochs, cfg.skip
    ckpt = Path(checkpoint)
    model = load_checkpoint(ckpt)
    data_path = Path(data) if data else ckpt.parent / "data.npz"
    if not data_path.exists():
        raise FileNotFoundError(f"splits file {data_path} not found: pass --data DIR/data.npz (written by "
                                f"`paretofab distill -o DIR`)")
    meta = dict(model.meta)
    sp = load_splits(data_path)
    cls = resolve_classes(classes, sp["y_train"])
    torch.manual_seed(cfg.seed)
    dense = evaluate(model, sp, cls)
    if epochs == 0:
        prune(model, pattern, saliency=saliency, data=(sp["x_train"], sp["y_train"]), classes=cls, skip=skip)
    else:
        finetune(model, pattern, sp, cfg)
    for name, mod in prunable_layers(model, skip):
        check_pattern(mod.weight, pattern, name)
    res = {**evaluate(model, sp, cls), "pattern": str(pattern), "saliency": saliency,
           "classes": None if cls is None else cls.tolist(), "classes_spec": classes,
           "method": "one-shot" if epochs == 0 else f"SR-STE {epochs} epochs", "skip": list(skip),
           "layer_sparsity": sparsity(model, skip), "dense": dense, "checkpoint": str(ckpt)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "student.pt", model, {**meta, "pruned": str(pattern), "saliency": saliency,
                                                "prune_method": res["method"], "classes": res["classes"]})
    if data_path.resolve() != (out / "data.npz").resolve():
        shutil.copy(data_path, out / "data.npz")
    (out / "metrics.json").write_text(json.dumps(res, indent=2, default=float))
    return res
