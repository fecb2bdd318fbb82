"""Generic Teacher Network (GTN; Binici, Wu & Mitra, "Generalizing Teacher Networks for Effective
Knowledge Distillation Across Student Architectures", BMVC 2024) on the digits and MAP workloads.

One teacher is trained once, KD-aware, for a whole pool of student sizes (:mod:`models.gtn_pool`,
:mod:`models.gtn_map`): at every step the pool's weight-sharing supernet is sandwich-sampled
(largest, smallest and ``samples`` random members), every sampled subnet is distilled from the
teacher, and the teacher's objective adds how far the sampled students are from it::

    teacher:   L(t, y) + λ · mean_s D_T(t ‖ s)                          (s detached)
    supernet:  mean_s [ α·L(s, y) + (1-α)·D_T(t ‖ s) ]                   (t detached)

so the KD loss of the students is back-propagated into the teacher with weight λ (``kd_weight``),
pulling it towards outputs the pool can follow; with λ = 0 the teacher trains exactly as the
standard one. Sampling is the issue's sandwich rule, not the paper's learned architecture
distribution. A teacher *customized* for one student (SFTN-style) is the same training with a
one-member pool. Students are then distilled from scratch, standalone, from a frozen teacher
(α·L + (1-α)·D_T); :mod:`models.gtn_eval` runs the whole comparison.

The task (:class:`Task`) supplies the data, the task loss L, the divergence D_T and the metric:

* digits (:class:`DigitsTask`): L = cross-entropy, D_T = T²·KL(softmax(t/T) ‖ softmax(s/T)) (Hinton
  KD), accuracy.
* MAP (:class:`MapTask`): multi-label, L = BCE-with-logits over the 256 future-delta bits, D_T the
  per-label sigmoid KD T²·mean_bits KL(Bern(σ(t/T)) ‖ Bern(σ(s/T))) of :func:`models.distill.
  bernoulli_kl`, i.e. the BCE of σ(s/T) against the teacher's probabilities σ(t/T) minus the
  teacher's own entropy (the same gradient for the student; zero when they agree, so the
  teacher's KD-aware term does not also push it towards confident outputs); this is
  :func:`models.distill.kd_loss`, PaCKD's KD. The metric is ``paretofab distill``'s: validation
  micro-F1 at the best threshold for model selection, test micro-F1 at that threshold reported,
  patience counted only once the student has left the frequency plateau.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import metrics
from .digits_data import DigitsData
from .distill import PLATEAU_MARGIN, bernoulli_kl, plateau_f1
from .gtn_pool import CLASSES, DIGITS, TEACHER, Family, sandwich
from .map_data import save_splits

__all__ = ["GTNConfig", "Task", "DigitsTask", "MapTask", "as_task", "softmax_kl", "kd_loss", "gtn_losses",
           "teacher_step", "gtn_step", "train_teacher", "train_gtn", "train_student", "logits_of", "accuracy"]


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
        The teachers' architecture, a member of the task's family (``dDwW`` digits, ``rDwW``
        MAP).
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

    def check(self, family: Family | None = None) -> None:
        """Refuse values no training can use (``ValueError``, one line naming the fix); the
        teacher must be a member of ``family`` (default digits)."""
        if min(self.teacher_epochs, self.student_epochs, self.patience, self.batch_size) < 1:
            raise ValueError("epochs, patience and batch size must be >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha {self.alpha} must lie in [0, 1]")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and learning rate must be > 0")
        if self.kd_weight < 0 or self.samples < 0:
            raise ValueError("the KD-aware weight and the sample count must be >= 0")
        (family or DIGITS).parse(self.teacher)

    def to_dict(self) -> dict:
        return asdict(self)


# ---- tasks ----------------------------------------------------------------------------------------

def softmax_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """``T² · mean over the batch of KL(softmax(t/T) ‖ softmax(s/T))`` (nats); gradients flow into
    whichever argument is not detached."""
    log_pt = F.log_softmax(teacher_logits / temperature, dim=1)
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    return temperature ** 2 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``(N, outputs)`` of ``model`` (eval mode) on inputs ``x``."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy (fraction) of ``model`` on ``(x, y)``."""
    return float((logits_of(model, x).argmax(1) == y).float().mean())


@dataclass
class Task:
    """A workload the GTN comparison trains on: the splits, the student family, the task loss,
    the KD divergence and the metric ("accuracy" in results.csv: accuracy for digits, micro-F1
    for MAP). Subclasses define :meth:`loss`, :meth:`divergence`, :meth:`val_score` and
    :meth:`report` (the two losses are static: ``kd_loss(..., task=MapTask)`` needs no data).

    Attributes
    ----------
    x_train, y_train, x_val, y_val, x_test, y_test : Tensor
        Inputs and labels per split.
    family : Family
        The student (and teacher) family.
    name : str
        ``digits`` or ``map``.
    metric : str
        The metric's name in plots and logs.
    plateau : float or None
        Validation score of an input-blind predictor: early-stopping patience counts only once a
        model beats it by :data:`models.distill.PLATEAU_MARGIN` (None: from the first epoch).
    info : dict
        Provenance written to run.json (plain values).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    family: Family = DIGITS
    name: str = "digits"
    metric: str = "accuracy"
    plateau: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        """Logits per input."""
        return CLASSES

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        raise NotImplementedError

    def val_score(self, model: nn.Module) -> float:
        """The model-selection score on the validation split (fraction)."""
        raise NotImplementedError

    def report(self, model: nn.Module) -> dict:
        """``val_accuracy`` and ``test_accuracy`` (the metric, fractions), and whatever else the
        task reports."""
        raise NotImplementedError

    def save_data(self, folder: Path) -> None:
        """Write what a checkpoint in ``folder`` needs beside it to be scored (nothing here)."""


class DigitsTask(Task):
    """Digits classification: cross-entropy, Hinton KD (:func:`softmax_kl`), accuracy."""

    loss = staticmethod(F.cross_entropy)
    divergence = staticmethod(softmax_kl)

    def val_score(self, model: nn.Module) -> float:
        return accuracy(model, self.x_val, self.y_val)

    def report(self, model: nn.Module) -> dict:
        return {"val_accuracy": self.val_score(model), "test_accuracy": accuracy(model, self.x_test, self.y_test)}


class MapTask(Task):
    """Memory-access prediction: 256-label BCE-with-logits, per-label sigmoid KD, micro-F1
    (``paretofab distill``'s protocol, module docstring). Built by :meth:`from_splits`."""

    splits: dict[str, np.ndarray] | None = None

    @property
    def outputs(self) -> int:
        return int(self.y_train.shape[1])

    loss = staticmethod(F.binary_cross_entropy_with_logits)

    @staticmethod
    def divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """``T² · mean over rows and bits of KL(Bern(σ(t/T)) ‖ Bern(σ(s/T)))`` (nats)."""
        return temperature ** 2 * bernoulli_kl(teacher_logits, student_logits, temperature)

    def val_score(self, model: nn.Module) -> float:
        return metrics.best_threshold(logits_of(model, self.x_val), self.y_val.numpy(), logits=True)[1]

    def report(self, model: nn.Module) -> dict:
        """:func:`models.metrics.summarize`: ``test_accuracy`` is the test micro-F1 at the
        validation-best ``threshold``; also ``f1_at_0.5``, ``f1_test_opt`` and the ``floor``."""
        s = metrics.summarize(logits_of(model, self.x_val), self.y_val.numpy(), logits_of(model, self.x_test),
                              self.y_test.numpy())
        return {"val_accuracy": s["val_f1"], "test_accuracy": s["f1"], "threshold": s["threshold"],
                "f1_at_0.5": s["f1_at_0.5"], "f1_test_opt": s["f1_test_opt"], "floor": s["floor"]}

    def save_data(self, folder: Path) -> None:
        """``folder/data.npz``: the splits, so that a checkpoint there is a ``paretofab sweep
        --model`` spec (:func:`models.map_data.save_splits`)."""
        save_splits(Path(folder) / "data.npz", self.splits)

    @classmethod
    def from_splits(cls, splits: dict[str, np.ndarray], family: Family, info: dict | None = None) -> "MapTask":
        """The task of MAP splits (:func:`models.map_data.make_splits`)."""
        t = {k: torch.from_numpy(np.ascontiguousarray(splits[k], np.float32))
             for k in (f"{p}_{s}" for p in ("x", "y") for s in ("train", "val", "test"))}
        task = cls(t["x_train"], t["y_train"], t["x_val"], t["y_val"], t["x_test"], t["y_test"], family=family,
                   name="map", metric="micro-F1",
                   plateau=plateau_f1(splits["y_train"], splits["x_val"], splits["y_val"]), info=dict(info or {}))
        task.splits = splits
        return task


def as_task(data: DigitsData | Task) -> Task:
    """``data`` itself when it is a :class:`Task`; digits splits wrapped in a :class:`DigitsTask`."""
    if isinstance(data, Task):
        return data
    return DigitsTask(data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)


# ---- losses ----------------------------------------------------------------------------------------

def kd_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float, temperature: float, task: type[Task] | Task = DigitsTask) -> torch.Tensor:
    """``α·L(s, y) + (1-α)·D_T(t ‖ s)`` with the task's loss and divergence (digits: Hinton KD;
    MAP: :func:`models.distill.kd_loss`); the task loss alone without a teacher. The teacher's
    logits are detached (a student's loss never trains its teacher)."""
    task_loss = task.loss(student_logits, labels)
    if teacher_logits is None:
        return task_loss
    return alpha * task_loss + (1 - alpha) * task.divergence(teacher_logits.detach(), student_logits, temperature)


def gtn_losses(teacher_logits: torch.Tensor, student_logits: list[torch.Tensor], labels: torch.Tensor,
               cfg: GTNConfig, task: type[Task] | Task = DigitsTask) -> tuple[torch.Tensor, torch.Tensor]:
    """The two GTN objectives of one batch.

    Parameters
    ----------
    teacher_logits : Tensor (B, outputs)
        The teacher's logits, attached to its graph.
    student_logits : list of Tensor (B, outputs)
        Logits of the sampled subnets, attached to the supernet's graph.
    labels : Tensor (B,) or (B, outputs)
    cfg : GTNConfig
        ``kd_weight`` (λ), ``alpha`` and ``temperature``.
    task : Task or Task subclass
        Its ``loss`` and ``divergence`` (default digits).

    Returns
    -------
    teacher_loss, student_loss : Tensor
        ``L(t, y) + λ·mean_s D_T(t ‖ s.detach())`` (reaches only the teacher) and
        ``mean_s kd_loss(s, y, t)`` (reaches only the supernet).
    """
    own = task.loss(teacher_logits, labels)
    cond = torch.stack([task.divergence(teacher_logits, s.detach(), cfg.temperature) for s in student_logits]).mean()
    teacher_loss = own + cfg.kd_weight * cond if cfg.kd_weight else own
    student_loss = torch.stack([kd_loss(s, labels, teacher_logits, cfg.alpha, cfg.temperature, task)
                                for s in student_logits]).mean()
    return teacher_loss, student_loss


# ---- steps -----------------------------------------------------------------------------------------

def teacher_step(teacher: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 task: type[Task] | Task = DigitsTask) -> float:
    """One step of standard teacher training (the task loss only); returns the loss."""
    loss = task.loss(teacher(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def gtn_step(teacher: nn.Module, supernet: nn.Module, opt_t: torch.optim.Optimizer,
             opt_s: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg: GTNConfig,
             gen: torch.Generator, task: type[Task] | Task = DigitsTask) -> tuple[float, float, list[Any]]:
    """One GTN step: sandwich-sample the supernet, update the supernet by KD from the teacher and
    the teacher by its KD-aware objective (:func:`gtn_losses`).

    Returns
    -------
    teacher_loss, student_loss : float
    sampled : list of pool members
    """
    sampled = sandwich(supernet.pool, cfg.samples, gen)
    t = teacher(x)
    s = [supernet(x, spec) for spec in sampled]
    lt, ls = gtn_losses(t, s, y, cfg, task)
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


def _fit_best(model: nn.Module, task: DigitsData | Task, cfg: GTNConfig, seed: int, epochs: int,
              step: Callable[[torch.Tensor], None], patience: int | None = None,
              also_train: tuple[nn.Module, ...] = ()) -> tuple[float, int]:
    """``epochs`` epochs of ``step(batch indices)`` over the training inputs (batch order from
    ``seed``), keeping ``model``'s epoch of best validation score (early stop after ``patience``
    epochs without a gain, counted once the score has left the task's plateau; None: never).
    Leaves ``model`` at that epoch in eval mode; returns (its validation score, its epoch,
    1-based)."""
    task = as_task(task)
    gen = torch.Generator().manual_seed(seed)
    best = (-1.0, 0, None)
    left = None  # first epoch above the plateau
    for epoch in range(1, epochs + 1):
        for m in (model, *also_train):
            m.train()
        for idx in _batches(len(task.x_train), cfg.batch_size, gen):
            step(idx)
        val = task.val_score(model)
        if left is None and (task.plateau is None or val > task.plateau + PLATEAU_MARGIN):
            left = epoch
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))
        elif patience is not None and left is not None and epoch - max(best[1], left) >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return best[0], best[1]


def _info(model: nn.Module, task: Task, val: float, epoch: int, t0: float) -> dict:
    seconds = time.process_time() - t0
    return {**task.report(model), "val_accuracy": val, "epoch": epoch, "cpu_seconds": seconds}


def _teacher(cfg: GTNConfig, task: Task) -> nn.Module:
    return task.family.build(task.family.parse(cfg.teacher))


def train_teacher(data: DigitsData | Task, cfg: GTNConfig, seed: int) -> tuple[nn.Module, dict]:
    """The standard teacher: the task loss only, ``cfg.teacher_epochs`` epochs, the epoch of best
    validation score kept.

    Returns
    -------
    teacher : nn.Module
        In eval mode.
    info : dict
        ``val_accuracy``, ``test_accuracy`` (the task's metric, fractions; :meth:`Task.report`),
        ``epoch`` (kept, 1-based), ``cpu_seconds`` (process CPU time of the training, s).
    """
    task = as_task(data)
    t0 = time.process_time()
    torch.manual_seed(seed)
    teacher = _teacher(cfg, task)
    opt = torch.optim.Adam(teacher.parameters(), lr=cfg.lr)
    val, epoch = _fit_best(teacher, task, cfg, seed, cfg.teacher_epochs,
                           lambda idx: teacher_step(teacher, opt, task.x_train[idx], task.y_train[idx], task))
    return teacher, _info(teacher, task, val, epoch, t0)


def train_gtn(data: DigitsData | Task, pool: tuple, cfg: GTNConfig, seed: int) -> tuple[nn.Module, nn.Module, dict]:
    """A KD-aware teacher for ``pool`` (the generic teacher; with a one-member pool, the teacher
    customized for that student), trained jointly with the pool's supernet by :func:`gtn_step`.

    The teacher is initialized exactly as :func:`train_teacher`'s for the same seed (and sees the
    same batches), so the two differ only by the KD-aware term. The epoch of best teacher
    validation score is kept.

    Returns
    -------
    teacher : nn.Module
    supernet : nn.Module
        At the end of training (its subnets are not the evaluated students: those are trained
        standalone from scratch).
    info : dict
        As :func:`train_teacher`, plus ``subnet_val_accuracy`` (name -> validation score of the
        extracted subnet at the end, normalization statistics recalibrated on 2,048 training
        inputs).
    """
    task = as_task(data)
    t0 = time.process_time()
    torch.manual_seed(seed)
    teacher = _teacher(cfg, task)
    supernet = task.family.supernet(pool)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=cfg.lr)
    opt_s = torch.optim.Adam(supernet.parameters(), lr=cfg.lr)
    sample_gen = torch.Generator().manual_seed(seed + 1)
    val, epoch = _fit_best(teacher, task, cfg, seed, cfg.teacher_epochs,
                           lambda idx: gtn_step(teacher, supernet, opt_t, opt_s, task.x_train[idx],
                                                task.y_train[idx], cfg, sample_gen, task),
                           also_train=(supernet,))
    info = _info(teacher, task, val, epoch, t0)
    supernet.eval()
    calib = task.x_train[:2048]
    info["subnet_val_accuracy"] = {s.name: task.val_score(supernet.extract(s, calib)) for s in pool}
    return teacher, supernet, info


def train_student(data: DigitsData | Task, spec: Any, teacher_logits: torch.Tensor | None,
                  cfg: GTNConfig, seed: int) -> tuple[nn.Module, dict]:
    """A standalone student trained from scratch: KD from a frozen teacher's logits on the training
    inputs (:func:`kd_loss`), or the task loss alone (``teacher_logits=None``); early stopping on
    the validation score.

    The same ``seed`` gives the same initial weights and batch order whatever the teacher, so
    students of different teachers differ only by what they were taught.

    Parameters
    ----------
    spec : pool member
        Of the task's family.
    teacher_logits : Tensor (N_train, outputs) or None
        :func:`logits_of` the teacher on the training inputs.

    Returns
    -------
    student : nn.Module
        The epoch of best validation score, eval mode.
    info : dict
        ``val_accuracy``, ``test_accuracy`` (and the task's other :meth:`Task.report` values),
        ``epoch``, ``cpu_seconds`` (s).
    """
    task = as_task(data)
    n = len(task.x_train)
    if teacher_logits is not None and tuple(teacher_logits.shape) != (n, task.outputs):
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)}: give the teacher's logits on "
                         f"the {n} training inputs ({n}, {task.outputs})")
    t0 = time.process_time()
    torch.manual_seed(seed)
    student = task.family.build(spec)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)

    def step(idx: torch.Tensor) -> None:
        t = None if teacher_logits is None else teacher_logits[idx]
        loss = kd_loss(student(task.x_train[idx]), task.y_train[idx], t, cfg.alpha, cfg.temperature, task)
        opt.zero_grad()
        loss.backward()
        opt.step()

    val, epoch = _fit_best(student, task, cfg, seed, cfg.student_epochs, step, patience=cfg.patience)
    return student, _info(student, task, val, epoch, t0)
