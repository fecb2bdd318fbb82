"""DeepInversion-style model inversion (Yin et al., CVPR 2020) of a BatchNorm teacher: optimize
the pixels of a batch so that the teacher classifies them as chosen labels while the statistics
each BatchNorm layer sees match its running statistics, under image priors::

    L(x) = CE(T(x), y) + a_bn · Σ_l (‖μ_l(x) − μ̂_l‖₂ + ‖σ²_l(x) − σ̂²_l‖₂)
           + a_tv · TV(x) + a_l2 · mean(x²) [+ a_feat · feature matching]

``μ_l, σ²_l``: per-channel mean and (biased) variance over batch and positions of the input of BN
layer ``l``; ``μ̂_l, σ̂²_l``: its running statistics. Pixels stay in [0, 1] (the digits' range,
clamped after every step). The optional feature-matching term pulls each class's mean teacher
feature toward a target (the teacher's features of condensed or few-shot samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["bn_stat_loss", "BNStatLoss", "total_variation", "InversionConfig", "deep_inversion",
           "balanced_labels", "class_feature_loss"]


def bn_stat_loss(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> torch.Tensor:
    """``‖μ(x) − running_mean‖₂ + ‖σ²(x) − running_var‖₂`` of activations ``x (B, C, H, W)``;
    ``μ, σ²``: per-channel mean and biased variance over batch and positions."""
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    return torch.linalg.vector_norm(mean - running_mean) + torch.linalg.vector_norm(var - running_var)


class BNStatLoss:
    """Context manager hooking every ``BatchNorm2d`` of ``model``: each forward pass inside adds
    :func:`bn_stat_loss` of every BN layer's input to :attr:`terms` (graph attached).

    Parameters
    ----------
    model : nn.Module
        Its BN layers' running statistics are the targets (use the model in eval mode).
    """

    def __init__(self, model: nn.Module) -> None:
        self.bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.bns:
            raise ValueError("the teacher has no BatchNorm2d layer: BN-statistic matching needs one "
                             "(train a BNTeacher)")
        self.terms: list[torch.Tensor] = []
        self._hooks: list = []

    def _hook(self, module: nn.BatchNorm2d, inputs: tuple, output: torch.Tensor) -> None:
        self.terms.append(bn_stat_loss(inputs[0], module.running_mean, module.running_var))

    def __enter__(self) -> "BNStatLoss":
        self._hooks = [bn.register_forward_hook(self._hook) for bn in self.bns]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def pop(self) -> torch.Tensor:
        """Sum of the terms gathered since the last call (0 if none), and forget them."""
        total = torch.stack(self.terms).sum() if self.terms else torch.zeros(())
        self.terms = []
        return total


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between horizontally and vertically adjacent pixels (anisotropic
    TV of ``(B, C, H, W)``, averaged over all pairs)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def balanced_labels(n: int, classes: int = 10) -> torch.Tensor:
    """``n`` labels cycling 0, 1, …, classes−1 (as balanced as ``n`` allows)."""
    return torch.arange(n) % classes


def class_feature_loss(features: torch.Tensor, labels: torch.Tensor,
                       targets: dict[int, torch.Tensor]) -> torch.Tensor:
    """Mean over the classes present in ``labels`` and in ``targets`` of the mean squared
    difference between the class's mean feature and its target feature (0 if none)."""
    terms = [((features[labels == c].mean(0) - t) ** 2).mean() for c, t in targets.items()
             if bool((labels == c).any())]
    return torch.stack(terms).mean() if terms else torch.zeros(())


@dataclass(frozen=True)
class InversionConfig:
    """Hyper-parameters of :func:`deep_inversion`.

    Attributes
    ----------
    steps : int
        Adam steps per batch.
    lr : float
        Adam learning rate on the pixels (pixel units, range [0, 1]).
    bn : float
        Weight of the BN-statistic loss.
    tv : float
        Weight of the total-variation prior.
    l2 : float
        Weight of the mean squared pixel prior.
    feat : float
        Weight of the class feature-matching term (used only when targets are given).
    """

    steps: int = 300
    lr: float = 0.05
    bn: float = 1.0
    tv: float = 0.05
    l2: float = 0.0
    feat: float = 1.0

    def check(self) -> None:
        """``ValueError`` (one line) on values no inversion can use."""
        if self.steps < 1 or self.lr <= 0:
            raise ValueError("inversion steps must be >= 1 and its learning rate > 0")
        if min(self.bn, self.tv, self.l2, self.feat) < 0:
            raise ValueError("inversion loss weights must be >= 0")


def deep_inversion(teacher: nn.Module, labels: torch.Tensor, cfg: InversionConfig, seed: int,
                   init: torch.Tensor | None = None, feature_targets: dict[int, torch.Tensor] | None = None,
                   history: list[dict] | None = None) -> torch.Tensor:
    """Synthesize one batch of images the teacher assigns to ``labels``.

    Parameters
    ----------
    teacher : nn.Module
        With BatchNorm layers and a ``features(x)`` method when ``feature_targets`` is given; put
        in eval mode, its weights untouched.
    labels : Tensor (B,)
        Chosen classes (B >= 2: batch statistics need two images).
    cfg : InversionConfig
    seed : int
        Seeds the initial pixels (uniform in [0, 1]; or Gaussian noise σ = 0.1 around ``init``).
    init : Tensor (B, 1, 8, 8), optional
        Starting images (condensed or few-shot samples of the same labels).
    feature_targets : dict class -> Tensor (F,), optional
        Target mean teacher feature per class (:func:`class_feature_loss`, weight ``cfg.feat``).
    history : list, optional
        Receives one dict per step: ``bn``, ``ce``, ``tv``, ``feat`` (floats, before the step).

    Returns
    -------
    Tensor (B, 1, 8, 8)
        Detached images in [0, 1].
    """
    cfg.check()
    if len(labels) < 2:
        raise ValueError("invert at least two images per batch (batch statistics need two)")
    gen = torch.Generator().manual_seed(seed)
    shape = (len(labels), 1, 8, 8)
    if init is None:
        x0 = torch.rand(shape, generator=gen)
    else:
        x0 = (init + 0.1 * torch.randn(shape, generator=gen)).clamp(0, 1)
    x = x0.clone().requires_grad_(True)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    try:
        with BNStatLoss(teacher) as stats:
            for _ in range(cfg.steps):
                feats = teacher.features(x) if feature_targets else None
                logits = teacher.head(feats) if feature_targets else teacher(x)
                bn = stats.pop()
                ce = F.cross_entropy(logits, labels)
                tv = total_variation(x)
                fm = class_feature_loss(feats, labels, feature_targets) if feature_targets else torch.zeros(())
                loss = ce + cfg.bn * bn + cfg.tv * tv + cfg.l2 * (x ** 2).mean() + cfg.feat * fm
                if history is not None:
                    history.append({k: float(v.detach()) for k, v in (("bn", bn), ("ce", ce), ("tv", tv), ("feat", fm))})
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
    finally:
        for p in teacher.parameters():
            p.requires_grad_(True)
    return x.detach()
