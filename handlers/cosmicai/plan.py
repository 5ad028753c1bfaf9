"""Planning a run: find the shards under the input prefix and group them into work items.

The plan is a JSON array written to `<output>/plan.json`; the Distributed Map reads it
with its ItemReader, one child execution per item. Counts come from the partition
manifest (`manifest.json` in the input prefix, see CONTRACTS.md) when present, else
from each shard's safetensors header read with one ranged GET.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cosmicai.contracts import InitResult, PlanLocation, PlannedShard, WorkItem
from cosmicai.payload import MAX_WORKERS, PayloadError, RunPayload
from cosmicai.runstore import list_objects

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

SHARD_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "cosmicai.manifest"
# A Step Functions state (one item) holds at most 256 KiB; stay well below.
MAX_ITEM_BYTES = 128 * 1024
PROBE_THREADS = 16


class PlanError(ValueError):
    """The input cannot be planned (bad manifest, item too large)."""


@dataclass(frozen=True)
class ShardInfo:
    """One input shard: S3 key, output name, size, object count (None = unknown until read)."""

    key: str
    name: str
    bytes: int
    count: int | None
    header_error: str | None = None


def shard_name(key: str, prefix: str) -> str:
    """Output stem of a shard: its key below the prefix, without the suffix, '/' -> '__'."""
    rel = key[len(prefix) :] if key.startswith(prefix) else key
    stem, _ = posixpath.splitext(rel)
    return stem.replace("/", "__")


def list_shards(s3: S3Client, bucket: str, prefix: str) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Shard objects under the prefix in key order, the keys of other objects ignored, and
    whether the prefix holds a manifest (known from the listing: see runstore.object_exists)."""
    shards: list[dict[str, Any]] = []
    other: list[str] = []
    has_manifest = False
    for obj in list_objects(s3, bucket, prefix):
        key = obj["Key"]
        if key.endswith("/"):
            continue
        if key.lower().endswith(SHARD_SUFFIXES):
            shards.append({"key": key, "bytes": int(obj["Size"])})
        elif key == prefix + MANIFEST_NAME:
            has_manifest = True
        elif posixpath.basename(key) != MANIFEST_NAME:
            other.append(key)
    shards.sort(key=lambda s: s["key"])
    return shards, other, has_manifest


def unique_names(keys: Sequence[str], prefix: str) -> list[str]:
    """Output names for the keys; on a stem clash (a.pt and a.npz) the suffix is kept."""
    stems = [shard_name(k, prefix) for k in keys]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [
        s if seen[s] == 1 else (k[len(prefix) :] if k.startswith(prefix) else k).replace("/", "__")
        for s, k in zip(stems, keys, strict=True)
    ]


def read_manifest(s3: S3Client, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Entries of `<prefix>manifest.json` by full key; PlanError names what is wrong with it."""
    body = s3.get_object(Bucket=bucket, Key=prefix + MANIFEST_NAME)["Body"].read()
    where = f"s3://{bucket}/{prefix}{MANIFEST_NAME}"
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("shards"), list):
        raise PlanError(f"{where}: expected {{'format': '{MANIFEST_FORMAT}', 'shards': [...]}}")
    entries: dict[str, dict[str, Any]] = {}
    for i, e in enumerate(doc["shards"]):
        if not isinstance(e, dict) or not isinstance(e.get("key"), str) or not isinstance(e.get("count"), int):
            raise PlanError(f"{where}: shards[{i}] needs a string key and an integer count")
        entries[prefix + e["key"]] = e
    return entries


def probe_count(s3: S3Client, bucket: str, key: str, size: int) -> tuple[int | None, str | None]:
    """Object count from the shard's header (ranged GET); (None, error code) if it cannot be read.

    Never raises for one object: whatever its size or bytes, a shard is planned and its worker
    fails it with the full named error (an empty object: a ranged GET answers 416 InvalidRange;
    an archived one 403 InvalidObjectState; a foreign KMS key 403 AccessDenied).
    """
    from botocore.exceptions import ClientError

    from cosmicai.shards import HEADER_PROBE_BYTES, ShardError, ShardHeaderIncompleteError, read_shard_header

    if size == 0:
        return None, "empty"
    want = HEADER_PROBE_BYTES
    for _ in range(2):
        try:
            data = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{want - 1}")["Body"].read()
        except ClientError:
            return None, "unreadable"
        try:
            return read_shard_header(data, key).count, None
        except ShardHeaderIncompleteError as exc:
            want = exc.needed
        except ShardError as exc:
            return None, exc.code
    return None, "unreadable"


def collect_shards(
    s3: S3Client, bucket: str, prefix: str, max_shards: int | None = None
) -> tuple[list[ShardInfo], list[str]]:
    """Shards to process with counts, plus warnings (ignored objects, manifest mismatches)."""
    listed, other, has_manifest = list_shards(s3, bucket, prefix)
    warnings = []
    if other:
        warnings.append(f"{len(other)} non-shard object(s) under the input ignored, e.g. {other[0]}")
    if max_shards is not None and len(listed) > max_shards:
        warnings.append(f"max_shards={max_shards}: using the first {max_shards} of {len(listed)} shards")
        listed = listed[:max_shards]
    names = unique_names([s["key"] for s in listed], prefix)
    manifest = None
    if has_manifest:
        try:
            manifest = read_manifest(s3, bucket, prefix)
        except PlanError as exc:  # a bad manifest costs a header probe per shard, not the run
            warnings.append(f"{exc}; counting shards from their headers instead")
    counts: list[tuple[int | None, str | None]]
    if manifest is not None:
        counts = [(manifest[s["key"]]["count"], None) if s["key"] in manifest else (None, None) for s in listed]
        missing = [s["key"] for s in listed if s["key"] not in manifest]
        if missing:
            warnings.append(
                f"{len(missing)} shard(s) not in {MANIFEST_NAME}, counted by their workers, e.g. {missing[0]}"
            )
    else:
        with ThreadPoolExecutor(PROBE_THREADS) as pool:
            counts = list(pool.map(lambda s: probe_count(s3, bucket, s["key"], s["bytes"]), listed))
    shards = [
        ShardInfo(key=s["key"], name=n, bytes=s["bytes"], count=c, header_error=err)
        for s, n, (c, err) in zip(listed, names, counts, strict=True)
    ]
    return shards, warnings


def group_sizes(n_shards: int, shards_per_worker: int = 1, workers: int | None = None) -> list[int]:
    """Shards per work item: the reference rule ceil(left / workers_left) when `workers` is set."""
    if n_shards <= 0:
        return []
    if workers is None:
        full, rest = divmod(n_shards, shards_per_worker)
        return [shards_per_worker] * full + ([rest] if rest else [])
    sizes, left = [], n_shards
    for w in range(min(workers, n_shards), 0, -1):
        take = math.ceil(left / w)
        sizes.append(take)
        left -= take
    return sizes


def min_shards_per_item(shards: int) -> int:
    """The fewest shards per work item that keep `shards` within one run's Map (MAX_WORKERS items)."""
    return max(1, math.ceil(shards / MAX_WORKERS))


def plan_work_items(payload: RunPayload, shards: Sequence[ShardInfo]) -> list[WorkItem]:
    """The work items of a run; raises PlanError if one is too large for a state."""
    bucket, _ = payload.input_location
    if not payload.run_id:
        raise PlanError("the payload has no run_id yet (plan_run gives it one)")
    sizes = group_sizes(len(shards), payload.shards_per_worker, payload.workers)
    if len(sizes) > MAX_WORKERS:
        needed = min_shards_per_item(len(shards))
        raise PlanError(
            f"{len(shards)} shards make {len(sizes)} work items, over the {MAX_WORKERS} one run's Map can "
            f"collect within the state size limit: set shards_per_worker to {needed} or more (or use larger shards)"
        )
    items, start = [], 0
    width = max(5, len(str(len(sizes))))
    for i, size in enumerate(sizes):
        group = shards[start : start + size]
        start += size
        counts = [s.count for s in group]
        item = WorkItem(
            item_id=f"item-{i:0{width}d}",
            run_id=payload.run_id,
            input_bucket=bucket,
            output=payload.output,
            batch_size=payload.batch_size,
            precision=payload.precision,
            backend=payload.backend,
            uncertainty=payload.uncertainty,
            objects=None if None in counts else sum(c for c in counts if c is not None),
            shards=[PlannedShard(key=s.key, name=s.name, bytes=s.bytes, count=s.count) for s in group],
        )
        size_bytes = len(json.dumps(item.wire()))
        if size_bytes > MAX_ITEM_BYTES:
            raise PlanError(
                f"work item {item.item_id} lists {size} shards ({size_bytes} bytes), over the "
                f"{MAX_ITEM_BYTES}-byte state limit: use more workers or fewer shards_per_worker"
            )
        items.append(item)
    return items


def check_locations(payload: RunPayload) -> None:
    """Refuse an output inside the input (its results would become inputs of the next run)."""
    ib, ip = payload.input_location
    ob, op = payload.output_location
    if ib == ob and (op.startswith(ip) or ip.startswith(op)):
        raise PayloadError("output", f"{payload.output} overlaps the input {payload.input}; use a separate prefix")


def _require_location(s3: S3Client, bucket: str, prefix: str, field: str) -> None:
    """The bucket exists and the role may list the prefix: one ListObjectsV2 under it.

    Not HeadBucket: AWS authorizes it as s3:ListBucket without an s3:prefix, which a role whose
    ListBucket grant is prefix-conditioned (ours) is refused.
    """
    from botocore.exceptions import ClientError

    try:
        s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        where = f"s3://{bucket}/{prefix}"
        if code in ("NoSuchBucket", "404"):
            raise PayloadError(field, f"bucket {bucket!r} does not exist ({code})") from None
        if code in ("AccessDenied", "403"):
            raise PayloadError(
                field,
                f"{where} is not accessible to the function's role ({code}); the stack "
                "grants only its data and results prefixes (`make outputs`: data_uri, results_uri)",
            ) from None
        raise PayloadError(field, f"{where} cannot be listed ({code})") from None


@dataclass(frozen=True)
class RunPlan:
    """A planned run before anything is written: the payload (run id fixed), its shards,
    work items and warnings. Init writes it (prepare_run); `cosmicai invoke --dry-run` prints it."""

    payload: RunPayload
    shards: list[ShardInfo]
    items: list[WorkItem]
    warnings: list[str]

    @property
    def objects_planned(self) -> int:
        """Objects of the shards whose count is known (manifest or header)."""
        return sum(s.count for s in self.shards if s.count is not None)

    @property
    def shards_without_count(self) -> int:
        """Shards whose count only their worker will learn (no manifest entry, unreadable header)."""
        return sum(1 for s in self.shards if s.count is None)


def plan_run(s3: S3Client, payload: RunPayload) -> RunPlan:
    """Validate the locations on S3 and plan the run; reads only, writes nothing.

    Raises PayloadError for missing buckets, an empty input or overlapping locations, and
    PlanError for a plan the Map cannot run (too many items, an item over the state limit).
    """
    from cosmicai.runstore import RUN_FILE, RunLocation, get_json_if_exists

    payload = payload.with_run_id()
    check_locations(payload)
    ib, ip = payload.input_location
    ob, op = payload.output_location
    _require_location(s3, ib, ip, "input")
    _require_location(s3, ob, op, "output")
    shards, warnings = collect_shards(s3, ib, ip, payload.max_shards)
    if not shards:
        raise PayloadError("input", f"no shards ({', '.join(SHARD_SUFFIXES)}) under {payload.input}")
    warnings = list(payload.warnings) + warnings
    loc = RunLocation(ob, op)
    previous = (get_json_if_exists(s3, ob, loc.key(RUN_FILE)) or {}).get("run_id")
    if previous and previous != payload.run_id:
        warnings.append(f"output already held run {previous}; files of the same names are overwritten")
    bad_headers = [s for s in shards if s.header_error]
    if bad_headers:
        warnings.append(
            f"{len(bad_headers)} shard(s) with unreadable headers planned anyway, e.g. {bad_headers[0].key}"
        )
    items = plan_work_items(payload, shards)
    return RunPlan(payload=payload, shards=shards, items=items, warnings=warnings)


def prepare_run(s3: S3Client, payload: RunPayload, started_at: float) -> InitResult:
    """Plan the run (plan_run), write plan.json and run.json; return small data.

    Raises PayloadError for missing buckets, an empty input or overlapping locations.
    """
    from cosmicai.runstore import PLAN_FILE, RUN_FILE, RunLocation, put_json

    planned = plan_run(s3, payload)
    payload, items = planned.payload, planned.items
    ob, op = payload.output_location
    loc = RunLocation(ob, op)
    put_json(s3, ob, loc.key(PLAN_FILE), [item.wire() for item in items])
    run_doc = {
        "run_id": payload.run_id,
        "started_at": started_at,
        "payload": payload.model_dump(mode="json", exclude={"warnings"}),
        "warnings": planned.warnings,
        "items": len(items),
        "shards": len(planned.shards),
        "objects_planned": planned.objects_planned,
        "shards_without_count": planned.shards_without_count,
    }
    put_json(s3, ob, loc.key(RUN_FILE), run_doc)
    return init_result(
        payload, ob, loc.key(PLAN_FILE), len(items), len(planned.shards), planned.objects_planned, len(planned.warnings)
    )


def init_result(
    payload: RunPayload, bucket: str, items_key: str, items: int, shards: int, objects: int, warnings: int
) -> InitResult:
    """Init's small result (the state machine's ResultSelector reads it): where the Map's items are."""
    if not payload.run_id:
        raise PlanError("the payload has no run_id")
    return InitResult(
        run_id=payload.run_id,
        output=payload.output,
        plan=PlanLocation(bucket=bucket, key=items_key),
        items=items,
        shards=shards,
        objects=objects,
        max_concurrency=payload.max_concurrency,
        warnings=warnings,
    )
