"""``paretofab`` subcommands of the quant package: ``formats``, ``sweep`` and ``results``.

``sweep`` and ``results`` name what they run (``"quant.commands:_sweep"``): it needs torch, so
``paretofab`` imports it only when the command runs, and building the parser stays light."""

from __future__ import annotations

import argparse
import json
import textwrap

from .common import SCHEDULER_TIMEOUT_S, HelpFormatter
from .formats import Format, all_formats, parse_format

#: printed under the ``formats`` table and in its help
OCP_NOTE = ("note: plain e4m3 (and every ExMy without a suffix) spends all codes on finite values "
            "(e4m3: max 480, no NaN); it is not OCP FP8 E4M3, which is e4m3ocp (max 448, S.1111.111 = NaN). "
            "e5m2ieee is OCP FP8 E5M2.")


def format_row(fmt: Format) -> dict:
    """Summary of one format: bits, max, min normal, min subnormal, number of finite values."""
    return {
        "name": str(fmt),
        "kind": fmt.kind,
        "bits": fmt.bits,
        "max": fmt.max_value,
        "min_normal": fmt.min_normal,
        "min_subnormal": fmt.min_subnormal,
        "finite_values": fmt.num_values,
    }


def _formats(args: argparse.Namespace) -> int:
    fmts = [parse_format(n) for n in args.names] if args.names else all_formats()
    rows = [format_row(f) for f in fmts]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'format':<10} {'kind':<9} {'bits':>4} {'max':>12} {'min normal':>12} {'min subnormal':>14} {'values':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:<10} {r['kind']:<9} {r['bits']:>4} {r['max']:>12.6g} {r['min_normal']:>12.6g} "
              f"{r['min_subnormal']:>14.6g} {r['finite_values']:>6}")
    if any(r["name"] == "e4m3" or r["name"].startswith("e4m3b") for r in rows) or not args.names:
        print(OCP_NOTE)
    return 0


def _wrap(text: str) -> str:
    return textwrap.fill(text, 100)


def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("formats", help="table of supported number formats", formatter_class=HelpFormatter,
                       description=_wrap("Print bits, max, min normal, min subnormal and the number of finite "
                                         "values of every supported format, or only of those named.")
                       + "\n\n" + _wrap(OCP_NOTE),
                       epilog=_example("paretofab formats e4m3 e4m3ocp e5m2ieee", "paretofab formats --json"))
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="formats to show (int4, uint8, e2m1, e4m3, e4m3ocp, e5m2ieee, …; default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_formats)

    p = sub.add_parser(
        "sweep", help="PTQ design-space sweep (formats × techniques × pattern) into a SQLite store",
        formatter_class=HelpFormatter,
        description=_wrap("Quantize a model for every combination of the comma lists (Brevitas PTQ) and "
                          "store its metric, one row per finished point. A rerun skips finished points; "
                          "sweeps running into one store at once share the grid (each point is computed "
                          "once)."),
        epilog=_example("paretofab sweep --model digits --wfmt int4,int8,e2m1,e3m2 --afmt int8 \\",
                        "    --ptq none,weq+gptq --pattern dense,2:4 --seeds 0,1 -o runs/demo.sqlite",
                        "paretofab sweep --model runs/df/student.pt --wfmt int8,int4 --afmt int8,int4 \\",
                        "    --calib synthetic:runs/df -o runs/df.sqlite   # data-free PTQ calibration"))
    p.add_argument("--model", required=True,
                   help="'digits' (built-in CNN on scikit-learn's digits) or a student checkpoint / "
                        "`paretofab distill` folder; comma list")
    p.add_argument("--wfmt", required=True, help="weight formats, comma list (int4,int8,e2m1,e3m2)")
    p.add_argument("--afmt", required=True, help="activation formats, comma list (int8)")
    p.add_argument("--ptq", default="none",
                   help="technique sets, comma list; combine techniques with '+': none, weq, smoothquant, "
                        "bias_corr, gptq, gpfq, learned_round")
    p.add_argument("--pattern", default=None, metavar="PATTERNS",
                   help="sparsity patterns, comma list: dense, N:M (2:4), blocks bBkKEEP (b8k0.5) or both "
                        "(2:4+b8k0.5); one-shot magnitude pruning before quantization (default: dense)")
    p.add_argument("--sparsity", default=None, help=argparse.SUPPRESS)  # deprecated spelling of --pattern
    p.add_argument("--threshold", choices=("val", "0.5"), default=None,
                   help="MAP students only (refused for digits, which reports accuracy): test micro-F1 at "
                        "the validation-best threshold (val, as `paretofab distill` reports) or at 0.5 "
                        "(default: val)")
    p.add_argument("--seeds", default="0", help="calibration seeds, comma list of non-negative integers")
    p.add_argument("--allow-degenerate", action="store_true",
                   help="sweep a MAP student trained on a degenerate trace (its accuracy axis is noise)")
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor (default: per channel)")
    p.add_argument("--n-calib", type=int, default=256, help="calibration samples")
    p.add_argument("--calib", default="real", metavar="SOURCE",
                   help="calibration inputs: real (the first --n-calib training inputs) or synthetic:DIR "
                        "(data-free: the images `paretofab datafree -o DIR` synthesized, digits models only)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask distributed scheduler (tcp://host:8786); overrides --jobs")
    p.add_argument("--scheduler-timeout", type=float, default=SCHEDULER_TIMEOUT_S, metavar="SECONDS",
                   help="give up when the scheduler does not answer within this time")
    p.add_argument("-o", "--output", required=True, help="results store, e.g. runs/NAME.sqlite")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func="quant.commands:_sweep")

    p = sub.add_parser("results", help="show a sweep's results (table or CSV)", formatter_class=HelpFormatter,
                       description=_wrap("Print the finished points of a sweep store (or, with --failed, "
                                         "the points whose last try failed, with their errors)."),
                       epilog=_example("paretofab results runs/demo.sqlite",
                                       "paretofab results runs/demo.sqlite --csv > demo.csv",
                                       "paretofab results runs/demo.sqlite --failed"))
    p.add_argument("file", help="results store written by `paretofab sweep`")
    p.add_argument("--csv", action="store_true", help="CSV on stdout")
    p.add_argument("--failed", action="store_true", help="the points that failed, with their errors")
    p.set_defaults(func="quant.commands:_results")
