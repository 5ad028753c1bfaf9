"""Redshift accuracy metrics with the reference's formulas: exact, and mergeable at survey scale.

delta = (z_pred - z_true) / (1 + z_true);
MAE = mean|z_pred - z_true|, MSE = mean (z_pred - z_true)^2, bias = mean(delta),
precision = 1.48 * median(|delta - median(delta)|) (NMAD), R^2 = 1 - SS_res/SS_tot,
outlier_fraction = share of |delta| > 0.15. Beside them, RAIL's point metrics (`RAIL_KEYS`: median
bias, sigma_IQR, sigma_MAD, outlier rate beyond max(0.06, 3 sigma_IQR); `compute_rail_metrics`,
`DeltaDistribution.rail`). With per-object errors (uncertainty tta8), `coverage_68` = share of the
labelled objects with |z_true - z_pred| <= z_err and `coverage_68_n` = how many had one (both exact
counts in the partials).

Three ways to get them:

- `compute_metrics(z_true, z_pred)`: exact, from all the values.
- `MetricState`: exact and mergeable by keeping every float64 pair (16 bytes an object), for
  local runs (`cosmicai predict`).
- `MetricPartial` + `MetricAccumulator`: what the fan-out uses. Each worker summarises its
  shards in ~9 KB per 5,000 objects (`MetricPartial.from_pairs`, written with `partials_to_bytes`);
  Summarize adds partials into one `MetricAccumulator` whose size does not depend on the number
  of objects or partials. n, the outlier count and the sums behind MAE, MSE, bias and R^2 are
  kept as sums (exact up to float64 rounding); the median-based figures come from a histogram
  of delta on a fixed grid, whose error bound is proven in `DeltaDistribution`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OUTLIER_THRESHOLD = 0.15
NMAD_FACTOR = 1.48
METRIC_KEYS = ("n", "mae", "mse", "bias", "precision", "r2", "outlier_fraction")

# The delta grid. Bin i holds delta with fl(delta + 1) in [i * W, (i + 1) * W); its representative
# is the centre (i + 0.5) * W - 1. A power-of-two width makes every edge and centre exact in
# float64, so the only rounding in binning is that of delta + 1 (see DeltaDistribution).
BIN_WIDTH_LOG2 = -19
BIN_WIDTH = 2.0**BIN_WIDTH_LOG2  # 1.9073e-6
GRID_LO = -1.0
# [-1, 1): the bins a working model fills; Summarize holds them densely (8 MiB of int64).
DENSE_BINS = 2 ** (1 - BIN_WIDTH_LOG2)
# Beyond |delta| >= 2^26 (a prediction 67 million times off) values are kept exactly: there the
# rounding of delta + 1 could exceed the 1e-6 budget. Between 1 and 2^26 they use the same grid,
# held sparsely, so memory grows with the occupied range, never with the number of objects.
GRID_LIMIT = 2.0**26
# |delta - representative| <= W/2 + (rounding of delta + 1 below 2^27: half of a 2^-26 spacing, rounded up).
DELTA_ERROR_BOUND = BIN_WIDTH / 2 + 2.0**-26  # 9.686e-7 < 1e-6
# Order statistics move by at most the bound; the MAD by twice it (see DeltaDistribution).
PRECISION_ERROR_BOUND = NMAD_FACTOR * 2 * DELTA_ERROR_BOUND  # 2.867e-6

# RAIL's point metrics (LSST DESC `rail` evaluation / `qp.metrics.point_estimate_metric_classes`),
# with ez = delta: bias = median(ez); sigma_IQR = (P75 - P25)/1.349; sigma_MAD = 1.4826 MAD;
# outlier rate = share of |ez| > max(0.06, 3 sigma_IQR).
RAIL_KEYS = ("bias", "sigma_iqr", "sigma_mad", "outlier_rate")
RAIL_IQR_DIVISOR = 1.349
RAIL_MAD_FACTOR = 1.4826
RAIL_OUTLIER_FLOOR = 0.06
RAIL_SIGMA_IQR_ERROR_BOUND = 2 * DELTA_ERROR_BOUND / RAIL_IQR_DIVISOR  # 1.436e-6
RAIL_SIGMA_MAD_ERROR_BOUND = RAIL_MAD_FACTOR * 2 * DELTA_ERROR_BOUND  # 2.872e-6


class MetricsError(ValueError):
    """Inputs that cannot be scored: mismatched lengths, no objects, NaN/inf."""


class PartialFormatError(MetricsError):
    """A metric-partial file that is not one: wrong format, version, grid, or inconsistent arrays."""


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
    # Constant truth tested directly: its float mean can miss the value by an ulp, which would
    # leave SS_tot ~1e-34 and an R^2 of -1e30 instead of "undefined".
    constant = bool(t.min() == t.max())
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return {
        "n": int(t.size),
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err**2)),
        "bias": float(np.mean(delta)),
        "precision": float(NMAD_FACTOR * np.median(np.abs(delta - np.median(delta)))),
        "r2": None if constant or ss_tot == 0.0 else 1.0 - ss_res / ss_tot,
        "outlier_fraction": float(np.mean(np.abs(delta) > OUTLIER_THRESHOLD)),
    }


def compute_rail_metrics(z_true: Any, z_pred: Any) -> dict[str, float]:
    """RAIL's point metrics (RAIL_KEYS), exact, from all the values (what qp's classes' `evaluate` gives)."""
    t, p = _as_pair(z_true, z_pred)
    if t.size == 0:
        raise MetricsError("no objects to score")
    ez = (p - t) / (1.0 + t)
    p75, p25 = np.percentile(ez, [75.0, 25.0])
    sigma_iqr = float((p75 - p25) / RAIL_IQR_DIVISOR)
    median = float(np.median(ez))
    return {
        "bias": median,
        "sigma_iqr": sigma_iqr,
        "sigma_mad": float(RAIL_MAD_FACTOR * np.median(np.abs(ez - median))),
        "outlier_rate": float(np.count_nonzero(np.abs(ez) > max(RAIL_OUTLIER_FLOOR, 3.0 * sigma_iqr)) / t.size),
    }


class MetricState:
    """Exact, mergeable accumulator of (z_true, z_pred) pairs (16 bytes per object: local runs only)."""

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


# ---------------------------------------------------------------------------------------------
# The delta grid and the distribution it represents


def delta_bins(delta: np.ndarray) -> np.ndarray:
    """Grid index of each delta (int64); valid for |delta| < GRID_LIMIT."""
    # (delta - GRID_LO) is the one rounded operation; the scaling by 2^19 and floor are exact.
    return np.floor((delta - GRID_LO) * 2.0**-BIN_WIDTH_LOG2).astype(np.int64)


def bin_centres(bins: np.ndarray) -> np.ndarray:
    """The representative (centre) of each grid index, exact in float64 for |centre| < 2^32."""
    return (bins.astype(np.float64) + 0.5) * BIN_WIDTH + GRID_LO


def _sum_by_bin(bins: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique bins, summed counts) of possibly repeated bins."""
    if bins.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(bins, kind="stable")
    b, c = bins[order], counts[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    return b[starts], np.add.reduceat(c, starts)


@dataclass(frozen=True)
class DeltaDistribution:
    """A multiset of representative delta values: sorted `values` (float64) with `counts` (int64).

    Error bound. Every object's delta is represented either exactly (|delta| >= GRID_LIMIT) or by
    the centre c of its grid bin. With W = 2^-19 and fl() float64 rounding, the bin is the i with
    i*W <= fl(delta + 1) < (i+1)*W (the scaling by 2^19 and the floor are exact), and
    c = (i + 0.5)*W - 1 is exact. For |delta| < 2^26, |delta + 1| < 2^27, where float64 values
    are 2^-26 apart at most, so |fl(delta + 1) - (delta + 1)| <= 2^-27 <= 2^-26. Hence
        |delta - c| <= |delta + 1 - fl(delta + 1)| + |fl(delta + 1) - (c + 1)| <= 2^-26 + W/2
    = DELTA_ERROR_BOUND = 9.686e-7 < 1e-6, for every object.
    Order statistics are 1-Lipschitz in the sup norm: if |x_i - y_i| <= h for all i, then
    #{i: y_i <= x_(k) + h} >= #{i: x_i <= x_(k)} >= k, so y_(k) <= x_(k) + h, and symmetrically.
    So every quantile here (the same convex combination of two order statistics numpy's "linear"
    method and np.median use) is within DELTA_ERROR_BOUND of the exact one; with m, m' the two
    medians, | |x_i - m| - |y_i - m'| | <= |x_i - y_i| + |m - m'| <= 2h, so the MAD is within 2h
    and NMAD (1.48 MAD) within PRECISION_ERROR_BOUND; sigma_IQR = (P75 - P25)/1.349 within
    2h/1.349. Float rounding of the final interpolation adds a few ulps (~1e-16). Tested in
    tests/unit/test_metrics.py against exact figures.
    """

    values: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        """Objects represented."""
        return int(self.counts.sum())

    def _cum(self) -> np.ndarray:
        if self.counts.size == 0:
            raise MetricsError("no objects to score")
        return np.cumsum(self.counts)

    def order_statistic(self, k: int, cum: np.ndarray | None = None) -> float:
        """The k-th smallest value (0-based) of the multiset."""
        cum = self._cum() if cum is None else cum
        if not 0 <= k < int(cum[-1]):
            raise MetricsError(f"order statistic {k} of {int(cum[-1])} values")
        return float(self.values[int(np.searchsorted(cum, k, side="right"))])

    def quantile(self, q: float) -> float:
        """numpy's default ("linear") quantile, 0 <= q <= 1."""
        if not 0.0 <= q <= 1.0:
            raise MetricsError(f"quantile {q} outside [0, 1]")
        cum = self._cum()
        pos = q * (int(cum[-1]) - 1)
        lo = math.floor(pos)
        a = self.order_statistic(lo, cum)
        if pos == lo:
            return a
        b = self.order_statistic(lo + 1, cum)
        t = pos - lo
        return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)  # numpy's _lerp

    def median(self) -> float:
        """np.median of the multiset: the middle value, or the mean of the two middle ones."""
        cum = self._cum()
        n = int(cum[-1])
        if n % 2:
            return self.order_statistic(n // 2, cum)
        return (self.order_statistic(n // 2 - 1, cum) + self.order_statistic(n // 2, cum)) / 2.0

    def mad(self) -> float:
        """median(|delta - median(delta)|) (the NMAD without its factor).

        No sort: the deviations left of the median, read right to left, and those right of it are
        each ascending (float subtraction is monotone), so the k-th smallest of their union is the
        first entry on either side with k + 1 objects at or below it. Working memory is a few
        arrays the size of `values`, whatever the counts.
        """
        m = self.median()
        n = self.n
        split = int(np.searchsorted(self.values, m, side="left"))
        left = m - self.values[:split][::-1]  # == |v - m|, ascending
        right = self.values[split:] - m
        cum_left = np.cumsum(self.counts[:split][::-1])
        cum_right = np.cumsum(self.counts[split:])

        def kth(k: int) -> float:
            """The k-th smallest deviation (0-based)."""
            best = math.inf
            for own, own_cum, other, other_cum in (
                (left, cum_left, right, cum_right),
                (right, cum_right, left, cum_left),
            ):
                if own.size == 0:
                    continue
                at = np.searchsorted(other, own, side="right")
                total = own_cum + np.where(at > 0, other_cum[np.maximum(at - 1, 0)], 0) if other.size else own_cum
                j = int(np.searchsorted(total, k + 1, side="left"))
                if j < own.size:
                    best = min(best, float(own[j]))
            return best

        return kth(n // 2) if n % 2 else (kth(n // 2 - 1) + kth(n // 2)) / 2.0

    def abs_above(self, threshold: float, margin: float = 0.0) -> tuple[int, int]:
        """(at least, at most) the number of objects with |delta| > threshold (for thresholds known only
        after merging, e.g. RAIL's max(0.06, 3 sigma_IQR)); exact for objects farther than the bound.

        `margin`: how far the threshold itself may be from the exact one (a threshold computed from
        this distribution); the bracket then holds for every threshold within `margin` of `threshold`.
        """
        mag = np.abs(self.values)
        sure = int(self.counts[mag > threshold + margin + DELTA_ERROR_BOUND].sum())
        maybe = int(self.counts[mag > threshold - margin - DELTA_ERROR_BOUND].sum())
        return sure, maybe

    def rail(self, mad: float | None = None) -> RailFigures:
        """RAIL's point metrics of the represented deltas, with the bracket of the outlier count.

        bias, sigma_IQR and sigma_MAD are within DELTA_ERROR_BOUND, RAIL_SIGMA_IQR_ERROR_BOUND and
        RAIL_SIGMA_MAD_ERROR_BOUND of the exact ones (class docstring). The outlier threshold
        max(0.06, 3 sigma_IQR) is known only here, after merging, and is within 3 x
        RAIL_SIGMA_IQR_ERROR_BOUND of the exact one; `outliers` counts representatives beyond it
        and `outliers_bracket` bounds the exact count: objects whose delta lies within that margin
        plus DELTA_ERROR_BOUND of the threshold are the only ones the histogram cannot place.
        `mad`: median(|delta - median|) if already computed.
        """
        n = self.n
        sigma_iqr = (self.quantile(0.75) - self.quantile(0.25)) / RAIL_IQR_DIVISOR
        threshold = max(RAIL_OUTLIER_FLOOR, 3.0 * sigma_iqr)
        # 3 sigma_IQR may be off by 3 x its bound; when it is that close to the floor, so is the threshold.
        margin = (
            3.0 * RAIL_SIGMA_IQR_ERROR_BOUND
            if 3.0 * sigma_iqr > RAIL_OUTLIER_FLOOR - 3.0 * RAIL_SIGMA_IQR_ERROR_BOUND
            else 0.0
        )
        margin *= 1.0 + 1e-9  # float rounding of the quantiles' interpolation (a few ulps)
        low, high = self.abs_above(threshold, margin)
        outliers = int(self.counts[np.abs(self.values) > threshold].sum())
        return RailFigures(
            n=n,
            bias=self.median(),
            sigma_iqr=sigma_iqr,
            sigma_mad=RAIL_MAD_FACTOR * (self.mad() if mad is None else mad),
            threshold=threshold,
            threshold_margin=margin,
            outliers=outliers,
            outliers_bracket=(low, high),
        )


@dataclass(frozen=True)
class RailFigures:
    """RAIL's point metrics from a delta histogram, and what the histogram can say of the outlier count."""

    n: int
    bias: float
    sigma_iqr: float
    sigma_mad: float
    threshold: float
    threshold_margin: float
    outliers: int
    outliers_bracket: tuple[int, int]

    def metrics(self) -> dict[str, float]:
        """summary.json's `metrics.rail`: {bias, sigma_iqr, sigma_mad, outlier_rate}."""
        return {
            "bias": self.bias,
            "sigma_iqr": self.sigma_iqr,
            "sigma_mad": self.sigma_mad,
            "outlier_rate": self.outliers / self.n,
        }

    def outlier_bounds(self) -> dict[str, Any]:
        """The bracket the histogram gives on the exact outlier rate (summary.json metrics_source.rail_outlier_rate)."""
        low, high = self.outliers_bracket
        return {
            "threshold": self.threshold,
            "threshold_error": self.threshold_margin,
            "lower": low / self.n,
            "upper": high / self.n,
            "objects_undecided": high - low,
            "exact": low == high,
        }


# ---------------------------------------------------------------------------------------------
# Moments and sums


@dataclass(frozen=True)
class TruthMoments:
    """Count, mean, M2 = sum (z - mean)^2, min and max of z_true, merged with Chan et al.'s pairwise
    update (stable: no sum of squares minus a squared sum, which loses digits when the spread is
    small against the mean)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    @classmethod
    def of(cls, t: np.ndarray) -> TruthMoments:
        """Two-pass moments of one group (sums correctly rounded by math.fsum)."""
        if t.size == 0:
            return cls()
        mean = math.fsum(t) / t.size
        return cls(int(t.size), mean, math.fsum((t - mean) ** 2), float(t.min()), float(t.max()))

    def merge(self, other: TruthMoments) -> TruthMoments:
        """Chan's merge: M2 = M2a + M2b + d^2 na nb / n with d the difference of the means."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        d = other.mean - self.mean
        return TruthMoments(
            n,
            self.mean + d * (other.n / n),
            self.m2 + other.m2 + d * d * (self.n * other.n / n),
            min(self.lo, other.lo),
            max(self.hi, other.hi),
        )


@dataclass
class CompensatedSum:
    """Neumaier's compensated float64 sum: adding 40,000 partial sums stays within a few ulps."""

    total: float = 0.0
    carry: float = 0.0

    def add(self, x: float) -> None:
        """Add one term."""
        t = self.total + x
        self.carry += (self.total - t) + x if abs(self.total) >= abs(x) else (x - t) + self.total
        self.total = t

    @property
    def value(self) -> float:
        """The sum so far."""
        return self.total + self.carry


# ---------------------------------------------------------------------------------------------
# Partials


@dataclass(frozen=True)
class MetricPartial:
    """The metrics of one group of objects (one shard) in a mergeable form.

    `bins`/`counts`: the sparse histogram of delta on the grid (sorted unique int64 indices, counts
    >= 1); `extremes`: the exact, sorted deltas with |delta| >= GRID_LIMIT (normally none).
    `with_err`: objects that carry a z_err (0 without uncertainty); `covered`: those of them with
    |z_true - z_pred| <= z_err.
    """

    n: int = 0
    outliers: int = 0
    sum_abs_err: float = 0.0
    sum_sq_err: float = 0.0
    sum_delta: float = 0.0
    truth: TruthMoments = field(default_factory=TruthMoments)
    bins: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    extremes: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    with_err: int = 0
    covered: int = 0

    @classmethod
    def from_pairs(cls, z_true: Any, z_pred: Any, z_err: Any = None) -> MetricPartial:
        """The partial of these pairs (each sum correctly rounded by math.fsum); with `z_err`, their coverage."""
        t, p = _as_pair(z_true, z_pred)
        if t.size == 0:
            return cls()
        hits = _covered(t, p, z_err)
        err = p - t
        delta = err / (1.0 + t)
        on_grid = np.abs(delta) < GRID_LIMIT
        bins, counts = np.unique(delta_bins(delta[on_grid]), return_counts=True)
        return cls(
            n=int(t.size),
            outliers=int(np.count_nonzero(np.abs(delta) > OUTLIER_THRESHOLD)),
            sum_abs_err=math.fsum(np.abs(err)),
            sum_sq_err=math.fsum(err * err),
            sum_delta=math.fsum(delta),
            truth=TruthMoments.of(t),
            bins=bins.astype(np.int64),
            counts=counts.astype(np.int64),
            extremes=np.sort(delta[~on_grid]),
            with_err=0 if hits is None else int(t.size),
            covered=0 if hits is None else int(np.count_nonzero(hits)),
        )

    def distribution(self) -> DeltaDistribution:
        """The represented deltas (bin centres and exact extremes), sorted."""
        return _distribution(
            [bin_centres(self.bins), self.extremes], [self.counts, np.ones(self.extremes.size, np.int64)]
        )

    def compute(self) -> dict[str, Any]:
        """This partial's metrics (MetricsError if it holds no objects)."""
        return _figures(
            self.n,
            self.outliers,
            self.sum_abs_err,
            self.sum_sq_err,
            self.sum_delta,
            self.truth,
            self.distribution() if self.n else None,
        ) | coverage(self.covered, self.with_err)


def _covered(t: np.ndarray, p: np.ndarray, z_err: Any) -> np.ndarray | None:
    """|z_true - z_pred| <= z_err per object in float64 (None without errors)."""
    if z_err is None:
        return None
    e = np.asarray(z_err, dtype=np.float64).reshape(-1)
    if e.shape != t.shape or not np.isfinite(e).all():
        raise MetricsError(f"z_err has {e.size} values for {t.size} objects, all finite expected")
    hits: np.ndarray = np.abs(t - p) <= e
    return hits


def coverage(covered: int, with_err: int) -> dict[str, Any]:
    """{coverage_68, coverage_68_n} of exact counts ({} when no object carried a z_err)."""
    return {"coverage_68": covered / with_err, "coverage_68_n": with_err} if with_err else {}


def _distribution(values: list[np.ndarray], counts: list[np.ndarray]) -> DeltaDistribution:
    v, c = np.concatenate(values), np.concatenate(counts)
    order = np.argsort(v, kind="stable")
    return DeltaDistribution(v[order], c[order].astype(np.int64))


def _figures(
    n: int,
    outliers: int,
    sum_abs: float,
    sum_sq: float,
    sum_delta: float,
    truth: TruthMoments,
    dist: DeltaDistribution | None,
    mad: float | None = None,
) -> dict[str, Any]:
    """The METRIC_KEYS dict from merged sums and the delta distribution (`mad`: its MAD if known)."""
    if n == 0 or dist is None:
        raise MetricsError("no objects to score")
    constant = truth.lo == truth.hi or truth.m2 == 0.0
    return {
        "n": n,
        "mae": sum_abs / n,
        "mse": sum_sq / n,
        "bias": sum_delta / n,
        "precision": NMAD_FACTOR * (dist.mad() if mad is None else mad),
        "r2": None if constant else 1.0 - sum_sq / truth.m2,
        "outlier_fraction": outliers / n,
    }


class MetricAccumulator:
    """Merged partials in constant memory: a dense int64 histogram of [-1, 1) (8 MiB), the grid
    bins beyond it held sparsely, the exact extremes, compensated sums and Chan moments.

    Adding is commutative and associative for every count; the float sums agree to rounding.
    """

    # Sparse bins beyond [-1, 1) are compacted (repeats summed) once this many are pending. Small:
    # each pending partial is two small arrays (~200 bytes of overhead each), and at 2^18 the
    # ~14,000 arrays pending at 40,000 items added 16 MB to the peak (measured).
    COMPACT_AT = 1 << 15

    def __init__(self) -> None:
        self._dense = np.zeros(DENSE_BINS, np.int64)
        self._sparse_bins = np.empty(0, np.int64)
        self._sparse_counts = np.empty(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0
        self._extremes: list[np.ndarray] = []
        self.n = 0
        self.outliers = 0
        self._abs, self._sq, self._delta = CompensatedSum(), CompensatedSum(), CompensatedSum()
        self.truth = TruthMoments()
        self.partials = 0
        self.with_err = self.covered = 0

    def _add_sparse(self, bins: np.ndarray, counts: np.ndarray) -> None:
        if bins.size:
            self._pending.append((bins, counts))
            self._pending_size += bins.size
            if self._pending_size >= self.COMPACT_AT:
                self._compact()

    def _compact(self) -> None:
        bins = np.concatenate([self._sparse_bins, *(b for b, _ in self._pending)])
        counts = np.concatenate([self._sparse_counts, *(c for _, c in self._pending)])
        self._sparse_bins, self._sparse_counts = _sum_by_bin(bins, counts)
        self._pending, self._pending_size = [], 0

    def _add_sums(
        self, n: int, outliers: int, sum_abs: float, sum_sq: float, sum_delta: float, truth: TruthMoments
    ) -> None:
        self.n += n
        self.outliers += outliers
        self._abs.add(sum_abs)
        self._sq.add(sum_sq)
        self._delta.add(sum_delta)
        self.truth = self.truth.merge(truth)

    def add(self, p: MetricPartial) -> MetricAccumulator:
        """Merge one partial in; returns self."""
        dense = (p.bins >= 0) & (p.bins < DENSE_BINS)
        self._dense[p.bins[dense]] += p.counts[dense]  # bins are unique within a partial
        if not dense.all():
            self._add_sparse(p.bins[~dense], p.counts[~dense])
        if p.extremes.size:
            self._extremes.append(p.extremes)
        self._add_sums(p.n, p.outliers, p.sum_abs_err, p.sum_sq_err, p.sum_delta, p.truth)
        self.with_err += p.with_err
        self.covered += p.covered
        self.partials += 1
        return self

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Merge another accumulator in (for tree reductions); returns self."""
        self._dense += other._dense
        other._compact()
        self._add_sparse(other._sparse_bins, other._sparse_counts)
        self._extremes.extend(other._extremes)
        self.n += other.n
        self.outliers += other.outliers
        for mine, theirs in ((self._abs, other._abs), (self._sq, other._sq), (self._delta, other._delta)):
            mine.add(theirs.total)
            mine.add(theirs.carry)
        self.truth = self.truth.merge(other.truth)
        self.with_err += other.with_err
        self.covered += other.covered
        self.partials += other.partials
        return self

    def distribution(self) -> DeltaDistribution:
        """Every represented delta, sorted: all 2^20 dense bins (zero counts included) and the few beyond.

        The whole dense grid, not only its occupied bins, so the working memory of the median
        figures (~50 MB) is the same for a thousand objects or a billion (issue 15 asks the same
        peak at 1,000 and 40,000 items; occupied bins alone grew it with the run).
        """
        self._compact()
        extremes = np.sort(np.concatenate(self._extremes)) if self._extremes else np.empty(0, np.float64)
        low_x, high_x = extremes[extremes < 0], extremes[extremes > 0]
        low = self._sparse_bins < 0
        # already in ascending order: extremes below, sparse bins below -1, the dense grid, sparse above, extremes above
        values = np.concatenate(
            [
                low_x,
                bin_centres(self._sparse_bins[low]),
                bin_centres(np.arange(DENSE_BINS)),
                bin_centres(self._sparse_bins[~low]),
                high_x,
            ]
        )
        counts = np.concatenate(
            [
                np.ones(low_x.size, np.int64),
                self._sparse_counts[low],
                self._dense,
                self._sparse_counts[~low],
                np.ones(high_x.size, np.int64),
            ]
        )
        return DeltaDistribution(values, counts)

    def compute(self) -> dict[str, Any]:
        """The METRIC_KEYS dict of everything merged (MetricsError if no objects)."""
        if self.n == 0:
            raise MetricsError("no objects to score")
        return _figures(
            self.n, self.outliers, self._abs.value, self._sq.value, self._delta.value, self.truth, self.distribution()
        ) | coverage(self.covered, self.with_err)

    def compute_with_rail(self) -> tuple[dict[str, Any], RailFigures]:
        """(METRIC_KEYS dict plus `rail`: RAIL_KEYS dict, the RAIL figures with their outlier bracket),
        from one distribution and one MAD (MetricsError if no objects)."""
        if self.n == 0:
            raise MetricsError("no objects to score")
        dist = self.distribution()
        mad = dist.mad()
        rail = dist.rail(mad)
        figures = _figures(
            self.n, self.outliers, self._abs.value, self._sq.value, self._delta.value, self.truth, dist, mad
        )
        return figures | coverage(self.covered, self.with_err) | {"rail": rail.metrics()}, rail


def error_bounds() -> dict[str, Any]:
    """What summary.json states about figures merged from partials (see DeltaDistribution)."""
    return {
        "delta_bin_width": BIN_WIDTH,
        "delta": DELTA_ERROR_BOUND,
        "precision": PRECISION_ERROR_BOUND,
        "exact": ["n", "outlier_fraction", "coverage_68"],
        "float64_sums": ["mae", "mse", "bias", "r2"],
        # RAIL's figures (metrics.rail): median-based, so within these of the exact ones; the outlier
        # rate is bracketed per run in metrics_source.rail_outlier_rate (exact when lower == upper).
        "rail": {
            "bias": DELTA_ERROR_BOUND,
            "sigma_iqr": RAIL_SIGMA_IQR_ERROR_BOUND,
            "sigma_mad": RAIL_SIGMA_MAD_ERROR_BOUND,
            "outlier_rate": "metrics_source.rail_outlier_rate",
        },
    }


# ---------------------------------------------------------------------------------------------
# The partial file of one work item: one section per succeeded shard


PARTIAL_FORMAT = "cosmicai.metric_partial"
PARTIAL_VERSION = 1
_GRID = {"lo": GRID_LO, "bin_width": BIN_WIDTH, "limit": GRID_LIMIT}


@dataclass(frozen=True)
class ShardPartial:
    """One shard's section: its key, the rows its catalog holds, and its metric partial."""

    key: str
    rows: int
    partial: MetricPartial


@dataclass(frozen=True)
class PartialFile:
    """A decoded partial file."""

    run_id: str
    item_id: str
    shards: dict[str, ShardPartial]


def _pack_ints(values: np.ndarray) -> str:
    """base64 of zlib-compressed little-endian int64."""
    return base64.b64encode(zlib.compress(values.astype("<i8").tobytes(), 6)).decode("ascii")


def _unpack_ints(text: Any, limit: int, what: str) -> np.ndarray:
    """Inverse of _pack_ints, refusing more than `limit` values (a partial never holds more bins than objects)."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a string")
    inflate = zlib.decompressobj()
    raw = inflate.decompress(base64.b64decode(text, validate=True), 8 * limit + 1)
    if len(raw) > 8 * limit or len(raw) % 8 or inflate.unconsumed_tail:
        raise ValueError(f"{what} holds more than {limit} values or a partial one")
    return np.frombuffer(raw, "<i8").astype(np.int64)


def _section(s: ShardPartial) -> dict[str, Any]:
    p = s.partial
    truth = {"mean": p.truth.mean, "m2": p.truth.m2, "min": p.truth.lo, "max": p.truth.hi} if p.n else None
    doc = {
        "key": s.key,
        "rows": s.rows,
        "n": p.n,
        "outliers": p.outliers,
        "sum_abs_err": p.sum_abs_err,
        "sum_sq_err": p.sum_sq_err,
        "sum_delta": p.sum_delta,
        "z_true": truth,
        # first differences of the sorted indices: small numbers, which deflate to ~1.3 bytes a bin
        "bins": _pack_ints(np.diff(p.bins, prepend=np.int64(0))),
        "counts": _pack_ints(p.counts),
        "extremes": [float(x) for x in p.extremes],
    }
    if p.with_err:  # only with uncertainty: a section without errors stays what version 1 always wrote
        doc |= {"with_err": p.with_err, "covered": p.covered}
    return doc


def partials_to_bytes(run_id: str, item_id: str, shards: Sequence[ShardPartial]) -> bytes:
    """One work item's partial file: JSON, one section per shard (format in docs/CONTRACTS.md).

    JSON rather than npz: loading a 16-array npz of a 5,000-object item took ~20 ms (zip and
    header parsing per array), this ~1.6 ms, which is what makes 40,000 items a minute's work.
    """
    doc = {
        "format": PARTIAL_FORMAT,
        "version": PARTIAL_VERSION,
        "grid": _GRID,
        "run_id": run_id,
        "item_id": item_id,
        "shards": [_section(s) for s in shards],
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def _read_section(sec: Any) -> ShardPartial:
    """One section, checked (ValueError/KeyError/TypeError on anything malformed)."""
    n, rows, outliers = (int(sec[k]) for k in ("n", "rows", "outliers"))
    with_err, hits = int(sec.get("with_err", 0)), int(sec.get("covered", 0))
    sum_abs_err, sum_sq_err, sum_delta = sums = [float(sec[k]) for k in ("sum_abs_err", "sum_sq_err", "sum_delta")]
    counts_ok = n >= 0 and rows >= n and 0 <= outliers <= n and 0 <= hits <= with_err <= n
    if not counts_ok or not all(map(math.isfinite, sums)):
        raise ValueError(f"n {n}, rows {rows}, outliers {outliers}, sums {sums}, covered {hits} of {with_err}")
    bins = np.cumsum(_unpack_ints(sec["bins"], n, "bins"))
    counts = _unpack_ints(sec["counts"], n, "counts")
    extremes = np.asarray(sec["extremes"], dtype=np.float64).reshape(-1)
    if (
        bins.shape != counts.shape
        or (counts < 1).any()
        or (np.diff(bins) <= 0).any()
        or int(counts.sum()) + extremes.size != n
        or not (np.abs(extremes) >= GRID_LIMIT).all()
        or not np.isfinite(extremes).all()
    ):
        raise ValueError(f"histogram of {int(counts.sum())} + {extremes.size} values for n {n}")
    t = sec["z_true"]
    truth = TruthMoments(n, float(t["mean"]), float(t["m2"]), float(t["min"]), float(t["max"])) if n else TruthMoments()
    partial = MetricPartial(
        n,
        outliers,
        sum_abs_err,
        sum_sq_err,
        sum_delta,
        truth=truth,
        bins=bins,
        counts=counts,
        extremes=np.sort(extremes),
        with_err=with_err,
        covered=hits,
    )
    return ShardPartial(str(sec["key"]), rows, partial)


def partials_from_bytes(data: bytes, source: str = "metric partial") -> PartialFile:
    """Decode and check a partial file; PartialFormatError names `source` and the problem."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PartialFormatError(f"{source}: not a metric partial (not JSON: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != PARTIAL_FORMAT or doc.get("version") != PARTIAL_VERSION:
        got = (doc.get("format"), doc.get("version")) if isinstance(doc, dict) else type(doc).__name__
        raise PartialFormatError(f"{source}: not a metric partial of version {PARTIAL_VERSION} (got {got})")
    if doc.get("grid") != _GRID:
        raise PartialFormatError(f"{source}: delta grid {doc.get('grid')} is not this version's {_GRID}")
    shards: dict[str, ShardPartial] = {}
    sections: list[Any] = doc["shards"] if isinstance(doc.get("shards"), list) else [None]
    for i, sec in enumerate(sections):
        try:
            section = _read_section(sec)
        except (ValueError, KeyError, TypeError, zlib.error, binascii.Error) as exc:
            raise PartialFormatError(f"{source}: section {i} is inconsistent ({type(exc).__name__}: {exc})") from exc
        shards[section.key] = section
    return PartialFile(str(doc.get("run_id")), str(doc.get("item_id")), shards)


def format_metrics(m: dict[str, Any]) -> str:
    """One line of text for CLI output."""
    r2 = "n/a" if m.get("r2") is None else f"{m['r2']:.4f}"
    cover = f" coverage_68={m['coverage_68']:.4f} (of {m['coverage_68_n']} with z_err)" if "coverage_68" in m else ""
    return (
        f"n={m['n']} MAE={m['mae']:.4f} MSE={m['mse']:.5f} bias={m['bias']:.4f} "
        f"precision={m['precision']:.4f} R2={r2} outliers={m['outlier_fraction']:.4f}{cover}"
    )


__all__ = [
    "BIN_WIDTH",
    "DELTA_ERROR_BOUND",
    "METRIC_KEYS",
    "PRECISION_ERROR_BOUND",
    "RAIL_KEYS",
    "DeltaDistribution",
    "MetricAccumulator",
    "MetricPartial",
    "MetricState",
    "MetricsError",
    "PartialFile",
    "PartialFormatError",
    "RailFigures",
    "ShardPartial",
    "TruthMoments",
    "compute_metrics",
    "compute_rail_metrics",
    "coverage",
    "error_bounds",
    "format_metrics",
    "partials_from_bytes",
    "partials_to_bytes",
]
