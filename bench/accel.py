"""Whole-network accelerators (``paretofab accel``): the cost model against Yosys synthesis of the
whole accelerator, and whole-inference simulation speed of both backends.

Run: ``.venv/bin/python bench/accel.py [--quick] [--no-synth] [--no-sim] [--requant thresholds|auto]``. Networks, each exported with
Brevitas ``export_qonnx`` and mapped with ``--lanes auto``: a 64-24-10 MLP with power-of-two
(``FixedPoint``) scales, the same MLP with float scales and 8 lanes per layer, a small CNN
(conv3×3 6 → conv3×3 stride 2 6 → maxpool → linear 10 on 1×8×8), and the digits CNN of
``quant.digits`` post-training quantized to int4 (unsigned activations; ``paretofab export
--qonnx``), the same CNN in e4m3 (minifloat layers), and the PaCKD ResNet student's architecture
(``zoo:resnet``, untrained: a residual block, global average pool), int8, and the PaCKD Mixer
student (``zoo:mixer``, untrained: LayerNorms, GELUs, residual sums; MAC and row stages), int8. Synthesis: ``synth_xilinx`` (xc7) of the bare accelerator, cached; LUT counts include
LUTRAM. The cost model (:func:`costmodel.accel.plan_cost`) is never fitted on these networks.

Speed: inferences/s of the digits CNN, pysim (one inference) against Verilator (a batch, build
excluded; its build time printed apart). FINN's rtlsim has no published inferences/s figure that
we found; its developers describe PyVerilator-driven rtlsim as "quite slow, taking multiple weeks
for larger designs" for FIFO sizing (Xilinx/finn pull request 694).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# bench/costmodel.py is named like the package: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from costmodel.accel import plan_cost  # noqa: E402
from hw.dataflow.sim import simulate_plan  # noqa: E402
from hw.dataflow.top import Accelerator  # noqa: E402
from hw.rtl import synthesize  # noqa: E402
from hw.verilator import VerilatorModel  # noqa: E402
from paretofab.netplan import REQUANT_UNITS, plan_network  # noqa: E402
from paretofab.netplan_net import plan_net, read_model  # noqa: E402
from paretofab.qonnx_export import export_student_qonnx  # noqa: E402
from quant.ptq import PTQConfig  # noqa: E402
from quant.qonnx_import import read_qonnx  # noqa: E402
from quant.qonnx_net import QNet  # noqa: E402


def _brevitas_nets(folder: Path) -> dict[str, tuple[Path, object]]:
    import torch
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8WeightPerTensorFixedPoint,
                                Int8WeightPerTensorFloat, Int32Bias, Uint8ActPerTensorFloat)

    def mlp(wq, aq, rq):
        return torch.nn.Sequential(qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True),
                                   qnn.QuantLinear(64, 24, bias=True, weight_quant=wq, bias_quant=Int32Bias,
                                                   return_quant_tensor=True),
                                   qnn.QuantReLU(act_quant=rq, return_quant_tensor=True),
                                   qnn.QuantLinear(24, 10, bias=True, weight_quant=wq, bias_quant=Int32Bias))

    def cnn(wq, aq):
        return torch.nn.Sequential(
            qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True),
            qnn.QuantConv2d(1, 6, 3, padding=1, weight_quant=wq, bias_quant=Int32Bias, return_quant_tensor=True),
            qnn.QuantReLU(act_quant=aq, return_quant_tensor=True),
            qnn.QuantConv2d(6, 6, 3, stride=2, padding=1, weight_quant=wq, bias_quant=Int32Bias,
                            return_quant_tensor=True),
            qnn.QuantReLU(act_quant=aq, return_quant_tensor=True), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
            qnn.QuantLinear(24, 10, bias=True, weight_quant=wq, bias_quant=Int32Bias))

    fixed = (Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint)
    torch.manual_seed(0)  # the weights, hence the ROM contents and the synthesized netlists
    nets = {"mlp_fixed": (mlp(*fixed, Int8ActPerTensorFixedPoint), (64,), "auto"),
            "mlp_float": (mlp(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat), (64,), 8),
            "cnn_small": (cnn(*fixed), (1, 8, 8), "auto")}
    out = {}
    for name, (model, shape, lanes) in nets.items():
        torch.manual_seed(0)
        with torch.no_grad():
            for _ in range(4):
                model(torch.rand(32, *shape) * 2 - 0.5)
        model.eval()
        path = folder / f"{name}.onnx"
        export_qonnx(model, torch.rand(1, *shape), export_path=str(path))
        out[name] = (path, lanes)
    return out


def _yosys_total(plan) -> dict[str, int]:
    r = synthesize(Accelerator(plan), "xc7")
    return {"lut": r.lut_sites, "ff": r.ff, "dsp": r.dsp, "bram18": r.bram18, "seconds": r.seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the three small networks only; 20 Verilator inferences")
    ap.add_argument("--no-synth", action="store_true", help="skip Yosys (model figures only)")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulation-speed table")
    ap.add_argument("--requant", choices=REQUANT_UNITS, default="auto",
                    help="requantizers of every plan (paretofab accel --requant)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_accel_"))
    nets = _brevitas_nets(folder)
    if not args.quick:
        path, _ = export_student_qonnx("digits", "int4", "int4", folder / "digits_int4.onnx",
                                       config=PTQConfig(unsigned_acts=True))
        nets["digits_int4"] = (path, "auto")
        path, _ = export_student_qonnx("digits", "e4m3", "e4m3", folder / "digits_e4m3.onnx")
        nets["digits_e4m3"] = (path, "auto")
        path, _ = export_student_qonnx("zoo:resnet", "int8", "int8", folder / "resnet_int8.onnx")
        nets["resnet_int8"] = (path, "auto")
        path, _ = export_student_qonnx("zoo:mixer", "int8", "int8", folder / "mixer_int8.onnx")
        nets["mixer_int8"] = (path, "auto")
    print(f"Cost model vs Yosys synth_xilinx (xc7) of the whole accelerator, --lanes auto, --requant {args.requant} "
          "(LUT incl. LUTRAM)")
    print(f"{'network':<12} {'stages':>6} {'lanes':<14} {'LUT model':>9} {'LUT yosys':>9} {'err':>7} {'FF model':>8} "
          f"{'FF yosys':>8} {'err':>7} {'DSP m/y':>8} {'BRAM18 m/y':>10} {'cycles/inf':>10} {'interval':>8}")
    errs = []
    plans = {}
    for name, (path, lanes) in nets.items():
        model = read_model(path)
        plan = plan_net(model, lanes, name=name, requant=args.requant).plan if isinstance(model, QNet) else \
            plan_network(model, lanes, name=name, requant=args.requant)
        plans[name] = (plan, path)
        cost = plan_cost(plan)
        t = cost["total"]
        y = None if args.no_synth else _yosys_total(plan)
        ln = ",".join(str(s.lanes) for s in plan.stages)
        if y:
            e_lut, e_ff = t["lut"] / y["lut"] - 1, t["ff"] / y["ff"] - 1
            errs.append((abs(e_lut), abs(e_ff)))
            print(f"{name:<12} {len(plan.stages):>6} {ln:<14} {t['lut']:>9,} {y['lut']:>9,} {e_lut:>+7.1%} {t['ff']:>8,} "
                  f"{y['ff']:>8,} {e_ff:>+7.1%} {t['dsp']:>3}/{y['dsp']:<4} {t['bram18']:>4}/{y['bram18']:<5} "
                  f"{cost['cycles_per_inference']:>10,} {cost['interval']:>8,}")
        else:
            print(f"{name:<12} {len(plan.stages):>6} {ln:<14} {t['lut']:>9,} {'-':>9} {'':>7} {t['ff']:>8,} {'-':>8} "
                  f"{'':>7} {t['dsp']:>3}/-    {t['bram18']:>4}/-     {cost['cycles_per_inference']:>10,} "
                  f"{cost['interval']:>8,}")
    if errs:
        e = np.array(errs)
        print(f"median |error|: LUT {np.median(e[:, 0]):.1%}, FF {np.median(e[:, 1]):.1%} over {len(e)} networks")

    if args.no_sim:
        return
    name = "cnn_small" if args.quick else "digits_int4"
    plan, path = plans[name]
    g = read_qonnx(path)
    n = 20 if args.quick else 200
    x = g.in_quant.codes(np.random.default_rng(0).random((n, *g.input_shape[1:])).astype(np.float32)).reshape(n, -1)
    t0 = time.perf_counter()
    run1 = simulate_plan(plan, x[:1], "pysim")
    t_py = time.perf_counter() - t0
    acc = Accelerator(plan)
    t0 = time.perf_counter()
    VerilatorModel.from_component(acc)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = simulate_plan(plan, x, "verilator", accelerator=acc)
    t_v = time.perf_counter() - t0
    assert np.array_equal(run.outputs[:1], run1.outputs)
    print(f"\nWhole-inference simulation, {name} ({plan.stages.__len__()} stages, {run1.cycles:,} cycles per inference):")
    print(f"{'backend':<34} {'inferences/s':>12} {'cycles/s':>12}")
    print(f"{'amaranth pysim (1 inference)':<34} {1 / t_py:>12.3f} {run1.cycles / t_py:>12,.0f}")
    print(f"{f'Verilator ({n} inferences, loaded)':<34} {n / t_v:>12.1f} {run.cycles / t_v:>12,.0f}")
    print(f"{'FINN rtlsim (PyVerilator)':<34} {'no figure':>12} {'published':>12}")
    print(f"Verilator / pysim: {(n / t_v) / (1 / t_py):,.0f}x per inference; Verilator build {t_build:.0f} s "
          f"(cached on disk afterwards)")


if __name__ == "__main__":
    main()
