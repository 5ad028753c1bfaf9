"""Scale: the suite's small version of `make scale-test` (1,200 tiny shards; the rehearsal runs 10,000).

The same code as the rehearsal (`cosmicai.commands.scale_test.rehearse`): 1,200 shards of 2 objects
with a manifest, 4 shards per work item, through the deployed state machine: Init pages the listing
(two pages), the Distributed Map runs 300 children and Summarize accounts for 1,200 shards from 300
reports. Every object must be accounted for exactly once. Its time is printed, not asserted: time
at scale is measured by `make scale-test` (bench/REPORT.md), not budgeted on shared CI cores.
"""

from __future__ import annotations

import os
from typing import Any

from cosmicai.commands.scale_test import rehearse

SHARDS = 1200
PER_SHARD = 2
SHARDS_PER_WORKER = 4
# A hang guard, not a performance claim: the run takes ~2-4 minutes on 2 cores.
TIMEOUT_S = 900.0


def test_1200_shards_every_object_accounted_for(deployed_stack: dict[str, Any]) -> None:
    stack = {
        "state_machine_arn": deployed_stack["state_machine_arn"],
        "data_uri": deployed_stack["data_uri"],
        "results_uri": deployed_stack["results_uri"],
        "log_groups": deployed_stack["log_group_names"],
    }
    figures = rehearse(stack, SHARDS, PER_SHARD, SHARDS_PER_WORKER, max_concurrency=8, timeout_s=TIMEOUT_S)
    print(
        f"scale: {figures['shards']} shards, {figures['items']} items: upload {figures['upload_s']} s, "
        f"run {figures['wall_s']} s, states {figures['states_s']}, summarize {figures['summarize']}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    assert figures["execution_status"] == "SUCCEEDED", figures
    assert figures["accounting_problems"] == [], figures["accounting_problems"]
    assert figures["items"] == SHARDS // SHARDS_PER_WORKER
    # the measurements the rehearsal records are there
    assert {"Init", "Infer all items", "Summarize"} <= set(figures["states_s"]), figures["states_s"]
    for function in ("init", "summarize"):
        assert figures[function]["invocations"] >= 1 and figures[function]["max_memory_used_mb"] > 0, figures[function]
