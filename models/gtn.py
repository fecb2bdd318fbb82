"""Generic Teacher Network (GTN; Binici, Wu & Mitra, "Generalizing Teacher Networks for Effective
Knowledge Distillation Across Student Architectures", BMVC 2024) on the digits workload.

One teacher is trained once, KD-aware, for a whole pool of student sizes (:mod:`models.gtn_pool`):
at every step the pool's weight-sharing supernet is sandwich-sampled (largest, smallest and
``samples`` random members), every sampled subnet is distilled from the teacher, and the teacher's
objective adds how far the sampled students are from it::

    teacher:   CE(t, y) + λ · mean_s T²·KL(softmax(t/T) ‖ softmax(s/T))        (s detached)
    supernet:  mean_s [ α·CE(s, y) + (1-α)·T²·KL(softmax(t/T) ‖ softmax(s/T)) ]  (t detached)

so the KD loss of the students is back-propagated into the teacher with weight λ (``kd_weight``),
pulling it towards outputs the pool can follow; with λ = 0 the teacher trains exactly as the
standard one. Sampling is the issue's sandwich rule, not the paper's learned architecture
distribution. A teacher *customized* for one student (SFTN-style) is the same training with a
one-member pool. Students are then distilled from scratch, standalone, from a frozen teacher
(Hinton KD: α·CE + (1-α)·T²·KL); :mod:`models.gtn_eval` runs the whole comparison.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .digits_data import DigitsData
from .gtn_pool import TEACHER, DigitsCNN, StudentSpec, Supernet, sandwich

__all__ = ["GTNConfig", "softmax_kl", "kd_loss", "gtn_losses", "teacher_step", "gtn_step",
           "train_teacher", "train_gtn", "train_student", "logits_of", "accuracy"]


@dataclass(frozen=True)
class GTNConfig:
    """Training hyper-parameters of every model of a GTN comparison.

    Attributes
    ----------
    teacher_epochs : int
        Epochs of each teacher (standard, generic and custom alike: the same budget); the epoch of
        best validation accuracy is kept.
    student_epochs : int
        Upper bound on a student's epochs (early stopping on validation accuracy).
    patience : int
        Student epochs without a validation gain before stopping.
    batch_size : int
        Images per step.
    lr : float
        Adam learning rate of every model (and of the supernet).
    alpha : float
        Weight of the label cross-entropy in a student's loss, in [0, 1] (1: no KD).
    temperature : float
        KD temperature T (> 0).
    kd_weight : float
        λ, the weight of the students' KD loss in the teacher's objective (>= 0; 0: standard).
    samples : int
        Random pool members per step besides the largest and smallest (>= 0).
    teacher : str
        The teachers' architecture, ``dDwW``.
    """

    teacher_epochs: int = 40
    student_epochs: int = 80
    patience: int = 15
    batch_size: int = 64
    lr: float = 2e-3
    alpha: float = 0.5
    temperature: float = 4.0
    kd_weight: float = 1.0
    samples: int = 2
    teacher: str = TEACHER

    def check(self) -> None:
        """Refuse values no training can use (``ValueError``, one line naming the fix)."""
        if min(self.teacher_epochs, self.student_epochs, self.patience, self.batch_size) < 1:
            raise ValueError("epochs, patience and batch size must be >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha {self.alpha} must lie in [0, 1]")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and learning rate must be > 0")
        if self.kd_weight < 0 or self.samples < 0:
            raise ValueError("the KD-aware weight and the sample count must be >= 0")
        StudentSpec.parse(self.teacher)

    def to_dict(self) -> dict:
        return asdict(self)


# ---- losses ----------------------------------------------------------------------------------------

def softmax_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """``T² · mean over the batch of KL(softmax(t/T) ‖ softmax(s/T))`` (nats); gradients flow into
    whichever argument is not detached."""
    log_pt = F.log_softmax(teacher_logits / temperature, dim=1)
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    return temperature ** 2 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()


def kd_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float, temperature: float) -> torch.Tensor:
    """Hinton KD, ``α·CE(s, y) + (1-α)·T²·KL(t ‖ s)``; plain cross-entropy without a teacher. The
    teacher's logits are detached (a student's loss never trains its teacher)."""
    ce = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return ce
    return alpha * ce + (1 - alpha) * softmax_kl(teacher_logits.detach(), student_logits, temperature)


def gtn_losses(teacher_logits: torch.Tensor, student_logits: list[torch.Tensor], labels: torch.Tensor,
               cfg: GTNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The two GTN objectives of one batch.

    Parameters
    ----------
    teacher_logits : Tensor (B, 10)
        The teacher's logits, attached to its graph.
    student_logits : list of Tensor (B, 10)
        Logits of the sampled subnets, attached to the supernet's graph.
    labels : Tensor (B,)
    cfg : GTNConfig
        ``kd_weight`` (λ), ``alpha`` and ``temperature``.

    Returns
    -------
    teacher_loss, student_loss : Tensor
        ``CE(t, y) + λ·mean_s T²KL(t ‖ s.detach())`` (reaches only the teacher) and
        ``mean_s kd_loss(s, y, t)`` (reaches only the supernet).
    """
    task = F.cross_entropy(teacher_logits, labels)
    cond = torch.stack([softmax_kl(teacher_logits, s.detach(), cfg.temperature) for s in student_logits]).mean()
    teacher_loss = task + cfg.kd_weight * cond if cfg.kd_weight else task
    student_loss = torch.stack([kd_loss(s, labels, teacher_logits, cfg.alpha, cfg.temperature)
                                for s in student_logits]).mean()
    return teacher_loss, student_loss


# ---- steps -----------------------------------------------------------------------------------------

def teacher_step(teacher: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step of standard teacher training (cross-entropy only); returns the loss."""
    loss = F.cross_entropy(teacher(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def gtn_step(teacher: nn.Module, supernet: Supernet, opt_t: torch.optim.Optimizer,
             opt_s: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg: GTNConfig,
             gen: torch.Generator) -> tuple[float, float, list[StudentSpec]]:
    """One GTN step: sandwich-sample the supernet, update the supernet by KD from the teacher and
    the teacher by its KD-aware objective (:func:`gtn_losses`).

    Returns
    -------
    teacher_loss, student_loss : float
    sampled : list of StudentSpec
    """
    sampled = sandwich(supernet.pool, cfg.samples, gen)
    t = teacher(x)
    s = [supernet(x, spec) for spec in sampled]
    lt, ls = gtn_losses(t, s, y, cfg)
    opt_t.zero_grad()
    opt_s.zero_grad()
    (lt + ls).backward()  # disjoint graphs by construction: lt reaches the teacher, ls the supernet
    opt_t.step()
    opt_s.step()
    return float(lt.detach()), float(ls.detach()), sampled


# ---- training --------------------------------------------------------------------------------------

def _batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``(N, 10)`` of ``model`` (eval mode) on images ``x``."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy (fraction) of ``model`` on ``(x, y)``."""
    return float((logits_of(model, x).argmax(1) == y).float().mean())


def _fit_best(model: nn.Module, data: DigitsData, cfg: GTNConfig, seed: int, epochs: int,
              step: Callable[[torch.Tensor], None], patience: int | None = None,
              also_train: tuple[nn.Module, ...] = ()) -> tuple[float, int]:
    """``epochs`` epochs of ``step(batch indices)`` over the training images (batch order from
    ``seed``), keeping ``model``'s epoch of best validation accuracy (early stop after
    ``patience`` epochs without a gain; None: never). Leaves ``model`` at that epoch in eval
    mode; returns (its validation accuracy, its epoch, 1-based)."""
    gen = torch.Generator().manual_seed(seed)
    best = (-1.0, 0, None)
    for epoch in range(1, epochs + 1):
        for m in (model, *also_train):
            m.train()
        for idx in _batches(len(data.x_train), cfg.batch_size, gen):
            step(idx)
        val = accuracy(model, data.x_val, data.y_val)
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))
        elif patience is not None and epoch - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return best[0], best[1]


def _info(model: nn.Module, data: DigitsData, val: float, epoch: int, t0: float) -> dict:
    return {"val_accuracy": val, "epoch": epoch, "cpu_seconds": time.process_time() - t0,
            "test_accuracy": accuracy(model, data.x_test, data.y_test)}


def _teacher(cfg: GTNConfig) -> DigitsCNN:
    spec = StudentSpec.parse(cfg.teacher)
    return DigitsCNN(spec.depth, spec.width)


def train_teacher(data: DigitsData, cfg: GTNConfig, seed: int) -> tuple[DigitsCNN, dict]:
    """The standard teacher: cross-entropy only, ``cfg.teacher_epochs`` epochs, the epoch of best
    validation accuracy kept.

    Returns
    -------
    teacher : DigitsCNN
        In eval mode.
    info : dict
        ``val_accuracy``, ``test_accuracy`` (fractions), ``epoch`` (kept, 1-based),
        ``cpu_seconds`` (process CPU time of the training, s).
    """
    t0 = time.process_time()
    torch.manual_seed(seed)
    teacher = _teacher(cfg)
    opt = torch.optim.Adam(teacher.parameters(), lr=cfg.lr)
    val, epoch = _fit_best(teacher, data, cfg, seed, cfg.teacher_epochs,
                           lambda idx: teacher_step(teacher, opt, data.x_train[idx], data.y_train[idx]))
    return teacher, _info(teacher, data, val, epoch, t0)


def train_gtn(data: DigitsData, pool: tuple[StudentSpec, ...], cfg: GTNConfig,
              seed: int) -> tuple[DigitsCNN, Supernet, dict]:
    """A KD-aware teacher for ``pool`` (the generic teacher; with a one-member pool, the teacher
    customized for that student), trained jointly with the pool's supernet by :func:`gtn_step`.

    The teacher is initialized exactly as :func:`train_teacher`'s for the same seed (and sees the
    same batches), so the two differ only by the KD-aware term. The epoch of best teacher
    validation accuracy is kept.

    Returns
    -------
    teacher : DigitsCNN
    supernet : Supernet
        At the end of training (its subnets are not the evaluated students: those are trained
        standalone from scratch).
    info : dict
        As :func:`train_teacher`, plus ``subnet_val_accuracy`` (name -> fraction, at the end).
    """
    t0 = time.process_time()
    torch.manual_seed(seed)
    teacher = _teacher(cfg)
    supernet = Supernet(pool)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=cfg.lr)
    opt_s = torch.optim.Adam(supernet.parameters(), lr=cfg.lr)
    sample_gen = torch.Generator().manual_seed(seed + 1)
    val, epoch = _fit_best(teacher, data, cfg, seed, cfg.teacher_epochs,
                           lambda idx: gtn_step(teacher, supernet, opt_t, opt_s, data.x_train[idx],
                                                data.y_train[idx], cfg, sample_gen),
                           also_train=(supernet,))
    supernet.eval()
    with torch.no_grad():
        sub = {s.name: float((supernet(data.x_val, s).argmax(1) == data.y_val).float().mean()) for s in pool}
    return teacher, supernet, {**_info(teacher, data, val, epoch, t0), "subnet_val_accuracy": sub}


def train_student(data: DigitsData, spec: StudentSpec, teacher_logits: torch.Tensor | None,
                  cfg: GTNConfig, seed: int) -> tuple[DigitsCNN, dict]:
    """A standalone student trained from scratch: KD from a frozen teacher's logits on the training
    images (:func:`kd_loss`), or cross-entropy alone (``teacher_logits=None``); early stopping on
    validation accuracy.

    The same ``seed`` gives the same initial weights and batch order whatever the teacher, so
    students of different teachers differ only by what they were taught.

    Parameters
    ----------
    teacher_logits : Tensor (N_train, 10) or None
        :func:`logits_of` the teacher on ``data.x_train``.

    Returns
    -------
    student : DigitsCNN
        The epoch of best validation accuracy, eval mode.
    info : dict
        ``val_accuracy``, ``test_accuracy``, ``epoch``, ``cpu_seconds`` (s).
    """
    if teacher_logits is not None and teacher_logits.shape != (len(data.x_train), 10):
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)}: give the teacher's logits on "
                         f"the {len(data.x_train)} training images")
    t0 = time.process_time()
    torch.manual_seed(seed)
    student = DigitsCNN(spec.depth, spec.width)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)

    def step(idx: torch.Tensor) -> None:
        t = None if teacher_logits is None else teacher_logits[idx]
        loss = kd_loss(student(data.x_train[idx]), data.y_train[idx], t, cfg.alpha, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()

    val, epoch = _fit_best(student, data, cfg, seed, cfg.student_epochs, step, patience=cfg.patience)
    return student, _info(student, data, val, epoch, t0)
