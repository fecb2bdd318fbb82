"""The GTN on MAP traces (models.gtn_map, models.gtn.MapTask, ``paretofab gtn --data TRACE-FOLDER``).

References are independent of the code under test: a subnet against :class:`models.zoo.ResNetNet`
(the zoo's own forward) holding copies of the subnet's weight slices; the KD gradient against a
hand-written Bernoulli KL divergence; the student loss against :func:`models.distill.kd_loss`;
checkpoints against :func:`models.zoo.load_checkpoint` and ``quant.sweep.load_workload``, and
their scores against a fresh micro-F1 of the reloaded model.
"""

from __future__ import annotations

import copy
import time

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from models import distill as D
from models import gtn as G
from models import gtn_eval as E
from models import map_data, metrics, traces, zoo
from models.gtn_map import (DEFAULT_POOL, MAP, TEACHER, MapSpec, Supernet, build_student, find_workload,
                            load_student, parse_map_pool, save_student)
from models.gtn_pool import sandwich
from paretofab.cli import main

POOL = parse_map_pool("r1w8,r2w12,r1w16")


@pytest.fixture(scope="module")
def trace_folder(tmp_path_factory):
    """A folder holding one small generated trace (pr, scale 12: a few thousand LLC accesses)."""
    d = tmp_path_factory.mktemp("trace")
    tr = traces.generate(traces.TraceConfig("pr", scale=12, seed=0, max_loads=200_000))
    traces.write_trace(d / "pr.txt.xz", tr)
    return d


@pytest.fixture(scope="module")
def task(trace_folder):
    tr = traces.read_trace(trace_folder / "pr.txt.xz")
    sp = map_data.make_splits(tr.addr, tr.ip, max_rows=1200)
    return G.MapTask.from_splits(sp, MAP)


def test_pool_spans_2k_to_40k_and_holds_packds_student():
    pool = parse_map_pool(DEFAULT_POOL)
    assert len(pool) >= 6
    assert 1_500 <= pool[0].params <= 3_000 and 35_000 <= pool[-1].params <= 50_000
    assert any(s.params == zoo.count_params(zoo.build("resnet", "student")) for s in pool)
    packd = MapSpec.parse("r1w32")
    assert packd.kwargs == zoo.preset_kwargs("resnet", "student")
    for s in pool + (MapSpec.parse(TEACHER),):
        assert s.params == zoo.count_params(zoo.ResNetNet(s.stem, ((s.mid, s.width, s.depth),)))
    assert MapSpec.parse(TEACHER).params > pool[-1].params


def _zoo_reference(net: Supernet, spec: MapSpec) -> zoo.ResNetNet:
    """The subnet as a plain zoo ResNet: every parameter the leading slice of the supernet's."""
    ref = zoo.ResNetNet(spec.stem, ((spec.mid, spec.width, spec.depth),))
    big = dict(net.net.named_parameters())
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(big[name][tuple(slice(0, n) for n in p.shape)])
    return ref.train()  # batch statistics, as the supernet


def test_subnets_share_weights_with_the_supernet():
    torch.manual_seed(0)
    net = Supernet(POOL)
    x = torch.rand(32, 10, 10)
    spec = MapSpec(2, 12)
    out = net(x, spec)
    assert out.shape == (32, 256)
    assert torch.allclose(out, _zoo_reference(net, spec)(x), atol=1e-5)
    assert torch.allclose(net.extract(spec).train()(x), out, atol=1e-5)
    blk = net.net.features[4]  # the second bottleneck block
    with torch.no_grad():
        blk.body[3].weight[0, 1, 1, 1] += 0.5            # inside r2w12 (middle channels 0..1): changes
    changed = net(x, spec)
    assert not torch.allclose(changed, out)
    assert torch.allclose(changed, _zoo_reference(net, spec)(x), atol=1e-5)
    with torch.no_grad():
        blk.body[6].weight[12:] += 1.0                   # output channels >= 12: no effect
        net.net.head.weight[:, 12:] += 1.0               # head columns of channels >= 12: no effect
    assert torch.allclose(net(x, spec), changed, atol=1e-6)
    one = MapSpec(1, 12)
    before = net(x, one)
    with torch.no_grad():
        blk.body[0].weight += 1.0                        # the second block: no effect on depth 1
    assert torch.equal(net(x, one), before)
    net.zero_grad()
    net(x, one).sum().backward()
    g = net.net.features[3].body[6].weight.grad          # first block's 1x1 expansion (16 x 2)
    assert g[:12].abs().sum() > 0 and g[12:].abs().sum() == 0
    assert blk.body[0].weight.grad is None or blk.body[0].weight.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="does not fit"):
        net(x, MapSpec(3, 8))


def test_extract_recalibrates_normalization_statistics():
    torch.manual_seed(1)
    net = Supernet(POOL)
    x = torch.rand(256, 10, 10) * 3 + 1  # one calibration batch: the running mean is its mean
    m = net.extract(MapSpec(1, 8), calib=x)
    bn = m.features[1]
    ref = F.conv2d(x.unsqueeze(1), m.features[0].weight, padding=1)
    assert torch.allclose(bn.running_mean, ref.mean(dim=(0, 2, 3)), atol=1e-4)
    assert not m.training


def test_sandwich_includes_the_extremes():
    pool = parse_map_pool(DEFAULT_POOL)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(100):
        draw = sandwich(pool, 1, gen)
        assert draw[:2] == [pool[-1], pool[0]] and len(set(draw)) == 3
        seen.update(draw[2:])
    assert seen == set(pool[1:-1])


def _hand_bernoulli_kl(t: torch.Tensor, s: torch.Tensor, T: float) -> torch.Tensor:
    pt, ps = torch.sigmoid(t / T), torch.sigmoid(s / T)
    return T * T * (pt * torch.log(pt / ps) + (1 - pt) * torch.log((1 - pt) / (1 - ps))).mean()


@pytest.mark.parametrize("lam", [0.0, 0.8])
def test_teacher_receives_the_students_kd_gradient_only_when_weighted(lam):
    torch.manual_seed(2)
    teacher = build_student(MapSpec(1, 16))
    net = Supernet(POOL)
    x, y = torch.rand(16, 10, 10), (torch.rand(16, 256) < 0.1).float()
    cfg = G.GTNConfig(kd_weight=lam, temperature=2.0, teacher="r1w16")
    specs = sandwich(POOL, 1, torch.Generator().manual_seed(0))
    teacher.train()
    t = teacher(x)
    s = [net(x, sp) for sp in specs]
    lt, ls = G.gtn_losses(t, s, y, cfg, G.MapTask)
    params = list(teacher.parameters())
    grad = torch.autograd.grad(lt, params, retain_graph=True)
    own = torch.autograd.grad(F.binary_cross_entropy_with_logits(t, y), params, retain_graph=True)
    kd = torch.stack([_hand_bernoulli_kl(t, z.detach(), 2.0) for z in s]).mean()
    kd_grad = torch.autograd.grad(kd, params, retain_graph=True)
    for g, go, gk in zip(grad, own, kd_grad):
        assert torch.allclose(g - go, lam * gk, atol=1e-6)
        if lam == 0:
            assert torch.equal(g, go)
    assert sum(float(gk.abs().sum()) for gk in kd_grad) > 1e-4
    assert all(g is None for g in torch.autograd.grad(ls, params, allow_unused=True, retain_graph=True))
    assert float(torch.autograd.grad(ls, net.net.head.weight)[0].abs().sum()) > 0


def test_map_student_loss_is_packds_kd():
    s, t = torch.randn(8, 256), torch.randn(8, 256)
    y = (torch.rand(8, 256) < 0.1).float()
    assert torch.allclose(G.kd_loss(s, y, t, 0.7, 1.0, G.MapTask), D.kd_loss(s, y, t, 0.7, 1.0), atol=1e-7)
    ref = 0.3 * F.binary_cross_entropy_with_logits(s, y) + 0.7 * _hand_bernoulli_kl(t, s, 3.0)
    assert torch.allclose(G.kd_loss(s, y, t, 0.3, 3.0, G.MapTask), ref, atol=1e-6)
    assert torch.equal(G.kd_loss(s, y, None, 0.3, 3.0, G.MapTask), F.binary_cross_entropy_with_logits(s, y))


def test_gtn_step_with_zero_weight_is_the_standard_teacher_step():
    x, y = torch.rand(32, 10, 10), (torch.rand(32, 256) < 0.1).float()
    torch.manual_seed(3)
    start = build_student(MapSpec(1, 16))
    after = {}
    for lam in (0.0, 0.5, None):
        teacher = copy.deepcopy(start).train()
        opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
        if lam is None:
            G.teacher_step(teacher, opt, x, y, G.MapTask)
        else:
            net = Supernet(POOL)
            G.gtn_step(teacher, net, opt, torch.optim.Adam(net.parameters(), lr=1e-2), x, y,
                       G.GTNConfig(kd_weight=lam, teacher="r1w16"), torch.Generator().manual_seed(0), G.MapTask)
        after[lam] = torch.cat([p.detach().flatten() for p in teacher.parameters()])
    assert torch.equal(after[0.0], after[None])
    assert not torch.allclose(after[0.5], after[None])


def test_trained_student_reloads_standalone_with_the_same_outputs(task, tmp_path):
    cfg = G.GTNConfig(teacher_epochs=1, student_epochs=2, patience=1, batch_size=64, lr=5e-3, alpha=0.7,
                      temperature=1.0, teacher="r1w16")
    cfg.check(MAP)
    spec = MapSpec(1, 8)
    teacher, tinfo = G.train_teacher(task, cfg, seed=0)
    logits = G.logits_of(teacher, task.x_train)
    student, info = G.train_student(task, spec, logits, cfg, seed=0)
    save_student(tmp_path / "s.pt", student, teacher="generic", seed=0, accuracy=info["test_accuracy"])
    for back in (load_student(tmp_path / "s.pt"), zoo.load_checkpoint(tmp_path / "s.pt")):
        assert isinstance(back, zoo.ResNetNet) and back.meta["name"] == "r1w8"
        assert torch.equal(back(task.x_test), student(task.x_test))
    thr = metrics.best_threshold(G.logits_of(student, task.x_val), task.y_val.numpy(), logits=True)[0]
    f1 = metrics.micro_f1(G.logits_of(student, task.x_test), task.y_test.numpy(), thr, logits=True)
    assert info["test_accuracy"] == pytest.approx(f1) and info["threshold"] == thr
    assert load_student(tmp_path / "s.pt").spec == spec
    a, _ = G.train_student(task, spec, None, cfg, seed=0)
    b, _ = G.train_student(task, spec, None, cfg, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="training inputs"):
        G.train_student(task, spec, torch.zeros(5, 256), cfg, seed=0)


def test_find_workload_names_the_fix(tmp_path, trace_folder):
    assert find_workload(trace_folder) == ("trace", trace_folder / "pr.txt.xz")
    assert find_workload(trace_folder / "pr.txt.xz") == ("trace", trace_folder / "pr.txt.xz")
    (tmp_path / "data.npz").write_bytes(b"")
    assert find_workload(tmp_path)[0] == "splits"
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, words in ((empty, "no trace file"), (tmp_path / "nope", "no such file")):
        with pytest.raises(ValueError, match=words) as e:
            find_workload(bad)
        assert "--data digits" in str(e.value) and "\n" not in str(e.value)
    (empty / "a.txt").write_text("")
    (empty / "b.txt.xz").write_text("")
    with pytest.raises(ValueError, match="2 trace files"):
        find_workload(empty)


# ---- the command ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gtn_map_run(trace_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("gtn_map") / "run"
    t0 = time.perf_counter()
    rc = main(["gtn", "--data", str(trace_folder), "--pool", "r1w4,r1w8,r1w12", "--teacher", "r1w16",
               "--rows", "1200", "--epochs", "1", "--seeds", "2", "--seed", "1", "--allow-degenerate",
               "-o", str(out)])
    return rc, out, time.perf_counter() - t0


def test_gtn_map_command_writes_every_student_teacher_seed(gtn_map_run):
    rc, out, seconds = gtn_map_run
    assert rc == 0  # ~25 s on 2 idle cores (wall time is not asserted: shared machines)
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == list(E.COLUMNS)
    pool = ["r1w4", "r1w8", "r1w12"]
    expect = {(s, t, seed) for s in pool for seed in (1, 2) for t in ("generic", "standard", "none")}
    expect |= {(s, "custom", seed) for s in ("r1w4", "r1w8") for seed in (1, 2)}
    assert set(zip(df.student, df.teacher, df.seed)) == expect and len(df) == len(expect)
    assert dict(zip(df.student, df.params)) == {s: MapSpec.parse(s).params for s in pool}
    assert df.accuracy.between(0, 1).all() and (df.train_seconds > 0).all()
    costs = pd.read_csv(out / "costs.csv")
    assert set(costs.approach) == set(E.TEACHERS) and len(costs) == 8
    assert (out / "accuracy_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gtn_map_checkpoints_load_standalone_score_as_reported_and_sweep(gtn_map_run):
    from quant.sweep import load_workload

    _, out, _ = gtn_map_run
    sp = map_data.load_splits(out / "students" / "data.npz")
    df = pd.read_csv(out / "results.csv")
    for row in df.itertuples():
        path = out / "students" / f"{row.student}-{row.teacher}-seed{row.seed}.pt"
        model = zoo.load_checkpoint(path)
        assert model.meta["name"] == row.student and zoo.count_params(model) == row.params
        val = D.predict(model, sp["x_val"])
        thr = metrics.best_threshold(val, sp["y_val"], logits=True)[0]
        f1 = metrics.micro_f1(D.predict(model, sp["x_test"]), sp["y_test"], thr, logits=True)
        assert f1 == pytest.approx(row.accuracy, abs=1e-9)
    w = load_workload(str(out / "students" / "r1w8-generic-seed1.pt"), threshold="val")
    test_f1, _ = w.evaluate(w.model)
    assert test_f1 == pytest.approx(float(df[(df.student == "r1w8") & (df.teacher == "generic")
                                               & (df.seed == 1)].accuracy.iloc[0]), abs=1e-6)
    for name in ("generic-seed1", "standard-seed2", "custom-r1w8-seed1"):
        assert load_student(out / "teachers" / f"{name}.pt").spec == MapSpec(1, 16)


@pytest.mark.parametrize("argv, words", [
    (["--pool", "r1w4,d1w4"], "rDwW"),
    (["--teacher", "d3w96"], "rDwW"),
    (["--custom", "r1w64"], "not in the pool"),
])
def test_gtn_map_command_errors_are_one_line_exit_2(trace_folder, tmp_path, capsys, argv, words):
    out = tmp_path / "o"
    assert main(["gtn", "--data", str(trace_folder), "--pool", "r1w4,r1w8", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()
