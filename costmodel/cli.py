"""``paretofab`` subcommands of the cost model: ``cost dot|sparse …`` and ``pareto FILE``."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import textwrap
from pathlib import Path

import pandas as pd

from hw.cli import DEFAULT_K_MAX, add_config_options, config_class, make_config
from hw.engines import ENGINES, engine

from hw.devices import DEFAULT_DEVICE, DEVICES
from quant.common import HelpFormatter, writable_folder

from .estimate import LABEL_COLUMNS, estimate, estimate_frame
from .pareto import PlotOptions, pareto, plot

#: engines the cost model is calibrated for
COSTED_ENGINES = ("dot", "sparse", "swa")
COST_KEYS = ["lut", "ff", "dsp", "bram18", "cycles", "fmax_mhz", "latency_us", "energy_nj"]
#: what ``cost --json`` prints beside :data:`COST_KEYS`: the source and held-out error of every
#: figure, the fmax clamp, the energy split and the part
LABEL_KEYS = ["resource_source", "error", "error_source", "fmax_source", "fmax_clamped", "fmax_cap_mhz",
              "energy_source", "dynamic_nj", "static_nj", "device", "target"]


class InputFileError(ValueError):
    """A results file that cannot be read as a table; the message names the fix."""


def _config_from_args(args: argparse.Namespace):
    return make_config(engine(args.engine), args, DEFAULT_K_MAX)


def _cost(args: argparse.Namespace) -> int:
    if getattr(args, "old_n", None) is not None:  # `cost swa --n`: the old spelling of --seq-len
        print("paretofab cost swa: --n is deprecated (it is N of N:M elsewhere); use --seq-len", file=sys.stderr)
        args.seq_n = args.old_n
    config = _config_from_args(args)
    is_swa = config.engine == "swa"
    if args.block_density != 1.0 and getattr(config, "block", None) is None:
        raise ValueError(f"--block-density {args.block_density:g} needs --block SIZE: without blocks the engine "
                         "skips nothing (give --block, or drop --block-density)")
    if is_swa:
        c = estimate(config, args.device, n=args.seq_n)
    else:
        c = estimate(config, args.device, k=args.k, vectors=args.vectors, block_density=args.block_density)
    d = c.to_dict()
    if args.json:
        print(json.dumps({k: d[k] for k in COST_KEYS + LABEL_KEYS}))
        return 0
    print(f"{config.engine} engine {config.to_dict()}")
    work = f"n={args.seq_n} tokens" if is_swa else f"K={args.k or config.k_max}, vectors={args.vectors}"
    print(f"device {c.device} (target {c.target}); workload {work}")
    err = c.error  # None values where the fit is another target's: no error bar is printed then
    kind = next((k for k in ("leave-one-out", "5-fold cross-validation") if c.error_source.startswith(k)), "held-out")
    for k, unit in (("lut", "LUTs"), ("ff", "FFs"), ("dsp", "DSPs"), ("bram18", "BRAM18")):
        e = err.get(k)
        bar = f"  ({kind} error median {e['median']:.1%}, p90 {e['p90']:.1%})" if e and e["median"] is not None else ""
        val = f"{d[k]:>12,}" if d[k] is not None else f"{'n/a':>12}"
        print(f"  {k:<11}{val} {unit}{bar}")
    print(f"  {'cycles':<11}{c.cycles:>12,}")
    clamp = (f" (clamped at the {c.target} clock cap {c.fmax_cap_mhz:g} MHz: the path model gives more)"
             if c.fmax_clamped else "")
    print(f"  {'fmax':<11}{c.fmax_mhz:>12.1f} MHz{clamp}   [{c.fmax_source}]")
    print(f"  {'latency':<11}{c.latency_us:>12.4g} µs")
    print(f"  {'energy':<11}{c.energy_nj:>12.4g} nJ    (dynamic {c.dynamic_nj:.4g} nJ ASIC-based + static "
          f"{c.static_nj:.4g} nJ)")
    if c.lut is not None:
        util = c.utilization()
        print(f"  fits {c.device}: {'yes' if c.fits() else 'NO'} ("
              + ", ".join(f"{k} {v:.1%}" for k, v in util.items()) + ")")
    print(f"  resources: {c.resource_source}")
    print(f"  error:     {c.error_source}")
    return 0


def read_table(path: str | Path, table: str | None = None) -> pd.DataFrame:
    """A results table from CSV or SQLite (``table`` picks one when the database has several;
    a ``paretofab sweep`` store — tables ``meta`` and ``points`` — reads ``points``)."""
    p = Path(path)
    if p.is_dir():
        raise InputFileError(f"{p} is a folder: give a CSV file or a SQLite database (e.g. {p}/sweep.sqlite)")
    with p.open("rb") as f:  # FileNotFoundError, PermissionError: the CLI names the path
        head = f.read(16)
    if head.startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view') "
                                               "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            if table is None and "points" in names and "meta" in names:
                table = "points"  # a `paretofab sweep` results store
            if table is None:
                if len(names) != 1:
                    raise InputFileError(f"{p} holds tables {names}; pick one with --table NAME")
                table = names[0]
            elif table not in names:
                raise InputFileError(f"{p} has no table {table!r}; it holds {names}")
            return pd.read_sql_query(f'SELECT * FROM "{table}"', con)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as e:  # truncated, corrupt, encrypted …
            raise InputFileError(f"{p} is a damaged SQLite database ({e}); rerun the sweep that wrote it, "
                                 "or restore it from a copy") from None
        finally:
            con.close()
    try:
        return pd.read_csv(p)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise InputFileError(f"{p} is neither a CSV file nor a SQLite database ({e})") from None


DEFAULT_MIN = ["lut", "dsp", "latency_us", "energy_nj"]
DEFAULT_MAX = ["accuracy", "acc", "top1", "f1", "micro_f1"]


def _pareto(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path("runs") / "pareto" / f"{Path(args.file).stem}_pareto.png"
    for path in (out, args.csv_out):  # a bad output path fails before the table is read and costed
        if path:
            writable_folder(Path(path).parent)
    df = read_table(args.file, args.table)
    if args.estimate or (not any(c in df.columns for c in DEFAULT_MIN)
                         and {"lanes", "wfmt", "afmt", "k_max"} <= set(df.columns)):
        df = estimate_frame(df, args.device)
    maximize = args.maximize or [c for c in DEFAULT_MAX if c in df.columns][:1]
    minimize = args.minimize or [c for c in DEFAULT_MIN if c in df.columns]
    if not maximize and not minimize:
        raise InputFileError(f"no objectives: pass --maximize/--minimize column names (columns: {list(df.columns)})")
    front = pareto(df, maximize=maximize, minimize=minimize)
    labels = [c for c in LABEL_COLUMNS if c in df.columns]
    show = [c for c in df.columns if c != "config" and c not in labels][:14]
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        print(f"Pareto front: {len(front)} of {len(df)} points (maximize {maximize}, minimize {minimize})")
        print(front[show + ["pareto_rank"]].to_string(index=False))
    if labels:
        print(f"labels (source and held-out error of every figure, fmax clamp): columns {', '.join(labels)}"
              + (f" of {args.csv_out}" if args.csv_out else "; --csv-out FILE writes them"))
    x = args.x or (minimize[0] if minimize else maximize[0])
    y = args.y or (maximize[0] if maximize else (minimize[1] if len(minimize) > 1 else minimize[0]))
    label = args.label or next((c for c in ("name", "label", "wfmt") if c in df.columns), None)
    # the plot shows the 2-D front of the two plotted objectives
    plot(df, x, y, PlotOptions(maximize=[c for c in (x, y) if c in maximize],
                               minimize=[c for c in (x, y) if c in minimize or c not in maximize], label=label),
         path=out)
    if args.csv_out:
        front.to_csv(args.csv_out, index=False)
    print(f"plot: {out}")
    return 0


COST_EXAMPLES = {
    "dot": "paretofab cost dot --lanes 16 --wfmt int8 --afmt int8 --k-max 1024 --k 256 --vectors 64",
    "sparse": "paretofab cost sparse --lanes 8 --pattern 2:4 --wfmt e4m3 --afmt int8 --block 32 --block-density 0.5 "
              "--k 512",
    "swa": "paretofab cost swa --head-dim 16 --window 16 --lanes 16 --qk-fmt int8 --v-fmt int8 --seq-len 128 --json",
}


def _summary(mod) -> str:
    """The first sentence of an engine module's docstring, as plain text."""
    para = " ".join((mod.__doc__ or mod.__name__).strip().split("\n\n")[0].split())
    para = re.sub(r"\s*\(:\w+:`[^`]*`\)", "", para)  # "(:mod:`.config`)"
    para = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", para).replace("``", "")
    first = re.split(r"(?<=\.)\s", para, maxsplit=1)[0].rstrip(".")
    return first if len(first) <= 100 else first.split(":")[0]


def _wrap(text: str) -> str:
    return textwrap.fill(text, 100)


def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="estimate LUT/FF/DSP/BRAM, cycles, fmax, latency and energy of an engine",
                       description=_wrap("Cost-model estimate (microseconds, no synthesis) of one engine config on a "
                                   "workload and an FPGA part: resources with their held-out error, cycles "
                                   "from the engine's own closed form, fmax, latency and energy."),
                       epilog=_example(*COST_EXAMPLES.values()), formatter_class=HelpFormatter)
    esub = p.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    parts = ", ".join(DEVICES)
    for name in COSTED_ENGINES:
        if name not in ENGINES:
            continue
        mod = ENGINES[name]
        first = _summary(mod)
        work = ("--seq-len tokens" if name == "swa" else
                "--k elements per dot product and --vectors dot products"
                + (", --block-density the fraction of weight blocks kept" if name == "sparse" else ""))
        q = esub.add_parser(name, help=first, formatter_class=HelpFormatter, epilog=_example(COST_EXAMPLES.get(name, "")),
                            description=_wrap(f"Cost-model estimate of one {name} engine ({first}): the "
                                        f"engine's config options, the workload ({work}) and the FPGA part "
                                        "(--device). Prints a table, or --json."))
        add_config_options(q, config_class(mod))
        g = q.add_argument_group("workload and device")
        if name == "swa":
            g.add_argument("--seq-len", dest="seq_n", type=int, default=64, metavar="TOKENS",
                           help="sequence length, tokens (default: 64)")
            g.add_argument("--n", dest="old_n", type=int, default=None, help=argparse.SUPPRESS)  # deprecated
        else:
            g.add_argument("--k", type=int, default=None, metavar="K",
                           help="workload reduction length: elements per dot product, at most --k-max "
                                "(default: k_max)")
            g.add_argument("--vectors", type=int, default=1, metavar="N", help="dot products in the workload")
        if name == "sparse":
            g.add_argument("--block-density", type=float, default=1.0, metavar="FRACTION",
                           help="expected fraction of non-zero weight blocks; needs --block")
        else:
            q.set_defaults(block_density=1.0)
        g.add_argument("--device", default=DEFAULT_DEVICE, metavar="PART", help=f"FPGA part: {parts}")
        g.add_argument("--json", action="store_true",
                       help="one JSON object: lut ff dsp bram18 cycles fmax_mhz latency_us energy_nj, then "
                            "their labels: resource_source, error (held-out median/p90 per resource), "
                            "error_source, fmax_source, fmax_clamped, fmax_cap_mhz, energy_source, "
                            "dynamic_nj, static_nj, device, target")
        q.set_defaults(func=_cost)

    p = sub.add_parser("pareto", help="Pareto front of a results table (CSV or SQLite) + plot",
                       description=_wrap("Non-dominated points of a results table (a CSV file, a SQLite database, "
                                   "or a `paretofab sweep` store), printed, and a PNG/SVG plot of two of the "
                                   "objectives. A table of engine configs without cost columns is costed first."),
                       epilog=_example("paretofab pareto runs/explore/pareto.csv --maximize micro_f1 "
                                       "--minimize lut latency_us --out front.svg",
                                       "paretofab pareto configs.csv --estimate --device xczu3eg "
                                       "--minimize lut latency_us"),
                       formatter_class=HelpFormatter)
    p.add_argument("file", help="CSV file or SQLite database")
    p.add_argument("--table", default=None, help="SQLite table (when the database has several)")
    p.add_argument("--maximize", nargs="+", default=None, metavar="COL",
                   help=f"columns to maximize (default: the first of {DEFAULT_MAX} present)")
    p.add_argument("--minimize", nargs="+", default=None, metavar="COL",
                   help=f"columns to minimize (default: those of {DEFAULT_MIN} present)")
    p.add_argument("--x", default=None, metavar="COL", help="plot x column (default: first minimized)")
    p.add_argument("--y", default=None, metavar="COL", help="plot y column (default: first maximized)")
    p.add_argument("--label", default=None, metavar="COL",
                   help="column naming front points in the plot (default: name, label or wfmt)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="plot path, .png or .svg (default: runs/pareto/<file>_pareto.png)")
    p.add_argument("--csv-out", default=None, metavar="PATH", help="also write the front as CSV")
    p.add_argument("--estimate", action="store_true", help="cost every row with the cost model first")
    p.add_argument("--device", default=DEFAULT_DEVICE, metavar="PART", help=f"FPGA part for costing: {parts}")
    p.set_defaults(func=_pareto)
