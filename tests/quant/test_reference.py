"""The numpy golden model against independent references: ml_dtypes (bit for bit) and a brute-force
nearest-on-grid search; plus Hypothesis properties."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.formats import IntFormat, all_formats, parse_format
from quant.reference import all_codes, decode, encode, fixed_point, quantize, values

# our name -> ml_dtypes type (formats ml_dtypes has)
ML = {
    "e2m1": ml_dtypes.float4_e2m1fn,
    "e2m3": ml_dtypes.float6_e2m3fn,
    "e3m2": ml_dtypes.float6_e3m2fn,
    "e4m3ocp": ml_dtypes.float8_e4m3fn,
    "e5m2ieee": ml_dtypes.float8_e5m2,
    "e5m2ocp": ml_dtypes.float8_e5m2,
    "e4m3ieee": ml_dtypes.float8_e4m3,
    "e3m4ieee": ml_dtypes.float8_e3m4,
}
ML_NOSAT = {"e4m3ocpnosat": ml_dtypes.float8_e4m3fn, "e5m2ieeenosat": ml_dtypes.float8_e5m2,
            "e4m3ieeenosat": ml_dtypes.float8_e4m3, "e3m4ieeenosat": ml_dtypes.float8_e3m4}


def _ml_codes(x: np.ndarray, dt) -> np.ndarray:
    return x.astype(dt).view(np.uint8)


def _hard_reals(fmt, n: int, seed: int) -> np.ndarray:
    """n reals: random magnitudes over the whole range, exact ties, subnormals, out of range."""
    rng = np.random.default_rng(seed)
    grid = values(fmt)
    mids = (grid[:-1] + grid[1:]) / 2  # exact ties
    parts = [
        rng.standard_normal(n // 4) * fmt.max_value / 3,
        np.exp(rng.uniform(np.log(fmt.min_subnormal / 4), np.log(fmt.max_value * 4), n // 4))
        * rng.choice([-1, 1], n // 4),
        rng.choice(mids, n // 4),
        rng.uniform(-fmt.min_normal, fmt.min_normal, n // 8),
        rng.choice(grid, n - 3 * (n // 4) - n // 8),
    ]
    return np.concatenate(parts)


@pytest.mark.parametrize("name", sorted(ML))
def test_decode_matches_ml_dtypes_on_every_code(name):
    fmt, dt = parse_format(name), ML[name]
    c = all_codes(fmt)
    ref = c.view(dt).astype(np.float64)
    ours = decode(c, fmt)
    assert np.array_equal(ours, ref, equal_nan=True)
    assert np.array_equal(np.signbit(ours), np.signbit(ref))
    grid = np.unique(ref[np.isfinite(ref)])
    assert np.array_equal(values(fmt), grid)


@pytest.mark.parametrize("name", sorted(ML))
def test_encode_quantize_match_ml_dtypes_on_a_million_reals(name):
    fmt, dt = parse_format(name), ML[name]
    # float32 inputs: ml_dtypes converts float64 through float32 (double rounding), so only
    # float32 inputs have a single, comparable rounding (float64 is checked by brute force below)
    x = _hard_reals(fmt, 1_000_000, seed=sum(map(ord, name))).astype(np.float32)
    # ml_dtypes overflows to inf/NaN; we saturate: clip first
    xc = np.clip(x, -fmt.max_value, fmt.max_value)
    ref_codes = _ml_codes(xc, dt)
    ours = encode(x, fmt)
    bad = np.flatnonzero(ours != ref_codes)
    assert bad.size == 0, f"first mismatch at x={x[bad[0]]!r}: ours {ours[bad[0]]:#x} ml_dtypes {ref_codes[bad[0]]:#x}"
    q = quantize(x, fmt)
    assert q.dtype == np.float32
    ref_q = xc.astype(dt).astype(np.float32)
    assert np.array_equal(q, ref_q) and np.array_equal(np.signbit(q), np.signbit(ref_q))


@pytest.mark.parametrize("name", sorted(ML_NOSAT))
def test_non_saturating_overflow_matches_ml_dtypes(name):
    fmt, dt = parse_format(name), ML_NOSAT[name]
    x = _hard_reals(fmt, 200_000, seed=7)
    x = np.concatenate([x, [np.inf, -np.inf, np.nan, fmt.max_value * 1.0625, fmt.max_value * 1.01]]).astype(np.float32)
    ref = x.astype(dt).astype(np.float64)
    q = quantize(x, fmt)
    assert np.array_equal(q, ref, equal_nan=True)
    ref_codes = _ml_codes(x, dt)
    ours = encode(x, fmt)
    # NaN codes: compare NaN-ness, the payload of ml_dtypes' NaN is its own choice
    nan = np.isnan(ref)
    assert np.array_equal(ours[~nan], ref_codes[~nan])
    assert np.isnan(decode(ours[nan], fmt)).all()


def _brute_force_quantize(x: np.ndarray, fmt) -> np.ndarray:
    """Nearest grid value by exhaustive search. Ties: the even integer (ints); for minifloats the
    magnitude whose significand is even at the lower neighbour's precision (IEEE; for M >= 1 the
    even code)."""
    grid = values(fmt)
    if isinstance(fmt, IntFormat):
        xc = np.clip(x, grid[0], grid[-1])
        d = np.abs(xc[:, None] - grid[None, :])
        cand = d == d.min(axis=1, keepdims=True)
        score = np.where(cand, grid[None, :].astype(np.int64) & 1, 2)
        return grid[np.argmin(score, axis=1)]
    mags = grid[grid >= 0]
    a = np.minimum(np.abs(x), mags[-1])
    d = np.abs(a[:, None] - mags[None, :])
    cand = d == d.min(axis=1, keepdims=True)
    lo = np.argmax(cand, axis=1)  # lower tied candidate (or the only one)
    e_lo = np.maximum(np.floor(np.log2(np.where(mags[lo] > 0, mags[lo], fmt.min_normal))), fmt.emin)
    step = 2.0 ** (e_lo - fmt.mantissa_bits)
    hi = np.minimum(lo + 1, len(mags) - 1)
    tie = cand[np.arange(len(a)), hi] & (hi != lo)
    lo_even = (np.rint(mags[lo] / step) % 2) == 0
    pick = np.where(tie & ~lo_even, hi, lo)
    return np.copysign(mags[pick], x)


@pytest.mark.parametrize("fmt", all_formats(), ids=str)
def test_quantize_matches_brute_force_for_every_format(fmt):
    x = _hard_reals(fmt, 4000, seed=fmt.bits)
    q = quantize(x, fmt)
    ref = _brute_force_quantize(x, fmt)
    bad = np.flatnonzero(q != ref)
    assert bad.size == 0, f"x={x[bad[0]]!r}: ours {q[bad[0]]} brute force {ref[bad[0]]}"
    codes = encode(x, fmt)
    assert np.array_equal(decode(codes, fmt), q)


@pytest.mark.parametrize("fmt", all_formats(), ids=str)
def test_encode_decode_identity_on_codes(fmt):
    c = all_codes(fmt)
    v = decode(c, fmt)
    ok = np.isfinite(v)
    back = encode(v[ok], fmt)
    if isinstance(fmt, IntFormat):
        assert np.array_equal(back, c[ok])
    else:
        # every finite code maps back to itself (the flushed codes of 'nosub' formats aside)
        assert np.array_equal(decode(back, fmt), v[ok])
        assert np.array_equal(back, c[ok])


@pytest.mark.parametrize("fmt", all_formats(), ids=str)
def test_fixed_point_is_exact(fmt):
    c = all_codes(fmt)
    v = decode(c, fmt)
    ok = np.isfinite(v)
    n, k = fixed_point(c[ok], fmt)
    assert all(float(a) * 2.0**k == b for a, b in zip(n, v[ok]))


def test_scale_per_channel():
    fmt = parse_format("int4")
    x = np.array([[1.0, 2.0, 100.0], [0.1, 0.26, -9.0]])
    s = np.array([[0.5], [0.1]])
    q = quantize(x, fmt, s)
    assert np.allclose(q, [[1.0, 2.0, 3.5], [0.1, 0.3, -0.8]])


def test_nan_policy():
    assert np.isnan(quantize(np.array([np.nan]), "e2m1")).all()
    with pytest.raises(ValueError, match="no NaN code"):
        encode(np.array([np.nan]), "e2m1")
    with pytest.raises(ValueError, match="no NaN code"):
        encode(np.array([np.nan]), "int8")
    assert decode(encode(np.array([np.nan]), "e4m3ocp"), "e4m3ocp")[0] != 0  # NaN
    assert quantize(np.array([np.inf, -np.inf]), "e2m3").tolist() == [7.5, -7.5]


def test_decode_rejects_wide_codes():
    with pytest.raises(ValueError, match="0..15"):
        decode(np.array([16]), "e2m1")


# ---- Hypothesis properties over every format ------------------------------------------------
formats = st.sampled_from(all_formats())
reals = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@settings(max_examples=300, deadline=None)
@given(formats, st.lists(reals, min_size=1, max_size=50))
def test_idempotent(fmt, xs):
    q = quantize(np.array(xs), fmt)
    assert np.array_equal(quantize(q, fmt), q)


@settings(max_examples=300, deadline=None)
@given(formats, reals, reals)
def test_monotone(fmt, a, b):
    lo, hi = min(a, b), max(a, b)
    assert quantize(np.array([lo]), fmt)[0] <= quantize(np.array([hi]), fmt)[0]


@settings(max_examples=300, deadline=None)
@given(formats, reals)
def test_saturating_and_on_grid(fmt, x):
    q = quantize(np.array([x]), fmt)[0]
    grid = values(fmt)
    assert grid[0] <= q <= grid[-1]
    assert q in grid
    if x > grid[-1]:
        assert q == grid[-1]


@settings(max_examples=300, deadline=None)
@given(formats.filter(lambda f: f.kind == "minifloat" or (f.signed and f.narrow)), reals)
def test_odd_symmetric(fmt, x):
    assert quantize(np.array([-x]), fmt)[0] == -quantize(np.array([x]), fmt)[0]


@settings(max_examples=200, deadline=None)
@given(formats, st.data())
def test_decode_encode_identity(fmt, data):
    grid = values(fmt)
    v = np.array(data.draw(st.lists(st.sampled_from(list(grid)), min_size=1, max_size=20)))
    assert np.array_equal(decode(encode(v, fmt), fmt), v)
