"""The demo's verdict line is read from the run's real summary.json shape."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("demo_run", Path(__file__).parents[2] / "scripts/demo/run.py")
demo = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = demo  # dataclasses look their module up by name
_SPEC.loader.exec_module(demo)


def _write_summary(run_dir: Path, total: int, predicted: int, failed: int, mae: float | None) -> None:
    run_dir.mkdir(parents=True)
    summary = {
        "objects": {"total": total, "predicted": predicted, "failed": failed},
        "metrics": {"mae": mae} if mae is not None else None,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_verdict_succeeded_when_every_object_is_predicted(tmp_path: Path) -> None:
    _write_summary(tmp_path / "r", 4096, 4096, 0, 0.0213)
    line = demo.verdict(tmp_path / "r")
    assert line.startswith("demo: SUCCEEDED: 4,096/4,096 objects predicted, 0 failed, MAE 0.0213")


def test_verdict_incomplete_when_objects_failed(tmp_path: Path) -> None:
    _write_summary(tmp_path / "r", 10, 8, 2, None)
    assert demo.verdict(tmp_path / "r").startswith("demo: INCOMPLETE: 8/10 objects predicted, 2 failed;")


def test_verdict_names_the_missing_summary(tmp_path: Path) -> None:
    with pytest.raises(demo.DemoError, match="summary.json is missing"):
        demo.verdict(tmp_path)


def test_settings_require_the_deployed_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_URI", "RESULTS_URI", "STATE_MACHINE_ARN"):
        monkeypatch.delenv(f"COSMICAI_TF_{name}", raising=False)
    with pytest.raises(demo.DemoError, match="run `make deploy` first"):
        demo.settings_from_args([])
