"""What ``paretofab export`` runs (its parser, which says what it writes: :mod:`paretofab.export_cli`):
:func:`export_student_qonnx` quantizes a sweep's model spec with the sweep's own workload and
calibration, or builds an untrained :mod:`models.zoo` student (:func:`untrained_student`), and
writes its QONNX with Brevitas' ``export_qonnx`` (:func:`write_qonnx`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.map_data import HISTORY, TOKENS
from models.zoo import build
from quant.ptq import PTQConfig, as_batches, quantize_model
from quant.sweep import load_workload

__all__ = ["export_student_qonnx", "untrained_student", "write_qonnx"]


def untrained_student(arch: str, seed: int = 0, n_calib: int = 256):
    """A :mod:`models.zoo` student (preset ``student``) with random weights and random BatchNorm
    statistics (so folding them leaves biases and scales to check), in eval mode, and ``n_calib``
    calibration inputs uniform in [0, 1) shaped as MAP inputs (batch, history, tokens)."""
    import torch  # heavy: torch

    torch.manual_seed(seed)
    model = build(arch, "student")
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_mean.normal_(0, 0.3)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.2)
    return model.eval(), torch.rand(n_calib, HISTORY, TOKENS)


def export_student_qonnx(spec: str, wfmt: str, afmt: str, path: str | Path, *, seed: int = 0, n_calib: int = 256,
                         config: PTQConfig | None = None) -> tuple[Path, np.ndarray]:
    """Quantize the student ``spec`` to ``wfmt`` weights / ``afmt`` activations and write its
    QONNX to ``path``; returns the path and the calibration inputs (float32, batch first)."""
    import torch  # heavy: torch

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.startswith("zoo:"):
        model, calib = untrained_student(spec[4:], seed, n_calib)
    else:
        wl = load_workload(spec, seed, n_calib)
        model, calib = wl.model, wl.calib
    qmodel = quantize_model(model, wfmt, afmt, calib_data=calib, config=config)
    write_qonnx(qmodel, as_batches(calib, 1)[0][:1], path)
    return path, torch.cat(as_batches(calib)).numpy().astype(np.float32)


def write_qonnx(qmodel, example, path: str | Path) -> None:
    """Brevitas' ``export_qonnx`` of the quantized model ``qmodel`` traced on ``example`` (one
    input, batch first) to ``path``, without gradients."""
    import torch  # heavy: torch
    from brevitas.export import export_qonnx  # heavy: brevitas

    with torch.no_grad():
        export_qonnx(qmodel, example, export_path=str(path))


def _export(args: argparse.Namespace) -> int:
    cfg = PTQConfig(per_channel=not args.per_tensor, techniques=args.ptq, unsigned_acts=args.unsigned_acts,
                    seed=args.seed)
    path, calib = export_student_qonnx(args.model, args.wfmt, args.afmt, args.qonnx, seed=args.seed,
                                       n_calib=args.n_calib, config=cfg)
    print(f"wrote {path} ({args.model}, weights {args.wfmt}, activations {args.afmt}, PTQ {args.ptq or 'none'})")
    if args.save_inputs:
        np.save(args.save_inputs, calib)
        print(f"wrote {args.save_inputs} ({len(calib)} calibration inputs, shape {list(calib.shape)})")
    return 0
