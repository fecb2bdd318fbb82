"""`paretofab traces` / `paretofab distill` through the dispatcher: outputs and one-line errors."""

import numpy as np

from models import traces
from paretofab.cli import main


def test_traces_command_writes_mldpc_with_header(tmp_path, capsys):
    out = tmp_path / "pr.txt"
    assert main(["traces", "--app", "pr", "--scale", "10", "--max-loads", "50000", "--l2-kb", "16",
                 "-o", str(out)]) == 0
    tr = traces.read_trace(out)
    ref = traces.generate(traces.TraceConfig("pr", scale=10, max_loads=50_000, l2_kb=16))
    assert np.array_equal(tr.addr, ref.addr)
    printed = capsys.readouterr().out
    assert "LLC accesses" in printed and "verdict" in printed
    # the header records the generator settings and the statistics printed
    assert tr.meta["scale"] == 10 and tr.meta["l2_kb"] == 16 and tr.meta["skip_loads"] == 3 * 2**10
    assert f"{tr.meta['stats']['freq_f1']:.3f}" in printed
    assert main(["traces", "--stats", str(out)]) == 0
    again = capsys.readouterr().out
    assert f"{tr.meta['stats']['ip_f1']:.3f}" in again and "verdict" in again


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["traces", "--app", "pr", "--scale", "40", "-o", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "scale" in err and "\n" not in err and "Traceback" not in err
    assert main(["distill", "--trace", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not found" in err and "\n" not in err
    assert main(["traces", "--app", "pr"]) == 2
    assert "-o FILE" in capsys.readouterr().err


def test_distill_refuses_a_degenerate_trace_with_one_line(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["distill", "--app", "pr", "--scale", "10", "--max-loads", "50000", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "degenerate trace" in err and "--allow-degenerate" in err and "\n" not in err
    assert not out.exists()


# ---- paretofab prune ---------------------------------------------------------------------------------


import json  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from models import map_data, zoo  # noqa: E402
from models import prune as P  # noqa: E402


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    """An (untrained) resnet student folder: student.pt + data.npz, as `paretofab distill` writes."""
    d = tmp_path_factory.mktemp("student")
    tr = traces.generate(traces.TraceConfig("pr", scale=10, seed=0, max_loads=50_000))
    map_data.save_splits(d / "data.npz", map_data.make_splits(tr.addr, tr.ip, max_rows=800))
    torch.manual_seed(0)
    model = zoo.build("resnet", "student")
    zoo.save_checkpoint(d / "student.pt", model, {"arch": "resnet", "preset": "student",
                                                  "kwargs": zoo.preset_kwargs("resnet", "student")})
    return d


def test_prune_command_hybrid_class_aware_srste(student_dir, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["prune", "--checkpoint", str(student_dir / "student.pt"), "--pattern", "2:4+b8k0.5",
                 "--classes", "top32", "--epochs", "1", "-o", str(out)]) == 0
    msg = capsys.readouterr().out
    assert "2:4+b8k0.5 (class saliency, SR-STE 1 epochs)" in msg and str(out) in msg
    model = zoo.load_checkpoint(out / "student.pt")
    assert model.meta["pruned"] == "2:4+b8k0.5" and model.meta["saliency"] == "class"
    for name, mod in P.prunable_layers(model):
        P.check_pattern(mod.weight, "2:4+b8k0.5", name)
    res = json.loads((out / "metrics.json").read_text())
    y = map_data.load_splits(student_dir / "data.npz")["y_train"]
    assert res["classes"] == P.resolve_classes("top32", y).tolist() and len(res["classes"]) == 32
    assert 0.6 < res["sparsity"] < 0.8 and "f1_classes" in res and "f1" in res["dense"]
    assert (out / "data.npz").exists()


def test_prune_command_one_shot_equals_api(student_dir, tmp_path):
    out = tmp_path / "q"
    assert main(["prune", "--checkpoint", str(student_dir / "student.pt"), "--pattern", "1:4", "--epochs", "0",
                 "--skip", "first", "-o", str(out)]) == 0
    got = zoo.load_checkpoint(out / "student.pt")
    want = P.prune(zoo.load_checkpoint(student_dir / "student.pt"), "1:4", skip=["first"])
    for (n, a), (_, b) in zip(got.state_dict().items(), want.state_dict().items()):
        assert torch.equal(a, b), n
    assert (got.features[0].weight != 0).all(), "first layer left dense"


@pytest.mark.parametrize("args,word", [
    (["--pattern", "5:4"], "N=5 > M=4"),
    (["--pattern", "2:4+b6k0.5"], "not a multiple of M=4"),
    (["--pattern", "2:4", "--n", "2", "--m", "4"], "not both"),
    ([], "say what to prune to"),
    (["--pattern", "2:4", "--classes", "top32", "--saliency", "magnitude"], "--saliency class"),
    (["--pattern", "2:4", "--skip", "stem"], "no prunable layer 'stem'"),
    (["--pattern", "b8k0.5", "--classes", "top999"], "1..256"),
])
def test_prune_errors_are_one_line(student_dir, tmp_path, capsys, args, word):
    assert main(["prune", "--checkpoint", str(student_dir / "student.pt"), "--epochs", "0", *args,
                 "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and "\n" not in err and "Traceback" not in err


def test_prune_missing_files(tmp_path, student_dir, capsys):
    assert main(["prune", "--checkpoint", str(tmp_path / "none.pt"), "--pattern", "2:4", "-o", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["prune", "--checkpoint", str(student_dir / "student.pt"), "--data", str(tmp_path / "d.npz"),
                 "--pattern", "2:4", "-o", str(tmp_path / "y")]) == 2
    assert "d.npz not found" in capsys.readouterr().err


# ---- issue 14: one vocabulary, one-line errors ------------------------------------------------------


import bz2  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["pickle", "random", "text", "foreign_torch"])
def test_prune_on_a_foreign_checkpoint_is_one_line_exit_2(tmp_path, capsys, kind):
    """Row: `prune --checkpoint` on a pickle payload (and random bytes, a text file, a torch file
    without our meta) -> "not a paretofab checkpoint", exit 2; the payload never runs."""
    marker, ck = tmp_path / "pwned", tmp_path / "student.pt"
    if kind == "pickle":
        ck.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    elif kind == "random":
        ck.write_bytes(np.random.default_rng(1).bytes(1000))
    elif kind == "text":
        ck.write_text("not a checkpoint\n")
    else:
        torch.save({"weights": torch.zeros(2)}, ck)
    assert main(["prune", "--checkpoint", str(ck), "--pattern", "2:4", "-o", str(tmp_path / "o")]) == 2
    err = _one_line(capsys)
    assert f"{ck}: not a paretofab checkpoint (" in err and "weights_only" not in err
    assert not marker.exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("cmd", [["distill", "-o", "D"], ["traces", "-o", "D/t.txt"], ["traces", "--stats", "S"],
                                 ["prune", "--checkpoint", "C", "--pattern", "2:4", "-o", "D"]])
def test_negative_seed_is_one_line_naming_the_fix(tmp_path, capsys, cmd):
    """Row: `--seed -1` in distill / traces (and prune) -> one line, exit 2, before any work."""
    argv = [a.replace("D", str(tmp_path / "out")).replace("S", str(tmp_path / "s.txt"))
            .replace("C", str(tmp_path / "c.pt")) for a in cmd]
    assert main([*argv, "--seed", "-1"]) == 2
    err = _one_line(capsys)
    assert "--seed -1" in err and "non-negative" in err and "--seed 0" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cmd", ["distill", "traces"])
def test_random_bytes_as_trace_name_the_file(tmp_path, capsys, cmd):
    """Row: random bytes as `--trace` (and `traces --stats`) -> "FILE is not an ML-DPC load trace"."""
    bad = tmp_path / "junk.txt"
    bad.write_bytes(bytes(range(256)) * 4)
    argv = (["distill", "--trace", str(bad), "-o", str(tmp_path / "d")] if cmd == "distill"
            else ["traces", "--stats", str(bad)])
    assert main(argv) == 2
    err = _one_line(capsys)
    assert f"{bad} is not an ML-DPC load trace: binary data" in err and "utf-8" not in err


def test_traces_bz2_output_is_honoured(tmp_path, capsys):
    """Row: `traces -o x.bz2` wrote plain text -> it writes bz2, and bz2 reads back (also via --trace)."""
    out = tmp_path / "pr.txt.bz2"
    assert main(["traces", "--app", "pr", "--scale", "10", "--max-loads", "50000", "--l2-kb", "16",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert out.read_bytes()[:3] == b"BZh"
    assert bz2.decompress(out.read_bytes()).decode().startswith("# generator:")
    ref = traces.generate(traces.TraceConfig("pr", scale=10, max_loads=50_000, l2_kb=16))
    assert np.array_equal(traces.read_trace(out).addr, ref.addr)
    assert main(["traces", "--stats", str(out)]) == 0
    assert "verdict" in capsys.readouterr().out


def test_traces_refuses_a_compression_it_cannot_write(tmp_path, capsys):
    out = tmp_path / "pr.txt.zst"
    assert main(["traces", "--app", "pr", "--scale", "8", "-o", str(out)]) == 2
    err = _one_line(capsys)
    assert ".zst" in err and ".txt.bz2" in err and not out.exists()


def test_distill_clusters_9_names_the_range(tmp_path, capsys):
    """Row: `distill --clusters 9` said "2..4 (at most 8 allowed)" -> "use 2..8", before any trace."""
    assert main(["distill", "--clusters", "9", "-o", str(tmp_path / "d")]) == 2
    err = _one_line(capsys)
    assert "--clusters 9: use 2..8" in err


def test_prune_old_pattern_flags_are_hidden_deprecated_aliases(student_dir, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["prune", "--checkpoint", str(student_dir / "student.pt"), "--n", "1", "--m", "4", "--epochs", "0",
                 "--skip", "first", "-o", str(out)]) == 0
    err = _one_line(capsys)
    assert "deprecated" in err and "--pattern 1:4" in err
    assert zoo.load_checkpoint(out / "student.pt").meta["pruned"] == "1:4"
    assert main(["prune", "--checkpoint", str(student_dir / "student.pt"), "--n", "2", "-o", str(out)]) == 2
    assert "both N and M" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("cmd,example", [("traces", "paretofab traces --app bc -o"),
                                         ("distill", "paretofab distill --app bc"),
                                         ("prune", "paretofab prune --checkpoint")])
def test_models_help_has_description_example_and_defaults(capsys, cmd, example):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    assert rest.split("\n\n")[0].strip() and not rest.startswith("options:")  # a description
    assert "example" in out and example in out
    assert "(default 0)" in " ".join(out.split())  # --seed's default, shown
    if cmd == "prune":
        assert "--pattern PATTERN" in out and "2:4+b8k0.5" in out
        for old in ("--n ", "--m ", "--block", "--keep"):
            assert old not in out
