"""Memory-access traces from instrumented GAP graph kernels, filtered to the LLC access stream.

The kernels bc, cc, pr, sssp and bfs run (in numpy, level-synchronously) on a seeded RMAT graph
and emit the byte address of every array *read* in program order, each tagged with a fixed
synthetic instruction pointer (IP) per load site. Each array lives in its own page-aligned region.
The raw load stream is filtered through an L1D (48 KB, 12-way) and an L2 (512 KB, 8-way) LRU model
with 64 B lines; the L2 misses form the LLC access stream that MAP models learn from (as in the
ML-DPC load traces). A 2 MB 16-way LLC model fills the ``llc_hit`` column.

Simplifications (documented so nobody mistakes them for GAP's exact behaviour):
* bfs is top-down only (GAP switches direction); bc uses depth checks instead of a successor bitmap.
* cc is Shiloach-Vishkin with synchronous (Jacobi) hooking: conditional loads follow the component
  array as it was at the start of each sweep.
* sssp is delta-stepping (delta = 32) with one insertion-ordered queue.
"""

from __future__ import annotations

import gzip
import lzma
from dataclasses import dataclass, field
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
    if not 4 <= scale <= 24:
        raise TraceError(f"graph scale {scale} out of range: use 4..24 (16 gives ~1e5 LLC accesses)")
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
    """Set-associative LRU cache: ``size`` bytes, ``ways``, ``line`` bytes."""

    size: int
    ways: int
    line: int = LINE

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


def filter_llc(addr: np.ndarray, l1: CacheConfig = L1D, l2: CacheConfig = L2) -> np.ndarray:
    """Indices of the loads of ``addr`` that miss both L1D and L2 (the LLC access stream)."""
    line = np.asarray(addr, np.uint64) // np.uint64(l1.line)
    line = line.astype(np.int64)
    m1 = np.flatnonzero(~lru_hits(line, l1.sets, l1.ways))
    m2 = ~lru_hits(line[m1] * l1.line // l2.line, l2.sets, l2.ways)
    return m1[m2]


# --------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------
@dataclass
class Trace:
    """A load trace (ML-DPC columns). All arrays have one entry per load."""

    instr_id: np.ndarray
    cycle: np.ndarray
    addr: np.ndarray
    ip: np.ndarray
    llc_hit: np.ndarray

    def __len__(self) -> int:
        return int(self.addr.size)


def raw_loads(app: str, scale: int = 16, seed: int = 0, iters: int | None = None,
              edge_factor: int = 16, max_loads: int = 2_000_000, progress: bool = False,
              graph: Graph | None = None) -> tuple[np.ndarray, np.ndarray, Layout]:
    """Unfiltered load stream (byte addresses, IPs) of ``app`` and the array layout it used."""
    if app not in APPS:
        raise TraceError(f"unknown app {app!r}: choose one of {', '.join(APPS)}")
    if max_loads < 1:
        raise TraceError("max_loads must be >= 1")
    g = graph if graph is not None else rmat_graph(scale, edge_factor, seed)
    iters = DEFAULT_ITERS[app] if iters is None else iters
    if iters < 1:
        raise TraceError("iters must be >= 1")
    lay = _layout(app, g)
    pbar = tqdm(total=max_loads, desc=f"{app} loads", unit="ld", disable=not progress, leave=False)
    em = _Emitter(app, lay, max_loads, pbar)
    _KERNELS[app](g, em, np.random.default_rng(seed + 1), iters)
    pbar.close()
    addr, ip = em.result()
    return addr, ip, lay


def generate(app: str, scale: int = 16, seed: int = 0, iters: int | None = None,
             edge_factor: int = 16, max_loads: int = 2_000_000, progress: bool = False,
             prefetch_degree: int = 0) -> Trace:
    """LLC load trace of a GAP kernel on a seeded RMAT graph.

    ``instr_id`` is a synthetic instruction count (4 instructions per load of the raw stream) and
    ``cycle`` a synthetic clock (1 cycle per instruction plus 12 per L1 miss; the LLC's own latency
    is ignored). Addresses are byte addresses; ``llc_hit`` comes from a 2 MB 16-way LRU LLC.
    ``prefetch_degree > 0`` drops the L2 misses an ideal stream prefetcher of that degree would
    have covered (:func:`stream_prefetched`), leaving the irregular part of the stream.
    """
    if prefetch_degree < 0:
        raise TraceError("prefetch degree must be >= 0 (0 = no prefetcher)")
    addr, ip, _ = raw_loads(app, scale, seed, iters, edge_factor, max_loads, progress)
    line = (addr // np.uint64(LINE)).astype(np.int64)
    l1_miss = ~lru_hits(line, L1D.sets, L1D.ways)
    m1 = np.flatnonzero(l1_miss)
    m2 = ~lru_hits(line[m1], L2.sets, L2.ways)
    keep = m1[m2]
    keep = keep[~stream_prefetched(line[keep], prefetch_degree)]
    instr = np.arange(addr.size, dtype=np.int64) * 4
    cycles = instr + 12 * np.cumsum(l1_miss)
    llc_hit = lru_hits(line[keep], LLC.sets, LLC.ways)
    return Trace(instr[keep] + 1, cycles[keep] + 1, addr[keep], ip[keep], llc_hit)


def _open(path: Path, mode: str):
    if path.suffix == ".xz":
        return lzma.open(path, mode + "t")
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t")
    return open(path, mode)


def write_trace(path: str | Path, trace: Trace) -> None:
    """Write ML-DPC load-trace text: ``instr_id, cycle, addr(hex), ip(hex), llc_hit(0/1)``
    (``.xz`` / ``.gz`` suffixes compress)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "w") as f:
        for i, c, a, p, h in zip(trace.instr_id.tolist(), trace.cycle.tolist(), trace.addr.tolist(),
                                 trace.ip.tolist(), trace.llc_hit.astype(int).tolist()):
            f.write(f"{i}, {c}, {a:x}, {p:x}, {h}\n")


def read_trace(path: str | Path, limit: int | None = None) -> Trace:
    """Read an ML-DPC load trace (as written by :func:`write_trace` or the ML-DPC tools)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trace file {path} not found: make one with `paretofab traces`")
    cols: list[list] = [[], [], [], [], []]
    with _open(path, "r") as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and lineno > limit:
                break
            line = line.strip()
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
    return Trace(np.array(cols[0], np.int64), np.array(cols[1], np.int64),
                 np.array(cols[2], np.uint64), np.array(cols[3], np.uint64),
                 np.array(cols[4], bool))
