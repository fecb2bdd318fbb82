"""Knowledge distillation for MAP models: plain training, KD, and PaCKD.

* ``none``: the student learns from the labels alone (BCE).
* ``kd``: one teacher trained on all training rows; the student learns from
  ``α·BCE(s, y) + (1-α)·T²·KL(Bern(σ(t/T)) || Bern(σ(s/T)))`` (per bit, averaged); PaCKD's
  setting by default: T = 1, α = 0.7 (the paper uses 0.6–0.75).
* ``packd``: training rows are clustered with k-means++ on a feature (``ip`` hashed past IPs, the
  paper's and the default; ``addr`` past block addresses; ``delta`` past block deltas;
  standardized); one teacher per cluster learns its cluster; the student learns from every row,
  each distilled from its own cluster's teacher, in shuffled batches (PaCKD, HPEC'23). An earlier
  version visited the clusters one after another within each epoch; that ordering let the last
  cluster pull the student away from the others (bc, Mixer: 0.35 vs KD's 0.42) and is gone.

Every training run stops early on the validation split (a seeded random 10% of the training
window: best validation micro-F1, patience in epochs); the test split is only used for the final
numbers. Teacher logits are computed once per training row (teachers are frozen), which makes KD as
cheap per epoch as plain training; :func:`train_teachers` returns them so that one set of teachers
serves several students.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm.auto import tqdm

from . import metrics
from .map_data import cluster_features
from .specs import FEATURES, METHODS, TEACHER_LR, DistillError, TrainConfig
from .trace_stats import trace_stats
from .zoo import build, count_params, preset_kwargs, save_checkpoint

__all__ = ["METHODS", "FEATURES", "TEACHER_MARGIN", "TEACHER_LR", "PLATEAU_MARGIN", "DistillError", "TrainConfig",
           "KDSpec", "bernoulli_kl", "kd_loss", "plateau_f1", "predict", "fit", "check_clustering", "cluster",
           "Teachers", "train_teachers", "distill", "teacher_verdict"]

#: a KD / PaCKD comparison is conclusive only when the teachers beat the NoKD student by this much
TEACHER_MARGIN = 0.03
#: validation F1 above the frequency predictor's that counts as having left the plateau
PLATEAU_MARGIN = 0.005


def bernoulli_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Mean over bits of KL(Bern(σ(t/T)) || Bern(σ(s/T))), computed from log-sigmoids."""
    t = teacher_logits / temperature
    s = student_logits / temperature
    pt = torch.sigmoid(t)
    kl = pt * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - pt) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean()


def kd_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float = 0.7, temperature: float = 1.0) -> torch.Tensor:
    """α·BCE(student, labels) + (1-α)·T²·KL(teacher || student); plain BCE without a teacher."""
    bce = F.binary_cross_entropy_with_logits(student_logits, labels)
    if teacher_logits is None:
        return bce
    return alpha * bce + (1 - alpha) * temperature ** 2 * bernoulli_kl(teacher_logits, student_logits,
                                                                         temperature)


@dataclass(frozen=True)
class KDSpec:
    """What :func:`distill` trains: the student's ``arch`` by ``method``, and its teachers.

    Attributes
    ----------
    arch : student architecture (:data:`models.zoo.ARCHS`).
    method : ``none`` (plain training), ``kd`` (one teacher) or ``packd`` (one teacher per cluster).
    clusters, feature : PaCKD's k-means clusters (2..8) and the feature they cluster on.
    teacher_arch : the teachers' architecture (None: ``arch``).
    teacher_preset : the teachers' size preset (``cpu`` or ``paper``).
    """

    arch: str = "resnet"
    method: str = "packd"
    clusters: int = 2
    feature: str = "ip"
    teacher_arch: str | None = None
    teacher_preset: str = "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DistillError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        check_clustering(self.clusters, self.feature)


def plateau_f1(y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """Validation micro-F1 of the input-blind per-bit frequency predictor: the plateau a MAP model
    sits on until it learns to use its input."""
    freq = np.asarray(y_train, np.float64).mean(axis=0)
    return metrics.best_threshold(np.broadcast_to(freq, np.shape(y_val)), y_val, logits=False)[1]


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Logits (n, 256) float32 of ``model`` in eval mode."""
    was = model.training
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).numpy()
           for i in range(0, len(x), batch_size)]
    model.train(was)
    return np.concatenate(out) if out else np.zeros((0, 256), np.float32)


def fit(model: nn.Module, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
        cfg: TrainConfig, teacher_logits: np.ndarray | None = None, desc: str = "train") -> dict:
    """Train ``model`` in place with early stopping on validation micro-F1; restores the best
    epoch's weights. Patience runs only once the validation F1 has left the plateau of the
    input-blind frequency predictor (:func:`plateau_f1` + :data:`PLATEAU_MARGIN`): MAP models sit
    on it for several epochs before they learn to use their input.

    Parameters
    ----------
    train, val : (inputs (n, 10, 10) float32, labels (n, 256) 0/1) to train on and to validate.
    teacher_logits : (n, 256) frozen teacher logits per training row (KD), or None (BCE only).

    Returns
    -------
    history dict: ``epochs`` run, ``best_epoch``, ``val_f1`` per epoch, ``plateau_f1``,
    ``left_plateau_epoch`` (None: never left it), ``samples_per_s``.
    """
    cfg.check()
    (x, y), (x_val, y_val) = train, val
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, np.float32))
    tt = None if teacher_logits is None else torch.from_numpy(np.ascontiguousarray(teacher_logits, np.float32))
    best, best_f1, best_epoch, bad = None, -1.0, -1, 0
    hist_f1: list[float] = []
    plateau = plateau_f1(y, x_val, y_val)
    left_plateau = None
    seen, t_train = 0, 0.0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(x))
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        t0 = time.perf_counter()
        bar = tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not cfg.progress, unit="batch")
        for b in bar:
            bi = torch.from_numpy(b)
            logits = model(xt[bi])
            loss = kd_loss(logits, yt[bi], None if tt is None else tt[bi], cfg.alpha, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t_train += time.perf_counter() - t0
        seen += len(order)
        _, f_val = metrics.best_threshold(predict(model, x_val), y_val, logits=True)
        hist_f1.append(f_val)
        if left_plateau is None and f_val > plateau + PLATEAU_MARGIN:
            left_plateau = epoch
        if f_val > best_f1:
            best, best_f1, best_epoch, bad = copy.deepcopy(model.state_dict()), f_val, epoch, 0
        elif left_plateau is not None:  # on the plateau, patience does not run out
            bad += 1
            if bad >= cfg.patience:
                break
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    return {"epochs": len(hist_f1), "best_epoch": best_epoch + 1, "val_f1": hist_f1, "plateau_f1": plateau,
            "left_plateau_epoch": None if left_plateau is None else left_plateau + 1,
            "samples_per_s": seen / t_train if t_train > 0 else float("nan")}


def check_clustering(k: int, feature: str) -> None:
    """Raise :class:`DistillError` unless ``k`` clusters of ``feature`` can be formed."""
    if not isinstance(k, int) or not 2 <= k <= 8:
        raise DistillError(f"--clusters {k!r}: use 2..8 clusters (PaCKD uses 2..4)")
    if feature not in FEATURES:
        raise DistillError(f"unknown cluster feature {feature!r}: choose one of {', '.join(FEATURES)}")


def cluster(splits: dict[str, np.ndarray], k: int, feature: str = "ip",
            seed: int = 0) -> dict[str, np.ndarray]:
    """k-means++ cluster of every row of every split (fit on train only).

    Returns ``{"train": labels, "val": labels, "test": labels}`` (int arrays in 0..k-1).
    """
    check_clustering(k, feature)
    f_tr = cluster_features(splits, "train", feature)
    scaler = StandardScaler().fit(f_tr)
    km = KMeans(n_clusters=k, init="k-means++", n_init=4, random_state=seed).fit(scaler.transform(f_tr))
    return {s: km.predict(scaler.transform(cluster_features(splits, s, feature))).astype(np.int64)
            for s in ("train", "val", "test")}


def _meta(arch: str, preset: str, role: str, **extra) -> dict:
    return {"arch": arch, "preset": preset, "kwargs": preset_kwargs(arch, preset), "role": role, **extra}


@dataclass
class Teachers:
    """Frozen teachers of one method on one set of splits: their logits per split and a summary.

    ``clusters`` (PaCKD): each training row's cluster, i.e. the teacher whose logits it carries.
    ``summary``: the teachers' test metrics (PaCKD: each row scored by its cluster's teacher),
    parameter counts, histories and cluster sizes.
    """

    method: str
    logits: dict[str, np.ndarray]
    params: list[int]
    summary: dict
    clusters: np.ndarray | None = None


def train_teachers(splits: dict[str, np.ndarray], spec: KDSpec, cfg: TrainConfig | None = None,
                   out_dir: str | Path | None = None, info: dict | None = None) -> Teachers:
    """Train the KD teacher (``spec.method="kd"``) or one teacher per k-means cluster
    (``"packd"``), of ``spec.teacher_arch`` (default ``spec.arch``) at ``spec.teacher_preset``.

    With ``out_dir``, writes ``teacher.pt`` (kd) or ``teacher_<c>.pt`` (packd).
    """
    method, clusters, feature = spec.method, spec.clusters, spec.feature
    arch, preset = spec.teacher_arch or spec.arch, spec.teacher_preset
    if method not in ("kd", "packd"):
        raise DistillError(f"teachers are trained for kd or packd, not {method!r}")
    cfg = cfg or TrainConfig()
    info = dict(info or {})
    out = Path(out_dir) if out_dir is not None else None
    x = {s: splits[f"x_{s}"] for s in ("train", "val", "test")}
    y = {s: splits[f"y_{s}"] for s in ("train", "val", "test")}
    if method == "kd":
        lab = {s: np.zeros(len(y[s]), np.int64) for s in x}
        summary: dict = {}
    else:
        lab = cluster(splits, clusters, feature, cfg.seed)
        summary = {"clusters": clusters, "cluster_feature": feature,
                   "cluster_sizes": {s: np.bincount(lab[s], minlength=clusters).tolist() for s in lab}}
    k = int(max(lab["train"].max(), 0)) + 1
    logits = {s: np.zeros(y[s].shape, np.float32) for s in x}
    params, histories = [], []
    for c in range(k):
        tr = np.flatnonzero(lab["train"] == c)
        va = np.flatnonzero(lab["val"] == c)
        if len(va) < 20:  # too few validation rows in this cluster: validate on all of them
            va = np.arange(len(y["val"]))
        torch.manual_seed(cfg.seed + 1 + c)
        teacher = build(arch, preset)
        name = "teacher" if method == "kd" else f"teacher {c}"
        h = fit(teacher, (x["train"][tr], y["train"][tr]), (x["val"][va], y["val"][va]), cfg,
                desc=f"{name} {arch}")
        for s in x:
            rows = lab[s] == c
            logits[s][rows] = predict(teacher, x[s][rows])
        params.append(count_params(teacher))
        histories.append({"cluster": c, "train_rows": int(len(tr)), "history": h})
        if out:
            path = out / ("teacher.pt" if method == "kd" else f"teacher_{c}.pt")
            save_checkpoint(path, teacher, _meta(arch, preset, "teacher", method=method, cluster=c, **info))
    summary.update(metrics.summarize(logits["val"], y["val"], logits["test"], y["test"]),
                   params=int(sum(params)), arch=arch, preset=preset, teachers=histories)
    return Teachers(method, logits, params, summary, lab["train"] if method == "packd" else None)


def distill(splits: dict[str, np.ndarray], spec: KDSpec, cfg: TrainConfig | None = None, *,
            teacher_cfg: TrainConfig | None = None, out_dir: str | Path | None = None,
            info: dict | None = None, teachers: Teachers | None = None) -> dict:
    """Train a student of ``spec.arch`` by ``spec.method`` on ``splits``; evaluate it on test.

    Teachers are ``teachers`` when given (trained once by :func:`train_teachers`, shared by
    several students), else trained here with ``teacher_cfg`` (default ``cfg``). With
    ``out_dir``, writes ``student.pt`` (and the teachers it trained).

    Returns a metrics dict: the student's ``f1`` (test micro-F1 at the validation threshold),
    ``f1_test_opt`` (at the test-optimal threshold: the paper's protocol), ``f1_at_0.5``,
    ``floor``, the frequency and IP baselines, parameter counts, compression ratio, the teachers'
    summary, timings.
    """
    arch, method = spec.arch, spec.method
    cfg = cfg or TrainConfig()
    info = dict(info or {})
    out = Path(out_dir) if out_dir is not None else None
    t_start = time.perf_counter()
    if method != "none" and teachers is None:
        teachers = train_teachers(splits, spec, teacher_cfg or cfg, out, info)
    if teachers is not None and teachers.method != method:
        raise DistillError(f"{teachers.method} teachers given for method {method}")
    t_teachers = time.perf_counter() - t_start
    res: dict = {"arch": arch, "method": method, "rows": {s: int(len(splits[f"y_{s}"]))
                                                          for s in ("train", "val", "test")},
                 "train_config": asdict(cfg), **info}
    torch.manual_seed(cfg.seed)
    student = build(arch, "student")
    h = fit(student, (splits["x_train"], splits["y_train"]), (splits["x_val"], splits["y_val"]), cfg,
            teacher_logits=None if teachers is None else teachers.logits["train"], desc=f"student {arch} ({method})")
    s_params = count_params(student)
    res.update(metrics.summarize(predict(student, splits["x_val"]), splits["y_val"],
                                 predict(student, splits["x_test"]), splits["y_test"]))
    res["history"] = h
    stats = info.get("trace_stats") or trace_stats(splits).to_dict()  # computed with the splits
    res["freq_baseline"], res["ip_baseline"] = stats["freq_f1"], stats["ip_f1"]
    res["student_params"] = s_params
    if teachers is not None:
        res["teacher"] = teachers.summary
        res["teacher_params"] = teachers.params
        res["compression"] = max(teachers.params) / s_params
        res["compression_all_teachers"] = sum(teachers.params) / s_params
    res["seconds"] = {"teachers": t_teachers, "total": time.perf_counter() - t_start}
    if out:
        save_checkpoint(out / "student.pt", student,
                        _meta(arch, "student", "student", method=method, **info))
    return res


def teacher_verdict(teacher_f1: float, nokd_f1: float, margin: float = TEACHER_MARGIN) -> str | None:
    """Why a KD / PaCKD comparison is inconclusive (None: it is conclusive): teachers that are not
    ``margin`` F1 above the converged NoKD student have nothing to pass on."""
    if teacher_f1 < nokd_f1 + margin:
        return (f"inconclusive: teachers F1 {teacher_f1:.3f} are not {margin} above the NoKD student "
                f"{nokd_f1:.3f}")
    return None
