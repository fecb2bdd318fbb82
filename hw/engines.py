"""Registry of engine modules. Each follows :class:`hw.engine.EngineModule` (``Config``,
``random_workload``, ``pack_inputs``, ``n_outputs``, ``unpack_outputs``, ``reference``,
``output_exponent``, ``cycles``) and its ``Config`` follows :class:`hw.engine.Engine` (a frozen
dataclass with ``build()``/``to_dict()``/``from_dict()``). Adding an engine = one new module plus
one entry in :data:`ENGINES`."""

from __future__ import annotations

from types import ModuleType

from . import dot, sparse, swa

__all__ = ["ENGINES", "engine", "config_from_dict"]

ENGINES: dict[str, ModuleType] = {"dot": dot, "sparse": sparse, "swa": swa}


def engine(name: str) -> ModuleType:
    """The engine module called ``name``; raises ``ValueError`` naming the valid ones."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None


def config_from_dict(d: dict):
    """Rebuild any engine config from its ``to_dict()`` (the ``engine`` key picks the class)."""
    if "engine" not in d:
        raise ValueError(f"config dict needs an 'engine' key, one of {', '.join(ENGINES)}")
    mod = engine(d["engine"])
    return mod.Config.from_dict(d)
