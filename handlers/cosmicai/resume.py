"""Resuming a run: re-plan only the shards of that run without a successful result.

A resumed run keeps its run id, output prefix and `plan.json` (the whole run, which Summarize
accounts against). Init writes the items still to do to `resume.json`, the Map's ItemReader
source for this execution: each is the original work item (same `item_id`) restricted to its
shards without a successful result, flagged `resume`, so its worker merges the new outcomes
into the item's existing report and leaves the catalogs of shards that already succeeded alone.
Shard counts are read afresh from the headers: the inputs may have been mended since.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from cosmicai.contracts import InitResult, ShardOutcome, WorkItem
from cosmicai.payload import PayloadError, RunPayload
from cosmicai.plan import PROBE_THREADS, init_result, probe_count
from cosmicai.runstore import (
    PLAN_FILE,
    RESUME_FILE,
    RUN_FILE,
    RunLocation,
    get_json_if_exists,
    iter_json_array,
    object_exists,
    put_json,
)

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client


def unfinished_item(item: WorkItem, outcomes: Iterable[ShardOutcome]) -> WorkItem | None:
    """`item` restricted to its shards whose outcome is not `succeeded`; None when all succeeded."""
    done = {o.key for o in outcomes if o.status == "succeeded"}
    todo = [s for s in item.shards if s.key not in done]
    return item.model_copy(update={"shards": todo, "objects": None, "resume": True}) if todo else None


def prepare_resume(s3: S3Client, payload: RunPayload, started_at: float) -> InitResult:
    """Write `resume.json` for the run named by the payload; return Init's small result.

    Raises PayloadError when the output holds no such run.
    """
    from cosmicai.summary import RunReports

    if not payload.run_id:
        raise PayloadError("run_id", "required with resume: the run to resume")
    ob, op = payload.output_location
    loc = RunLocation(ob, op)
    run = get_json_if_exists(s3, ob, loc.key(RUN_FILE))
    if run is None or not object_exists(s3, ob, loc.key(PLAN_FILE)) or run.get("run_id") != payload.run_id:
        held = f"run {run.get('run_id')}" if run else "no run"
        raise PayloadError("run_id", f"{payload.output} holds {held}, not {payload.run_id}: nothing to resume there")
    # accounted as Summarize accounts, streaming the plan; only the unfinished items are held
    reports = RunReports(s3, loc, payload.run_id)
    items = [
        todo
        for a in reports.accounted(iter_json_array(s3, ob, loc.key(PLAN_FILE)))
        if (todo := unfinished_item(a.item, a.outcomes)) is not None
    ]
    for _ in reports.unplanned():  # reads the rest of workers/, so stale reports count in the warnings as in Summarize
        pass
    warnings = reports.warnings()
    bucket = items[0].input_bucket if items else ""
    shards = [s for item in items for s in item.shards]
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        counts = list(pool.map(lambda s: probe_count(s3, bucket, s.key, s.bytes)[0], shards))
    for shard, count in zip(shards, counts, strict=True):  # read afresh: the inputs may have been mended since
        shard.count = count
    put_json(s3, ob, loc.key(RESUME_FILE), [item.wire() for item in items])
    resumed = run | {
        "resumes": [*run.get("resumes", []), {"started_at": started_at, "items": len(items), "shards": len(shards)}]
    }
    put_json(s3, ob, loc.key(RUN_FILE), resumed)
    return init_result(
        payload,
        ob,
        loc.key(RESUME_FILE),
        len(items),
        len(shards),
        sum(c for c in counts if c is not None),
        len(warnings),
    )
