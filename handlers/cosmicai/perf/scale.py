"""Scale rehearsal: many small shards end to end through the deployed stack, measured.

Uploads N tiny shards (with a manifest, as `cosmicai partition` writes one), runs the state
machine once and checks exact accounting; records wall time, each run-level state's seconds
from the execution history, and Init's and Summarize's own Duration and Max Memory Used from
their REPORT lines. `make scale-test` runs 10,000 shards; the suite runs a smaller one.
The 10^9-object projection beside it uses the cost model with the bench's measured throughput.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from cosmicai.costs import MEASURED_INIT_S, MEASURED_OBJECTS_PER_S, project_run
from cosmicai.perf.projection import BILLION
from cosmicai.plan import min_shards_per_item

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import HistoryEventTypeDef

UPLOAD_THREADS = 16
PROJECTION_CONCURRENCY = (1000, 10_000)
# Without bench/results.json: the int8 worker path per vCPU and the init of the last `make bench`.
DEFAULT_OBJECTS_PER_S = MEASURED_OBJECTS_PER_S["int8"]
DEFAULT_INIT_S = MEASURED_INIT_S
PROJECTION_SHARD_OBJECTS = 5113  # a 100 MB shard, the deployed recommendation
PROJECTION_MEMORY_MB = 1769


def synthetic_shard(n: int, seed: int = 1, id_start: int = 0) -> Any:
    """N objects with SDSS-like value ranges (speed does not depend on pixel values)."""
    import numpy as np

    from cosmicai.shards import Shard

    rng = np.random.default_rng(seed)
    return Shard(
        object_ids=np.arange(id_start, id_start + n, dtype=np.int64),
        images=rng.normal(0.0, 0.05, (n, 5, 32, 32)).astype(np.float32),
        magnitudes=rng.normal(18.0, 1.0, (n, 5)).astype(np.float32),
        redshift=rng.uniform(0.02, 0.4, n).astype(np.float32),
    )


def upload(s3: S3Client, bucket: str, prefix: str, shards: int, per_shard: int) -> dict[str, Any]:
    """Write `shards` synthetic shards of `per_shard` objects and their manifest; returns counts and seconds."""
    from cosmicai.shards import shard_to_bytes

    t0 = time.monotonic()
    names = [f"part-{i:06d}.safetensors" for i in range(shards)]

    def one(i: int) -> dict[str, Any]:
        body = shard_to_bytes(synthetic_shard(per_shard, seed=i, id_start=i * per_shard))
        s3.put_object(Bucket=bucket, Key=prefix + names[i], Body=body)
        return {"key": names[i], "count": per_shard, "bytes": len(body)}

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        entries = list(pool.map(one, range(shards)))
    manifest = {"format": "cosmicai.manifest", "version": 1, "objects": shards * per_shard, "shards": entries}
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())
    return {"shards": shards, "objects": shards * per_shard, "upload_s": round(time.monotonic() - t0, 1)}


def state_seconds(history: Sequence[HistoryEventTypeDef]) -> dict[str, float]:
    """Seconds from each run-level state's entry to its exit (names as in the ASL)."""
    entered: dict[str, float] = {}
    out: dict[str, float] = {}
    for ev in history:
        kind = ev["type"]
        if kind.endswith("StateEntered"):
            entered[ev["stateEnteredEventDetails"]["name"]] = ev["timestamp"].timestamp()
        elif kind.endswith("StateExited"):
            name = ev["stateExitedEventDetails"]["name"]
            if name in entered:
                out[name] = round(ev["timestamp"].timestamp() - entered[name], 2)
    return out


def function_reports(logs: CloudWatchLogsClient, group: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    """Duration and Max Memory Used of a function's invocations in the window (its REPORT lines)."""
    from cosmicai.lambda_logs import dedupe, fetch_report_lines

    reports = dedupe(fetch_report_lines(logs, group, start_ms=start_ms, end_ms=end_ms))
    if not reports:
        return {"invocations": 0}
    return {
        "invocations": len(reports),
        "max_duration_s": round(max(r.duration_ms for r in reports) / 1000, 2),
        "max_memory_used_mb": max(r.max_memory_used_mb or 0 for r in reports),
        "memory_size_mb": reports[0].memory_size_mb,
    }


def history(sfn: SFNClient, arn: str) -> list[HistoryEventTypeDef]:
    """The execution's whole history (all pages)."""
    events: list[HistoryEventTypeDef] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events += page["events"]
    return events


def projection(objects_per_s: float = DEFAULT_OBJECTS_PER_S, init_s: float = DEFAULT_INIT_S) -> list[dict[str, Any]]:
    """10^9 objects at the deployed recommendation (100 MB shards, 1,769 MB x86_64): the bill (costs.run_bill
    through project_run) and wall time, with as few shards per work item as one run's Map allows."""
    shards = -(-BILLION // PROJECTION_SHARD_OBJECTS)
    per_item = min_shards_per_item(shards)
    rows = []
    for concurrency in PROJECTION_CONCURRENCY:
        p = project_run(
            objects_per_s=objects_per_s,
            memory_mb=PROJECTION_MEMORY_MB,
            shard_objects=PROJECTION_SHARD_OBJECTS,
            total_objects=BILLION,
            concurrency=concurrency,
            init_s=init_s,
            shards_per_item=per_item,
        )
        rows.append(
            {
                "objects": BILLION,
                "concurrency": concurrency,
                "shards_per_item": per_item,
                "items": p["invocations"],
                "waves": p["waves"],
                "wall_s": round(p["wall_s"], 1),
                "run_usd": round(p["run_usd"], 2),
                "usd_per_million_objects": round(p["cost"]["usd_per_million_objects"], 4),
                "objects_per_s": objects_per_s,
                "init_s": init_s,
            }
        )
    return rows


def check_accounting(summary: dict[str, Any], expected_objects: int, expected_shards: int) -> list[str]:
    """Problems with the summary's accounting (empty when every object is predicted exactly once)."""
    objs, shards = summary["objects"], summary["shards"]
    problems = []
    if objs["total"] != expected_objects or objs["predicted"] != expected_objects or objs["failed"]:
        problems.append(f"objects {objs} != {expected_objects} predicted")
    if shards["total"] != expected_shards or shards["succeeded"] != expected_shards:
        problems.append(f"shards {shards['total']}/{shards['succeeded']} != {expected_shards}")
    if summary.get("metrics", {}).get("n") != expected_objects:
        problems.append(f"metrics n {summary.get('metrics', {}).get('n')} != {expected_objects}")
    return problems


def _init_limit_rows(limit: dict[str, Any] | None) -> list[str]:
    if not limit:
        return []
    return [
        f"| Init alone planning {limit['shards']:,} shards from a manifest ({limit['shards_per_worker']} per item, "
        f"{(limit.get('result') or {}).get('items', '?'):,} items): Duration / Max Memory Used (REPORT) "
        f"| {limit.get('duration_s')} s / {limit.get('max_memory_used_mb')} MB of {limit.get('memory_size_mb')} MB"
        f"{'; ERROR ' + str(limit.get('error')) if limit.get('error') else ''} |"
    ]


def _duration_and_memory(fn: dict[str, Any]) -> str:
    """'<s> s / <used> MB of <size> MB' of a function's REPORT figures."""
    return f"{fn.get('max_duration_s')} s / {fn.get('max_memory_used_mb')} MB of {fn.get('memory_size_mb')} MB"


def render_section(figures: dict[str, Any]) -> str:
    """The REPORT.md section of a rehearsal (`<bench>/scale.json`) and its 10^9-object projection."""
    init, summ, states = figures.get("init", {}), figures.get("summarize", {}), figures.get("states_s", {})
    ok = figures.get("execution_status") == "SUCCEEDED" and not figures.get("accounting_problems")
    problems = "; ".join(figures.get("accounting_problems", []))
    accounting = "exact (every object predicted once)" if ok else f"FAILED: {problems}"
    lines = [
        "## Scale rehearsal (`make scale-test`)",
        "",
        f"Run {figures.get('created_at')} on the local cloud (`{figures.get('command')}`): "
        f"{figures['shards']:,} shards of {figures['per_shard']} objects ({figures['objects']:,} objects) in "
        f"{figures['items']:,} work items of {figures['shards_per_worker']} shards, max_concurrency "
        f"{figures['max_concurrency']}; execution {figures['execution_status']}, "
        f"summary {figures.get('summary_status')}, accounting {accounting}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| upload of the shards and manifest | {figures['upload_s']} s |",
        f"| wall time, StartExecution to end | {figures['wall_s']} s |",
        *[
            f"| state `{name}` | {sec} s |"
            for name, sec in states.items()
            if name in ("Init", "Infer all items", "Summarize")
        ],
        f"| Init: Duration / Max Memory Used (REPORT) | {_duration_and_memory(init)} |",
        f"| Summarize: Duration / Max Memory Used (REPORT) | {_duration_and_memory(summ)} |",
        f"| load average at the end (2 cores) | {figures.get('load_avg_end')} |",
        *_init_limit_rows(figures.get("init_limit")),
        "",
        "Projection for 10^9 objects at the deployed recommendation (x86_64, 1,769 MB, 100 MB shards of "
        f"{PROJECTION_SHARD_OBJECTS:,} objects; every charge counted by `costs.run_bill`, recomputed from the stored "
        "inputs whenever the report renders; a projection, not a bill):",
        "",
        "| concurrent workers | shards per work item | work items | waves | wall time | run cost "
        "| per million objects |",
        "|---|---|---|---|---|---|---|",
    ]
    stored = (figures.get("projection_1e9") or [{}])[0]
    rows = projection(stored.get("objects_per_s") or DEFAULT_OBJECTS_PER_S, stored.get("init_s") or DEFAULT_INIT_S)
    for row in rows:
        lines.append(
            f"| {row['concurrency']:,} | {row['shards_per_item']} | {row['items']:,} | {row['waves']:,} "
            f"| {row['wall_s'] / 60:.1f} min | ${row['run_usd']:,.2f} | ${row['usd_per_million_objects']} |"
        )
    lines += [
        "",
        f"Inputs: {rows[0]['objects_per_s']} objects/s per vCPU and {rows[0]['init_s']} s init "
        "(bench/results.json when the rehearsal ran). One run's Map takes at most 40,000 work items, hence the "
        "shards per item. Wall time counts INIT and the compute waves; Init and Summarize at scale are the "
        "measured figures above and in the limits section.",
        "",
    ]
    return "\n".join(lines)


def upload_listing(s3: S3Client, bucket: str, prefix: str, shards: int, count: int = 5113) -> float:
    """N placeholder objects and a manifest giving each a count: what Init lists and plans from.

    Init never reads a shard listed in the manifest, so 1-byte objects give the same listing and
    plan as real 100 MB shards (the reference's 5,113 objects each) at a fraction of the upload.
    """
    t0 = time.monotonic()
    names = [f"part-{i:07d}.safetensors" for i in range(shards)]
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket=bucket, Key=prefix + n, Body=b"\0"), names))
    entries = [{"key": n, "count": count, "bytes": 1} for n in names]
    manifest = {"format": "cosmicai.manifest", "version": 1, "objects": shards * count, "shards": entries}
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())
    return round(time.monotonic() - t0, 1)


def invoke_init(lam: LambdaClient, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke Init once (synchronously) and read its REPORT line from the log tail."""
    import base64

    from cosmicai.lambda_logs import parse_report_line

    t0 = time.monotonic()
    resp = lam.invoke(FunctionName=function, Payload=json.dumps(payload).encode(), LogType="Tail")
    client_s = round(time.monotonic() - t0, 2)
    body = json.loads(resp["Payload"].read() or b"null")
    tail = base64.b64decode(resp.get("LogResult") or b"").decode(errors="replace")
    reports = [r for r in (parse_report_line(line) for line in tail.splitlines()) if r is not None]
    out: dict[str, Any] = {
        "client_s": client_s,
        "error": resp.get("FunctionError"),
        "result": body if resp.get("FunctionError") else {k: body.get(k) for k in ("items", "shards", "objects")},
    }
    if reports:
        r = reports[-1]
        out |= {
            "duration_s": round(r.duration_ms / 1000, 2),
            "max_memory_used_mb": r.max_memory_used_mb,
            "memory_size_mb": r.memory_size_mb,
        }
    return out
