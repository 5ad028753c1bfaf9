"""The agreement a merged summary's metrics must have with exact ones (shared by unit and integration tests).

The bounds are the ones summary.json states (`cosmicai.metrics.error_bounds`): n and the outlier
fraction exact; MAE, MSE, bias and R^2 float64 sums (rounding only); precision (NMAD) within
PRECISION_ERROR_BOUND, from the delta histogram's DELTA_ERROR_BOUND. `metrics.rail` (RAIL's point
metrics) equal LSST DESC qp's own classes within RAIL_TOLERANCE (the done-when of issue 17).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cosmicai.metrics import METRIC_KEYS, PRECISION_ERROR_BOUND, RAIL_KEYS

# Float64 sums (correctly rounded per shard, compensated across shards) against numpy's pairwise
# means: differences are ~1e-15 relative; these tolerances leave three orders of margin.
SUM_REL = 1e-12
SUM_ABS = 1e-12
RAIL_TOLERANCE = 1e-5


def qp_rail_metrics(z_true: Any, z_pred: Any) -> dict[str, float]:
    """RAIL's point metrics from qp's classes (`qp.metrics.point_estimate_metric_classes`), in float64."""
    from qp.metrics.point_estimate_metric_classes import PointBias, PointOutlierRate, PointSigmaIQR, PointSigmaMAD

    t = np.asarray(z_true, dtype=np.float64)
    p = np.asarray(z_pred, dtype=np.float64)
    return {
        "bias": float(PointBias().evaluate(p, t)),
        "sigma_iqr": float(PointSigmaIQR().evaluate(p, t)),
        "sigma_mad": float(PointSigmaMAD().evaluate(p, t)),
        "outlier_rate": float(PointOutlierRate().evaluate(p, t)),
    }


def assert_rail_agrees(rail: dict[str, Any] | None, z_true: Any, z_pred: Any) -> dict[str, float]:
    """metrics.rail within RAIL_TOLERANCE of qp's classes over the same pairs; returns the differences."""
    assert rail is not None and set(rail) == set(RAIL_KEYS), rail  # (a local copy of summary.json sorts its keys)
    ref = qp_rail_metrics(z_true, z_pred)
    diffs = {k: abs(rail[k] - ref[k]) for k in RAIL_KEYS}
    assert all(d <= RAIL_TOLERANCE for d in diffs.values()), (rail, ref, diffs)
    return diffs


def assert_metrics_agree(
    merged: dict[str, Any] | None, exact: dict[str, Any], pairs: tuple[Any, Any] | None = None
) -> None:
    """Every metric of `merged` within its stated bound of `exact` (compute_metrics); with `pairs`
    (z_true, z_pred of the same objects), `merged["rail"]` against qp's classes too."""
    assert merged is not None, "no merged metrics"
    # (a local copy of summary.json may order its keys; coverage_68 is there only with uncertainty tta8)
    assert set(merged) - {"rail", "coverage_68", "coverage_68_n"} == set(METRIC_KEYS)
    assert merged["n"] == exact["n"]
    assert merged["outlier_fraction"] == exact["outlier_fraction"]
    for key in ("mae", "mse", "bias"):
        assert merged[key] == pytest.approx(exact[key], rel=SUM_REL, abs=SUM_ABS), key
    if exact["r2"] is None:
        assert merged["r2"] is None
    else:
        assert merged["r2"] == pytest.approx(exact["r2"], rel=SUM_REL, abs=1e-9)
    assert abs(merged["precision"] - exact["precision"]) <= PRECISION_ERROR_BOUND + 1e-15, (
        merged["precision"],
        exact["precision"],
    )
    if pairs is not None:
        assert_rail_agrees(merged.get("rail"), *pairs)
