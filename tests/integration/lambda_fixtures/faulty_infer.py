"""The infer handler behind a fault injector: what the fault tests' own deploy runs as `infer`.

Its ImageConfig.Command names `tests.integration.lambda_fixtures.faulty_infer.handler`, which
the process executor imports from the project tree (the images do not carry it). Production
code knows nothing of it.
"""

from __future__ import annotations

from typing import Any

from cosmicai.handlers import infer

from . import faults


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Misbehave as the item's `fault-*` shard asks, then run the real handler."""
    # Read from the raw event: a malformed one gets past here and fails in the real handler's parse.
    shards = [str(s.get("name", "")) for s in event.get("shards") or [] if isinstance(s, dict)]
    faults.inject(str(event.get("run_id", "")), shards, context)
    return infer.handler(event, context)
