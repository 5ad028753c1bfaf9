"""An in-memory S3 double for the fan-out unit tests (the integration tests use LocalStack).

Implements exactly the calls the fan-out makes: put/get (with Range)/head_bucket and the
list_objects_v2 paginator with 1,000-key pages, raising botocore ClientErrors like S3.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError


class _NoSuchKey(ClientError):
    pass


def _error(code: str, op: str) -> ClientError:
    cls = _NoSuchKey if code == "NoSuchKey" else ClientError
    return cls({"Error": {"Code": code, "Message": code}}, op)


class MemoryS3:
    """Buckets of {key: bytes}; `.exceptions.NoSuchKey` as in boto3."""

    PAGE = 1000

    class exceptions:  # noqa: N801 - mirrors the boto3 client attribute
        NoSuchKey = _NoSuchKey

    def __init__(self, *buckets: str) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {b: {} for b in buckets}
        self.calls: list[str] = []
        self.clock = 1_000_000.0  # seconds; advanced by tests to age objects
        self.modified: dict[tuple[str, str], float] = {}

    def _bucket(self, name: str, op: str) -> dict[str, bytes]:
        if name not in self.buckets:
            raise _error("NoSuchBucket", op)
        return self.buckets[name]

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        self._bucket(Bucket, "HeadBucket")
        return {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.calls.append(f"put {Key}")
        self._bucket(Bucket, "PutObject")[Key] = bytes(Body)
        self.modified[(Bucket, Key)] = self.clock
        return {}

    def _meta(self, bucket: str, key: str) -> dict[str, Any]:
        data = self.buckets[bucket][key]
        when = datetime.fromtimestamp(self.modified.get((bucket, key), 0.0), timezone.utc)
        return {"Key": key, "Size": len(data), "LastModified": when, "ETag": f'"{hashlib.md5(data).hexdigest()}"'}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(f"head {Key}")
        if Key not in self._bucket(Bucket, "HeadObject"):
            raise _error("404", "HeadObject")
        return self._meta(Bucket, Key)

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        self.calls.append(f"get {Key}" + (f" {Range}" if Range else ""))
        data = self._bucket(Bucket, "GetObject").get(Key)
        if data is None:
            raise _error("NoSuchKey", "GetObject")
        if Range:
            start, end = Range.removeprefix("bytes=").split("-")
            data = data[int(start): int(end) + 1]
        return {"Body": io.BytesIO(data)}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        s3 = self

        class _Paginator:
            def paginate(self, Bucket: str, Prefix: str = "") -> Any:
                keys = sorted(k for k in s3._bucket(Bucket, "ListObjectsV2") if k.startswith(Prefix))
                for i in range(0, max(len(keys), 1), s3.PAGE):
                    s3.calls.append("list")
                    page = keys[i: i + s3.PAGE]
                    yield {"Contents": [s3._meta(Bucket, k) for k in page]} if page else {}

        return _Paginator()
