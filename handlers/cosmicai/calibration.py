"""Calibrate tta8's z_err for a set of weights and record it in their model card.

`calibrate_tta8(engine, calibration, heldout)`: the 8-view predictions of a labelled calibration split
give the scale (the smallest s with |z_true - mean| <= s x spread for COVERAGE_TARGET of its objects);
a second labelled split, never used for the scale, gives the coverage actually measured
(|z_true - z_pred| <= z_err, and z_true within [z_p16, z_p84]); the cost factor is measured on it
too (cosmicai.perf.uncertainty_cost). `record_in_card` writes the result as `uncertainty.tta8` into
MODEL_CARD.json and re-renders MODEL_CARD.md beside it. `cosmicai calibrate-uncertainty` runs both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.uncertainty import (
    COVERAGE_TARGET,
    Tta8Calibration,
    UncertaintyError,
    aggregate,
    calibrate_scale,
    covered,
    predict_views,
)


@dataclass(frozen=True)
class LabelledSplit:
    """The objects of some labelled shards, and how to name them in the card."""

    name: str
    images: np.ndarray
    magnitudes: np.ndarray
    z_true: np.ndarray

    @classmethod
    def read(cls, paths: Sequence[Path | str]) -> LabelledSplit:
        """Every object of the shards at `paths` (UncertaintyError when one is unlabelled)."""
        from cosmicai.shards import read_shard

        shards = [read_shard(p) for p in paths]
        for p, s in zip(paths, shards, strict=True):
            if s.redshift is None:
                raise UncertaintyError(f"{p}: no redshift; calibration needs labelled shards")
        return cls(
            describe(paths),
            np.concatenate([s.images for s in shards]),
            np.concatenate([s.magnitudes for s in shards]),
            np.concatenate([s.redshift for s in shards]),
        )


def describe(paths: Sequence[Path | str]) -> str:
    """The shards' paths, with the generator settings of their folder's dataset.json when there is one."""
    folders = dict.fromkeys(Path(p).parent for p in paths)
    parts = []
    for folder in folders:
        files = [Path(p).name for p in paths if Path(p).parent == folder]
        try:
            origin = " " + json.dumps(json.loads((folder / "dataset.json").read_text()), sort_keys=True)
        except (OSError, ValueError):
            origin = ""
        parts.append(f"{folder}/{{{','.join(files)}}}{origin}")
    return "; ".join(parts)


def calibrate_tta8(
    engine: Any, calibration: LabelledSplit, heldout: LabelledSplit, *, cost: dict[str, Any], command: str
) -> Tta8Calibration:
    """The card's tta8 section: the scale fitted on `calibration`, the coverage measured on `heldout`,
    with `cost` (measure_cost_factor's result) and the `command` that produced it."""
    batch = int(engine.batch_size)
    views = predict_views(engine, calibration.images, calibration.magnitudes, batch)
    scale = calibrate_scale(calibration.z_true, views)
    fit = aggregate(views, scale)
    test_views = predict_views(engine, heldout.images, heldout.magnitudes, batch)
    got = aggregate(test_views, scale)
    t = heldout.z_true.astype(np.float64)
    inside = (got.z_p16 <= t) & (t <= got.z_p84)
    return Tta8Calibration(
        scale=scale,
        target_coverage=COVERAGE_TARGET,
        spread="population standard deviation of the 8 view predictions (rot90 x 0-3, each also mirrored)",
        calibration={
            "split": calibration.name,
            "objects": int(calibration.z_true.size),
            "coverage_68": float(covered(calibration.z_true, fit.z_pred, fit.z_err).mean()),
        },
        heldout={
            "split": heldout.name,
            "objects": int(t.size),
            "coverage_68": float(covered(t, got.z_pred, got.z_err).mean()),
            "coverage_p16_p84": float(inside.mean()),
            "median_z_err": float(np.median(got.z_err)),
            "mae": float(np.mean(np.abs(got.z_pred - t))),
            "mae_single_view": float(np.mean(np.abs(test_views[0] - t))),
        },
        cost_factor=float(cost["cost_factor"]),
        cost=cost
        | {
            "detail": f"CPU seconds of tta8 / none on {cost['objects']} objects, batch {cost['batch_size']}, "
            f"{cost['threads']} thread(s), {cost['backend']} {cost['precision']}, best of "
            f"{cost['rounds']} alternating rounds (wall-time ratio {cost['factor_wall']})"
        },
        backend=str(getattr(engine, "backend", "torch")),
        precision=str(getattr(engine, "precision", "fp32")),
        command=command,
        measured_at=time.strftime("%Y-%m-%d", time.gmtime()),
    )


def record_in_card(card_json: Path, section: Tta8Calibration) -> Path:
    """Write `section` as `uncertainty.tta8` into the card at `card_json` and re-render the MODEL_CARD.md
    beside it (the card's own renderer); returns the .md path."""
    from cosmicai.data.modelcard import write_model_card

    info = json.loads(card_json.read_text())
    info.setdefault("uncertainty", {})["tta8"] = section.model_dump()
    md = card_json.with_suffix(".md")
    write_model_card(md, info)  # writes MODEL_CARD.md and MODEL_CARD.json
    return md
