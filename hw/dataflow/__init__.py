"""Whole-network dataflow accelerators: a chain of per-layer stages (:mod:`.plan` — what they
compute, their numpy model and timing; :mod:`.stage` — one stage in hardware; :mod:`.top` — the
chain)."""
