"""Whole-network dataflow accelerators: a chain of per-layer stages (:mod:`.plan` — what they
compute, their numpy model and timing; :mod:`.row` — row stages: residual joins, LayerNorm, means;
:mod:`.stage`, :mod:`.row_engine` — one stage in hardware; :mod:`.top` — the chain)."""
