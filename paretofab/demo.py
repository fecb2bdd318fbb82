"""``paretofab demo``: the main job that ``make demo`` runs: the formats table, then ``explore``
(traces -> student -> PTQ sweep -> cost -> Pareto front) with its defaults, under runs/explore.
Its parser; what it runs, :func:`paretofab.explore._demo`, needs torch and is imported only when
the command runs."""

from __future__ import annotations

import argparse

from .explore_cli import add_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job (what `make demo` runs): formats table, then explore",
                       description="The main job, as `make demo` runs it: the table of number formats\n"
                                   "(`paretofab formats`), then `paretofab explore` with the options given here\n"
                                   "(the same as explore's, with the same defaults).",
                       epilog="examples:\n  paretofab demo\n  paretofab demo --threads 1 -o runs/demo --pattern 2:4",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func="paretofab.explore:_demo")
