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
    """Markdown table: one row per metric, one column per named metric dict."""
    names = [k for k, v in columns.items() if v]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines.append("| objects | " + " | ".join(str(columns[n]["n"]) for n in names) + " |")
    for label, key in METRIC_ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(columns[n].get(key)) for n in names) + " |")
    return "\n".join(lines)


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
    if info.get("notes"):
        lines += ["", "## Limitations", *[f"- {n}" for n in info["notes"]]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(info, indent=1, default=str) + "\n")
