"""The ``paretofab`` command: thin dispatch to each package's own commands.

Each package owns its subcommands in ``<package>/cli.py``, which defines
``register(subparsers) -> None``; every subparser sets ``func=<callable(args) -> int>``.
User errors (``ValueError`` and subclasses such as ``FormatError``, ``FileNotFoundError``) print
one line and exit with code 2, no traceback; set ``PARETOFAB_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: packages whose ``cli.register`` adds subcommands, in help order
COMMAND_PACKAGES = ("quant", "hw", "models", "costmodel", "paretofab.explore", "paretofab.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretofab",
        description="Design and cost FPGA accelerators for compressed neural networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for pkg in COMMAND_PACKAGES:
        modname = pkg if pkg.startswith("paretofab.") else f"{pkg}.cli"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # package has no commands yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        if os.environ.get("PARETOFAB_DEBUG"):
            raise
        print(f"paretofab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `paretofab … | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"paretofab {args.command}: interrupted (results already written are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
