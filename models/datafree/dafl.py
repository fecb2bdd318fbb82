"""DAFL (Chen et al., "Data-Free Learning of Student Networks", ICCV 2019): a generator trained
against the frozen teacher so that its images look like training data to the teacher, while a
student is distilled on the same images. The generator minimizes::

    L_G = CE(t, argmax t)                 one-hot: confident teacher outputs
          − a_act · mean |f|              activation: large teacher features f (penultimate)
          + a_ie · Σ_c p̄_c log p̄_c        information entropy: p̄ = batch-mean softmax(t), kept
                                          balanced across classes (maximum entropy)

and, at every iteration, the student takes one KD step on the (detached) generated batch. The
weights default to the paper's (1, 0.1, 5). The generator here draws 8×8 images in [0, 1].
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..gtn import accuracy
from .kd import kd_step

__all__ = ["Generator", "dafl_losses", "DAFLConfig", "frozen", "start_generator", "train_dafl"]


class Generator(nn.Module):
    """``z (B, latent)`` → linear → ``width``×4×4 → BN → upsample ×2 → conv3×3-BN-LeakyReLU →
    conv3×3(1) → sigmoid: images ``(B, 1, 8, 8)`` in [0, 1].

    Parameters
    ----------
    latent : int
        Noise dimension.
    width : int
        Channels of the hidden maps.
    """

    def __init__(self, latent: int = 64, width: int = 64) -> None:
        super().__init__()
        self.latent, self.width = latent, width
        self.fc = nn.Linear(latent, width * 16)
        self.net = nn.Sequential(nn.BatchNorm2d(width), nn.Upsample(scale_factor=2),
                                 nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
                                 nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 1, 8, 8)`` of noise ``z (B, latent)``."""
        return self.net(self.fc(z).view(-1, self.width, 4, 4))


def dafl_losses(logits: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three DAFL generator losses of one batch.

    Parameters
    ----------
    logits : Tensor (B, C)
        Teacher logits of generated images.
    features : Tensor (B, F)
        Teacher penultimate features of the same images.

    Returns
    -------
    dict
        ``onehot`` = CE(logits, argmax logits) (nats), ``activation`` = −mean |features|,
        ``entropy`` = Σ_c p̄_c ln p̄_c (= −H(p̄), nats; minimum −ln C for a uniform class mix).
    """
    p_mean = F.softmax(logits, dim=1).mean(0)
    return {"onehot": F.cross_entropy(logits, logits.argmax(1)),
            "activation": -features.abs().mean(),
            "entropy": (p_mean * torch.log(p_mean.clamp_min(1e-12))).sum()}


@dataclass(frozen=True)
class DAFLConfig:
    """Hyper-parameters of :func:`train_dafl`.

    Attributes
    ----------
    iterations : int
        Generator + student steps.
    batch_size : int
        Generated images per step.
    lr_g, lr_s : float
        Adam learning rates of generator and student.
    onehot, activation, entropy : float
        Loss weights (paper: 1, 0.1, 5).
    temperature : float
        KD temperature of the student step.
    eval_every : int
        Iterations between points of the reporting curve.
    """

    iterations: int = 1500
    batch_size: int = 128
    lr_g: float = 1e-3
    lr_s: float = 2e-3
    onehot: float = 1.0
    activation: float = 0.1
    entropy: float = 5.0
    temperature: float = 4.0
    eval_every: int = 50

    def check(self) -> None:
        """``ValueError`` (one line) on values no training can use."""
        if min(self.iterations, self.eval_every) < 1 or self.batch_size < 2:
            raise ValueError("DAFL iterations must be >= 1 and its batch >= 2 images")
        if min(self.lr_g, self.lr_s, self.temperature) <= 0 or min(self.onehot, self.activation, self.entropy) < 0:
            raise ValueError("DAFL learning rates and temperature must be > 0, loss weights >= 0")


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Inside, no parameter of ``modules`` requires gradients (inputs still get theirs); after,
    every one does again."""
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def start_generator(cfg: DAFLConfig, student: nn.Module,
                    seed: int) -> tuple[Generator, torch.Generator, torch.optim.Adam, torch.optim.Adam]:
    """A :class:`Generator` initialized from ``seed``, the noise stream (seeded ``seed``) and the
    Adam optimizers of generator (``cfg.lr_g``) and student (``cfg.lr_s``)."""
    torch.manual_seed(seed)
    gen_model = Generator()
    noise = torch.Generator().manual_seed(seed)
    return (gen_model, noise, torch.optim.Adam(gen_model.parameters(), lr=cfg.lr_g),
            torch.optim.Adam(student.parameters(), lr=cfg.lr_s))


def train_dafl(teacher: nn.Module, student: nn.Module, cfg: DAFLConfig, seed: int,
               test: tuple[torch.Tensor, torch.Tensor] | None = None,
               mix: torch.Tensor | None = None, history: list[dict] | None = None,
               replay=None) -> tuple[Generator, list[float]]:
    """Train a generator against ``teacher`` (frozen, eval mode, with ``features``/``head``) and
    distill ``student`` in place on its images.

    Parameters
    ----------
    teacher, student : nn.Module
    cfg : DAFLConfig
    seed : int
        Generator and student initial state, noise draws.
    test : (Tensor, Tensor), optional
        Test split for the reporting curve (accuracy every ``cfg.eval_every`` iterations).
    mix : Tensor (M, 1, 8, 8), optional
        Side-information images added to every student batch.
    history : list, optional
        Receives each iteration's generator losses (floats).
    replay : VAEReplay or StoreReplay, optional
        Rehearsal (:mod:`models.datafree.replay`): before each student step a batch of the same
        size is drawn from it and added (with the teacher's logits), then it observes the new
        batch.

    Returns
    -------
    generator : Generator
        Eval mode.
    curve : list of float
        Test accuracies (empty without ``test``).
    """
    cfg.check()
    gen_model, noise, opt_g, opt_s = start_generator(cfg, student, seed)
    teacher.eval()
    curve = []
    with frozen(teacher):
        t_mix = teacher(mix) if mix is not None else None
        for it in range(1, cfg.iterations + 1):
            gen_model.train()
            x = gen_model(torch.randn(cfg.batch_size, gen_model.latent, generator=noise))
            feats = teacher.features(x)
            logits = teacher.head(feats)
            parts = dafl_losses(logits, feats)
            loss_g = cfg.onehot * parts["onehot"] + cfg.activation * parts["activation"] + cfg.entropy * parts["entropy"]
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            if history is not None:
                history.append({k: float(v.detach()) for k, v in parts.items()})
            student.train()
            xb, tb = x.detach(), logits.detach()
            if mix is not None:
                xb, tb = torch.cat([xb, mix]), torch.cat([tb, t_mix])
            if replay is not None:
                old = replay.sample(cfg.batch_size, noise)
                replay.observe(x.detach())
                if old is not None:
                    with torch.no_grad():
                        xb, tb = torch.cat([xb, old]), torch.cat([tb, teacher(old)])
            kd_step(student, opt_s, xb, tb, cfg.temperature)
            if test is not None and it % cfg.eval_every == 0:
                curve.append(accuracy(student, *test))
    gen_model.eval()
    student.eval()
    return gen_model, curve
