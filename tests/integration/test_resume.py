"""Resume (issue 15): a PARTIAL run, its inputs mended, `make resume` re-runs only the failed shards.

The resumed execution keeps the run id and output prefix, rewrites no catalog of a shard that
had already succeeded, reads the mended inputs afresh, and ends with one summary covering every
shard of the run, every object once. A second `make resume` on the SUCCEEDED run starts nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cosmicai.payload import split_s3_uri
from cosmicai.shards import shard_to_bytes
from itfixtures.pipeline import new_test_run_id
from tests.conftest import build_shard

ROOT = Path(__file__).resolve().parents[2]
SHARDS = [build_shard(20 + i, seed=300 + i, id_start=1000 * i) for i in range(6)]
BROKEN = (3, 4)  # item 1 = shards 2, 3 (one broken); item 2 = shards 4, 5 (one broken)


def _catalogs(s3: Any, bucket: str, prefix: str) -> dict[str, tuple[str, float]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "predictions/")
    return {o["Key"]: (o["ETag"], o["LastModified"].timestamp()) for p in pages for o in p.get("Contents", [])}


def test_resume_reruns_only_failed_shards_and_ends_succeeded(
    upload_shards, pipeline_clients, deployed_stack, stack_cli, localstack
) -> None:
    s3, sfn = pipeline_clients.s3, pipeline_clients.sfn
    files = {f"part-{i:05d}.safetensors": (b"not a shard" * 9 if i in BROKEN else s) for i, s in enumerate(SHARDS)}
    uri = upload_shards(files)
    run_id = new_test_run_id()
    output = f"{deployed_stack['results_uri']}{run_id}/"
    payload = {"input": uri, "output": output, "run_id": run_id, "shards_per_worker": 2, "batch_size": 32}
    out_bucket, out_prefix = split_s3_uri(output, "output")
    try:
        first = stack_cli.make("invoke", localstack.port, f"PAYLOAD={json.dumps(payload)}")
        assert first.returncode == 2 and "Error 3" in first.stderr, (first.stdout + first.stderr)[-3000:]  # PARTIAL
        before = _catalogs(s3, out_bucket, out_prefix)
        assert len(before) == 4

        in_bucket, in_prefix = split_s3_uri(uri, "input")
        for i in BROKEN:  # mend the inputs
            s3.put_object(Bucket=in_bucket, Key=f"{in_prefix}part-{i:05d}.safetensors", Body=shard_to_bytes(SHARDS[i]))
        plan_before = s3.get_object(Bucket=out_bucket, Key=out_prefix + "plan.json")["Body"].read()

        second = stack_cli.make("resume", localstack.port, f"RUN_ID={run_id}")
        assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
        summary = json.loads(s3.get_object(Bucket=out_bucket, Key=out_prefix + "summary.json")["Body"].read())
        total = sum(s.n for s in SHARDS)
        assert summary["run_id"] == run_id and summary["status"] == "SUCCEEDED", summary["status"]
        objs = summary["objects"]
        assert (objs["total"], objs["predicted"], objs["failed"]) == (total, total, 0), objs
        assert summary["shards"]["total"] == 6 and summary["shards"]["succeeded"] == 6
        assert summary["metrics"]["n"] == total, "every object once in the metrics"
        resumed = json.loads(s3.get_object(Bucket=out_bucket, Key=out_prefix + "resume.json")["Body"].read())
        assert sorted(s["key"].rsplit("/", 1)[1] for item in resumed for s in item["shards"]) == [
            f"part-{i:05d}.safetensors" for i in BROKEN
        ], "only the failed shards are re-run"
        assert s3.get_object(Bucket=out_bucket, Key=out_prefix + "plan.json")["Body"].read() == plan_before
        after = _catalogs(s3, out_bucket, out_prefix)
        assert len(after) == 6
        assert {k: after[k] for k in before} == before, "catalogs of shards that had succeeded are not rewritten"
        ids = [int(i) for k in after for i in _ids(s3, out_bucket, k)]
        assert len(ids) == len(set(ids)) == total

        executions = len(sfn.list_executions(stateMachineArn=deployed_stack["state_machine_arn"])["executions"])
        third = stack_cli.make("resume", localstack.port, f"RUN_ID={run_id}")
        assert third.returncode == 0 and "nothing to resume" in third.stdout, third.stdout[-2000:]
        assert len(sfn.list_executions(stateMachineArn=deployed_stack["state_machine_arn"])["executions"]) == executions
    finally:
        shutil.rmtree(ROOT / "runs" / run_id, ignore_errors=True)


def _ids(s3: Any, bucket: str, key: str) -> list[int]:
    import io

    import pyarrow.parquet as pq

    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).column("object_id").to_pylist()
