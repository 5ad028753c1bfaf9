"""RAIL's point metrics (summary.json `metrics.rail`) merged from partials, against LSST DESC qp's own classes.

qp (PyPI `qp-prob`, a dev dependency) is the reference: `qp.metrics.point_estimate_metric_classes`
PointBias, PointSigmaIQR, PointSigmaMAD and PointOutlierRate (their exact `evaluate`).
"""

from __future__ import annotations

import numpy as np
import pytest

from cosmicai.metrics import (
    DELTA_ERROR_BOUND,
    RAIL_KEYS,
    RAIL_SIGMA_IQR_ERROR_BOUND,
    RAIL_SIGMA_MAD_ERROR_BOUND,
    MetricAccumulator,
    MetricPartial,
    ShardPartial,
    compute_rail_metrics,
    partials_from_bytes,
    partials_to_bytes,
)
from metric_agreement import RAIL_TOLERANCE, assert_rail_agrees, qp_rail_metrics
from tests.conftest import build_shard

pytest.importorskip("qp.metrics.point_estimate_metric_classes")


def _merged(z_true: np.ndarray, z_pred: np.ndarray, parts: int, through_bytes: bool = True):
    """compute_with_rail of an accumulator fed `parts` partials (optionally written and read back as files)."""
    acc = MetricAccumulator()
    for i, (t, p) in enumerate(zip(np.array_split(z_true, parts), np.array_split(z_pred, parts), strict=True)):
        partial = MetricPartial.from_pairs(t, p)
        if through_bytes:
            doc = partials_from_bytes(partials_to_bytes("run", f"item-{i}", [ShardPartial(f"s{i}", t.size, partial)]))
            partial = doc.shards[f"s{i}"].partial
        acc.add(partial)
    return acc.compute_with_rail()


def _check(z_true: np.ndarray, z_pred: np.ndarray, parts: int) -> dict[str, float]:
    """Merged RAIL figures vs qp (1e-5) and vs exact (the stated bounds); the bracket holds the exact rate."""
    metrics, rail = _merged(z_true, z_pred, parts)
    diffs = assert_rail_agrees(metrics["rail"], z_true, z_pred)
    exact = compute_rail_metrics(z_true, z_pred)
    got = metrics["rail"]
    assert abs(got["bias"] - exact["bias"]) <= DELTA_ERROR_BOUND
    assert abs(got["sigma_iqr"] - exact["sigma_iqr"]) <= RAIL_SIGMA_IQR_ERROR_BOUND * (1 + 1e-9)
    assert abs(got["sigma_mad"] - exact["sigma_mad"]) <= RAIL_SIGMA_MAD_ERROR_BOUND * (1 + 1e-9)
    bounds = rail.outlier_bounds()
    assert bounds["lower"] <= exact["outlier_rate"] <= bounds["upper"], (bounds, exact)
    if bounds["exact"]:
        assert got["outlier_rate"] == exact["outlier_rate"]
    return diffs


def test_exact_rail_metrics_are_qps() -> None:
    rng = np.random.default_rng(5)
    t = rng.uniform(0.0, 2.0, 1001)
    p = t + rng.normal(0, 0.05, t.size)
    assert compute_rail_metrics(t, p) == pytest.approx(qp_rail_metrics(t, p), rel=0, abs=1e-15)
    assert tuple(compute_rail_metrics(t, p)) == RAIL_KEYS


@pytest.mark.parametrize("seed", range(6))
def test_partial_merged_rail_equals_qp_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30_000))
    t = rng.uniform(0.0, 3.0, n)
    scatter = rng.choice([0.005, 0.02, 0.05])  # 3 sigma_IQR below and above the 0.06 floor
    p = t + rng.standard_t(3, n) * scatter * (1 + t)  # heavy tails: real outliers
    p[: n // 20] = rng.uniform(0.0, 3.0, n // 20)  # catastrophic failures
    _check(t, p, parts=int(rng.integers(1, 40)))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_tiny_samples(n: int) -> None:
    rng = np.random.default_rng(n)
    t = rng.uniform(0, 1, n)
    _check(t, t + rng.normal(0, 0.1, n), parts=min(n, 3))


def test_real_looking_data_from_the_synthetic_generator_and_float32_catalogs() -> None:
    """Redshifts and measured magnitudes of the generator's SDSS-like population; a colour fit as the
    photo-z (broad, skewed residuals with a real outlier tail); values stored as the catalogs store
    them (float32), in shard-sized partials."""
    from cosmicai.data.generate import asinh_mag, draw_population, k_grid, mag_to_nmgy, measured_flux

    rng = np.random.default_rng(17)
    pop = draw_population(rng, 12_000, k_grid())
    mags = asinh_mag(measured_flux(rng, mag_to_nmgy(pop.true_mags), pop.r_e_arcsec[:, None]))
    x = np.c_[np.ones(len(mags)), mags, np.diff(mags, axis=1) ** 2]
    coef, *_ = np.linalg.lstsq(x[:4000], pop.redshift[:4000], rcond=None)
    z_true = pop.redshift[4000:].astype(np.float32).astype(np.float64)
    z_pred = (x[4000:] @ coef).astype(np.float32).astype(np.float64)
    diffs = _check(z_true, z_pred, parts=8)
    assert max(diffs.values()) <= RAIL_TOLERANCE
    rail = _merged(z_true, z_pred, 8)[0]["rail"]
    assert 0.001 < rail["outlier_rate"] < 0.5 and rail["sigma_iqr"] > 0.01  # the fit is a real photo-z, not a toy


def test_conftest_shards_with_a_linear_predictor() -> None:
    shards = [build_shard(300 + 7 * i, seed=40 + i, id_start=1000 * i) for i in range(5)]
    t = np.concatenate([s.redshift for s in shards]).astype(np.float64)
    p = np.concatenate([(0.01 * s.magnitudes.sum(axis=1) - 0.7).astype(np.float32) for s in shards]).astype(np.float64)
    _check(t, p, parts=5)


def test_threshold_near_an_object_gives_a_bracket() -> None:
    """An object within the histogram's error of the threshold: the rate is bracketed, the exact one inside."""
    rng = np.random.default_rng(3)
    t = np.zeros(2001)
    p = rng.normal(0, 0.001, t.size)  # 3 sigma_IQR far below 0.06: the threshold is the floor
    p[0] = 0.06 + 2e-7  # an outlier by 2e-7
    p[1] = -(0.06 - 2e-7)  # not one, by 2e-7
    metrics, rail = _merged(t, p, 4)
    b = rail.outlier_bounds()
    assert b["threshold"] == 0.06 and b["threshold_error"] == 0.0
    assert b["objects_undecided"] == 2 and not b["exact"]
    assert b["lower"] <= 1 / t.size <= b["upper"] and b["upper"] - b["lower"] == pytest.approx(2 / t.size)
    assert abs(metrics["rail"]["outlier_rate"] - qp_rail_metrics(t, p)["outlier_rate"]) <= 2 / t.size


def test_summary_states_the_rail_bounds() -> None:
    from cosmicai.metrics import error_bounds

    rail = error_bounds()["rail"]
    assert rail["bias"] < 1e-6 and rail["sigma_iqr"] < 1.5e-6 and rail["sigma_mad"] < 3e-6


def test_report_rows_and_plot_text_label_rail_metrics() -> None:
    from cosmicai.report import _metrics_text, summary_rows

    metrics = {
        "n": 3,
        "mae": 0.1,
        "bias": 0.01,
        "rail": {"bias": 0.002, "sigma_iqr": 0.03, "sigma_mad": 0.031, "outlier_rate": 0.05},
    }
    rows = dict(summary_rows({"metrics": metrics}))
    assert rows["bias"] == "0.01" and rows["RAIL bias"] == "0.002" and rows["RAIL outlier_rate"] == "0.05"
    text = _metrics_text(metrics)
    assert "RAIL sigma_iqr = 0.03" in text and "bias = 0.01" in text
