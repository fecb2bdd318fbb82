"""``paretofab`` subcommands of the hw package: ``rtl``, ``sim`` and ``synth``.

Each takes an engine name from the registry ``hw.engines.ENGINES`` (``dot``, ``sparse`` …) and
that engine's configuration as options generated from its config dataclass (``--lanes``,
``--wfmt``, ``--k-max`` …, help text from its docstring); ``sim`` adds one option per parameter of
the engine's ``random_workload`` (``--k --vectors --seed`` for dot/sparse, ``--seq-len --seed`` for
swa). A new engine plugs in by adding itself to the registry.

One spelling per concept (DESIGN.md, CLI): ``--pattern N:M`` sets a config's ``n`` and ``m``
fields together (the sparse engine), ``--k`` is the workload's reduction length and ``--k-max``
the accumulator's capacity, ``--seq-len`` the SWA sequence length, ``--device PART`` the FPGA
part (``synth`` synthesizes for its Yosys family). The old spellings ``--n/--m`` (pattern),
``--n`` (sequence length) and ``--target`` (family) stay as hidden aliases that print a
deprecation line on stderr.

- ``paretofab rtl dot --lanes 16 --wfmt e2m3 --afmt int8 -o DIR [--top NAME]``: ``<top>.v`` and
  ``<top>.json`` (``hw.export.export_design``: ports and payload fields with bit offsets).
- ``paretofab sim sparse --lanes 8 --pattern 2:4 --wfmt e4m3 --afmt int8 --k 64 --vectors 100
  --seed 1 --backend verilator [--json]``: random workload through the engine, compared with
  the exact reference and the closed-form cycle count (exit 1 on a mismatch).
- ``paretofab synth dot … --device xc7z020 [--nodsp] [--json]``: Yosys resource table.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import textwrap
import time
import types
import typing
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .devices import DEFAULT_DEVICE, DEVICES, get_device
from .engine import check_int
from .engines import ENGINES
from .export import export_design
from .fusesoc import core_name, core_targets, write_core
from .rtl import TARGETS, Resources, lut_sites_rule, synthesize
from .sim import BACKENDS, cycle_limit, simulate
from .testbench import DEFAULT_READY_PCT, DEFAULT_VALID_PCT, write_testbench

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


class _Deprecated(argparse.Action):
    """A hidden old spelling: stores its value under the new option's dest and prints one
    deprecation line on stderr (``new`` names the spelling to use)."""

    def __init__(self, option_strings, dest, new: str = "", **kw):
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        said = namespace.__dict__.setdefault("_deprecations_said", set())
        if self.new not in said:  # --n and --m of one pattern: one line
            said.add(self.new)
            old = "/".join(a.option_strings[0] for a in parser._actions if getattr(a, "new", None) == self.new)
            print(f"paretofab: {old} is deprecated and will be removed; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def parse_pattern(text: str) -> tuple[int, int]:
    """``"N:M"`` (at most N non-zeros in every M weights) -> ``(N, M)``; argparse type."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"expected a sparsity pattern N:M such as 2:4, got {text!r}")
    return int(m.group(1)), int(m.group(2))


#: config fields set together by one option: fields -> (option, metavar, argparse type, help)
COMBINED_OPTIONS: dict[tuple[str, ...], tuple[str, str, Any, str]] = {
    ("n", "m"): ("--pattern", "N:M", parse_pattern,
                 "sparsity pattern: at most N non-zero weights in every group of M (M a power of two), e.g. 2:4"),
}

#: metavar of config fields whose upper-cased name would read badly or collide
METAVARS = {"k_max": "K_MAX"}


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--option`` per field of the config dataclass ``cls`` (``k_max`` -> ``--k-max``);
    fields listed together in :data:`COMBINED_OPTIONS` get that one option (dest
    ``combined__<fields>``) and their own spellings as hidden deprecated aliases."""
    hints = typing.get_type_hints(cls)
    helps = _field_help(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    names = {f.name for f in dataclasses.fields(cls)}
    combined = {f: (fs, spec) for fs, spec in COMBINED_OPTIONS.items() if set(fs) <= names for f in fs}
    for f in dataclasses.fields(cls):
        typ, optional = _base_type(hints.get(f.name, str))
        opt = "--" + f.name.replace("_", "-")
        has_default = f.default is not dataclasses.MISSING
        help_ = helps.get(f.name, "")
        if f.name in combined:
            fs, (copt, cmeta, ctype, chelp) = combined[f.name]
            if f.name == fs[0]:
                group.add_argument(copt, dest="combined__" + "__".join(fs), type=ctype, metavar=cmeta,
                                   default=None, help=chelp + " (required)")
            group.add_argument(opt, dest=f.name, type=typ, default=None, action=_Deprecated,
                               new=f"{copt} {cmeta}", help=argparse.SUPPRESS)
            continue
        if not help_ and f.name.endswith("fmt"):
            help_ = "number format (int4, int8, uint8, e2m3, e4m3, e5m2 …; see `paretofab formats`)"
        if f.name == "k_max":
            help_ += f" (default: --k for sim, {DEFAULT_K_MAX} for rtl/synth)"
            group.add_argument(opt, dest=f.name, type=int, default=None, metavar=METAVARS[f.name], help=help_)
            continue
        if typ is bool:
            group.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=f.default if has_default else False,
                               help=help_ + f" (default: {f.default if has_default else False})")
            continue
        if has_default and f.default is not None:
            help_ += f" (default: {f.default})"
        elif has_default:
            help_ += " (default: None)"
        else:
            help_ += " (required)"
        group.add_argument(opt, dest=f.name, type=typ, metavar=METAVARS.get(f.name, f.name.upper()),
                           default=f.default if has_default else None, required=not has_default, help=help_)


def make_config(mod: types.ModuleType, args: argparse.Namespace, k_max_default: int) -> Any:
    """Build the engine config from parsed options (``k_max`` falls back to ``k_max_default``;
    a combined option such as ``--pattern`` fills its fields, else their deprecated spellings)."""
    cls = config_class(mod)
    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    for fs, (copt, cmeta, _, _) in COMBINED_OPTIONS.items():
        dest = "combined__" + "__".join(fs)
        if not hasattr(args, dest):
            continue
        value, old = getattr(args, dest), [kw.get(f) for f in fs]
        if value is not None:
            if any(v is not None for v in old):
                raise CliError(f"give {copt} alone, not together with {'/'.join('--' + f for f in fs)}")
            kw.update(zip(fs, value))
        elif any(v is None for v in old):
            raise CliError(f"{cls.__name__} needs {copt} {cmeta} (e.g. {copt} 2:4)")
    if "k_max" in kw and kw["k_max"] is None:
        kw["k_max"] = k_max_default
    return cls(**kw)


#: common ``random_workload`` parameters: option, metavar, default, help, argparse type, old spelling
WORKLOAD_OPTIONS: dict[str, tuple[str, str, Any, str, Any, str | None]] = {
    "k": ("--k", "K", 64, "workload reduction length K, elements (the accumulator's capacity is --k-max)",
          int, None),
    "vectors": ("--vectors", "VECTORS", 100, "dot products (output vectors) to run", int, None),
    "seed": ("--seed", "SEED", 1, "random seed of the workload, an integer >= 0", int, None),
    "n": ("--seq-len", "TOKENS", 64, "sequence length, tokens", int, "--n"),
    "block_zero_fraction": ("--block-zero-fraction", "FRACTION", 0.4,
                            "fraction of blocks whose weights are all zero, 0..1 (with --block)", float, None),
}


def workload_params(mod: types.ModuleType) -> list[tuple[str, str, type, Any]]:
    """``(name, option, type, default)`` for each parameter of ``mod.random_workload`` after the
    config: the option of :data:`WORKLOAD_OPTIONS`, else ``--name``, or ``--workload-name`` where
    a config field has that name."""
    fn = mod.random_workload
    hints = typing.get_type_hints(fn)
    fields = {f.name for f in dataclasses.fields(config_class(mod))}
    out = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        typ, _ = _base_type(hints.get(p.name, str))
        known = WORKLOAD_OPTIONS.get(p.name)
        default = p.default if p.default is not inspect.Parameter.empty else (known[2] if known else None)
        if known:
            opt, typ = known[0], known[4]
        else:
            opt = (f"--workload-{p.name}" if p.name in fields else f"--{p.name}").replace("_", "-")
        out.append((p.name, opt, typ, default))
    return out


def add_workload_options(parser: argparse.ArgumentParser, mod: types.ModuleType) -> None:
    """One option per ``random_workload`` parameter (dest ``wl__<name>``)."""
    group = parser.add_argument_group("workload")
    taken = {o for a in parser._actions for o in a.option_strings}
    for name, opt, typ, default in workload_params(mod):
        known = WORKLOAD_OPTIONS.get(name)
        help_ = known[3] if known else name.replace("_", " ")
        metavar = known[1] if known else name.upper()
        kw: dict[str, Any] = dict(dest=f"wl__{name}", type=typ, metavar=metavar, default=default)
        if default is None:
            kw["required"] = True
            help_ += " (required)"
        else:
            help_ += f" (default: {default})"
        group.add_argument(opt, help=help_, **kw)
        old = known[5] if known else None
        if old and old not in taken:
            group.add_argument(old, dest=f"wl__{name}", type=typ, action=_Deprecated, new=opt,
                               help=argparse.SUPPRESS)


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
    get_device(args.device)  # an unknown part: one line, before anything is written
    if args.testbench:
        params = _workload_args(mod, args)
        for opt, pct in (("--valid-pct", args.valid_pct), ("--ready-pct", args.ready_pct)):
            check_int(opt, pct, 1, "a percentage in 1..100 (100: never stall)", hi=100, error=CliError)
        tb = write_testbench(cfg, args.output, mod.random_workload(cfg, **params), top=args.top,
                             seed=params.get("seed", 1), valid_pct=args.valid_pct, ready_pct=args.ready_pct,
                             axis=args.axis)
        vpath, jpath = tb.verilog, tb.json
    else:
        vpath, jpath = export_design(cfg, args.output, top=args.top, axis=args.axis)
    doc = json.loads(jpath.read_text())
    widths = {p["name"]: p["width"] for p in doc["ports"]}
    if args.axis:
        ax = doc["axis"]
        print(f"wrote {vpath} (top module {doc['top']}, AXI4-Stream: s_axis_tdata {widths['s_axis_tdata']} bits "
              f"({ax['in_bits']} used), m_axis_tdata {widths['m_axis_tdata']} bits ({ax['out_bits']} used), "
              f"units 2^{doc['output_exponent']})")
    else:
        print(f"wrote {vpath} (top module {doc['top']}, input {widths.get('i__payload')} bits, output "
              f"{widths.get('o__payload')} bits, units 2^{doc['output_exponent']})")
    print(f"wrote {jpath} (ports, payload fields with bit offsets and widths, config)")
    print(f"wrote {jpath.with_suffix('.vlt')} (Verilator waivers: verilator --lint-only -Wall {doc['top']}.vlt "
          f"{vpath.name} is clean)")
    core = write_core(args.output, doc["top"], args.device, testbench=args.testbench)
    targets = ", ".join(core_targets(args.device, args.testbench))
    print(f"wrote {core} (FuseSoC core {core_name(doc['top'])}; targets {targets}: "
          f"cd {args.output} && fusesoc run --target lint {core_name(doc['top'])})")
    if args.testbench:
        print(f"wrote {tb.testbench} (self-checking: PASS / FAIL with the first mismatch, non-zero exit on FAIL)")
        if tb.cocotb:
            print(f"wrote {tb.cocotb} (cocotb 2 + cocotbext-axi test of the AXI4-Stream top; how to run: its "
                  f"docstring, hw.cocotb_bench)")
        print(f"wrote {tb.inputs} ({tb.in_beats} input beats) and {tb.expected} ({tb.out_beats} expected output "
              f"beats, from the exact reference)")
        print(f"run: cd {args.output} && iverilog -g2012 -o tb.vvp {tb.testbench.name} {vpath.name} && vvp tb.vvp "
              f"(or fusesoc run --target sim_icarus|sim_verilator {core_name(doc['top'])}; "
              f"Verilator by hand: see the testbench's header)")
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
    example = ", ".join(f"{n}=…" for n in names)
    if not p.exists():
        raise FileNotFoundError(f"workload file {p} not found; pass an .npz with arrays {', '.join(names)}")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder; pass an .npz file saved with np.savez(path, {example})")
    if not zipfile.is_zipfile(p):
        raise CliError(f"{p} is not an .npz of codes: not a zip archive; save one with np.savez(path, {example})")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = sorted(set(names) - set(z.files))
            if missing:
                raise CliError(f"{p} lacks arrays {missing}; save it with np.savez(path, {example})")
            arrays = {n: np.asarray(z[n]) for n in names}
    except CliError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        # never pass numpy's own advice on: object arrays (pickles) are not codes
        reason = "holds object arrays (pickled data)" if "pickle" in str(e) else f"{type(e).__name__}: {e}"
        raise CliError(f"{p} is not an .npz of codes: {reason}; save uint8 arrays with np.savez(path, {example})"
                       ) from None
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


def _workload_args(mod: types.ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """The ``random_workload`` parameters given on the command line (dests ``wl__<name>``), with
    ``--k`` and ``--seed`` checked (before ``--k`` stands in for a missing ``--k-max``)."""
    params = {name: getattr(args, f"wl__{name}") for name, *_ in workload_params(mod)}
    if "k" in params:
        check_int("--k", params["k"], 1, "the reduction length K is at least 1 element", error=CliError)
    if "seed" in params:
        check_int("--seed", params["seed"], 0, "use a seed >= 0", error=CliError)
    return params


def _sim(args: argparse.Namespace) -> int:
    mod = args.engine_module
    if args.codes:
        wl = _load_codes(args.codes, workload_class(mod))
        k = getattr(wl, "k", None)
        cfg = make_config(mod, args, int(k) if isinstance(k, (int, np.integer)) else DEFAULT_K_MAX)
        described = {"codes": args.codes}
    else:
        params = _workload_args(mod, args)
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
    if args.target is not None:  # deprecated: a Yosys family instead of a part
        if args.target not in TARGETS:
            raise CliError(f"unknown synthesis family {args.target!r}; use --device PART "
                           f"(one of {', '.join(DEVICES)})")
        device, target = None, args.target
    else:
        device = get_device(args.device)
        target = device.target
    res = synthesize(cfg, target, nodsp=args.nodsp, cache=not args.no_cache)
    if args.json:
        print(json.dumps({**{k: getattr(res, k) for k in Resources.FIELDS}, "lut_sites": res.lut_sites,
                          "target": res.target,
                          "device": device.name if device else None,
                          "nodsp": args.nodsp, "yosys": res.yosys, "workaround": res.workaround or None,
                          "seconds": res.seconds, "cached": res.cached,
                          "engine": args.engine, "config": cfg.to_dict(), "cells": res.cells}))
        return 0
    src = "cached result of a" if res.cached else "a"
    part = f"{device.name} ({target})" if device else target
    print(f"synth {args.engine} ({_config_str(cfg)}) for {part}{' -nodsp' if args.nodsp else ''}: "
          f"{src} {res.seconds:.1f} s run of {res.yosys}")
    if res.workaround:
        print(f"  ({res.workaround})")
    cols = [c.upper() for c in Resources.FIELDS]
    print("  " + "  ".join(f"{c:>7}" for c in cols))
    print("  " + "  ".join(f"{getattr(res, f):>7}" for f in Resources.FIELDS))
    if res.lut_sites != res.lut:
        print(f"  LUT sites {res.lut_sites} ({lut_sites_rule(target)}: the unit of the part's LUT count and of "
              f"the cost model's LUT)")
    if device:
        print(f"  of {device.name}: {device.lut} LUT, {device.ff} FF, {device.dsp} DSP, {device.bram18} BRAM18")
    if target == "ice40":
        print("  (an iCE40 part counts logic cells: these LUT4s plus the flip-flops and carries nextpnr cannot pack "
              "beside one; costmodel.packing.logic_cells measures them, the cost model's iCE40 LUT estimates them)")
    return 0


# ---- registration --------------------------------------------------------------------------------


def _engine_help(mod: types.ModuleType) -> str:
    return (mod.__doc__ or mod.__name__).strip().splitlines()[0]


#: example engine options of each engine in ``--help`` (others: none shown)
EXAMPLE_CONFIGS = {
    "dot": "--lanes 16 --wfmt e2m3 --afmt int8",
    "sparse": "--lanes 8 --pattern 2:4 --wfmt e4m3 --afmt int8",
    "swa": "--head-dim 64 --window 16 --lanes 8 --qk-fmt int8 --v-fmt int8",
}
#: example command-specific options (``sim``: per engine)
EXAMPLE_EXTRA = {
    "rtl": "-o rtl/",
    "sim": {"swa": "--seq-len 64 --seed 1", None: "--k 256 --vectors 10 --seed 1 --backend verilator"},
    "synth": f"--device {DEFAULT_DEVICE} --json",
}


def _example(cmd: str, engine: str | None) -> str:
    extra = EXAMPLE_EXTRA[cmd]
    if isinstance(extra, dict):
        extra = extra.get(engine, extra[None])
    names = [engine] if engine else [e for e in EXAMPLE_CONFIGS if e in ENGINES]
    lines = [f"  paretofab {cmd} {e} {EXAMPLE_CONFIGS[e]} {extra}" for e in names if e in EXAMPLE_CONFIGS]
    return "example:\n" + ("\n".join(lines) if lines else f"  paretofab {cmd} {engine} --help")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rtl``, ``sim`` and ``synth`` with one sub-command per registered engine."""
    def extra_rtl(p):
        p.add_argument("-o", "--output", required=True, metavar="DIR",
                       help="folder for <top>.v and <top>.json (created) (required)")
        p.add_argument("--device", metavar="PART", default=DEFAULT_DEVICE,
                       help=f"FPGA part of the FuseSoC core's synth_yosys and vivado targets ({', '.join(DEVICES)}) "
                            f"(default: {DEFAULT_DEVICE})")
        p.add_argument("--axis", action="store_true",
                       help="AXI4-Stream top (s_axis_*/m_axis_* with tdata, tvalid, tready, tlast, tkeep; named "
                            "<design>_axis) instead of the bare valid/ready streams (default: off)")
        p.add_argument("--top", metavar="NAME", default=None,
                       help="Verilog top module name, also the file names (default: named after the design, "
                            "e.g. dot_l16_int8_int8_k1024)")
        g = p.add_argument_group("testbench")
        g.add_argument("--testbench", action="store_true",
                       help="also write tb_<top>.sv, a self-checking testbench for Icarus Verilog and Verilator, "
                            "and its <top>_in.hex / <top>_expected.hex (a random workload, below; expected values "
                            "from the exact reference) (default: off)")
        g.add_argument("--valid-pct", type=int, default=DEFAULT_VALID_PCT, metavar="PCT",
                       help=f"testbench: chance per cycle of offering an input beat, percent "
                            f"(default: {DEFAULT_VALID_PCT}; 100: never stall)")
        g.add_argument("--ready-pct", type=int, default=DEFAULT_READY_PCT, metavar="PCT",
                       help=f"testbench: chance per cycle of taking an output beat, percent "
                            f"(default: {DEFAULT_READY_PCT}; 100: never stall)")
        add_workload_options(p, p.get_default("engine_module"))

    def extra_sim(p):
        add_workload_options(p, p.get_default("engine_module"))
        g = p.add_argument_group("simulation")
        names = ", ".join(f.name for f in dataclasses.fields(workload_class(p.get_default("engine_module"))))
        g.add_argument("--codes", metavar="NPZ", help=f"run these codes instead of a random workload (.npz with "
                                                        f"uint8 arrays {names}; workload options are ignored) "
                                                        f"(default: a random workload)")
        g.add_argument("--backend", choices=BACKENDS, default="pysim", help="simulator (default: pysim)")
        g.add_argument("--out-ready", metavar="BITS", help="repeating sink ready pattern, e.g. 1101 (default: 1)")
        g.add_argument("--in-valid", metavar="BITS", help="repeating source valid pattern, e.g. 10 (default: 1)")
        g.add_argument("--json", action="store_true", help="inputs, outputs, reference and cycles as JSON "
                                                            "(default: a summary)")

    def extra_synth(p):
        p.add_argument("--device", metavar="PART", default=DEFAULT_DEVICE,
                       help=f"FPGA part; synthesis uses its Yosys family ({', '.join(DEVICES)}) "
                            f"(default: {DEFAULT_DEVICE})")
        p.add_argument("--target", default=None, action=_Deprecated, new="--device PART", help=argparse.SUPPRESS)
        p.add_argument("--nodsp", action="store_true", help="map multipliers to LUTs, not DSP blocks (default: off)")
        p.add_argument("--no-cache", action="store_true",
                       help="synthesize again even if a cached result exists (default: use the cache)")
        p.add_argument("--json", action="store_true",
                       help="resource counts as JSON (keys lut ff carry dsp bram18 lutram muxf …) (default: a table)")

    commands = (
        ("rtl", "write an engine's Verilog, named after the design, and a JSON of its ports and payload bit "
                "layout", _rtl, extra_rtl),
        ("sim", "simulate an engine on a random workload and check it against the exact reference and the "
                "closed-form cycle count (exit 1 on a mismatch)", _sim, extra_sim),
        ("synth", "synthesize an engine with Yosys for an FPGA part and print its resources", _synth, extra_synth),
    )
    fmt = argparse.RawDescriptionHelpFormatter
    for cmd, help_, func, extra in commands:
        p = sub.add_parser(cmd, help=help_.split(" (")[0], description=textwrap.fill(help_ + "."),
                           epilog=_example(cmd, None), formatter_class=fmt)
        engines = p.add_subparsers(dest="engine", metavar="ENGINE", required=True)
        for name, mod in ENGINES.items():
            try:
                config_class(mod), workload_class(mod)
            except (CliError, NameError, AttributeError) as e:  # a broken plug-in must not take the CLI down
                print(f"paretofab: engine {name!r} skipped: {e}", file=sys.stderr)
                continue
            q = engines.add_parser(name, help=_engine_help(mod), description=textwrap.fill(f"{help_}. {name}: {_engine_help(mod)}"),
                                   epilog=_example(cmd, name), formatter_class=fmt)
            q.set_defaults(func=func, engine_module=mod)
            add_config_options(q, config_class(mod))
            extra(q)
