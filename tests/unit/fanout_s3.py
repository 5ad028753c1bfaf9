"""An in-memory S3 double for the fan-out unit tests (the integration tests use LocalStack).

Implements exactly the calls the fan-out makes: put/get (with Range)/head_bucket, list_objects_v2
and its paginator with 1,000-key pages, raising botocore ClientErrors like S3. With
`list_prefixes` it answers as AWS answers one of our function roles, whose s3:ListBucket is
conditioned on s3:prefix: HeadBucket and listings outside those prefixes are 403 AccessDenied,
and so is a GET/HEAD of a missing key (AWS answers 404 only to callers allowed ListBucket).
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
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

    def __init__(self, *buckets: str, list_prefixes: tuple[str, ...] | None = None) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {b: {} for b in buckets}
        # None: an administrator (404 for missing keys); else the s3:prefix values ListBucket allows
        self.list_prefixes = list_prefixes
        self.calls: list[str] = []
        self.clock = 1_000_000.0  # seconds; advanced by tests to age objects
        self.modified: dict[tuple[str, str], float] = {}

    def _bucket(self, name: str, op: str) -> dict[str, bytes]:
        if name not in self.buckets:
            raise _error("NoSuchBucket", op)
        return self.buckets[name]

    def _may_list(self, prefix: str | None) -> bool:
        if self.list_prefixes is None:
            return True
        return prefix is not None and any(prefix.startswith(p) for p in self.list_prefixes)

    def _missing(self, op: str, code: str) -> ClientError:
        return _error(code if self._may_list(None) else "AccessDenied", op)

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        self._bucket(Bucket, "HeadBucket")
        if not self._may_list(None):  # HeadBucket is s3:ListBucket with no s3:prefix
            raise _error("AccessDenied", "HeadBucket")
        return {}

    def list_objects_v2(self, Bucket: str, Prefix: str = "", MaxKeys: int = 1000) -> dict[str, Any]:
        self.calls.append("list")
        bucket = self._bucket(Bucket, "ListObjectsV2")
        if not self._may_list(Prefix):
            raise _error("AccessDenied", "ListObjectsV2")
        keys = sorted(k for k in bucket if k.startswith(Prefix))[:MaxKeys]
        return {"Contents": [self._meta(Bucket, k) for k in keys]} if keys else {"KeyCount": 0}

    def put_object(self, Bucket: str, Key: str, Body: Any, **_: Any) -> dict[str, Any]:
        self.calls.append(f"put {Key}")  # Body: bytes or a readable file, as boto3 takes
        self._bucket(Bucket, "PutObject")[Key] = Body.read() if hasattr(Body, "read") else bytes(Body)
        self.modified[(Bucket, Key)] = self.clock
        return {}

    def _meta(self, bucket: str, key: str) -> dict[str, Any]:
        data = self.buckets[bucket][key]
        when = datetime.fromtimestamp(self.modified.get((bucket, key), 0.0), UTC)
        return {"Key": key, "Size": len(data), "LastModified": when, "ETag": f'"{hashlib.md5(data).hexdigest()}"'}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(f"head {Key}")
        if Key not in self._bucket(Bucket, "HeadObject"):
            raise self._missing("HeadObject", "404")
        return self._meta(Bucket, Key)

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        self.calls.append(f"get {Key}" + (f" {Range}" if Range else ""))
        data = self._bucket(Bucket, "GetObject").get(Key)
        if data is None:
            raise self._missing("GetObject", "NoSuchKey")
        if Range:
            if not data:  # S3 refuses any range of an empty object
                raise _error("InvalidRange", "GetObject")
            start, end = Range.removeprefix("bytes=").split("-")
            data = data[int(start) : int(end) + 1]
        return {"Body": io.BytesIO(data)}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        s3 = self

        class _Paginator:
            def paginate(self, Bucket: str, Prefix: str = "") -> Any:
                bucket = s3._bucket(Bucket, "ListObjectsV2")
                if not s3._may_list(Prefix):
                    raise _error("AccessDenied", "ListObjectsV2")
                keys = sorted(k for k in bucket if k.startswith(Prefix))
                for i in range(0, max(len(keys), 1), s3.PAGE):
                    s3.calls.append("list")
                    page = keys[i : i + s3.PAGE]
                    yield {"Contents": [s3._meta(Bucket, k) for k in page]} if page else {}

        return _Paginator()
