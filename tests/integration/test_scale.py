"""Scale: 1,200 tiny shards (more than one S3 listing page, more than the reference could summarize).

One real execution of the deployed state machine over 1,200 shards of 2 objects, 4 shards
per work item: Init pages the listing (two pages), the Distributed Map runs 300 children
and Summarize accounts for 1,200 shards from 300 reports and 1,200 catalogs. (One item per
shard also passes, accounting included, but took 332 s at load average 15 on 2 cores.) Every object must be accounted for, and
the run must finish within the acceptance budget (4 minutes on this 2-core machine).
"""

from __future__ import annotations

import os
import time
from typing import Any

from cosmicai.shards import shard_to_bytes
from itfixtures.acceptance import assert_accounting, client, new_area, start, wait
from tests.conftest import build_shard

SHARDS = 1200
PER_SHARD = 2
SHARDS_PER_WORKER = 4
BUDGET_S = 240.0


def test_1200_shards_every_object_accounted_for(deployed_stack: dict[str, Any]) -> None:
    area = new_area(deployed_stack, "scale")
    t0 = time.monotonic()
    names = [f"part-{i:05d}.safetensors" for i in range(SHARDS)]
    area.put_many((n, shard_to_bytes(build_shard(PER_SHARD, seed=i, id_start=i * PER_SHARD))) for i, n in enumerate(names))
    uploaded = time.monotonic() - t0

    t1 = time.monotonic()
    desc = wait(start(deployed_stack, area.payload(max_concurrency=8, shards_per_worker=SHARDS_PER_WORKER)), timeout_s=BUDGET_S + 120, poll_s=2.0)
    run_s = time.monotonic() - t1
    print(f"scale: upload {uploaded:.1f} s, run {run_s:.1f} s ({SHARDS} shards, {SHARDS * PER_SHARD} objects, "
          f"load average {os.getloadavg()[0]:.1f})")

    assert desc["status"] == "SUCCEEDED", desc
    plan = area.result("plan.json")
    assert len(plan) == SHARDS // SHARDS_PER_WORKER
    planned = [s["key"] for item in plan for s in item["shards"]]
    assert sorted(planned) == sorted(area.input_prefix + n for n in names)
    summary = area.result("summary.json")
    assert_accounting(summary, SHARDS * PER_SHARD, planned)
    assert summary["status"] == "SUCCEEDED" and summary["objects"]["predicted"] == SHARDS * PER_SHARD, summary["objects"]
    assert summary["metrics"]["n"] == SHARDS * PER_SHARD, "metrics must cover every object exactly once"
    items = SHARDS // SHARDS_PER_WORKER
    assert summary["items"] == {"total": items, "reported": items, "crashed": 0}
    # Listing the catalogs needs more than one page too.
    assert len(area.result_keys("predictions/")) == SHARDS
    assert len(area.result_keys("workers/")) == items
    assert run_s < BUDGET_S, f"1,200 shards took {run_s:.0f} s (budget {BUDGET_S:.0f} s)"
    _cleanup(area)


def _cleanup(area: Any) -> None:
    """Remove the 1,200 inputs (the stack is shared by the session's other tests)."""
    s3 = client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=area.data_bucket, Prefix=area.input_prefix)
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=area.data_bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
