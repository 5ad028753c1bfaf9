"""Malformed payloads are rejected by the real state machine's Init before any worker starts.

Each case starts a real execution of the deployed state machine and asserts: the execution
failed in the Init state with the named `PayloadError` whose cause names the field, no other
state was entered, and nothing (no plan, no worker report) was written under the output.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cosmicai.shards import shard_to_bytes
from itfixtures.acceptance import Area, client, history_states, new_area, start, wait
from tests.conftest import build_shard


@pytest.fixture(scope="module")
def area(deployed_stack: dict[str, Any]) -> Area:
    """An input with one valid shard, a prefix with no shards, and a fresh output."""
    a = new_area(deployed_stack, "reject")
    a.put("part-00000.safetensors", shard_to_bytes(build_shard(4, seed=3)))
    client("s3").put_object(Bucket=a.data_bucket, Key=f"shards/acc-{a.tag}-noshards/README.txt", Body=b"not a shard")
    return a


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


# id -> (payload builder, field named in the error)
CASES: dict[str, tuple[Any, str]] = {
    "unknown-key": (lambda a: a.payload(bogus=1), "bogus"),
    "batch-size-as-string": (lambda a: a.payload(batch_size="512"), "batch_size"),
    "batch-size-bool": (lambda a: a.payload(batch_size=True), "batch_size"),
    "batch-size-zero": (lambda a: a.payload(batch_size=0), "batch_size"),
    "batch-size-too-large": (lambda a: a.payload(batch_size=1_000_000), "batch_size"),
    "concurrency-zero": (lambda a: a.payload(max_concurrency=0), "max_concurrency"),
    "concurrency-too-large": (lambda a: a.payload(max_concurrency=20_000), "max_concurrency"),
    "negative-max-shards": (lambda a: a.payload(max_shards=-1), "max_shards"),
    "bad-precision": (lambda a: a.payload(precision="fp64"), "precision"),
    "non-s3-input": (lambda a: a.payload(input="https://example.com/shards/"), "input"),
    "non-s3-output": (lambda a: a.payload(output="/tmp/results/"), "output"),
    "missing-input": (lambda a: _without(a.payload(), "input"), "input"),
    "missing-output": (lambda a: _without(a.payload(), "output"), "output"),
    "missing-input-bucket": (lambda a: a.payload(input=f"s3://no-such-bucket-{a.tag}/shards/"), "input"),
    "missing-output-bucket": (lambda a: a.payload(output=f"s3://no-such-bucket-{a.tag}/runs/"), "output"),
    "missing-prefix": (lambda a: a.payload(input=f"s3://{a.data_bucket}/shards/acc-{a.tag}-absent/"), "input"),
    "empty-input": (lambda a: a.payload(input=f"s3://{a.data_bucket}/shards/acc-{a.tag}-noshards/"), "input"),
    "output-inside-input": (lambda a: a.payload(output=f"s3://{a.data_bucket}/{a.input_prefix}out/"), "output"),
    "bad-run-id": (lambda a: a.payload(run_id="../../etc"), "run_id"),
    "workers-and-shards-per-worker": (lambda a: a.payload(workers=2, shards_per_worker=3), "workers"),
    "reference-and-new-input": (lambda a: a.payload(data_bucket=a.data_bucket, data_prefix="shards/"), "input"),
    "payload-not-an-object": (lambda a: [a.input, a.output], "<root>"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_payload_is_rejected_by_init(area: Area, case: str) -> None:
    build, field = CASES[case]
    payload = build(area)
    arn = start(area.stack, payload)
    desc = wait(arn, timeout_s=120)
    assert desc["status"] == "FAILED", f"{case}: execution {desc['status']}"
    states = history_states(arn)
    assert states == ["Init"], f"{case}: states entered {states} (must stop at Init)"
    error, cause = _failure(arn)
    assert error == "PayloadError", (case, error, cause)
    assert f"payload.{field}" in cause, (case, cause)
    # Nothing of a run was written: no plan, no worker report, no summary.
    out = payload.get("output") if isinstance(payload, dict) else None
    for bucket in (area.results_bucket, area.data_bucket):
        if isinstance(out, str) and out.startswith(f"s3://{bucket}/"):
            prefix = out.removeprefix(f"s3://{bucket}/")
            listed = client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            assert listed == [], f"{case}: files written under the output: {[o['Key'] for o in listed]}"


def _failure(arn: str) -> tuple[str, str]:
    """(error, cause) of the execution's failure; the cause's errorMessage when it is Lambda JSON."""
    events = client("stepfunctions").get_execution_history(executionArn=arn, reverseOrder=True, maxResults=20)["events"]
    details = next(e["executionFailedEventDetails"] for e in events if e["type"] == "ExecutionFailed")
    error, cause = details.get("error", ""), details.get("cause", "")
    try:
        cause = json.loads(cause).get("errorMessage", cause)
    except (json.JSONDecodeError, AttributeError):
        pass
    return error, cause


def test_valid_payload_of_the_same_area_runs(area: Area) -> None:
    """The control case: the base payload the cases break is itself accepted."""
    desc = wait(start(area.stack, area.payload(max_concurrency=1)), timeout_s=300)
    assert desc["status"] == "SUCCEEDED", desc
    assert area.result("summary.json")["objects"]["predicted"] == 4
