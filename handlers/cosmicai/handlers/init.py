"""Lambda `init`: validate the payload, plan the run (plan.json, run.json) or its resume (resume.json)."""

from __future__ import annotations

import logging
import time
from typing import Any

from cosmicai.jsonlog import get_logger, log
from cosmicai.payload import RunPayload
from cosmicai.plan import prepare_run
from cosmicai.resume import prepare_resume
from cosmicai.runstore import s3_client

_LOG = get_logger("cosmicai.init")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event = the run payload; returns `contracts.InitResult` as JSON: run_id, plan location, counts.

    Raises PayloadError (the execution fails with that error name) before any worker starts.
    """
    started = time.time()
    payload = RunPayload.parse(event)
    if not payload.resume:
        payload = payload.with_run_id()
    log(
        _LOG,
        logging.INFO,
        "planning run",
        run_id=payload.run_id,
        input=payload.input,
        output=payload.output,
        resume=payload.resume,
    )
    prepare = prepare_resume if payload.resume else prepare_run
    result = prepare(s3_client(), payload, started)
    log(
        _LOG,
        logging.INFO,
        "plan written",
        run_id=payload.run_id,
        items=result.items,
        shards=result.shards,
        objects=result.objects,
        seconds=round(time.time() - started, 3),
    )
    return result.model_dump(mode="json")
