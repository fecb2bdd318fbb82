"""Data-free KD with a dynamic sample collection (issue 18, item 4): a generator synthesizes images
that match the teacher's BatchNorm statistics (the real data's statistics, as the teacher saw them)
while seeking maximum information gain, i.e. images on which the student still disagrees with the
teacher; every generated batch enters a bounded collection that evolves over time, and the student
is distilled on the new batch plus a draw from the collection (so it keeps rehearsing past
samples while the generator drifts). The generator minimizes::

    L_G = a_bn · Σ_l (‖μ_l(x) − μ̂_l‖₂ + ‖σ²_l(x) − σ̂²_l‖₂)     BN statistics (inversion.BNStatLoss)
          + a_oh · CE(t, argmax t) + a_ie · Σ_c p̄_c log p̄_c      DAFL one-hot and class balance
          [− a_act · mean |f|]                                   DAFL activation (off by default)
          − a_ig · mean JS(softmax t ‖ softmax s)                information gain (adversarial)

with ``t``, ``s`` the teacher's and the student's logits of the generated images ``x``. The
adversarial disagreement term follows data-free adversarial distillation (Fang et al., DFAD 2019;
Micaelli & Storkey, 2019); Jensen–Shannon is used because it is bounded (≤ ln 2), so the
generator cannot win by driving the student's logits to extremes.

Replacement policy of :class:`DynamicCollection`: a new batch always enters whole; when the
collection is full it evicts the members on which the *current* student already agrees with the
teacher most (lowest JS divergence, ties by age, oldest first). Why: a sample the student already
matches gives KD almost no gradient, so it only costs memory; the samples the student still gets
wrong are exactly what it would forget without rehearsal, and the newest batch (made to be
disagreed on) is never dropped before the student has trained on it. Memory stays bounded at
``capacity`` images and their teacher logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..gtn import accuracy
from .dafl import DAFLConfig, Generator, dafl_losses, frozen, start_generator
from .inversion import BNStatLoss
from .kd import kd_step

__all__ = ["js_divergence", "DynamicCollection", "DynamicConfig", "train_dynamic"]


def js_divergence(a_logits: torch.Tensor, b_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample Jensen–Shannon divergence ``(B,)`` (nats, in [0, ln 2]) between ``softmax(a)``
    and ``softmax(b)``: ``½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = (p + q) / 2``; gradients flow into
    both arguments."""
    log_p, log_q = F.log_softmax(a_logits, dim=1), F.log_softmax(b_logits, dim=1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
    return 0.5 * ((log_p.exp() * (log_p - log_m)).sum(1) + (log_q.exp() * (log_q - log_m)).sum(1))


class DynamicCollection:
    """A bounded, time-evolving collection of generated images with their teacher logits.

    Replacement policy (module docstring): each added batch enters whole; over ``capacity``, the
    members the given student agrees with the teacher on most (lowest :func:`js_divergence`) are
    evicted, the oldest first among equals.

    Parameters
    ----------
    capacity : int
        Most images held (>= 1).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"collection capacity {capacity}: hold at least one image")
        self.capacity = capacity
        self.images = torch.empty(0, 1, 8, 8)
        self.logits = torch.empty(0, 10)
        self.born = torch.empty(0, dtype=torch.long)  # the add() call (0, 1, …) that brought each member
        self.adds = 0

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def add(self, x: torch.Tensor, t_logits: torch.Tensor, student: nn.Module) -> torch.Tensor:
        """Add a batch ``x (B, 1, 8, 8)`` with its teacher logits ``(B, 10)`` (``B <= capacity``),
        evicting per the policy; returns the evicted images (possibly none)."""
        if len(x) > self.capacity:
            raise ValueError(f"a batch of {len(x)} images does not fit a collection of {self.capacity}")
        over = len(self) + len(x) - self.capacity
        evicted = self.images[:0]
        if over > 0:
            was = student.training
            student.eval()
            scores = js_divergence(self.logits, student(self.images))
            student.train(was)
            # lowest disagreement first; among equals the oldest (members are kept in arrival order)
            drop = torch.argsort(scores, stable=True)[:over]
            keep = torch.ones(len(self), dtype=torch.bool)
            keep[drop] = False
            evicted = self.images[drop]
            self.images, self.logits, self.born = self.images[keep], self.logits[keep], self.born[keep]
        self.images = torch.cat([self.images, x.detach()])
        self.logits = torch.cat([self.logits, t_logits.detach()])
        self.born = torch.cat([self.born, torch.full((len(x),), self.adds, dtype=torch.long)])
        self.adds += 1
        return evicted

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` members drawn uniformly with replacement, ``(images, teacher logits)``; None when
        empty."""
        if not len(self):
            return None
        idx = torch.randint(len(self), (n,), generator=gen)
        return self.images[idx], self.logits[idx]

    @property
    def nbytes(self) -> int:
        """float32 bytes held: images and their teacher logits."""
        return (self.images.numel() + self.logits.numel()) * 4


@dataclass(frozen=True)
class DynamicConfig(DAFLConfig):
    """Hyper-parameters of :func:`train_dynamic`: those of :class:`DAFLConfig` (iterations, batch
    size, learning rates, one-hot / activation / entropy weights, KD temperature, curve spacing;
    here 64 images a batch and no activation term by default), and

    Attributes
    ----------
    capacity : int
        Images the collection holds (>= ``batch_size``); the student draws ``batch_size`` of them
        beside each new batch.
    bn : float
        Weight of the BN-statistic term.
    gain : float
        Weight of the information-gain (student-teacher disagreement) term.
    """

    batch_size: int = 64
    activation: float = 0.0
    capacity: int = 1024
    bn: float = 1.0
    gain: float = 1.0

    def check(self) -> None:
        """``ValueError`` (one line) on values no training can use."""
        super().check()
        if self.capacity < self.batch_size or min(self.bn, self.gain) < 0:
            raise ValueError("the dynamic collection's capacity must be >= its batch, the BN and gain weights >= 0")


def train_dynamic(teacher: nn.Module, student: nn.Module, cfg: DynamicConfig, seed: int,
                  test: tuple[torch.Tensor, torch.Tensor] | None = None, mix: torch.Tensor | None = None,
                  history: list[dict] | None = None) -> tuple[Generator, DynamicCollection, list[float]]:
    """Train a generator against ``teacher`` (frozen, eval mode, with BatchNorm layers and
    ``features``/``head``) and ``student``, distilling ``student`` in place on the new batch plus
    an equal draw from the dynamic collection.

    Parameters
    ----------
    teacher, student : nn.Module
    cfg : DynamicConfig
    seed : int
        Generator initial state, noise and collection draws.
    test : (Tensor, Tensor), optional
        Test split for the reporting curve (accuracy every ``cfg.eval_every`` iterations).
    mix : Tensor (M, 1, 8, 8), optional
        Side-information images added to every student batch.
    history : list, optional
        Receives each iteration's generator terms (floats): ``bn``, ``onehot``, ``entropy``,
        ``gain`` (mean JS, nats) and ``size`` (collection images).

    Returns
    -------
    generator : Generator
        Eval mode.
    collection : DynamicCollection
    curve : list of float
        Test accuracies (empty without ``test``).
    """
    cfg.check()
    gen_model, noise, opt_g, opt_s = start_generator(cfg, student, seed)
    coll = DynamicCollection(cfg.capacity)
    teacher.eval()
    with torch.no_grad():
        t_mix = teacher(mix) if mix is not None else None
    curve = []
    with frozen(teacher), BNStatLoss(teacher) as stats:
        for it in range(1, cfg.iterations + 1):
            gen_model.train()
            student.eval()
            x = gen_model(torch.randn(cfg.batch_size, gen_model.latent, generator=noise))
            feats = teacher.features(x)
            logits = teacher.head(feats)
            bn = stats.pop()
            parts = dafl_losses(logits, feats)
            with frozen(student):
                gain = js_divergence(logits, student(x)).mean()
            loss_g = (cfg.bn * bn + cfg.onehot * parts["onehot"] + cfg.activation * parts["activation"]
                      + cfg.entropy * parts["entropy"] - cfg.gain * gain)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            student.train()
            xb, tb = x.detach(), logits.detach()
            old = coll.sample(cfg.batch_size, noise)
            if old is not None:
                xb, tb = torch.cat([xb, old[0]]), torch.cat([tb, old[1]])
            if mix is not None:
                xb, tb = torch.cat([xb, mix]), torch.cat([tb, t_mix])
            kd_step(student, opt_s, xb, tb, cfg.temperature)
            coll.add(x.detach(), logits.detach(), student)
            if history is not None:
                history.append({"bn": float(bn.detach()), "onehot": float(parts["onehot"].detach()),
                                "entropy": float(parts["entropy"].detach()), "gain": float(gain.detach()),
                                "size": len(coll)})
            if test is not None and it % cfg.eval_every == 0:
                curve.append(accuracy(student, *test))
    gen_model.eval()
    student.eval()
    return gen_model, coll, curve
