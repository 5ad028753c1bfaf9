"""Redshift accuracy metrics with the reference's formulas, exact over many shards.

delta = (z_pred - z_true) / (1 + z_true);
MAE = mean|z_pred - z_true|, MSE = mean (z_pred - z_true)^2, bias = mean(delta),
precision = 1.48 * median(|delta - median(delta)|) (NMAD), R^2 = 1 - SS_res/SS_tot,
outlier_fraction = share of |delta| > 0.15.

Medians cannot be merged from partial summaries, so `MetricState` keeps the exact
float64 values and concatenates them; merging per-shard states equals computing
over the whole, never an average of averages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OUTLIER_THRESHOLD = 0.15
NMAD_FACTOR = 1.48
METRIC_KEYS = ("n", "mae", "mse", "bias", "precision", "r2", "outlier_fraction")


class MetricsError(ValueError):
    """Inputs that cannot be scored: mismatched lengths, no objects, NaN/inf."""


def _as_pair(z_true: Any, z_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(z_true, dtype=np.float64).reshape(-1)
    p = np.asarray(z_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise MetricsError(f"z_true has {t.size} values but z_pred has {p.size}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise MetricsError("z_true or z_pred holds NaN/inf")
    return t, p


def compute_metrics(z_true: Any, z_pred: Any) -> dict[str, Any]:
    """Metrics dict with keys n, mae, mse, bias, precision, r2, outlier_fraction.

    `r2` is None when it is undefined (all true values equal).
    """
    t, p = _as_pair(z_true, z_pred)
    if t.size == 0:
        raise MetricsError("no objects to score")
    err = p - t
    delta = err / (1.0 + t)
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return {
        "n": int(t.size),
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err**2)),
        "bias": float(np.mean(delta)),
        "precision": float(NMAD_FACTOR * np.median(np.abs(delta - np.median(delta)))),
        "r2": None if ss_tot == 0.0 else 1.0 - ss_res / ss_tot,
        "outlier_fraction": float(np.mean(np.abs(delta) > OUTLIER_THRESHOLD)),
    }


class MetricState:
    """Exact, mergeable accumulator of (z_true, z_pred) pairs."""

    def __init__(self) -> None:
        self._true: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []

    @property
    def n(self) -> int:
        """Number of objects accumulated."""
        return int(sum(a.size for a in self._true))

    def update(self, z_true: Any, z_pred: Any) -> MetricState:
        """Add one batch of pairs; returns self."""
        t, p = _as_pair(z_true, z_pred)
        self._true.append(t)
        self._pred.append(p)
        return self

    def merge(self, other: MetricState) -> MetricState:
        """Add every pair of `other` (left unchanged) to this state; returns self."""
        self._true.extend(other._true)
        self._pred.extend(other._pred)
        return self

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All pairs so far as float64 (z_true, z_pred)."""
        if not self._true:
            return np.empty(0), np.empty(0)
        # Compact so repeated merges do not keep thousands of small arrays.
        t, p = np.concatenate(self._true), np.concatenate(self._pred)
        self._true, self._pred = [t], [p]
        return t, p

    def compute(self) -> dict[str, Any]:
        """The metrics of every pair accumulated (raises MetricsError if empty)."""
        return compute_metrics(*self.arrays())

    def to_bytes(self) -> bytes:
        """Serialise (safetensors, float64) to move a state between processes."""
        from safetensors.numpy import save

        t, p = self.arrays()
        return save({"z_true": t, "z_pred": p}, metadata={"format": "cosmicai.metricstate"})

    @classmethod
    def from_bytes(cls, data: bytes) -> MetricState:
        """Inverse of `to_bytes`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            arrays = load(bytes(data))
        except (SafetensorError, ValueError) as exc:
            raise MetricsError(f"corrupt metric state ({exc})") from exc
        if set(arrays) != {"z_true", "z_pred"}:
            raise MetricsError(f"metric state holds {sorted(arrays)}, expected z_true, z_pred")
        state = cls()
        if arrays["z_true"].size:
            state.update(arrays["z_true"], arrays["z_pred"])
        return state

    def __repr__(self) -> str:
        return f"MetricState(n={self.n})"


def format_metrics(m: dict[str, Any]) -> str:
    """One line of text for CLI output."""
    r2 = "n/a" if m.get("r2") is None else f"{m['r2']:.4f}"
    return (
        f"n={m['n']} MAE={m['mae']:.4f} MSE={m['mse']:.5f} bias={m['bias']:.4f} "
        f"precision={m['precision']:.4f} R2={r2} outliers={m['outlier_fraction']:.4f}"
    )


__all__ = [
    "METRIC_KEYS",
    "MetricState",
    "MetricsError",
    "compute_metrics",
    "format_metrics",
]
