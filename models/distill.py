"""Knowledge distillation for MAP models: plain training, KD, and PaCKD.

* ``none``: the student learns from the labels alone (BCE).
* ``kd``: one teacher trained on all training rows; the student learns from
  ``α·BCE(s, y) + (1-α)·T²·KL(Bern(σ(t/T)) || Bern(σ(s/T)))`` (per bit, averaged).
* ``packd``: training rows are clustered with k-means++ on a feature (``addr`` past block
  addresses, ``ip`` past IPs, ``delta`` past block deltas; standardized); one teacher per cluster
  learns its cluster; the student is trained cluster by cluster (each epoch visits the clusters in
  turn), distilling from that cluster's teacher (PaCKD, HPEC'23).

Every training run stops early on the validation split (best validation micro-F1, patience in
epochs); the test split is only used for the final numbers. Teacher logits are computed once per
training row (teachers are frozen), which makes KD as cheap per epoch as plain training.
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
from .zoo import build, count_params, preset_kwargs, save_checkpoint

METHODS = ("none", "kd", "packd")
FEATURES = ("addr", "ip", "delta")


class DistillError(ValueError):
    """Bad distillation parameters."""


def bernoulli_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Mean over bits of KL(Bern(σ(t/T)) || Bern(σ(s/T))), computed from log-sigmoids."""
    t = teacher_logits / temperature
    s = student_logits / temperature
    pt = torch.sigmoid(t)
    kl = pt * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - pt) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean()


def kd_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float = 0.5, temperature: float = 2.0) -> torch.Tensor:
    """α·BCE(student, labels) + (1-α)·T²·KL(teacher || student); plain BCE without a teacher."""
    bce = F.binary_cross_entropy_with_logits(student_logits, labels)
    if teacher_logits is None:
        return bce
    return alpha * bce + (1 - alpha) * temperature ** 2 * bernoulli_kl(teacher_logits, student_logits,
                                                                         temperature)


@dataclass
class TrainConfig:
    """Training hyper-parameters (epochs are upper bounds: early stopping on validation)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    patience: int = 3
    alpha: float = 0.5
    temperature: float = 2.0
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise DistillError("epochs, batch_size and patience must be >= 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise DistillError(f"alpha {self.alpha} must lie in [0, 1]")
        if self.temperature <= 0:
            raise DistillError(f"temperature {self.temperature} must be > 0")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Logits (n, 256) float32 of ``model`` in eval mode."""
    was = model.training
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).numpy()
           for i in range(0, len(x), batch_size)]
    model.train(was)
    return np.concatenate(out) if out else np.zeros((0, 256), np.float32)


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        cfg: TrainConfig, teacher_logits: np.ndarray | None = None,
        groups: list[np.ndarray] | None = None, desc: str = "train") -> dict:
    """Train ``model`` in place with early stopping on validation micro-F1; restores the best
    epoch's weights.

    Parameters
    ----------
    x, y : training inputs (n, 10, 10) float32 and labels (n, 256) 0/1.
    teacher_logits : (n, 256) frozen teacher logits per training row (KD), or None (BCE only).
    groups : row-index arrays visited one after another within each epoch (cluster by cluster);
        None shuffles all rows together.

    Returns
    -------
    history dict: ``epochs`` run, ``best_epoch``, ``val_f1`` per epoch, ``samples_per_s``.
    """
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, np.float32))
    tt = None if teacher_logits is None else torch.from_numpy(np.ascontiguousarray(teacher_logits, np.float32))
    groups = [np.arange(len(x))] if groups is None else [g for g in groups if len(g)]
    best, best_f1, best_epoch, bad = None, -1.0, -1, 0
    hist_f1: list[float] = []
    seen, t_train = 0, 0.0
    for epoch in range(cfg.epochs):
        model.train()
        order = np.concatenate([rng.permutation(g) for g in groups])
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
        if f_val > best_f1:
            best, best_f1, best_epoch, bad = copy.deepcopy(model.state_dict()), f_val, epoch, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    return {"epochs": len(hist_f1), "best_epoch": best_epoch + 1, "val_f1": hist_f1,
            "samples_per_s": seen / t_train if t_train > 0 else float("nan")}


def cluster(splits: dict[str, np.ndarray], k: int, feature: str = "delta",
            seed: int = 0) -> dict[str, np.ndarray]:
    """k-means++ cluster of every row of every split (fit on train only).

    Returns ``{"train": labels, "val": labels, "test": labels}`` (int arrays in 0..k-1).
    """
    if not 2 <= k <= 8:
        raise DistillError(f"--clusters {k} out of range: PaCKD uses 2..4 (at most 8 allowed)")
    if feature not in FEATURES:
        raise DistillError(f"unknown cluster feature {feature!r}: choose one of {', '.join(FEATURES)}")
    f_tr = cluster_features(splits, "train", feature)
    scaler = StandardScaler().fit(f_tr)
    km = KMeans(n_clusters=k, init="k-means++", n_init=4, random_state=seed).fit(scaler.transform(f_tr))
    return {s: km.predict(scaler.transform(cluster_features(splits, s, feature))).astype(np.int64)
            for s in ("train", "val", "test")}


def _meta(arch: str, preset: str, role: str, **extra) -> dict:
    return {"arch": arch, "preset": preset, "kwargs": preset_kwargs(arch, preset), "role": role, **extra}


def distill(splits: dict[str, np.ndarray], arch: str = "resnet", method: str = "packd",
            clusters: int = 2, feature: str = "delta", teacher_preset: str = "cpu",
            teacher_arch: str | None = None, cfg: TrainConfig | None = None,
            teacher_cfg: TrainConfig | None = None, out_dir: str | Path | None = None,
            info: dict | None = None) -> dict:
    """Train a ``student`` of ``arch`` by ``method`` on ``splits``; evaluate it on test.

    Teachers are ``teacher_arch`` (default: same as ``arch``) at ``teacher_preset``. With
    ``out_dir``, writes ``student.pt``, ``teacher.pt`` (kd) or ``teacher_<c>.pt`` (packd).

    Returns a metrics dict: the student's ``f1`` (test micro-F1 at the validation threshold),
    ``f1_at_0.5``, ``floor``, parameter counts, compression ratio, cluster sizes, timings.
    """
    if method not in METHODS:
        raise DistillError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    cfg = cfg or TrainConfig()
    teacher_cfg = teacher_cfg or cfg
    teacher_arch = teacher_arch or arch
    info = dict(info or {})
    out = Path(out_dir) if out_dir is not None else None
    x_tr, y_tr = splits["x_train"], splits["y_train"]
    x_va, y_va = splits["x_val"], splits["y_val"]
    x_te, y_te = splits["x_test"], splits["y_test"]
    res: dict = {"arch": arch, "method": method, "teacher_arch": teacher_arch,
                 "teacher_preset": teacher_preset, "rows": {s: int(len(splits[f"y_{s}"]))
                                                            for s in ("train", "val", "test")},
                 "train_config": asdict(cfg), **info}
    t_start = time.perf_counter()
    teacher_logits = None
    groups = None
    teacher_params: list[int] = []
    if method == "kd":
        torch.manual_seed(cfg.seed + 1)
        teacher = build(teacher_arch, teacher_preset)
        h = fit(teacher, x_tr, y_tr, x_va, y_va, teacher_cfg, desc=f"teacher {teacher_arch}")
        teacher_logits = predict(teacher, x_tr)
        teacher_params.append(count_params(teacher))
        res["teacher"] = {**metrics.summarize(predict(teacher, x_va), y_va, predict(teacher, x_te), y_te),
                          "history": h, "params": teacher_params[0]}
        if out:
            save_checkpoint(out / "teacher.pt", teacher, _meta(teacher_arch, teacher_preset, "teacher", method=method, **info))
    elif method == "packd":
        lab = cluster(splits, clusters, feature, cfg.seed)
        res["clusters"] = clusters
        res["cluster_feature"] = feature
        res["cluster_sizes"] = {s: np.bincount(lab[s], minlength=clusters).tolist() for s in lab}
        teacher_logits = np.zeros(y_tr.shape, np.float32)
        test_logits = np.zeros(y_te.shape, np.float32)
        val_logits = np.zeros(y_va.shape, np.float32)
        groups = []
        res["teachers"] = []
        for c in range(clusters):
            tr = np.flatnonzero(lab["train"] == c)
            va = np.flatnonzero(lab["val"] == c)
            if len(va) < 20:  # too few validation rows in this cluster: validate on all of them
                va = np.arange(len(y_va))
            torch.manual_seed(cfg.seed + 1 + c)
            teacher = build(teacher_arch, teacher_preset)
            h = fit(teacher, x_tr[tr], y_tr[tr], x_va[va], y_va[va], teacher_cfg,
                    desc=f"teacher {c} {teacher_arch}")
            teacher_logits[tr] = predict(teacher, x_tr[tr])
            te = lab["test"] == c
            test_logits[te] = predict(teacher, x_te[te])
            vv = lab["val"] == c
            val_logits[vv] = predict(teacher, x_va[vv])
            teacher_params.append(count_params(teacher))
            res["teachers"].append({"cluster": c, "train_rows": int(len(tr)), "history": h,
                                    "params": teacher_params[-1]})
            groups.append(tr)
            if out:
                save_checkpoint(out / f"teacher_{c}.pt", teacher,
                                _meta(teacher_arch, teacher_preset, "teacher", method=method, cluster=c,
                                      **info))
        # the routed teacher ensemble (each test row scored by its cluster's teacher)
        res["teacher"] = {**metrics.summarize(val_logits, y_va, test_logits, y_te),
                          "params": int(sum(teacher_params))}
    t_teachers = time.perf_counter() - t_start
    torch.manual_seed(cfg.seed)
    student = build(arch, "student")
    h = fit(student, x_tr, y_tr, x_va, y_va, cfg, teacher_logits=teacher_logits, groups=groups,
            desc=f"student {arch} ({method})")
    s_params = count_params(student)
    res.update(metrics.summarize(predict(student, x_va), y_va, predict(student, x_te), y_te))
    res["history"] = h
    res["freq_baseline"] = metrics.frequency_baseline(y_tr, y_va, y_te)["f1"]
    res["student_params"] = s_params
    res["teacher_params"] = teacher_params
    if teacher_params:
        res["compression"] = max(teacher_params) / s_params
        res["compression_all_teachers"] = sum(teacher_params) / s_params
    res["seconds"] = {"teachers": t_teachers, "total": time.perf_counter() - t_start}
    if out:
        save_checkpoint(out / "student.pt", student,
                        _meta(arch, "student", "student", method=method, **info))
    return res
