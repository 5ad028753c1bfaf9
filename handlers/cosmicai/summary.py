"""Summarize a run: check every planned shard against the results, exact metrics, summary.json.

Worker reports (`workers/<item>.json`) are the authority on which shards succeeded;
a shard counts as predicted only if its report says so *and* its catalog exists. A
planned shard with neither is failed with reason `missing_result`. Metrics are merged
from the workers' metric partials (`metrics/<item_id>.json`, one section per succeeded
shard; see cosmicai.metrics): only the sections of shards accounted as succeeded count, so
the metrics cover exactly the predicted objects. `metrics.rail` holds RAIL's point metrics
from the same merged distribution; `provenance` what the workers' reports say they ran with.
Summarize reads no catalog for them (a shard without a usable section, e.g. written by an older
worker, is read from its catalog and named in the warnings), so its time grows with work items,
not objects.

Summarize streams: plan.json is parsed as it is read, each item's report and partial are read
(bounded-parallel) and folded into running totals in plan order, and the rows that grow with the
run go to their own files (`summary/workers.jsonl`, `summary/failures.jsonl`); summary.json keeps
totals and the first FAILURES_LISTED failures. Its peak memory is the same at 1,000 and 40,000
items (bench/REPORT.md "Summarize at the limits").
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import ValidationError

from cosmicai.contracts import PlannedShard, ShardOutcome, ShardStatus, WorkerReport, WorkItem, first_problem
from cosmicai.metrics import (
    MetricAccumulator,
    MetricPartial,
    PartialFormatError,
    ShardPartial,
    error_bounds,
    partials_from_bytes,
)
from cosmicai.runstore import (
    METRICS_DIR,
    PLAN_FILE,
    PREDICTIONS_DIR,
    RUN_FILE,
    SUMMARY_FAILURES_FILE,
    SUMMARY_FILE,
    SUMMARY_WORKERS_FILE,
    WORKERS_DIR,
    JsonLinesSpool,
    ListedKeys,
    RunLocation,
    RunStoreError,
    get_json,
    get_json_if_exists,
    iter_json_array,
    object_exists,
    put_json,
)
from cosmicai.summary_tally import PerformanceTally, ProvenanceTally, WorkerTotals

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

# S3 GETs are latency-bound (~20-50 ms each): 16 in flight keeps Summarize's reads of 40,000
# reports and 40,000 partials to about a minute, while its memory holds at most 32 partials.
READ_THREADS = 16
MISSING = "missing_result"
# Failed shards listed in summary.json itself (all of them are in summary/failures.jsonl): enough
# to read what went wrong, and summary.json stays small when a whole 40,000-item run fails.
FAILURES_LISTED = 100
T = TypeVar("T")
R = TypeVar("R")


class SummaryError(RuntimeError):
    """The run cannot be summarized (no plan, plan of another run)."""


def parse_cause(error: dict[str, Any] | None) -> tuple[str, str]:
    """(error name, message) from a Step Functions Catch output {Error, Cause}."""
    if not error:
        return "unknown", "no error details"
    name = str(error.get("Error") or "unknown")
    cause = error.get("Cause") or ""
    try:  # Lambda errors carry a JSON cause with errorType / errorMessage
        doc = json.loads(cause)
        if isinstance(doc, dict):
            name = str(doc.get("errorType") or name)
            cause = str(doc.get("errorMessage") or cause)
    except (TypeError, ValueError):
        pass
    return name, str(cause)[:2000]


def account_item(
    item: WorkItem, report: WorkerReport | None, has_catalog: Callable[[str], bool], loc: RunLocation
) -> list[ShardOutcome]:
    """One outcome per planned shard of `item`.

    `report` is the item's worker report (this run only, None without one); `has_catalog(key)`
    says whether a prediction key is present in S3.
    """
    outcomes = []
    by_key = {s.key: s for s in report.shards} if report is not None else {}
    for planned in item.shards:
        got = by_key.get(planned.key)
        pred_key = loc.prediction_key(planned.name)
        if got is None:
            why = "no worker report for this item" if report is None else "the worker report does not list this shard"
            outcomes.append(_outcome(item, planned, "failed", planned.count or 0, error=MISSING, message=why))
        elif got.status == "succeeded" and has_catalog(pred_key):
            outcomes.append(_outcome(item, planned, "succeeded", got.objects, prediction_key=pred_key))
        elif got.status == "succeeded":
            why = f"worker reported success but {pred_key} is absent"
            outcomes.append(_outcome(item, planned, "failed", got.objects, error=MISSING, message=why))
        else:
            error, message = got.error or "unknown", got.message or ""
            count = got.objects or planned.count or 0
            outcomes.append(_outcome(item, planned, "failed", count, error=error, message=message))
    return outcomes


def _outcome(
    item: WorkItem,
    planned: PlannedShard,
    status: ShardStatus,
    objects: int,
    *,
    error: str | None = None,
    message: str | None = None,
    prediction_key: str | None = None,
) -> ShardOutcome:
    return ShardOutcome(
        item_id=item.item_id,
        key=planned.key,
        name=planned.name,
        status=status,
        objects=objects,
        error=error,
        message=message,
        prediction_key=prediction_key,
    )


@dataclass(frozen=True)
class AccountedItem:
    """One planned item, its worker report (None: none of this run) and one outcome per shard."""

    item: WorkItem
    report: WorkerReport | None
    outcomes: list[ShardOutcome]


class RunReports:
    """The run's worker reports, read item by item in plan order, and its catalogs' presence.

    One listing each of `workers/` and `predictions/` says what exists (ListedKeys: a GET of an
    absent key answers 403 to our roles, and 17 bytes a key, not a set of 40,000 strings).
    `accounted(plan)` reads each planned item's report (bounded-parallel) and accounts its shards;
    `unplanned()` then reads the reports no planned item claimed (other runs' are counted as
    stale, this run's are yielded). `warnings()` names unreadable and stale reports.
    """

    def __init__(self, s3: S3Client, loc: RunLocation, run_id: str) -> None:
        self.s3, self.loc, self.run_id = s3, loc, run_id
        self.listed = ListedKeys(s3, loc.bucket, loc.key(WORKERS_DIR), suffix=".json")
        self.catalogs = ListedKeys(s3, loc.bucket, loc.key(PREDICTIONS_DIR))
        self.errors: list[str] = []
        self.stale = 0

    def _get(self, key: str) -> Any:
        """The report at `key` (None when absent), or the RunStoreError reading it raised (kept for the consumer)."""
        if key not in self.listed:
            return None
        try:
            return get_json(self.s3, self.loc.bucket, key)
        except RunStoreError as exc:
            return exc

    def _keep(self, key: str, doc: Any) -> WorkerReport | None:
        """`doc` parsed, if it is a report of this run; counts the others (in the consumer's thread: no races)."""
        if isinstance(doc, RunStoreError):
            self.errors.append(str(doc))
            return None
        if not isinstance(doc, dict):
            return None
        if doc.get("run_id") != self.run_id:
            self.stale += 1
            return None
        try:
            return WorkerReport.model_validate(doc)
        except ValidationError as exc:
            problem = first_problem(exc)
            self.errors.append(
                f"{key}: not a worker report ({problem.field}: {problem.message}); its shards count as missing"
            )
            return None

    def accounted(self, plan: Iterable[Any]) -> Iterator[AccountedItem]:
        """Each plan entry (a WorkItem, or its JSON object as plan.json holds it) accounted, in plan order."""

        def read(entry: Any) -> tuple[WorkItem, str, Any]:
            item = entry if isinstance(entry, WorkItem) else WorkItem.model_validate(entry)
            key = self.loc.worker_key(item.item_id)
            return item, key, self._get(key)

        for item, key, doc in stream_map(read, plan):
            self.listed.take(key)
            report = self._keep(key, doc)
            yield AccountedItem(item, report, account_item(item, report, self.catalogs.take, self.loc))

    def unplanned(self) -> Iterator[WorkerReport]:
        """This run's reports under workers/ that no planned item read (after `accounted`)."""
        if not self.listed.untaken:
            return
        for key, doc in stream_map(lambda k: (k, self._get(k)), self.listed.untaken_keys(self.s3)):
            report = self._keep(key, doc)
            if report is not None:
                yield report

    def warnings(self) -> list[str]:
        if not self.stale:
            return list(self.errors)
        return [*self.errors, f"{self.stale} worker report(s) of other runs under {self.loc.key(WORKERS_DIR)} ignored"]


def stream_map(
    fn: Callable[[T], R], items: Iterable[T], threads: int = READ_THREADS, window: int | None = None
) -> Iterator[R]:
    """`fn` over `items` on `threads` threads, results in input order, at most `window` in flight.

    Unlike `ThreadPoolExecutor.map`, which submits every item at once and queues every result
    the consumer has not yet taken, this holds at most `window` (default 2 x threads) results:
    memory stays the same at 1,000 and 40,000 items. Input order makes the merged float sums,
    and so summary.json, the same on every run.
    """
    window = window or 2 * threads
    it = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="summarize-read") as pool:
        pending: deque[Future[R]] = deque(pool.submit(fn, x) for x in islice(it, window))
        while pending:
            result = pending.popleft().result()
            for x in islice(it, 1):
                pending.append(pool.submit(fn, x))
            yield result


def _catalog_partial(s3: S3Client, loc: RunLocation, o: ShardOutcome) -> ShardPartial:
    """A shard's partial from its catalog: the fallback for a shard whose item left no usable partial."""
    from cosmicai.catalog import read_catalog

    if o.prediction_key is None:  # never: only succeeded shards are read, and each has its catalog key
        raise ValueError(f"shard {o.key} has no catalog to read its metrics from")
    table = read_catalog(s3.get_object(Bucket=loc.bucket, Key=o.prediction_key)["Body"].read())
    z_true = table.column("z_true").to_numpy(zero_copy_only=False).astype(np.float64)
    z_pred = table.column("z_pred").to_numpy(zero_copy_only=False)
    known = ~np.isnan(z_true)
    z_err = table.column("z_err").to_numpy(zero_copy_only=False)[known] if "z_err" in table.column_names else None
    return ShardPartial(o.key, int(len(z_pred)), MetricPartial.from_pairs(z_true[known], z_pred[known], z_err))


def _item_partials(
    s3: S3Client, loc: RunLocation, run_id: str, item_id: str, wanted: list[ShardOutcome], present: bool
) -> tuple[list[ShardPartial], str | None]:
    """The sections of `wanted` (succeeded outcomes of one item): from the item's partial file, and
    from catalogs for any shard the file does not cover; with the reason when a fallback was needed."""
    key = loc.metrics_key(item_id)
    found: dict[str, ShardPartial] = {}
    why = None if present else f"{key} absent"
    if present:
        try:
            doc = partials_from_bytes(
                s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read(), f"s3://{loc.bucket}/{key}"
            )
            if doc.run_id != run_id or doc.item_id != item_id:
                why = f"{key} belongs to run {doc.run_id} item {doc.item_id}"
            else:
                found = doc.shards
        except PartialFormatError as exc:
            why = str(exc)
    sections = [found[o.key] if o.key in found else _catalog_partial(s3, loc, o) for o in wanted]
    if why is None and len(found.keys() & {o.key for o in wanted}) < len(wanted):
        why = f"{key} lacks {len(wanted) - len(found.keys() & {o.key for o in wanted})} succeeded shard(s)"
    return sections, why


class PartialMerge:
    """The metric partials of every succeeded shard merged into one MetricAccumulator, item by item.

    `read(entry)` (on a read thread) fetches an item's sections; `add` (in plan order) merges them
    and fixes each outcome's `objects` to the rows its partial says the catalog holds. Holds one
    accumulator and the presence of the partials (ListedKeys), nothing per item.
    """

    def __init__(self, s3: S3Client, loc: RunLocation, run_id: str) -> None:
        self.s3, self.loc, self.run_id = s3, loc, run_id
        # One listing, not a GET per item: absent keys answer 403 to our role, and 40 pages are cheap.
        self.present = ListedKeys(s3, loc.bucket, loc.key(METRICS_DIR))
        self.acc = MetricAccumulator()
        self.labelled = self.items = self.shards = self.fallback_items = self.fallback_shards = 0
        self.first_reason = ""
        self.row_warnings: list[str] = []  # a partial whose rows differ from its worker's report

    def read(self, entry: AccountedItem) -> tuple[AccountedItem, list[ShardPartial], str | None]:
        wanted = [o for o in entry.outcomes if o.status == "succeeded"]
        if not wanted:
            return entry, [], None
        item_id = entry.item.item_id
        present = self.loc.metrics_key(item_id) in self.present
        return (entry, *_item_partials(self.s3, self.loc, self.run_id, item_id, wanted, present))

    def add(self, entry: AccountedItem, sections: list[ShardPartial], why: str | None) -> None:
        wanted = [o for o in entry.outcomes if o.status == "succeeded"]
        if not wanted:
            return
        for o, sec in zip(wanted, sections, strict=True):
            if sec.rows != o.objects:
                self.row_warnings.append(f"{o.prediction_key}: {sec.rows} rows but the worker reported {o.objects}")
                o.objects = sec.rows
            self.acc.add(sec.partial)
            self.labelled += sec.partial.n
        self.items += 1
        self.shards += len(wanted)
        if why:
            self.fallback_items += 1
            self.fallback_shards += len(wanted)
            self.first_reason = self.first_reason or why

    def warnings(self) -> list[str]:
        fallback = (
            [
                f"metrics of {self.fallback_shards} shard(s) of {self.fallback_items} item(s) read from their "
                f"catalogs, no usable metric partial (first: {self.first_reason})"
            ]
            if self.fallback_items
            else []
        )
        return self.row_warnings + fallback

    def source(self) -> dict[str, Any]:
        """summary.json's `metrics_source`."""
        return {
            "method": "merged per-item metric partials (cosmicai.metrics.MetricAccumulator)",
            "partials": self.items - self.fallback_items,
            "shards": self.shards,
            "shards_from_catalogs": self.fallback_shards,
            "error_bounds": error_bounds(),
        }


@dataclass
class ShardTally:
    """summary.json's `objects` and `shards` from the outcomes added item by item: counts, the first
    FAILURES_LISTED failures, and every failure written to `failures` (summary/failures.jsonl)."""

    failures: JsonLinesSpool
    total: int = 0
    succeeded: int = 0
    predicted: int = 0
    failed_objects: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcomes: list[ShardOutcome]) -> None:
        for o in outcomes:
            self.total += 1
            if o.status == "succeeded":
                self.succeeded += 1
                self.predicted += o.objects
                continue
            self.failed_objects += o.objects
            row = {"shard": o.key, "item_id": o.item_id, "error": o.error, "message": o.message, "objects": o.objects}
            self.failures.write(row)
            if len(self.listed) < FAILURES_LISTED:
                self.listed.append(row)

    @property
    def failed(self) -> int:
        return self.total - self.succeeded

    @property
    def status(self) -> str:
        return "SUCCEEDED" if not self.failed else ("FAILED" if not self.succeeded else "PARTIAL")

    def shards_doc(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failures": self.listed,
            "failures_listed": len(self.listed),
            "failures_file": SUMMARY_FAILURES_FILE,
        }


def _cost(totals: WorkerTotals, items: int, shards: int, predicted: int, arch: str = "x86_64") -> dict[str, Any]:
    """This run's bill (costs.run_bill, the function the projection and `cosmicai costs` use): the infer
    GB-s the live workers' reports measured, every other charge counted from the run's counts."""
    from cosmicai.costs import CostError, Deployment, RunShape, run_bill, usage_with_orchestration

    if not totals.workers or not totals.memory_mb:
        return {
            "usd": None,
            "usd_per_million_objects": None,
            "reason": "no worker reported its Lambda memory size (functions not run on Lambda?)",
        }
    memory = totals.memory_mb
    # Each worker at its own size; workers that report none at the largest reported.
    infer_gb_s = (totals.billed_mb_seconds + memory * totals.billed_seconds_unsized) / 1024
    try:
        deployment = Deployment(infer_memory_mb=memory, arch=arch)
        # Items without a live worker's report went through Record failure; retries and the client's
        # polling time are not known to Summarize (counted as none and one poll).
        shape = RunShape(
            objects=predicted,
            shards=max(shards, items),
            items=max(items, 1),
            cold_starts=min(totals.cold_starts, max(items, 1)),
            failed_items=max(0, items - totals.workers),
        )
        bill = run_bill(shape, usage_with_orchestration(shape, infer_gb_s, deployment, "worker reports"), deployment)
    except CostError as exc:
        return {"usd": None, "usd_per_million_objects": None, "reason": str(exc)}
    return {
        "usd": bill.usd,
        "usd_per_million_objects": bill.usd_per_million_objects,
        "components": bill.components,
        "bill": bill.as_dict(),
        "inputs": {
            "memory_mb": memory,
            "arch": arch,
            "billed_seconds_total": totals.billed_seconds,
            "items": items,
            "shards": shards,
            "objects": predicted,
        },
    }


def summarize_run(
    s3: S3Client,
    loc: RunLocation,
    run_id: str | None = None,
    map_error: dict[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Build and write `<output>/summary.json` (and summary/workers.jsonl, summary/failures.jsonl);
    returns the summary document."""
    run = get_json_if_exists(s3, loc.bucket, loc.key(RUN_FILE))
    if run is None or not object_exists(s3, loc.bucket, loc.key(PLAN_FILE)):
        raise SummaryError(f"{loc.uri}: no {RUN_FILE}/{PLAN_FILE}; did Init run?")
    if run_id is not None and run.get("run_id") != run_id:
        raise SummaryError(f"{loc.uri}{RUN_FILE} belongs to run {run.get('run_id')}, not {run_id}")
    run_id = run["run_id"]
    reports = RunReports(s3, loc, run_id)
    merge = PartialMerge(s3, loc, run_id)
    provenance = ProvenanceTally()
    items = reported = crashed = 0
    with JsonLinesSpool() as worker_rows, JsonLinesSpool() as failure_rows:
        perf = PerformanceTally(worker_rows)
        shards = ShardTally(failure_rows)

        def add_report(report: WorkerReport) -> None:
            nonlocal crashed
            perf.add(report)
            provenance.add(report)
            crashed += report.crashed

        plan = iter_json_array(s3, loc.bucket, loc.key(PLAN_FILE))
        for entry, sections, why in stream_map(merge.read, reports.accounted(plan)):
            merge.add(entry, sections, why)  # first: it fixes `objects` to the partial's rows
            shards.add(entry.outcomes)
            items += 1
            if entry.report is not None:
                reported += 1
                add_report(entry.report)
        for report in reports.unplanned():
            add_report(report)
        worker_rows.upload(s3, loc.bucket, loc.key(SUMMARY_WORKERS_FILE))
        failure_rows.upload(s3, loc.bucket, loc.key(SUMMARY_FAILURES_FILE))

    warnings: list[str] = list(run.get("warnings", [])) + reports.warnings()
    if reports.catalogs.untaken:
        warnings.append(
            f"{reports.catalogs.untaken} catalog(s) under {loc.key(PREDICTIONS_DIR)} not in this run's plan ignored"
        )
    if map_error:
        name, msg = parse_cause(map_error)
        warnings.append(f"the Map state failed: {name}: {msg}")
    warnings += merge.warnings()
    metrics_source = merge.source()
    metrics = None
    if merge.acc.n:  # the reference's figures and RAIL's (metrics.rail) from one merged distribution
        metrics, rail = merge.acc.compute_with_rail()
        metrics_source["rail_outlier_rate"] = rail.outlier_bounds()
        if not rail.outlier_bounds()["exact"]:
            warnings.append(
                f"metrics.rail.outlier_rate: {rail.outlier_bounds()['objects_undecided']} object(s) lie within "
                "the histogram's error of the outlier threshold; the exact rate is within "
                "metrics_source.rail_outlier_rate [lower, upper]"
            )
    finished = now if now is not None else time.time()
    wall = finished - float(run["started_at"]) if run.get("started_at") else None
    summary = {
        "run_id": run_id,
        "status": shards.status,
        "input": run.get("payload", {}).get("input"),
        "output": loc.uri,
        "started_at": run.get("started_at"),
        "finished_at": finished,
        "objects": {
            "total": shards.predicted + shards.failed_objects,
            "predicted": shards.predicted,
            "failed": shards.failed_objects,
            "labelled": merge.labelled,
        },
        "shards": shards.shards_doc(),
        "items": {"total": items, "reported": reported, "crashed": crashed},
        "metrics": metrics,
        "metrics_source": metrics_source,
        "provenance": provenance.result(),
        "performance": perf.result(wall, shards.predicted),
        "cost": _cost(perf.totals, items, shards.total, shards.predicted),
        "warnings": warnings,
    }
    put_json(s3, loc.bucket, loc.key(SUMMARY_FILE), summary)
    return summary
