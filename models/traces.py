"""Memory-access traces from instrumented GAP graph kernels, filtered to the LLC access stream.

The kernels bc, cc, pr, sssp and bfs run (in numpy, level-synchronously) on a seeded RMAT graph
and emit the byte address of every array *read* in program order, each tagged with a fixed
synthetic instruction pointer (IP) per load site. Each array lives in its own page-aligned region.
Virtual pages are mapped to physical pages on first touch, as ChampSim does
(:func:`physical_addresses`). The physical load stream is filtered through an L1D (48 KB, 12-way)
and an L2 (512 KB, 8-way) LRU model with 64 B lines; the L2 misses form the LLC access stream that
MAP models learn from (as in the ML-DPC load traces). A 2 MB 16-way LLC model fills the
``llc_hit`` column. A warm-up prefix of the loads (:func:`default_skip_loads`) passes through the
caches but is not logged.

Simplifications (documented so nobody mistakes them for GAP's exact behaviour):
* bfs is top-down only (GAP switches direction); bc uses depth checks instead of a successor bitmap.
* cc is Shiloach-Vishkin with synchronous (Jacobi) hooking: conditional loads follow the component
  array as it was at the start of each sweep.
* sssp is delta-stepping (delta = 32) with one insertion-ordered queue.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

APPS = ("bc", "cc", "pr", "sssp", "bfs")
PAGE = 4096
LINE = 64
#: base of the first array region (a typical 64-bit heap address)
HEAP_BASE = 0x5600_0000_0000
#: base of the synthetic load IPs; each app gets its own 4 KB code page
IP_BASE = 0x40_1000
#: synthetic instructions per load of the raw stream (``instr_id`` counts in these)
INSTR_PER_LOAD = 4
#: warm-up loads skipped by default for apps other than pr: ChampSim's 1M warm-up instructions
WARMUP_LOADS = 1_000_000 // INSTR_PER_LOAD
#: physical memory for the page mapping: PHYS_SLOTS slots of SLOT_PAGES 4 KB pages (2**38 B)
PHYS_SLOTS = 1 << 16
SLOT_PAGES = 1024
#: RMAT graph scales :func:`rmat_graph` builds (2**scale vertices)
SCALES = range(4, 25)
#: run lengths are 2**r pages, r uniform in 0..RUN_LOG2 - 1 (ChampSim: ``1 << (rand() % 10)``)
RUN_LOG2 = 10
#: version string written into every trace's provenance
GENERATOR = "paretofab-traces 2"


class TraceError(ValueError):
    """Bad trace-generation parameters or a malformed trace file."""


# --------------------------------------------------------------------------------------------
# graphs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Graph:
    """Undirected graph in CSR form (both directions stored).

    Attributes
    ----------
    n : number of vertices.
    offsets : int64 (n + 1,), neighbour list of u is ``neighbors[offsets[u]:offsets[u+1]]``.
    neighbors : int32 (m,), sorted within each list.
    weights : int32 (m,) in 1..255 (edge weights for sssp; symmetric).
    """

    n: int
    offsets: np.ndarray
    neighbors: np.ndarray
    weights: np.ndarray

    @property
    def m(self) -> int:
        """Number of directed edges stored."""
        return int(self.neighbors.size)

    def degree(self) -> np.ndarray:
        return np.diff(self.offsets)


def rmat_graph(scale: int, edge_factor: int = 16, seed: int = 0,
               a: float = 0.57, b: float = 0.19, c: float = 0.19) -> Graph:
    """Seeded RMAT graph as GAP's generator makes it (Graph500 parameters, permuted ids).

    ``2**scale`` vertices, ``edge_factor * 2**scale`` generated edges, symmetrized, self-loops and
    duplicates removed. Weights are uniform integers in 1..255, symmetric per undirected edge.
    """
    if scale not in SCALES:
        raise TraceError(f"graph scale {scale} out of range: use {SCALES.start}..{SCALES.stop - 1} (18, the default, "
                         "has arrays of tens of MB, far beyond the 2 MB LLC)")
    if edge_factor < 1:
        raise TraceError(f"edge factor {edge_factor} must be >= 1")
    rng = np.random.default_rng(seed)
    n = 1 << scale
    ne = edge_factor * n
    src = np.zeros(ne, np.int64)
    dst = np.zeros(ne, np.int64)
    for bit in range(scale):
        r = rng.random(ne)
        # quadrants: A (0,0), B (0,1), C (1,0), D (1,1)
        dst_bit = ((r >= a) & (r < a + b)) | (r >= a + b + c)
        src_bit = r >= a + b
        src |= src_bit.astype(np.int64) << bit
        dst |= dst_bit.astype(np.int64) << bit
    perm = rng.permutation(n)
    src, dst = perm[src], perm[dst]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = np.unique(lo * n + hi)
    lo, hi = key // n, key % n
    w_und = rng.integers(1, 256, size=key.size, dtype=np.int64)
    u = np.concatenate([lo, hi])
    v = np.concatenate([hi, lo])
    w = np.concatenate([w_und, w_und])
    order = np.lexsort((v, u))
    u, v, w = u[order], v[order], w[order]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(u, minlength=n), out=offsets[1:])
    return Graph(n, offsets, v.astype(np.int32), w.astype(np.int32))


# --------------------------------------------------------------------------------------------
# address layout and load sites
# --------------------------------------------------------------------------------------------
@dataclass
class Layout:
    """Page-aligned array regions: name -> (base address, element size in bytes, length)."""

    regions: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    _next: int = HEAP_BASE

    def add(self, name: str, elem_bytes: int, length: int) -> None:
        self.regions[name] = (self._next, elem_bytes, length)
        size = elem_bytes * max(length, 1)
        self._next += (size + PAGE - 1) // PAGE * PAGE + PAGE  # one guard page between arrays

    def addr(self, name: str, idx: np.ndarray) -> np.ndarray:
        base, size, _ = self.regions[name]
        return np.uint64(base) + np.asarray(idx, np.uint64) * np.uint64(size)

    def region_of(self, addr: np.ndarray) -> np.ndarray:
        """Index (in insertion order) of the region each address falls in, -1 if none."""
        out = np.full(np.shape(addr), -1, np.int64)
        a = np.asarray(addr, np.uint64)
        for i, (base, size, length) in enumerate(self.regions.values()):
            inside = (a >= np.uint64(base)) & (a < np.uint64(base + size * length))
            out[inside] = i
        return out


#: load sites per app: site name -> array it reads (the IP is fixed per site)
SITES: dict[str, dict[str, str]] = {
    "pr": {"deg_off": "offsets", "deg_off1": "offsets", "score_c": "scores",
           "off": "offsets", "off1": "offsets", "neigh": "neighbors", "contrib": "contrib",
           "score": "scores"},
    "cc": {"off": "offsets", "off1": "offsets", "neigh": "neighbors", "comp_u": "comp",
           "comp_v": "comp", "comp_high": "comp", "sc_comp": "comp", "sc_comp2": "comp"},
    "bfs": {"queue": "queue", "off": "offsets", "off1": "offsets", "neigh": "neighbors",
            "parent": "parent"},
    "sssp": {"queue": "queue", "dist_u": "dist", "off": "offsets", "off1": "offsets",
             "wneigh": "wneighbors", "dist_v": "dist"},
    "bc": {"queue": "queue", "off": "offsets", "off1": "offsets", "neigh": "neighbors",
           "depth": "depth", "paths_u": "path_counts", "b_off": "offsets", "b_off1": "offsets",
           "b_neigh": "neighbors", "b_depth": "depth", "b_paths_u": "path_counts",
           "b_paths_v": "path_counts", "b_delta_v": "deltas", "score": "scores"},
}


def site_ips(app: str) -> dict[str, int]:
    """Synthetic IP of each load site of ``app`` (16 bytes apart in the app's own code page)."""
    page = IP_BASE + APPS.index(app) * 0x1000
    return {s: page + 0x10 * i + 0x4 for i, s in enumerate(SITES[app])}


class _Emitter:
    """Collects load chunks (addresses + IPs) in program order."""

    def __init__(self, app: str, layout: Layout, max_loads: int, pbar: tqdm | None):
        self.app, self.layout, self.max_loads, self.pbar = app, layout, max_loads, pbar
        self.ips = site_ips(app)
        self.addr: list[np.ndarray] = []
        self.ip: list[np.ndarray] = []
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count >= self.max_loads

    def vertex_loop(self, degs: np.ndarray, edge_start: np.ndarray,
                    header: list[tuple[str, np.ndarray, np.ndarray | None]],
                    edge: list[tuple[str, np.ndarray, np.ndarray | None]],
                    trailer: list[tuple[str, np.ndarray, np.ndarray | None]] = ()) -> None:
        """Emit ``for i: header loads; for each edge of i: edge loads; trailer loads``.

        Each load is ``(site, index array, mask or None)``: header/trailer arrays have one entry per
        loop vertex, edge arrays one per edge (concatenated in loop order). Masked-out loads are
        skipped (conditional loads).
        """
        nv = degs.size
        H, K, T = len(header), len(edge), len(trailer)
        blk = H + K * degs + T
        start = np.zeros(nv, np.int64)
        np.cumsum(blk[:-1], out=start[1:])
        total = int(blk.sum())
        addr = np.zeros(total, np.uint64)
        ip = np.zeros(total, np.uint64)
        keep = np.ones(total, bool)

        def put(pos: np.ndarray, site: str, idx: np.ndarray, mask: np.ndarray | None) -> None:
            addr[pos] = self.layout.addr(SITES[self.app][site], idx)
            ip[pos] = self.ips[site]
            if mask is not None:
                keep[pos] = mask

        for h, (site, idx, mask) in enumerate(header):
            put(start + h, site, idx, mask)
        if K:
            owner = np.repeat(np.arange(nv), degs)
            rank = np.arange(owner.size) - np.repeat(edge_start, degs)
            epos = start[owner] + H + rank * K
            for k, (site, idx, mask) in enumerate(edge):
                put(epos + k, site, idx, mask)
        for t, (site, idx, mask) in enumerate(trailer):
            put(start + H + K * degs + t, site, idx, mask)
        self._push(addr[keep], ip[keep])

    def _push(self, addr: np.ndarray, ip: np.ndarray) -> None:
        room = self.max_loads - self.count
        addr, ip = addr[:room], ip[:room]
        self.addr.append(addr)
        self.ip.append(ip)
        self.count += addr.size
        if self.pbar is not None:
            self.pbar.update(addr.size)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.addr:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        return np.concatenate(self.addr), np.concatenate(self.ip)


def _expand(g: Graph, verts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge indices of the neighbour lists of ``verts`` in loop order, per-vertex degrees, and the
    start of each vertex's edges in the concatenated edge arrays."""
    starts = g.offsets[verts]
    degs = g.offsets[verts + 1] - starts
    estart = np.zeros(verts.size, np.int64)
    np.cumsum(degs[:-1], out=estart[1:])
    j = np.arange(int(degs.sum()), dtype=np.int64) - np.repeat(estart, degs) + np.repeat(starts, degs)
    return j, degs, estart


def _first_occurrence(x: np.ndarray) -> np.ndarray:
    """Unique values of ``x`` in order of first appearance."""
    if x.size == 0:
        return x
    _, first = np.unique(x, return_index=True)
    return x[np.sort(first)]


def _sources(g: Graph, rng: np.random.Generator, count: int) -> np.ndarray:
    cand = np.flatnonzero(g.degree() > 0)
    return rng.choice(cand, size=count, replace=True)


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------
def _pr(g: Graph, em: _Emitter, rng: np.random.Generator, iters: int) -> None:
    n = g.n
    deg = g.degree()
    scores = np.full(n, 1.0 / n, np.float32)
    verts = np.arange(n)
    j, degs, estart = _expand(g, verts)
    for _ in range(iters):
        if em.full:
            return
        # outgoing_contrib[n] = scores[n] / out_degree(n)
        em.vertex_loop(np.zeros(n, np.int64), np.zeros(n, np.int64),
                       [("deg_off", verts, None), ("deg_off1", verts + 1, None),
                        ("score_c", verts, None)], [])
        contrib = scores / np.maximum(deg, 1)
        # for u: for v in in_neigh(u): total += contrib[v]; old = scores[u]
        nb = g.neighbors[j]
        em.vertex_loop(degs, estart, [("off", verts, None), ("off1", verts + 1, None)],
                       [("neigh", j, None), ("contrib", nb, None)], [("score", verts, None)])
        total = np.bincount(np.repeat(verts, degs), weights=contrib[nb], minlength=n)
        scores = (0.15 / n + 0.85 * total).astype(np.float32)


def _cc(g: Graph, em: _Emitter, rng: np.random.Generator, iters: int) -> None:
    n = g.n
    comp = np.arange(n, dtype=np.int64)
    verts = np.arange(n)
    j, degs, estart = _expand(g, verts)
    u_of_edge = np.repeat(verts, degs)
    nb = g.neighbors[j].astype(np.int64)
    for _ in range(iters):
        if em.full:
            return
        cu, cv = comp[u_of_edge], comp[nb]
        differ = cu != cv
        high, low = np.maximum(cu, cv), np.minimum(cu, cv)
        em.vertex_loop(degs, estart, [("off", verts, None), ("off1", verts + 1, None)],
                       [("neigh", j, None), ("comp_u", u_of_edge, None), ("comp_v", nb, None),
                        ("comp_high", high, differ)])
        hook = differ & (comp[high] == high)
        if not hook.any():
            return
        new = comp.copy()
        np.minimum.at(new, high[hook], low[hook])
        comp = new
        # shortcut: while comp[n] != comp[comp[n]]: comp[n] = comp[comp[n]]
        em.vertex_loop(np.zeros(n, np.int64), np.zeros(n, np.int64),
                       [("sc_comp", verts, None), ("sc_comp2", comp, None)], [])
        while True:
            nxt = comp[comp]
            if np.array_equal(nxt, comp):
                break
            comp = nxt


def _bfs_levels(g: Graph, source: int):
    """Yield (frontier, queue positions, edge idx, degs, estart, neighbours) per BFS level and the
    final depth array (via StopIteration value)."""
    depth = np.full(g.n, -1, np.int64)
    depth[source] = 0
    frontier = np.array([source], np.int64)
    qpos = 0
    level = 0
    while frontier.size:
        j, degs, estart = _expand(g, frontier)
        nb = g.neighbors[j].astype(np.int64)
        yield frontier, np.arange(qpos, qpos + frontier.size), j, degs, estart, nb, depth.copy()
        qpos += frontier.size
        new = _first_occurrence(nb[depth[nb] < 0])
        level += 1
        depth[new] = level
        frontier = new
    return depth


def _bfs(g: Graph, em: _Emitter, rng: np.random.Generator, iters: int) -> None:
    for s in _sources(g, rng, iters):
        for frontier, qidx, j, degs, estart, nb, _ in _bfs_levels(g, int(s)):
            if em.full:
                return
            em.vertex_loop(degs, estart, [("queue", qidx, None), ("off", frontier, None),
                                          ("off1", frontier + 1, None)],
                           [("neigh", j, None), ("parent", nb, None)])


def _sssp(g: Graph, em: _Emitter, rng: np.random.Generator, iters: int, delta: int = 32) -> None:
    for s in _sources(g, rng, iters):
        dist = np.full(g.n, np.iinfo(np.int64).max // 4, np.int64)
        dist[int(s)] = 0
        queue = np.array([int(s)], np.int64)
        qpos = 0
        while queue.size:
            if em.full:
                return
            bucket = dist[queue] // delta
            b = bucket.min()
            sel = bucket == b
            frontier, queue = queue[sel], queue[~sel]
            j, degs, estart = _expand(g, frontier)
            nb = g.neighbors[j].astype(np.int64)
            em.vertex_loop(degs, estart, [("queue", np.arange(qpos, qpos + frontier.size), None),
                                          ("dist_u", frontier, None), ("off", frontier, None),
                                          ("off1", frontier + 1, None)],
                           [("wneigh", j, None), ("dist_v", nb, None)])
            qpos += frontier.size
            cand = np.repeat(dist[frontier], degs) + g.weights[j]
            better = cand < dist[nb]
            np.minimum.at(dist, nb[better], cand[better])
            improved = _first_occurrence(nb[better])
            queue = _first_occurrence(np.concatenate([queue, improved]))


def _bc(g: Graph, em: _Emitter, rng: np.random.Generator, iters: int) -> None:
    for s in _sources(g, rng, iters):
        levels = []
        paths = np.zeros(g.n)
        paths[int(s)] = 1
        gen = _bfs_levels(g, int(s))
        for frontier, qidx, j, degs, estart, nb, depth_before in gen:
            if em.full:
                return
            d_u = np.repeat(depth_before[frontier], degs)
            unseen = depth_before[nb] < 0
            # depth after discovery: unseen neighbours get depth[u] + 1 this level
            succ = unseen | (depth_before[nb] == d_u + 1)
            em.vertex_loop(degs, estart, [("queue", qidx, None), ("off", frontier, None),
                                          ("off1", frontier + 1, None)],
                           [("neigh", j, None), ("depth", nb, None), ("paths_u", np.repeat(frontier, degs), succ)])
            np.add.at(paths, nb[succ], np.repeat(paths[frontier], degs)[succ])
            levels.append((frontier, j, degs, estart, nb, d_u))
        deltas = np.zeros(g.n)
        depth = np.full(g.n, -1, np.int64)
        for lv, (frontier, *_rest) in enumerate(levels):
            depth[frontier] = lv
        for frontier, j, degs, estart, nb, d_u in reversed(levels):
            if em.full:
                return
            succ = depth[nb] == d_u + 1
            u_e = np.repeat(frontier, degs)
            em.vertex_loop(degs, estart, [("b_off", frontier, None), ("b_off1", frontier + 1, None)],
                           [("b_neigh", j, None), ("b_depth", nb, None), ("b_paths_u", u_e, succ),
                            ("b_paths_v", nb, succ), ("b_delta_v", nb, succ)],
                           [("score", frontier, None)])
            contrib = np.where(succ, paths[u_e] / np.maximum(paths[nb], 1) * (1 + deltas[nb]), 0.0)
            deltas[frontier] += np.bincount(np.repeat(np.arange(frontier.size), degs),
                                            weights=contrib, minlength=frontier.size)


_KERNELS = {"pr": _pr, "cc": _cc, "bfs": _bfs, "sssp": _sssp, "bc": _bc}
#: default iterations (pr/cc sweeps) or sources (bfs/sssp/bc) per app
DEFAULT_ITERS = {"pr": 20, "cc": 20, "bfs": 64, "sssp": 16, "bc": 16}


def _layout(app: str, g: Graph) -> Layout:
    lay = Layout()
    lay.add("offsets", 8, g.n + 1)
    if app == "sssp":
        lay.add("wneighbors", 8, g.m)
    else:
        lay.add("neighbors", 4, g.m)
    props = {"pr": [("scores", 4), ("contrib", 4)], "cc": [("comp", 4)],
             "bfs": [("queue", 4), ("parent", 4)], "sssp": [("queue", 4), ("dist", 4)],
             "bc": [("queue", 4), ("depth", 4), ("path_counts", 4), ("deltas", 4), ("scores", 4)]}
    for name, size in props[app]:
        # sssp's queue can hold a vertex once per improvement: give it room for every edge
        length = g.m + g.n if (app == "sssp" and name == "queue") else g.n
        lay.add(name, size, length)
    return lay


# --------------------------------------------------------------------------------------------
# caches
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheConfig:
    """Set-associative LRU cache: ``size`` bytes, ``ways``, ``line`` bytes.

    ``size`` must split into a power-of-two number of sets of ``ways`` lines (set index =
    line address % sets); :class:`TraceError` otherwise.
    """

    size: int
    ways: int
    line: int = LINE

    def __post_init__(self) -> None:
        unit = self.ways * self.line if min(self.ways, self.line) > 0 else 0
        sets = self.size // unit if unit and self.size % unit == 0 else 0
        if sets <= 0 or sets & (sets - 1):
            raise TraceError(f"cache of {self.size} B, {self.ways} ways of {self.line} B lines: use a "
                             f"size of {self.ways} x {self.line} B x a power of two (e.g. 48 KB "
                             "12-way, 512 KB 8-way)")

    @property
    def sets(self) -> int:
        return self.size // (self.ways * self.line)


L1D = CacheConfig(48 * 1024, 12)
L2 = CacheConfig(512 * 1024, 8)
LLC = CacheConfig(2 * 1024 * 1024, 16)


def lru_hits(lines: np.ndarray, sets: int, ways: int) -> np.ndarray:
    """Hit (True) / miss of each access of a line-address stream in a set-associative LRU cache.

    Vectorized over sets: round r updates the r-th access of every set at once. Repeats of the
    line last used in the same set are hits that leave the LRU state unchanged; they are skipped
    first.

    Parameters
    ----------
    lines : int array of line addresses (byte address // line size), in program order.
    sets, ways : cache geometry (set index = line % sets).
    """
    lines = np.asarray(lines, np.int64)
    n = lines.size
    hits = np.ones(n, bool)
    if n == 0:
        return hits
    order = np.argsort(lines % sets, kind="stable")  # program order within each set
    ls_all = lines[order]
    # a repeat of the line last used in the same set hits the MRU way and changes nothing
    rep = np.zeros(n, bool)
    rep[1:] = ls_all[1:] == ls_all[:-1]
    order = order[~rep]
    ls = ls_all[~rep]
    counts = np.bincount(ls % sets, minlength=sets)
    starts = np.zeros(sets, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    by_count = np.argsort(-counts, kind="stable")  # sets active in round r: the first k of these
    sorted_counts = counts[by_count]
    tags = np.full((sets, ways), -1, np.int64)
    stamp = np.zeros((sets, ways), np.int64)
    hit_sorted = np.zeros(ls.size, bool)
    k = sets
    for r in range(int(counts.max())):
        while k > 0 and sorted_counts[k - 1] <= r:
            k -= 1
        a = by_count[:k]
        pos = starts[a] + r
        x = ls[pos]
        m = tags[a] == x[:, None]
        hit = m.any(axis=1)
        way = np.where(hit, m.argmax(axis=1), stamp[a].argmin(axis=1))
        tags[a, way] = x
        stamp[a, way] = r + 1
        hit_sorted[pos] = hit
    hits[order] = hit_sorted
    return hits


def lru_hits_reference(lines: np.ndarray, sets: int, ways: int) -> np.ndarray:
    """Brute-force LRU model (one Python list per set, most recent last); the test oracle."""
    state: list[list[int]] = [[] for _ in range(sets)]
    out = np.zeros(len(lines), bool)
    for i, x in enumerate(np.asarray(lines, np.int64).tolist()):
        st = state[x % sets]
        if x in st:
            st.remove(x)
            out[i] = True
        elif len(st) == ways:
            st.pop(0)
        st.append(x)
    return out


def stream_prefetched(lines: np.ndarray, degree: int, window: int = 16) -> np.ndarray:
    """Accesses an ideal L2 stream prefetcher would have covered (True = hidden from the LLC).

    Access t is covered when one of the previous ``window`` accesses of the stream touched a line
    in ``lines[t] - degree .. lines[t] - 1``: the prefetcher, trained on that miss, had already
    fetched the next ``degree`` lines. An approximation (no prefetch-induced evictions, no
    timeliness), used to strip streaming misses from the LLC stream; ``degree=0`` disables it.
    """
    x = np.asarray(lines, np.int64)
    hidden = np.zeros(x.size, bool)
    if degree <= 0:
        return hidden
    for k in range(1, window + 1):
        d = x[k:] - x[:-k]
        hidden[k:] |= (d >= 1) & (d <= degree)
    return hidden


def _misses(addr: np.ndarray, l1: CacheConfig, l2: CacheConfig) -> tuple[np.ndarray, np.ndarray]:
    """L1 miss mask (one entry per load) and indices of the loads that also miss L2."""
    line = (np.asarray(addr, np.uint64) // np.uint64(l1.line)).astype(np.int64)
    l1_miss = ~lru_hits(line, l1.sets, l1.ways)
    m1 = np.flatnonzero(l1_miss)
    m2 = ~lru_hits(line[m1] * l1.line // l2.line, l2.sets, l2.ways)
    return l1_miss, m1[m2]


def filter_llc(addr: np.ndarray, l1: CacheConfig = L1D, l2: CacheConfig = L2) -> np.ndarray:
    """Indices of the loads of ``addr`` that miss both L1D and L2 (the LLC access stream)."""
    return _misses(addr, l1, l2)[1]


# --------------------------------------------------------------------------------------------
# physical pages
# --------------------------------------------------------------------------------------------
def physical_addresses(addr: np.ndarray, seed: int) -> np.ndarray:
    """Map virtual byte addresses to physical ones, first-touch page allocation as in ChampSim.

    Virtual 4 KB pages get physical pages in the order they are first touched in ``addr``. Pages
    are handed out from contiguous runs; run ``i`` (``i = 0, 1, ...``) holds ``2**logs[i]`` pages
    and starts at physical page ``slots[i] * SLOT_PAGES``, where, with
    ``rng = np.random.default_rng(seed)``, ``slots = rng.permutation(PHYS_SLOTS)`` and then
    ``logs = rng.integers(0, RUN_LOG2, PHYS_SLOTS)``. Physical memory is thus 2**16 slots of 1024
    pages (256 GB); runs are 1..512 pages long, each in a slot of its own (slots drawn without
    replacement), so no two virtual pages share a physical page, and the mapping of the first
    ``k`` touched pages depends only on ``seed`` and ``k``. The page offset (low 12 bits) is kept.

    Parameters
    ----------
    addr : uint64 virtual byte addresses in program order.
    seed : seed of the run draws.

    Returns
    -------
    uint64 physical byte addresses, same shape as ``addr``.

    Raises
    ------
    TraceError : the stream touches more pages than the runs of all slots hold (~6.7M pages).
    """
    addr = np.asarray(addr, np.uint64)
    shift = np.uint64(PAGE.bit_length() - 1)
    vpage, first, inv = np.unique(addr >> shift, return_index=True, return_inverse=True)
    rank = np.empty(vpage.size, np.int64)  # first-touch rank of each distinct virtual page
    rank[np.argsort(first)] = np.arange(vpage.size)
    rng = np.random.default_rng(seed)
    slots = rng.permutation(PHYS_SLOTS).astype(np.int64)
    length = np.int64(1) << rng.integers(0, RUN_LOG2, PHYS_SLOTS)
    end = np.cumsum(length)  # first-touch rank one past each run
    if vpage.size > end[-1]:
        raise TraceError(f"{vpage.size} distinct pages exceed the {end[-1]} pages the physical-page runs "
                         "hold: use a smaller scale or physical=False")
    run = np.searchsorted(end, rank, side="right")
    ppage = slots[run] * SLOT_PAGES + rank - (end[run] - length[run])
    base = ppage.astype(np.uint64)[inv.reshape(-1)] << shift
    return base.reshape(addr.shape) | (addr & np.uint64(PAGE - 1))


# --------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------
@dataclass
class Trace:
    """A load trace (ML-DPC columns). All arrays have one entry per load.

    Attributes
    ----------
    instr_id : int64 synthetic instruction count at the load, from the program start.
    cycle : int64 synthetic cycle of the load, from the program start.
    addr : uint64 byte address (physical for generated traces unless ``physical=False``).
    ip : uint64 instruction pointer of the load site.
    llc_hit : bool, whether the LLC model hit.
    meta : provenance (generator settings, or the ``# key: value`` header of a trace file).
    """

    instr_id: np.ndarray
    cycle: np.ndarray
    addr: np.ndarray
    ip: np.ndarray
    llc_hit: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.addr.size)


def _check_app(app: str) -> None:
    if app not in APPS:
        raise TraceError(f"unknown app {app!r}: choose one of {', '.join(APPS)}")


def _resolve_iters(app: str, iters: int | None) -> int:
    """Check ``app`` and return the iteration count to use (the app's default for None)."""
    _check_app(app)
    iters = DEFAULT_ITERS[app] if iters is None else iters
    if iters < 1:
        raise TraceError("iters must be >= 1")
    return iters


def raw_loads(app: str, scale: int = 18, seed: int = 0, iters: int | None = None,
              edge_factor: int = 16, max_loads: int = 2_000_000, progress: bool = False,
              graph: Graph | None = None) -> tuple[np.ndarray, np.ndarray, Layout]:
    """Unfiltered load stream (virtual byte addresses, IPs) of ``app`` and the array layout it used.

    At most ``max_loads`` loads from the program start; ``graph`` replaces the RMAT graph of
    ``scale`` / ``edge_factor`` / ``seed``.
    """
    iters = _resolve_iters(app, iters)
    if max_loads < 1:
        raise TraceError("max_loads must be >= 1")
    g = graph if graph is not None else rmat_graph(scale, edge_factor, seed)
    lay = _layout(app, g)
    pbar = tqdm(total=max_loads, desc=f"{app} loads", unit="ld", disable=not progress, leave=False)
    em = _Emitter(app, lay, max_loads, pbar)
    _KERNELS[app](g, em, np.random.default_rng(seed + 1), iters)
    pbar.close()
    addr, ip = em.result()
    return addr, ip, lay


def default_skip_loads(app: str, graph: Graph) -> int:
    """Warm-up loads :func:`generate` skips by default.

    pr: its initialisation sweep, the first outgoing-contribution loop (3 loads per vertex,
    ``3 * graph.n``). Every other app: :data:`WARMUP_LOADS` = 250,000 loads, ChampSim's 1M-instruction
    warm-up at :data:`INSTR_PER_LOAD` = 4 instructions per load.
    """
    _check_app(app)
    return 3 * graph.n if app == "pr" else WARMUP_LOADS


def filter_trace(addr: np.ndarray, ip: np.ndarray, skip_loads: int = 0, l1: CacheConfig = L1D,
                 l2: CacheConfig = L2, llc: CacheConfig = LLC, prefetch_degree: int = 0) -> Trace:
    """LLC access trace of a raw load stream, the first ``skip_loads`` loads warming the caches.

    The L1/L2 filter, the stream prefetcher (:func:`stream_prefetched`) and the LLC model all run
    on the whole stream; the L2 misses among the first ``skip_loads`` loads are then dropped.
    ``instr_id`` (:data:`INSTR_PER_LOAD` per load, 1-based) and ``cycle`` (1 per instruction plus
    12 per L1 miss; the LLC's own latency is ignored) count from the start of ``addr``.

    Parameters
    ----------
    addr, ip : uint64 byte addresses (as the caches index them) and IPs of the loads, in order.
    skip_loads : number of leading warm-up loads not logged.
    l1, l2, llc : cache geometries.
    prefetch_degree : degree of the ideal L2 stream prefetcher (0 = none).
    """
    addr = np.asarray(addr, np.uint64)
    l1_miss, keep = _misses(addr, l1, l2)
    line = (addr // np.uint64(llc.line)).astype(np.int64)
    keep = keep[~stream_prefetched(line[keep], prefetch_degree)]
    llc_hit = lru_hits(line[keep], llc.sets, llc.ways)
    logged = keep >= skip_loads
    keep, llc_hit = keep[logged], llc_hit[logged]
    instr = keep * INSTR_PER_LOAD
    cycles = instr + 12 * np.cumsum(l1_miss)[keep]
    return Trace(instr + 1, cycles + 1, addr[keep], np.asarray(ip, np.uint64)[keep], llc_hit)


@dataclass(frozen=True)
class TraceConfig:
    """Settings of one generated trace (:func:`generate`); ``Trace.meta`` records them.

    Attributes
    ----------
    app : GAP kernel (``bfs``, ``cc``, ``pr``, ``sssp``, ``bc``).
    scale, edge_factor, seed : RMAT graph of ``2**scale`` vertices, ``edge_factor`` edges each.
    iters : kernel iterations (None: the app's default).
    max_loads : raw loads logged after the warm-up.
    skip_loads : warm-up loads not logged (None: :func:`default_skip_loads`; 0: none).
    l1_kb, l2_kb : L1D (12-way) and L2 (8-way) sizes, KB, of the filter in front of the 2 MB LLC.
    prefetch_degree : degree of the ideal L2 stream prefetcher whose hits are dropped (0 = none).
    physical : map to physical pages (:func:`physical_addresses`) before the caches.
    page_seed : seed of the page mapping (None: ``seed + 2``).
    """

    app: str
    scale: int = 18
    seed: int = 0
    iters: int | None = None
    edge_factor: int = 16
    max_loads: int = 2_000_000
    skip_loads: int | None = None
    l1_kb: int = 48
    l2_kb: int = 512
    prefetch_degree: int = 0
    physical: bool = True
    page_seed: int | None = None


def generate(config: TraceConfig, progress: bool = False) -> Trace:
    """LLC load trace of a GAP kernel on a seeded RMAT graph (see :func:`filter_trace`).

    The kernel runs ``skip_loads + max_loads`` loads. All of them, in program order, are mapped to
    physical addresses (:func:`physical_addresses`; ``physical=False`` keeps the virtual ones) and
    filtered through the L1D, the L2 and the LLC; the first ``skip_loads`` only warm the caches
    and are not logged (pr's default: its initialisation sweep, ``3 * 2**scale`` loads; other
    apps: 250,000 loads, ChampSim's 1M-instruction warm-up). ``prefetch_degree > 0`` drops the L2
    misses an ideal stream prefetcher of that degree would have covered
    (:func:`stream_prefetched`), leaving the irregular part of the stream. ``meta`` records every
    setting actually used.
    """
    c = config
    iters = _resolve_iters(c.app, c.iters)
    if c.prefetch_degree < 0:
        raise TraceError("prefetch degree must be >= 0 (0 = no prefetcher)")
    l1, l2 = CacheConfig(c.l1_kb * 1024, 12), CacheConfig(c.l2_kb * 1024, 8)
    g = rmat_graph(c.scale, c.edge_factor, c.seed)
    skip_loads = default_skip_loads(c.app, g) if c.skip_loads is None else c.skip_loads
    if skip_loads < 0:
        raise TraceError(f"skip_loads {skip_loads} must be >= 0 (0 = no warm-up)")
    if c.max_loads < 1:
        raise TraceError("max_loads must be >= 1")
    addr, ip, _ = raw_loads(c.app, c.scale, c.seed, iters, c.edge_factor, skip_loads + c.max_loads, progress, g)
    if addr.size <= skip_loads:
        raise TraceError(f"{c.app} ended after {addr.size} loads, within the {skip_loads}-load warm-up: "
                         "pass a smaller skip_loads, or a larger scale or iters")
    page_seed = None
    if c.physical:
        page_seed = c.seed + 2 if c.page_seed is None else c.page_seed
        addr = physical_addresses(addr, page_seed)
    tr = filter_trace(addr, ip, skip_loads, l1, l2, LLC, c.prefetch_degree)
    tr.meta = {"generator": GENERATOR, **asdict(c), "iters": iters, "skip_loads": skip_loads,
               "page_seed": page_seed, "raw_loads": int(addr.size)}
    return tr


#: compressed trace files: suffix -> (magic bytes, opener); writing picks by suffix, reading by
#: the file's first bytes (so a misnamed file still reads)
_CODECS = {".xz": (b"\xfd7zXZ\x00", lzma.open), ".gz": (b"\x1f\x8b", gzip.open),
           ".bz2": (b"BZh", bz2.open)}
#: compression suffixes no codec here writes: refused rather than silently written as plain text
_UNSUPPORTED = {".zst", ".zstd", ".lz4", ".lz", ".lzma", ".zip", ".7z", ".z", ".tgz", ".br", ".sz"}


def check_output_path(path: str | Path) -> None:
    """Raise :class:`TraceError` if ``path`` names a compression :func:`write_trace` cannot
    write (``.zst``, ``.zip`` …); ``.xz``, ``.gz``, ``.bz2`` and anything else (plain text) pass."""
    suffix = Path(path).suffix.lower()
    if suffix in _UNSUPPORTED:
        raise TraceError(f"{path}: cannot write {suffix} compression; name the trace .txt, .txt.xz, "
                         ".txt.gz or .txt.bz2")


def _open(path: Path, mode: str):
    if mode == "w":
        check_output_path(path)
        suffix = path.suffix.lower()
        if suffix in _CODECS:
            return _CODECS[suffix][1](path, "wt", encoding="utf-8")
        return open(path, "w", encoding="utf-8")
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, opener in _CODECS.values():
        if head.startswith(magic):
            return opener(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def write_trace(path: str | Path, trace: Trace, header: dict | None = None) -> None:
    """Write ML-DPC load-trace text: ``instr_id, cycle, addr(hex), ip(hex), llc_hit(0/1)``
    (``.xz`` / ``.gz`` / ``.bz2`` suffixes compress; other compression suffixes are refused).

    First comes one ``# key: <json value>`` line per key of ``trace.meta`` updated with
    ``header``, so readers that skip ``#`` lines read the data unchanged.
    """
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "w") as f:
        for k, v in {**trace.meta, **(header or {})}.items():
            f.write(f"# {k}: {json.dumps(v)}\n")
        for i, c, a, p, h in zip(trace.instr_id.tolist(), trace.cycle.tolist(), trace.addr.tolist(),
                                 trace.ip.tolist(), trace.llc_hit.astype(int).tolist()):
            f.write(f"{i}, {c}, {a:x}, {p:x}, {h}\n")


_EXPECTED = ("expected text lines 'instr_id, cycle, addr(hex), ip(hex), llc_hit', plain or .xz / .gz / "
             ".bz2 compressed (make one with `paretofab traces -o FILE`)")


def _why(e: BaseException) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"binary data (byte 0x{e.object[e.start]:02x} is not text)"
    if isinstance(e, EOFError):
        return "a compressed stream that ends early (truncated?)"
    return f"corrupt compressed data ({str(e) or type(e).__name__})"


def read_trace(path: str | Path, limit: int | None = None) -> Trace:
    """Read an ML-DPC load trace (as written by :func:`write_trace` or the ML-DPC tools).

    Blank lines and ``#`` lines are skipped; ``# key: <json value>`` lines fill ``meta`` (other
    ``#`` lines are ignored). ``limit`` caps the number of loads read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trace file {path} not found: make one with `paretofab traces`")
    cols: list[list] = [[], [], [], [], []]
    meta: dict = {}
    try:
        with _open(path, "r") as f:
            for lineno, line in enumerate(f, 1):
                if limit is not None and len(cols[0]) >= limit:
                    break
                line = line.strip()
                if line.startswith("#"):
                    key, sep, value = line[1:].strip().partition(": ")
                    if sep:
                        with contextlib.suppress(ValueError):  # not JSON: a free comment
                            meta[key] = json.loads(value)
                    continue
                if not line:
                    continue
                parts = [p.strip() for p in line.split(",")]
                if len(parts) != 5:
                    raise TraceError(f"{path}:{lineno}: expected 5 comma-separated fields "
                                     f"(instr_id, cycle, addr, ip, llc_hit), got {len(parts)}")
                try:
                    cols[0].append(int(parts[0]))
                    cols[1].append(int(parts[1]))
                    cols[2].append(int(parts[2], 16))
                    cols[3].append(int(parts[3], 16))
                    cols[4].append(parts[4] in ("1", "True", "true"))
                except ValueError as e:
                    raise TraceError(f"{path}:{lineno}: malformed field ({e})") from None
    except (UnicodeDecodeError, EOFError, lzma.LZMAError) as e:
        raise TraceError(f"{path} is not an ML-DPC load trace: {_why(e)}; {_EXPECTED}") from None
    except OSError as e:
        if e.errno is not None:  # a folder, no permission …: the CLI names the path
            raise
        raise TraceError(f"{path} is not an ML-DPC load trace: {_why(e)}; {_EXPECTED}") from None
    if not cols[0] and not meta and limit != 0:  # (write_trace always writes a header)
        raise TraceError(f"{path} is not an ML-DPC load trace: it holds no load lines; {_EXPECTED}")
    return Trace(np.array(cols[0], np.int64), np.array(cols[1], np.int64),
                 np.array(cols[2], np.uint64), np.array(cols[3], np.uint64),
                 np.array(cols[4], bool), meta)
