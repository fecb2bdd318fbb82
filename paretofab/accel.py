"""``paretofab accel MODEL.onnx``: a user's QONNX model (Brevitas ``export_qonnx``) read as a chain of
integer layers (:mod:`quant.qonnx_import`) — the first step of the whole-network accelerator
(issue 16). Prints each layer (shape, formats, scales, ReLU) and, with ``--inputs X.npy``, runs the
exact integer model and, with ``--check``, compares it with QONNX's own execution of the file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from quant.common import HelpFormatter
from quant.qonnx_import import QGraph, QLayer, QonnxError, execute_int, read_qonnx

__all__ = ["register", "layer_rows", "qonnx_outputs"]


def _scale_kind(scale) -> str:
    s = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    pow2 = bool(np.all(np.frexp(s)[0] == 0.5))
    return f"{'per channel' if s.size > 1 else 'per tensor'}{', power of two' if pow2 else ''}"


def layer_rows(graph: QGraph) -> list[dict]:
    """One dict per op: name, kind, input and output shapes (no batch), formats, scale kinds,
    bias, ReLU, MACs per inference (pools and reshapes: formats pass through, no MACs)."""
    rows, fmt_in = [], graph.in_quant.fmt
    for op in graph.layers:
        row = {"layer": op.name, "kind": type(op).__name__[1:].lower(), "in": list(op.in_shape),
               "out": list(op.out_shape), "input_format": fmt_in, "weight_format": "", "weight_scale": "",
               "bias": False, "relu": False, "output_format": fmt_in, "macs": 0}
        if isinstance(op, QLayer):
            row.update(kind=op.kind, weight_format=op.weight_quant.fmt, weight_scale=_scale_kind(op.weight_quant.scale),
                       bias=op.bias is not None, relu=op.relu, macs=op.macs,
                       output_format=op.out_quant.fmt if op.out_quant else "float")
        rows.append(row)
        fmt_in = row["output_format"]
    return rows


def qonnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """QONNX's own execution (``qonnx.core.onnx_exec``) of the file, one input row at a time."""
    from qonnx.core.modelwrapper import ModelWrapper  # heavy: qonnx
    from qonnx.core.onnx_exec import execute_onnx  # heavy: qonnx

    mw = ModelWrapper(str(path))
    name, out = mw.graph.input[0].name, mw.graph.output[0].name
    shape = [1, *[int(d) for d in mw.get_tensor_shape(name)[1:]]]
    return np.concatenate([execute_onnx(mw, {name: row.reshape(shape).astype(np.float32)})[out] for row in x])


def _accel(args: argparse.Namespace) -> int:
    graph = read_qonnx(args.model)
    rows = layer_rows(graph)
    doc: dict = {"model": str(args.model), "input": graph.input_name, "input_shape": list(graph.input_shape),
                 "input_format": graph.in_quant.fmt, "layers": rows}
    if args.inputs:
        try:
            x = np.load(args.inputs)
        except ValueError:
            raise QonnxError(f"{args.inputs}: not a .npy array of numbers; save one with numpy.save") from None
        feat = int(np.prod(graph.input_shape[1:]))
        if x.ndim < 1 or x.reshape(len(x), -1).shape[1] != feat:
            raise QonnxError(f"{args.inputs}: shape {x.shape} does not fit the model's input {list(graph.input_shape)} "
                             f"(give [batch, {feat}] or [batch, …] with {feat} values per row)")
        out, codes = execute_int(graph, x)
        doc["outputs"] = out.tolist()
        doc["codes"] = [c.tolist() for c in codes]
        if args.check:
            ref = qonnx_outputs(Path(args.model), x.reshape(len(x), -1)).reshape(out.shape)
            doc["qonnx_max_abs_diff"] = float(np.max(np.abs(out - ref)))
            doc["qonnx_equal"] = bool(np.array_equal(out, ref.astype(np.float64)))
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"{args.model}: input {graph.input_name} {list(graph.input_shape)} quantized to {graph.in_quant.fmt}; "
          f"{len(graph.compute)} layers with weights, {sum(r['macs'] for r in rows):,} MACs per inference")
    head = ("layer", "kind", "in", "out", "input", "weights", "weight scale", "bias", "relu", "output", "MACs")
    shape = lambda v: "×".join(map(str, v))  # noqa: E731
    table = [head] + [tuple(str(v) for v in (r["layer"], r["kind"], shape(r["in"]), shape(r["out"]), r["input_format"],
                                             r["weight_format"] or "-", r["weight_scale"] or "-",
                                             "yes" if r["bias"] else "no", "yes" if r["relu"] else "no",
                                             r["output_format"], f"{r['macs']:,}")) for r in rows]
    widths = [max(len(row[j]) for row in table) for j in range(len(head))]
    for row in table:
        print("  " + "  ".join(f"{v:<{w}}" for v, w in zip(row, widths)))
    if "outputs" in doc:
        print(f"outputs: {len(doc['outputs'])} rows from the exact integer model (--json for values and codes)")
    if "qonnx_equal" in doc:
        print(f"QONNX execution: {'equal, exactly' if doc['qonnx_equal'] else 'max |diff| ' + str(doc['qonnx_max_abs_diff'])}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``accel``."""
    p = sub.add_parser("accel", help="read a QONNX model (Brevitas export_qonnx) as integer layers; run its exact "
                                     "integer model", formatter_class=HelpFormatter,
                       description=__doc__.split("\n\n")[0].replace("\n", " "),
                       epilog="example:\n  paretofab accel mlp.onnx --inputs x.npy --check")
    p.add_argument("model", type=Path, metavar="MODEL.onnx", help="QONNX file (brevitas.export.export_qonnx)")
    p.add_argument("--inputs", metavar="X.npy", help="run the exact integer model on these inputs (batch first)")
    p.add_argument("--check", action="store_true", help="with --inputs: compare with QONNX's own execution")
    p.add_argument("--json", action="store_true", help="layers (and outputs, codes) as JSON (default: a table)")
    p.set_defaults(func=_accel)
