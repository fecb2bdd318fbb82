"""``paretofab accel MODEL.onnx``: a user's QONNX model (Brevitas ``export_qonnx``) as one dataflow
accelerator. Reads it as integer layers (:mod:`quant.qonnx_import`) — or, for graphs a chain of
layers cannot hold (an MLP-Mixer's residual sums, LayerNorms, GELUs, transposes), as exact integer
ops (:mod:`quant.qonnx_net`) — maps them onto one stage per layer and per row op
(:mod:`paretofab.netplan`, :mod:`paretofab.netplan_net`, :mod:`hw.dataflow`) and prints both with
the closed-form cycles and the cost model's resources.
With ``--inputs X.npy`` it runs the exact integer model; with ``--sim`` it streams the inputs
through the accelerator's RTL (pysim or Verilator) and checks every stage against the numpy model;
with ``--check`` it compares the outputs with QONNX's own execution of the file; with ``-o DIR`` it
writes the Verilog (lint-clean, :mod:`hw.portable`), its Verilator waivers and a JSON report.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hw.activation import ActivationSpec
from hw.dataflow.plan import NetworkPlan, run_plan
from hw.dataflow.row import RowStage
from hw.dataflow.sim import simulate_plan
from hw.dataflow.top import Accelerator, AXIStreamAccelerator
from hw.export import check_top_name
from hw.portable import portable_verilog, waivers
from hw.sim import BACKENDS
from quant.common import HelpFormatter, writable_folder
from quant.formats import parse_format
from quant.qonnx_import import QGraph, QLayer, QonnxError, QRequant, QResidual, dequantize, execute_int
from quant.qonnx_net import QNet, execute_net

from costmodel.accel import plan_cost

from .netplan import DEFAULT_MAX_LANES, REQUANT_UNITS, plan_network
from .netplan_net import plan_net, read_model

__all__ = ["register", "layer_rows", "net_rows", "plan_rows", "qonnx_outputs"]


#: the network figures of :func:`costmodel.accel.plan_cost` in the report (text, --json, -o DIR)
_COST_KEYS = ("cycles_per_inference", "interval", "fmax_mhz", "latency_us", "inferences_per_s",
              "energy_nj_per_inference", "device", "total", "sources")


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
        if isinstance(op, QRequant):
            row.update(output_format=op.quant.fmt)
        if isinstance(op, QResidual):
            branches = [op.main] + ([op.skip] if op.skip is not None else [])
            row.update(kind="residual" + (" + mean" if op.mean else ""), weight_format=op.main.weight_quant.fmt,
                       weight_scale=_scale_kind(op.main.weight_quant.scale), bias=any(b.bias is not None for b in branches),
                       relu=op.relu, macs=sum(b.macs for b in branches), output_format=op.out_quant.fmt)
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


def _load_inputs(path: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """The float inputs of ``--inputs``, checked against the model's input shape."""
    try:
        x = np.load(path)
    except ValueError:
        raise QonnxError(f"{path}: not a .npy array of numbers; save one with numpy.save") from None
    feat = int(np.prod(input_shape[1:]))
    if x.ndim < 1 or x.size == 0 or x.reshape(len(x), -1).shape[1] != feat:
        raise QonnxError(f"{path}: shape {x.shape} does not fit the model's input {list(input_shape)} "
                         f"(give [batch, {feat}] or [batch, …] with {feat} values per row)")
    return x


def _lanes(text: str) -> str | int | list[int] | dict[str, int]:
    """``--lanes``: ``auto``, one count, a comma list (one per layer with weights), or a folding
    file (:func:`_folding`)."""
    if text == "auto":
        return "auto"
    if text.endswith(".json"):
        return _folding(Path(text))
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        raise QonnxError(f"--lanes {text!r}: give auto, a count, a comma list of counts (one per layer) or a "
                         "folding .json") from None
    if min(vals) < 1:
        raise QonnxError(f"--lanes {text!r}: lane counts must be >= 1")
    return vals[0] if len(vals) == 1 else vals


def _folding(path: Path) -> dict[str, int]:
    """A folding file (FINN's folding config, in this tool's words): a JSON object of layer (MAC
    stage) names to their lanes — a count or ``{"lanes": count}`` — or a report this command wrote
    (``--json`` or ``-o``: its ``stages``, MAC stages only)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise QonnxError(f"--lanes {path}: no such file; give a JSON object of layer names to lane counts") from None
    except (OSError, ValueError) as e:
        raise QonnxError(f"--lanes {path}: not a JSON file ({e}); give an object of layer names to lane counts") from None
    if isinstance(doc, dict) and isinstance(doc.get("stages"), list):
        doc = {r["stage"]: _dense_lanes(r) for r in doc["stages"] if isinstance(r, dict) and r.get("kind") == "mac"}
    lanes = {k: (v.get("lanes") if isinstance(v, dict) else v) for k, v in doc.items()} if isinstance(doc, dict) else None
    if not lanes or not all(isinstance(v, int) and v >= 1 for v in lanes.values()):
        raise QonnxError(f"--lanes {path}: give an object of layer names to lane counts >= 1, e.g. "
                         '{"MatMul_0": 8, "Gemm_0": {"lanes": 4}}')
    return lanes


def _dense_lanes(row: dict) -> int:
    """A report row's lanes as ``--lanes`` counts them: multipliers, or for an N:M stage its
    window elements per beat (``lanes / N · M``)."""
    if row.get("nm"):
        n, m = (int(v) for v in str(row["nm"]).split(":"))
        return int(row["lanes"]) // n * m
    return int(row["lanes"])


def _per_stage(lanes: dict[str, int], names: list[str], where: str) -> list[int]:
    """A folding file's lanes in the order of the MAC stages ``names``; one line naming the
    layers it misses or does not know."""
    unknown, missing = sorted(set(lanes) - set(names)), [n for n in names if n not in lanes]
    if unknown or missing:
        raise QonnxError(f"--lanes {where}: " + "; ".join(
            part for part in (f"no layer with weights named {', '.join(unknown)}" if unknown else "",
                              f"no lanes for {', '.join(missing)}" if missing else "") if part) +
            f" (its layers with weights: {', '.join(names)})")
    return [lanes[n] for n in names]


def _nm(text: str | None) -> tuple[int, int] | None:
    """``--nm N:M``."""
    if text is None:
        return None
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise QonnxError(f"--nm {text!r}: give N:M, e.g. 2:4") from None
    if not 1 <= n <= m or m < 2 or m & (m - 1):
        raise QonnxError(f"--nm {text}: need 1 <= N <= M with M a power of two >= 2, e.g. 2:4")
    return n, m


def plan_rows(plan: NetworkPlan) -> list[dict]:
    """Per stage of the accelerator: lanes, beats, cycles per frame (closed form), ROM and bank
    sizes (bits). A row stage (residual sum, LayerNorm, mean) reads its ``P`` rows of ``D``
    elements one per cycle: windows × window is P × D."""
    rows = []
    for st in plan.stages:
        requant = "-" if st.requant is None else "thresholds" if isinstance(st.requant, ActivationSpec) else "multiplier"
        out = st.out_fmt or f"int{st.out_bits} (raw)"
        if isinstance(st, RowStage):
            what = "+".join(w for w, on in (("skip", st.skip is not None), ("layernorm", st.extra is not None),
                                             ("mean", st.mean)) if on) or "scale"
            bank = 2 * st.in_size * st.in_bits + (st.skip_depth * st.skip_size * st.skip_bits if st.skip is not None else 0)
            rows.append({"stage": st.name, "kind": f"row ({what})", "lanes": 1, "nm": None, "pipeline": None,
                         "windows": st.rows, "window": st.d, "channels": st.d, "beats_per_window": st.d,
                         "cycles_per_frame": st.busy_cycles, "weight_rom_bits": 0,
                         "window_rom_bits": st.rows * st.d * (2 if st.skip is not None else 1) *
                         max(1, st.in_size.bit_length()), "bank_bits": bank, "output": out, "requant": requant})
            continue
        in_bits = parse_format(st.in_fmt).bits
        abits = max(1, st.in_size.bit_length())
        rows.append({"stage": st.name, "kind": st.kind, "lanes": st.lanes,
                     "nm": f"{st.nm[0]}:{st.nm[1]}" if st.nm else None, "pipeline": st.pipeline if st.kind == "mac"
                     else None, "windows": st.positions, "window": st.k, "channels": st.channels,
                     "beats_per_window": st.beats, "cycles_per_frame": st.busy_cycles,
                     "weight_rom_bits": st.channels * st.beats * st.lanes * st.weight_bits if st.kind == "mac" else 0,
                     "window_rom_bits": st.positions * st.beats * st.span * abits,
                     "bank_bits": 2 * st.in_size * in_bits, "output": out, "requant": requant})
    return rows


@dataclass
class _Front:
    """What ``accel`` needs of a model, from either reader: its op rows, the plan, the float
    input's quantizer (as input codes), the exact integer model and the outputs' dequantization."""

    rows: list[dict]
    plan: NetworkPlan
    input_name: str
    input_shape: tuple[int, ...]
    input_format: str
    input_codes: Callable[[np.ndarray], np.ndarray]
    integer_model: Callable[[np.ndarray], tuple[np.ndarray, object]]
    dequantize: Callable[[np.ndarray], np.ndarray]
    chain: bool


def _front(args: argparse.Namespace, name: str) -> _Front:
    """The model read by the layer chain (:func:`quant.qonnx_import.read_qonnx`) or, for graphs it
    cannot hold (an MLP-Mixer), by the general front end (:func:`quant.qonnx_net.read_net`)."""
    lanes = _lanes(args.lanes)
    opts = dict(lanes="auto" if isinstance(lanes, dict) else lanes, pipeline=args.pipeline, max_lanes=args.max_lanes,
                name=name, nm=_nm(args.nm), requant=args.requant, device=args.device)
    graph = read_model(args.model)
    planner = (lambda **kw: plan_net(graph, **kw).plan) if isinstance(graph, QNet) else \
        (lambda **kw: plan_network(graph, **kw))
    if isinstance(lanes, dict):  # a folding file: the MAC stages by name
        names = [st.name for st in planner(**opts).stages if st.kind == "mac"]
        opts["lanes"] = _per_stage(lanes, names, args.lanes)
    if isinstance(graph, QNet):
        net, acc = graph, plan_net(graph, **opts)
        return _Front(net_rows(net), acc.plan, net.input_name, net.input_shape, acc.in_spec.fmt, acc.input_codes,
                      lambda x: execute_net(net, x), acc.outputs, False)
    shape = graph.input_shape
    return _Front(layer_rows(graph), planner(**opts), graph.input_name, shape, graph.in_quant.fmt,
                  lambda x: graph.in_quant.codes(x.reshape(len(x), *shape[1:])).reshape(len(x), -1),
                  lambda x: execute_int(graph, x), lambda y: dequantize(graph, y), True)


def _model_name(path: Path) -> str:
    """A Verilog module name from a model file's name (``cnn-v2.onnx`` -> ``cnn_v2``)."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "net"
    return check_top_name(stem if stem[0].isalpha() or stem[0] == "_" else f"net_{stem}")


def _accel(args: argparse.Namespace) -> int:
    if args.sim and not args.inputs:
        raise QonnxError("--sim needs --inputs X.npy (the inputs to stream through the accelerator)")
    out_dir = writable_folder(args.out) if args.out else None  # before any work
    name = _model_name(args.model)
    front = _front(args, name)
    plan = front.plan
    cost = plan_cost(plan, args.device)
    stage_rows = [{**r, **{k: c[k] for k in ("lut", "ff", "dsp", "bram18")}, "dynamic_nj_per_frame": c["dynamic_nj"],
                   "parts": c["parts"]} for r, c in zip(plan_rows(plan), cost["stages"])]
    doc: dict = {"model": str(args.model), "input": front.input_name, "input_shape": list(front.input_shape),
                 "input_format": front.input_format, "layers" if front.chain else "ops": front.rows,
                 "stages": stage_rows, **{k: cost[k] for k in _COST_KEYS}}
    if args.inputs:
        x = _load_inputs(args.inputs, front.input_shape)
        out, codes = front.integer_model(x)
        doc["outputs"] = out.tolist()
        doc["codes"] = [c.tolist() for c in codes] if front.chain else {k: v.tolist() for k, v in codes.items()}
        if args.sim:
            xi = front.input_codes(x)
            run = simulate_plan(plan, xi, args.backend)
            model = run_plan(plan, xi)
            got = front.dequantize(run.outputs)
            same = all(np.array_equal(a, b) for a, b in zip(run.stages, model)) if run.stages else \
                np.array_equal(run.outputs, model[-1])
            doc.update(outputs=got.tolist(), codes=np.asarray(run.outputs).tolist(), cycles=run.cycles,
                       closed_form_cycles=run.schedule.cycles, backend=run.backend, rtl_equals_model=bool(same),
                       rtl_equals_integer_model=bool(np.array_equal(got, out)))
            out = got
        if args.check:
            ref = qonnx_outputs(Path(args.model), x.reshape(len(x), -1)).reshape(out.shape)
            _compare(doc, out, ref)
    if out_dir is not None:
        top = name + ("_axis" if args.axis else "")
        comp = AXIStreamAccelerator(plan) if args.axis else Accelerator(plan)
        (out_dir / f"{top}.v").write_text("`timescale 1ns / 1ps\n" + portable_verilog(comp, top))
        (out_dir / f"{top}.vlt").write_text(waivers(top, axis=args.axis))
        keep = ("model", "input_shape", "input_format", "layers" if front.chain else "ops", "stages", *_COST_KEYS)
        (out_dir / f"{top}.json").write_text(json.dumps({"top": top, **{k: doc[k] for k in keep}}, indent=2) + "\n")
        doc["files"] = [str(out_dir / f"{top}{ext}") for ext in (".v", ".vlt", ".json")]
    if args.json:
        print(json.dumps(doc))
        return 0
    _print(args, front, doc)
    return 0


def net_rows(net: QNet) -> list[dict]:
    """One dict per op of a :class:`~quant.qonnx_net.QNet`: name, kind, output shape, format (a
    quantizer's), weight format, MACs per inference."""
    return [{"op": op.name, "kind": op.kind, "out": list(op.shape), "format": op.spec.fmt if op.spec else "",
             "weight_format": op.weight_quant.fmt if op.weight_quant else "", "macs": op.macs} for op in net.ops]


def _compare(doc: dict, out: np.ndarray, ref: np.ndarray) -> None:
    """QONNX's outputs ``ref`` against ours, into ``doc``: max |diff|, exact equality and, for
    class scores, how often the predicted class agrees."""
    doc["qonnx_max_abs_diff"] = float(np.max(np.abs(out - ref)))
    doc["qonnx_equal"] = bool(np.array_equal(out, ref.astype(np.float64)))
    if out.ndim == 2:
        doc["qonnx_argmax_agree"] = float(np.mean(out.argmax(1) == ref.argmax(1)))


def _print_outputs(doc: dict) -> None:
    if "cycles" in doc:
        print(f"simulated ({doc['backend']}): {len(doc['outputs'])} inferences in {doc['cycles']:,} cycles (closed form "
              f"{doc['closed_form_cycles']:,}); RTL {'equals' if doc['rtl_equals_model'] else 'DIFFERS from'} the "
              f"numpy model of the accelerator")
    elif "outputs" in doc:
        print(f"outputs: {len(doc['outputs'])} rows from the exact integer model (--json for values and codes)")
    if "qonnx_equal" in doc:
        agree = f"; the predicted class agrees on {doc['qonnx_argmax_agree']:.1%} of inputs" \
            if "qonnx_argmax_agree" in doc else ""
        diff = "equal, exactly" if doc["qonnx_equal"] else f"max |diff| {doc['qonnx_max_abs_diff']:.4g}"
        print(f"QONNX execution: {diff}{agree}")
    for f in doc.get("files", []):
        print(f"wrote {f}")


def _table(head: tuple[str, ...], rows: list[tuple]) -> None:
    table = [head] + [tuple(str(v) for v in r) for r in rows]
    widths = [max(len(row[j]) for row in table) for j in range(len(head))]
    for row in table:
        print("  " + "  ".join(f"{v:<{w}}" for v, w in zip(row, widths)))


def _print(args: argparse.Namespace, front: _Front, doc: dict) -> None:
    rows = front.rows
    macs = sum(r["macs"] for r in rows)
    shape = lambda v: "×".join(map(str, v))  # noqa: E731
    if front.chain:
        print(f"{args.model}: input {front.input_name} {list(front.input_shape)} quantized to {front.input_format}; "
              f"{sum(1 for r in rows if r['weight_format'])} layers with weights, {macs:,} MACs per inference")
        _table(("layer", "kind", "in", "out", "input", "weights", "weight scale", "bias", "relu", "output", "MACs"),
               [(r["layer"], r["kind"], shape(r["in"]), shape(r["out"]), r["input_format"], r["weight_format"] or "-",
                 r["weight_scale"] or "-", "yes" if r["bias"] else "no", "yes" if r["relu"] else "no",
                 r["output_format"], f"{r['macs']:,}") for r in rows])
    else:
        print(f"{args.model}: input {front.input_name} {list(front.input_shape)} quantized to {front.input_format}; "
              f"{sum(1 for r in rows if r['weight_format'])} layers with weights, {macs:,} MACs per inference "
              "(general front end: residual sums, LayerNorm, GELU, transposes)")
        _table(("op", "kind", "out", "format", "weights", "MACs"),
               [(r["op"], r["kind"], shape(r["out"]), r["format"] or "-", r["weight_format"] or "-", f"{r['macs']:,}")
                for r in rows])
    t = doc["total"]
    print(f"accelerator on {doc['device']}: {len(doc['stages'])} stages, {doc['cycles_per_inference']:,} cycles for one "
          f"inference, then one every {doc['interval']:,} cycles (closed form); {t['lut']:,} LUT, {t['ff']:,} FF, "
          f"{t['dsp']} DSP, {t['bram18']} BRAM18; ≤ {doc['fmax_mhz']:.0f} MHz: {doc['latency_us']:,.1f} µs per inference, "
          f"{doc['inferences_per_s']:,.0f} inferences/s, {doc['energy_nj_per_inference']['total']:,.0f} nJ per inference "
          f"(model: sources in --json; resource error vs Yosys: bench/accel.py)")
    _table(("stage", "kind", "lanes", "N:M", "windows×K", "channels", "requant", "cycles/frame", "weight ROM (bits)",
            "banks (bits)", "LUT", "FF", "DSP", "BRAM18"),
           [(r["stage"], r["kind"], r["lanes"], r["nm"] or ("dense" if r["kind"] == "mac" else "-"), f"{r['windows']}×{r['window']}", r["channels"],
             r["requant"], f"{r['cycles_per_frame']:,}",
             f"{r['weight_rom_bits']:,}", f"{r['bank_bits']:,}", f"{r['lut']:,}", f"{r['ff']:,}", r["dsp"], r["bram18"])
            for r in doc["stages"]])
    _print_outputs(doc)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``accel``."""
    p = sub.add_parser("accel", help="a QONNX model (Brevitas export_qonnx) as one dataflow accelerator: layers, "
                                     "cycles, simulation against QONNX, Verilog", formatter_class=HelpFormatter,
                       description=__doc__.split("\n\n")[0].replace("\n", " "),
                       epilog="examples:\n  paretofab accel cnn.onnx\n"
                              "  paretofab accel cnn.onnx --inputs x.npy --sim --backend verilator --check\n"
                              "  paretofab accel cnn.onnx --lanes 9,27,4 -o rtl/ --axis")
    p.add_argument("model", type=Path, metavar="MODEL.onnx", help="QONNX file (brevitas.export.export_qonnx)")
    p.add_argument("--inputs", metavar="X.npy", help="run the exact integer model on these inputs (batch first)")
    p.add_argument("--sim", action="store_true", help="with --inputs: simulate whole inferences on the accelerator's RTL")
    p.add_argument("--backend", choices=BACKENDS, default="pysim", help="simulator for --sim")
    p.add_argument("--check", action="store_true", help="with --inputs: compare with QONNX's own execution")
    p.add_argument("--lanes", default="auto", help="multipliers per layer: auto (balance cycles within --max-lanes), "
                                                   "a folding .json (layer name: lanes; or a --json report), "
                                                   "one count, or a comma list, one per layer with weights")
    p.add_argument("--max-lanes", type=int, default=DEFAULT_MAX_LANES, help="multipliers --lanes auto may spend")
    p.add_argument("--pipeline", type=int, default=1, help="MAC pipeline registers per layer")
    p.add_argument("--nm", metavar="N:M", help="layers whose weights are N:M sparse become N:M engines (compressed "
                                               "weight ROM, index mux); e.g. 2:4 for a CRISP-pruned model")
    p.add_argument("--requant", choices=REQUANT_UNITS, default="auto",
                   help="requantizers: fixed-point multipliers, threshold tables (FINN's MultiThreshold; the same "
                        "codes), or per layer the one the cost model says takes fewer LUTs")
    p.add_argument("--device", default="xc7z020", help="FPGA part the cost model estimates for (paretofab cost --help "
                                                       "lists them)")
    p.add_argument("-o", "--out", metavar="DIR", help="write the accelerator's Verilog, lint waivers and JSON report")
    p.add_argument("--axis", action="store_true", help="with -o: AXI4-Stream ports (<model>_axis)")
    p.add_argument("--json", action="store_true", help="layers (and outputs, codes) as JSON (default: a table)")
    p.set_defaults(func=_accel)
