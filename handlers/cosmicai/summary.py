"""Summarize a run: check every planned shard against the results, exact metrics, summary.json.

Worker reports (`workers/<item>.json`) are the authority on which shards succeeded;
a shard counts as predicted only if its report says so *and* its catalog exists. A
planned shard with neither is failed with reason `missing_result`. Metrics are merged
from the workers' metric partials (`metrics/<item_id>.json`, one section per succeeded
shard; see cosmicai.metrics): only the sections of shards accounted as succeeded count, so
the metrics cover exactly the predicted objects. `metrics.rail` holds RAIL's point metrics
from the same merged distribution; `provenance` what the workers' reports say they ran with. Summarize reads no catalog for them (a
shard without a usable section, e.g. written by an older worker, is read from its catalog
and named in the warnings), so its memory and time grow with work items, not objects.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import groupby, islice
from typing import Any, TypeVar

import numpy as np

from cosmicai.metrics import MetricAccumulator, MetricPartial, PartialFormatError, ShardPartial, error_bounds, partials_from_bytes
from cosmicai.runstore import (
    METRICS_DIR,
    PLAN_FILE,
    PREDICTIONS_DIR,
    RUN_FILE,
    SUMMARY_FILE,
    WORKERS_DIR,
    RunLocation,
    RunStoreError,
    get_json,
    get_json_if_exists,
    list_objects,
    put_json,
)

# S3 GETs are latency-bound (~20-50 ms each): 16 in flight keeps Summarize's reads of 40,000
# reports and 40,000 partials to about a minute, while its memory holds at most 32 partials.
READ_THREADS = 16
MISSING = "missing_result"
T = TypeVar("T")
R = TypeVar("R")


class SummaryError(RuntimeError):
    """The run cannot be summarized (no plan, plan of another run)."""


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (linear), None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


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


def account(plan: list[dict[str, Any]], reports: dict[str, dict[str, Any]], catalogs: set[str], loc: RunLocation) -> list[dict[str, Any]]:
    """One outcome per planned shard: {item_id, key, name, status, objects, error, message}.

    `reports` maps item_id to its worker report (this run only); `catalogs` is the set
    of prediction keys present in S3.
    """
    outcomes = []
    for item in plan:
        report = reports.get(item["item_id"])
        by_key = {s.get("key"): s for s in (report or {}).get("shards", [])}
        for planned in item["shards"]:
            got = by_key.get(planned["key"])
            base = {"item_id": item["item_id"], "key": planned["key"], "name": planned["name"]}
            pred_key = loc.prediction_key(planned["name"])
            if got is None:
                why = "no worker report for this item" if report is None else "the worker report does not list this shard"
                outcomes.append(base | {"status": "failed", "objects": planned.get("count") or 0, "error": MISSING, "message": why})
            elif got.get("status") == "succeeded" and pred_key in catalogs:
                outcomes.append(base | {"status": "succeeded", "objects": int(got["objects"]), "prediction_key": pred_key})
            elif got.get("status") == "succeeded":
                outcomes.append(base | {"status": "failed", "objects": int(got["objects"]), "error": MISSING,
                                        "message": f"worker reported success but {pred_key} is absent"})
            else:
                count = got.get("objects") or planned.get("count") or 0
                outcomes.append(base | {"status": "failed", "objects": int(count), "error": str(got.get("error") or "unknown"),
                                        "message": str(got.get("message") or "")})
    return outcomes


# What accounting, summary.json's performance section and the resume planner read of a worker
# report. Keeping only these (in dicts with shared key strings) took 40,000 reports from ~4.2 KB
# to ~1.5 KB each in Summarize's memory (measured with tracemalloc; bench/REPORT.md).
REPORT_FIELDS = ("run_id", "item_id", "status", "crashed", "cold_start", "init_seconds", "download_seconds",
                 "compute_seconds", "upload_seconds", "wall_seconds", "objects", "objects_per_second",
                 "compute_objects_per_second", "peak_rss_mb", "cpus", "started_at", "finished_at", "provenance")
REPORT_SHARD_FIELDS = ("key", "status", "objects", "error", "message")


def slim_report(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of a worker report that Summarize uses (REPORT_FIELDS, shards' REPORT_SHARD_FIELDS,
    function.memory_mb)."""
    out = {k: doc[k] for k in REPORT_FIELDS if k in doc}
    function = doc.get("function")
    if isinstance(function, dict) and "memory_mb" in function:
        out["function"] = {"memory_mb": function["memory_mb"]}
    shards = doc.get("shards")
    out["shards"] = [{k: s[k] for k in REPORT_SHARD_FIELDS if k in s} if isinstance(s, dict) else s
                     for s in (shards if isinstance(shards, list) else [])]
    return out


def read_reports(s3: Any, loc: RunLocation, run_id: str, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """item_id -> slim_report of every worker report of `run_id` under workers/ (others counted in a warning)."""
    keys = [o["Key"] for o in list_objects(s3, loc.bucket, loc.key(WORKERS_DIR)) if o["Key"].endswith(".json")]

    def read(key: str) -> dict[str, Any] | None:
        try:
            doc = get_json(s3, loc.bucket, key)
        except RunStoreError as exc:
            warnings.append(str(exc))
            return None
        return slim_report(doc) if isinstance(doc, dict) else None

    reports, stale = {}, 0
    seen: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for doc in stream_map(read, keys):
        if doc is None:
            continue
        if doc.get("run_id") != run_id:
            stale += 1
            continue
        if isinstance(doc.get("provenance"), dict):  # one shared dict per distinct combination, not one per report
            doc["provenance"] = seen.setdefault(_provenance_key(doc["provenance"]), doc["provenance"])
        reports[str(doc.get("item_id"))] = doc
    if stale:
        warnings.append(f"{stale} worker report(s) of other runs under {loc.key(WORKERS_DIR)} ignored")
    return reports


# What a worker report's `provenance` records (worker.worker_provenance), in summary.json's order.
PROVENANCE_FIELDS = ("cosmicai_version", "weights_name", "weights_sha256", "model_card", "backend", "precision",
                     "uncertainty")


def _provenance_key(prov: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, json.dumps(prov.get(k), sort_keys=True)) for k in PROVENANCE_FIELDS)


def provenance(reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's `provenance`: what the workers report they ran with.

    Each field (PROVENANCE_FIELDS) is the value every reporting worker agrees on, null where they
    differ; `combinations` lists each distinct combination with its item count (one entry when
    all agree); `items_unrecorded` counts reports without provenance (crashed items, older workers).
    """
    counts: dict[tuple[tuple[str, str], ...], int] = {}
    first: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    unrecorded = 0
    for r in sorted(reports, key=lambda r: str(r.get("item_id"))):
        prov = r.get("provenance")
        if not isinstance(prov, dict):
            unrecorded += 1
            continue
        key = _provenance_key(prov)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, {k: prov.get(k) for k in PROVENANCE_FIELDS})
    combos = [first[k] | {"items": n} for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    agreed = {k: (combos[0][k] if combos and all(c[k] == combos[0][k] for c in combos) else None) for k in PROVENANCE_FIELDS}
    return agreed | {"consistent": len(combos) == 1, "combinations": combos, "items_unrecorded": unrecorded}


def stream_map(fn: Callable[[T], R], items: Iterable[T], threads: int = READ_THREADS, window: int | None = None) -> Iterator[R]:
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


def _catalog_partial(s3: Any, loc: RunLocation, o: dict[str, Any]) -> ShardPartial:
    """A shard's partial from its catalog: the fallback for a shard whose item left no usable partial."""
    from cosmicai.catalog import read_catalog

    table = read_catalog(s3.get_object(Bucket=loc.bucket, Key=o["prediction_key"])["Body"].read())
    z_true = table.column("z_true").to_numpy(zero_copy_only=False).astype(np.float64)
    z_pred = table.column("z_pred").to_numpy(zero_copy_only=False)
    known = ~np.isnan(z_true)
    return ShardPartial(o["key"], int(len(z_pred)), MetricPartial.from_pairs(z_true[known], z_pred[known]))


def _item_partials(s3: Any, loc: RunLocation, run_id: str, item_id: str, wanted: list[dict[str, Any]],
                   present: bool) -> tuple[list[ShardPartial], str | None]:
    """The sections of `wanted` (succeeded outcomes of one item): from the item's partial file, and
    from catalogs for any shard the file does not cover; with the reason when a fallback was needed."""
    key = loc.metrics_key(item_id)
    found: dict[str, ShardPartial] = {}
    why = None if present else f"{key} absent"
    if present:
        try:
            doc = partials_from_bytes(s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read(), f"s3://{loc.bucket}/{key}")
            if doc.run_id != run_id or doc.item_id != item_id:
                why = f"{key} belongs to run {doc.run_id} item {doc.item_id}"
            else:
                found = doc.shards
        except PartialFormatError as exc:
            why = str(exc)
    sections = [found[o["key"]] if o["key"] in found else _catalog_partial(s3, loc, o) for o in wanted]
    if why is None and len(found.keys() & {o["key"] for o in wanted}) < len(wanted):
        why = f"{key} lacks {len(wanted) - len(found.keys() & {o['key'] for o in wanted})} succeeded shard(s)"
    return sections, why


def _succeeded_by_item(outcomes: Iterable[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(item_id, its succeeded outcomes) lazily; `account` lists each item's shards together."""
    for item_id, group in groupby(outcomes, key=lambda o: o["item_id"]):
        ok = [o for o in group if o["status"] == "succeeded"]
        if ok:
            yield item_id, ok


def _merge_partials(s3: Any, loc: RunLocation, run_id: str, outcomes: Iterable[dict[str, Any]],
                    warnings: list[str]) -> tuple[MetricAccumulator, int, dict[str, Any]]:
    """Merge the metric partials of every succeeded shard (bounded-parallel, streaming); fixes
    `objects` to the rows each partial says its catalog holds. Returns (accumulator, labelled, source)."""
    # One listing, not a GET per item: absent keys answer 403 to our role, and 40 pages are cheap.
    present = {o["Key"] for o in list_objects(s3, loc.bucket, loc.key(METRICS_DIR))}

    def read(entry: tuple[str, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[ShardPartial], str | None]:
        item_id, wanted = entry
        return (wanted, *_item_partials(s3, loc, run_id, item_id, wanted, loc.metrics_key(item_id) in present))

    acc = MetricAccumulator()
    labelled = items = shards = fallback_items = fallback_shards = 0
    first_reason = ""
    for wanted, sections, why in stream_map(read, _succeeded_by_item(outcomes)):
        for o, sec in zip(wanted, sections):
            if sec.rows != o["objects"]:
                warnings.append(f"{o['prediction_key']}: {sec.rows} rows but the worker reported {o['objects']}")
                o["objects"] = sec.rows
            acc.add(sec.partial)
            labelled += sec.partial.n
        items += 1
        shards += len(wanted)
        if why:
            fallback_items += 1
            fallback_shards += len(wanted)
            first_reason = first_reason or why
    if fallback_items:
        warnings.append(f"metrics of {fallback_shards} shard(s) of {fallback_items} item(s) read from their catalogs, "
                        f"no usable metric partial (first: {first_reason})")
    source = {"method": "merged per-item metric partials (cosmicai.metrics.MetricAccumulator)",
              "partials": items - fallback_items, "shards": shards, "shards_from_catalogs": fallback_shards,
              "error_bounds": error_bounds()}
    return acc, labelled, source


def _performance(reports: dict[str, dict[str, Any]], wall: float | None, predicted: int) -> dict[str, Any]:
    live = [r for r in reports.values() if not r.get("crashed")]
    secs = [float(r.get("wall_seconds") or 0.0) for r in live]
    workers = [
        {
            "item_id": r["item_id"],
            "objects": r.get("objects", 0),
            "seconds": r.get("wall_seconds"),
            "objects_per_second": r.get("objects_per_second"),
            "compute_objects_per_second": r.get("compute_objects_per_second"),
            "cold_start": r.get("cold_start"),
            "init_seconds": r.get("init_seconds"),
            "download_seconds": r.get("download_seconds"),
            "compute_seconds": r.get("compute_seconds"),
            "upload_seconds": r.get("upload_seconds"),
            "started_at": r.get("started_at"),
            "finished_at": r.get("finished_at"),
            "peak_rss_mb": r.get("peak_rss_mb"),
            "cpus": r.get("cpus"),
            "memory_mb": (r.get("function") or {}).get("memory_mb"),
        }
        for r in sorted(live, key=lambda r: r["item_id"])
    ]
    rates = [w["objects_per_second"] for w in workers if w["objects_per_second"]]
    return {
        "wall_seconds": round(wall, 3) if wall is not None else None,
        "objects_per_second": round(predicted / wall, 2) if wall else None,
        "workers": len(workers),
        "worker_seconds_p50": percentile(secs, 50),
        "worker_seconds_p95": percentile(secs, 95),
        "worker_seconds_total": round(sum(secs), 3),
        "worker_objects_per_second_p50": percentile(rates, 50),
        "cold_starts": sum(1 for w in workers if w["cold_start"]),
        "per_worker": workers,
    }


# State transitions of the run: Init, Map, Summarize, Choice, end; per item: start + Infer.
RUN_TRANSITIONS = 5
ITEM_TRANSITIONS = 2


def _cost(perf: dict[str, Any], items: int, shards: int, predicted: int, arch: str = "x86_64") -> dict[str, Any]:
    """Projected USD of this run and per million objects (costs.py), from the worker reports."""
    from cosmicai.costs import DEFAULT_PRICES, CostError, CostInputs, cost_per_million, lambda_compute_usd

    workers = perf["per_worker"]
    memories = {w["memory_mb"] for w in workers if w.get("memory_mb")}
    if not workers or not memories:
        return {"usd": None, "usd_per_million_objects": None,
                "reason": "no worker reported its Lambda memory size (functions not run on Lambda?)"}
    memory = max(memories)
    billed = [float(w.get("init_seconds") or 0) + float(w.get("seconds") or 0) for w in workers]
    p = DEFAULT_PRICES
    compute = sum(lambda_compute_usd(w.get("memory_mb") or memory, b, arch, p) for w, b in zip(workers, billed))
    # Requests: every item plus init, summarize. S3 GETs: each shard once (the worker), each item's report
    # and metric partial (Summarize), run and plan; PUTs: catalogs, reports, partials, run, plan, summary.
    requests = p.lambda_per_request * (items + 2)
    sfn = p.sfn_per_transition * (RUN_TRANSITIONS + ITEM_TRANSITIONS * items)
    s3 = p.s3_get * (shards + 2 * items + 2) + p.s3_put * (shards + 2 * items + 3)
    run_usd = compute + requests + sfn + s3
    out: dict[str, Any] = {
        "usd": run_usd,
        "components": {"lambda_compute": compute, "lambda_requests": requests, "step_functions": sfn, "s3": s3},
        "inputs": {"memory_mb": memory, "arch": arch, "billed_seconds_total": sum(billed), "items": items,
                   "shards": shards, "objects": predicted},
    }
    busy = sum(float(w.get("seconds") or 0) for w in workers)
    if predicted and busy > 0:
        cold = [float(w.get("init_seconds") or 0) for w in workers if w.get("cold_start")]
        try:
            out["per_million"] = cost_per_million(CostInputs(
                memory_mb=memory,
                objects_per_s=predicted / busy,
                objects_per_invocation=max(1, round(predicted / len(workers))),
                init_s=sum(cold) / len(workers),
                arch=arch,
                sfn_transitions_per_invocation=ITEM_TRANSITIONS,
                s3_gets_per_invocation=shards / items + 2,
                s3_puts_per_invocation=shards / items + 2,
                fixed_sfn_transitions=RUN_TRANSITIONS,
                run_objects=predicted,
            ), p)
            out["usd_per_million_objects"] = out["per_million"]["usd_per_million_objects"]
        except CostError as exc:
            out["usd_per_million_objects"] = None
            out["reason"] = str(exc)
    else:
        out["usd_per_million_objects"] = None
    return out


def summarize_run(s3: Any, loc: RunLocation, run_id: str | None = None, map_error: dict[str, Any] | None = None,
                  now: float | None = None) -> dict[str, Any]:
    """Build and write `<output>/summary.json`; returns the summary document."""
    run = get_json_if_exists(s3, loc.bucket, loc.key(RUN_FILE))
    plan = get_json_if_exists(s3, loc.bucket, loc.key(PLAN_FILE))
    if run is None or plan is None:
        raise SummaryError(f"{loc.uri}: no {RUN_FILE}/{PLAN_FILE}; did Init run?")
    if run_id is not None and run.get("run_id") != run_id:
        raise SummaryError(f"{loc.uri}{RUN_FILE} belongs to run {run.get('run_id')}, not {run_id}")
    run_id = run["run_id"]
    warnings: list[str] = list(run.get("warnings", []))
    reports = read_reports(s3, loc, run_id, warnings)
    catalogs = {o["Key"] for o in list_objects(s3, loc.bucket, loc.key(PREDICTIONS_DIR))}
    outcomes = account(plan, reports, catalogs, loc)
    planned_names = {loc.prediction_key(s["name"]) for item in plan for s in item["shards"]}
    extra = catalogs - planned_names
    if extra:
        warnings.append(f"{len(extra)} catalog(s) under {loc.key(PREDICTIONS_DIR)} not in this run's plan ignored")
    if map_error:
        name, msg = parse_cause(map_error)
        warnings.append(f"the Map state failed: {name}: {msg}")
    acc, labelled, metrics_source = _merge_partials(s3, loc, run_id, outcomes, warnings)
    metrics = None
    if acc.n:  # the reference's figures and RAIL's (metrics.rail) from one merged distribution
        metrics, rail = acc.compute_with_rail()
        metrics_source["rail_outlier_rate"] = rail.outlier_bounds()
        if not rail.outlier_bounds()["exact"]:
            warnings.append(f"metrics.rail.outlier_rate: {rail.outlier_bounds()['objects_undecided']} object(s) lie within "
                            "the histogram's error of the outlier threshold; the exact rate is within "
                            "metrics_source.rail_outlier_rate [lower, upper]")
    ok = [o for o in outcomes if o["status"] == "succeeded"]
    bad = [o for o in outcomes if o["status"] != "succeeded"]
    predicted = sum(o["objects"] for o in ok)
    failed = sum(o["objects"] for o in bad)
    status = "SUCCEEDED" if not bad else ("FAILED" if not ok else "PARTIAL")
    finished = now if now is not None else time.time()
    wall = finished - float(run["started_at"]) if run.get("started_at") else None
    perf = _performance(reports, wall, predicted)
    summary = {
        "run_id": run_id,
        "status": status,
        "input": run.get("payload", {}).get("input"),
        "output": loc.uri,
        "started_at": run.get("started_at"),
        "finished_at": finished,
        "objects": {"total": predicted + failed, "predicted": predicted, "failed": failed, "labelled": labelled},
        "shards": {
            "total": len(outcomes),
            "succeeded": len(ok),
            "failed": len(bad),
            "failures": [{"shard": o["key"], "item_id": o["item_id"], "error": o["error"], "message": o["message"],
                          "objects": o["objects"]} for o in bad],
        },
        "items": {"total": len(plan), "reported": sum(1 for i in plan if i["item_id"] in reports),
                  "crashed": sum(1 for r in reports.values() if r.get("crashed"))},
        "metrics": metrics,
        "metrics_source": metrics_source,
        "provenance": provenance(reports.values()),
        "performance": perf,
        "cost": _cost(perf, len(plan), len(outcomes), predicted),
        "warnings": warnings,
    }
    put_json(s3, loc.bucket, loc.key(SUMMARY_FILE), summary)
    return summary
