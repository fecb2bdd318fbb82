"""``paretofab`` subcommands of the quant package: ``formats`` (and the PTQ sweep commands)."""

from __future__ import annotations

import argparse
import json

from .formats import Format, all_formats, parse_format


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
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("formats", help="table of supported number formats",
                       description="Print bits, max, min normal, min subnormal and the number of finite "
                                   "values of every supported format, or only of those named.")
    p.add_argument("names", nargs="*", metavar="NAME", help="formats to show (int4, uint8, e4m3, e4m3ocp, …)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_formats)
