"""Where a run's files live in S3 and small helpers to read and write them.

Layout under the payload's output prefix (docs/fan-out.md):
`run.json`, `plan.json`, `workers/<item_id>.json`, `metrics/<item_id>.json` (the item's metric
partial), `predictions/<shard name>.parquet`, `summary.json` with `summary/workers.jsonl` (one row
per worker) and `summary/failures.jsonl` (every failed shard). Keys are deterministic, so
re-running a run overwrites its files instead of adding new ones.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef
    from mypy_boto3_stepfunctions import SFNClient

RUN_FILE = "run.json"
PLAN_FILE = "plan.json"
# the items a resumed execution runs (resume.py); plan.json keeps the whole run
RESUME_FILE = "resume.json"
SUMMARY_FILE = "summary.json"
# Summarize's per-worker rows and failed shards, one JSON document a line: summary.json keeps
# totals, so its size and Summarize's memory do not grow with items (docs/fan-out.md).
SUMMARY_WORKERS_FILE = "summary/workers.jsonl"
SUMMARY_FAILURES_FILE = "summary/failures.jsonl"
WORKERS_DIR = "workers/"
PREDICTIONS_DIR = "predictions/"
PREDICTION_SUFFIX = ".parquet"
# Metric partials live in their own folder, not beside the reports in workers/: listings of
# workers/ count reports (tests and tools rely on one object per item there).
METRICS_DIR = "metrics/"
METRICS_SUFFIX = ".json"


class RunStoreError(RuntimeError):
    """An S3 object of the run is missing or not what it should be."""


# The services the package makes clients for, each typed by its boto3-stubs client.
AwsService = Literal["lambda", "logs", "s3", "stepfunctions"]


@overload
def aws_client(service: Literal["lambda"], config: Config | None = None, **overrides: Any) -> LambdaClient: ...
@overload
def aws_client(service: Literal["logs"], config: Config | None = None, **overrides: Any) -> CloudWatchLogsClient: ...
@overload
def aws_client(service: Literal["s3"], config: Config | None = None, **overrides: Any) -> S3Client: ...
@overload
def aws_client(service: Literal["stepfunctions"], config: Config | None = None, **overrides: Any) -> SFNClient: ...


def aws_client(service: AwsService, config: Config | None = None, **overrides: Any) -> Any:
    """A boto3 client with standard retries (8 attempts); the endpoint comes from AWS_ENDPOINT_URL.

    Typed per service by the overloads above; boto3-stubs cannot pick its own overload for a
    service name that is a union with `**overrides`, so the call itself goes through Any."""
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"mode": "standard", "max_attempts": 8})
    make: Callable[..., Any] = boto3.client
    return make(service, config=cfg.merge(config) if config else cfg, **overrides)


def s3_client(**overrides: Any) -> S3Client:
    """An S3 client with standard retries; honours AWS_ENDPOINT_URL (path-style there)."""
    from botocore.config import Config

    local = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    style: Literal["path", "auto"] = "path" if local else "auto"
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


def put_json(s3: S3Client, bucket: str, key: str, obj: Any) -> int:
    """Write `obj` as JSON; returns the byte count."""
    body = json.dumps(obj, indent=None, separators=(",", ":"), allow_nan=False).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return len(body)


def get_json(s3: S3Client, bucket: str, key: str) -> Any:
    """Read and parse one JSON object; RunStoreError names the object if it is not JSON."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise RunStoreError(f"s3://{bucket}/{key}: not valid JSON ({exc})") from exc


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether `key` exists, learned by listing `Prefix=key` (the key itself sorts first).

    Not by GET/HEAD: AWS answers those with 403 AccessDenied, not 404, for a missing key when the
    caller lacks an unconditional s3:ListBucket on the bucket, which our roles do (their ListBucket
    is conditioned on s3:prefix). A listing under the run's prefix is what such a role may do.
    """
    page = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(o["Key"] == key for o in page.get("Contents", []))


def get_json_if_exists(s3: S3Client, bucket: str, key: str) -> Any | None:
    """`get_json` of an optional object; None when it does not exist (see object_exists)."""
    return get_json(s3, bucket, key) if object_exists(s3, bucket, key) else None


def list_objects(s3: S3Client, bucket: str, prefix: str) -> Iterator[ObjectTypeDef]:
    """Every object under `prefix` (paginated: any number of keys), as ListObjectsV2 entries."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


# Bytes per read of a streamed object: a plan item is at most 128 KiB (plan.MAX_ITEM_BYTES), so
# two reads usually complete one.
STREAM_CHUNK_BYTES = 64 * 1024


def _text_chunks(s3: S3Client, bucket: str, key: str, chunk_bytes: int) -> Iterator[str]:
    """The object's body as UTF-8 text, one read at a time (a character split between reads is kept whole)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := body.read(chunk_bytes):
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise RunStoreError(f"s3://{bucket}/{key}: not UTF-8 ({exc})") from exc


def iter_json_array(s3: S3Client, bucket: str, key: str, chunk_bytes: int = STREAM_CHUNK_BYTES) -> Iterator[Any]:
    """The elements of the JSON array stored at `key`, parsed as its body streams in.

    Memory holds one read and one element, not the array: Summarize reads a 40,000-item plan.json
    (~12 MB, ~60 MB parsed) this way. RunStoreError names the object if it is not a JSON array.
    """
    where = f"s3://{bucket}/{key}"
    decoder = json.JSONDecoder()
    chunks = _text_chunks(s3, bucket, key, chunk_bytes)
    buf, pos, eof = "", 0, False

    def fill() -> bool:
        """Append the next read to the buffer (dropping what is parsed); False at the end."""
        nonlocal buf, pos, eof
        chunk = next(chunks, None)
        if chunk is None:
            eof = True
            return False
        buf, pos = buf[pos:] + chunk, 0
        return True

    def next_char() -> str:
        """The next non-blank character, not consumed; "" at the end of the object."""
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\n\r":
                pos += 1
            if pos < len(buf) or not fill():
                return buf[pos] if pos < len(buf) else ""

    if next_char() != "[":
        raise RunStoreError(f"{where}: not a JSON array")
    pos += 1
    if next_char() == "]":
        pos += 1
    else:
        while True:
            next_char()
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if fill():
                        continue
                    raise RunStoreError(f"{where}: not valid JSON ({exc})") from exc
                # complete when a delimiter follows: a number cut by a read ("-2." of "-2.5") parses too
                if (end < len(buf) and buf[end] in ",] \t\n\r") or eof or not fill():
                    break
            pos = end
            yield value
            sep = next_char()
            pos += 1
            if sep == "]":
                break
            if sep != ",":
                raise RunStoreError(f"{where}: not a JSON array (expected ',' or ']' at element end, got {sep!r})")
    if next_char():
        raise RunStoreError(f"{where}: data after the JSON array")


def iter_json_lines(s3: S3Client, bucket: str, key: str, chunk_bytes: int = STREAM_CHUNK_BYTES) -> Iterator[Any]:
    """The documents of the JSON Lines object at `key` (JsonLinesSpool's uploads), one line at a time."""
    rest = ""
    for chunk in _text_chunks(s3, bucket, key, chunk_bytes):
        *lines, rest = (rest + chunk).split("\n")
        for line in lines:
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RunStoreError(f"s3://{bucket}/{key}: a line is not valid JSON ({exc})") from exc
    if rest.strip():
        raise RunStoreError(f"s3://{bucket}/{key}: the last line is not terminated (truncated upload?)")


class JsonLinesSpool:
    """JSON documents written one per line to a temporary file as they come, uploaded in one PUT.

    Memory holds one line whatever the count: Summarize's 40,000 per-worker rows are ~16 MB as
    text (Lambda's /tmp holds 512 MB). Use as a context manager; the file is deleted on exit.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self.rows = 0

    def write(self, doc: Any) -> None:
        self._file.write(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode() + b"\n")
        self.rows += 1

    def upload(self, s3: S3Client, bucket: str, key: str) -> int:
        """PUT the lines written so far (the body streams from the file); returns the byte count."""
        size = self._file.tell()
        self._file.seek(0)
        s3.put_object(Bucket=bucket, Key=key, Body=self._file, ContentType="application/x-ndjson")
        self._file.seek(size)
        return size

    def __enter__(self) -> JsonLinesSpool:
        return self

    def __exit__(self, *_: Any) -> None:
        self._file.close()


class ListedKeys:
    """Which keys exist under a prefix, from one listing, in 17 bytes per key.

    Each key is kept as its 128-bit BLAKE2b digest in a sorted array (a Python set of 40,000 keys
    costs ~5.6 MB, this ~0.7 MB; two distinct keys share a digest with probability ~2^-128 per pair).
    `take(key)` answers membership and marks the key, so `untaken` counts the listed keys nobody
    asked about (catalogs or reports outside the plan).
    """

    _DTYPE = [("hi", ">u8"), ("lo", ">u8")]

    def __init__(self, s3: S3Client, bucket: str, prefix: str, suffix: str = "") -> None:
        import numpy as np

        raw = bytearray()
        for o in list_objects(s3, bucket, prefix):
            if o["Key"].endswith(suffix):
                raw += self._digest(o["Key"])
        self.digests = np.frombuffer(bytes(raw), dtype=self._DTYPE).copy()
        self.digests.sort()
        self.taken = np.zeros(len(self.digests), dtype=bool)
        self.bucket, self.prefix, self.suffix = bucket, prefix, suffix

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.blake2b(key.encode(), digest_size=16).digest()

    def _index(self, key: str) -> int | None:
        import numpy as np

        q = np.frombuffer(self._digest(key), dtype=self._DTYPE)
        i = int(np.searchsorted(self.digests, q)[0])
        return i if i < len(self.digests) and self.digests[i] == q[0] else None

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, key: str) -> bool:
        return self._index(key) is not None

    def take(self, key: str) -> bool:
        """Whether `key` was listed; marks it taken."""
        i = self._index(key)
        if i is None:
            return False
        self.taken[i] = True
        return True

    @property
    def untaken(self) -> int:
        return int(len(self.taken) - self.taken.sum())

    def untaken_keys(self, s3: S3Client) -> Iterator[str]:
        """The listed keys not taken, by listing the prefix again (the digests cannot be read back)."""
        for o in list_objects(s3, self.bucket, self.prefix):
            i = self._index(o["Key"]) if o["Key"].endswith(self.suffix) else None
            if i is not None and not self.taken[i]:
                yield o["Key"]
