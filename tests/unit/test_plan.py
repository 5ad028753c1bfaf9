"""Planning: listing with pagination, header/manifest counts, grouping rules, plan.json."""

from __future__ import annotations

import json
import math

import pytest
from botocore.exceptions import ClientError

from cosmicai.payload import PayloadError, RunPayload
from cosmicai.plan import (
    MANIFEST_FORMAT,
    PlanError,
    collect_shards,
    group_sizes,
    plan_work_items,
    prepare_run,
    unique_names,
)
from cosmicai.shards import shard_to_bytes
from fanout_s3 import MemoryS3
from tests.conftest import build_shard


def reference_rule(n_files: int, world_size: int) -> list[int]:
    """The reference's assignment, written out loop by loop: worker r takes ceil(left / workers_left)."""
    out, left = [], n_files
    for rank in range(world_size):
        take = math.ceil(left / (world_size - rank))
        if take:
            out.append(take)
        left -= take
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 8, 22, 100, 517])
@pytest.mark.parametrize("workers", [1, 3, 4, 8, 50, 1000])
def test_world_size_grouping_follows_the_reference_rule(n: int, workers: int) -> None:
    sizes = group_sizes(n, workers=workers)
    assert sizes == reference_rule(n, workers)
    assert sum(sizes) == n and all(s >= 1 for s in sizes)
    assert len(sizes) == min(n, workers)


def test_shards_per_worker_grouping() -> None:
    assert group_sizes(10, shards_per_worker=3) == [3, 3, 3, 1]
    assert group_sizes(9, shards_per_worker=3) == [3, 3, 3]
    assert group_sizes(2, shards_per_worker=5) == [2]
    assert group_sizes(0, shards_per_worker=5) == []


def test_names_keep_suffix_only_on_clash() -> None:
    keys = ["in/a.safetensors", "in/sub/b.npz", "in/c.pt", "in/c.npz"]
    assert unique_names(keys, "in/") == ["a", "sub__b", "c.pt", "c.npz"]


# What the Init role may list, as the stack grants it: its data and results prefixes (s3:prefix
# conditions). The double then answers as AWS answers that role (403 where AWS sends 403).
ROLE_PREFIXES = ("in/", "empty/", "r", "out/")


def _store(n_shards: int, per_shard: int = 2, prefix: str = "in/") -> MemoryS3:
    s3 = MemoryS3("data-bucket", "out-bucket", list_prefixes=ROLE_PREFIXES)
    for i in range(n_shards):
        s3.buckets["data-bucket"][f"{prefix}part-{i:05d}.safetensors"] = shard_to_bytes(
            build_shard(per_shard, seed=i, id_start=i * per_shard)
        )
    return s3


def test_listing_paginates_past_1000_keys_and_reads_headers() -> None:
    s3 = _store(1005, per_shard=1)
    s3.buckets["data-bucket"]["in/README.txt"] = b"not a shard"
    shards, warnings = collect_shards(s3, "data-bucket", "in/")
    assert len(shards) == 1005 and s3.calls.count("list") == 2
    assert all(s.count == 1 for s in shards)
    assert [s.key for s in shards] == sorted(s.key for s in shards)
    assert any("non-shard" in w for w in warnings)
    # headers come from ranged GETs, never whole objects
    assert all("bytes=0-" in c for c in s3.calls if c.startswith("get ") and "manifest" not in c)


def test_corrupt_header_is_planned_with_its_error_code() -> None:
    s3 = _store(3)
    s3.buckets["data-bucket"]["in/part-00001.safetensors"] = b"\x00" * 64
    shards, _ = collect_shards(s3, "data-bucket", "in/")
    bad = shards[1]
    assert bad.count is None and bad.header_error in {"unreadable", "unknown_format"}
    assert shards[0].count == 2 and shards[2].count == 2


def test_manifest_counts_are_used_without_header_reads() -> None:
    s3 = _store(3)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "shards": [{"key": f"part-{i:05d}.safetensors", "count": 2, "bytes": 1, "sha256": "0" * 64} for i in range(3)],
    }
    s3.buckets["data-bucket"]["in/manifest.json"] = json.dumps(manifest).encode()
    shards, warnings = collect_shards(s3, "data-bucket", "in/")
    assert [s.count for s in shards] == [2, 2, 2]
    assert not [c for c in s3.calls if "bytes=" in c]
    assert not warnings  # the manifest itself is not a "non-shard object"


def test_bad_manifest_is_a_named_warning_and_headers_count_instead() -> None:
    """One bad object (here the manifest) must not fail the run: it is named, then bypassed."""
    s3 = _store(2)
    s3.buckets["data-bucket"]["in/manifest.json"] = b'{"shards": 3}'
    shards, warnings = collect_shards(s3, "data-bucket", "in/")
    assert [s.count for s in shards] == [2, 2]
    assert any("manifest.json" in w and "headers" in w for w in warnings), warnings


def test_no_manifest_is_learned_from_the_listing_not_a_get() -> None:
    """AWS answers a GET of a missing key with 403 to a role without unconditional ListBucket."""
    s3 = _store(2)
    shards, _ = collect_shards(s3, "data-bucket", "in/")
    assert [s.count for s in shards] == [2, 2]
    assert not [c for c in s3.calls if "manifest" in c]


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"", "empty"), (b"\x00" * 64, None), (b"PK\x03\x04" + b"\x00" * 10, None), (b"{" * 70_000, None)],
)
def test_any_object_bytes_are_planned_never_raised(body: bytes, code: str | None) -> None:
    s3 = _store(2)
    s3.buckets["data-bucket"]["in/part-00000.safetensors"] = body
    shards, _ = collect_shards(s3, "data-bucket", "in/")
    assert len(shards) == 2 and shards[0].count is None  # counted (or failed, named) by its worker
    assert code is None or shards[0].header_error == code
    assert shards[1].count == 2


def test_a_shard_s3_refuses_to_read_is_planned_with_its_error() -> None:
    """An archived object (InvalidObjectState) or a foreign KMS key (AccessDenied) on one shard."""
    s3 = _store(3)
    real_get = s3.get_object

    def get_object(Bucket: str, Key: str, Range: str | None = None):
        if Key.endswith("00001.safetensors"):
            raise ClientError({"Error": {"Code": "InvalidObjectState", "Message": "archived"}}, "GetObject")
        return real_get(Bucket=Bucket, Key=Key, Range=Range)

    s3.get_object = get_object  # type: ignore[method-assign]
    shards, _ = collect_shards(s3, "data-bucket", "in/")
    assert [s.count for s in shards] == [2, None, 2] and shards[1].header_error == "unreadable"


def test_init_needs_no_unconditional_list_bucket() -> None:
    """HeadBucket is s3:ListBucket without s3:prefix, which our prefix-conditioned roles are refused."""
    s3 = _store(2)
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="data-bucket")  # the double answers as AWS does
    payload = RunPayload.parse({"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r9/", "run_id": "r9"})
    assert prepare_run(s3, payload, started_at=0.0).shards == 2
    assert json.loads(s3.buckets["out-bucket"]["r9/run.json"])["run_id"] == "r9"


def test_previous_run_is_found_by_listing_under_the_role() -> None:
    s3 = _store(1)
    for run_id in ("r1", "r2"):
        payload = RunPayload.parse({"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": run_id})
        prepare_run(s3, payload, started_at=0.0)
    run = json.loads(s3.buckets["out-bucket"]["r/run.json"])
    assert any("already held run r1" in w for w in run["warnings"]), run["warnings"]


def test_location_outside_the_role_is_a_named_payload_error() -> None:
    s3 = _store(1)
    s3.buckets["data-bucket"]["elsewhere/part-0.safetensors"] = s3.buckets["data-bucket"]["in/part-00000.safetensors"]
    payload = RunPayload.parse({"input": "s3://data-bucket/elsewhere/", "output": "s3://out-bucket/r/"})
    with pytest.raises(PayloadError) as info:
        prepare_run(s3, payload, started_at=0.0)
    assert info.value.field == "input" and "not accessible to the function's role" in info.value.problem


def test_prepare_run_writes_plan_and_run_and_returns_small_data() -> None:
    s3 = _store(8)
    payload = RunPayload.parse(
        {
            "input": "s3://data-bucket/in/",
            "output": "s3://out-bucket/r1/",
            "world_size": 3,
            "script": "x.py",
            "run_id": "r1",
            "precision": "bf16",
        }
    )
    result = prepare_run(s3, payload, started_at=1.0).model_dump(
        mode="json"
    )  # Init's result, as the handler returns it
    assert result["run_id"] == "r1" and result["items"] == 3 and result["shards"] == 8 and result["objects"] == 16
    assert result["plan"] == {"bucket": "out-bucket", "key": "r1/plan.json"}
    assert len(json.dumps(result)) < 1024
    plan = json.loads(s3.buckets["out-bucket"]["r1/plan.json"])
    assert [len(i["shards"]) for i in plan] == [3, 3, 2]
    assert [s["name"] for i in plan for s in i["shards"]] == [f"part-{i:05d}" for i in range(8)]
    item = plan[0]
    assert item["run_id"] == "r1" and item["output"] == "s3://out-bucket/r1/" and item["precision"] == "bf16"
    assert item["objects"] == 6 and item["input_bucket"] == "data-bucket"
    run = json.loads(s3.buckets["out-bucket"]["r1/run.json"])
    assert run["started_at"] == 1.0 and any("'script' ignored" in w for w in run["warnings"])


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"input": "s3://no-such-bucket/in/", "output": "s3://out-bucket/r/"}, "input", "does not exist"),
        ({"input": "s3://data-bucket/in/", "output": "s3://gone-bucket/r/"}, "output", "does not exist"),
        ({"input": "s3://data-bucket/empty/", "output": "s3://out-bucket/r/"}, "input", "no shards"),
        ({"input": "s3://data-bucket/in/", "output": "s3://data-bucket/in/results/"}, "output", "overlaps"),
        ({"input": "s3://data-bucket/", "output": "s3://data-bucket/out/"}, "output", "overlaps"),
    ],
)
def test_prepare_run_rejects_bad_locations(payload: dict, field: str, fragment: str) -> None:
    s3 = _store(2)
    with pytest.raises(PayloadError) as info:
        prepare_run(s3, RunPayload.parse(payload), started_at=0.0)
    assert info.value.field == field and fragment in info.value.problem
    assert not s3.buckets["out-bucket"]  # nothing written before the error


def test_max_shards_limits_and_item_size_is_bounded() -> None:
    s3 = _store(5)
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "file_limit": 4, "run_id": "r"}
    )
    shards, warnings = collect_shards(s3, "data-bucket", "in/", payload.max_shards)
    assert len(shards) == 4 and any("max_shards=4" in w for w in warnings)
    huge = [shards[0]] * 2000
    with pytest.raises(PlanError, match="state limit"):
        plan_work_items(payload.model_copy(update={"workers": 1}), huge)


def test_too_many_work_items_is_refused_with_the_fix() -> None:
    payload = RunPayload.parse({"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "r"})
    shards, _ = collect_shards(_store(1), "data-bucket", "in/", None)
    many = shards * 40_001
    with pytest.raises(PlanError, match="set shards_per_worker to 2 or more"):
        plan_work_items(payload, many)
    assert len(plan_work_items(payload.model_copy(update={"shards_per_worker": 2}), many)) == 20_001
