"""Model card for trained weights: data, seed, command, validation and test metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

METRIC_ROWS = (
    ("MAE", "mae"),
    ("MSE", "mse"),
    ("bias", "bias"),
    ("precision (NMAD)", "precision"),
    ("R^2", "r2"),
    ("outlier fraction (|dz|/(1+z) > 0.15)", "outlier_fraction"),
)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _best(info: dict[str, Any]) -> str:
    """The kept epoch; 0 is the stage-1 (probe) model when a probe stage ran."""
    if info["best_epoch"] == 0 and info.get("config", {}).get("probe_epochs"):
        return f"0 (the stage-1 model after probe {info['config']['probe_epochs']}; no stage-2 epoch beat it)"
    return str(info["best_epoch"])


def metrics_table(columns: dict[str, dict[str, Any] | None]) -> str:
    """Markdown table: one row per metric, one column per named metric dict (empty ones left out)."""
    present = {k: v for k, v in columns.items() if v}
    lines = ["| metric | " + " | ".join(present) + " |", "|---|" + "---|" * len(present)]
    lines.append("| objects | " + " | ".join(str(m["n"]) for m in present.values()) + " |")
    for label, key in METRIC_ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(m.get(key)) for m in present.values()) + " |")
    return "\n".join(lines)


CARD_FILE = "MODEL_CARD.json"
PACKAGED_CARD = Path(__file__).resolve().parents[1] / "assets" / CARD_FILE


def find_model_card(weights: Path | str) -> tuple[Path, dict[str, Any]] | None:
    """(path, fields) of the model card of these weights: `MODEL_CARD.json` beside them, else the one
    packaged in cosmicai/assets (images copy the weights elsewhere, renamed), whichever records their
    sha256; None when neither does."""
    from cosmicai.weightsfile import weights_sha256

    weights = Path(weights)
    sha = weights_sha256(weights)
    for where in dict.fromkeys([weights.parent / CARD_FILE, PACKAGED_CARD]):
        try:
            doc = json.loads(where.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("sha256") == sha:
            return where, doc
    return None


def uncertainty_lines(info: dict[str, Any]) -> list[str]:
    """The card's "Uncertainty (tta8)" section ([] when the weights are not calibrated)."""
    tta = (info.get("uncertainty") or {}).get("tta8")
    if not tta:
        return []
    cal, held, cost = tta["calibration"], tta["heldout"], tta.get("cost") or {}
    return [
        "",
        "## Uncertainty (tta8)",
        "`uncertainty: \"tta8\"` predicts each object over the 8 rotations/flips of its cutout: z_pred is their mean, "
        f"z_err = {tta['scale']:.4g} x their standard deviation, the factor fitted so that |z_true - z_pred| <= z_err "
        f"for {tta['target_coverage']:.2%} of the calibration split's objects.",
        f"- calibrated on: {cal['split']} ({cal['objects']} objects; coverage there {cal['coverage_68']:.4f})",
        f"- measured on the held-out split: {held['split']} ({held['objects']} objects): coverage of z_err "
        f"**{held['coverage_68']:.4f}**, of [z_p16, z_p84] {held['coverage_p16_p84']:.4f}; median z_err "
        f"{held['median_z_err']:.4g}; MAE of the 8-view mean {held['mae']:.4f} "
        f"(single view {held['mae_single_view']:.4f})",
        f"- cost: {tta['cost_factor']:.2f}x the compute of no uncertainty ({cost.get('detail', 'measured')})",
        f"- command: `{tta['command']}` ({tta['backend']} {tta['precision']}, measured {tta['measured_at']})",
    ]


def write_model_card(path: Path | str, info: dict[str, Any]) -> None:
    """Write MODEL_CARD.md (human) and a sibling .json (all fields) describing trained weights."""
    path = Path(path)
    hist = info.get("history", [])
    lines = [
        f"# Model card: {info['weights_name']}",
        "",
        "AstroMAE (ViT + Inception + magnitude MLP, 15.8 M parameters) fine-tuned by "
        "`cosmicai train` on synthetic SDSS-like galaxies from `cosmicai make-dataset`.",
        "",
        "## Files",
        f"- weights: `{info['weights_name']}` ({info['weights_bytes']:,} bytes, stored {info['stored_dtype']}, loaded as fp32)",
        f"- sha256: `{info['sha256']}`",
        "",
        "## Data",
    ]
    for split, d in info["data"].items():
        lines.append(f"- {split}: {d}")
    lines += [
        "",
        "## Training",
        f"- command: `{info['command']}`",
        f"- device: {info['device']}; {info['seconds'] / 60:.1f} min; trainable parameters {info['trainable_parameters']:,}",
        f"- settings: `{json.dumps(info['config'], sort_keys=True)}`",
        f"- epochs run: {len(hist)}; best epoch {_best(info)}; stop reason: {info['stopped']}",
        "",
        "## Metrics",
        "Reference formulas (delta = (z_pred - z) / (1 + z)); precision is the NMAD. "
        "The colour-kNN baseline is a 15-nearest-neighbour regressor on the four colours "
        "(u-g, g-r, r-i, i-z) fitted on the training split; the mean baseline predicts the "
        "training split's mean redshift for every object (no signal).",
        "",
        metrics_table({
            "validation": info.get("val_metrics"), "test": info.get("test_metrics"),
            "test, colour kNN": info.get("baseline"), "test, predict the mean": info.get("mean_baseline"),
        }),
        "",
        "## Per-epoch history",
        "| epoch | train loss | val MAE | val NMAD | val R^2 | train obj/s | elapsed s |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in hist:
        lines.append(
            f"| {e['epoch']} | {_fmt(e['train_loss'])} | {_fmt(e['val_mae'])} | {_fmt(e['val_precision'])} | "
            f"{_fmt(e['val_r2'])} | {e.get('train_objects_per_s')} | {e['seconds']} |"
        )
    lines += uncertainty_lines(info)
    if info.get("notes"):
        lines += ["", "## Limitations", *[f"- {n}" for n in info["notes"]]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(info, indent=1, default=str) + "\n")
