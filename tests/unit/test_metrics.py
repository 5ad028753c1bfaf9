"""Metrics: the reference formulas on hand-computed values, and exact merging."""

from __future__ import annotations

import numpy as np
import pytest

from cosmicai.metrics import METRIC_KEYS, MetricState, MetricsError, compute_metrics, format_metrics

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
    states = [MetricState().update(t[a:b], p[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
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
