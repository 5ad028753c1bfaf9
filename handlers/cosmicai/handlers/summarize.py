"""Lambda `summarize`: two actions of the orchestration image.

`record_failure` (from the Map's Catch): write `workers/<item>.json` marking every
shard of a crashed or timed-out item failed with the caught error.
`summarize`: account for every planned shard and write `<output>/summary.json` (with
`summary/workers.jsonl` and `summary/failures.jsonl`; memory flat in the run's items).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cosmicai.contracts import RecordFailureEvent, SummarizeEvent, first_problem
from cosmicai.jsonlog import get_logger, log
from cosmicai.payload import split_s3_uri
from cosmicai.runstore import SUMMARY_FILE, RunLocation, put_json, s3_client
from cosmicai.summary import parse_cause, summarize_run
from cosmicai.worker import failure_report, with_previous_report

_LOG = get_logger("cosmicai.summarize")
_E = TypeVar("_E", bound=BaseModel)


class SummarizeEventError(ValueError):
    """The event is not one of the two accepted shapes; the message says what is missing."""


def _parse(model: type[_E], event: dict[str, Any], shape: str) -> _E:
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problem = first_problem(exc)
        raise SummarizeEventError(f"{shape} ({problem.field}: {problem.message})") from None


def _record_failure(event: dict[str, Any]) -> dict[str, Any]:
    item = _parse(RecordFailureEvent, event, "record_failure needs item {item_id, output, shards, error}").item
    name, message = parse_cause(item.error)
    loc = RunLocation(*split_s3_uri(item.output, "item.output"))
    report = failure_report(item, name, message)
    s3 = s3_client()
    if item.resume:  # keep what the item's earlier run predicted
        report = with_previous_report(s3, loc, report)
    put_json(s3, loc.bucket, loc.worker_key(item.item_id), report.wire())
    log(_LOG, logging.WARNING, "item failed", run_id=item.run_id, item=item.item_id, error=name, detail=message)
    return {"item_id": item.item_id, "status": "failed"}


def _summarize(event: dict[str, Any]) -> dict[str, Any]:
    parsed = _parse(SummarizeEvent, event, "summarize needs init {run_id, output} (the Init state's result)")
    loc = RunLocation(*split_s3_uri(parsed.init.output, "init.output"))
    map_error = parsed.state.map_error if parsed.state is not None else None
    summary = summarize_run(s3_client(), loc, parsed.init.run_id, map_error=map_error)
    log(
        _LOG,
        logging.INFO,
        "run summarized",
        run_id=summary["run_id"],
        status=summary["status"],
        objects=summary["objects"],
        shards_failed=summary["shards"]["failed"],
    )
    return {
        "run_id": summary["run_id"],
        "status": summary["status"],
        "summary": {"bucket": loc.bucket, "key": loc.key(SUMMARY_FILE)},
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Dispatch on event["action"]: "record_failure" or "summarize"."""
    action = event.get("action") if isinstance(event, dict) else None
    if action == "record_failure":
        return _record_failure(event)
    if action == "summarize":
        return _summarize(event)
    raise SummarizeEventError(f"event.action must be 'record_failure' or 'summarize', got {action!r}")
