"""Model zoo: parameter counts, shapes, fx-traceability, sliding-window attention, checkpoints."""

import numpy as np
import pytest
import torch
import torch.fx

from models import zoo


@pytest.mark.parametrize("arch,ref", [("lstm", 11_904), ("mixer", 10_206), ("resnet", 9_324)])
def test_student_params_within_10pct_of_packd(arch, ref):
    n = zoo.count_params(zoo.build(arch, "student"))
    assert abs(n - ref) <= 0.10 * ref, (arch, n)


def test_lstm_student_count_by_formula():
    # nn.LSTM: 4h(i + h) weights + 8h biases; head h*256 + 256. PaCKD's student: the 100 tokens
    # flattened into one step, hidden 16; the 10-step alternative (input 10, hidden 28) is as large
    for model, i, h in ((zoo.build("lstm", "student"), 100, 16),
                        (zoo.build("lstm", "student", steps=10, hidden=28), 10, 28)):
        assert zoo.count_params(model) == 4 * h * (i + h) + 8 * h + h * 256 + 256 == 11_904
    assert zoo.build("lstm", "student").lstm.input_size == 100


def test_flattened_lstm_sees_the_whole_history_in_one_step():
    torch.manual_seed(0)
    m = zoo.build("lstm", "student").eval()
    x = torch.rand(3, 10, 10)
    h = torch.zeros(1, 3, 16)
    ref, _ = m.lstm(x.reshape(3, 1, 100), (h, h))  # one step from the zero state
    assert torch.allclose(m(x), m.head(ref[:, 0]))


def test_swa_student_is_student_sized():
    assert 9_000 <= zoo.count_params(zoo.build("swa", "student")) <= 12_500


@pytest.mark.parametrize("arch", zoo.ARCHS)
def test_teacher_presets_sizes(arch):
    assert 150_000 <= zoo.count_params(zoo.build(arch, "cpu")) <= 450_000
    assert 4.5e6 <= zoo.count_params(zoo.build(arch, "paper")) <= 6.0e6


@pytest.mark.parametrize("arch", zoo.ARCHS)
def test_forward_shape_and_fx(arch):
    torch.manual_seed(0)
    m = zoo.build(arch, "student").eval()
    x = torch.rand(5, 10, 10)
    y = m(x)
    assert y.shape == (5, 256) and torch.isfinite(y).all()
    gm = torch.fx.symbolic_trace(m)
    assert torch.allclose(gm(x), y)


def test_window_mask_hand_worked():
    m = zoo.window_mask(4, 2)
    allowed = (~m).int().tolist()
    assert allowed == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]


def test_sliding_window_attention_sees_only_its_window():
    torch.manual_seed(1)
    att = zoo.SlidingWindowAttention(dim=8, heads=2, window=3, history=10).eval()
    x = torch.randn(1, 10, 8)
    y = att(x)
    x2 = x.clone()
    x2[0, 2] += 5.0  # position 2 is outside the window of queries 5..9, inside that of 2..4
    y2 = att(x2)
    changed = (y2 - y).abs().amax(dim=-1)[0] > 1e-6
    assert changed.tolist() == [False, False, True, True, True, False, False, False, False, False]


def test_attention_matches_bruteforce_softmax():
    torch.manual_seed(2)
    att = zoo.SlidingWindowAttention(dim=4, heads=1, window=2, history=5).eval()
    x = torch.randn(1, 5, 4)
    q, k, v = att.q(x)[0], att.k(x)[0], att.v(x)[0]
    out = []
    for i in range(5):
        js = [j for j in range(5) if i - 2 < j <= i]
        s = torch.stack([q[i] @ k[j] / 2.0 for j in js])
        w = torch.softmax(s, 0)
        out.append(sum(w[n] * v[j] for n, j in enumerate(js)))
    exp = att.o(torch.stack(out))
    assert torch.allclose(att(x)[0], exp, atol=1e-5)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    torch.manual_seed(3)
    m = zoo.build("resnet", "student")
    m.train()
    m(torch.rand(8, 10, 10))  # move BatchNorm running stats
    m.eval()
    zoo.save_checkpoint(tmp_path / "s.pt", m, {"arch": "resnet", "preset": "student",
                                               "kwargs": zoo.preset_kwargs("resnet", "student"),
                                               "app": "pr", "method": "none"})
    ck = torch.load(tmp_path / "s.pt", weights_only=True)
    assert ck["meta"]["app"] == "pr"
    back = zoo.load_checkpoint(tmp_path / "s.pt")
    assert not back.training and back.meta["method"] == "none"
    x = torch.rand(4, 10, 10)
    assert torch.equal(back(x), m(x))


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown architecture"):
        zoo.build("vgg", "student")
    with pytest.raises(ValueError, match="unknown preset"):
        zoo.build("lstm", "huge")
    with pytest.raises(ValueError, match="window"):
        zoo.build("swa", "student", window=20)
    with pytest.raises(FileNotFoundError):
        zoo.load_checkpoint(tmp_path / "nope.pt")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a paretofab"):
        zoo.load_checkpoint(tmp_path / "bad.pt")


# ---- foreign / corrupt checkpoints: one-line ZooError, payload never executed ----------------------


import os  # noqa: E402
import pickle  # noqa: E402


class _Payload:
    """A pickle whose unpickling would create a file (must never happen)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _refused(path):
    with pytest.raises(zoo.ZooError) as e:
        zoo.load_checkpoint(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not a paretofab checkpoint (") and "\n" not in msg
    assert "weights_only" not in msg and "Traceback" not in msg
    return msg


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    msg = _refused(tmp_path / "evil.pt")
    assert "system" in msg  # names the global it refused
    (tmp_path / "evil4.pt").write_bytes(pickle.dumps(_Payload(marker)))  # protocol 4 framing
    _refused(tmp_path / "evil4.pt")
    torch.save(_Payload(marker), tmp_path / "evil_zip.pt")  # inside a torch zip
    assert "system" in _refused(tmp_path / "evil_zip.pt")
    assert not marker.exists()


def test_random_bytes_are_refused(tmp_path):
    (tmp_path / "r.pt").write_bytes(np.random.default_rng(0).bytes(400))
    _refused(tmp_path / "r.pt")


def test_text_file_is_refused(tmp_path):
    (tmp_path / "t.pt").write_text("hello world\n")
    assert "text file" in _refused(tmp_path / "t.pt")


def test_empty_and_truncated_files_are_refused(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    assert "empty" in _refused(tmp_path / "e.pt")
    torch.save({"state_dict": {}, "meta": {}}, tmp_path / "z.pt")
    b = (tmp_path / "z.pt").read_bytes()
    (tmp_path / "tr.pt").write_bytes(b[: len(b) // 2])
    _refused(tmp_path / "tr.pt")


def test_torch_file_without_our_meta_is_refused(tmp_path):
    torch.save({"x": 1}, tmp_path / "a.pt")
    assert "state_dict and meta" in _refused(tmp_path / "a.pt")
    torch.save(torch.zeros(3), tmp_path / "b.pt")
    _refused(tmp_path / "b.pt")
    torch.save({"state_dict": {}, "meta": {"arch": "vgg", "kwargs": {}}}, tmp_path / "c.pt")
    assert "unknown architecture" in _refused(tmp_path / "c.pt")
    m = zoo.build("lstm", "student")
    torch.save({"state_dict": m.state_dict(), "meta": {"arch": "resnet", "preset": "student",
                                                       "kwargs": zoo.preset_kwargs("resnet", "student")}},
               tmp_path / "d.pt")
    assert "do not fit a resnet model" in _refused(tmp_path / "d.pt")
