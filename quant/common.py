"""What every package needs and nothing of the project: the cache root, the output-folder check,
the help formatter of the ``paretofab`` commands and the JSON encoding of numpy values, with :data:`SCHEDULER_TIMEOUT_S`, the sweep
default ``paretofab sweep --help`` shows (here, so that its parser needs no torch). Part of the
ground floor (with :mod:`quant.formats` and :mod:`quant.reference`): imports nothing of the
project, so hw, quant, models and costmodel may all use it."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_root", "writable_folder", "HelpFormatter", "SCHEDULER_TIMEOUT_S", "json_default"]

#: seconds a sweep waits for a Dask scheduler to answer (:func:`quant.sweep.run_sweep`)
SCHEDULER_TIMEOUT_S = 5.0


def json_default(o):
    """``json.dumps(..., default=json_default)``: numpy scalars as Python numbers, arrays as lists."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o)}")


def cache_root() -> Path:
    """Root directory of paretofab's build/result caches: ``$PARETOFAB_CACHE`` if set, else
    ``<sys.prefix>/.cache/paretofab`` (inside the virtual environment). The one owner of this
    default; hw (``synth/``, ``verilator/``), costmodel (``ltp/``, ``pnr/``) and quant (digits
    weights) all call it."""
    env = os.environ.get("PARETOFAB_CACHE")
    return Path(env) if env else Path(sys.prefix) / ".cache" / "paretofab"


def writable_folder(folder: str | Path) -> Path:
    """``folder``, created if needed and checked writable (a probe file is written and removed),
    so that a bad output path fails before any work; an ``OSError`` naming ``folder`` otherwise
    (``NotADirectoryError`` saying so when ``folder`` is a file). The one output-folder check of
    every command."""
    d = Path(folder)
    if d.exists() and not d.is_dir():
        raise NotADirectoryError(f"{d} is a file; give a folder (it is created if missing)")
    d.mkdir(parents=True, exist_ok=True)
    try:
        fd, probe = tempfile.mkstemp(dir=d, prefix=".paretofab-write-test")
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(d)) from None
    os.close(fd)
    os.unlink(probe)
    return d


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """The ``paretofab`` commands' help: wraps a one-paragraph description, keeps the line breaks
    of a multi-line text (the examples), and shows every default that says something (not None,
    False or an empty string, and not where the help text already words it)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        d = action.default
        if ("%(default)" in help or "default" in help.lower() or d is None or d is False or d == ""
                or d is argparse.SUPPRESS):
            return help
        return f"{help} (default %(default)s)"
