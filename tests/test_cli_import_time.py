"""Building the ``paretofab`` parser (what ``paretofab --help`` and ``paretofab COMMAND --help``
do) imports none of the heavy packages the commands run on: a command that needs them names its
function (``func="module:function"``), which :func:`paretofab.cli.command` imports only when the
command runs. A structural check, not a timing one."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys

from models import gtn_eval
from models.datafree import run as datafree
from models.specs import BUDGET_NAMES
from paretofab.cli import build_parser, command

#: what building the parser must not import
HEAVY = ("torch", "brevitas", "onnx", "qonnx", "matplotlib", "dask")
#: the commands `paretofab --help` lists, in its order
COMMANDS = ["formats", "sweep", "results", "rtl", "sim", "synth", "traces", "distill", "prune", "gtn", "datafree",
            "cost", "pareto", "explore", "accel", "export", "demo"]


def test_building_the_parser_imports_no_heavy_package():
    code = ("import sys; from paretofab.cli import build_parser; p = build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch','brevitas','onnx','qonnx','sklearn','matplotlib','dask'))); "
            "print(p.format_help())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, help_text = r.stdout.split("\n", 1)
    heavy = sorted({m.split(".")[0] for m in ast.literal_eval(modules)} & set(HEAVY))
    assert not heavy, f"building the parser imported {heavy}"
    assert re.findall(r"^ {4}(\w+)\b", help_text, re.M) == COMMANDS


def test_every_command_names_a_function_that_exists():
    """A ``"module:function"`` that names nothing fails here, not when a user runs the command."""
    parsers = [next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))]
    funcs = {}
    while parsers:
        for p in parsers.pop().choices.values():
            if "func" in p._defaults:
                funcs[p.prog] = p._defaults["func"]
            parsers += [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    assert {prog.split()[1] for prog in funcs} == set(COMMANDS)
    for prog, func in funcs.items():
        assert callable(command(func)), prog


def test_the_budgets_the_parsers_offer_are_the_trainings():
    """``gtn`` and ``datafree`` offer :data:`models.specs.BUDGET_NAMES` (light), the keys of the
    budgets their trainings define."""
    assert tuple(gtn_eval.BUDGETS) == tuple(gtn_eval.MAP_BUDGETS) == tuple(datafree.BUDGETS) == BUDGET_NAMES
