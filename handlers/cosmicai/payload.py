"""The run payload: validation, defaults and the mapping of the reference's keys.

A payload is the JSON a user hands to `StartExecution`. `RunPayload.parse` turns it
into a validated model or raises `PayloadError` naming the field and the problem.
The reference system's keys are accepted: the data/result locations are mapped onto
`input`/`output`, and the keys that only served its download-and-exec design
(`script`, `S3_object_name`, `object_type`) are ignored, never fetched or run, and
listed in `warnings` so the run report shows them.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cosmicai.contracts import MAX_BATCH_SIZE, Backend, Precision, UncertaintyMode, first_problem

# Distributed Map runs at most 10,000 children at once.
MAX_CONCURRENCY_LIMIT = 10_000
# The Map collects one `{}` per work item into its (discarded) result, which must stay under
# the 256 KiB state limit: 40,000 items is ~120 KB. Larger inputs use shards_per_worker > 1.
MAX_WORKERS = 40_000

# Keys of the reference payload that only made sense when each worker downloaded
# and exec'd a script: accepted so old payloads still run, never acted upon.
IGNORED_REFERENCE_KEYS = ("script", "S3_object_name", "object_type")

_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,79}$")


class PayloadError(ValueError):
    """A payload that cannot run; `field` is the dotted path, `problem` says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"payload.{field}: {problem}")


def split_s3_uri(uri: str, field: str = "uri") -> tuple[str, str]:
    """`s3://bucket/prefix/` -> (bucket, "prefix/"); the prefix ends with "/" unless empty."""
    if not isinstance(uri, str):
        raise PayloadError(field, f"expected an s3://bucket/prefix/ string, got {type(uri).__name__}")
    m = _S3_URI.match(uri)
    if not m:
        raise PayloadError(field, f"{uri!r} is not an S3 URI of the form s3://bucket/prefix/")
    bucket, prefix = m.group(1), m.group(2) or ""
    if ".." in bucket or "//" in prefix:
        raise PayloadError(field, f"{uri!r} has an invalid bucket name or an empty path segment")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def new_run_id() -> str:
    """A sortable, unique run id: run-YYYYmmddTHHMMSSZ-<6 hex>."""
    return time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class RunPayload(BaseModel):
    """A validated run payload (docs/fan-out.md has the reference table)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    input: str = Field(description="s3://bucket/prefix/ holding the shards")
    output: str = Field(description="s3://bucket/prefix/ receiving <run_id>/... results")
    batch_size: int = Field(512, ge=1, le=MAX_BATCH_SIZE)
    shards_per_worker: int = Field(1, ge=1, le=10_000)
    workers: int | None = Field(
        None, ge=1, le=MAX_WORKERS, description="split into this many work items (reference world_size)"
    )
    max_shards: int | None = Field(
        None, ge=1, description="use only the first N shards in key order (reference file_limit)"
    )
    max_concurrency: int = Field(100, ge=1, le=MAX_CONCURRENCY_LIMIT)
    precision: Precision = "fp32"
    # None: the backend the inference function loads at INIT (Terraform's infer_backend, i.e.
    # COSMICAI_BACKEND; torch by default), so an OpenVINO function never imports torch for a
    # payload that does not name a backend.
    backend: Backend | None = Field(
        None, description="engine backend of the workers (cosmicai.engine); unset: the inference function's own"
    )
    uncertainty: UncertaintyMode = Field(
        "none",
        description="per-object z_err and 16/84 percentiles from the 8 rotations/flips of each cutout "
        "(cosmicai.uncertainty; ~8x compute; needs weights whose model card is calibrated)",
    )
    run_id: str | None = None
    resume: bool = Field(False, description="re-run only the shards of run `run_id` without a successful result")
    warnings: tuple[str, ...] = ()

    @field_validator("input", "output")
    @classmethod
    def _s3_uri(cls, v: str, info: Any) -> str:
        bucket, prefix = split_s3_uri(v, info.field_name)
        return f"s3://{bucket}/{prefix}"

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, v: str | None) -> str | None:
        if v is not None and not _RUN_ID.match(v):
            raise ValueError(
                "must be 1-80 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return v

    @property
    def input_location(self) -> tuple[str, str]:
        """(bucket, prefix) of the input."""
        return split_s3_uri(self.input, "input")

    @property
    def output_location(self) -> tuple[str, str]:
        """(bucket, prefix) of the output root (the run writes under prefix + run_id + "/")."""
        return split_s3_uri(self.output, "output")

    def with_run_id(self) -> RunPayload:
        """This payload with `run_id` filled in (a new one if absent)."""
        return self if self.run_id else self.model_copy(update={"run_id": new_run_id()})

    @classmethod
    def parse(cls, raw: Any) -> RunPayload:
        """Validate a raw payload (dict), mapping reference keys; raise PayloadError."""
        if not isinstance(raw, dict):
            raise PayloadError("<root>", f"expected a JSON object, got {type(raw).__name__}")
        data = _map_reference_keys(dict(raw))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problem = first_problem(exc)
            if problem.kind == "extra_forbidden":
                msg = "unknown key (see the payload reference in docs/fan-out.md)"
            elif isinstance(problem.cause, PayloadError):
                msg = problem.cause.problem
            else:
                msg = f"{problem.message} (got {problem.input!r})"
            raise PayloadError(problem.field, msg) from None


def _map_reference_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the reference payload's keys into ours; collect warnings."""
    if "warnings" in data:
        raise PayloadError("warnings", "is set by the system, not by the payload")
    warnings: list[str] = []
    for key in IGNORED_REFERENCE_KEYS:
        if key in data:
            data.pop(key)
            warnings.append(f"reference key {key!r} ignored: cosmic-ai never downloads or executes code from a payload")
    if "data_bucket" in data or "data_prefix" in data:
        if "input" in data:
            raise PayloadError("input", "given together with the reference keys data_bucket/data_prefix; use one form")
        if "data_bucket" not in data:
            raise PayloadError("data_bucket", "required with data_prefix")
        db, dp = data.pop("data_bucket"), data.pop("data_prefix", "")
        for name, val in (("data_bucket", db), ("data_prefix", dp)):
            if not isinstance(val, str):
                raise PayloadError(name, f"expected a string, got {type(val).__name__}")
        data["input"] = f"s3://{db}/{dp.lstrip('/')}"
        warnings.append(f"reference keys data_bucket/data_prefix mapped to input={data['input']}")
    if "bucket" in data or "result_path" in data:
        if "output" in data:
            raise PayloadError("output", "given together with the reference keys bucket/result_path; use one form")
        if "bucket" not in data:
            raise PayloadError("bucket", "required with result_path")
        b, rp = data.pop("bucket"), data.pop("result_path", "result")
        for name, val in (("bucket", b), ("result_path", rp)):
            if not isinstance(val, str):
                raise PayloadError(name, f"expected a string, got {type(val).__name__}")
        data["output"] = f"s3://{b}/{rp.strip('/')}/" if rp.strip("/") else f"s3://{b}/"
        warnings.append(f"reference keys bucket/result_path mapped to output={data['output']}")
    if "file_limit" in data:
        if "max_shards" in data:
            raise PayloadError("max_shards", "given together with the reference key file_limit; use one")
        data["max_shards"] = _reference_int(data.pop("file_limit"), "file_limit")
    if "world_size" in data:
        if "workers" in data:
            raise PayloadError("workers", "given together with the reference key world_size; use one")
        data["workers"] = _reference_int(data.pop("world_size"), "world_size")
    if data.get("workers") is not None and data.get("shards_per_worker") not in (None, 1):
        raise PayloadError("workers", "give either workers (world_size) or shards_per_worker, not both")
    if "input" not in data:
        raise PayloadError("input", "required (s3://bucket/prefix/ or the reference data_bucket + data_prefix)")
    if "output" not in data:
        raise PayloadError("output", "required (s3://bucket/prefix/ or the reference bucket + result_path)")
    data["warnings"] = tuple(warnings)
    return data


def _reference_int(value: Any, field: str) -> int:
    # The reference sent these as strings or numbers; accept both, nothing else.
    if isinstance(value, bool):
        raise PayloadError(field, f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise PayloadError(field, f"expected an integer, got {value!r}")
