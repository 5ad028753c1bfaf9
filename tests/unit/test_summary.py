"""Summary accounting: every planned shard once, missing results, metrics merged from partials within their bound."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cosmicai
from cosmicai.catalog import catalog_provenance, read_catalog
from cosmicai.contracts import WorkerReport
from cosmicai.metrics import compute_metrics
from cosmicai.payload import RunPayload
from cosmicai.plan import prepare_run
from cosmicai.runstore import RunLocation
from cosmicai.shards import shard_to_bytes
from cosmicai.summary import (
    MISSING,
    SummaryError,
    account_item,
    parse_cause,
    stream_map,
    summarize_run,
)
from cosmicai.summary_tally import PROVENANCE_FIELDS, ProvenanceTally
from cosmicai.weightsfile import default_weights_path, weights_sha256
from cosmicai.worker import WorkItem, failure_report, run_item, worker_provenance
from fanout_s3 import MemoryS3
from metric_agreement import assert_metrics_agree
from tests.conftest import build_shard

LOC = RunLocation("out-bucket", "r/")


def _plan() -> list[WorkItem]:
    common = {
        "run_id": "r",
        "input_bucket": "data-bucket",
        "output": "s3://out-bucket/r/",
        "batch_size": 8,
        "precision": "fp32",
    }
    items = [
        {
            "item_id": "item-0",
            "shards": [
                {"key": "in/a.safetensors", "name": "a", "bytes": 1, "count": 4},
                {"key": "in/b.safetensors", "name": "b", "bytes": 1, "count": 5},
            ],
        },
        {"item_id": "item-1", "shards": [{"key": "in/c.safetensors", "name": "c", "bytes": 1, "count": 6}]},
        {"item_id": "item-2", "shards": [{"key": "in/d.safetensors", "name": "d", "bytes": 1, "count": None}]},
    ]
    return [WorkItem.parse(common | item) for item in items]


def test_account_lists_every_planned_shard_once_with_missing_results() -> None:
    reports = {
        "item-0": {
            "shards": [
                {"key": "in/a.safetensors", "status": "succeeded", "objects": 4},
                {
                    "key": "in/b.safetensors",
                    "status": "failed",
                    "error": "non_finite",
                    "message": "b: NaN",
                    "objects": 5,
                },
            ]
        },
        "item-1": {"shards": [{"key": "in/c.safetensors", "status": "succeeded", "objects": 6}]},
        # item-2 never reported
    }
    catalogs = {LOC.prediction_key("a")}  # c's catalog is missing although reported
    parsed = {k: WorkerReport.model_validate(r | {"item_id": k, "status": "partial"}) for k, r in reports.items()}
    out = [
        o.model_dump()
        for item in _plan()
        for o in account_item(item, parsed.get(item.item_id), catalogs.__contains__, LOC)
    ]
    assert [o["key"] for o in out] == [f"in/{x}.safetensors" for x in "abcd"]
    by = {o["name"]: o for o in out}
    assert by["a"]["status"] == "succeeded" and by["a"]["objects"] == 4
    assert (by["b"]["error"], by["b"]["objects"]) == ("non_finite", 5)
    assert by["c"]["error"] == MISSING and "absent" in by["c"]["message"]
    assert by["d"]["error"] == MISSING and by["d"]["objects"] == 0 and "no worker report" in by["d"]["message"]


def test_parse_cause_reads_lambda_error_json() -> None:
    cause = json.dumps({"errorType": "WeightsNotFoundError", "errorMessage": "no weights at /x"})
    assert parse_cause({"Error": "WeightsNotFoundError", "Cause": cause}) == (
        "WeightsNotFoundError",
        "no weights at /x",
    )
    assert parse_cause({"Error": "States.Timeout", "Cause": "Task timed out"}) == ("States.Timeout", "Task timed out")
    assert parse_cause(None)[0] == "unknown"


class _TinyEngine:
    """A deterministic predictor (a fixed linear map of the magnitudes) so the test is fast; like every
    engine it knows its backend (the item's may be unset: the function's own)."""

    backend = "torch"

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1) - 0.5 + 0.001 * images.mean(axis=(1, 2, 3))).astype(np.float32)


@pytest.fixture
def run_store() -> MemoryS3:
    # answered as AWS answers the stack's roles (prefix-conditioned ListBucket: 403 for absent keys)
    s3 = MemoryS3("data-bucket", "out-bucket", list_prefixes=("in/", "r"))
    for i in range(7):
        s3.buckets["data-bucket"][f"in/s{i}.safetensors"] = shard_to_bytes(build_shard(6 + i, seed=i, id_start=100 * i))
    s3.buckets["data-bucket"]["in/s3.safetensors"] = s3.buckets["data-bucket"]["in/s3.safetensors"][:-500]  # truncated
    return s3


def test_full_run_through_worker_and_summary(run_store: MemoryS3) -> None:
    s3 = run_store
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "world_size": 3, "run_id": "run-a"}
    )
    prepare_run(s3, payload, started_at=1000.0)
    plan = json.loads(s3.buckets["out-bucket"]["r/plan.json"])
    assert [len(i["shards"]) for i in plan] == [3, 2, 2]
    reports = [
        run_item(
            WorkItem.parse(item), s3, _TinyEngine, cold_start=i == 0, init_seconds=0.5, context={"memory_mb": 3008}
        ).wire()
        for i, item in enumerate(plan[:2])
    ]
    # The third worker "timed out": the Catch path records its failure.
    crashed = plan[2] | {
        "error": {"Error": "Sandbox.Timedout", "Cause": json.dumps({"errorMessage": "Task timed out after 900 s"})}
    }
    s3.put_object(
        Bucket="out-bucket",
        Key=LOC.worker_key(plan[2]["item_id"]),
        Body=json.dumps(failure_report(crashed, "Sandbox.Timedout", "Task timed out after 900 s").wire()).encode(),
    )
    assert reports[1]["status"] == "partial" and reports[1]["errors"][0]["error"] == "unreadable"
    assert reports[0]["status"] == "succeeded" and reports[0]["cold_start"] is True

    summary = summarize_run(s3, LOC, "run-a", now=1010.0)
    assert json.loads(s3.buckets["out-bucket"]["r/summary.json"]) == summary
    assert summary["status"] == "PARTIAL"
    objs = summary["objects"]
    assert objs["total"] == objs["predicted"] + objs["failed"]
    # s0..s2 predicted, s3 truncated (header still says 9 objects), s4 predicted, s5 s6 timed out
    assert objs["predicted"] == 6 + 7 + 8 + 10
    assert objs["failed"] == 9 + 11 + 12
    failures = {f["shard"]: f for f in summary["shards"]["failures"]}
    assert set(failures) == {"in/s3.safetensors", "in/s5.safetensors", "in/s6.safetensors"}
    assert failures["in/s3.safetensors"]["error"] == "unreadable"
    assert failures["in/s5.safetensors"]["error"] == "Sandbox.Timedout"
    assert summary["shards"]["total"] == 7 and summary["shards"]["succeeded"] == 4

    # metrics merged from the two partials agree with those recomputed from the catalogs, within the stated
    # bound; metrics.rail with qp's RAIL classes within 1e-5
    assert_metrics_agree(summary["metrics"], _exact_from_catalogs(s3), _pairs_from_catalogs(s3))
    assert summary["metrics_source"]["rail_outlier_rate"]["exact"]
    assert summary["metrics_source"]["error_bounds"]["rail"]["sigma_mad"] < 3e-6

    # provenance: what the workers ran with; the crashed item recorded none
    prov = summary["provenance"]
    assert prov["consistent"] and prov["items_unrecorded"] == 1
    assert [c["items"] for c in prov["combinations"]] == [2]
    assert prov["cosmicai_version"] == cosmicai.__version__ and prov["uncertainty"] == "none"
    assert (prov["backend"], prov["precision"]) == ("torch", "fp32")  # the engine's backend; no precision: the item's
    assert prov["weights_sha256"] == weights_sha256(default_weights_path())
    assert prov["weights_name"] == default_weights_path().name
    assert reports[0]["provenance"] == {k: prov[k] for k in PROVENANCE_FIELDS}
    # ... and every catalog carries it as Parquet metadata
    for _, body in _catalogs(s3):
        assert catalog_provenance(body) == reports[0]["provenance"]
    assert sum(read_catalog(v).num_rows for k, v in _catalogs(s3)) == objs["predicted"] == objs["labelled"]
    src = summary["metrics_source"]
    assert (src["partials"], src["shards"], src["shards_from_catalogs"]) == (2, 4, 0)
    assert src["error_bounds"]["delta"] < 1e-6
    # Summarize read no catalog: its GETs are run, plan, reports and partials
    assert not [c for c in s3.calls if c.startswith("get r/predictions/")]

    perf = summary["performance"]
    assert perf["wall_seconds"] == 10.0 and perf["workers"] == 2 and perf["cold_starts"] == 1
    assert perf["worker_seconds_p50"] is not None
    assert summary["cost"]["usd"] > 0 and summary["cost"]["inputs"]["memory_mb"] == 3008
    # the rows that grow with the run are in their own files, summary.json points at them
    rows = _lines(s3, perf["per_worker_file"])
    assert [r["item_id"] for r in rows] == ["item-00000", "item-00001"]  # the crashed item timed nothing
    assert [r["memory_mb"] for r in rows] == [3008, 3008] and rows[0]["cold_start"] is True
    assert rows[0]["seconds"] == reports[0]["wall_seconds"] and rows[1]["objects"] == reports[1]["objects"]
    assert "per_worker" not in perf
    assert _lines(s3, summary["shards"]["failures_file"]) == summary["shards"]["failures"]
    assert summary["shards"]["failures_listed"] == 3
    assert summary["items"] == {"total": 3, "reported": 3, "crashed": 1}


def _lines(s3: MemoryS3, name: str) -> list[dict]:
    return [json.loads(line) for line in s3.buckets["out-bucket"][LOC.key(name)].decode().splitlines()]


def test_summary_json_lists_the_first_failures_and_the_file_all_of_them(run_store: MemoryS3, monkeypatch) -> None:
    """A run whose every shard failed: summary.json stays small, summary/failures.jsonl has every one, in plan order."""
    import cosmicai.summary as summary_module

    monkeypatch.setattr(summary_module, "FAILURES_LISTED", 2)
    payload = RunPayload.parse({"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "run-f"})
    prepare_run(run_store, payload, started_at=0.0)  # 7 items, no worker ran
    summary = summarize_run(run_store, LOC, "run-f", now=1.0)
    shards = summary["shards"]
    assert summary["status"] == "FAILED" and (shards["total"], shards["failed"], shards["failures_listed"]) == (7, 7, 2)
    every = _lines(run_store, shards["failures_file"])
    assert [f["shard"] for f in every] == [f"in/s{i}.safetensors" for i in range(7)]
    assert shards["failures"] == every[:2] and {f["error"] for f in every} == {MISSING}
    assert summary["objects"]["failed"] == sum(f["objects"] for f in every)
    assert _lines(run_store, summary["performance"]["per_worker_file"]) == [] and summary["cost"]["usd"] is None
    # a rerun overwrites both files (never appends to an earlier run's)
    monkeypatch.setattr(summary_module, "FAILURES_LISTED", 100)
    assert summarize_run(run_store, LOC, "run-f", now=2.0)["shards"]["failures"] == every
    assert _lines(run_store, shards["failures_file"]) == every


def test_reports_outside_the_plan_count_as_before(run_store: MemoryS3) -> None:
    """A report of this run that no planned item claims still counts as a worker (timing, provenance);
    one of another run is counted as stale; a catalog outside the plan is named."""
    s3 = run_store
    plan = _planned_run(s3, workers=2)
    out = s3.buckets["out-bucket"]
    mine = json.loads(out[LOC.worker_key(plan[0]["item_id"])]) | {"item_id": "item-extra"}
    out[LOC.worker_key("item-extra")] = json.dumps(mine).encode()
    out[LOC.worker_key("item-older")] = json.dumps(mine | {"run_id": "older"}).encode()
    out[LOC.worker_key("item-bad")] = b"{not json"
    out[LOC.prediction_key("stray")] = b"x"
    summary = summarize_run(s3, LOC, "run-p", now=1.0)
    assert summary["status"] == "SUCCEEDED" and summary["items"] == {"total": 2, "reported": 2, "crashed": 0}
    assert summary["performance"]["workers"] == 3 and summary["provenance"]["combinations"][0]["items"] == 3
    assert [r["item_id"] for r in _lines(s3, summary["performance"]["per_worker_file"])] == [
        plan[0]["item_id"],
        plan[1]["item_id"],
        "item-extra",
    ]
    w = summary["warnings"]
    assert any("item-bad.json: not valid JSON" in x for x in w)
    assert "1 worker report(s) of other runs under r/workers/ ignored" in w
    assert "1 catalog(s) under r/predictions/ not in this run's plan ignored" in w


def _catalogs(s3: MemoryS3) -> list[tuple[str, bytes]]:
    return sorted((k, v) for k, v in s3.buckets["out-bucket"].items() if k.startswith("r/predictions/"))


def _pairs_from_catalogs(s3: MemoryS3) -> tuple[np.ndarray, np.ndarray]:
    tables = [read_catalog(v) for _, v in _catalogs(s3)]
    return (
        np.concatenate([t.column("z_true").to_numpy() for t in tables]),
        np.concatenate([t.column("z_pred").to_numpy() for t in tables]),
    )


def _exact_from_catalogs(s3: MemoryS3) -> dict:
    """compute_metrics over every catalog present (what Summarize must agree with)."""
    return compute_metrics(*_pairs_from_catalogs(s3))


def _planned_run(s3: MemoryS3, run_id: str = "run-p", workers: int = 3) -> list[dict]:
    payload = RunPayload.parse(
        {
            "input": "s3://data-bucket/in/",
            "output": "s3://out-bucket/r/",
            "world_size": workers,
            "run_id": run_id,
            "max_shards": 3,
        }
    )  # s0..s2: no truncated shard
    prepare_run(s3, payload, started_at=0.0)
    plan = json.loads(s3.buckets["out-bucket"]["r/plan.json"])
    for item in plan:
        run_item(WorkItem.parse(item), s3, _TinyEngine, cold_start=False, init_seconds=0.0)
    return plan


def test_items_without_a_usable_partial_fall_back_to_their_catalogs_and_say_so(run_store: MemoryS3) -> None:
    s3 = run_store
    plan = _planned_run(s3)
    out = s3.buckets["out-bucket"]
    del out[LOC.metrics_key(plan[0]["item_id"])]  # e.g. written by an older worker
    out[LOC.metrics_key(plan[1]["item_id"])] = b"{not json"
    summary = summarize_run(s3, LOC, "run-p", now=1.0)
    assert summary["status"] == "SUCCEEDED"
    assert_metrics_agree(summary["metrics"], _exact_from_catalogs(s3))
    src = summary["metrics_source"]
    assert (src["partials"], src["shards_from_catalogs"]) == (1, 2)
    assert any("read from their catalogs" in w and "absent" in w for w in summary["warnings"])


def test_only_sections_of_shards_accounted_succeeded_count(run_store: MemoryS3) -> None:
    """A shard whose report says succeeded but whose catalog is gone fails as missing_result; its partial
    section must not count either, and a partial of another run is never merged."""
    s3 = run_store
    plan = _planned_run(s3)
    out = s3.buckets["out-bucket"]
    gone = LOC.prediction_key(plan[0]["shards"][0]["name"])
    del out[gone]
    summary = summarize_run(s3, LOC, "run-p", now=1.0)
    assert summary["status"] == "PARTIAL" and summary["shards"]["failures"][0]["error"] == MISSING
    assert summary["objects"]["labelled"] == summary["objects"]["predicted"] == summary["metrics"]["n"]
    assert_metrics_agree(summary["metrics"], _exact_from_catalogs(s3))
    assert summary["metrics_source"]["shards_from_catalogs"] == 0

    # the partial of item 1 rewritten as another run's: never merged, its shard read from the catalog
    other = json.loads(out[LOC.metrics_key(plan[1]["item_id"])]) | {"run_id": "someone-else"}
    out[LOC.metrics_key(plan[1]["item_id"])] = json.dumps(other).encode()
    again = summarize_run(s3, LOC, "run-p", now=2.0)
    assert again["metrics_source"]["shards_from_catalogs"] == 1
    assert any("belongs to run someone-else" in w for w in again["warnings"])
    assert again["metrics"]["n"] == summary["metrics"]["n"]


def test_stream_map_keeps_order_and_a_bounded_window() -> None:
    pulled = 0
    in_flight_max = 0

    def items():
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i

    consumed = 0
    for i, got in enumerate(stream_map(lambda x: x * x, items(), threads=4, window=6)):
        assert got == i * i
        consumed += 1
        in_flight_max = max(in_flight_max, pulled - consumed)
    assert consumed == 200 and in_flight_max <= 6


def test_rerun_overwrites_and_stale_reports_are_ignored(run_store: MemoryS3) -> None:
    s3 = run_store
    base = {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "shards_per_worker": 7}
    prepare_run(s3, RunPayload.parse(base | {"run_id": "old"}), started_at=0.0)
    item = json.loads(s3.buckets["out-bucket"]["r/plan.json"])[0]
    run_item(WorkItem.parse(item), s3, _TinyEngine, cold_start=True, init_seconds=0.0)
    keys_before = set(s3.buckets["out-bucket"])
    run_item(WorkItem.parse(item), s3, _TinyEngine, cold_start=False, init_seconds=0.0)
    assert set(s3.buckets["out-bucket"]) == keys_before  # same keys, overwritten

    prepare_run(s3, RunPayload.parse(base | {"run_id": "new"}), started_at=0.0)
    summary = summarize_run(s3, LOC, "new", now=1.0)
    # the old run's worker report does not count for the new run
    assert summary["status"] == "FAILED" and summary["objects"]["predicted"] == 0
    assert {f["error"] for f in summary["shards"]["failures"]} == {MISSING}
    assert any("other runs" in w for w in summary["warnings"])
    assert summary["metrics"] is None


def test_summary_without_init_is_a_named_error_under_the_role(run_store: MemoryS3) -> None:
    """The role gets 403 (not NoSuchKey) for the absent run.json; still SummaryError, not a raw ClientError."""
    with pytest.raises(SummaryError, match="did Init run"):
        summarize_run(run_store, RunLocation("out-bucket", "r-never/"))


def test_worker_fails_alone_what_s3_refuses_or_what_is_too_large(run_store: MemoryS3) -> None:
    from cosmicai.worker import max_shard_bytes

    big = {"key": "in/s0.safetensors", "name": "s0", "bytes": max_shard_bytes(1769) + 1, "count": 6}
    gone = {"key": "in/gone.safetensors", "name": "gone", "bytes": 10, "count": 3}
    ok = {"key": "in/s1.safetensors", "name": "s1", "bytes": 10, "count": 7}
    item = WorkItem.parse(
        {
            "item_id": "item-00000",
            "run_id": "r",
            "input_bucket": "data-bucket",
            "output": "s3://out-bucket/r/",
            "batch_size": 64,
            "precision": "fp32",
            "shards": [big, gone, ok],
        }
    )
    report = run_item(
        item, run_store, lambda: _TinyEngine(), cold_start=False, init_seconds=0.0, context={"memory_mb": 1769}
    ).wire()
    assert report["status"] == "partial" and report["objects"] == 7
    by_key = {r["key"]: r for r in report["shards"]}
    assert (
        by_key["in/s0.safetensors"]["error"] == "too_large"
        and "cosmicai partition" in by_key["in/s0.safetensors"]["message"]
    )
    assert (
        by_key["in/gone.safetensors"]["error"] == "unreadable"
        and "AccessDenied" in by_key["in/gone.safetensors"]["message"]
    )


def test_a_partial_rewritten_for_some_shards_can_keep_the_others(run_store: MemoryS3) -> None:
    """write_partials(keep_previous=True), for items that re-run only some shards (resume)."""
    from cosmicai.metrics import partials_from_bytes
    from cosmicai.worker import shard_partial, write_partials

    s3 = run_store
    plan = _planned_run(s3, workers=1)
    item = WorkItem.parse(plan[0])
    key = LOC.metrics_key(item.item_id)
    before = partials_from_bytes(s3.buckets["out-bucket"][key]).shards
    first, second = item.shards[0].key, item.shards[1].key
    redo = shard_partial(second, np.float32([0.1, 0.2]), np.float32([0.1, 0.25]))
    write_partials(s3, item, [redo], keep_previous=True)
    after = partials_from_bytes(s3.buckets["out-bucket"][key]).shards
    assert set(after) == set(before) and after[second].rows == 2
    assert after[first].partial.compute() == before[first].partial.compute()
    write_partials(s3, item, [redo])  # a whole item's run writes only its own sections
    assert set(partials_from_bytes(s3.buckets["out-bucket"][key]).shards) == {second}


class _NamedEngine(_TinyEngine):
    """A predictor that says what it runs, as cosmicai.engine.Engine does (`fast` resolved to int8)."""

    backend = "openvino"
    precision = "int8"


def test_worker_provenance_records_what_the_engine_runs_and_the_model_card() -> None:
    item = WorkItem.parse(
        {
            "item_id": "i",
            "run_id": "r",
            "input_bucket": "data-bucket",
            "output": "s3://o/r/",
            "batch_size": 8,
            "precision": "fast",
            "backend": "openvino",
            "shards": [{"key": "k", "name": "n", "bytes": 1}],
        }
    )
    prov = worker_provenance(_NamedEngine(), item).model_dump()
    assert tuple(prov) == PROVENANCE_FIELDS
    assert (prov["backend"], prov["precision"], prov["uncertainty"]) == ("openvino", "int8", "none")
    card = json.loads((default_weights_path().parent / "MODEL_CARD.json").read_text())
    if card["sha256"] == prov["weights_sha256"]:  # the packaged demo weights and their card
        assert prov["model_card"] == card["weights_name"]


def test_workers_that_disagree_are_listed_by_combination(tmp_path, monkeypatch) -> None:
    # weights elsewhere (as in the images): no card describes them
    other = tmp_path / "astromae.safetensors"
    other.write_bytes(b"not the demo weights")
    monkeypatch.setenv("COSMICAI_WEIGHTS", str(other))
    item = WorkItem.parse(
        {
            "item_id": "i",
            "run_id": "r",
            "input_bucket": "data-bucket",
            "output": "s3://o/r/",
            "batch_size": 8,
            "precision": "fp32",
            "shards": [{"key": "k", "name": "n", "bytes": 1}],
        }
    )
    a = worker_provenance(_TinyEngine(), item).model_dump()
    assert (
        a["model_card"] is None
        and a["weights_name"] == "astromae.safetensors"
        and a["weights_sha256"] == weights_sha256(other)
    )
    b = a | {"precision": "int8"}
    reports = [
        {"item_id": "i0", "provenance": a},
        {"item_id": "i1", "provenance": b},
        {"item_id": "i2", "provenance": dict(b)},
        {"item_id": "i3", "crashed": True},
    ]
    tally = ProvenanceTally()
    for r in reports:
        tally.add(WorkerReport.model_validate(r | {"status": "succeeded"}))
    out = tally.result()
    assert not out["consistent"] and out["precision"] is None and out["backend"] == "torch"
    assert out["weights_sha256"] == a["weights_sha256"] and out["items_unrecorded"] == 1
    assert [(c["precision"], c["items"]) for c in out["combinations"]] == [("int8", 2), ("fp32", 1)]
    assert ProvenanceTally().result()["combinations"] == [] and ProvenanceTally().result()["consistent"] is False
