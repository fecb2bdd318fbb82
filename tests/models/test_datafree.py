"""Data-free KD (models.datafree, ``paretofab datafree``; issue 18).

References are independent of the code under test: the BatchNorm-statistic loss and total
variation against numpy hand computations; the DAFL losses against numpy; the condensation
against an embedding network and class means computed here (not the module's ``embedding_net``
or ``dm_loss``); the distilled student against a noise-KD student of the same budget on the real
test split.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from models.datafree import run as R
from models.datafree.condense import condense, few_shot
from models.datafree.dafl import DAFLConfig, Generator, dafl_losses, train_dafl
from models.datafree.dynamic import DynamicCollection, DynamicConfig, js_divergence, train_dynamic
from models.datafree.guard import SplitReadError, sealed
from models.datafree.inversion import (BNStatLoss, InversionConfig, balanced_labels, bn_stat_loss,
                                       deep_inversion, total_variation)
from models.datafree.kd import KDConfig, curve_stats
from models.datafree.replay import StoreReplay, VAEReplay, vae_loss
from models.datafree.teacher import BNTeacher, load_teacher, train_bn_teacher
from models.digits_data import load_data
from models.gtn import GTNConfig, accuracy, train_student
from models.gtn_pool import DigitsCNN, StudentSpec, load_student
from paretofab.cli import main


@pytest.fixture(scope="module")
def data():
    return load_data(0)


@pytest.fixture(scope="module")
def teacher(data):
    """A small BN teacher: width 8, 4 epochs (measured 97.2 % test accuracy, seed 0)."""
    torch.set_num_threads(1)
    t, info = train_bn_teacher(data, 4, 0, width=8)
    assert info["test_accuracy"] > 0.9
    return t


# ---- BatchNorm-statistic loss, priors --------------------------------------------------------------

def _hand_bn(a: np.ndarray, rm: np.ndarray, rv: np.ndarray) -> float:
    c = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)
    mean = c.mean(1)
    var = ((c - mean[:, None]) ** 2).mean(1)
    return float(np.sqrt(((mean - rm) ** 2).sum()) + np.sqrt(((var - rv) ** 2).sum()))


def test_bn_stat_loss_is_zero_at_the_running_statistics_and_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(1.5, 2.0, size=(6, 3, 4, 4)).astype(np.float64)
    c = a.transpose(1, 0, 2, 3).reshape(3, -1)
    mean, var = c.mean(1), c.var(1)  # numpy's var is the biased one
    x = torch.from_numpy(a)
    assert float(bn_stat_loss(x, torch.from_numpy(mean), torch.from_numpy(var))) == pytest.approx(0, abs=1e-9)
    rm, rv = np.zeros(3), np.ones(3)
    got = float(bn_stat_loss(x, torch.from_numpy(rm), torch.from_numpy(rv)))
    assert got == pytest.approx(_hand_bn(a, rm, rv), rel=1e-9) and got > 1.0


def test_bn_hooks_gather_every_layer_and_vanish_when_fed_the_real_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5)).eval()
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    net = net.double()
    with torch.no_grad():  # set each BN's running statistics to what this batch gives it
        h1 = net[0](x)
        net[1].running_mean.copy_(h1.mean((0, 2, 3)))
        net[1].running_var.copy_(h1.var((0, 2, 3), unbiased=False))
        h2 = net[3](net[2](net[1](h1)))
        net[4].running_mean.copy_(h2.mean((0, 2, 3)))
        net[4].running_var.copy_(h2.var((0, 2, 3), unbiased=False))
    with BNStatLoss(net) as stats:
        net(x)
        assert len(stats.terms) == 2
        assert float(stats.pop().detach()) == pytest.approx(0, abs=1e-9)
        y = torch.rand(16, 1, 8, 8, dtype=torch.float64) * 2
        net(y)
        got = float(stats.pop().detach())
    with torch.no_grad():
        g1 = net[0](y).numpy()
        g2 = net[3](net[2](net[1](net[0](y)))).numpy()
    want = (_hand_bn(g1, net[1].running_mean.numpy(), net[1].running_var.numpy())
            + _hand_bn(g2, net[4].running_mean.numpy(), net[4].running_var.numpy()))
    assert got == pytest.approx(want, rel=1e-9) and got > 0
    net(x)  # hooks are gone after the context
    assert not stats.terms
    with pytest.raises(ValueError, match="BatchNorm"):
        BNStatLoss(nn.Linear(2, 2))


def test_total_variation_by_hand():
    a = np.random.default_rng(1).random((2, 1, 4, 5))
    h = np.mean([abs(a[b, 0, i + 1, j] - a[b, 0, i, j]) for b in range(2) for i in range(3) for j in range(5)])
    v = np.mean([abs(a[b, 0, i, j + 1] - a[b, 0, i, j]) for b in range(2) for i in range(4) for j in range(4)])
    assert float(total_variation(torch.from_numpy(a))) == pytest.approx(h + v, rel=1e-12)


def test_dafl_losses_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], dtype=torch.float64)
    feats = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    got = dafl_losses(logits, feats)
    assert float(got["onehot"]) == pytest.approx(-(np.log(p[0, 0]) + np.log(p[1, 1])) / 2)
    assert float(got["activation"]) == pytest.approx(-3.5 / 4)
    pm = p.mean(0)
    assert float(got["entropy"]) == pytest.approx((pm * np.log(pm)).sum())
    uniform = dafl_losses(torch.zeros(4, 10), torch.zeros(4, 3))["entropy"]
    assert float(uniform) == pytest.approx(-math.log(10), rel=1e-6)  # the minimum: a balanced class mix


# ---- inversion ------------------------------------------------------------------------------------

def test_inversion_lowers_the_bn_loss_and_the_cross_entropy(teacher):
    hist: list[dict] = []
    labels = balanced_labels(40)
    x = deep_inversion(teacher, labels, InversionConfig(steps=60), 0, history=hist)
    assert x.shape == (40, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    first = hist[0]
    bn_last = np.mean([h["bn"] for h in hist[-5:]])
    ce_last = np.mean([h["ce"] for h in hist[-5:]])
    assert bn_last < 0.5 * first["bn"] and ce_last < 0.2 * first["ce"]
    assert accuracy(teacher, x, labels) >= 0.9  # the teacher sees the chosen labels
    assert all(p.requires_grad for p in teacher.parameters())  # the teacher is left trainable as found


def test_generator_images_and_dafl_one_hot_loss_fall(teacher):
    torch.manual_seed(0)
    hist: list[dict] = []
    student = DigitsCNN(1, 4)
    gen, curve = train_dafl(teacher, student, DAFLConfig(iterations=60, batch_size=32, eval_every=30), 0,
                            history=hist)
    x = gen(torch.randn(5, gen.latent))
    assert x.shape == (5, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert np.mean([h["onehot"] for h in hist[-10:]]) < np.mean([h["onehot"] for h in hist[:10]])
    assert curve == []  # no test split given, no curve
    assert isinstance(Generator(), nn.Module)


# ---- condensation and few-shot ----------------------------------------------------------------------

def _held_out_gap(images: torch.Tensor, k: int, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over 10 random embeddings built here (not the module's) of Σ_c ‖class mean − mean of
    the k images of class c‖², embeddings flattened conv3x3(16)+tanh features."""
    total = 0.0
    for s in range(10):
        g = torch.Generator().manual_seed(10_000 + s)
        w = torch.randn(16, 1, 3, 3, generator=g) / 3
        emb = lambda z: torch.tanh(torch.nn.functional.conv2d(z, w, padding=1)).flatten(1)  # noqa: E731
        with torch.no_grad():
            for c in range(10):
                total += float(((emb(x[y == c]).mean(0) - emb(images[c * k:(c + 1) * k]).mean(0)) ** 2).sum())
    return total / 10


@pytest.mark.parametrize("k", [1, 10])
def test_condensed_means_match_the_real_class_means_better_than_random_real_samples(data, k):
    x, y = data.x_train, data.y_train
    images, labels = condense(x, y, k, 40, seed=0)
    assert images.shape == (10 * k, 1, 8, 8) and labels.tolist() == [c for c in range(10) for _ in range(k)]
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    gap = _held_out_gap(images, k, x, y)
    random_gaps = [_held_out_gap(few_shot(x, y, k, seed)[0], k, x, y) for seed in range(1, 6)]
    assert gap < min(random_gaps), (gap, random_gaps)


def test_few_shot_draws_k_real_images_of_each_class(data):
    x, y = data.x_train, data.y_train
    images, labels = few_shot(x, y, 3, 0)
    assert images.shape == (30, 1, 8, 8)
    flat = x.flatten(1)
    for img, c in zip(images, labels):
        hits = (flat == img.flatten()).all(1)
        assert bool(hits.any()) and int(c) in set(y[hits].tolist())
    with pytest.raises(ValueError, match="fewer than"):
        few_shot(x[:20], y[:20], 5, 0)


# ---- guard, KD, end to end ------------------------------------------------------------------------

def test_sealed_training_split_fails_any_read(data):
    blind = sealed(data)
    assert len(blind.x_train) == len(data.x_train)
    for read in (lambda: blind.x_train[0], lambda: blind.x_train.mean(), lambda: blind.y_train == 3,
                 lambda: float(blind.x_train.sum())):
        with pytest.raises(SplitReadError):
            read()
    assert float(blind.x_test.sum()) == float(data.x_test.sum())


TINY = R.Budget(teacher_epochs=2, real=GTNConfig(student_epochs=3, patience=2), images=200, batch=100,
                inversion=InversionConfig(steps=60), kd=KDConfig(epochs=30),
                dafl=DAFLConfig(iterations=20, eval_every=10), condense_iterations=5)


def test_student_distilled_on_inverted_images_beats_the_noise_floor(teacher, data):
    """Measured with this budget (width-8 teacher, d1w8 student; seeds 0, 1, 2): noise KD
    32.2 / 11.7 / 29.4 %, DeepInversion KD 57.8 / 41.4 / 57.5 %: gaps of 25-30 points. The test asks
    for 15 points on seed 0, on the real test split, with the training split sealed."""
    spec = StudentSpec(1, 8)
    blind = sealed(data)
    inv, curve, memory, images = R.datafree_student(teacher, spec, "deepinv", TINY, 0, blind)
    noise, ncurve, _, _ = R.datafree_student(teacher, spec, "noise", TINY, 0, blind)
    a_inv, a_noise = accuracy(inv, data.x_test, data.y_test), accuracy(noise, data.x_test, data.y_test)
    assert a_inv >= a_noise + 0.15 and a_inv > 0.1 + 0.3, (a_inv, a_noise)
    assert len(curve) == TINY.kd.epochs and curve[-1] == pytest.approx(a_inv)
    assert memory == TINY.images * 64 * 4 and images.shape == (TINY.images, 1, 8, 8)


def test_curve_stats_by_hand():
    st = curve_stats([0.2, 0.6, 0.5, 0.7, 0.3, 0.4])
    assert st == {"final": 0.4, "best": 0.7, "worst_drop": pytest.approx(0.4)}
    assert math.isnan(curve_stats([])["final"])


def test_run_writes_loadable_students_results_and_metrics(data, tmp_path):
    budget = R.Budget(teacher_epochs=1, real=GTNConfig(student_epochs=1, patience=1), images=20, batch=10,
                      inversion=InversionConfig(steps=3), kd=KDConfig(epochs=2), dafl=DAFLConfig(iterations=4, eval_every=2),
                      condense_iterations=2)
    df = R.run(data, "deepinv", StudentSpec(1, 4), budget, 0, tmp_path, side="condensed", per_class=1)
    df2 = R.run(data, "deepinv", StudentSpec(1, 4), budget, 0, tmp_path / "all", side="fewshot", per_class=1,
                uses=("init", "feat", "mix"))
    assert load_student(tmp_path / "all" / "student.pt").meta["uses"] == ["init", "feat", "mix"]
    assert df2["accuracy"].iloc[0] == df["accuracy"].iloc[0]  # same seed, same teacher
    assert list(df["model"]) == ["teacher", "ce-real", "kd-real", "kd-noise", "deepinv", "deepinv+condensed1"]
    assert list(pd.read_csv(tmp_path / "results.csv").columns) == list(R.COLUMNS)
    # the student on real data without KD: cross-entropy on the labels (train_student without a
    # teacher, the same seed), not the KD student
    ce = load_student(tmp_path / "students" / "ce-real.pt")
    torch.manual_seed(0)
    alone, _ = train_student(data, StudentSpec(1, 4), None, budget.real, 0)
    kd = load_student(tmp_path / "students" / "kd-real.pt").state_dict()
    for name, w in ce.state_dict().items():
        assert torch.allclose(w, alone.state_dict()[name], atol=1e-6), name
    assert any(not torch.allclose(w, kd[n]) for n, w in ce.state_dict().items() if w.is_floating_point())
    row = pd.read_csv(tmp_path / "results.csv").set_index("model").loc["ce-real"]
    assert row["method"] == "ce-real" and row["accuracy"] == pytest.approx(accuracy(ce, data.x_test, data.y_test))
    student = load_student(tmp_path / "student.pt")
    assert student.meta["side"] == "condensed" and student.meta["uses"] == ["mix"]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(accuracy(student, data.x_test, data.y_test))
    assert m["teacher_accuracy"] == pytest.approx(accuracy(load_teacher(tmp_path / "teacher.pt"), data.x_test, data.y_test))
    assert len(m["curve"]) == 2 and (tmp_path / "curves.png").stat().st_size > 0
    side = torch.load(tmp_path / "side.pt", weights_only=True)
    assert side["images"].shape == (10, 1, 8, 8)
    syn = torch.load(tmp_path / "synthetic.pt", weights_only=True)["images"]  # the inverted set, no side images
    assert syn.shape == (budget.images, 1, 8, 8) and float(syn.min()) >= 0 and float(syn.max()) <= 1
    with pytest.raises(ValueError, match="--uses mix"):
        R.run(data, "dafl", StudentSpec(1, 4), budget, 0, tmp_path, side="fewshot", per_class=1, uses=("init",))
    assert isinstance(load_teacher(tmp_path / "teacher.pt"), BNTeacher)


@pytest.mark.parametrize("argv, words", [
    (["--data", "cifar"], "--teacher digits"),
    (["--teacher", "cifar"], "--teacher digits"),
    (["--method", "magic"], "use one of inversion, condensed"),
    (["--method", "condensed", "--per-class", "0"], "--per-class 0"),
    (["--method", "fewshot", "--per-class", "51"], "1..50"),
    (["--method", "inversion", "--per-class", "1"], "condensed or fewshot"),
    (["--method", "condensed", "--fewshot", "1"], "not both"),
    (["--method", "vae-replay", "--replay", "store"], "brings vae"),
    (["--method", "dynamic", "--fewshot", "1", "--uses", "feat"], "--uses mix"),
    (["--condensed", "1", "--fewshot", "1"], "not both"),
    (["--condensed", "-1"], "samples per class"),
    (["--condensed", "80"], "1..50"),
    (["--seed", "-1"], "non-negative"),
    (["--uses", "magic"], "--uses"),
    (["--method", "dafl", "--fewshot", "1", "--uses", "init"], "--uses mix"),
    (["--student", "big"], "dDwW"),
    (["--replay", "vae"], "--method dafl"),
])
def test_datafree_command_errors_are_one_line_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "o"
    assert main(["datafree", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_datafree_command_refuses_a_file_as_output(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["datafree", "-o", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and "\n" not in err


@pytest.mark.slow
def test_quick_budget_command_beats_the_noise_floor(tmp_path):
    """The CLI's quick budget end to end (measured 52 s on an idle core, seed 0: DeepInversion
    95.0 %, noise 68.6 %)."""
    assert main(["datafree", "--data", "digits", "--method", "deepinv", "--seed", "0", "-o", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "results.csv").set_index("model")
    assert df.loc["deepinv", "accuracy"] >= df.loc["kd-noise", "accuracy"] + 0.15
    assert df.loc["teacher", "accuracy"] >= 0.97


@pytest.mark.slow
def test_quick_budget_dynamic_command_beats_the_noise_floor(tmp_path):
    """``--method dynamic`` at the quick budget, the issue's spelling (measured 73 s wall on one
    core, seed 0: dynamic 98.06 %, noise 68.61 %, real-data KD 98.06 %)."""
    assert main(["datafree", "--teacher", "digits", "--method", "dynamic", "--seed", "0", "-o", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "results.csv").set_index("model")
    assert df.loc["dynamic", "accuracy"] >= df.loc["kd-noise", "accuracy"] + 0.15


# ---- generative pseudo-replay ----------------------------------------------------------------------

def test_vae_reconstructs_its_training_samples_better_than_noise(data):
    """Trained 150 steps on 200 digits, the VAE's mean reconstruction (decoded μ) is closer to
    those digits than to uniform noise images it never saw (mean squared error per pixel)."""
    rep = VAEReplay(0)
    x = data.x_test[:200]  # any images serve; these are not the training split
    for _ in range(150):
        rep.observe(x)
    noise = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        def mse(z):
            return float(((rep.vae.decode(rep.vae.encode(z)[0]) - z) ** 2).mean())
        own, other = mse(x), mse(noise)
    assert own < 0.5 * other, (own, other)
    assert float(vae_loss(x, *rep.vae(x))) > 0
    s = rep.sample(7, torch.Generator().manual_seed(1))
    assert s.shape == (7, 1, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1
    assert rep.nbytes == sum(p.numel() for p in rep.vae.parameters()) * 4


def test_replay_memory_store_grows_vae_stays_constant():
    gen = torch.Generator().manual_seed(0)
    store, vae = StoreReplay(), VAEReplay(0)
    assert store.sample(3, gen) is None and vae.sample(3, gen) is None
    sizes = []
    for i in range(3):
        b = torch.rand(16, 1, 8, 8, generator=gen)
        store.observe(b)
        vae.observe(b)
        sizes.append((store.nbytes, vae.nbytes))
    assert [s for s, _ in sizes] == [16 * 64 * 4 * (i + 1) for i in range(3)]
    assert len({v for _, v in sizes}) == 1
    drawn = store.sample(50, gen)
    pool = torch.cat(store.images).flatten(1)
    assert all(bool((pool == d.flatten()).all(1).any()) for d in drawn)


def test_dafl_with_replay_records_its_memory(teacher, data):
    budget = R.Budget(teacher_epochs=1, real=GTNConfig(), images=20, batch=10, inversion=InversionConfig(steps=2),
                      kd=KDConfig(epochs=1), dafl=DAFLConfig(iterations=6, batch_size=16, eval_every=3),
                      condense_iterations=1)
    spec = StudentSpec(1, 4)
    _, curve, m_none, images = R.datafree_student(teacher, spec, "dafl", budget, 0, sealed(data))
    _, _, m_store, _ = R.datafree_student(teacher, spec, "dafl", budget, 0, sealed(data), replay="store")
    _, _, m_vae, _ = R.datafree_student(teacher, spec, "dafl", budget, 0, sealed(data), replay="vae")
    assert m_store - m_none == 6 * 16 * 64 * 4 and m_vae - m_none == VAEReplay(0).nbytes
    assert len(curve) == 2 and images.shape == (budget.images, 1, 8, 8)  # drawn from the final generator
    with pytest.raises(ValueError, match="--method dafl"):
        R.datafree_student(teacher, spec, "deepinv", budget, 0, sealed(data), replay="vae")


# ---- dynamic collection ---------------------------------------------------------------------------

def _np_js(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    p = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    q = np.exp(b) / np.exp(b).sum(1, keepdims=True)
    m = (p + q) / 2
    return 0.5 * (p * np.log(p / m)).sum(1) + 0.5 * (q * np.log(q / m)).sum(1)


class _PixelStudent(nn.Module):
    """A stand-in student whose logits are an image's first ten pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10]


def test_js_divergence_by_hand():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 10)) * 3, rng.normal(size=(5, 10))
    got = js_divergence(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert got == pytest.approx(_np_js(a, b), rel=1e-9)
    assert float(js_divergence(torch.from_numpy(a), torch.from_numpy(a)).abs().max()) < 1e-12
    far = js_divergence(torch.tensor([[50.0, 0.0]]), torch.tensor([[0.0, 50.0]]))
    assert float(far) == pytest.approx(math.log(2), rel=1e-6)  # the bound


def test_information_gain_gradient_reaches_the_generated_inputs(teacher):
    """d mean JS(teacher(x), student(x)) / dx is nonzero and equals a central finite difference
    along a random direction (float64 copies of both networks)."""
    import copy

    torch.manual_seed(0)
    t, s = copy.deepcopy(teacher).double().eval(), DigitsCNN(1, 4).double()
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    gain = js_divergence(t(x), s(x)).mean()
    (g,) = torch.autograd.grad(gain, x)
    assert float(g.abs().sum()) > 0
    d = torch.randn_like(x)
    eps = 1e-5
    with torch.no_grad():
        fd = (js_divergence(t(x + eps * d), s(x + eps * d)).mean()
              - js_divergence(t(x - eps * d), s(x - eps * d)).mean()) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=1e-4, abs=1e-10)


def test_generator_raises_the_disagreement_it_is_rewarded_for(teacher):
    """With only the information-gain term (and a student that barely learns), the generator's
    images drift to where student and teacher disagree: the mean JS rises."""
    torch.manual_seed(0)
    hist: list[dict] = []
    cfg = DynamicConfig(iterations=40, batch_size=32, capacity=64, lr_g=1e-2, lr_s=1e-9, bn=0, onehot=0,
                        entropy=0, gain=1)
    train_dynamic(teacher, DigitsCNN(1, 4), cfg, 0, history=hist)
    first, last = np.mean([h["gain"] for h in hist[:5]]), np.mean([h["gain"] for h in hist[-5:]])
    assert last > 1.5 * first, (first, last)
    assert all(p.requires_grad for p in teacher.parameters())


def test_collection_stays_bounded_keeps_the_newest_and_evicts_what_the_student_agrees_on():
    """Capacity 10, batches of 4. Students logits are the first ten pixels (zeros here); the
    teacher logits of image i are c_i·e_0 with random c_i, so the divergence of each member is
    known in numpy: after every add, the members are the newest batch plus the previous members
    of highest divergence (ties: the youngest kept)."""
    rng = np.random.default_rng(0)
    coll, student = DynamicCollection(10), _PixelStudent()
    expect: list[tuple[float, int]] = []  # (numpy divergence, id) of the members, arrival order
    gen = torch.Generator().manual_seed(0)
    assert coll.sample(3, gen) is None
    for b in range(8):
        c = rng.choice([0.0, 0.0, 1.0, 2.0, 3.0, 5.0], size=4)  # ties on purpose
        t = np.zeros((4, 10))
        t[:, 0] = c
        x = torch.zeros(4, 1, 8, 8)
        x[:, 0, 7, 7] = torch.arange(4) + 4 * b  # an id pixel, outside the student's ten
        divergence = _np_js(t, np.zeros((4, 10)))
        over = len(expect) + 4 - 10
        if over > 0:  # evict the lowest divergence, oldest first among equals
            order = sorted(range(len(expect)), key=lambda i: (round(expect[i][0], 12), i))
            gone = set(order[:over])
            expect = [e for i, e in enumerate(expect) if i not in gone]
        expect += [(float(divergence[i]), 4 * b + i) for i in range(4)]
        coll.add(x, torch.from_numpy(t).float(), student)
        ids = coll.images[:, 0, 7, 7].long().tolist()
        assert len(coll) <= 10 and coll.nbytes == len(coll) * (64 + 10) * 4
        assert set(range(4 * b, 4 * b + 4)) <= set(ids)  # the newest batch is in
        assert sorted(ids) == sorted(i for _, i in expect)
    xs, ts = coll.sample(50, gen)
    pool = coll.images.flatten(1)
    assert all(bool((pool == d.flatten()).all(1).any()) for d in xs) and ts.shape == (50, 10)
    with pytest.raises(ValueError, match="does not fit"):
        coll.add(torch.zeros(11, 1, 8, 8), torch.zeros(11, 10), student)


def test_dynamic_student_on_the_sealed_split_beats_the_noise_floor(teacher, data):
    """The dynamic method with the training split sealed (any read would raise): measured with
    this budget (width-8 teacher, d1w8 student; seeds 0, 1, 2): dynamic 74.4 / 75.0 / 79.2 %, noise
    KD 32.2 / 11.7 / 29.4 %. The test asks for 15 points on seed 0."""
    spec = StudentSpec(1, 8)
    budget = replace(TINY, dynamic=DynamicConfig(iterations=150, batch_size=64, capacity=256, eval_every=50))
    blind = sealed(data)
    student, curve, memory, images = R.datafree_student(teacher, spec, "dynamic", budget, 0, blind)
    noise = R.datafree_student(teacher, spec, "noise", budget, 0, blind).student
    a_dyn, a_noise = accuracy(student, data.x_test, data.y_test), accuracy(noise, data.x_test, data.y_test)
    assert a_dyn >= a_noise + 0.15, (a_dyn, a_noise)
    assert len(curve) == 3 and curve[-1] == pytest.approx(a_dyn)
    assert images.shape == (256, 1, 8, 8)
    gen_bytes = sum(p.numel() for p in Generator().parameters()) * 4
    assert memory == gen_bytes + 256 * (64 + 10) * 4


def test_recipes_map_the_issue_names_to_methods():
    assert R.recipe("inversion") == ("deepinv", "none", 0, "none")
    assert R.recipe("condensed") == ("deepinv", "condensed", 1, "none")
    assert R.recipe("fewshot", 10) == ("deepinv", "fewshot", 10, "none")
    assert R.recipe("vae-replay") == ("dafl", "none", 0, "vae")
    assert R.recipe("dynamic") == ("dynamic", "none", 0, "none")
    assert R.recipe("deepinv", condensed=10) == ("deepinv", "condensed", 10, "none")  # the older spelling
    assert R.recipe("dafl", replay="store") == ("dafl", "none", 0, "store")
    assert R.recipe("dynamic", fewshot=1) == ("dynamic", "fewshot", 1, "none")


@pytest.mark.parametrize("argv, last", [
    (["--method", "dynamic"], "dynamic"),
    (["--method", "condensed", "--per-class", "2"], "deepinv+condensed2"),
    (["--method", "vae-replay"], "dafl+vae-replay"),
])
def test_issue_spelling_end_to_end(tmp_path, monkeypatch, data, argv, last):
    """``paretofab datafree --teacher digits --method M [--per-class K] --budget quick --seed 0 -o
    DIR`` with the quick budget shrunk to seconds: the files, the final student's model row, and
    metrics.json's accuracy / teacher_accuracy recomputed here from the saved checkpoints."""
    tiny = R.Budget(teacher_epochs=2, real=GTNConfig(student_epochs=1, patience=1), images=20, batch=10,
                    inversion=InversionConfig(steps=3), kd=KDConfig(epochs=2),
                    dafl=DAFLConfig(iterations=4, batch_size=16, eval_every=2), condense_iterations=2,
                    dynamic=DynamicConfig(iterations=4, batch_size=16, capacity=32, eval_every=2))
    monkeypatch.setitem(R.BUDGETS, "quick", tiny)
    out = tmp_path / "run"
    assert main(["datafree", "--teacher", "digits", *argv, "--student", "d1w4", "--budget", "quick",
                 "--seed", "0", "-o", str(out)]) == 0
    df = pd.read_csv(out / "results.csv")
    assert df["model"].iloc[-1] == last
    m = json.loads((out / "metrics.json").read_text())
    student = load_student(out / "student.pt")
    assert m["accuracy"] == pytest.approx(accuracy(student, data.x_test, data.y_test))
    assert m["teacher_accuracy"] == pytest.approx(accuracy(load_teacher(out / "teacher.pt"), data.x_test, data.y_test))
    assert len(m["curve"]) == 2 and all(0 <= a <= 1 for a in m["curve"])
    assert torch.load(out / "synthetic.pt", weights_only=True)["images"].shape[1:] == (1, 8, 8)
    assert (out / "curves.png").stat().st_size > 0
