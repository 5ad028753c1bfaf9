"""Run payload validation: defaults, reference-key mapping, and named errors for bad payloads."""

from __future__ import annotations

from typing import Any

import pytest

from cosmicai.payload import PayloadError, RunPayload, split_s3_uri

GOOD = {"input": "s3://data-bucket/shards", "output": "s3://result-bucket/runs/demo/"}


def test_defaults_are_the_documented_ones() -> None:
    p = RunPayload.parse(GOOD)
    assert p.input == "s3://data-bucket/shards/"  # prefix normalised to end with "/"
    assert (p.batch_size, p.shards_per_worker, p.workers, p.max_shards) == (512, 1, None, None)
    assert (p.max_concurrency, p.precision, p.run_id, p.warnings) == (100, "fp32", None, ())
    assert p.input_location == ("data-bucket", "shards/")
    assert p.output_location == ("result-bucket", "runs/demo/")


def test_run_id_is_generated_once_and_kept() -> None:
    p = RunPayload.parse(GOOD).with_run_id()
    assert p.run_id and p.run_id.startswith("run-")
    assert p.with_run_id().run_id == p.run_id
    assert RunPayload.parse(GOOD | {"run_id": "nightly-7"}).with_run_id().run_id == "nightly-7"


def test_reference_payload_is_mapped_and_download_keys_ignored_with_warnings() -> None:
    ref = {
        "bucket": "result-bucket",
        "result_path": "result-partition-100MB/4GB/1",
        "data_bucket": "data-bucket",
        "data_prefix": "100MB",
        "file_limit": "22",
        "batch_size": 512,
        "object_type": "folder",
        "S3_object_name": "Anomaly Detection",
        "script": "/tmp/Anomaly Detection/Inference/inference.py",
        "world_size": 4,
    }
    p = RunPayload.parse(ref)
    assert p.input == "s3://data-bucket/100MB/"
    assert p.output == "s3://result-bucket/result-partition-100MB/4GB/1/"
    assert (p.max_shards, p.workers, p.batch_size) == (22, 4, 512)
    ignored = [w for w in p.warnings if "ignored" in w]
    assert len(ignored) == 3 and any("'script'" in w for w in ignored)
    assert not hasattr(p, "script")


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"output": GOOD["output"]}, "input", "required"),
    ({"input": GOOD["input"]}, "output", "required"),
    (GOOD | {"colour": "red"}, "colour", "unknown key"),
    (GOOD | {"input": "https://data-bucket/shards/"}, "input", "not an S3 URI"),
    (GOOD | {"output": "/tmp/out"}, "output", "not an S3 URI"),
    (GOOD | {"input": "s3://Bad_Bucket/x/"}, "input", "not an S3 URI"),
    (GOOD | {"input": "s3://data-bucket/a//b/"}, "input", "empty path segment"),
    (GOOD | {"input": 42}, "input", "valid string"),
    (GOOD | {"batch_size": "512"}, "batch_size", "valid integer"),
    (GOOD | {"batch_size": 0}, "batch_size", "greater than or equal to 1"),
    (GOOD | {"batch_size": 100_000}, "batch_size", "less than or equal to 8192"),
    (GOOD | {"batch_size": True}, "batch_size", "valid integer"),
    (GOOD | {"shards_per_worker": 0}, "shards_per_worker", "greater than or equal to 1"),
    (GOOD | {"max_shards": -3}, "max_shards", "greater than or equal to 1"),
    (GOOD | {"max_concurrency": 20_000}, "max_concurrency", "less than or equal to 10000"),
    (GOOD | {"max_concurrency": 2.5}, "max_concurrency", "valid integer"),
    (GOOD | {"precision": "fp8"}, "precision", "'fp32', 'bf16', 'int8' or 'fast'"),
    (GOOD | {"run_id": "../../etc"}, "run_id", "letters, digits"),
    (GOOD | {"run_id": ""}, "run_id", "letters, digits"),
    (GOOD | {"warnings": ["x"]}, "warnings", "set by the system"),
    (GOOD | {"file_limit": "ten"}, "file_limit", "expected an integer"),
    (GOOD | {"world_size": 2, "workers": 3}, "workers", "world_size"),
    (GOOD | {"world_size": 2, "shards_per_worker": 3}, "workers", "not both"),
    (GOOD | {"world_size": 0}, "workers", "greater than or equal to 1"),
    ({"output": GOOD["output"], "data_prefix": "x/"}, "data_bucket", "required with data_prefix"),
    ({"input": GOOD["input"], "result_path": "r"}, "bucket", "required with result_path"),
    (GOOD | {"data_bucket": "data-bucket"}, "input", "use one form"),
    ({"output": GOOD["output"], "data_bucket": 7}, "data_bucket", "expected a string"),
    ([GOOD], "<root>", "expected a JSON object"),
]


@pytest.mark.parametrize(("raw", "field", "fragment"), BAD, ids=[f"{i:02d}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_payload_is_rejected_with_a_named_error(raw: Any, field: str, fragment: str) -> None:
    with pytest.raises(PayloadError) as info:
        RunPayload.parse(raw)
    assert info.value.field == field
    assert fragment in info.value.problem
    assert str(info.value).startswith(f"payload.{field}: ")


def test_split_s3_uri_normalises_the_prefix() -> None:
    assert split_s3_uri("s3://my-bucket") == ("my-bucket", "")
    assert split_s3_uri("s3://my-bucket/") == ("my-bucket", "")
    assert split_s3_uri("s3://my-bucket/a/b") == ("my-bucket", "a/b/")
