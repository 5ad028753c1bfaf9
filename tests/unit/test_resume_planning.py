"""Resume on the S3 double answering as AWS answers our roles: a PARTIAL run (a truncated shard and a
crashed item), the inputs mended, only the unfinished shards re-run, one SUCCEEDED summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosmicai.contracts import ShardOutcome
from cosmicai.payload import PayloadError, RunPayload
from cosmicai.plan import prepare_run
from cosmicai.resume import prepare_resume, unfinished_item
from cosmicai.runstore import RunLocation
from cosmicai.shards import shard_to_bytes
from cosmicai.summary import summarize_run
from cosmicai.worker import WorkItem, failure_report, run_item, with_previous_report
from fanout_s3 import MemoryS3
from tests.conftest import build_shard

LOC = RunLocation("out-bucket", "r/")
SHARDS = [build_shard(6 + i, seed=i, id_start=100 * i) for i in range(6)]


class _Engine:
    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1) - 0.5).astype(np.float32)


def _partial_run() -> MemoryS3:
    """Items of 2 shards: item-1 has a truncated shard, item-2's worker crashed (Catch path)."""
    s3 = MemoryS3("data-bucket", "out-bucket", list_prefixes=("in/", "r/"))
    for i, shard in enumerate(SHARDS):
        s3.buckets["data-bucket"][f"in/s{i}.safetensors"] = shard_to_bytes(shard)
    s3.buckets["data-bucket"]["in/s3.safetensors"] = s3.buckets["data-bucket"]["in/s3.safetensors"][:-500]
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "run-r", "shards_per_worker": 2}
    )
    prepare_run(s3, payload, started_at=1000.0)
    plan = json.loads(s3.buckets["out-bucket"]["r/plan.json"])
    for item in plan[:2]:
        run_item(WorkItem.parse(item), s3, _Engine, cold_start=False, init_seconds=0.0)
    s3.put_object(
        Bucket="out-bucket",
        Key=LOC.worker_key(plan[2]["item_id"]),
        Body=json.dumps(failure_report(plan[2], "Sandbox.Timedout", "timed out").wire()).encode(),
    )
    assert summarize_run(s3, LOC, "run-r", now=1010.0)["status"] == "PARTIAL"
    return s3


def test_resume_reruns_only_unfinished_shards_and_ends_succeeded() -> None:
    s3 = _partial_run()
    s3.buckets["data-bucket"]["in/s3.safetensors"] = shard_to_bytes(SHARDS[3])  # mended
    catalogs_before = {k: v for k, v in s3.buckets["out-bucket"].items() if k.startswith("r/predictions/")}
    plan_before = s3.buckets["out-bucket"]["r/plan.json"]
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "run-r", "resume": True}
    )
    result = prepare_resume(s3, payload, started_at=2000.0).model_dump(mode="json")
    items = json.loads(s3.buckets["out-bucket"]["r/resume.json"])
    assert result["plan"] == {"bucket": "out-bucket", "key": "r/resume.json"} and result["items"] == 2
    assert [[s["key"] for s in i["shards"]] for i in items] == [
        ["in/s3.safetensors"],
        ["in/s4.safetensors", "in/s5.safetensors"],
    ]
    assert items[0]["shards"][0]["count"] == SHARDS[3].n, "counts are read afresh from the mended input"
    assert s3.buckets["out-bucket"]["r/plan.json"] == plan_before
    s3.calls.clear()
    for item in items:
        run_item(WorkItem.parse(item), s3, _Engine, cold_start=False, init_seconds=0.0)
    assert not [c for c in s3.calls if c.startswith("put ") and c[4:] in catalogs_before], (
        "no succeeded catalog rewritten"
    )
    summary = summarize_run(s3, LOC, "run-r", now=2010.0)
    total = sum(s.n for s in SHARDS)
    assert summary["status"] == "SUCCEEDED"
    assert (summary["objects"]["total"], summary["objects"]["predicted"], summary["metrics"]["n"]) == (
        total,
        total,
        total,
    )
    report = json.loads(s3.buckets["out-bucket"][LOC.worker_key(items[0]["item_id"])])
    assert [s["key"] for s in report["shards"]] == ["in/s2.safetensors", "in/s3.safetensors"] and report[
        "status"
    ] == "succeeded"


def test_nothing_unfinished_gives_no_items() -> None:
    common = {
        "run_id": "r",
        "input_bucket": "data-bucket",
        "output": "s3://out-bucket/r/",
        "batch_size": 8,
        "precision": "fp32",
    }
    shards = [{"key": "k1", "name": "n1", "bytes": 1, "count": 2}, {"key": "k2", "name": "n2", "bytes": 1, "count": 3}]
    item = WorkItem.parse(common | {"item_id": "a", "objects": 5, "shards": shards})

    def outcome(key: str, status: str) -> ShardOutcome:
        return ShardOutcome(item_id="a", key=key, name=key, status=status, objects=1)

    outcomes = [outcome("k1", "succeeded"), outcome("k2", "succeeded")]
    assert unfinished_item(item, outcomes) is None
    todo = unfinished_item(item, outcomes[:1] + [outcome("k2", "failed")])
    assert todo is not None and todo.wire() == common | {
        "item_id": "a",
        "uncertainty": "none",
        "objects": None,
        "shards": shards[1:],
        "resume": True,
    }


def test_resume_of_an_unknown_run_is_a_payload_error() -> None:
    s3 = _partial_run()
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "other", "resume": True}
    )
    with pytest.raises(PayloadError, match="holds run run-r, not other"):
        prepare_resume(s3, payload, started_at=0.0)


def test_a_crashed_resumed_item_keeps_what_it_had_predicted() -> None:
    s3 = _partial_run()
    plan = json.loads(s3.buckets["out-bucket"]["r/plan.json"])
    item = plan[1] | {"shards": plan[1]["shards"][1:], "resume": True}  # s3 again; s2 had succeeded
    merged = with_previous_report(s3, LOC, failure_report(item, "Sandbox.Timedout", "again")).wire()
    by_key = {s["key"]: s["status"] for s in merged["shards"]}
    assert by_key == {"in/s2.safetensors": "succeeded", "in/s3.safetensors": "failed"} and merged["status"] == "partial"
