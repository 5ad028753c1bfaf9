"""Per-object redshift uncertainty by test-time augmentation (`uncertainty: "tta8"`, opt-in).

A galaxy's redshift does not change with the orientation of its cutout, so the model is run on the
8 rotations/flips of each cutout (the dihedral group of the square: `torch.rot90` by 0-3 quarter
turns, each also mirrored, as `cosmicai train` augments) and the 8 predictions are summarised:

- `z_pred` = their mean;
- `z_err` = `scale` x their spread (population standard deviation), where `scale` is calibrated on
  a labelled held-out split so that |z_true - z_pred| <= z_err holds for COVERAGE_TARGET (68.27%,
  one Gaussian sigma) of its objects, and stored in the weights' model card
  (`MODEL_CARD.json` `uncertainty.tta8`, written by `cosmicai calibrate-uncertainty`);
- `z_p16`, `z_p84` = z_pred + scale x (16th / 84th percentile of the 8 - their mean): the same
  calibration applied to the ensemble's own percentiles, so an asymmetric spread stays asymmetric.

The 8 views go through the ordinary `Engine` (either backend, any precision) in calls of at most
`engine.batch_size` images, i.e. batch_size // 8 objects a call: memory per call is what it is
without uncertainty, and the compute is ~8x (the factor measured is in the model card).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosmicai.contracts import UNCERTAINTY_MODES as UNCERTAINTY_MODES  # the modes, defined once

VIEWS = 8
# P(|x| <= sigma) for a normal x: the coverage a 1-sigma error bar promises.
COVERAGE_TARGET = 0.6827
PERCENTILES = (16.0, 84.0)
CARD_SECTION = "uncertainty"
CALIBRATE_COMMAND = "cosmicai calibrate-uncertainty"


class UncertaintyError(ValueError):
    """Bad uncertainty input or configuration (message says which and why)."""


class UncertaintyNotCalibratedError(UncertaintyError):
    """tta8 asked for with weights whose model card has no tta8 calibration."""

    code = "uncertainty_uncalibrated"


def dihedral_views(images: np.ndarray) -> np.ndarray:
    """The 8 dihedral transforms of each (C, H, W) image of `images` (N, C, H, W), stacked view-major
    as (8, N, C, H, W): view k is `rot90` by k % 4 quarter turns over (H, W), mirrored along W if k >= 4
    (the order `cosmicai.data.train` augments in)."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise UncertaintyError(f"images must have shape (N, C, S, S), got {x.shape}")
    views = [np.rot90(x, k % 4, axes=(2, 3)) for k in range(4)]
    views += [np.flip(v, axis=3) for v in views]
    return np.stack(views)


@dataclass(frozen=True)
class UncertainPrediction:
    """Per-object tta8 outputs, float32 (N,) each: the catalog's z_pred, z_err, z_p16, z_p84."""

    z_pred: np.ndarray
    z_err: np.ndarray
    z_p16: np.ndarray
    z_p84: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The uncertainty columns of a catalog (z_pred is its own)."""
        return {"z_err": self.z_err, "z_p16": self.z_p16, "z_p84": self.z_p84}


def spread(views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, population standard deviation) over axis 0 of (8, N) predictions, float64."""
    v = np.asarray(views, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != VIEWS:
        raise UncertaintyError(f"view predictions must have shape ({VIEWS}, N), got {v.shape}")
    return v.mean(axis=0), v.std(axis=0)


def aggregate(views: np.ndarray, scale: float) -> UncertainPrediction:
    """Mean, calibrated error and calibrated 16/84 percentiles of (8, N) view predictions."""
    if not np.isfinite(scale) or scale <= 0:
        raise UncertaintyError(f"scale must be a positive number, got {scale}")
    mean, sd = spread(views)
    p16, p84 = np.percentile(np.asarray(views, dtype=np.float64), PERCENTILES, axis=0)
    f32 = np.float32
    return UncertainPrediction(
        mean.astype(f32),
        (scale * sd).astype(f32),
        (mean + scale * (p16 - mean)).astype(f32),
        (mean + scale * (p84 - mean)).astype(f32),
    )


def calibrate_scale(z_true: Any, views: np.ndarray, target: float = COVERAGE_TARGET) -> float:
    """The smallest scale s with |z_true - mean| <= s x spread for at least `target` of the objects."""
    t = np.asarray(z_true, dtype=np.float64).reshape(-1)
    mean, sd = spread(views)
    if t.shape != mean.shape or t.size == 0:
        raise UncertaintyError(f"{t.size} true redshifts for {mean.size} objects")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sd > 0, np.abs(t - mean) / sd, np.where(t == mean, 0.0, np.inf))
    k = max(0, math.ceil(target * t.size) - 1)  # the k+1 smallest ratios are the objects covered
    # 1e-12 up: |z_true - mean| / spread x spread can round below |z_true - mean| and drop that object
    scale = float(np.partition(ratio, k)[k]) * (1 + 1e-12)
    if not np.isfinite(scale) or scale <= 0:
        raise UncertaintyError(
            f"no finite calibration: the 8 views agree exactly for over {1 - target:.0%} of the objects"
        )
    return scale


def covered(z_true: Any, z_pred: Any, z_err: Any) -> np.ndarray:
    """Which objects have |z_true - z_pred| <= z_err (bool (N,)), in float64."""
    t, p, e = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (z_true, z_pred, z_err))
    if not t.shape == p.shape == e.shape:
        raise UncertaintyError(f"z_true, z_pred, z_err lengths differ: {t.size}, {p.size}, {e.size}")
    return np.abs(t - p) <= e


class Predictor(Protocol):
    """What tta8 needs of an engine (cosmicai.engine.Engine)."""

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray: ...


def predict_views(engine: Predictor, images: np.ndarray, magnitudes: np.ndarray, images_per_call: int) -> np.ndarray:
    """(8, N) float32 predictions of the 8 views of each object, in engine calls of <= `images_per_call`
    images (the engine's batch size: one batch a call, the memory of a call without uncertainty)."""
    images = np.asarray(images)
    magnitudes = np.asarray(magnitudes)
    n = images.shape[0]
    out = np.empty((VIEWS, n), dtype=np.float32)
    per_call = max(1, images_per_call // VIEWS)  # objects a call
    for s in range(0, n, per_call):
        e = min(n, s + per_call)
        views = dihedral_views(images[s:e]).reshape(VIEWS * (e - s), *images.shape[1:])
        z = np.asarray(engine.predict(views, np.tile(magnitudes[s:e], (VIEWS, 1))), dtype=np.float32)
        out[:, s:e] = z.reshape(VIEWS, e - s)
    return out


class Tta8Calibration(BaseModel):
    """The tta8 section of a model card (`MODEL_CARD.json` `uncertainty.tta8`)."""

    model_config = ConfigDict(extra="forbid")
    scale: float = Field(gt=0, description="z_err = scale x population std of the 8 view predictions")
    target_coverage: float = Field(gt=0, lt=1)
    calibration: dict[str, Any] = Field(description="the split the scale was fitted on, its objects and coverage")
    heldout: dict[str, Any] = Field(
        description="the split coverage was measured on: objects, coverage_68, coverage_p16_p84"
    )
    cost_factor: float | None = Field(
        None, gt=0, description="measured tta8 / none compute time, same engine and batch"
    )
    # How it was measured (cosmicai calibrate-uncertainty writes them; the worker reads only `scale`).
    spread: str | None = None
    cost: dict[str, Any] | None = Field(None, description="perf.uncertainty_cost.measure_cost_factor's result")
    backend: str | None = None
    precision: str | None = None
    command: str | None = None
    measured_at: str | None = None


def card_calibration(card: Mapping[str, Any] | None, source: str) -> Tta8Calibration:
    """The tta8 calibration of a model card; UncertaintyNotCalibratedError naming `source` when absent or malformed."""
    section = ((card or {}).get(CARD_SECTION) or {}).get("tta8") if isinstance(card, Mapping) else None
    if not isinstance(section, Mapping):
        raise UncertaintyNotCalibratedError(
            f"uncertainty tta8 needs a calibrated scale in the weights' model card; {source} has none. Run "
            f"`{CALIBRATE_COMMAND} --weights W --calibration VAL_SHARDS --heldout TEST_SHARDS` (docs/inference.md)"
        )
    try:
        return Tta8Calibration.model_validate(dict(section))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UncertaintyNotCalibratedError(
            f"{source}: uncertainty.tta8.{'.'.join(map(str, err['loc']))}: {err['msg']}; re-run `{CALIBRATE_COMMAND}`"
        ) from None


def calibration_for(weights: Path | str) -> Tta8Calibration:
    """The tta8 calibration in the model card of these weights (the card beside them, else the packaged
    one, whichever records their sha256); UncertaintyNotCalibratedError when there is none."""
    from cosmicai.data.modelcard import find_model_card

    found = find_model_card(weights)
    if found is None:
        raise UncertaintyNotCalibratedError(
            f"uncertainty tta8 needs a calibrated scale in the weights' model card, and no MODEL_CARD.json beside "
            f"{weights} or packaged with cosmicai records their sha256; run `{CALIBRATE_COMMAND}` for them"
        )
    return card_calibration(found[1], str(found[0]))


class Tta8Predictor:
    """An engine predicting with tta8: `.predict(images, magnitudes) -> UncertainPrediction`; the engine
    sees calls of at most `images_per_call` images (its batch size), batch_size // 8 objects each."""

    def __init__(self, engine: Predictor, calibration: Tta8Calibration, images_per_call: int) -> None:
        if images_per_call < 1:
            raise UncertaintyError(f"images_per_call must be >= 1, got {images_per_call}")
        self.engine = engine
        self.calibration = calibration
        self.images_per_call = images_per_call

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> UncertainPrediction:
        """The 8 views of every object through the engine, aggregated with the card's scale."""
        return aggregate(predict_views(self.engine, images, magnitudes, self.images_per_call), self.calibration.scale)


def cost_factor(mode: str) -> tuple[float, str]:
    """(compute factor over mode none, where it comes from): 1 for none; for tta8 the factor measured
    on the packaged weights' model card when recorded there, else VIEWS (8 forward passes an object)."""
    if mode == "none":
        return 1.0, "no uncertainty"
    if mode != "tta8":
        raise UncertaintyError(f"uncertainty {mode!r} unknown; choose one of {', '.join(UNCERTAINTY_MODES)}")
    card = Path(__file__).parent / "assets" / "MODEL_CARD.json"
    try:
        measured = json.loads(card.read_text())[CARD_SECTION]["tta8"]["cost_factor"]
        return float(measured), f"measured, {card.name} uncertainty.tta8.cost_factor"
    except (OSError, ValueError, KeyError, TypeError):
        return float(VIEWS), f"nominal: {VIEWS} forward passes an object (no measured factor in {card.name})"


__all__ = [
    "COVERAGE_TARGET",
    "UNCERTAINTY_MODES",
    "VIEWS",
    "Tta8Calibration",
    "Tta8Predictor",
    "UncertainPrediction",
    "UncertaintyError",
    "UncertaintyNotCalibratedError",
    "aggregate",
    "calibrate_scale",
    "calibration_for",
    "card_calibration",
    "cost_factor",
    "covered",
    "dihedral_views",
    "predict_views",
    "spread",
]
