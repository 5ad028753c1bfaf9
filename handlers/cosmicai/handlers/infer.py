"""Lambda `infer`: run one work item of the plan (shards -> catalogs + worker report).

The model loads at import, i.e. in Lambda's INIT phase: a provisioned or pre-warmed
environment starts ready, and REPORT's Init Duration shows the real start-up cost. Which
backend's model INIT loads is `COSMICAI_BACKEND` (`torch`, the default, or `openvino`):
an OpenVINO worker reads the IR written next to the weights at image build and never
imports torch; an item that asks for the other backend loads that one on first use. The
engine (which depends on the item's backend, precision and batch size) is built on the
first invocation and cached.
"""

from __future__ import annotations

import time

_IMPORT_START = time.perf_counter()

import os  # noqa: E402
from typing import Any  # noqa: E402

from cosmicai.contracts import BACKENDS, Backend, FunctionInfo, Precision  # noqa: E402
from cosmicai.engine import Engine  # noqa: E402
from cosmicai.runstore import s3_client  # noqa: E402
from cosmicai.weightsfile import default_weights_path  # noqa: E402
from cosmicai.worker import Predictor, WorkItem, run_item  # noqa: E402

BACKEND_ENV = "COSMICAI_BACKEND"


def _load(backend: str) -> Any:
    """The model one backend's engine is built from (torch: AstroMAE; openvino: the IR)."""
    if backend == "openvino":
        from cosmicai.engine_openvino import load_for_weights

        return load_for_weights(default_weights_path())
    from cosmicai.weights import load_model

    return load_model()  # COSMICAI_WEIGHTS, else the packaged demo weights


def _backend_from_env() -> Backend:
    """The backend INIT loads: `$COSMICAI_BACKEND`, torch when unset."""
    value = os.environ.get(BACKEND_ENV, "torch").strip() or "torch"
    for backend in BACKENDS:
        if value == backend:
            return backend
    raise RuntimeError(f"{BACKEND_ENV}={value!r}: choose one of {', '.join(BACKENDS)}")


_INIT_BACKEND = _backend_from_env()
_MODELS: dict[str, Any] = {_INIT_BACKEND: _load(_INIT_BACKEND)}
# Import time of this module (imports and model): the part of the cold start before the handler runs.
_IMPORT_SECONDS = time.perf_counter() - _IMPORT_START
# Kept for callers that read it (the torch model when INIT loaded torch).
_MODEL = _MODELS.get("torch")
# One engine per process, rebuilt only if an item asks for other settings.
_ENGINE: dict[tuple[str, int, str], Predictor] = {}
_STATE = {"invocations": 0}


def _qualification(backend: str, precision: str) -> Any:
    if precision != "fast":
        return None
    from cosmicai.qualify import load_qualification

    return load_qualification(default_weights_path())


def _engine(precision: Precision, batch_size: int, backend: Backend | None = None) -> Predictor:
    """The cached engine for these settings (backend None: the one INIT loaded)."""
    backend = backend or _INIT_BACKEND
    key = (precision, batch_size, backend)
    if key not in _ENGINE:
        _ENGINE.clear()
        if backend not in _MODELS:
            _MODELS[backend] = _load(backend)
        _ENGINE[key] = Engine(
            _MODELS[backend],
            precision=precision,
            batch_size=batch_size,
            backend=backend,
            qualification=_qualification(backend, precision),
        )
    return _ENGINE[key]


def _context_info(context: Any) -> FunctionInfo:
    if context is None:
        return FunctionInfo()
    return FunctionInfo(
        function_name=getattr(context, "function_name", None),
        memory_mb=int(getattr(context, "memory_limit_in_mb", 0) or 0) or None,
        request_id=getattr(context, "aws_request_id", None),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event = one plan item; returns {item_id, status, objects} (the full report goes to S3)."""
    cold = _STATE["invocations"] == 0
    _STATE["invocations"] += 1
    item = WorkItem.parse(event)
    init_s = _IMPORT_SECONDS if cold else 0.0
    report = run_item(
        item,
        s3_client(),
        lambda: _engine(item.precision, item.batch_size, item.backend),
        cold_start=cold,
        init_seconds=init_s,
        context=_context_info(context),
    )
    return {"item_id": item.item_id, "status": report.status, "objects": report.objects}
