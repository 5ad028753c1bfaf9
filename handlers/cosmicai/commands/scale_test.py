"""`cosmicai scale-test`: the scale rehearsal (`make scale-test`) through the deployed stack.

Many tiny shards, one execution, exact accounting; figures go to `<out>/scale.json`, which
`make bench-report` renders into bench/REPORT.md with the 10^9-object projection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "scale-test", help="scale rehearsal: N tiny shards end to end, measured (make scale-test)"
    )
    p.add_argument("--shards", type=int, default=10_000, help="shards to upload and run (default 10,000)")
    p.add_argument("--per-shard", type=int, default=2, help="objects per shard (default 2)")
    p.add_argument("--shards-per-worker", type=int, default=10, help="shards per work item (default 10)")
    p.add_argument("--max-concurrency", type=int, default=8, help="the payload's max_concurrency (default 8)")
    p.add_argument("--timeout", type=float, default=5400.0, help="seconds to wait for the execution")
    p.add_argument("--out", type=Path, default=Path("bench"), help="folder of scale.json (default bench)")
    p.add_argument("--keep-inputs", action="store_true", help="leave the uploaded shards in the data bucket")
    p.add_argument(
        "--init-shards",
        type=int,
        default=0,
        help="also measure Init alone planning this many shards from a manifest (make scale-test: 200,000)",
    )
    p.set_defaults(run=run)


def _stack() -> dict[str, Any]:
    """The deployed stack's outputs (COSMICAI_TF_*, set by `deploy.stack exec`)."""
    need = (
        "COSMICAI_TF_STATE_MACHINE_ARN",
        "COSMICAI_TF_DATA_URI",
        "COSMICAI_TF_RESULTS_URI",
        "COSMICAI_TF_LOG_GROUP_NAMES",
        "COSMICAI_TF_FUNCTION_NAMES",
    )
    missing = [k for k in need if not os.environ.get(k)]
    if missing:
        raise SystemExit(f"scale-test: {', '.join(missing)} not set (run it as `make scale-test`)")
    return {
        "state_machine_arn": os.environ[need[0]],
        "data_uri": os.environ[need[1]],
        "results_uri": os.environ[need[2]],
        "log_groups": json.loads(os.environ[need[3]]),
        "function_names": json.loads(os.environ[need[4]]),
    }


def _delete_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    from cosmicai.runstore import list_objects

    keys = [o["Key"] for o in list_objects(s3, bucket, prefix)]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True})


def init_limit(stack: dict[str, Any], shards: int, log: Any = print) -> dict[str, Any]:
    """Init alone planning `shards` shards from a manifest: its REPORT Duration and Max Memory Used."""
    from botocore.config import Config

    from cosmicai.payload import split_s3_uri
    from cosmicai.perf import scale
    from cosmicai.plan import min_shards_per_item
    from cosmicai.runstore import aws_client, s3_client

    tag = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:4]
    data_bucket, data_prefix = split_s3_uri(stack["data_uri"], "data_uri")
    out_bucket, out_prefix = split_s3_uri(stack["results_uri"], "results_uri")
    in_prefix, run_prefix = f"{data_prefix}plan-{tag}/", f"{out_prefix}plan-{tag}/"
    s3 = s3_client()
    log(f"scale-test: uploading {shards:,} listed objects and a manifest for Init to plan")
    upload_s = scale.upload_listing(s3, data_bucket, in_prefix, shards)
    spw = min_shards_per_item(shards)
    payload = {
        "input": f"s3://{data_bucket}/{in_prefix}",
        "output": f"s3://{out_bucket}/{run_prefix}",
        "run_id": f"plan-{tag}",
        "shards_per_worker": spw,
    }
    # a synchronous invoke of up to Init's 15-minute ceiling: no client timeout or retry in between
    lam = aws_client("lambda", Config(read_timeout=960, retries={"max_attempts": 1}))
    figures = {
        "shards": shards,
        "shards_per_worker": spw,
        "upload_s": upload_s,
        **scale.invoke_init(lam, stack["function_names"]["init"], payload),
    }
    _delete_prefix(s3, data_bucket, in_prefix)
    _delete_prefix(s3, out_bucket, run_prefix)
    return figures


def rehearse(
    stack: dict[str, Any],
    shards: int,
    per_shard: int,
    shards_per_worker: int,
    max_concurrency: int,
    timeout_s: float,
    keep_inputs: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Upload, run, measure and check one rehearsal; returns the figures (raises nothing on a bad run)."""
    from cosmicai.payload import split_s3_uri
    from cosmicai.perf import scale
    from cosmicai.runstore import RunLocation, aws_client, get_json_if_exists, s3_client

    tag = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:4]
    data_bucket, data_prefix = split_s3_uri(stack["data_uri"], "data_uri")
    out_bucket, out_prefix = split_s3_uri(stack["results_uri"], "results_uri")
    in_prefix, run_prefix = f"{data_prefix}scale-{tag}/", f"{out_prefix}scale-{tag}/"
    s3, sfn, logs = s3_client(), aws_client("stepfunctions"), aws_client("logs")
    log(f"scale-test: uploading {shards:,} shards of {per_shard} objects to s3://{data_bucket}/{in_prefix}")
    uploaded = scale.upload(s3, data_bucket, in_prefix, shards, per_shard)
    payload = {
        "input": f"s3://{data_bucket}/{in_prefix}",
        "output": f"s3://{out_bucket}/{run_prefix}",
        "run_id": f"scale-{tag}",
        "shards_per_worker": shards_per_worker,
        "max_concurrency": max_concurrency,
    }
    started_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    arn = sfn.start_execution(
        stateMachineArn=stack["state_machine_arn"], name=f"scale-{tag}", input=json.dumps(payload)
    )["executionArn"]
    log(f"scale-test: execution {arn}")
    desc = sfn.describe_execution(executionArn=arn)
    while desc["status"] not in TERMINAL and time.monotonic() - t0 < timeout_s:
        time.sleep(5.0)
        desc = sfn.describe_execution(executionArn=arn)
    wall_s = round(time.monotonic() - t0, 1)
    ended_ms = int(time.time() * 1000) + 60_000
    summary = get_json_if_exists(s3, out_bucket, RunLocation(out_bucket, run_prefix).key("summary.json")) or {}
    figures = {
        "kind": "scale rehearsal (local cloud)",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "cosmicai " + " ".join(sys.argv[1:]),
        "shards": shards,
        "objects": shards * per_shard,
        "per_shard": per_shard,
        "shards_per_worker": shards_per_worker,
        "items": -(-shards // shards_per_worker),
        "max_concurrency": max_concurrency,
        "upload_s": uploaded["upload_s"],
        "execution_status": desc["status"],
        "summary_status": summary.get("status"),
        "wall_s": wall_s,
        "states_s": scale.state_seconds(scale.history(sfn, arn)),
        "init": scale.function_reports(logs, stack["log_groups"]["init"], started_ms, ended_ms),
        "summarize": scale.function_reports(logs, stack["log_groups"]["summarize"], started_ms, ended_ms),
        "accounting_problems": scale.check_accounting(summary, shards * per_shard, shards)
        if summary
        else ["no summary.json"],
        "load_avg_end": round(os.getloadavg()[0], 2),
    }
    if not keep_inputs:
        _delete_prefix(s3, data_bucket, in_prefix)
    return figures


def run(args: argparse.Namespace) -> int:
    from cosmicai.perf import scale

    stack = _stack()
    figures = rehearse(
        stack, args.shards, args.per_shard, args.shards_per_worker, args.max_concurrency, args.timeout, args.keep_inputs
    )
    if args.init_shards:
        figures["init_limit"] = init_limit(stack, args.init_shards)
    results_path = args.out / "results.json"
    throughput = scale.DEFAULT_OBJECTS_PER_S, scale.DEFAULT_INIT_S
    if results_path.exists():
        inputs = json.loads(results_path.read_text()).get("projection", {}).get("inputs", {})
        rate = inputs.get("objects_per_s_by_threads", {}).get("1")
        throughput = (rate or throughput[0], inputs.get("init_s") or throughput[1])
    figures["projection_1e9"] = scale.projection(*throughput)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(
        json.dumps(
            {
                k: figures[k]
                for k in (
                    "shards",
                    "objects",
                    "items",
                    "wall_s",
                    "states_s",
                    "init",
                    "summarize",
                    "execution_status",
                    "accounting_problems",
                )
            },
            indent=1,
        )
    )
    ok = figures["execution_status"] == "SUCCEEDED" and not figures["accounting_problems"]
    print(
        f"scale-test: {'PASSED' if ok else 'FAILED'}; figures in {args.out / 'scale.json'} "
        "(make bench-report puts them in REPORT.md)"
    )
    return 0 if ok else 1
