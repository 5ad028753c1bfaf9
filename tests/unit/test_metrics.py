"""Metrics: the reference formulas on hand-computed values, exact merging, and merged partials within their bound."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cosmicai import metrics as M
from cosmicai.metrics import (
    BIN_WIDTH,
    DELTA_ERROR_BOUND,
    GRID_LIMIT,
    METRIC_KEYS,
    PRECISION_ERROR_BOUND,
    MetricAccumulator,
    MetricPartial,
    MetricsError,
    MetricState,
    PartialFormatError,
    ShardPartial,
    bin_centres,
    compute_metrics,
    delta_bins,
    format_metrics,
    partials_from_bytes,
    partials_to_bytes,
)
from metric_agreement import assert_metrics_agree

Z_TRUE = [0.0, 1.0, 0.5, 0.2]
Z_PRED = [0.1, 0.8, 0.5, 0.5]


def test_hand_computed_values():
    # err = [0.1, -0.2, 0, 0.3]; delta = [0.1, -0.1, 0, 0.25]
    m = compute_metrics(Z_TRUE, Z_PRED)
    assert tuple(m) == METRIC_KEYS
    assert m["n"] == 4
    assert m["mae"] == pytest.approx(0.15, abs=1e-12)
    assert m["mse"] == pytest.approx(0.035, abs=1e-12)
    assert m["bias"] == pytest.approx(0.0625, abs=1e-12)
    # median(delta) = 0.05; |delta - 0.05| = [0.05, 0.15, 0.05, 0.2]; median 0.1
    assert m["precision"] == pytest.approx(1.48 * 0.1, abs=1e-12)
    # SS_res = 0.14; mean z = 0.425; SS_tot = 0.5675
    assert m["r2"] == pytest.approx(1 - 0.14 / 0.5675, abs=1e-12)
    assert m["outlier_fraction"] == pytest.approx(0.25)


def test_outlier_threshold_is_strict():
    # delta exactly 0.15 is not an outlier; 0.1501 is.
    m = compute_metrics([0.0, 0.0, 0.0, 0.0], [0.15, -0.15, 0.1501, 0.0])
    assert m["outlier_fraction"] == pytest.approx(0.25)


def test_perfect_predictions():
    z = np.linspace(0.01, 0.5, 50)
    m = compute_metrics(z, z)
    assert m["mae"] == m["mse"] == m["bias"] == m["precision"] == m["outlier_fraction"] == 0.0
    assert m["r2"] == 1.0


def test_r2_undefined_when_truth_is_constant():
    assert compute_metrics([0.3, 0.3], [0.2, 0.4])["r2"] is None
    # 0.1 * 3 / 3 != 0.1 in float64: SS_tot would be ~1e-34 and R^2 -1e30 without the min == max test
    assert compute_metrics([0.1, 0.1, 0.1], [0.2, 0.4, 0.1])["r2"] is None
    assert MetricPartial.from_pairs([0.1, 0.1, 0.1], [0.2, 0.4, 0.1]).compute()["r2"] is None


def test_bad_inputs_raise_named_error():
    with pytest.raises(MetricsError, match="3 values but z_pred has 2"):
        compute_metrics([1, 2, 3], [1, 2])
    with pytest.raises(MetricsError, match="no objects"):
        compute_metrics([], [])
    with pytest.raises(MetricsError, match="NaN"):
        compute_metrics([0.1, np.nan], [0.1, 0.2])


def test_merge_of_shard_states_equals_whole():
    rng = np.random.default_rng(11)
    t = rng.uniform(0, 0.6, 1001)
    p = t + rng.normal(0, 0.05, t.size) + (rng.uniform(size=t.size) < 0.05) * 0.4
    whole = compute_metrics(t, p)
    cuts = [0, 3, 250, 251, 700, 1001]  # uneven shards, one of a single object
    states = [MetricState().update(t[a:b], p[a:b]) for a, b in itertools.pairwise(cuts)]
    merged = MetricState()
    for s in reversed(states):  # order must not matter
        merged.merge(s)
    assert merged.n == 1001
    got = merged.compute()
    for k in METRIC_KEYS:
        assert got[k] == pytest.approx(whole[k], rel=1e-12, abs=1e-15), k
    # an average of per-shard medians would differ: make sure the test could tell
    avg_prec = np.mean([s.compute()["precision"] for s in states[1:]])
    assert abs(avg_prec - whole["precision"]) > 1e-6


def test_merge_leaves_other_unchanged_and_float32_inputs_are_widened():
    a = MetricState().update(np.float32([0.1, 0.2]), np.float32([0.1, 0.3]))
    b = MetricState().update([0.3], [0.3])
    a.merge(b)
    assert a.n == 3 and b.n == 1
    assert a.compute()["mae"] == pytest.approx(abs(float(np.float32(0.3)) - float(np.float32(0.2))) / 3, rel=1e-9)
    t, p = a.arrays()
    assert t.dtype == np.float64 and p.dtype == np.float64


def test_state_serialises_exactly():
    rng = np.random.default_rng(2)
    s = MetricState().update(rng.uniform(0, 1, 40), rng.uniform(0, 1, 40))
    back = MetricState.from_bytes(s.to_bytes())
    assert back.compute() == s.compute()
    assert MetricState.from_bytes(MetricState().to_bytes()).n == 0
    with pytest.raises(MetricsError, match="corrupt"):
        MetricState.from_bytes(b"nonsense")


def test_empty_state_raises_and_formats():
    with pytest.raises(MetricsError):
        MetricState().compute()
    line = format_metrics(compute_metrics(Z_TRUE, Z_PRED))
    assert "n=4" in line and "MAE=0.1500" in line


# ---------------------------------------------------------------------------------------------
# Metric partials: the delta grid's bound, merged vs exact, merge laws, the file format


def _pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (z_true, z_pred) like a catalog: a good core, heavy (Cauchy) tails, deltas beyond +-1,
    a few beyond GRID_LIMIT."""
    t = rng.uniform(0.0, 3.0, n).astype(np.float32)
    d = rng.normal(0.0, 0.02, n)
    tail = rng.uniform(size=n) < 0.08
    d[tail] = rng.standard_cauchy(int(tail.sum())) * 0.3
    far = rng.uniform(size=n) < 0.01
    d[far] = rng.choice([-1, 1], int(far.sum())) * rng.uniform(1.0, 50.0, int(far.sum()))
    p = (t + d * (1.0 + t)).astype(np.float32)
    if n > 100:
        p[0] = np.float32(3e8)  # delta ~1e8 >= GRID_LIMIT: kept exactly
    return t, p


def _deltas(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    t64, p64 = t.astype(np.float64), p.astype(np.float64)
    return (p64 - t64) / (1.0 + t64)


def test_every_delta_is_within_the_bound_of_its_representative():
    rng = np.random.default_rng(3)
    k = rng.integers(-(2**25), 2**25, 20_000)
    edges = k * BIN_WIDTH - 1.0  # exact bin edges over +-16 (and the rounding just around them)
    values = np.concatenate(
        [
            edges,
            np.nextafter(edges, np.inf),
            np.nextafter(edges, -np.inf),
            rng.uniform(-1, 1, 20_000),
            rng.uniform(-GRID_LIMIT, GRID_LIMIT, 20_000) * 0.999,
            [-1.0, 1.0, 0.0, 1e-300, -1e-300, GRID_LIMIT * 0.999999, -GRID_LIMIT * 0.999999, np.nextafter(-1.0, 0.0)],
        ]
    )
    err = np.abs(values - bin_centres(delta_bins(values)))
    assert err.max() <= DELTA_ERROR_BOUND < 1e-6
    # and the bound is nearly tight: values at a bin's lower edge are W/2 from its centre
    assert err.max() >= BIN_WIDTH / 2 - 1e-12
    assert DELTA_ERROR_BOUND == pytest.approx(9.686e-7, rel=1e-3) and PRECISION_ERROR_BOUND < 2.9e-6


def test_200_partials_merged_agree_with_exact_metrics_within_the_bound():
    rng = np.random.default_rng(20260)
    sizes = rng.integers(1, 6000, 200)
    sizes[:3] = [1, 2, 5113]  # tiny partials and a reference-sized one
    acc = MetricAccumulator()
    ts, ps = [], []
    for n in sizes:
        t, p = _pairs(rng, int(n))
        ts.append(t)
        ps.append(p)
        acc.add(MetricPartial.from_pairs(t, p))
    t, p = np.concatenate(ts), np.concatenate(ps)
    exact = compute_metrics(t, p)
    got = acc.compute()
    assert_metrics_agree(got, exact)
    assert acc.partials == 200 and got["n"] == sizes.sum()
    # quantiles of delta in general (RAIL's sigma_IQR, median bias) within the same bound
    delta = _deltas(t, p)
    dist = acc.distribution()
    assert (np.abs(delta) > 1).sum() > 1000 and (np.abs(delta) >= GRID_LIMIT).sum() >= 1
    for q in (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0):
        assert abs(dist.quantile(q) - np.quantile(delta, q)) <= DELTA_ERROR_BOUND, q
    assert abs(dist.median() - np.median(delta)) <= DELTA_ERROR_BOUND
    exact_mad = np.median(np.abs(delta - np.median(delta)))
    assert abs(dist.mad() - exact_mad) <= 2 * DELTA_ERROR_BOUND
    iqr = (dist.quantile(0.75) - dist.quantile(0.25)) / 1.349
    assert abs(iqr - (np.quantile(delta, 0.75) - np.quantile(delta, 0.25)) / 1.349) <= 2 * DELTA_ERROR_BOUND / 1.349
    # counts at a threshold known only after merging: bracketed, exact away from the threshold
    for thr in (0.06, 3 * iqr, 0.15):
        sure, maybe = dist.abs_above(thr)
        assert sure <= int((np.abs(delta) > thr).sum()) <= maybe
    sure, maybe = dist.abs_above(0.15)
    assert sure <= round(exact["outlier_fraction"] * exact["n"]) <= maybe and maybe - sure < 10


def test_merged_figures_are_the_exact_statistics_of_the_representatives():
    """The histogram path computes exactly what numpy computes on the represented deltas."""
    rng = np.random.default_rng(5)
    t, p = _pairs(rng, 7001)
    part = MetricPartial.from_pairs(t, p)
    delta = _deltas(t, p)
    rep = np.where(np.abs(delta) < GRID_LIMIT, bin_centres(delta_bins(delta)), delta)
    dist = part.distribution()
    assert dist.n == 7001
    assert np.array_equal(np.repeat(dist.values, dist.counts), np.sort(rep))
    assert dist.median() == np.median(rep)
    assert dist.mad() == np.median(np.abs(rep - np.median(rep)))
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert dist.quantile(q) == pytest.approx(np.quantile(rep, q), abs=1e-15)


def test_merge_is_commutative_and_associative():
    rng = np.random.default_rng(8)
    parts = [MetricPartial.from_pairs(*_pairs(rng, int(n))) for n in rng.integers(1, 3000, 30)]

    def acc_of(ps: list[MetricPartial]) -> MetricAccumulator:
        a = MetricAccumulator()
        for x in ps:
            a.add(x)
        return a

    base = acc_of(parts)
    shuffled = acc_of([parts[i] for i in rng.permutation(len(parts))])
    # (first 10 + middle 10) + last 10 vs first 10 + (middle 10 + last 10)
    left = acc_of(parts[:10]).merge(acc_of(parts[10:20])).merge(acc_of(parts[20:]))
    right = acc_of(parts[:10]).merge(acc_of(parts[10:20]).merge(acc_of(parts[20:])))
    ref, ref_dist = base.compute(), base.distribution()
    for other in (shuffled, left, right):
        d = other.distribution()
        assert np.array_equal(d.values, ref_dist.values) and np.array_equal(d.counts, ref_dist.counts)
        got = other.compute()
        for k in ("n", "outlier_fraction", "precision"):
            assert got[k] == ref[k], k  # integer counts and one histogram: identical
        for k in ("mae", "mse", "bias", "r2"):
            assert got[k] == pytest.approx(ref[k], rel=1e-13, abs=1e-15), k


def test_sparse_bins_beyond_the_dense_range_compact_without_changing_the_result(monkeypatch):
    rng = np.random.default_rng(9)
    parts = [MetricPartial.from_pairs(*_pairs(rng, 2000)) for _ in range(20)]
    plain = MetricAccumulator()
    for x in parts:
        plain.add(x)
    monkeypatch.setattr(MetricAccumulator, "COMPACT_AT", 16)  # compact after nearly every partial
    small = MetricAccumulator()
    for x in parts:
        small.add(x)
    assert small._pending_size < 16 + 200
    assert small.compute() == plain.compute()


def test_accumulator_memory_does_not_grow_with_partials():
    """Adding more partials of in-range deltas leaves the accumulator's arrays as they were."""
    rng = np.random.default_rng(10)
    acc = MetricAccumulator()
    sizes = []
    for i in range(400):
        t = rng.uniform(0, 1, 500)
        acc.add(MetricPartial.from_pairs(t, t + rng.normal(0, 0.01, 500)))
        if i in (9, 399):
            sizes.append(acc._dense.nbytes + acc._sparse_bins.nbytes + acc._pending_size * 16 + len(acc._extremes))
    assert sizes[0] == sizes[1] == M.DENSE_BINS * 8


def test_partial_file_round_trips_as_plain_json():
    import json

    rng = np.random.default_rng(12)
    sections = [
        ShardPartial(f"in/part-{i}.safetensors", n, MetricPartial.from_pairs(*_pairs(rng, n)))
        for i, n in enumerate((5000, 1, 700))
    ]
    sections.append(ShardPartial("in/unlabelled.safetensors", 40, MetricPartial()))
    data = partials_to_bytes("run-x", "item-00003", sections)
    assert len(data) < 40_000  # ~6 KB per 5,000 objects: a small GET
    raw = json.loads(data)
    assert raw["format"] == "cosmicai.metric_partial" and raw["shards"][0]["n"] == 5000
    assert raw["shards"][1]["extremes"] == [] and raw["shards"][3]["z_true"] is None
    doc = partials_from_bytes(data, "test")
    assert (doc.run_id, doc.item_id) == ("run-x", "item-00003")
    assert list(doc.shards) == [s.key for s in sections]
    for s in sections:
        back = doc.shards[s.key]
        assert back.rows == s.rows and back.partial.n == s.partial.n
        assert np.array_equal(back.partial.bins, s.partial.bins) and np.array_equal(
            back.partial.counts, s.partial.counts
        )
        assert np.array_equal(back.partial.extremes, s.partial.extremes)
        if s.partial.n:
            assert back.partial.compute() == s.partial.compute()
    assert partials_from_bytes(partials_to_bytes("r", "i", []), "test").shards == {}


def test_bad_partial_files_are_named_errors():
    import base64
    import json
    import zlib

    good = json.loads(
        partials_to_bytes("r", "i", [ShardPartial("k", 2, MetricPartial.from_pairs([0.1, 0.2], [0.1, 0.3]))])
    )

    def bad(change: dict, section: dict | None = None) -> bytes:
        doc = json.loads(json.dumps(good)) | change
        doc["shards"][0] |= section or {}
        return json.dumps(doc).encode()

    with pytest.raises(PartialFormatError, match="s3://b/x.json: not a metric partial"):
        partials_from_bytes(b"PK\x03\x04 zip", "s3://b/x.json")
    with pytest.raises(PartialFormatError, match="version 1"):
        partials_from_bytes(bad({"version": 99}), "p")
    with pytest.raises(PartialFormatError, match="grid"):
        partials_from_bytes(bad({"grid": {"lo": -1.0, "bin_width": 2e-6, "limit": GRID_LIMIT}}), "p")
    with pytest.raises(PartialFormatError, match="section 0 is inconsistent"):
        partials_from_bytes(bad({}, {"n": 3}), "p")  # the histogram holds 2
    with pytest.raises(PartialFormatError, match="section 0"):
        partials_from_bytes(bad({}, {"sum_delta": None}), "p")
    bomb = base64.b64encode(zlib.compress(bytes(8 * 10**6))).decode()
    with pytest.raises(PartialFormatError, match="more than 2 values"):
        partials_from_bytes(bad({}, {"counts": bomb}), "p")  # never inflated past what n allows
    with pytest.raises(PartialFormatError, match="section 0"):
        partials_from_bytes(bad({}, {"n": 3, "extremes": [float("nan")]}), "p")
    with pytest.raises(MetricsError, match="no objects"):
        MetricAccumulator().compute()


def test_mad_without_sorting_equals_numpy_on_any_multiset():
    """Duplicates, zero counts (the dense grid's empty bins), odd and even n, one-sided spreads."""
    from cosmicai.metrics import DeltaDistribution

    rng = np.random.default_rng(21)
    for trial in range(300):
        size = int(rng.integers(1, 40))
        values = np.sort(np.round(rng.normal(0, 1, size) * rng.choice([1, 100]), int(rng.integers(0, 3))))
        counts = rng.integers(0, 4, size)
        if counts.sum() == 0:
            counts[0] = 1
        dist = DeltaDistribution(values, counts.astype(np.int64))
        x = np.repeat(values, counts)
        assert dist.median() == np.median(x), trial
        assert dist.mad() == np.median(np.abs(x - np.median(x))), trial
