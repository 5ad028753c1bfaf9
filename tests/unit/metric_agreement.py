"""The agreement a merged summary's metrics must have with exact ones (shared by unit and integration tests).

The bounds are the ones summary.json states (`cosmicai.metrics.error_bounds`): n and the outlier
fraction exact; MAE, MSE, bias and R^2 float64 sums (rounding only); precision (NMAD) within
PRECISION_ERROR_BOUND, from the delta histogram's DELTA_ERROR_BOUND.
"""

from __future__ import annotations

from typing import Any

import pytest

from cosmicai.metrics import METRIC_KEYS, PRECISION_ERROR_BOUND

# Float64 sums (correctly rounded per shard, compensated across shards) against numpy's pairwise
# means: differences are ~1e-15 relative; these tolerances leave three orders of margin.
SUM_REL = 1e-12
SUM_ABS = 1e-12


def assert_metrics_agree(merged: dict[str, Any] | None, exact: dict[str, Any]) -> None:
    """Every metric of `merged` within its stated bound of `exact` (compute_metrics)."""
    assert merged is not None, "no merged metrics"
    assert set(merged) == set(METRIC_KEYS)  # (a local copy of summary.json may order its keys)
    assert merged["n"] == exact["n"]
    assert merged["outlier_fraction"] == exact["outlier_fraction"]
    for key in ("mae", "mse", "bias"):
        assert merged[key] == pytest.approx(exact[key], rel=SUM_REL, abs=SUM_ABS), key
    if exact["r2"] is None:
        assert merged["r2"] is None
    else:
        assert merged["r2"] == pytest.approx(exact["r2"], rel=SUM_REL, abs=1e-9)
    assert abs(merged["precision"] - exact["precision"]) <= PRECISION_ERROR_BOUND + 1e-15, (
        merged["precision"], exact["precision"])
