"""``paretofab demo``: the main job that ``make demo`` runs."""

from __future__ import annotations

import argparse


def _demo(args: argparse.Namespace) -> int:
    from paretofab.cli import main

    print("== paretofab formats")
    return main(["formats"])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job (what `make demo` runs)")
    p.set_defaults(func=_demo)
