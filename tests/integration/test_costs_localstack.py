"""`cosmicai costs --run-id` on the local cloud: a run's bill from LocalStack's own REPORT lines, beside
the run summary's bill from the worker reports (both costs.run_bill)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import pytest

from cosmicai.commands.costs import collect
from itfixtures.pipeline import RunResult
from tests.conftest import build_shard, demo_weights_missing

pytestmark = pytest.mark.skipif(bool(demo_weights_missing()), reason=demo_weights_missing() or "weights present")

SHARDS = [build_shard(30 + i, seed=300 + i, id_start=7000 * i) for i in range(4)]


def _bill(run: RunResult, groups: dict[str, str], items: int) -> dict[str, Any]:
    """`cosmicai costs` for the run, once the REPORT line of every infer invocation it names has arrived."""
    args = argparse.Namespace(
        logs=[groups[r] for r in ("infer", "init", "summarize")],
        start=None,
        end=None,
        output=run.output,
        run_id=run.run_id,
        arch=None,
        objects=None,
        projection=None,
    )
    deadline = time.monotonic() + 120
    while True:
        bill = collect(args)
        infer = next(g for g in bill["groups"] if g["log_group"] == groups["infer"])
        if infer["invocations"] >= items or time.monotonic() > deadline:
            return bill
        time.sleep(2)


def test_costs_prices_a_run_from_its_report_lines(run_pipeline, upload_shards, deployed_stack) -> None:
    run = run_pipeline({"input": upload_shards(SHARDS), "shards_per_worker": 2, "batch_size": 32, "max_concurrency": 2})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    groups = deployed_stack["log_group_names"]
    bill = _bill(run, groups, items=2)
    infer = next(g for g in bill["groups"] if g["log_group"] == groups["infer"])
    assert infer["filtered_by"] == "run's request ids" and infer["invocations"] == 2, infer
    assert bill["objects"] == sum(s.n for s in SHARDS)

    run_bill = bill["run_bill"]
    counts = run_bill["counts"]
    # Lambda: the infer GB-s are the REPORT lines' (init folded in as AWS bills an image's cold start)
    assert counts["gb_seconds"]["infer"] == pytest.approx(infer["billed_gb_seconds"])
    assert counts["gb_seconds"]["source"] == "REPORT lines"
    # the same counts as the run summary's bill: 2 items, 4 shards, no retry (2 infer invocations)
    summary_bill = run.summary["cost"]["bill"]
    assert counts["transitions"] == summary_bill["counts"]["transitions"] == 5 + 2 * 2
    assert counts["invocations"] == summary_bill["counts"]["invocations"] == 1 + 2 + 1
    for caller in ("init", "map_item_reader", "infer", "record_failure", "summarize"):
        assert counts["s3_requests"][caller] == summary_bill["counts"]["s3_requests"][caller], caller
    # The worker reports time the handler (plus the import on a cold start); the REPORT lines time the whole
    # invocation, so they bill at least as much.
    worker_gb_s, report_gb_s = summary_bill["counts"]["gb_seconds"]["infer"], counts["gb_seconds"]["infer"]
    print(f"infer GB-s: worker reports {worker_gb_s:.3f}, REPORT lines {report_gb_s:.3f}")
    assert 0 < worker_gb_s <= report_gb_s * 1.01
    assert run_bill["usd"] > 0 and run_bill["usd_per_million_objects"] == pytest.approx(
        run_bill["usd"] * 1e6 / bill["objects"]
    )
