"""Pareto ranking against a brute-force O(n²) reference (ties, duplicates, k = 1..4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from costmodel.pareto import ParetoError, PlotOptions, pareto, pareto_ranks, plot


def brute_ranks(v: np.ndarray) -> np.ndarray:
    """Peel fronts by checking every pair: rank r = non-dominated among ranks >= r."""
    n = len(v)
    ranks = np.zeros(n, dtype=int)
    left = set(range(n))
    r = 1
    while left:
        front = []
        for i in left:
            dominated = False
            for j in left:
                if all(v[j][t] <= v[i][t] for t in range(v.shape[1])) and any(
                    v[j][t] < v[i][t] for t in range(v.shape[1])
                ):
                    dominated = True
                    break
            if not dominated:
                front.append(i)
        for i in front:
            ranks[i] = r
        left -= set(front)
        r += 1
    return ranks


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_ranks_match_brute_force_with_ties(k, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    # few distinct values -> many ties and exact duplicates
    v = rng.integers(0, 6, size=(n, k)).astype(float)
    if n > 3:
        v[: n // 4] = v[n // 4 : 2 * (n // 4)]  # explicit duplicate rows
    assert (pareto_ranks(v) == brute_ranks(v)).all()


@pytest.mark.parametrize("k", [2, 3])
def test_ranks_continuous_values(k):
    rng = np.random.default_rng(42)
    v = rng.normal(size=(300, k))
    assert (pareto_ranks(v) == brute_ranks(v)).all()


def test_two_objective_scales():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(100_000, 2))
    r = pareto_ranks(v)
    front = v[r == 1]
    # every front point is non-dominated within the whole set (vectorized check)
    for p in front[:50]:
        assert not ((v <= p).all(axis=1) & (v < p).any(axis=1)).any()


def test_dataframe_api_max_and_min():
    df = pd.DataFrame({
        "name": list("abcde"),
        "acc": [0.9, 0.8, 0.9, 0.7, 0.95],
        "lut": [100, 50, 120, 40, 500],
    })
    front = pareto(df, maximize=["acc"], minimize=["lut"])
    assert set(front["name"]) == {"a", "b", "d", "e"}
    assert (front["pareto_rank"] == 1).all()
    allr = pareto(df, maximize=["acc"], minimize=["lut"], all_ranks=True)
    assert dict(zip(allr["name"], allr["pareto_rank"]))["c"] == 2
    # sorted by the first objective, best first
    assert list(front["acc"]) == sorted(front["acc"], reverse=True)


def test_bad_objectives():
    df = pd.DataFrame({"a": [1.0, np.nan], "b": [1, 2], "s": ["x", "y"]})
    with pytest.raises(ParetoError, match="unknown column"):
        pareto(df, minimize=["zzz"])
    with pytest.raises(ParetoError, match="NaN"):
        pareto(df, minimize=["a", "b"])
    with pytest.raises(ParetoError, match="not numeric"):
        pareto(df, minimize=["s", "b"])
    with pytest.raises(ParetoError, match="no objectives"):
        pareto(df)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_writes_file(tmp_path, suffix):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"lut": rng.integers(10, 1000, 40), "acc": rng.random(40),
                       "fmt": [f"int{i % 7 + 2}" for i in range(40)]})
    out = tmp_path / f"front{suffix}"
    plot(df, "lut", "acc", PlotOptions(label="fmt"), path=out)
    data = out.read_bytes()
    assert len(data) > 1000
    assert data.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in data[:2000]
