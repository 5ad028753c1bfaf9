"""The catalog in place and the cost before running, on the deployed stack in the local cloud.

`make invoke DRY_RUN=1` plans and prices a run without starting it; `make invoke` with a tiny
CATALOG_DOWNLOAD_LIMIT runs it, leaves the catalog in S3 and prints how to query it there; the
printed pyarrow.dataset snippet and a plain one both read `<output>predictions/` straight from
S3 as one dataset (labelled and unlabelled shards mixed), every predicted object once.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from cosmicai.catalog import SCHEMA
from itfixtures.acceptance import client
from itfixtures.pipeline import new_test_run_id
from tests.conftest import build_shard, demo_weights_missing

ROOT = Path(__file__).resolve().parents[2]
# Four labelled shards and two without true redshifts: one dataset all the same.
SHARDS = {
    f"part-{i:05d}.safetensors": build_shard(30 + 5 * i, seed=200 + i, id_start=10_000 * i, with_redshift=i < 4)
    for i in range(6)
}
TOTAL = sum(s.n for s in SHARDS.values())
LABELLED = sum(s.n for i, s in enumerate(SHARDS.values()) if i < 4)


pytestmark = pytest.mark.skipif(bool(demo_weights_missing()), reason=demo_weights_missing() or "weights present")


def _rows(out: str) -> dict[str, str]:
    """The dry run's table as {label: value} (rich box drawing, one row per line at 250 columns)."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def _executions(arn: str) -> list[str]:
    pages = client("stepfunctions").get_paginator("list_executions").paginate(stateMachineArn=arn)
    return [e["executionArn"] for p in pages for e in p["executions"]]


@pytest.fixture(scope="module")
def mixed_input(upload_shards) -> str:
    return upload_shards(SHARDS)


def test_dry_run_prints_the_plan_and_starts_nothing(
    mixed_input: str, deployed_stack: dict, stack_cli: Any, localstack: Any
) -> None:
    run_id = new_test_run_id()
    output = f"{deployed_stack['results_uri']}{run_id}/"
    payload = {"input": mixed_input, "output": output, "run_id": run_id, "shards_per_worker": 2, "max_concurrency": 3}
    before = _executions(deployed_stack["state_machine_arn"])
    proc = stack_cli.make("invoke", localstack.port, f"PAYLOAD={json.dumps(payload)}", "DRY_RUN=1", timeout_s=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rows = _rows(proc.stdout)
    assert rows["run"] == run_id and rows["output"] == output
    assert rows["work items"] == "3" and rows["shards"] == "6 (0 of unknown count)" and rows["objects"] == str(TOTAL)
    assert rows["infer function"].endswith("the deployed stack's outputs")
    assert float(rows["projected USD (run)"]) > 0 and float(rows["projected USD / 1M objects"]) > 0
    assert rows["concurrency"].startswith("needs 3 = min(3 work items, max_concurrency 3); ")
    print("dry run concurrency:", rows["concurrency"], "| throughput:", rows["throughput"])
    assert _executions(deployed_stack["state_machine_arn"]) == before  # nothing started
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    assert client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0  # nothing written

    bad = stack_cli.make(
        "invoke",
        localstack.port,
        f"PAYLOAD={json.dumps(payload | {'output': mixed_input + 'out/'})}",
        "DRY_RUN=1",
        timeout_s=300,
    )
    assert bad.returncode == 2 and "Error 2" in bad.stderr and "it would not run" in bad.stdout, bad.stdout[-3000:]
    assert _executions(deployed_stack["state_machine_arn"]) == before


def test_catalog_over_the_limit_is_queried_in_place(
    mixed_input: str, deployed_stack: dict, stack_cli: Any, localstack: Any
) -> None:
    run_id = new_test_run_id()
    output = f"{deployed_stack['results_uri']}{run_id}/"
    payload = {"input": mixed_input, "output": output, "run_id": run_id, "shards_per_worker": 2, "batch_size": 32}
    run_dir = ROOT / "runs" / run_id
    try:
        proc = stack_cli.make(
            "invoke", localstack.port, f"PAYLOAD={json.dumps(payload)}", "CATALOG_DOWNLOAD_LIMIT=1kB", timeout_s=300
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        uri = f"{output}predictions/"
        assert f"query it in place at {uri}" in out, out[-4000:]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["objects"] == {"total": TOTAL, "predicted": TOTAL, "failed": 0, "labelled": LABELLED}
        assert not (run_dir / "catalog.parquet").exists()
        for name in ("report.md", "catalog.sample.parquet", "plots/workers.png", "plots/z_pred_vs_z_true.png"):
            assert (run_dir / name).is_file(), name

        # What invoke printed runs as it is (credentials and endpoint from the environment make sets).
        snippet = re.search(r"^import pyarrow\.dataset.*?^table = .*?$", proc.stdout, re.S | re.M)
        assert snippet, proc.stdout[-3000:]
        scope: dict[str, Any] = {}
        exec(snippet.group(0), scope)  # noqa: S102 - our own output, under test
        assert scope["table"].num_rows == TOTAL

        # And the dataset spelled out: one schema, every predicted object once.
        s3 = pafs.S3FileSystem(
            endpoint_override=localstack.endpoint.removeprefix("http://"),
            scheme="http",
            region="us-east-1",
            access_key="test",
            secret_key="test",
        )
        dataset = ds.dataset(uri.removeprefix("s3://"), format="parquet", filesystem=s3)
        assert dataset.schema.equals(SCHEMA) and len(dataset.files) == len(SHARDS)
        table = dataset.to_table()
        ids = table.column("object_id").to_numpy()
        assert table.num_rows == summary["objects"]["predicted"] == TOTAL and len(np.unique(ids)) == TOTAL
        assert np.array_equal(np.sort(ids), np.sort(np.concatenate([s.object_ids for s in SHARDS.values()])))
        assert table.column("z_true").null_count == TOTAL - LABELLED
        labelled = dataset.to_table(filter=ds.field("z_true").is_valid(), columns=["object_id"])
        assert labelled.num_rows == LABELLED
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
