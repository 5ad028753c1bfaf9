"""Fixtures `run_pipeline` and `upload_shards`: real runs of the deployed state machine.

`upload_shards(shards, prefix=None) -> input URI` writes real shards (a `Shard`, or raw
bytes for fault cases) under a fresh prefix of the stack's data URI.
`run_pipeline(payload, timeout_s=300, fill=True) -> RunResult` fills in what a dict payload
leaves out (`run_id`: a new one; `output`: `<results_uri><run_id>/`), starts the deployed state
machine, waits for it, and reads `summary.json` of that run (None if the run never
reached Summarize, e.g. a payload rejected by Init). Both build on `deployed_stack`.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from cosmicai.catalog import read_catalog
from cosmicai.payload import split_s3_uri
from cosmicai.runstore import PREDICTIONS_DIR, SUMMARY_FILE, RunLocation, get_json, list_objects
from cosmicai.shards import Shard, shard_to_bytes

__all__ = [
    "PipelineClients",
    "RunResult",
    "clients_for",
    "pipeline_clients",
    "run_on",
    "run_pipeline",
    "upload_shards",
    "upload_to",
    "wait_execution",
]

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass(frozen=True)
class PipelineClients:
    """boto3 clients for the session's LocalStack, and the stack outputs they act on."""

    s3: Any
    sfn: Any
    outputs: Mapping[str, Any]

    @property
    def state_machine_arn(self) -> str:
        return str(self.outputs["state_machine_arn"])


@dataclass
class RunResult:
    """One finished execution: its status, run id, summary.json and output prefix."""

    status: str  # execution status: SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    run_id: str
    summary: dict[str, Any] | None  # this run's summary.json, None if it was never written
    output: str  # s3://bucket/prefix/ of the run (what the payload's `output` was)
    execution_arn: str
    error: str | None = None  # execution error/cause when it did not succeed
    cause: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    _s3: Any = field(default=None, repr=False)

    @property
    def location(self) -> RunLocation:
        return RunLocation(*split_s3_uri(self.output, "output"))

    def keys(self, sub: str = "") -> list[str]:
        """Every key under the run's output prefix (or `sub` below it)."""
        loc = self.location
        return sorted(o["Key"] for o in list_objects(self._s3, loc.bucket, loc.key(sub)))

    def prediction_keys(self) -> list[str]:
        """Keys of the run's prediction catalogs."""
        return self.keys(PREDICTIONS_DIR)

    def catalog(self, key: str) -> Any:
        """One prediction catalog (pyarrow Table) by its key."""
        return read_catalog(self._s3.get_object(Bucket=self.location.bucket, Key=key)["Body"].read())


def clients_for(endpoint: str, outputs: Mapping[str, Any]) -> PipelineClients:
    """S3 and Step Functions clients (standard retries) for a stack deployed at `endpoint`."""
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"mode": "standard", "max_attempts": 8}, s3={"addressing_style": "path"})
    kw = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    return PipelineClients(
        boto3.client("s3", config=cfg, **kw), boto3.client("stepfunctions", config=cfg, **kw), outputs
    )


@pytest.fixture(scope="session")
def pipeline_clients(deployed_stack: dict, localstack: Any) -> PipelineClients:
    """Clients for the session's deployed stack."""
    return clients_for(localstack.endpoint, deployed_stack)


@pytest.fixture(scope="session")
def upload_shards(pipeline_clients: PipelineClients) -> Callable[..., str]:
    """Write shards under a fresh prefix of the data URI; returns that prefix as an s3:// URI.

    `shards` maps file names (e.g. "part-00000.safetensors") to a `Shard` or raw bytes;
    a list of Shards is named part-00000.safetensors, part-00001... in order.
    """
    return functools.partial(upload_to, pipeline_clients)


def upload_to(
    clients: PipelineClients, shards: Mapping[str, Shard | bytes] | list[Shard], prefix: str | None = None
) -> str:
    """Write shards under a fresh prefix of the stack's data URI; returns that prefix's URI."""
    bucket, base = split_s3_uri(str(clients.outputs["data_uri"]), "data_uri")
    if isinstance(shards, list):
        shards = {f"part-{i:05d}.safetensors": s for i, s in enumerate(shards)}
    prefix = base + (prefix or f"test-{uuid.uuid4().hex[:10]}").strip("/") + "/"
    for name, shard in shards.items():
        body = shard if isinstance(shard, bytes) else shard_to_bytes(shard)
        clients.s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)
    return f"s3://{bucket}/{prefix}"


def wait_execution(
    sfn: Any, arn: str, timeout_s: float = 300, poll_s: float = 0.5, until: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Describe the execution until it ends (or `until()` is true); TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] in TERMINAL or (until is not None and until()):
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {arn} still {desc['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def new_test_run_id() -> str:
    """A unique run id for a test run."""
    return time.strftime("it-%Y%m%dT%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]


def _error(sfn: Any, arn: str, desc: dict[str, Any]) -> tuple[str | None, str | None]:
    if desc.get("error") or desc.get("cause"):
        return desc.get("error"), desc.get("cause")
    page = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=20)
    for ev in page.get("events", []):
        for key in ("executionFailedEventDetails", "executionTimedOutEventDetails", "executionAbortedEventDetails"):
            if key in ev:
                return ev[key].get("error"), ev[key].get("cause")
    return None, None


@pytest.fixture(scope="session")
def run_pipeline(pipeline_clients: PipelineClients) -> Callable[..., RunResult]:
    """Start the deployed state machine on a payload, wait, return a RunResult (see `run_on`)."""
    return functools.partial(run_on, pipeline_clients)


def run_on(
    clients: PipelineClients, payload: Any, timeout_s: float = 300.0, poll_s: float = 0.5, fill: bool = True
) -> RunResult:
    """Start the stack's state machine on `payload` (sent as JSON), wait, return a RunResult.

    A dict gets `run_id`/`output` filled in unless `fill=False` (for malformed-payload cases,
    any JSON value goes through untouched)."""
    sfn, s3 = clients.sfn, clients.s3
    body = dict(payload) if isinstance(payload, dict) else payload
    run_id = new_test_run_id()
    if isinstance(body, dict):
        if fill:
            body.setdefault("run_id", run_id)
            body.setdefault("output", f"{clients.outputs['results_uri']}{body['run_id']}/")
        run_id = str(body.get("run_id") or run_id)
    name = f"{''.join(c for c in run_id if c.isalnum() or c in '-_')[:60]}-{uuid.uuid4().hex[:8]}"
    arn = sfn.start_execution(stateMachineArn=clients.state_machine_arn, name=name, input=json.dumps(body))[
        "executionArn"
    ]
    try:
        desc = wait_execution(sfn, arn, timeout_s, poll_s)
    except TimeoutError as exc:
        sfn.stop_execution(executionArn=arn, error="TestTimeout", cause=f"still running after {timeout_s} s")
        raise AssertionError(str(exc)) from exc
    error, cause = (None, None) if desc["status"] == "SUCCEEDED" else _error(sfn, arn, desc)
    try:  # a run id Init generated itself is in the execution output ({run_id, status, summary})
        run_id = str(json.loads(desc.get("output") or "{}").get("run_id") or run_id)
    except (ValueError, AttributeError):
        pass
    output = ""
    if isinstance(body, dict):
        try:  # reference payloads name the output as bucket + result_path
            from cosmicai.payload import RunPayload

            output = RunPayload.parse(body).output
        except ValueError:
            output = body.get("output") if isinstance(body.get("output"), str) else ""
    summary = None
    try:
        loc = RunLocation(*split_s3_uri(output, "output"))
        doc = get_json(s3, loc.bucket, loc.key(SUMMARY_FILE))
        summary = doc if doc.get("run_id") == run_id else None
    except Exception:  # noqa: BLE001 - no summary (invalid output, Init failed): the result says so
        summary = None
    return RunResult(
        desc["status"], run_id, summary, output, arn, error, cause, body if isinstance(body, dict) else {}, s3
    )
