"""``paretofab export --qonnx OUT.onnx``: a quantized student as the QONNX file a user's Brevitas
model would be (``brevitas.export.export_qonnx``), so our students take the same path into
``paretofab accel`` as anyone's. The student is a sweep's model spec (``digits``, a GTN student
``.pt``, a PaCKD checkpoint or ``distill`` folder) quantized by :func:`quant.ptq.quantize_model`
with the sweep's own workload and calibration (:func:`quant.sweep.load_workload`), or
``zoo:ARCH``: an untrained :mod:`models.zoo` student (:func:`untrained_student`) — enough to
check or cost its hardware, which does not care whether the weights were trained.

The command line of ``paretofab export``; what it runs (:func:`paretofab.qonnx_export._export`)
needs torch and Brevitas and is imported only when the command runs.
"""

from __future__ import annotations

import argparse

from quant.common import HelpFormatter

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    p = sub.add_parser("export", help="write a quantized student as QONNX (the input of `paretofab accel`)",
                       formatter_class=HelpFormatter, description=__doc__.split("\n\n")[0].replace("\n", " "),
                       epilog="example:\n  paretofab export --qonnx digits_int8.onnx --model digits --wfmt int8 "
                              "--afmt int8 --save-inputs x.npy\n  paretofab accel digits_int8.onnx --inputs x.npy "
                              "--sim --backend verilator --check")
    p.add_argument("--qonnx", required=True, metavar="OUT.onnx", help="QONNX file to write")
    p.add_argument("--model", default="digits", help="digits, a GTN student .pt, a PaCKD checkpoint or distill folder, "
                   "or zoo:ARCH (an untrained models.zoo student, e.g. zoo:resnet: its hardware, not its accuracy)")
    p.add_argument("--wfmt", default="int8", help="weight format")
    p.add_argument("--afmt", default="int8", help="activation format")
    p.add_argument("--ptq", default="none", help="PTQ techniques, e.g. weq+gptq (see `paretofab sweep --help`)")
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor (default: per channel)")
    p.add_argument("--unsigned-acts", action="store_true", help="unsigned activations after ReLU")
    p.add_argument("--seed", type=int, default=0, help="data split / calibration seed")
    p.add_argument("--n-calib", type=int, default=256, help="calibration inputs")
    p.add_argument("--save-inputs", metavar="X.npy", help="also save the calibration inputs (for accel --inputs)")
    p.set_defaults(func="paretofab.qonnx_export:_export")
