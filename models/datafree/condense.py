"""Side information for inversion: dataset condensation by distribution matching (DM; Zhao &
Bilen, WACV 2023) and few-shot draws of real samples.

DM learns ``K`` synthetic images per class whose mean embedding matches the class's real mean
embedding under randomly initialized networks, a fresh network every iteration::

    L(S) = Σ_c ‖ mean_{x ∈ real_c} ψ_θ(x) − mean_{s ∈ S_c} ψ_θ(s) ‖²,   θ ~ random init

``ψ_θ``: :func:`embedding_net` (two conv3×3-InstanceNorm-ReLU-avgpool blocks, 128 features). The
synthetic images start from random real images of their class and stay in [0, 1]. These functions
read only the images they are handed.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["embedding_net", "dm_loss", "condense", "few_shot", "by_class"]


def embedding_net(seed: int, width: int = 32) -> nn.Sequential:
    """A randomly initialized embedding ``(B, 1, 8, 8) -> (B, 4·width)`` (seeded, eval mode, no
    gradients on its weights)."""
    torch.manual_seed(seed)

    def block(cin: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, width, 3, padding=1), nn.GroupNorm(width, width, affine=True),
                nn.ReLU(), nn.AvgPool2d(2)]

    net = nn.Sequential(*block(1), *block(width), nn.Flatten()).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def by_class(x: torch.Tensor, y: torch.Tensor, classes: int = 10) -> list[torch.Tensor]:
    """Images of each class ``0..classes-1``, in order."""
    return [x[y == c] for c in range(classes)]


def dm_loss(real: list[torch.Tensor], syn: list[torch.Tensor], net: nn.Module) -> torch.Tensor:
    """``Σ_c ‖mean ψ(real_c) − mean ψ(syn_c)‖²`` under embedding ``net`` (summed over classes and
    features)."""
    terms = [((net(r).mean(0) - net(s).mean(0)) ** 2).sum() for r, s in zip(real, syn)]
    return torch.stack(terms).sum()


def condense(x: torch.Tensor, y: torch.Tensor, per_class: int, iterations: int, seed: int,
             lr: float = 0.02, real_batch: int = 128, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Condense ``(x, y)`` to ``per_class`` images per class by distribution matching.

    Parameters
    ----------
    x : Tensor (N, 1, 8, 8)
        Real images in [0, 1] (the only data read).
    y : Tensor (N,)
        Their labels; every class needs at least ``per_class`` images.
    per_class : int
        K, images per class (>= 1).
    iterations : int
        Adam steps, each under a fresh random embedding (seeds ``seed·10⁶ + i``).
    seed : int
        Initial draw of real images and the embeddings.
    lr : float
        Adam learning rate on the pixels (pixel units; the DM paper's SGD at lr 1, momentum 0.5
        reached a 4× higher held-out objective at one image per class here).
    real_batch : int
        Real images per class drawn at each step.

    Returns
    -------
    images : Tensor (classes·K, 1, 8, 8)
        Class-major, in [0, 1].
    labels : Tensor (classes·K,)
    """
    if per_class < 1 or iterations < 0:
        raise ValueError(f"condense to >= 1 image per class (got {per_class}) with >= 0 iterations")
    real = by_class(x, y, classes)
    gen = torch.Generator().manual_seed(seed)
    init = few_shot(x, y, per_class, seed, classes)[0]
    syn = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([syn], lr=lr)
    for i in range(iterations):
        net = embedding_net(seed * 1_000_000 + i)
        rb = [r[torch.randperm(len(r), generator=gen)[:real_batch]] for r in real]
        loss = dm_loss(rb, list(syn.view(classes, per_class, 1, 8, 8)), net)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            syn.clamp_(0, 1)
    return syn.detach(), torch.arange(classes).repeat_interleave(per_class)


def few_shot(x: torch.Tensor, y: torch.Tensor, per_class: int, seed: int,
             classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` real images of every class drawn at random (seeded), class-major.

    Raises
    ------
    ValueError
        A class has fewer than ``per_class`` images.
    """
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c, r in enumerate(by_class(x, y, classes)):
        if len(r) < per_class:
            raise ValueError(f"class {c} has {len(r)} images, fewer than --per-class {per_class}")
        picks.append(r[torch.randperm(len(r), generator=gen)[:per_class]])
    return torch.cat(picks), torch.arange(classes).repeat_interleave(per_class)
