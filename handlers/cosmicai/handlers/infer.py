"""Lambda `infer`: run one work item of the plan (shards -> catalogs + worker report).

The weights load at import, i.e. in Lambda's INIT phase: a provisioned or pre-warmed
environment starts ready, and REPORT's Init Duration shows the real start-up cost. The
engine (the folded model, which depends on the item's precision) is built on the first
invocation and cached, keyed by the validated (precision, batch_size) of the item.
"""

from __future__ import annotations

import time

_IMPORT_START = time.perf_counter()

from typing import Any  # noqa: E402

from cosmicai import faults  # noqa: E402
from cosmicai.engine import Engine  # noqa: E402
from cosmicai.runstore import s3_client  # noqa: E402
from cosmicai.weights import load_model  # noqa: E402
from cosmicai.worker import Predictor, WorkItem, run_item  # noqa: E402

_MODEL = load_model()  # COSMICAI_WEIGHTS, else the packaged demo weights
# Import time of this module (imports and weights): the part of the cold start before the handler runs.
_IMPORT_SECONDS = time.perf_counter() - _IMPORT_START
# One engine per process, rebuilt only if an item asks for other settings.
_ENGINE: dict[tuple[str, int], Predictor] = {}
_STATE = {"invocations": 0}


def _engine(precision: str, batch_size: int) -> Predictor:
    key = (precision, batch_size)
    if key not in _ENGINE:
        _ENGINE.clear()
        _ENGINE[key] = Engine(_MODEL, precision=precision, batch_size=batch_size)
    return _ENGINE[key]


def _context_info(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    return {
        "function_name": getattr(context, "function_name", None),
        "memory_mb": int(getattr(context, "memory_limit_in_mb", 0) or 0) or None,
        "request_id": getattr(context, "aws_request_id", None),
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event = one plan item; returns {item_id, status, objects} (the full report goes to S3)."""
    cold = _STATE["invocations"] == 0
    _STATE["invocations"] += 1
    item = WorkItem.parse(event)
    faults.inject(item.run_id, [s.name for s in item.shards], context)  # test deploys only; inert otherwise
    init_s = _IMPORT_SECONDS if cold else 0.0
    report = run_item(
        item,
        s3_client(),
        lambda: _engine(item.precision, item.batch_size),
        cold_start=cold,
        init_seconds=init_s,
        context=_context_info(context),
    )
    return {"item_id": item.item_id, "status": report["status"], "objects": report["objects"]}
