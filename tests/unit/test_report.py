"""Run reports: fetch a summarized run from S3, merge its catalog (below the download limit), plots and report.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosmicai.catalog import catalog_to_bytes
from cosmicai.metrics import compute_metrics
from cosmicai.payload import RunPayload
from cosmicai.plan import prepare_run
from cosmicai.report import (
    CATALOG_FILE,
    DEFAULT_CATALOG_LIMIT_BYTES,
    REPORT_FILE,
    SAMPLE_FILE,
    CatalogListing,
    ReportError,
    build_report,
    fetch_run,
    in_place_snippet,
    list_catalogs,
    plot_points,
    sample_keys,
    should_download,
    summary_rows,
)
from cosmicai.runstore import RunLocation
from cosmicai.shards import shard_to_bytes
from cosmicai.summary import summarize_run
from cosmicai.worker import WorkItem, run_item
from fanout_s3 import MemoryS3
from tests.conftest import build_shard

LOC = RunLocation("out-bucket", "r/")


class _TinyEngine:
    """A deterministic predictor so the test needs no weights."""

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1) - 0.5).astype(np.float32)


def _run(s3: MemoryS3, run_id: str, corrupt: bool = False) -> dict:
    for i in range(5):
        s3.buckets["data-bucket"][f"in/s{i}.safetensors"] = shard_to_bytes(
            build_shard(20 + i, seed=i, id_start=100 * i)
        )
    if corrupt:
        s3.buckets["data-bucket"]["in/s2.safetensors"] = b"\x00" * 64
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "world_size": 2, "run_id": run_id}
    )
    prepare_run(s3, payload, started_at=1000.0)
    for n, item in enumerate(json.loads(s3.buckets["out-bucket"]["r/plan.json"])):
        run_item(
            WorkItem.parse(item), s3, _TinyEngine, cold_start=n == 0, init_seconds=0.2, context={"memory_mb": 2048}
        )
    return summarize_run(s3, LOC, run_id, now=1005.0)


def test_report_merges_only_predicted_catalogs_and_draws_plots(tmp_path: Path) -> None:
    s3 = MemoryS3("data-bucket", "out-bucket")
    # a stale catalog of an earlier run with a shard name not in this plan
    s3.put_object(
        Bucket="out-bucket",
        Key=LOC.prediction_key("old"),
        Body=catalog_to_bytes(np.arange(3), np.zeros(3, np.float32), np.zeros(3, np.float32)),
    )
    summary = _run(s3, "run-r", corrupt=True)
    assert summary["status"] == "PARTIAL"
    files, plots, report = build_report(s3, LOC, tmp_path / "run-r", run_id="run-r")

    table = pq.read_table(tmp_path / "run-r" / CATALOG_FILE)
    assert table.num_rows == files.catalog_rows == summary["objects"]["predicted"]
    ids = table.column("object_id").to_numpy()
    assert len(set(ids)) == len(ids) and not (200 <= ids).__and__(ids < 300).any()  # s2 failed, stale file left out
    z_true = table.column("z_true").to_numpy().astype(np.float64)
    z_pred = table.column("z_pred").to_numpy().astype(np.float64)
    # Summarize may take the median-based figures from a mergeable digest, within 1e-6 in delta
    # (x 1.48 for the precision): exact here up to that.
    reference = {k: v for k, v in summary["metrics"].items() if k != "rail"}  # RAIL's: tests/unit/test_rail_metrics.py
    assert compute_metrics(z_true, z_pred) == pytest.approx(reference, rel=1e-6, abs=2e-6)

    assert {p.name for p in plots} == {"z_pred_vs_z_true.png", "residuals.png", "workers.png"}
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in plots)
    text = report.read_text()
    assert report.name == REPORT_FILE and "PARTIAL" in text and "in/s2.safetensors" in text
    assert "![residuals](plots/residuals.png)" in text
    assert json.loads((tmp_path / "run-r" / "summary.json").read_text()) == summary
    assert len(list((tmp_path / "run-r" / "workers").glob("*.json"))) == 2


def test_report_reads_every_failure_from_the_failures_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """summary.json lists the first failures only: the report takes all of them from summary/failures.jsonl
    (else the failed shard would count as predicted and its absent catalog fail the report)."""
    import cosmicai.summary as summary_module

    monkeypatch.setattr(summary_module, "FAILURES_LISTED", 0)
    s3 = MemoryS3("data-bucket", "out-bucket")
    summary = _run(s3, "run-f", corrupt=True)
    assert summary["shards"]["failed"] == 1 and summary["shards"]["failures"] == []
    files, _, report = build_report(s3, LOC, tmp_path / "run-f", run_id="run-f")
    assert [f["shard"] for f in files.failures] == ["in/s2.safetensors"] and "in/s2.safetensors" in report.read_text()
    assert files.catalog_rows == summary["objects"]["predicted"]
    local = tmp_path / "run-f" / "summary"
    assert (local / "failures.jsonl").read_text().count("\n") == 1
    assert [json.loads(x)["item_id"] for x in (local / "workers.jsonl").read_text().splitlines()] == [
        "item-00000",
        "item-00001",
    ]


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
    rows = dict(
        summary_rows(
            {
                "run_id": "x",
                "status": "FAILED",
                "objects": {"total": 3, "predicted": 0, "failed": 3},
                "shards": {"total": 1, "succeeded": 0, "failed": 1},
                "metrics": None,
            }
        )
    )
    assert rows["objects"] == "3 total = 0 predicted + 3 failed"
    assert rows["metrics"].startswith("none") and rows["projected USD (run)"] == "-"


# --- the catalog download limit ---


def test_should_download_is_at_or_below_the_limit() -> None:
    assert should_download(0, 0) and should_download(2_000_000_000, DEFAULT_CATALOG_LIMIT_BYTES)
    assert not should_download(2_000_000_001, DEFAULT_CATALOG_LIMIT_BYTES)
    assert should_download(10**15, None)  # no limit


def test_listed_sizes_decide_before_anything_is_downloaded(tmp_path: Path) -> None:
    s3 = MemoryS3("data-bucket", "out-bucket")
    summary = _run(s3, "run-l")
    keys = sorted(k for k in s3.buckets["out-bucket"] if k.startswith("r/predictions/"))
    listing = list_catalogs(s3, LOC, keys)
    assert (
        listing.bytes == sum(len(s3.buckets["out-bucket"][k]) for k in keys)
        and listing.uri == "s3://out-bucket/r/predictions/"
    )
    s3.calls.clear()
    files = fetch_run(s3, LOC, tmp_path / "l", "run-l", catalog_limit=listing.bytes - 1)
    assert not [c for c in s3.calls if c.startswith("get r/predictions/") and c.split()[1] not in sample_keys(listing)]
    ip = files.in_place
    assert files.catalog_path is None and ip is not None and not (tmp_path / "l" / CATALOG_FILE).exists()
    assert (ip.uri, ip.bytes, ip.files, ip.limit) == (
        "s3://out-bucket/r/predictions/",
        listing.bytes,
        5,
        listing.bytes - 1,
    )
    assert (
        files.sample_path == tmp_path / "l" / SAMPLE_FILE
        and pq.read_table(files.sample_path).num_rows == ip.sample_rows > 0
    )
    at_limit = fetch_run(s3, LOC, tmp_path / "l", "run-l", catalog_limit=listing.bytes)
    assert at_limit.in_place is None and at_limit.catalog_rows == summary["objects"]["predicted"]
    assert not (tmp_path / "l" / SAMPLE_FILE).exists()  # the earlier sample does not linger beside the whole catalog


def test_report_above_the_limit_says_how_to_query_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3 = MemoryS3("data-bucket", "out-bucket")
    _run(s3, "run-big")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / CATALOG_FILE).write_bytes(b"an earlier download")
    files, plots, report = build_report(s3, LOC, tmp_path / "big", run_id="run-big", catalog_limit=1000)
    assert not (tmp_path / "big" / CATALOG_FILE).exists()  # a stale download must not pass for this run's catalog
    assert {p.name for p in plots} == {"z_pred_vs_z_true.png", "residuals.png", "workers.png"}  # from the sample
    text = report.read_text()
    assert (
        "## Catalog in S3" in text
        and "s3://out-bucket/r/predictions/" in text
        and "over the 1.0 kB download limit" in text
    )
    assert "ds.dataset('out-bucket/r/predictions/', format=\"parquet\", filesystem=s3)" in text
    assert "endpoint_override='127.0.0.1:4566', scheme='http'" in text


def test_sample_keys_are_spread_and_within_budget() -> None:
    keys = [f"p/{i:03d}.parquet" for i in range(100)]
    listing = CatalogListing("s3://b/p/", keys, dict.fromkeys(keys, 10))
    picked = sample_keys(listing, budget_bytes=100)
    assert picked == keys[::10]
    assert sample_keys(listing, budget_bytes=1) == keys[:1] and sample_keys(listing, 10**9) == keys
    assert sample_keys(CatalogListing("s3://b/p/", [], {}), 100) == []


def test_missing_catalog_is_a_named_report_error() -> None:
    s3 = MemoryS3("data-bucket", "out-bucket")
    _run(s3, "run-m")
    del s3.buckets["out-bucket"]["r/predictions/s3.parquet"]
    with pytest.raises(
        ReportError,
        match=r"1 catalog\(s\) of predicted shards are not in s3://out-bucket/r/predictions/, "
        r"e.g. r/predictions/s3.parquet",
    ):
        list_catalogs(s3, LOC, [LOC.prediction_key(f"s{i}") for i in range(5)])


def test_merged_catalog_streams_into_few_row_groups_and_plot_points_stride(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cosmicai.report as rep

    monkeypatch.setattr(rep, "ROW_GROUP_ROWS", 50)
    s3 = MemoryS3("data-bucket", "out-bucket")
    _run(s3, "run-g")
    files = fetch_run(s3, LOC, tmp_path / "g", "run-g", catalog_limit=None)
    meta = pq.ParquetFile(files.catalog_path).metadata
    assert meta.num_rows == 110 and meta.num_row_groups == 3  # 63 rows as 50 + 13, then 47: not one group per shard
    assert pq.read_table(files.catalog_path).column("object_id").to_pylist() == sorted(
        100 * i + j for i in range(5) for j in range(20 + i)
    )
    z_true, z_pred = plot_points(files.catalog_path, max_points=30)
    table = pq.read_table(files.catalog_path)
    assert len(z_true) == 28 and np.array_equal(z_pred, table.column("z_pred").to_numpy()[::4].astype(np.float64))


def test_in_place_snippet_for_aws_and_the_local_cloud() -> None:
    aws = in_place_snippet("s3://b/runs/x/predictions/", region="eu-west-1")
    assert "fs.S3FileSystem(region='eu-west-1')" in aws and "'b/runs/x/predictions/'" in aws and "endpoint" not in aws
    local = in_place_snippet("s3://b/p/predictions/", "http://localhost:4566/")
    assert "fs.S3FileSystem(endpoint_override='localhost:4566', scheme='http')" in local
    compile(local, "<snippet>", "exec")
