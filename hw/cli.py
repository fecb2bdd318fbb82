"""``paretofab`` subcommands of the hw package: ``rtl``, ``sim`` and ``synth``.

Each takes an engine name from the registry ``hw.engines.ENGINES`` (``dot``, ``sparse`` …) and
that engine's configuration as options generated from its config dataclass (``--lanes``,
``--wfmt``, ``--k-max`` …, help text from its docstring); ``sim`` adds one option per parameter of
the engine's ``random_workload`` (``--k --vectors --seed`` for dot/sparse, ``--n --seed`` for
swa). A new engine plugs in by adding itself to the registry.

- ``paretofab rtl dot --lanes 16 --wfmt e2m3 --afmt int8 -o DIR``: Verilog + config JSON.
- ``paretofab sim sparse --lanes 8 --n 2 --m 4 --wfmt e4m3 --afmt int8 --k 64 --vectors 100
  --seed 1 --backend verilator [--json]``: random workload through the engine, compared with
  the exact reference and the closed-form cycle count (exit 1 on a mismatch).
- ``paretofab synth dot … --target xc7 [--nodsp] [--json]``: Yosys resource table.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import Value

from .engines import ENGINES
from .rtl import TARGETS, Resources, synthesize, verilog_text
from .sim import BACKENDS, cycle_limit, simulate

#: k_max used by ``rtl`` and ``synth`` when ``--k-max`` is not given (``sim`` uses ``--k``)
DEFAULT_K_MAX = 1024


class CliError(ValueError):
    """A command-line input that cannot be used; the message names the fix."""


# ---- options generated from an engine's config dataclass ----------------------------------------


def _field_help(cls: type) -> dict[str, str]:
    """``name -> description`` from the NumPy-style Parameters section of ``cls``' docstring."""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in (cls.__doc__ or "").splitlines():
        head = re.match(r"^ {4}(\w+(?:\s*,\s*\w+)*)\s*:", line)
        if head:
            names = [n.strip() for n in head.group(1).split(",")]
            out.update({n: "" for n in names})
        elif names and line.startswith(" " * 8) and line.strip():
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
        elif line.strip():
            names = []
    return {k: _plain(v) for k, v in out.items()}


def _plain(text: str) -> str:
    """Docstring reST markup to plain text (``x`` -> x, :class:`~a.B` -> B)."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([\w]+)`", r"\1", text)
    return text.replace("``", "")


def _base_type(hint: Any) -> tuple[type, bool]:
    """(argparse type, optional?) of a config field's type hint."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next((a for a in args if a is not type(None)), str)
    if hint is bool:
        return bool, optional
    if hint is int:
        return int, optional
    if hint is float:
        return float, optional
    return str, optional


def config_class(mod: types.ModuleType) -> type:
    """The config dataclass of an engine module: its ``Config`` alias, else the type of
    ``random_workload``'s first parameter."""
    cls = getattr(mod, "Config", None)
    if cls is None and hasattr(mod, "random_workload"):
        first = next(iter(inspect.signature(mod.random_workload).parameters), None)
        cls = typing.get_type_hints(mod.random_workload).get(first) if first else None
    if cls is None or not dataclasses.is_dataclass(cls):
        raise CliError(f"engine module {mod.__name__} has no Config dataclass (define Config = <its config class>)")
    return cls


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--option`` per field of the config dataclass ``cls`` (``k_max`` -> ``--k-max``)."""
    hints = typing.get_type_hints(cls)
    helps = _field_help(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for f in dataclasses.fields(cls):
        typ, optional = _base_type(hints.get(f.name, str))
        opt = "--" + f.name.replace("_", "-")
        has_default = f.default is not dataclasses.MISSING
        help_ = helps.get(f.name, "")
        if not help_ and f.name.endswith("fmt"):
            help_ = "number format (int4, int8, uint8, e2m3, e4m3, e5m2 …; see `paretofab formats`)"
        if f.name == "k_max":
            help_ += f" (default: --k for sim, {DEFAULT_K_MAX} for rtl/synth)"
            group.add_argument(opt, dest=f.name, type=int, default=None, metavar="K", help=help_)
            continue
        if typ is bool:
            group.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=f.default if has_default else False, help=help_)
            continue
        if has_default and f.default is not None:
            help_ += f" (default: {f.default})"
        group.add_argument(opt, dest=f.name, type=typ, metavar=f.name.upper(),
                           default=f.default if has_default else None, required=not has_default, help=help_)


def make_config(mod: types.ModuleType, args: argparse.Namespace, k_max_default: int) -> Any:
    """Build the engine config from parsed options (``k_max`` falls back to ``k_max_default``)."""
    cls = config_class(mod)
    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    if "k_max" in kw and kw["k_max"] is None:
        kw["k_max"] = k_max_default
    return cls(**kw)


#: defaults and help of common ``random_workload`` parameters (others: required, or their default)
WORKLOAD_OPTIONS = {
    "k": (64, "reduction length K, elements"),
    "vectors": (100, "dot products (output vectors) to run"),
    "seed": (1, "random seed of the workload"),
    "n": (64, "sequence length, tokens"),
}


def workload_params(mod: types.ModuleType) -> list[tuple[str, str, type, Any]]:
    """``(name, option, type, default)`` for each parameter of ``mod.random_workload`` after the
    config; the option is ``--name``, or ``--workload-name`` where a config field has that name."""
    fn = mod.random_workload
    hints = typing.get_type_hints(fn)
    fields = {f.name for f in dataclasses.fields(config_class(mod))}
    out = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        typ, _ = _base_type(hints.get(p.name, str))
        default = p.default if p.default is not inspect.Parameter.empty else WORKLOAD_OPTIONS.get(p.name, (None,))[0]
        opt = f"--workload-{p.name}" if p.name in fields else f"--{p.name}"
        out.append((p.name, opt.replace("_", "-"), typ, default))
    return out


def add_workload_options(parser: argparse.ArgumentParser, mod: types.ModuleType) -> None:
    """One option per ``random_workload`` parameter (dest ``wl__<name>``)."""
    group = parser.add_argument_group("workload")
    for name, opt, typ, default in workload_params(mod):
        help_ = WORKLOAD_OPTIONS.get(name, (None, name.replace("_", " ")))[1]
        kw: dict[str, Any] = dict(dest=f"wl__{name}", type=typ, metavar=name.upper(), default=default)
        if default is None:
            kw["required"] = True
        else:
            help_ += f" (default: {default})"
        group.add_argument(opt, help=help_, **kw)


def workload_class(mod: types.ModuleType) -> type:
    """The workload dataclass an engine's ``random_workload`` returns."""
    cls = typing.get_type_hints(mod.random_workload).get("return")
    if cls is None or not dataclasses.is_dataclass(cls):
        raise CliError(f"engine module {mod.__name__}: random_workload has no dataclass return annotation")
    return cls


def _config_str(config: Any) -> str:
    d = config.to_dict()
    return " ".join(f"{k}={v}" for k, v in d.items() if k != "engine" and v is not None)


# ---- rtl -----------------------------------------------------------------------------------------


def _rtl(args: argparse.Namespace) -> int:
    mod = args.engine_module
    cfg = make_config(mod, args, DEFAULT_K_MAX)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CliError(f"output {out} exists and is not a folder; pass -o DIR")
    comp = cfg.build()
    verilog = verilog_text(comp)
    in_w = Value.cast(comp.i.payload).shape().width
    out_w = Value.cast(comp.o.payload).shape().width
    exp = mod.output_exponent(cfg)
    header = (
        f"// paretofab {args.engine} engine: {_config_str(cfg)}\n"
        f"// ports: stream i (i__valid, i__ready, i__payload[{in_w - 1}:0]), "
        f"stream o (o__valid, o__ready, o__payload[{out_w - 1}:0]), clk, rst (sync, active high)\n"
        f"// o__payload: exact signed result in units of 2^{exp}\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    vpath, jpath = out / f"{args.engine}.v", out / f"{args.engine}.json"
    vpath.write_text(header + verilog)
    jpath.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    print(f"wrote {vpath} (top module dut, input {in_w} bits, output {out_w} bits, units 2^{exp})")
    print(f"wrote {jpath}")
    return 0


# ---- sim -----------------------------------------------------------------------------------------


def _pattern(text: str | None, name: str) -> list[bool] | None:
    if text is None:
        return None
    if not text or set(text) - {"0", "1"} or "1" not in text:
        raise CliError(f"{name} must be a string of 0s and 1s with at least one 1 (e.g. 1101), got {text!r}")
    return [c == "1" for c in text]


def _load_codes(path: str, wl_cls: type):
    p = Path(path)
    names = [f.name for f in dataclasses.fields(wl_cls)]
    if not p.exists():
        raise FileNotFoundError(f"workload file {p} not found; pass an .npz with arrays {', '.join(names)}")
    with np.load(p) as z:
        missing = sorted(set(names) - set(z.files))
        if missing:
            example = ", ".join(f"{n}=…" for n in names)
            raise CliError(f"{p} lacks arrays {missing}; save it with np.savez(path, {example})")
        arrays = {n: np.asarray(z[n]) for n in names}
    for n, a in arrays.items():
        if a.size and (a.dtype.kind not in "iu" or a.min() < 0 or a.max() > 255):
            raise CliError(f"{p}: array {n} must hold integer codes 0..255 (uint8), got dtype {a.dtype} "
                           f"with range {a.min()}..{a.max()}")
    return wl_cls(**{n: a.astype(np.uint8) for n, a in arrays.items()})


def _jsonable(a: Any) -> Any:
    """Nested lists of Python ints (exact, any width) from an integer array."""
    a = np.asarray(a)
    if a.ndim == 0:
        return int(a)
    return [_jsonable(x) for x in a] if a.ndim > 1 else [int(x) for x in a]


def _sim(args: argparse.Namespace) -> int:
    mod = args.engine_module
    params = {name: getattr(args, f"wl__{name}") for name, *_ in workload_params(mod)}
    if args.codes:
        wl = _load_codes(args.codes, workload_class(mod))
        k = getattr(wl, "k", None)
        cfg = make_config(mod, args, int(k) if isinstance(k, (int, np.integer)) else DEFAULT_K_MAX)
        described = {"codes": args.codes}
    else:
        cfg = make_config(mod, args, params.get("k", DEFAULT_K_MAX))
        wl = mod.random_workload(cfg, **params)
        described = params
    out_ready, in_valid = _pattern(args.out_ready, "--out-ready"), _pattern(args.in_valid, "--in-valid")
    inputs = mod.pack_inputs(cfg, wl)
    n = mod.n_outputs(cfg, wl)
    ref = np.asarray(mod.reference(cfg, wl))
    closed = mod.cycles(cfg, wl)
    t0 = time.perf_counter()
    stretch = max(len(out_ready or [1]), len(in_valid or [1]))  # stall patterns slow it down
    res = simulate(cfg.build(), inputs, n, backend=args.backend, out_ready=out_ready, in_valid=in_valid,
                   max_cycles=cycle_limit(len(inputs), n, stretch, closed))
    seconds = time.perf_counter() - t0
    outs = np.asarray(mod.unpack_outputs(cfg, res.outputs))
    same_shape = outs.shape == ref.shape
    matches = [bool(np.array_equal(a, b)) for a, b in zip(outs, ref)] if same_shape else []
    equal = same_shape and all(matches)
    free_flow = out_ready is None and in_valid is None
    cycles_equal = (res.cycles == closed) if free_flow else None
    exp = mod.output_exponent(cfg)
    arrays = {f.name: _jsonable(getattr(wl, f.name)) for f in dataclasses.fields(wl)}
    if args.json:
        print(json.dumps({
            "engine": args.engine, "config": cfg.to_dict(), "backend": res.backend, "workload": described,
            "out_ready": args.out_ready, "in_valid": args.in_valid, "inputs": arrays,
            "input_beats": len(inputs), "output_exponent": exp,
            "outputs": _jsonable(outs), "reference": _jsonable(ref),
            "equal": equal, "cycles": res.cycles, "cycles_closed_form": closed, "cycles_equal": cycles_equal,
            "seconds": round(seconds, 4),
        }))
    else:
        what = " ".join(f"{k}={v}" for k, v in described.items())
        print(f"sim {args.engine} ({_config_str(cfg)}) on {res.backend}: workload {what}, "
              f"{len(inputs)} input beats, {n} output beats")
        print(f"  outputs == exact reference: {'yes' if equal else 'NO'} ({sum(matches)}/{len(ref)}), "
              f"units 2^{exp}")
        note = "" if free_flow else " (with the given stall patterns; closed form assumes none)"
        print(f"  cycles {res.cycles}, closed form {closed}{note}; {seconds:.3f} s wall "
              f"(elaboration and any Verilator build included)")
        if not equal:
            if not same_shape:
                print(f"  output shape {outs.shape} != reference shape {ref.shape}")
            else:
                bad = matches.index(False)
                print(f"  first mismatch at {bad}: got {_jsonable(outs[bad:bad + 1])[0]}, "
                      f"expected {_jsonable(ref[bad:bad + 1])[0]}")
    return 0 if equal and cycles_equal is not False else 1


# ---- synth ---------------------------------------------------------------------------------------


def _synth(args: argparse.Namespace) -> int:
    mod = args.engine_module
    cfg = make_config(mod, args, DEFAULT_K_MAX)
    res = synthesize(cfg, args.target, nodsp=args.nodsp, cache=not args.no_cache)
    if args.json:
        print(json.dumps({**{k: getattr(res, k) for k in Resources.FIELDS}, "target": res.target,
                          "nodsp": args.nodsp, "yosys": res.yosys, "seconds": res.seconds, "cached": res.cached,
                          "engine": args.engine, "config": cfg.to_dict(), "cells": res.cells}))
        return 0
    src = "cached result of a" if res.cached else "a"
    print(f"synth {args.engine} ({_config_str(cfg)}) for {args.target}{' -nodsp' if args.nodsp else ''}: "
          f"{src} {res.seconds:.1f} s run of {res.yosys}")
    cols = [c.upper() for c in Resources.FIELDS]
    print("  " + "  ".join(f"{c:>7}" for c in cols))
    print("  " + "  ".join(f"{getattr(res, f):>7}" for f in Resources.FIELDS))
    return 0


# ---- registration --------------------------------------------------------------------------------


def _engine_help(mod: types.ModuleType) -> str:
    return (mod.__doc__ or mod.__name__).strip().splitlines()[0]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rtl``, ``sim`` and ``synth`` with one sub-command per registered engine."""
    def extra_rtl(p):
        p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for <engine>.v and <engine>.json")

    def extra_sim(p):
        add_workload_options(p, p.get_default("engine_module"))
        g = p.add_argument_group("simulation")
        names = ", ".join(f.name for f in dataclasses.fields(workload_class(p.get_default("engine_module"))))
        g.add_argument("--codes", metavar="NPZ", help=f"run these codes instead of a random workload (.npz with "
                                                        f"uint8 arrays {names}; workload options are ignored)")
        g.add_argument("--backend", choices=BACKENDS, default="pysim", help="simulator (default: pysim)")
        g.add_argument("--out-ready", metavar="BITS", help="repeating sink ready pattern, e.g. 1101 (default: 1)")
        g.add_argument("--in-valid", metavar="BITS", help="repeating source valid pattern, e.g. 10 (default: 1)")
        g.add_argument("--json", action="store_true", help="inputs, outputs, reference and cycles as JSON")

    def extra_synth(p):
        p.add_argument("--target", choices=list(TARGETS), default="xc7", help="FPGA family (default: xc7)")
        p.add_argument("--nodsp", action="store_true", help="map multipliers to LUTs, not DSP blocks")
        p.add_argument("--no-cache", action="store_true", help="synthesize again even if a cached result exists")
        p.add_argument("--json", action="store_true", help="resource counts as JSON (keys lut ff carry dsp bram18 lutram muxf …)")

    commands = (
        ("rtl", "write an engine's Verilog and config JSON", _rtl, extra_rtl),
        ("sim", "simulate an engine on a random workload and check it against the exact reference", _sim, extra_sim),
        ("synth", "synthesize an engine with Yosys and print its FPGA resources", _synth, extra_synth),
    )
    for cmd, help_, func, extra in commands:
        p = sub.add_parser(cmd, help=help_, description=help_ + ".")
        engines = p.add_subparsers(dest="engine", metavar="ENGINE", required=True)
        for name, mod in ENGINES.items():
            try:
                config_class(mod), workload_class(mod)
            except (CliError, NameError, AttributeError) as e:  # a broken plug-in must not take the CLI down
                print(f"paretofab: engine {name!r} skipped: {e}", file=sys.stderr)
                continue
            q = engines.add_parser(name, help=_engine_help(mod), description=_engine_help(mod))
            q.set_defaults(func=func, engine_module=mod)
            add_config_options(q, config_class(mod))
            extra(q)
