"""Generic Teacher Network (models.gtn_pool, models.gtn, models.gtn_eval, ``paretofab gtn``).

References are independent of the code under test: a subnet is checked against a plain
full-width ``nn`` network whose channels beyond the subnet's width are zeroed; the KD gradient
against a hand-written KL divergence; parameter counts against ``count_params`` of built modules;
checkpoint accuracies against a fresh evaluation on a freshly loaded split.
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import gtn as G
from models import gtn_eval as E
from models.digits_data import load_data
from models.gtn_pool import (DEFAULT_POOL, DigitsCNN, StudentSpec, Supernet, load_student, parse_pool,
                             sandwich, save_student)
from models.zoo import ZooError, count_params
from paretofab.cli import main

POOL = parse_pool("d1w4,d2w6,d3w8")


def _masked_reference(net: Supernet, spec: StudentSpec) -> nn.Sequential:
    """The subnet as a plain full-width network: the supernet's first ``depth`` convolutions and
    head, with every weight of a channel at or beyond ``width`` set to zero (ReLU(0) = 0, so those
    channels carry nothing)."""
    w, W = spec.width, net.width
    layers: list[nn.Module] = []
    with torch.no_grad():
        for i in range(spec.depth):
            src = net.convs[i]
            conv = nn.Conv2d(src.in_channels, W, 3, padding=1)
            conv.weight.copy_(src.weight)
            conv.bias.copy_(src.bias)
            conv.weight[w:] = 0
            conv.bias[w:] = 0
            if i:
                conv.weight[:, w:] = 0
            layers += [conv, nn.ReLU()]
        head = nn.Linear(W * 16, 10)
        head.weight.copy_(net.head.weight)
        head.bias.copy_(net.head.bias)
        head.weight[:, w * 16:] = 0
    return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Flatten(), head)


def test_params_closed_form_matches_the_modules():
    for spec in parse_pool(DEFAULT_POOL) + (StudentSpec(4, 128), StudentSpec(1, 2)):
        assert spec.params == count_params(DigitsCNN(spec.depth, spec.width))
    pool = parse_pool(DEFAULT_POOL)
    assert len(pool) >= 6
    assert 1_500 <= pool[0].params <= 3_000 and 40_000 <= pool[-1].params <= 60_000


def test_subnets_share_weights_with_the_supernet():
    torch.manual_seed(0)
    net = Supernet(POOL)
    x = torch.rand(5, 1, 8, 8)
    spec = StudentSpec(2, 6)
    out = net(x, spec)
    ref = _masked_reference(net, spec)(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(net.extract(spec)(x), out, atol=1e-5)
    with torch.no_grad():
        net.convs[1].weight[2, 3, 1, 1] += 0.5          # inside the subnet: its output changes
    changed = net(x, spec)
    assert not torch.allclose(changed, out)
    assert torch.allclose(changed, _masked_reference(net, spec)(x), atol=1e-5)
    with torch.no_grad():
        net.convs[1].weight[7, 3, 1, 1] += 0.5          # channel 7 >= width 6: no effect
        net.convs[2].weight += 1.0                      # a third convolution: no effect on depth 2
        net.head.weight[:, 6 * 16:] += 1.0              # head columns of channels >= 6: no effect
    assert torch.equal(net(x, spec), changed)
    # gradients of the subnet reach exactly its slice of the shared weights
    net.zero_grad()
    net(x, spec).sum().backward()
    g = net.convs[1].weight.grad
    assert g[:6, :6].abs().sum() > 0 and g[6:].abs().sum() == 0 and g[:, 6:].abs().sum() == 0
    assert net.convs[2].weight.grad is None or net.convs[2].weight.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="does not fit"):
        net(x, StudentSpec(4, 6))


def test_sandwich_includes_the_extremes_and_draws_the_rest():
    pool = parse_pool(DEFAULT_POOL)
    by_params = sorted(pool, key=lambda s: count_params(DigitsCNN(s.depth, s.width)))
    largest, smallest = by_params[-1], by_params[0]
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        draw = sandwich(pool, 2, gen)
        assert draw[:2] == [largest, smallest]
        assert len(draw) == 4 and len(set(draw)) == 4 and set(draw) <= set(pool)
        seen.update(draw[2:])
    assert seen == set(pool) - {largest, smallest}  # every middle member gets drawn
    assert sandwich(pool, 99, gen)[:2] == [largest, smallest] and len(sandwich(pool, 99, gen)) == len(pool)
    assert sandwich(pool, 0, gen) == [largest, smallest]
    one = (StudentSpec(2, 8),)
    assert sandwich(one, 3, gen) == [StudentSpec(2, 8)]
    a = sandwich(pool, 2, torch.Generator().manual_seed(5))
    assert a == sandwich(pool, 2, torch.Generator().manual_seed(5))


def _hand_kl(t: torch.Tensor, s: torch.Tensor, T: float) -> torch.Tensor:
    p = torch.softmax(t / T, 1)
    q = torch.softmax(s / T, 1)
    return T * T * (p * (torch.log(p) - torch.log(q))).sum(1).mean()


@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_teacher_receives_the_students_kd_gradient_only_when_weighted(lam):
    torch.manual_seed(1)
    teacher = DigitsCNN(1, 6)
    net = Supernet(POOL)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    cfg = G.GTNConfig(kd_weight=lam, temperature=3.0)
    specs = sandwich(POOL, 1, torch.Generator().manual_seed(0))
    t = teacher(x)
    s = [net(x, sp) for sp in specs]
    lt, ls = G.gtn_losses(t, s, y, cfg)
    params = list(teacher.parameters())
    grad = torch.autograd.grad(lt, params, retain_graph=True)
    ce_grad = torch.autograd.grad(F.cross_entropy(teacher(x), y), params)
    kd = torch.stack([_hand_kl(teacher(x), z.detach(), 3.0) for z in s]).mean()
    kd_grad = torch.autograd.grad(kd, params)
    for g, gc, gk in zip(grad, ce_grad, kd_grad):
        assert torch.allclose(g - gc, lam * gk, atol=1e-6)
        if lam == 0:
            assert torch.equal(g, gc)
    assert sum(float(gk.abs().sum()) for gk in kd_grad) > 1e-3  # the KD term has a gradient to give
    # the students' own loss never reaches the teacher, but reaches the supernet
    assert all(g is None for g in torch.autograd.grad(ls, params, allow_unused=True))
    assert float(torch.autograd.grad(ls, net.convs[0].weight)[0].abs().sum()) > 0


def test_gtn_step_with_zero_weight_is_the_standard_teacher_step():
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    torch.manual_seed(2)
    start = DigitsCNN(2, 8)
    after = {}
    for lam in (0.0, 0.5, None):
        teacher = copy.deepcopy(start)
        opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
        if lam is None:
            G.teacher_step(teacher, opt, x, y)
        else:
            net = Supernet(POOL)
            G.gtn_step(teacher, net, opt, torch.optim.Adam(net.parameters(), lr=1e-2), x, y,
                       G.GTNConfig(kd_weight=lam), torch.Generator().manual_seed(0))
        after[lam] = torch.cat([p.detach().flatten() for p in teacher.parameters()])
    assert torch.equal(after[0.0], after[None])
    assert not torch.allclose(after[0.5], after[None])


def test_kd_loss_is_hinton_kd():
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    ref = 0.3 * F.cross_entropy(s, y) + 0.7 * _hand_kl(t, s, 2.0)
    assert torch.allclose(G.kd_loss(s, y, t, 0.3, 2.0), ref, atol=1e-6)
    assert torch.equal(G.kd_loss(s, y, None, 0.3, 2.0), F.cross_entropy(s, y))


def test_student_checkpoint_loads_standalone_and_reproduces_logits(tmp_path):
    torch.manual_seed(3)
    net = Supernet(POOL)
    model = net.extract(StudentSpec(3, 8))
    x = torch.rand(7, 1, 8, 8)
    save_student(tmp_path / "s.pt", model, teacher="generic", seed=0)
    del net
    back = load_student(tmp_path / "s.pt")
    assert isinstance(back, DigitsCNN) and back.meta["teacher"] == "generic"
    assert back.meta["params"] == count_params(model) == StudentSpec(3, 8).params
    assert torch.equal(back(x), model(x))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ZooError, match="not a digits-cnn checkpoint"):
        load_student(tmp_path / "junk.pt")
    torch.save({"state_dict": {}, "meta": {"arch": "resnet", "kwargs": {}}}, tmp_path / "map.pt")
    with pytest.raises(ZooError, match="'resnet'"):
        load_student(tmp_path / "map.pt")


@pytest.mark.parametrize("spec, msg", [("d1w12", "at least two"), ("d1w12,x3", "dDwW"),
                                       ("d1w12,d1w12", "twice"), ("d9w4,d1w4", "depth must be"),
                                       ("", "at least two")])
def test_bad_pool_specs_name_the_fix(spec, msg):
    with pytest.raises(ValueError, match=msg) as e:
        parse_pool(spec)
    assert "\n" not in str(e.value)


def test_custom_members_default_and_parse():
    pool = parse_pool(DEFAULT_POOL)
    assert [s.name for s in E.custom_members(pool)] == ["d1w12", "d2w24"]
    assert [s.name for s in E.custom_members(parse_pool("d1w4,d2w4"))] == ["d1w4", "d2w4"]
    assert E.parse_custom("none", pool) == ()
    with pytest.raises(ValueError, match="not in the pool"):
        E.parse_custom("d4w4", pool)


# ---- the command ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gtn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gtn") / "run"
    rc = main(["gtn", "--data", "digits", "--pool", "d1w4,d2w4,d2w6", "--teacher", "d1w16", "--epochs", "2",
               "--seeds", "2", "--seed", "1", "-o", str(out)])
    return rc, out


def test_gtn_command_writes_every_student_teacher_seed(gtn_run, capsys):
    rc, out = gtn_run
    assert rc == 0
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == ["student", "params", "teacher", "seed", "accuracy", "train_seconds"]
    pool = ["d1w4", "d2w4", "d2w6"]
    custom = {"d1w4", "d2w4"}  # default: the smallest and the middle member
    expect = {(s, t, seed) for s in pool for seed in (1, 2) for t in ("generic", "standard", "none")}
    expect |= {(s, "custom", seed) for s in custom for seed in (1, 2)}
    got = set(zip(df.student, df.teacher, df.seed))
    assert got == expect and len(df) == len(expect)
    assert set(df.teacher) <= set(E.TEACHERS)
    assert dict(zip(df.student, df.params)) == {s: StudentSpec.parse(s).params for s in pool}
    assert df.accuracy.between(0, 1).all() and (df.train_seconds > 0).all()
    teachers = pd.read_csv(out / "teachers.csv")
    assert sorted(teachers.teacher) == sorted(["standard", "generic", "custom", "custom"] * 2)
    costs = pd.read_csv(out / "costs.csv")
    assert set(costs.approach) == set(E.TEACHERS) and len(costs) == 8
    png = (out / "accuracy_vs_params.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_gtn_checkpoints_load_standalone_and_score_as_reported(gtn_run):
    _, out = gtn_run
    df = pd.read_csv(out / "results.csv")
    data = load_data(1)  # the split the run used (--seed 1)
    for row in df.itertuples():
        model = load_student(out / "students" / f"{row.student}-{row.teacher}-seed{row.seed}.pt")
        assert model.spec == StudentSpec.parse(row.student)
        acc = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
        assert acc == pytest.approx(row.accuracy, abs=1e-6)
    for name in ("generic-seed1", "standard-seed2", "custom-d2w4-seed1"):
        assert load_student(out / "teachers" / f"{name}.pt").spec == StudentSpec(1, 16)


@pytest.mark.parametrize("argv, words", [
    (["--data", "traces/bc"], "--data digits"),
    (["--pool", "d1w4,zz"], "dDwW"),
    (["--pool", "d1w4"], "at least two"),
    (["--custom", "d3w8"], "not in the pool"),
    (["--teacher", "big"], "--teacher"),
    (["--seed", "-1"], "non-negative"),
])
def test_gtn_command_errors_are_one_line_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "o"
    assert main(["gtn", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_gtn_command_refuses_a_file_as_output(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["gtn", "--data", "digits", "-o", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and "give a folder" in err and "\n" not in err
    assert main(["gtn", "--data", "digits", "-o", str(f / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(f) in err and "folder" in err and "\n" not in err


def test_same_seed_same_student_and_the_teacher_changes_it():
    data = load_data(0)
    cfg = G.GTNConfig(teacher_epochs=1, student_epochs=2, patience=5, teacher="d1w8")
    spec = StudentSpec(1, 4)
    a, ia = G.train_student(data, spec, None, cfg, seed=3)
    b, ib = G.train_student(data, spec, None, cfg, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert ia["test_accuracy"] == ib["test_accuracy"]
    teacher, _ = G.train_teacher(data, cfg, seed=3)
    c, _ = G.train_student(data, spec, G.logits_of(teacher, data.x_train), cfg, seed=3)
    assert not torch.equal(c.head.weight, a.head.weight)
    with pytest.raises(ValueError, match="training inputs"):
        G.train_student(data, spec, torch.zeros(5, 10), cfg, seed=3)
