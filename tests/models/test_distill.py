"""KD loss against a brute-force formula, clustering, and short end-to-end runs of every method."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import distill as D
from models import map_data, traces, zoo
from paretofab.cli import main


def test_bernoulli_kl_bruteforce():
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(4, 6)) * 3, rng.normal(size=(4, 6)) * 3
    T = 2.0
    pt, ps = 1 / (1 + np.exp(-t / T)), 1 / (1 + np.exp(-s / T))
    ref = np.mean(pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps)))
    got = D.bernoulli_kl(torch.tensor(t), torch.tensor(s), T).item()
    assert got == pytest.approx(ref, rel=1e-9)
    assert D.bernoulli_kl(torch.tensor(t), torch.tensor(t), T).item() == pytest.approx(0, abs=1e-12)


def test_kd_loss_mixes_bce_and_kl():
    rng = np.random.default_rng(1)
    s, t = torch.tensor(rng.normal(size=(3, 5))), torch.tensor(rng.normal(size=(3, 5)))
    y = torch.tensor((rng.random((3, 5)) < 0.5).astype(float))
    bce = F.binary_cross_entropy_with_logits(s, y).item()
    kl = D.bernoulli_kl(t, s, 3.0).item()
    assert D.kd_loss(s, y, t, alpha=0.25, temperature=3.0).item() == pytest.approx(0.25 * bce + 0.75 * 9 * kl)
    assert D.kd_loss(s, y, None).item() == pytest.approx(bce)
    assert D.kd_loss(s, y, t, alpha=1.0).item() == pytest.approx(bce)


def test_cluster_recovers_separated_groups():
    rng = np.random.default_rng(2)
    n = 300

    def split(lo):  # past blocks: group 0 strides +1, group 1 strides +40
        g = rng.integers(0, 2, lo)
        start = rng.integers(0, 10**6, lo)
        block = start[:, None] + np.where(g[:, None] == 0, 1, 40) * np.arange(10)[None, :]
        return g, block

    sp, truth = {}, {}
    for s in ("train", "val", "test"):
        truth[s], sp[f"block_{s}"] = split(n)
        sp[f"ip_{s}"] = np.zeros((n, 10), np.int64)
    lab = D.cluster(sp, 2, "delta", seed=0)
    for s in ("train", "val", "test"):
        agree = (lab[s] == truth[s]).mean()
        assert max(agree, 1 - agree) == 1.0


@pytest.fixture(scope="module")
def pr_splits():
    tr = traces.generate(traces.TraceConfig("pr", scale=14, seed=0, max_loads=400_000))
    return map_data.make_splits(tr.addr, tr.ip, max_rows=5000)


@pytest.mark.parametrize("method", D.METHODS)
def test_end_to_end_each_method_beats_floor_on_pr(pr_splits, method):
    torch.set_num_threads(1)
    cfg = D.TrainConfig(epochs=1, batch_size=64, progress=False)
    r = D.distill(pr_splits, D.KDSpec("lstm", method, clusters=2, feature="delta", teacher_preset="cpu"), cfg)
    for k in ("f1", "f1_at_0.5", "floor", "val_f1"):
        assert np.isfinite(r[k])
    assert r["f1"] > r["floor"], r
    assert r["student_params"] == 11_904
    if method != "none":
        assert r["compression"] > 10
    if method == "packd":
        assert sum(r["teacher"]["cluster_sizes"]["train"]) == len(pr_splits["y_train"])


def test_shared_teachers_equal_teachers_trained_inside():
    """One set of teachers serves several students: a student distilled from teachers trained once
    by train_teachers is the student distill() trains with its own teachers (same seeds)."""
    tr = traces.generate(traces.TraceConfig("pr", scale=12, seed=0, max_loads=200_000, skip_loads=0))
    sp = map_data.make_splits(tr.addr, tr.ip, max_rows=1500)
    cfg = D.TrainConfig(epochs=1, batch_size=128, progress=False)
    teachers = D.train_teachers(sp, D.KDSpec("lstm", "packd", clusters=2), cfg)
    assert teachers.logits["train"].shape == sp["y_train"].shape
    assert set(teachers.clusters.tolist()) == {0, 1} and len(teachers.clusters) == len(sp["y_train"])
    shared = D.distill(sp, D.KDSpec("lstm", "packd"), cfg, teachers=teachers)
    inside = D.distill(sp, D.KDSpec("lstm", "packd", teacher_arch="lstm"), cfg)
    assert shared["f1"] == inside["f1"] and shared["teacher"]["f1"] == inside["teacher"]["f1"]
    with pytest.raises(ValueError, match="packd teachers given for method kd"):
        D.distill(sp, D.KDSpec("lstm", "kd"), cfg, teachers=teachers)


def test_cluster_on_hashed_ips_separates_load_sites():
    """PaCKD's default feature: rows whose past IPs come from two load-site groups split by group,
    however close the IP values are."""
    rng = np.random.default_rng(5)
    sp, truth = {}, {}
    for s in ("train", "val", "test"):
        g = rng.integers(0, 2, 200)
        ips = np.where(g[:, None] == 0, 0x401004, 0x401014)  # adjacent load sites, 16 bytes apart
        sp[f"ip_{s}"], truth[s] = np.repeat(ips, 10, axis=1), g
        sp[f"block_{s}"] = rng.integers(0, 10**6, (200, 10))
    assert np.ptp(map_data.hashed_ips(np.array([0x401004, 0x401014]))) > 0.01  # hashing spreads them
    lab = D.cluster(sp, 2, seed=0)
    for s in lab:
        agree = (lab[s] == truth[s]).mean()
        assert max(agree, 1 - agree) == 1.0


def _fixed_model(perfect: bool) -> torch.nn.Module:
    """Linear(100 -> 256) on the flattened input: the identity on bits 0..99 (a perfect predictor of
    the synthetic labels below) or all zeros (outputs 0.5 everywhere: no better than the plateau)."""
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 256))
    with torch.no_grad():
        m[1].weight.zero_()
        m[1].bias.zero_()
        if perfect:
            m[1].weight[:100] = 20 * torch.eye(100)
            m[1].bias.fill_(-10)
    return m


def test_patience_runs_only_off_the_plateau():
    """With lr 0 nothing improves: a model stuck at the input-blind plateau trains the whole budget,
    one above it stops after ``patience`` epochs without improvement."""
    rng = np.random.default_rng(3)
    x = (rng.random((400, 10, 10)) < 0.3).astype(np.float32)
    y = np.zeros((400, 256), np.uint8)
    y[:, :100] = x.reshape(400, 100)
    cfg = D.TrainConfig(epochs=6, patience=2, lr=0.0, progress=False)
    stuck = D.fit(_fixed_model(False), (x[:300], y[:300]), (x[300:], y[300:]), cfg)
    assert stuck["epochs"] == 6 and stuck["left_plateau_epoch"] is None
    assert max(stuck["val_f1"]) <= stuck["plateau_f1"] + 1e-12
    good = D.fit(_fixed_model(True), (x[:300], y[:300]), (x[300:], y[300:]), cfg)
    assert good["val_f1"][0] == 1.0 and good["left_plateau_epoch"] == 1
    assert good["epochs"] == 1 + cfg.patience


def test_teacher_verdict():
    assert D.teacher_verdict(0.50, 0.45) is None
    assert "inconclusive" in D.teacher_verdict(0.47, 0.45)


def test_distill_cli_writes_loadable_outputs(tmp_path):
    out = tmp_path / "run"
    rc = main(["distill", "--app", "pr", "--arch", "mixer", "--method", "packd", "--clusters", "2",
               "--preset", "cpu", "--scale", "12", "--max-loads", "300000", "--max-rows", "2000",
               "--epochs", "1", "--batch-size", "64", "--allow-degenerate", "-o", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == "packd" and np.isfinite(m["f1"]) and m["floor"] > 0
    student = zoo.load_checkpoint(out / "student.pt")
    ck = torch.load(out / "student.pt", weights_only=True)
    assert ck["meta"]["arch"] == "mixer" and ck["meta"]["app"] == "pr" and ck["meta"]["method"] == "packd"
    for c in range(2):
        t = zoo.load_checkpoint(out / f"teacher_{c}.pt")
        assert zoo.count_params(t) > 10 * zoo.count_params(student)
    sp = map_data.load_splits(out / "data.npz")
    from models.metrics import summarize
    x_val, x_te = torch.from_numpy(sp["x_val"]), torch.from_numpy(sp["x_test"])
    with torch.no_grad():
        again = summarize(student(x_val).numpy(), sp["y_val"], student(x_te).numpy(), sp["y_test"])
    assert again["f1"] == pytest.approx(m["f1"], abs=1e-6)


def test_bad_distill_inputs(pr_splits):
    with pytest.raises(ValueError, match="unknown method"):
        D.KDSpec("lstm", "fitnet")
    with pytest.raises(ValueError, match="clusters"):
        D.cluster(pr_splits, 1)
    with pytest.raises(ValueError, match="alpha"):
        D.TrainConfig(alpha=2).check()


def test_negative_seed_is_refused_by_train_config():
    with pytest.raises(D.DistillError, match=r"--seed -1: use a non-negative integer"):
        D.TrainConfig(seed=-1).check()
    D.TrainConfig(seed=np.int64(2)).check()  # numpy integers are fine
