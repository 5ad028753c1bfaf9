"""Helpers of the acceptance suite: unique data prefixes, shard uploads, executions, summaries.

Everything goes through the deployed stack (`deployed_stack` outputs) with boto3 clients from localstack-client
against the session's LocalStack; each test writes under its own prefix so tests stay
independent inside one stack.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from localstack_client.session import Session

from itfixtures.pipeline import wait_execution


def client(service: str) -> Any:
    """A boto3 client for the session's LocalStack (localstack-client reads the fixture's AWS_ENDPOINT_URL)."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise RuntimeError("AWS_ENDPOINT_URL is not set: use these helpers under the `localstack` fixture")
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
    return Session(aws_access_key_id="test", aws_secret_access_key="test").client(service, config=cfg)


@dataclass
class Area:
    """One test's own input and output prefixes in the stack's buckets."""

    stack: dict[str, Any]
    tag: str

    @property
    def data_bucket(self) -> str:
        return self.stack["data_bucket"]

    @property
    def results_bucket(self) -> str:
        return self.stack["results_bucket"]

    @property
    def input_prefix(self) -> str:
        return f"shards/acc-{self.tag}/"

    @property
    def output_prefix(self) -> str:
        return f"runs/acc-{self.tag}/"

    @property
    def input(self) -> str:
        return f"s3://{self.data_bucket}/{self.input_prefix}"

    @property
    def output(self) -> str:
        return f"s3://{self.results_bucket}/{self.output_prefix}"

    def payload(self, **extra: Any) -> dict[str, Any]:
        """A valid payload for this area; `extra` overrides or adds keys."""
        return {"input": self.input, "output": self.output, "run_id": f"acc-{self.tag}", **extra}

    def put(self, name: str, body: bytes) -> str:
        """Upload `body` as <input prefix><name>; returns the key."""
        key = self.input_prefix + name
        client("s3").put_object(Bucket=self.data_bucket, Key=key, Body=body)
        return key

    def put_many(self, items: Iterable[tuple[str, bytes]], threads: int = 16) -> list[str]:
        """Upload many small objects in parallel."""
        s3 = client("s3")

        def one(item: tuple[str, bytes]) -> str:
            s3.put_object(Bucket=self.data_bucket, Key=self.input_prefix + item[0], Body=item[1])
            return self.input_prefix + item[0]

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, items))

    def put_manifest(self, counts: dict[str, int]) -> None:
        """manifest.json with the true object count of each shard (so broken shards keep their count)."""
        doc = {
            "format": "cosmicai.manifest",
            "version": 1,
            "shards": [{"key": k, "count": n, "bytes": 0, "sha256": ""} for k, n in sorted(counts.items())],
        }
        self.put("manifest.json", json.dumps(doc).encode())

    def result(self, name: str) -> Any:
        """A JSON file of the run (summary.json, plan.json, ...), or None when absent."""
        try:
            body = client("s3").get_object(Bucket=self.results_bucket, Key=self.output_prefix + name)["Body"].read()
        except client("s3").exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def result_keys(self, sub: str = "") -> list[str]:
        """Keys under the run's output prefix (+ sub)."""
        pages = (
            client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.results_bucket, Prefix=self.output_prefix + sub)
        )
        return [o["Key"] for p in pages for o in p.get("Contents", [])]

    def result_bytes(self, key: str) -> bytes:
        return client("s3").get_object(Bucket=self.results_bucket, Key=key)["Body"].read()


def new_area(stack: dict[str, Any], label: str) -> Area:
    """A fresh, unique area (label is kept for reading the bucket by eye)."""
    return Area(stack, f"{label}-{uuid.uuid4().hex[:8]}")


def start(stack: dict[str, Any], payload: dict[str, Any]) -> str:
    """StartExecution of the stack's state machine; returns the execution ARN."""
    return client("stepfunctions").start_execution(
        stateMachineArn=stack["state_machine_arn"], input=json.dumps(payload)
    )["executionArn"]


def wait(
    arn: str, timeout_s: float = 300, poll_s: float = 0.5, until: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Describe the execution until it ends (or `until()` is true); returns the description."""
    return wait_execution(client("stepfunctions"), arn, timeout_s, poll_s, until)


def failed_state(arn: str) -> str | None:
    """Name of the state whose task failed first in the execution's history (None if none)."""
    events = client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered: str | None = None
    for ev in events:
        if ev["type"].endswith("StateEntered"):
            entered = ev["stateEnteredEventDetails"]["name"]
        if ev["type"] in ("TaskFailed", "LambdaFunctionFailed", "ExecutionFailed"):
            return entered
    return None


def history_states(arn: str) -> list[str]:
    """Names of the states the execution entered, in order."""
    events = client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [ev["stateEnteredEventDetails"]["name"] for ev in events if ev["type"].endswith("StateEntered")]


def assert_accounting(summary: dict[str, Any], expected_objects: int, planned_keys: list[str]) -> None:
    """The summary's invariant: every object and every planned shard accounted for exactly once."""
    objs = summary["objects"]
    assert objs["total"] == objs["predicted"] + objs["failed"], objs
    assert objs["total"] == expected_objects, (objs, expected_objects)
    shards = summary["shards"]
    assert shards["total"] == len(planned_keys) == shards["succeeded"] + shards["failed"], shards
    failures = shards["failures"]
    if shards.get("failures_listed", len(failures)) < shards["failed"]:  # summary.json lists the first 100
        bucket, _, prefix = summary["output"].removeprefix("s3://").partition("/")
        body = client("s3").get_object(Bucket=bucket, Key=prefix + shards["failures_file"])["Body"].read()
        failures = [json.loads(line) for line in body.splitlines() if line.strip()]
    failed = [f["shard"] for f in failures]
    assert len(failed) == len(set(failed)) == shards["failed"], failed
    assert set(failed) <= set(planned_keys), (failed, planned_keys)
