"""End-to-end runs of the deployed state machine (local cloud) over shard sizes and concurrency levels.

Orchestration overhead = execution wall / ideal, where ideal is the workers' busy time packed
perfectly onto the concurrency slots: max(longest worker, sum of worker time / slots).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cosmicai.payload import split_s3_uri
from cosmicai.perf.projection import shard_objects
from cosmicai.perf.scale import synthetic_shard
from cosmicai.runstore import (
    SUMMARY_FILE,
    SUMMARY_WORKERS_FILE,
    RunLocation,
    aws_client,
    get_json,
    iter_json_lines,
    s3_client,
)
from cosmicai.shards import shard_to_bytes

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
TARGET_SHARDS, TARGET_SHARD_OBJECTS = 16, 2048  # issue 8's overhead case


class EndToEndError(RuntimeError):
    """A benchmark run could not be started or did not finish (message names the run)."""


def upload_set(s3: S3Client, data_uri: str, name: str, shards: int, objects_per_shard: int) -> str:
    """Write `shards` synthetic shards under <data_uri>bench-e2e/<name>/; returns that input URI."""
    bucket, prefix = split_s3_uri(data_uri, "--data-uri")
    key_prefix = f"{prefix}bench-e2e/{name}/"
    for i in range(shards):
        body = shard_to_bytes(synthetic_shard(objects_per_shard, seed=i, id_start=i * objects_per_shard))
        s3.put_object(Bucket=bucket, Key=f"{key_prefix}part-{i:05d}.safetensors", Body=body)
    return f"s3://{bucket}/{key_prefix}"


def run_once(sfn: SFNClient, s3: S3Client, arn: str, payload: dict[str, Any], timeout_s: float = 900) -> dict[str, Any]:
    """Start one execution, wait for it, return (status, wall from Step Functions' own dates, summary.json and
    its per-worker rows, summary/workers.jsonl)."""
    import json

    start = sfn.start_execution(stateMachineArn=arn, name=payload["run_id"], input=json.dumps(payload))
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=start["executionArn"])
        if desc["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            sfn.stop_execution(executionArn=start["executionArn"], error="BenchTimeout", cause=f"over {timeout_s} s")
            raise EndToEndError(f"run {payload['run_id']}: still {desc['status']} after {timeout_s} s (stopped)")
        time.sleep(1.0)
    wall = (desc["stopDate"] - desc["startDate"]).total_seconds()
    window = (desc["startDate"].timestamp(), desc["stopDate"].timestamp())
    loc = RunLocation(*split_s3_uri(payload["output"], "output"))
    try:
        summary = get_json(s3, loc.bucket, loc.key(SUMMARY_FILE))
        workers = list(iter_json_lines(s3, loc.bucket, loc.key(SUMMARY_WORKERS_FILE)))
    except Exception as exc:  # a run that never reached Summarize: report the status, not a crash
        summary, workers = {"error": f"no summary.json: {exc}"}, []
    return {
        "status": desc["status"],
        "wall_s": round(wall, 3),
        "window": window,
        "summary": summary,
        "workers": workers,
    }


def overhead(wall_s: float, worker_s: Sequence[float], slots: int) -> tuple[float, float]:
    """(ideal seconds, wall / ideal) for worker busy times on `slots` concurrent workers."""
    if not worker_s:
        raise EndToEndError("no worker times to compute an ideal from")
    ideal = max(max(worker_s), sum(worker_s) / max(1, slots))
    return ideal, wall_s / ideal


def _row(kind: str, mb: float, n_shards: int, per_shard: int, conc: int, res: dict[str, Any]) -> dict[str, Any]:
    perf = (res["summary"] or {}).get("performance") or {}
    workers = res["workers"]
    busy = [float(w.get("seconds") or 0) + float(w.get("init_seconds") or 0) for w in workers]
    row: dict[str, Any] = {
        "kind": kind,
        "shard_mb": mb,
        "shards": n_shards,
        "shard_objects": per_shard,
        "objects": n_shards * per_shard,
        "concurrency": conc,
        "status": res["status"],
        "wall_s": res["wall_s"],
        "predicted": ((res["summary"] or {}).get("objects") or {}).get("predicted"),
        "cold_starts": perf.get("cold_starts"),
        "per_worker": workers,
    }
    if busy:
        ideal, ratio = overhead(res["wall_s"], busy, min(conc, len(busy)))
        row |= {"worker_s": round(sum(busy), 2), "ideal_s": round(ideal, 2), "overhead": round(ratio, 3)}
        starts = [float(w["started_at"]) - float(w.get("init_seconds") or 0) for w in workers if w.get("started_at")]
        ends = [float(w["finished_at"]) for w in workers if w.get("finished_at")]
        if starts and ends and res.get("window"):
            # Where the rest of the wall went: before the first worker (Init, Map start, process start)
            # and after the last one (Map close, Summarize).
            row |= {
                "before_first_worker_s": round(min(starts) - res["window"][0], 2),
                "after_last_worker_s": round(res["window"][1] - max(ends), 2),
            }
    return row


def sweep(
    arn: str,
    data_uri: str,
    results_uri: str,
    *,
    total_objects: int,
    shard_mb: Sequence[int],
    concurrency: Sequence[int],
    precision: str,
    batch_size: int,
    target: tuple[int, int] = (TARGET_SHARDS, TARGET_SHARD_OBJECTS),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs over each shard size at each concurrency, then the overhead case (`target` = shards, objects per
    shard; issue 8's 16 x 2,048) at the highest concurrency."""
    s3, sfn = s3_client(), aws_client("stepfunctions")
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    cases = [(f"{mb}mb", mb, math.ceil(total_objects / shard_objects(mb)), shard_objects(mb)) for mb in shard_mb]
    target_case = (f"target-{target[0]}x{target[1]}", round(target[1] * 100 / 5113, 1), target[0], target[1])
    runs: list[dict[str, Any]] = []
    target_row = None
    for kind, mb, n_shards, per_shard in [*cases, target_case]:
        uri = upload_set(s3, data_uri, kind, n_shards, per_shard)
        # With no more shards than the lowest level, every level runs the same schedule: run it once.
        levels = (
            [max(concurrency)]
            if kind == target_case[0]
            else [c for c in concurrency if c == min(concurrency) or n_shards > min(concurrency)]
        )
        for conc in levels:
            run_id = f"bench-{stamp}-{kind}-c{conc}"
            payload = {
                "input": uri,
                "output": f"{results_uri}{run_id}/",
                "batch_size": batch_size,
                "precision": precision,
                "shards_per_worker": 1,
                "max_concurrency": conc,
                "run_id": run_id,
            }
            progress(f"end-to-end {kind}: {n_shards} shards x {per_shard} objects, concurrency {conc} ...")
            row = _row(kind, mb, n_shards, per_shard, conc, run_once(sfn, s3, arn, payload)) | {
                "run_id": run_id,
                "output": payload["output"],
            }
            progress(f"  {row['status']} in {row['wall_s']:.1f} s, overhead {row.get('overhead')}")
            if kind == target_case[0]:
                target_row = row
            else:
                runs.append(row)
    return {
        "method": "Step Functions execution wall (startDate..stopDate) vs ideal = max(longest worker, sum of worker "
        "(init + wall) seconds / concurrency); synthetic shards uploaded before each set; one shard per work item",
        "precision": precision,
        "batch_size": batch_size,
        "runs": runs,
        "target_run": target_row,
    }


def local_cold_start(e2e: dict[str, Any], infer_log_group: str | None) -> dict[str, Any]:
    """First-invoke figures on the local cloud: cold workers' init + engine time, and REPORT-line init durations."""
    cold = [w for r in e2e.get("runs", []) for w in r.get("per_worker", []) if w.get("cold_start")]
    out: dict[str, Any] = {}
    if cold:
        first = [float(w.get("init_seconds") or 0) for w in cold]
        out["local_cloud"] = (
            f"{len(cold)} cold workers: init (imports + weights) {sum(first) / len(first):.2f} s mean; "
            f"cold worker wall {sum(float(w.get('seconds') or 0) for w in cold) / len(cold):.1f} s mean "
            "(engine fold + its shard)"
        )
    elif e2e.get("runs"):
        out["local_cloud"] = "no cold worker in these runs (execution environments still warm from an earlier run)"
    if infer_log_group:
        from cosmicai.lambda_logs import dedupe, fetch_report_lines

        reports = dedupe(fetch_report_lines(aws_client("logs"), infer_log_group))
        inits = [r.init_duration_ms for r in reports if r.init_duration_ms]
        if inits:
            out["local_cloud_report_init_ms"] = {
                "n": len(inits),
                "mean": round(sum(inits) / len(inits), 1),
                "max": round(max(inits), 1),
            }
            out["local_cloud"] = (
                out.get("local_cloud", "") + f"; REPORT Init Duration mean {sum(inits) / len(inits):.0f} ms "
                f"over {len(inits)} cold starts in the log group"
            ).lstrip("; ")
    if not out:
        out["local_cloud_not_measured"] = "no cold worker in the end-to-end runs"
    return out


__all__ = ["EndToEndError", "local_cold_start", "overhead", "run_once", "sweep", "upload_set"]
