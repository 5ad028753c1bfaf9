"""One work item: stream its shards from S3, predict, write catalogs and a worker report.

The next shard downloads in a background thread while the current one computes. A
bad shard fails alone (with its `ShardError.code`); the item's other shards still
complete. Keys are deterministic (`predictions/<shard name>.parquet`,
`metrics/<item_id>.json`, `workers/<item_id>.json`), so a rerun overwrites. The metric
partial (one section per succeeded shard) is written before the report, so a report of
this run implies its partial.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosmicai.jsonlog import get_logger, log
from cosmicai.procstats import peak_rss_mb
from cosmicai.runstore import RunLocation, put_json

if TYPE_CHECKING:
    from cosmicai.metrics import ShardPartial

_LOG = get_logger("cosmicai.worker")


class WorkItemError(ValueError):
    """The event is not a valid work item; the message names the field."""


class TransientStorageError(RuntimeError):
    """S3 failed after the client's own retries; the state machine retries the item."""


class PlannedShard(BaseModel):
    """One shard of a work item, as written by the planner."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1)
    name: str = Field(min_length=1, pattern=r"^[^/]+$")
    bytes: int = Field(ge=0)
    count: int | None = Field(None, ge=0)


class WorkItem(BaseModel):
    """A work item of the plan (see plan.plan_work_items)."""

    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(pattern=r"^[A-Za-z0-9._\-]{1,100}$")
    run_id: str = Field(min_length=1)
    input_bucket: str = Field(min_length=3)
    output: str = Field(pattern=r"^s3://")
    batch_size: int = Field(ge=1, le=8192)
    precision: Literal["fp32", "bf16", "int8", "fast"]
    backend: Literal["torch", "openvino"] = "torch"
    # per-object uncertainty (cosmicai.uncertainty): tta8 predicts the 8 rotations/flips of each cutout
    uncertainty: Literal["none", "tta8"] = "none"
    objects: int | None = None
    shards: list[PlannedShard] = Field(min_length=1)
    # a resumed run's item (resume.py): only its unfinished shards, merged into its earlier report
    resume: bool = False

    @classmethod
    def parse(cls, raw: Any) -> WorkItem:
        """Validate an event; raise WorkItemError naming the field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            raise WorkItemError(f"work item field {loc}: {err['msg']}") from None

    @property
    def location(self) -> RunLocation:
        """Output bucket and prefix."""
        from cosmicai.payload import split_s3_uri

        return RunLocation(*split_s3_uri(self.output, "output"))


class Predictor(Protocol):
    """What the worker needs of the engine."""

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray: ...


def cpus_seen() -> int:
    """CPUs this process may really use (affinity and cgroup quota, via the engine when present)."""
    try:
        from cosmicai.engine import available_cpus

        return available_cpus()
    except ImportError:  # orchestration image: no torch
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1


# S3 errors worth the state machine's retry; any other client error is this shard's own problem
# (missing, forbidden, archived, foreign KMS key...) and fails it alone with its code.
TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling", "ThrottlingException",
    "InternalError", "ServiceUnavailable", "500", "503",
})
# Peak memory per shard is about three copies of its bytes (the next shard prefetching, this
# shard's bytes, its decoded arrays) above the handler's init RSS, 382 MiB measured
# (bench/REPORT.md); 512 MiB keeps a margin for activations and the catalog.
BASE_MEMORY_MB = 512
DEFAULT_MEMORY_MB = 1769


def max_shard_bytes(memory_mb: int | None) -> int:
    """The largest shard a worker with `memory_mb` downloads; larger ones fail as `too_large`."""
    usable = max((memory_mb or DEFAULT_MEMORY_MB) - BASE_MEMORY_MB, 64)
    return usable * 1024 * 1024 // 3


def _download(s3: Any, bucket: str, shard: PlannedShard, max_bytes: int) -> tuple[bytes | None, float, tuple[str, str] | None]:
    """(bytes, seconds, (error code, message)); errors are returned so one shard fails alone."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{shard.key}"
    if shard.bytes > max_bytes:
        return None, 0.0, ("too_large", f"{where}: {shard.bytes:,} bytes, over the {max_bytes:,} this worker's memory "
                           "holds; split it with `cosmicai partition` (or raise infer_memory_mb)")
    t0 = time.perf_counter()
    try:
        data = s3.get_object(Bucket=bucket, Key=shard.key)["Body"].read()
        return data, time.perf_counter() - t0, None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in TRANSIENT_S3_CODES:
            raise TransientStorageError(f"{where}: {code} after retries") from exc
        why = " (deleted, or not readable by this function's role: S3 answers 403, not 404, for a missing key" \
              " to a role without s3:ListBucket on the bucket)" if code in ("AccessDenied", "403") else ""
        return None, time.perf_counter() - t0, ("unreadable", f"{where}: {code}{why}")
    except BotoCoreError as exc:
        raise TransientStorageError(f"{where}: {exc}") from exc


def shard_partial(
    key: str, z_true: np.ndarray | None, z_pred: np.ndarray, z_err: np.ndarray | None = None
) -> ShardPartial:
    """The metric-partial section of one predicted shard (empty when it has no labels; with `z_err`, its coverage)."""
    from cosmicai.metrics import MetricPartial, ShardPartial

    partial = MetricPartial.from_pairs(z_true, z_pred, z_err) if z_true is not None else MetricPartial()
    return ShardPartial(key, int(z_pred.size), partial)


def _with_previous(s3: Any, item: WorkItem, sections: list[ShardPartial]) -> list[ShardPartial]:
    """`sections` plus this run's earlier sections of this item for shards not in `sections`."""
    from cosmicai.metrics import PartialFormatError, partials_from_bytes
    from cosmicai.runstore import object_exists

    loc = item.location
    key = loc.metrics_key(item.item_id)
    if not object_exists(s3, loc.bucket, key):  # listed, not a GET: absent keys answer 403 to our role
        return sections
    try:
        old = partials_from_bytes(s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read(), f"s3://{loc.bucket}/{key}")
    except PartialFormatError as exc:  # Summarize reads those shards' catalogs instead, and says so
        log(_LOG, logging.WARNING, "earlier metric partial unreadable", detail=str(exc), run_id=item.run_id, item=item.item_id)
        return sections
    if (old.run_id, old.item_id) != (item.run_id, item.item_id):
        return sections
    fresh = {s.key for s in sections}
    return [s for k, s in old.shards.items() if k not in fresh] + sections


def write_partials(s3: Any, item: WorkItem, sections: list[ShardPartial], *, keep_previous: bool = False) -> float:
    """PUT the item's metric partial (`metrics/<item_id>.json`); returns the seconds it took.

    `keep_previous` is for an item that re-runs only some of its shards (a resumed run): the
    sections this run wrote earlier for its other shards are kept, so Summarize finds every
    succeeded shard in the partial; it merges only sections of shards it accounts as succeeded.
    """
    from cosmicai.metrics import partials_to_bytes

    t0 = time.perf_counter()
    loc = item.location
    if keep_previous:
        sections = _with_previous(s3, item, sections)
    body = partials_to_bytes(item.run_id, item.item_id, sections)
    s3.put_object(Bucket=loc.bucket, Key=loc.metrics_key(item.item_id), Body=body, ContentType="application/json")
    return time.perf_counter() - t0


def worker_provenance(engine: Any, item: WorkItem) -> dict[str, Any]:
    """What this worker ran with (its report's `provenance`, the catalogs' Parquet metadata): the
    cosmicai version, the weights' file name and sha256, the name the model card beside them gives
    when the card describes these very weights (by sha256; else null), the engine's backend and the
    precision it actually runs (`fast` resolved), and the uncertainty mode."""
    from cosmicai import __version__
    from cosmicai.data.modelcard import find_model_card
    from cosmicai.weightsfile import WeightsError, default_weights_path, weights_sha256

    name = sha = card = None
    try:
        path = default_weights_path()  # what the infer handler's models load
        name, sha = path.name, weights_sha256(path)
        found = find_model_card(path)
        card = str(found[1].get("weights_name") or name) if found else None
    except (WeightsError, OSError):
        pass
    return {"cosmicai_version": __version__, "weights_name": name, "weights_sha256": sha, "model_card": card,
            "backend": str(getattr(engine, "backend", item.backend)),
            "precision": str(getattr(engine, "precision", item.precision)), "uncertainty": item.uncertainty}


ShardPrediction = tuple[np.ndarray, dict[str, np.ndarray] | None]  # z_pred, the catalog's uncertainty columns


def shard_predictor(engine: Predictor, item: WorkItem) -> Callable[[Any], ShardPrediction]:
    """shard -> (z_pred, the catalog's uncertainty columns or None), for the item's uncertainty mode.

    tta8 reads the calibration from the model card of the weights the handler loads and raises
    UncertaintyNotCalibratedError (the item fails by that name) before any shard when there is none.
    """
    if item.uncertainty == "none":
        return lambda shard: (np.asarray(engine.predict(shard.images, shard.magnitudes), np.float32).reshape(-1), None)
    from cosmicai.uncertainty import Tta8Predictor, calibration_for
    from cosmicai.weightsfile import default_weights_path

    tta = Tta8Predictor(engine, calibration_for(default_weights_path()), images_per_call=item.batch_size)

    def predict(shard: Any) -> ShardPrediction:
        got = tta.predict(shard.images, shard.magnitudes)
        return got.z_pred, got.columns()

    return predict


def run_item(
    item: WorkItem,
    s3: Any,
    predictor: Callable[[], Predictor],
    *,
    cold_start: bool,
    init_seconds: float,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Process every shard of the item, write its report, return the report."""
    from cosmicai.catalog import catalog_to_bytes
    from cosmicai.shards import ShardError, read_shard

    started_at = time.time()
    t_start = time.perf_counter()
    loc = item.location
    ctx = {"run_id": item.run_id, "item": item.item_id}
    t0 = time.perf_counter()
    engine = predictor()  # built (or taken from the warm cache) before the first shard
    engine_seconds = time.perf_counter() - t0
    provenance = worker_provenance(engine, item)
    predict = shard_predictor(engine, item)
    totals = {"download": 0.0, "compute": 0.0, "upload": 0.0}
    results: list[dict[str, Any]] = []
    sections: list[ShardPartial] = []
    max_bytes = max_shard_bytes((context or {}).get("memory_mb"))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        nxt: Future | None = pool.submit(_download, s3, item.input_bucket, item.shards[0], max_bytes)
        for i, planned in enumerate(item.shards):
            assert nxt is not None
            data, dl_s, dl_err = nxt.result()
            more = i + 1 < len(item.shards)
            nxt = pool.submit(_download, s3, item.input_bucket, item.shards[i + 1], max_bytes) if more else None
            totals["download"] += dl_s
            entry: dict[str, Any] = {"key": planned.key, "name": planned.name, "download_s": round(dl_s, 4)}
            if data is None:
                code, message = dl_err or ("unreadable", planned.key)
                entry |= {"status": "failed", "error": code, "message": message, "objects": planned.count or 0}
                results.append(entry)
                log(_LOG, logging.WARNING, "shard download failed", shard=planned.key, error=message, **ctx)
                continue
            try:
                shard = read_shard(data, name=f"s3://{item.input_bucket}/{planned.key}")
            except ShardError as exc:
                entry |= {"status": "failed", "error": exc.code, "message": str(exc), "objects": planned.count or 0}
                results.append(entry)
                log(_LOG, logging.WARNING, "shard rejected", shard=planned.key, error=exc.code, detail=str(exc), **ctx)
                continue
            del data
            t1 = time.perf_counter()
            z_pred, errors = predict(shard)
            compute_s = time.perf_counter() - t1
            t2 = time.perf_counter()
            body = catalog_to_bytes(shard.object_ids, z_pred, shard.redshift, ra=shard.ra, dec=shard.dec,
                                    provenance=provenance, uncertainty=errors)
            key = loc.prediction_key(planned.name)
            s3.put_object(Bucket=loc.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet")
            upload_s = time.perf_counter() - t2
            sections.append(shard_partial(planned.key, shard.redshift, z_pred, errors["z_err"] if errors else None))
            totals["compute"] += compute_s
            totals["upload"] += upload_s
            entry |= {
                "status": "succeeded",
                "objects": shard.n,
                "labelled": shard.has_redshift,
                "prediction_key": key,
                "compute_s": round(compute_s, 4),
                "upload_s": round(upload_s, 4),
                "objects_per_second": round(shard.n / compute_s, 2) if compute_s > 0 else None,
            }
            results.append(entry)
            log(_LOG, logging.INFO, "shard done", shard=planned.key, objects=shard.n, compute_s=round(compute_s, 3), **ctx)
    totals["upload"] += write_partials(s3, item, sections, keep_previous=item.resume)
    wall = time.perf_counter() - t_start
    ok = [r for r in results if r["status"] == "succeeded"]
    predicted = sum(r["objects"] for r in ok)
    status = "succeeded" if len(ok) == len(results) else ("failed" if not ok else "partial")
    report = {
        "run_id": item.run_id,
        "item_id": item.item_id,
        "status": status,
        "cold_start": cold_start,
        "init_seconds": round(init_seconds, 4),
        "engine_seconds": round(engine_seconds, 4),
        "download_seconds": round(totals["download"], 4),
        "compute_seconds": round(totals["compute"], 4),
        "upload_seconds": round(totals["upload"], 4),
        "wall_seconds": round(wall, 4),
        "objects": predicted,
        "objects_per_second": round(predicted / wall, 2) if wall > 0 else None,
        "compute_objects_per_second": round(predicted / totals["compute"], 2) if totals["compute"] > 0 else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": cpus_seen(),
        "batch_size": item.batch_size,
        "precision": item.precision,
        "provenance": provenance,
        "started_at": started_at,
        "finished_at": time.time(),
        "function": context or {},
        "shards": results,
        "errors": [{"shard": r["key"], "error": r["error"], "message": r["message"]} for r in results if r["status"] == "failed"],
    }
    if item.resume:
        report = with_previous_report(s3, loc, report)
    put_json(s3, loc.bucket, loc.worker_key(item.item_id), report)
    log(_LOG, logging.INFO, "item done", status=status, objects=predicted, wall_s=round(wall, 3), **ctx)
    return report


def with_previous_report(s3: Any, loc: RunLocation, report: dict[str, Any]) -> dict[str, Any]:
    """A resumed item's report: this run's earlier entries for the shards it did not re-run, then
    the new ones, so the item's one report still lists every shard. `status` and `errors` cover
    all of them; `objects` and the timings stay this invocation's (the performance figures)."""
    from cosmicai.runstore import get_json_if_exists

    old = get_json_if_exists(s3, loc.bucket, loc.worker_key(str(report["item_id"])))
    if not isinstance(old, dict) or old.get("run_id") != report["run_id"]:
        return report
    fresh = {s.get("key") for s in report["shards"]}
    shards = [s for s in old.get("shards", []) if s.get("key") not in fresh] + list(report["shards"])
    ok = sum(1 for s in shards if s.get("status") == "succeeded")
    status = "succeeded" if ok == len(shards) else ("failed" if not ok else "partial")
    errors = [{"shard": s.get("key"), "error": s.get("error"), "message": s.get("message")}
              for s in shards if s.get("status") != "succeeded"]
    return report | {"status": status, "shards": shards, "errors": errors, "resumed": True}


def failure_report(item: dict[str, Any], error: str, message: str) -> dict[str, Any]:
    """Report of an item whose worker crashed or timed out: every shard failed with the caught error."""
    shards = item.get("shards") or []
    return {
        "run_id": item.get("run_id"),
        "item_id": item.get("item_id"),
        "status": "failed",
        "crashed": True,
        "objects": 0,
        "finished_at": time.time(),
        "shards": [
            {"key": s.get("key"), "name": s.get("name"), "status": "failed", "error": error,
             "message": message, "objects": s.get("count") or 0}
            for s in shards
        ],
        "errors": [{"shard": s.get("key"), "error": error, "message": message} for s in shards],
    }
