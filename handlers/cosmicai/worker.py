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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

# The work item and the report are contracts (cosmicai.contracts); re-exported for the handlers.
from cosmicai.contracts import (
    FailedItem,
    FunctionInfo,
    PlannedShard as PlannedShard,
    Provenance,
    ShardResult,
    WorkerReport,
    WorkItem as WorkItem,
    WorkItemError as WorkItemError,
    item_status,
    report_errors,
)
from cosmicai.jsonlog import get_logger, log
from cosmicai.procstats import peak_rss_mb
from cosmicai.runstore import RunLocation, put_json

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from cosmicai.metrics import ShardPartial

_LOG = get_logger("cosmicai.worker")


class TransientStorageError(RuntimeError):
    """S3 failed after the client's own retries; the state machine retries the item."""


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
TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "InternalError",
        "ServiceUnavailable",
        "500",
        "503",
    }
)
# Peak memory per shard is about three copies of its bytes (the next shard prefetching, this
# shard's bytes, its decoded arrays) above the handler's init RSS, 382 MiB measured
# (bench/REPORT.md); 512 MiB keeps a margin for activations and the catalog.
BASE_MEMORY_MB = 512
DEFAULT_MEMORY_MB = 1769


def max_shard_bytes(memory_mb: int | None) -> int:
    """The largest shard a worker with `memory_mb` downloads; larger ones fail as `too_large`."""
    usable = max((memory_mb or DEFAULT_MEMORY_MB) - BASE_MEMORY_MB, 64)
    return usable * 1024 * 1024 // 3


def _download(
    s3: S3Client, bucket: str, shard: PlannedShard, max_bytes: int
) -> tuple[bytes | None, float, tuple[str, str] | None]:
    """(bytes, seconds, (error code, message)); errors are returned so one shard fails alone."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{shard.key}"
    if shard.bytes > max_bytes:
        return (
            None,
            0.0,
            (
                "too_large",
                f"{where}: {shard.bytes:,} bytes, over the {max_bytes:,} this worker's memory "
                "holds; split it with `cosmicai partition` (or raise infer_memory_mb)",
            ),
        )
    t0 = time.perf_counter()
    try:
        data = s3.get_object(Bucket=bucket, Key=shard.key)["Body"].read()
        return data, time.perf_counter() - t0, None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in TRANSIENT_S3_CODES:
            raise TransientStorageError(f"{where}: {code} after retries") from exc
        why = (
            " (deleted, or not readable by this function's role: S3 answers 403, not 404, for a missing key"
            " to a role without s3:ListBucket on the bucket)"
            if code in ("AccessDenied", "403")
            else ""
        )
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


def _with_previous(s3: S3Client, item: WorkItem, sections: list[ShardPartial]) -> list[ShardPartial]:
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
        log(
            _LOG,
            logging.WARNING,
            "earlier metric partial unreadable",
            detail=str(exc),
            run_id=item.run_id,
            item=item.item_id,
        )
        return sections
    if (old.run_id, old.item_id) != (item.run_id, item.item_id):
        return sections
    fresh = {s.key for s in sections}
    return [s for k, s in old.shards.items() if k not in fresh] + sections


def write_partials(s3: S3Client, item: WorkItem, sections: list[ShardPartial], *, keep_previous: bool = False) -> float:
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


def worker_provenance(engine: Any, item: WorkItem) -> Provenance:
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
    return Provenance(
        cosmicai_version=__version__,
        weights_name=name,
        weights_sha256=sha,
        model_card=card,
        backend=getattr(engine, "backend", None) or item.backend,
        precision=str(getattr(engine, "precision", item.precision)),
        uncertainty=item.uncertainty,
    )


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
    s3: S3Client,
    predictor: Callable[[], Predictor],
    *,
    cold_start: bool,
    init_seconds: float,
    context: FunctionInfo | Mapping[str, Any] | None = None,
) -> WorkerReport:
    """Process every shard of the item, write its report, return the report.

    The next shard downloads in the background while this one computes (`engine.prefetch`,
    depth 1: at most one shard's bytes ahead).
    """
    from cosmicai.catalog import catalog_to_bytes
    from cosmicai.engine import prefetch
    from cosmicai.shards import ShardError, read_shard

    started_at = time.time()
    t_start = time.perf_counter()
    loc = item.location
    ctx = {"run_id": item.run_id, "item": item.item_id}
    function = context if isinstance(context, FunctionInfo) else FunctionInfo.model_validate(context or {})
    t0 = time.perf_counter()
    engine = predictor()  # built (or taken from the warm cache) before the first shard
    engine_seconds = time.perf_counter() - t0
    provenance = worker_provenance(engine, item)
    predict = shard_predictor(engine, item)
    catalog_provenance = provenance.model_dump(mode="json")
    totals = {"download": 0.0, "compute": 0.0, "upload": 0.0}
    results: list[ShardResult] = []
    sections: list[ShardPartial] = []
    max_bytes = max_shard_bytes(function.memory_mb)

    def download(shard: PlannedShard) -> tuple[bytes | None, float, tuple[str, str] | None]:
        return _download(s3, item.input_bucket, shard, max_bytes)

    for planned, got, failure in prefetch(item.shards, download, depth=1):
        if failure is not None:  # TransientStorageError (or a bug): the item fails, the state machine retries
            raise failure
        assert got is not None  # a reader that did not raise returned its result
        data, dl_s, dl_err = got
        totals["download"] += dl_s
        if data is None:
            code, message = dl_err or ("unreadable", planned.key)
            results.append(_failed(planned, dl_s, code, message))
            log(_LOG, logging.WARNING, "shard download failed", shard=planned.key, error=message, **ctx)
            continue
        try:
            shard = read_shard(data, name=f"s3://{item.input_bucket}/{planned.key}")
        except ShardError as exc:
            results.append(_failed(planned, dl_s, exc.code, str(exc)))
            log(_LOG, logging.WARNING, "shard rejected", shard=planned.key, error=exc.code, detail=str(exc), **ctx)
            continue
        del data, got
        t1 = time.perf_counter()
        z_pred, errors = predict(shard)
        compute_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        body = catalog_to_bytes(
            shard.object_ids,
            z_pred,
            shard.redshift,
            ra=shard.ra,
            dec=shard.dec,
            provenance=catalog_provenance,
            uncertainty=errors,
        )
        key = loc.prediction_key(planned.name)
        s3.put_object(Bucket=loc.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet")
        upload_s = time.perf_counter() - t2
        sections.append(shard_partial(planned.key, shard.redshift, z_pred, errors["z_err"] if errors else None))
        totals["compute"] += compute_s
        totals["upload"] += upload_s
        results.append(
            ShardResult(
                key=planned.key,
                name=planned.name,
                download_s=round(dl_s, 4),
                status="succeeded",
                objects=shard.n,
                labelled=shard.has_redshift,
                prediction_key=key,
                compute_s=round(compute_s, 4),
                upload_s=round(upload_s, 4),
                objects_per_second=round(shard.n / compute_s, 2) if compute_s > 0 else None,
            )
        )
        log(_LOG, logging.INFO, "shard done", shard=planned.key, objects=shard.n, compute_s=round(compute_s, 3), **ctx)
    totals["upload"] += write_partials(s3, item, sections, keep_previous=item.resume)
    wall = time.perf_counter() - t_start
    predicted = sum(r.objects for r in results if r.status == "succeeded")
    status = item_status(results)
    report = WorkerReport(
        run_id=item.run_id,
        item_id=item.item_id,
        status=status,
        cold_start=cold_start,
        init_seconds=round(init_seconds, 4),
        engine_seconds=round(engine_seconds, 4),
        download_seconds=round(totals["download"], 4),
        compute_seconds=round(totals["compute"], 4),
        upload_seconds=round(totals["upload"], 4),
        wall_seconds=round(wall, 4),
        objects=predicted,
        objects_per_second=round(predicted / wall, 2) if wall > 0 else None,
        compute_objects_per_second=round(predicted / totals["compute"], 2) if totals["compute"] > 0 else None,
        peak_rss_mb=round(peak_rss_mb(), 1),
        cpus=cpus_seen(),
        batch_size=item.batch_size,
        precision=item.precision,
        provenance=provenance,
        started_at=started_at,
        finished_at=time.time(),
        function=function,
        shards=results,
        errors=report_errors(results),
    )
    if item.resume:
        report = with_previous_report(s3, loc, report)
    put_json(s3, loc.bucket, loc.worker_key(item.item_id), report.wire())
    log(_LOG, logging.INFO, "item done", status=status, objects=predicted, wall_s=round(wall, 3), **ctx)
    return report


def _failed(planned: PlannedShard, download_s: float, code: str, message: str) -> ShardResult:
    """A shard that failed in this worker (download or read), with the planned count as its objects."""
    return ShardResult(
        key=planned.key,
        name=planned.name,
        download_s=round(download_s, 4),
        status="failed",
        error=code,
        message=message,
        objects=planned.count or 0,
    )


def read_report(doc: Any) -> WorkerReport | None:
    """A worker report read back from S3 (None when `doc` is not one: absent, or another shape)."""
    from pydantic import ValidationError

    if not isinstance(doc, dict):
        return None
    try:
        return WorkerReport.model_validate(doc)
    except ValidationError:
        return None


def with_previous_report(s3: S3Client, loc: RunLocation, report: WorkerReport) -> WorkerReport:
    """A resumed item's report: this run's earlier entries for the shards it did not re-run, then
    the new ones, so the item's one report still lists every shard. `status` and `errors` cover
    all of them; `objects` and the timings stay this invocation's (the performance figures)."""
    from cosmicai.runstore import get_json_if_exists

    old = read_report(get_json_if_exists(s3, loc.bucket, loc.worker_key(report.item_id)))
    if old is None or old.run_id != report.run_id:
        return report
    fresh = {s.key for s in report.shards}
    shards = [s for s in old.shards if s.key not in fresh] + list(report.shards)
    return report.model_copy(
        update={"status": item_status(shards), "shards": shards, "errors": report_errors(shards), "resumed": True}
    )


def failure_report(item: FailedItem | Mapping[str, Any], error: str, message: str) -> WorkerReport:
    """Report of an item whose worker crashed or timed out: every shard failed with the caught error."""
    failed = item if isinstance(item, FailedItem) else FailedItem.model_validate(item)
    shards = [
        ShardResult(key=s.key, name=s.name, status="failed", error=error, message=message, objects=s.count or 0)
        for s in failed.shards
    ]
    return WorkerReport(
        run_id=failed.run_id,
        item_id=failed.item_id,
        status="failed",
        crashed=True,
        objects=0,
        finished_at=time.time(),
        shards=shards,
        errors=report_errors(shards),
    )
