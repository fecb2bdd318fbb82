"""The ``paretofab`` command: thin dispatch to each package's own commands.

Each package owns its subcommands in ``<package>/cli.py``, which defines
``register(subparsers) -> None``; every subparser sets ``func=<callable(args) -> int>``, or
``func="module:function"`` naming one: a command whose work needs torch or Brevitas names it, and
it is imported only when the command runs, so that building the parser (``paretofab --help``)
imports neither (:func:`command`).
Errors end in one line on stderr, never a traceback (``PARETOFAB_DEBUG=1`` shows it):

- user errors exit 2: ``ValueError`` and its subclasses (``FormatError``, ``ConfigError`` …) and
  ``OSError`` about a path the user gave (a file where a folder is needed, no permission, …);
- an external tool failing exits 3: any exception with a ``tool`` attribute (the tool's name; a
  ``log`` attribute, when set, says where its log is), e.g. ``hw.rtl.SynthError``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import Callable

#: packages whose ``cli.register`` adds subcommands (for paretofab's own: the module), in help order
COMMAND_PACKAGES = ("quant", "hw", "models", "costmodel", "paretofab.explore_cli", "paretofab.accel",
                    "paretofab.export_cli", "paretofab.demo")


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


def command(func: Callable[[argparse.Namespace], int] | str) -> Callable[[argparse.Namespace], int]:
    """A subparser's ``func`` as a callable: itself, or the function its ``"module:function"``
    names, imported now."""
    if callable(func):
        return func
    module, _, name = func.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    func = command(args.func)
    try:
        return int(func(args) or 0)
    except BrokenPipeError:  # `paretofab … | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"paretofab {args.command}: interrupted (results already written are kept)", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        code, line = describe_error(e)
        if code is None or os.environ.get("PARETOFAB_DEBUG"):
            raise
        print(f"paretofab {args.command}: error: {line}", file=sys.stderr)
        return code


#: what to do about an OSError on a path the user gave, by errno
_OS_HINTS = {
    errno.ENOTDIR: "a file sits where a folder is needed; choose another path",
    errno.EISDIR: "that is a folder; give a file",
    errno.EACCES: "no permission; choose a folder you can write (or fix its permissions)",
    errno.EPERM: "not permitted; choose a folder you can write (or fix its permissions)",
    errno.EROFS: "read-only file system; choose another folder",
    errno.ENOSPC: "the disk is full; free space or choose another folder",
    errno.EEXIST: "it exists already; remove it or choose another path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


def describe_error(e: BaseException) -> tuple[int | None, str]:
    """``(exit code, one line)`` for an exception the CLI reports: 3 for an external tool's
    failure (an exception with a ``tool`` attribute), 2 for a user error (``ValueError``, an
    ``OSError`` about a path); ``(None, "")`` for anything else (a bug: let it raise)."""
    tool = getattr(e, "tool", None)
    if tool:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        log = getattr(e, "log", None)
        return 3, f"{tool} failed: {first}" + (f" (log: {log})" if log else "")
    if isinstance(e, ValueError):
        return 2, " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError):
        if e.filename is None or e.errno not in _OS_HINTS and not isinstance(e, FileNotFoundError):
            if e.filename is None and e.args and isinstance(e.args[0], str):
                return 2, str(e)  # raised with our own message
            return 2, f"{e.strerror or e}: {e.filename}"
        if isinstance(e, FileNotFoundError):
            return 2, f"{e.filename}: no such file or folder"
        return 2, f"{e.filename}: {_OS_HINTS[e.errno]}"
    return None, ""


if __name__ == "__main__":
    sys.exit(main())
