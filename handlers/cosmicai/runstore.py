"""Where a run's files live in S3 and small helpers to read and write them.

Layout under the payload's output prefix (docs/fan-out.md):
`run.json`, `plan.json`, `workers/<item_id>.json`, `metrics/<item_id>.json` (the item's metric
partial), `predictions/<shard name>.parquet`, `summary.json`. Keys are deterministic,
so re-running a run overwrites its files instead of adding new ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

RUN_FILE = "run.json"
PLAN_FILE = "plan.json"
# the items a resumed execution runs (resume.py); plan.json keeps the whole run
RESUME_FILE = "resume.json"
SUMMARY_FILE = "summary.json"
WORKERS_DIR = "workers/"
PREDICTIONS_DIR = "predictions/"
PREDICTION_SUFFIX = ".parquet"
# Metric partials live in their own folder, not beside the reports in workers/: listings of
# workers/ count reports (tests and tools rely on one object per item there).
METRICS_DIR = "metrics/"
METRICS_SUFFIX = ".json"


class RunStoreError(RuntimeError):
    """An S3 object of the run is missing or not what it should be."""


def aws_client(service: str, config: Any = None, **overrides: Any) -> Any:
    """A boto3 client with standard retries (8 attempts); the endpoint comes from AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"mode": "standard", "max_attempts": 8})
    return boto3.client(service, config=cfg.merge(config) if config else cfg, **overrides)


def s3_client(**overrides: Any) -> Any:
    """An S3 client with standard retries; honours AWS_ENDPOINT_URL (path-style there)."""
    from botocore.config import Config

    style = "path" if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3") else "auto"
    return aws_client("s3", Config(s3={"addressing_style": style}), **overrides)


@dataclass(frozen=True)
class RunLocation:
    """The output bucket and prefix (ends with "/" or is empty) of one run."""

    bucket: str
    prefix: str

    def key(self, name: str) -> str:
        """Full key of `name` under the run prefix."""
        return self.prefix + name

    def worker_key(self, item_id: str) -> str:
        """Key of one work item's report."""
        return self.key(f"{WORKERS_DIR}{item_id}.json")

    def metrics_key(self, item_id: str) -> str:
        """Key of one work item's metric partial (cosmicai.metrics.partials_to_bytes)."""
        return self.key(f"{METRICS_DIR}{item_id}{METRICS_SUFFIX}")

    def prediction_key(self, shard_name: str) -> str:
        """Key of one shard's prediction catalog."""
        return self.key(f"{PREDICTIONS_DIR}{shard_name}{PREDICTION_SUFFIX}")

    @property
    def uri(self) -> str:
        """s3://bucket/prefix/"""
        return f"s3://{self.bucket}/{self.prefix}"


def put_json(s3: Any, bucket: str, key: str, obj: Any) -> int:
    """Write `obj` as JSON; returns the byte count."""
    body = json.dumps(obj, indent=None, separators=(",", ":"), allow_nan=False).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return len(body)


def get_json(s3: Any, bucket: str, key: str) -> Any:
    """Read and parse one JSON object; RunStoreError names the object if it is not JSON."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise RunStoreError(f"s3://{bucket}/{key}: not valid JSON ({exc})") from exc


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether `key` exists, learned by listing `Prefix=key` (the key itself sorts first).

    Not by GET/HEAD: AWS answers those with 403 AccessDenied, not 404, for a missing key when the
    caller lacks an unconditional s3:ListBucket on the bucket, which our roles do (their ListBucket
    is conditioned on s3:prefix). A listing under the run's prefix is what such a role may do.
    """
    page = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(o["Key"] == key for o in page.get("Contents", []))


def get_json_if_exists(s3: Any, bucket: str, key: str) -> Any | None:
    """`get_json` of an optional object; None when it does not exist (see object_exists)."""
    return get_json(s3, bucket, key) if object_exists(s3, bucket, key) else None


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object under `prefix` (paginated: any number of keys), as ListObjectsV2 entries."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])
