"""Run reports: fetch a summarized run from S3, merge its catalog, plots and report.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from fanout_s3 import MemoryS3

from cosmicai.catalog import catalog_to_bytes
from cosmicai.metrics import compute_metrics
from cosmicai.payload import RunPayload
from cosmicai.plan import prepare_run
from cosmicai.report import CATALOG_FILE, REPORT_FILE, ReportError, build_report, summary_rows
from cosmicai.runstore import RunLocation
from cosmicai.shards import shard_to_bytes
from cosmicai.summary import summarize_run
from cosmicai.worker import WorkItem, run_item
from tests.conftest import build_shard

LOC = RunLocation("out-bucket", "r/")


class _TinyEngine:
    """A deterministic predictor so the test needs no weights."""

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1) - 0.5).astype(np.float32)


def _run(s3: MemoryS3, run_id: str, corrupt: bool = False) -> dict:
    for i in range(5):
        s3.buckets["data-bucket"][f"in/s{i}.safetensors"] = shard_to_bytes(build_shard(20 + i, seed=i, id_start=100 * i))
    if corrupt:
        s3.buckets["data-bucket"]["in/s2.safetensors"] = b"\x00" * 64
    payload = RunPayload.parse({"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "world_size": 2,
                                "run_id": run_id})
    prepare_run(s3, payload, started_at=1000.0)
    for n, item in enumerate(json.loads(s3.buckets["out-bucket"]["r/plan.json"])):
        run_item(WorkItem.parse(item), s3, _TinyEngine, cold_start=n == 0, init_seconds=0.2, context={"memory_mb": 2048})
    return summarize_run(s3, LOC, run_id, now=1005.0)


def test_report_merges_only_predicted_catalogs_and_draws_plots(tmp_path: Path) -> None:
    s3 = MemoryS3("data-bucket", "out-bucket")
    # a stale catalog of an earlier run with a shard name not in this plan
    s3.put_object(Bucket="out-bucket", Key=LOC.prediction_key("old"),
                  Body=catalog_to_bytes(np.arange(3), np.zeros(3, np.float32), np.zeros(3, np.float32)))
    summary = _run(s3, "run-r", corrupt=True)
    assert summary["status"] == "PARTIAL"
    files, plots, report = build_report(s3, LOC, tmp_path / "run-r", run_id="run-r")

    table = pq.read_table(tmp_path / "run-r" / CATALOG_FILE)
    assert table.num_rows == files.catalog_rows == summary["objects"]["predicted"]
    ids = table.column("object_id").to_numpy()
    assert len(set(ids)) == len(ids) and not (200 <= ids).__and__(ids < 300).any()  # s2 failed, stale file left out
    z_true = table.column("z_true").to_numpy().astype(np.float64)
    z_pred = table.column("z_pred").to_numpy().astype(np.float64)
    assert compute_metrics(z_true, z_pred) == pytest.approx(summary["metrics"])

    assert {p.name for p in plots} == {"z_pred_vs_z_true.png", "residuals.png", "workers.png"}
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in plots)
    text = report.read_text()
    assert report.name == REPORT_FILE and "PARTIAL" in text and "in/s2.safetensors" in text
    assert "![residuals](plots/residuals.png)" in text
    assert json.loads((tmp_path / "run-r" / "summary.json").read_text()) == summary
    assert len(list((tmp_path / "run-r" / "workers").glob("*.json"))) == 2


def test_report_refuses_a_summary_of_another_run(tmp_path: Path) -> None:
    s3 = MemoryS3("data-bucket", "out-bucket")
    _run(s3, "run-old")
    with pytest.raises(ReportError, match="belongs to run run-old"):
        build_report(s3, LOC, tmp_path / "x", run_id="run-new")
    with pytest.raises(ReportError, match="does not exist"):
        build_report(MemoryS3("out-bucket"), LOC, tmp_path / "y")


def test_rerun_report_is_identical(tmp_path: Path) -> None:
    s3 = MemoryS3("data-bucket", "out-bucket")
    _run(s3, "run-a")
    build_report(s3, LOC, tmp_path / "a1", run_id="run-a")
    _run(s3, "run-a")
    build_report(s3, LOC, tmp_path / "a2", run_id="run-a")
    t1, t2 = (pq.read_table(tmp_path / d / CATALOG_FILE) for d in ("a1", "a2"))
    assert t1.equals(t2) and t1.num_rows == sum(20 + i for i in range(5))


def test_summary_rows_without_metrics() -> None:
    rows = dict(summary_rows({"run_id": "x", "status": "FAILED", "objects": {"total": 3, "predicted": 0, "failed": 3},
                              "shards": {"total": 1, "succeeded": 0, "failed": 1}, "metrics": None}))
    assert rows["objects"] == "3 total = 0 predicted + 3 failed"
    assert rows["metrics"].startswith("none") and rows["projected USD (run)"] == "-"
