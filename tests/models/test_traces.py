"""Trace generator: address streams stay inside their arrays, the LRU model matches a brute-force
reference, hand-worked kernel streams, and the ML-DPC text format round-trips."""

import numpy as np
import pytest

from models import traces as T


@pytest.fixture(scope="module")
def small_graph():
    return T.rmat_graph(10, edge_factor=8, seed=3)


def test_rmat_is_seeded_symmetric_and_simple(small_graph):
    g = small_graph
    g2 = T.rmat_graph(10, edge_factor=8, seed=3)
    assert np.array_equal(g.offsets, g2.offsets) and np.array_equal(g.neighbors, g2.neighbors)
    assert not np.array_equal(T.rmat_graph(10, 8, seed=4).neighbors[:100], g.neighbors[:100])
    u = np.repeat(np.arange(g.n), g.degree())
    v = g.neighbors.astype(np.int64)
    assert (u != v).all()
    fwd = set(zip(u.tolist(), v.tolist(), g.weights.tolist()))
    assert len(fwd) == g.m  # no duplicates
    assert all((b, a, w) in fwd for a, b, w in fwd)  # symmetric, same weight both ways
    assert g.weights.min() >= 1 and g.weights.max() <= 255


@pytest.mark.parametrize("app", T.APPS)
def test_each_load_site_reads_only_its_array(app, small_graph):
    addr, ip, lay = T.raw_loads(app, graph=small_graph, iters=3, max_loads=300_000)
    assert addr.size > 1000
    ips = T.site_ips(app)
    names = list(lay.regions)
    region = lay.region_of(addr)
    assert (region >= 0).all(), "an address falls outside every array"
    for site, arr in T.SITES[app].items():
        sel = ip == ips[site]
        if not sel.any():
            continue
        assert (region[sel] == names.index(arr)).all(), f"{site} reads outside {arr}"
        base, size, length = lay.regions[arr]
        off = addr[sel] - np.uint64(base)
        assert (off % np.uint64(size) == 0).all()
        assert (off // np.uint64(size) < np.uint64(length)).all()
    # regions are page aligned and disjoint
    spans = sorted((b, b + s * n) for b, s, n in lay.regions.values())
    assert all(b % T.PAGE == 0 for b, _ in spans)
    assert all(e1 <= b2 for (_, e1), (b2, _) in zip(spans, spans[1:]))


def _path3() -> T.Graph:
    # 0 - 1 - 2 (undirected), hand-built CSR
    return T.Graph(3, np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1], np.int32), np.array([5, 5, 7, 7], np.int32))


def test_pr_stream_hand_worked():
    g = _path3()
    addr, ip, lay = T.raw_loads("pr", graph=g, iters=1)
    ips = T.site_ips("pr")
    A = lambda name, i: lay.regions[name][0] + lay.regions[name][1] * i  # noqa: E731
    exp = []
    for n in range(3):  # contrib[n] = scores[n] / degree(n)
        exp += [("deg_off", A("offsets", n)), ("deg_off1", A("offsets", n + 1)), ("score_c", A("scores", n))]
    adj = {0: [(0, 1)], 1: [(1, 0), (2, 2)], 2: [(3, 1)]}  # u -> [(edge index, neighbour)]
    for u in range(3):
        exp += [("off", A("offsets", u)), ("off1", A("offsets", u + 1))]
        for j, v in adj[u]:
            exp += [("neigh", A("neighbors", j)), ("contrib", A("contrib", v))]
        exp += [("score", A("scores", u))]
    assert addr.tolist() == [a for _, a in exp]
    assert ip.tolist() == [ips[s] for s, _ in exp]


def test_bfs_stream_hand_worked():
    g = _path3()
    # force the source: the only vertex choice is seeded; check the structure for whichever it is
    addr, ip, lay = T.raw_loads("bfs", graph=g, iters=1)
    ips = T.site_ips("bfs")
    A = lambda name, i: lay.regions[name][0] + lay.regions[name][1] * i  # noqa: E731
    src = (addr[1] - lay.regions["offsets"][0]) // 8  # second load is offsets[source]
    adj = {0: [(0, 1)], 1: [(1, 0), (2, 2)], 2: [(3, 1)]}
    # level-synchronous BFS by hand
    exp, depth, frontier, q = [], {int(src): 0}, [int(src)], 0
    while frontier:
        nxt = []
        for u in frontier:
            exp += [("queue", A("queue", q)), ("off", A("offsets", u)), ("off1", A("offsets", u + 1))]
            q += 1
            for j, v in adj[u]:
                exp += [("neigh", A("neighbors", j)), ("parent", A("parent", v))]
                if v not in depth:
                    depth[v] = depth[u] + 1
                    nxt.append(v)
        frontier = nxt
    assert addr.tolist() == [a for _, a in exp]
    assert ip.tolist() == [ips[s] for s, _ in exp]


def test_lru_hand_worked():
    # one set, two ways: A B A C B A -> miss miss hit miss(evicts B) miss(evicts A) miss
    assert T.lru_hits(np.array([1, 2, 1, 3, 2, 1]), 1, 2).tolist() == [False, False, True, False, False, False]
    # two sets: lines 0,2 map to set 0, 1 to set 1; 1-way: 0 1 0 2 0 -> m m h m m
    assert T.lru_hits(np.array([0, 1, 0, 2, 0]), 2, 1).tolist() == [False, False, True, False, False]


@pytest.mark.parametrize("sets,ways,span,seed", [(1, 4, 8, 0), (4, 2, 20, 1), (16, 12, 400, 2),
                                                 (64, 12, 3000, 3), (8, 8, 100, 4)])
def test_lru_matches_bruteforce(sets, ways, span, seed):
    rng = np.random.default_rng(seed)
    # mix of random lines, sequential runs and immediate repeats
    x = np.concatenate([rng.integers(0, span, 3000), np.repeat(rng.integers(0, span, 500), 3),
                        np.arange(1000) // 4, rng.integers(0, span, 2000)])
    rng.shuffle(x[:3000])
    assert np.array_equal(T.lru_hits(x, sets, ways), T.lru_hits_reference(x, sets, ways))


def test_filter_llc_matches_bruteforce_hierarchy():
    rng = np.random.default_rng(7)
    addr = (rng.integers(0, 40_000, 30_000) * 8 + 0x5600_0000_0000).astype(np.uint64)
    lines = (addr // np.uint64(64)).astype(np.int64)
    l1 = T.CacheConfig(4 * 1024, 4)
    l2 = T.CacheConfig(32 * 1024, 8)
    miss1 = np.flatnonzero(~T.lru_hits_reference(lines, l1.sets, l1.ways))
    miss2 = miss1[~T.lru_hits_reference(lines[miss1], l2.sets, l2.ways)]
    assert np.array_equal(T.filter_llc(addr, l1, l2), miss2)


def test_generate_is_seeded_and_filtered():
    # cc converges within the default 250k-load warm-up at scale 10: skip less
    a = T.generate(T.TraceConfig("cc", scale=10, seed=1, max_loads=100_000, skip_loads=20_000))
    b = T.generate(T.TraceConfig("cc", scale=10, seed=1, max_loads=100_000, skip_loads=20_000))
    assert np.array_equal(a.addr, b.addr) and np.array_equal(a.ip, b.ip) and a.meta == b.meta
    assert a.meta["skip_loads"] == 20_000 and a.meta["raw_loads"] == 120_000
    assert a.instr_id[0] > 20_000 * T.INSTR_PER_LOAD  # counted from the program start
    assert 0 < len(a) < 100_000
    assert (np.diff(a.instr_id) > 0).all() and (np.diff(a.cycle) > 0).all()


@pytest.mark.parametrize("suffix", [".txt", ".txt.xz", ".txt.gz", ".txt.bz2"])
def test_mldpc_roundtrip(tmp_path, suffix):
    tr = T.generate(T.TraceConfig("bfs", scale=9, max_loads=20_000, skip_loads=2_000))
    assert len(tr) > 100  # (the default warm-up left this trace empty: a vacuous round trip)
    p = tmp_path / f"t{suffix}"
    T.write_trace(p, tr)
    back = T.read_trace(p)
    for f in ("instr_id", "cycle", "addr", "ip", "llc_hit"):
        assert np.array_equal(getattr(tr, f), getattr(back, f)), f


def test_mldpc_reads_the_published_line_format(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("1, 10, 7f3a0c40, 401a2b, 0\n5, 99, 7f3a0c80, 401a2b, 1\n")
    tr = T.read_trace(p)
    assert tr.addr.tolist() == [0x7F3A0C40, 0x7F3A0C80]
    assert tr.ip.tolist() == [0x401A2B] * 2
    assert tr.llc_hit.tolist() == [False, True]
    assert tr.instr_id.tolist() == [1, 5] and tr.cycle.tolist() == [10, 99]


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="paretofab traces"):
        T.read_trace(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1, 2, zz, 4, 0\n")
    with pytest.raises(T.TraceError, match="bad.txt:1"):
        T.read_trace(bad)
    bad.write_text("1, 2, 3\n")
    with pytest.raises(ValueError, match="5 comma-separated"):
        T.read_trace(bad)
    with pytest.raises(ValueError, match="unknown app"):
        T.raw_loads("tc", scale=8)
    with pytest.raises(ValueError, match="scale"):
        T.rmat_graph(40)


def test_stream_prefetcher_hand_worked():
    # lines: 10 (miss), 11 (10 seen 1 back -> covered), 50, 13 (11 seen 2 back, 13-11=2 <= 2 -> covered),
    # 16 (13 seen, 16-13=3 > 2 -> not covered), 9 (below everything -> not covered)
    x = np.array([10, 11, 50, 13, 16, 9])
    assert T.stream_prefetched(x, degree=2).tolist() == [False, True, False, True, False, False]
    assert not T.stream_prefetched(x, degree=0).any()
    # a window of 1 only looks at the previous access: 13 follows 50
    assert T.stream_prefetched(x, degree=2, window=1).tolist() == [False, True, False, False, False, False]


def test_prefetch_degree_strips_streams():
    plain = T.generate(T.TraceConfig("pr", scale=10, max_loads=60_000))
    pf = T.generate(T.TraceConfig("pr", scale=10, max_loads=60_000, prefetch_degree=4))
    assert len(pf) < len(plain)
    assert set(pf.addr.tolist()) <= set(plain.addr.tolist())
    with pytest.raises(ValueError, match="prefetch degree"):
        T.generate(T.TraceConfig("pr", scale=8, prefetch_degree=-1))


# --------------------------------------------------------------------------------------------
# physical page mapping
# --------------------------------------------------------------------------------------------
def _first_touch_reference(addr: np.ndarray, seed: int) -> np.ndarray:
    """Brute-force first-touch allocator: replays the documented run draws with a plain loop."""
    rng = np.random.default_rng(seed)
    slots = rng.permutation(T.PHYS_SLOTS).tolist()
    logs = rng.integers(0, T.RUN_LOG2, T.PHYS_SLOTS).tolist()
    table: dict[int, int] = {}
    run, left, nxt, out = -1, 0, 0, []
    for a in addr.tolist():
        vp = a // 4096
        if vp not in table:
            if left == 0:
                run += 1
                nxt, left = slots[run] * T.SLOT_PAGES, 2 ** logs[run]
            table[vp] = nxt
            nxt, left = nxt + 1, left - 1
        out.append(table[vp] * 4096 + a % 4096)
    return np.array(out, np.uint64)


def _page_stream(seed: int, pages: int, n: int) -> np.ndarray:
    """``n`` loads over ``pages`` scattered virtual pages: random picks, repeats and page sweeps."""
    rng = np.random.default_rng(seed)
    vp = T.HEAP_BASE // 4096 + rng.choice(1 << 30, pages, replace=False)
    pick = np.concatenate([rng.integers(0, pages, n // 2), np.arange(n - n // 2) // 7 % pages])
    return (vp[pick] * 4096 + rng.integers(0, 4096, n)).astype(np.uint64)


@pytest.mark.parametrize("seed", [0, 5])
def test_physical_pages_match_first_touch_bruteforce(seed):
    addr = _page_stream(seed, 3000, 30_000)
    phys = T.physical_addresses(addr, seed)
    assert phys.dtype == np.uint64
    assert np.array_equal(phys, _first_touch_reference(addr, seed))
    assert np.array_equal(phys % np.uint64(4096), addr % np.uint64(4096))  # offsets kept


def test_physical_runs_are_contiguous_powers_of_two_and_never_alias():
    rng = np.random.default_rng(2)
    vp = rng.permutation(20_000).astype(np.uint64) + np.uint64(T.HEAP_BASE // 4096)
    addr = vp * np.uint64(4096) + np.uint64(100)  # every load touches a new page
    pp = (T.physical_addresses(addr, 9) // np.uint64(4096)).astype(np.int64)
    assert np.unique(pp).size == 20_000  # no two virtual pages share a physical page
    # runs: maximal physically consecutive stretches in first-touch order (runs <= 512 pages sit in
    # 1024-page slots, so two runs are never adjacent)
    runs = np.split(pp, np.flatnonzero(np.diff(pp) != 1) + 1)
    lengths = np.array([r.size for r in runs])
    assert all(r[0] % T.SLOT_PAGES == 0 for r in runs)
    assert (lengths <= 512).all() and lengths.max() > 1
    full = lengths[:-1]  # the last run may be partly used
    assert ((full & (full - 1)) == 0).all()
    assert len({r[0] for r in runs}) == len(runs)


def test_physical_mapping_is_seeded():
    addr = _page_stream(1, 500, 5_000)
    assert np.array_equal(T.physical_addresses(addr, 3), T.physical_addresses(addr, 3))
    assert not np.array_equal(T.physical_addresses(addr, 3), T.physical_addresses(addr, 4))


def test_generate_maps_pages_unless_told_not_to():
    virt = T.generate(T.TraceConfig("pr", scale=8, max_loads=20_000, physical=False))
    phys = T.generate(T.TraceConfig("pr", scale=8, max_loads=20_000))
    assert (virt.addr >= np.uint64(T.HEAP_BASE)).all() and virt.meta["page_seed"] is None
    assert (phys.addr < np.uint64(T.PHYS_SLOTS * T.SLOT_PAGES * 4096)).all()
    assert phys.meta["page_seed"] == 2 and phys.meta["physical"] is True


# --------------------------------------------------------------------------------------------
# warm-up
# --------------------------------------------------------------------------------------------
def test_skip_loads_keeps_cache_state():
    A, B, C = (T.HEAP_BASE + 64 * k for k in (0, 1000, 2000))  # three distinct lines
    ip = np.arange(4, dtype=np.uint64)
    warm = T.filter_trace(np.array([A, B, A, C], np.uint64), ip, skip_loads=2)
    assert warm.addr.tolist() == [C]  # A hits the warm L1: not an LLC access
    assert warm.ip.tolist() == [3]
    assert warm.instr_id.tolist() == [3 * T.INSTR_PER_LOAD + 1]  # counted from the program start
    assert warm.cycle.tolist() == [3 * T.INSTR_PER_LOAD + 12 * 3 + 1]  # A, B, C missed L1
    cold = T.filter_trace(np.array([A, C], np.uint64), ip[:2], skip_loads=0)
    assert cold.addr.tolist() == [A, C]


@pytest.mark.parametrize("prefetch_degree", [0, 2])
def test_skip_loads_logs_the_tail_of_the_warm_filter(prefetch_degree):
    rng = np.random.default_rng(11)
    addr = np.concatenate([rng.integers(0, 20_000, 16_000), np.arange(4_000) * 2]) * 8 + T.HEAP_BASE
    addr = addr.astype(np.uint64)
    ip = rng.integers(0, 1 << 20, addr.size).astype(np.uint64)
    l1, l2, llc = T.CacheConfig(4 * 1024, 4), T.CacheConfig(32 * 1024, 8), T.CacheConfig(128 * 1024, 8)
    k = 7_000
    tr = T.filter_trace(addr, ip, k, l1, l2, llc, prefetch_degree)
    full = T.filter_trace(addr, ip, 0, l1, l2, llc, prefetch_degree)
    tail = full.instr_id > k * T.INSTR_PER_LOAD
    for f in ("instr_id", "cycle", "addr", "ip", "llc_hit"):
        assert np.array_equal(getattr(tr, f), getattr(full, f)[tail]), f
    if prefetch_degree:
        return
    lines = (addr // np.uint64(64)).astype(np.int64)
    miss1 = ~T.lru_hits_reference(lines, l1.sets, l1.ways)
    i1 = np.flatnonzero(miss1)
    i2 = i1[~T.lru_hits_reference(lines[i1], l2.sets, l2.ways)]
    hit3 = T.lru_hits_reference(lines[i2], llc.sets, llc.ways)
    logged = i2 >= k
    assert 0 < logged.sum() < logged.size and hit3[logged].any()
    assert np.array_equal(tr.addr, addr[i2[logged]])
    assert np.array_equal(tr.ip, ip[i2[logged]])
    assert np.array_equal(tr.llc_hit, hit3[logged])
    assert np.array_equal(tr.instr_id, i2[logged] * 4 + 1)
    assert np.array_equal(tr.cycle, i2[logged] * 4 + 12 * np.cumsum(miss1)[i2[logged]] + 1)


def test_default_skip_loads_is_prs_init_sweep_else_250k(small_graph):
    n = small_graph.n
    assert T.default_skip_loads("pr", small_graph) == 3 * n
    for app in ("bc", "cc", "sssp", "bfs"):
        assert T.default_skip_loads(app, small_graph) == 250_000
    # pr's first 3n loads are exactly its outgoing-contribution sweep
    _, ip, _ = T.raw_loads("pr", graph=small_graph, iters=1, max_loads=3 * n + 1)
    ips = T.site_ips("pr")
    assert set(ip[:3 * n].tolist()) == {ips["deg_off"], ips["deg_off1"], ips["score_c"]}
    assert ip[3 * n] == ips["off"]
    with pytest.raises(ValueError, match="unknown app"):
        T.default_skip_loads("tc", small_graph)


def test_warmup_longer_than_the_kernel_is_an_error():
    with pytest.raises(T.TraceError, match="smaller skip_loads"):
        T.generate(T.TraceConfig("bfs", scale=6, iters=1, max_loads=10))


# --------------------------------------------------------------------------------------------
# cache sizes and provenance
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{"l1_kb": 0}, {"l1_kb": 40}, {"l2_kb": -512}, {"l2_kb": 100}])
def test_cache_sizes_are_validated(kw):
    with pytest.raises(T.TraceError, match="power of two"):
        T.generate(T.TraceConfig("pr", scale=8, max_loads=1_000, **kw))
    with pytest.raises(T.TraceError, match="power of two"):
        T.CacheConfig(3 * 1024, 4)


def test_cache_sizes_reach_the_filter():
    tr = T.generate(T.TraceConfig("pr", scale=8, max_loads=5_000, l1_kb=24, l2_kb=256, skip_loads=0))
    addr, _, _ = T.raw_loads("pr", scale=8, max_loads=5_000)
    expect = T.filter_llc(T.physical_addresses(addr, 2), T.CacheConfig(24 * 1024, 12),
                          T.CacheConfig(256 * 1024, 8))
    assert np.array_equal(tr.instr_id, expect * T.INSTR_PER_LOAD + 1)
    assert tr.meta["l1_kb"] == 24 and tr.meta["l2_kb"] == 256


@pytest.mark.parametrize("suffix", [".txt", ".txt.xz"])
def test_header_roundtrip(tmp_path, suffix):
    tr = T.generate(T.TraceConfig("pr", scale=8, max_loads=5_000))
    assert set(tr.meta) == {"generator", "app", "scale", "seed", "edge_factor", "iters", "max_loads",
                            "skip_loads", "l1_kb", "l2_kb", "prefetch_degree", "physical",
                            "page_seed", "raw_loads"}
    assert tr.meta["generator"] == "paretofab-traces 2" and tr.meta["skip_loads"] == 3 * 256
    assert tr.meta["raw_loads"] == 3 * 256 + 5_000
    p = tmp_path / f"t{suffix}"
    T.write_trace(p, tr, header={"note": "warm, 1", "scale": 8})
    back = T.read_trace(p)
    assert back.meta == {**tr.meta, "note": "warm, 1"}
    for f in ("instr_id", "cycle", "addr", "ip", "llc_hit"):
        assert np.array_equal(getattr(tr, f), getattr(back, f)), f
    if suffix == ".txt":
        assert p.read_text().splitlines()[0] == '# generator: "paretofab-traces 2"'


def test_header_lines_and_line_numbers(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text('# app: "pr"\n# a free comment\n#\n\n1, 2, 3, 4, 0\n1, 2, zz, 4, 0\n')
    with pytest.raises(T.TraceError, match="bad.txt:6"):
        T.read_trace(p)
    p.write_text('# app: "pr"\n# note: not json\n1, 2, 3, 4, 1\n2, 3, 4, 5, 0\n')
    tr = T.read_trace(p)
    assert tr.meta == {"app": "pr"} and tr.addr.tolist() == [3, 4]
    assert T.read_trace(p, limit=1).addr.tolist() == [3]  # limit counts loads, not file lines


def test_compression_is_real_and_read_by_content(tmp_path):
    tr = T.generate(T.TraceConfig("pr", scale=8, max_loads=2_000))
    for suffix, magic in ((".bz2", b"BZh"), (".xz", b"\xfd7zXZ"), (".gz", b"\x1f\x8b")):
        p = tmp_path / f"t.txt{suffix}"
        T.write_trace(p, tr)
        assert p.read_bytes().startswith(magic), suffix
        misnamed = tmp_path / f"m{suffix}.txt"  # read by its bytes, not its name
        misnamed.write_bytes(p.read_bytes())
        assert np.array_equal(T.read_trace(misnamed).addr, tr.addr)
    with pytest.raises(T.TraceError, match=r"cannot write \.zst"):
        T.write_trace(tmp_path / "t.txt.zst", tr)
    assert not (tmp_path / "t.txt.zst").exists()


@pytest.mark.parametrize("content,why", [
    (bytes(range(256)), "binary data"),
    (b"BZh9" + bytes(range(200)), "corrupt compressed data"),
    (b"\xfd7zXZ\x00" + bytes(50), "corrupt compressed data"),
    (b"\x1f\x8b" + bytes(range(100)), "corrupt compressed data"),
    (b"# a free comment\n\n", "no load lines"),
])
def test_foreign_files_are_not_traces(tmp_path, content, why):
    p = tmp_path / "x.txt"
    p.write_bytes(content)
    with pytest.raises(T.TraceError) as e:
        T.read_trace(p)
    msg = str(e.value)
    assert msg.startswith(f"{p} is not an ML-DPC load trace: ") and why in msg and "\n" not in msg


def test_trace_spec_refuses_negative_seed():
    from models.workload import TraceSpec
    for kw in ({"seed": -1}, {"skip_loads": -5}, {"prefetch_degree": -1}):
        with pytest.raises(ValueError, match="non-negative"):
            TraceSpec(**kw)
    assert TraceSpec(seed=np.int64(3)).seed == 3
