"""`cosmicai costs --logs GROUP`: the real Lambda bill of a run, from its REPORT lines.

Reads REPORT lines from CloudWatch Logs (AWS, or the local cloud through
AWS_ENDPOINT_URL), sums billed GB-seconds and prices them (x86_64 or arm64, plus
requests). With `--output s3://.../ --run-id RUN` only the infer invocations named in that
run's worker reports count, and the run's whole bill is priced by `costs.run_bill` (the
function the run summary and the projection use): the REPORT lines' GB-seconds, and the
run's requests, Step Functions transitions, S3 requests and log bytes counted from its
worker reports; quoted per million objects, to set beside the projection in bench/REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing only: the command's imports stay lazy so `cosmicai --help` is quick
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client

    from cosmicai.costs import Bill
    from cosmicai.lambda_logs import ReportLine

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CostsCommandError(ValueError):
    """A bad argument of `cosmicai costs` (message names the option)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the costs parser."""
    p = subparsers.add_parser(
        "costs",
        help="bill of Lambda invocations from their CloudWatch REPORT lines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--logs",
        action="append",
        metavar="GROUP",
        help="CloudWatch log group, e.g. /aws/lambda/cosmicai-infer (repeat for several functions; default: "
        "the function log groups of the deployed stack, from COSMICAI_TF_LOG_GROUP_NAMES as `make costs` sets it)",
    )
    p.add_argument(
        "--start",
        "--since",
        dest="start",
        help="only lines at or after this time: ISO-8601, epoch seconds, or an age like 2h / 30m",
    )
    p.add_argument("--end", help="only lines before this time (same forms as --start)")
    p.add_argument(
        "--output", metavar="S3_URI", help="the run's output prefix (s3://bucket/prefix/), used with --run-id"
    )
    p.add_argument("--run-id", help="only invocations whose request ids appear in this run's worker reports")
    p.add_argument(
        "--arch", choices=("x86_64", "arm64"), help="price as this architecture (default: ask Lambda, else x86_64)"
    )
    p.add_argument("--objects", type=int, help="objects these invocations predicted (for USD per million objects)")
    p.add_argument(
        "--projection",
        default="bench/results.json",
        metavar="RESULTS",
        help="bench results whose projection is shown beside the bill (default bench/results.json, skipped if absent)",
    )
    p.add_argument("--json", action="store_true", help="print the bill as JSON")
    p.set_defaults(run=run)


def parse_time_ms(value: str | None, option: str, now: float | None = None) -> int | None:
    """Epoch milliseconds from ISO-8601, epoch seconds or an age ('90s', '30m', '2h', '1d')."""
    if value is None:
        return None
    now = time.time() if now is None else now
    text = value.strip()
    if m := _RELATIVE.match(text):
        return int((now - float(m.group(1)) * _UNIT_S[m.group(2)]) * 1000)
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostsCommandError(f"{option} {value!r}: not ISO-8601, epoch seconds or an age like 2h") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def function_arch(lambda_client: LambdaClient, group: str) -> str | None:
    """The architecture of the function behind `/aws/lambda/<name>`, None if unknown."""
    if not group.startswith("/aws/lambda/"):
        return None
    try:
        cfg = lambda_client.get_function_configuration(FunctionName=group.removeprefix("/aws/lambda/"))
    except Exception:  # deleted function, no permission, no Lambda endpoint: the caller falls back
        return None
    archs = cfg.get("Architectures") or ["x86_64"]
    return str(archs[0])


@dataclass(frozen=True)
class RunFacts:
    """What a run's worker reports say about it: the infer request ids, and the counts its bill needs."""

    request_ids: frozenset[str]
    objects: int
    items: int
    shards: int
    failed_items: int  # reports the Map's Catch wrote (crashed or timed-out items)
    started_at: float
    finished_at: float


def run_requests(s3: S3Client, output: str, run_id: str) -> RunFacts:
    """The run's facts from its worker reports under `output`."""
    from cosmicai.payload import split_s3_uri
    from cosmicai.runstore import WORKERS_DIR, get_json, list_objects

    bucket, prefix = split_s3_uri(output, "--output")
    ids: set[str] = set()
    objects = items = shards = crashed = 0
    starts, ends = [], []
    for obj in list_objects(s3, bucket, prefix + WORKERS_DIR):
        report = get_json(s3, bucket, obj["Key"])
        if report.get("run_id") != run_id:
            continue
        items += 1
        shards += len(report.get("shards") or [])
        crashed += bool(report.get("crashed"))
        request_id = (report.get("function") or {}).get("request_id")
        if request_id:
            ids.add(request_id)
        objects += int(report.get("objects") or 0)
        if report.get("started_at"):
            starts.append(float(report["started_at"]))
        if report.get("finished_at"):
            ends.append(float(report["finished_at"]))
    if not ids:
        raise CostsCommandError(
            f"--run-id {run_id}: no worker report under {output}{WORKERS_DIR} names a Lambda request id"
        )
    return RunFacts(
        frozenset(ids),
        objects,
        items,
        max(shards, items),
        crashed,
        min(starts, default=0.0),
        max(ends, default=time.time()),
    )


def group_role(group: str, roles: dict[str, str] | None = None) -> str | None:
    """`infer`, `init` or `summarize` for a function's log group: from the stack's outputs, else its name's end."""
    for role, name in (roles or {}).items():
        if name == group:
            return role
    tail = group.rstrip("/").rsplit("/", 1)[-1]
    return next((r for r in ("infer", "init", "summarize") if tail.endswith(r)), None)


def run_bill_from_reports(by_role: dict[str, list[ReportLine]], facts: RunFacts, arch: str) -> Bill:
    """The run's bill (costs.run_bill): Lambda GB-s as its REPORT lines bill them, by function, and every
    other charge counted from the run's facts; infer invocations beyond the items are the Map's retries."""
    from cosmicai.costs import Deployment, LambdaUsage, RunShape, run_bill

    infer = by_role.get("infer", [])
    gb_s = {role: sum(r.billed_gb_seconds for r in lines) for role, lines in by_role.items()}
    memory = {role: max(r.memory_size_mb for r in lines) for role, lines in by_role.items() if lines}
    retries = max(0, len(infer) - facts.items)
    shape = RunShape(
        objects=facts.objects,
        shards=facts.shards,
        items=facts.items,
        cold_starts=min(sum(r.cold for r in infer), facts.items + retries),
        infer_retries=retries,
        failed_items=facts.failed_items,
        wall_s=max(0.0, facts.finished_at - facts.started_at),
    )
    defaults = Deployment()
    deployment = Deployment(
        infer_memory_mb=memory.get("infer", defaults.infer_memory_mb),
        arch=arch,
        init_memory_mb=memory.get("init", defaults.init_memory_mb),
        summarize_memory_mb=memory.get("summarize", defaults.summarize_memory_mb),
    )
    usage = LambdaUsage(
        infer_gb_s=gb_s.get("infer", 0.0),
        init_gb_s=gb_s.get("init", 0.0),
        summarize_gb_s=gb_s.get("summarize", 0.0),
        source="REPORT lines",
    )
    return run_bill(shape, usage, deployment)


def projection_for(
    results_path: str | None, arch: str, memory_mb: int, objects_per_invocation: float
) -> dict[str, Any] | None:
    """The bench projection row nearest to this bill (same arch, nearest memory, nearest objects per work
    item: shard objects x shards per item), if any."""
    from pathlib import Path

    if not results_path or not Path(results_path).is_file():
        return None
    rows = (json.loads(Path(results_path).read_text()).get("projection") or {}).get("rows") or []
    rows = [r for r in rows if r["arch"] == arch]
    if not rows:
        return None
    best = min(
        rows,
        key=lambda r: (
            abs(r["memory_mb"] - memory_mb),
            abs(r["shard_objects"] * r.get("shards_per_item", 1) - objects_per_invocation),
        ),
    )
    return (
        {"source": results_path, "kind": "projection"}
        | {
            k: best[k]
            for k in (
                "arch",
                "memory_mb",
                "shard_mb",
                "shard_objects",
                "usd_per_million_objects",
                "components_per_million",
                "billed_s_per_invocation",
            )
        }
        | {"shards_per_item": best.get("shards_per_item", 1)}
    )


def stack_defaults(args: argparse.Namespace, env: dict[str, str] | None = None) -> None:
    """Fill --logs (the stack's function log groups) and --output (results URI + run id) from COSMICAI_TF_* outputs."""
    env = dict(os.environ if env is None else env)
    if not args.logs:
        groups = json.loads(env.get("COSMICAI_TF_LOG_GROUP_NAMES") or "{}")
        args.logs = [g for role, g in sorted(groups.items()) if role != "state_machine"]
        if not args.logs:
            raise CostsCommandError(
                "--logs: no log group given and COSMICAI_TF_LOG_GROUP_NAMES is unset (deploy first, or name a group)"
            )
    if args.run_id and not args.output and env.get("COSMICAI_TF_RESULTS_URI"):
        args.output = f"{env['COSMICAI_TF_RESULTS_URI'].rstrip('/')}/{args.run_id}/"


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """The bill as a dict (see lambda_logs.bill), one entry per log group plus the total."""
    from cosmicai.lambda_logs import bill, dedupe, fetch_report_lines
    from cosmicai.runstore import aws_client, s3_client

    stack_defaults(args)
    start_ms = parse_time_ms(args.start, "--start")
    end_ms = parse_time_ms(args.end, "--end")
    if bool(args.run_id) != bool(args.output):
        raise CostsCommandError("--run-id and --output go together (the run's worker reports name its invocations)")
    facts = None
    objects = args.objects
    if args.run_id:
        facts = run_requests(s3_client(), args.output, args.run_id)
        objects = objects or facts.objects
        # REPORT lines follow the handler's return; a minute of slack each side catches them.
        start_ms = start_ms if start_ms is not None else int((facts.started_at - 60) * 1000)
        end_ms = end_ms if end_ms is not None else int((facts.finished_at + 60) * 1000)
    roles = json.loads(os.environ.get("COSMICAI_TF_LOG_GROUP_NAMES") or "{}")
    logs, lam = aws_client("logs"), aws_client("lambda")
    groups: list[dict[str, Any]] = []
    by_role: dict[str, list[ReportLine]] = {}
    archs: list[str] = []
    for group in args.logs:
        reports = dedupe(fetch_report_lines(logs, group, start_ms=start_ms, end_ms=end_ms))
        filtered_by = "time window"
        if facts is not None and any(r.request_id in facts.request_ids for r in reports):
            # Worker reports name infer invocations only; other functions keep the run's time window.
            reports = [r for r in reports if r.request_id in facts.request_ids]
            filtered_by = "run's request ids"
        arch = args.arch or function_arch(lam, group) or "x86_64"
        groups.append({"log_group": group, "filtered_by": filtered_by} | bill(reports, arch))
        role = group_role(group, roles)
        if role:
            by_role.setdefault(role, []).extend(reports)
        archs.append(arch)
    total_usd = sum(g["usd"]["total"] for g in groups)
    out: dict[str, Any] = {
        "kind": "bill (from REPORT lines)",
        "endpoint": os.environ.get("AWS_ENDPOINT_URL") or "AWS",
        "window_ms": [start_ms, end_ms],
        "run_id": args.run_id,
        "groups": groups,
        "invocations": sum(g["invocations"] for g in groups),
        "billed_gb_seconds": sum(g["billed_gb_seconds"] for g in groups),
        "usd_total": total_usd,
    }
    if objects:
        out["objects"] = objects
        out["usd_per_million_objects"] = total_usd * 1_000_000 / objects
        infer = max(groups, key=lambda g: g["billed_gb_seconds"])
        if infer["invocations"] and infer["memory_sizes_mb"]:
            out["projection"] = projection_for(
                getattr(args, "projection", None),
                infer["arch"],
                infer["memory_sizes_mb"][-1],
                objects / infer["invocations"],
            )
    if facts is not None and facts.items and by_role.get("infer"):
        run = run_bill_from_reports(by_role, facts, archs[0] if archs else "x86_64")
        out["run_bill"] = run.as_dict()
    return out


def _print_table(bill_: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Lambda bill from REPORT lines ({bill_['endpoint']})")
    for col in (
        "log group",
        "arch",
        "invocations",
        "cold",
        "memory MB",
        "billed s",
        "GB-s",
        "compute $",
        "requests $",
        "total $",
    ):
        table.add_column(col, justify="left" if col == "log group" else "right")
    for g in bill_["groups"]:
        table.add_row(
            g["log_group"],
            g["arch"],
            str(g["invocations"]),
            str(g["cold_starts"]),
            ",".join(map(str, g["memory_sizes_mb"])) or "-",
            f"{g['billed_seconds']:.3f}",
            f"{g['billed_gb_seconds']:.3f}",
            f"{g['usd']['lambda_compute']:.6f}",
            f"{g['usd']['lambda_requests']:.6f}",
            f"{g['usd']['total']:.6f}",
        )
    console = Console(width=None if sys.stdout.isatty() else 160)  # piped: keep the log group names readable
    console.print(table)
    console.print(
        f"total: {bill_['invocations']} invocations, {bill_['billed_gb_seconds']:.3f} GB-s, ${bill_['usd_total']:.6f}"
    )
    if "usd_per_million_objects" in bill_:
        console.print(
            f"{bill_['objects']:,} objects -> ${bill_['usd_per_million_objects']:.4f} per million objects (Lambda only)"
        )
    run = bill_.get("run_bill")
    if run:
        c = run["components"]
        console.print(
            f"run {bill_['run_id']}, every charge (costs.run_bill; Lambda from these REPORT lines, the rest "
            f"counted from its worker reports): ${run['usd']:.6f} = Lambda ${c['lambda_compute']:.6f} + requests "
            f"${c['lambda_requests']:.6f} + Step Functions ${c['step_functions']:.6f} + S3 ${c['s3_requests']:.6f} + "
            f"logs ${c['cloudwatch_logs']:.6f}"
            + (f"; ${run['usd_per_million_objects']:.4f} per million objects" if run["usd_per_million_objects"] else "")
        )
    proj = bill_.get("projection")
    if proj:
        lam = proj["components_per_million"]["lambda_compute"] + proj["components_per_million"]["lambda_requests"]
        console.print(
            f"projection ({proj['source']}, {proj['arch']} {proj['memory_mb']} MB, {proj['shard_mb']} MB shards, "
            f"{proj['shards_per_item']} per item): "
            f"${lam:.4f} per million objects for Lambda, ${proj['usd_per_million_objects']:.4f} with all charges"
        )


def run(args: argparse.Namespace) -> int:
    """Print the bill; exit 2 on bad arguments, 1 if no REPORT line matched."""
    try:
        result = collect(args)
    except CostsCommandError as exc:
        print(f"cosmicai costs: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0 if result["invocations"] else 1
