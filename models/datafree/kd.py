"""KD of a student on synthetic images only: the student matches the teacher's softened outputs
(``T²·KL(softmax(t/T) ‖ softmax(s/T))``, :func:`models.gtn.softmax_kl`) on a fixed synthetic set,
for a fixed number of epochs (no validation data: nothing is selected by accuracy). The test
accuracy after every epoch is recorded as a curve for reporting only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..gtn import accuracy, logits_of, softmax_kl

__all__ = ["KDConfig", "kd_step", "distill_on_set", "curve_stats"]


@dataclass(frozen=True)
class KDConfig:
    """Hyper-parameters of the student's distillation on synthetic samples.

    Attributes
    ----------
    epochs : int
        Passes over the synthetic set (fixed: no early stopping without data).
    batch_size : int
        Images per step.
    lr : float
        Adam learning rate.
    temperature : float
        KD temperature T (> 0).
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    temperature: float = 4.0

    def check(self) -> None:
        """``ValueError`` (one line) on values no training can use."""
        if min(self.epochs, self.batch_size) < 1 or self.lr <= 0 or self.temperature <= 0:
            raise ValueError("KD epochs and batch size must be >= 1, learning rate and temperature > 0")


def kd_step(student: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, t_logits: torch.Tensor,
            temperature: float) -> None:
    """One step of ``opt`` on ``softmax_kl(t_logits, student(x), temperature)`` (the KD step of
    every data-free method)."""
    loss = softmax_kl(t_logits, student(x), temperature)
    opt.zero_grad()
    loss.backward()
    opt.step()


def distill_on_set(student: nn.Module, teacher: nn.Module, x: torch.Tensor, cfg: KDConfig, seed: int,
                   test: tuple[torch.Tensor, torch.Tensor] | None = None,
                   mix: torch.Tensor | None = None) -> list[float]:
    """Train ``student`` in place by KD from ``teacher`` on images ``x`` only.

    Parameters
    ----------
    student, teacher : nn.Module
        The teacher is evaluated once (eval mode) on every image; its weights are not touched.
    x : Tensor (N, 1, 8, 8)
        Synthetic images in [0, 1].
    cfg : KDConfig
    seed : int
        Batch order.
    test : (Tensor, Tensor), optional
        Test images and labels: the accuracy after every epoch is returned (reporting only).
    mix : Tensor (M, 1, 8, 8), optional
        Side-information images (condensed or few-shot) added to every batch, whole (M small).

    Returns
    -------
    list of float
        Test accuracy (fraction) after every epoch (empty without ``test``).
    """
    cfg.check()
    t_x = logits_of(teacher, x)
    t_mix = logits_of(teacher, mix) if mix is not None else None
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    curve = []
    for _ in range(cfg.epochs):
        student.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb, tb = x[idx], t_x[idx]
            if mix is not None:
                xb, tb = torch.cat([xb, mix]), torch.cat([tb, t_mix])
            kd_step(student, opt, xb, tb, cfg.temperature)
        if test is not None:
            curve.append(accuracy(student, *test))
    student.eval()
    return curve


def curve_stats(curve: list[float]) -> dict:
    """``final`` (last point), ``best`` and ``worst_drop`` (largest fall from an earlier peak) of an
    accuracy curve (fractions; NaN when empty)."""
    if not curve:
        return {"final": float("nan"), "best": float("nan"), "worst_drop": float("nan")}
    peak, drop = curve[0], 0.0
    for a in curve:
        peak = max(peak, a)
        drop = max(drop, peak - a)
    return {"final": curve[-1], "best": max(curve), "worst_drop": drop}
