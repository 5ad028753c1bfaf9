"""`cosmicai invoke`: run the pipeline state machine on a payload, follow it, report the run.

Validates the payload locally with the same model Init uses, starts the execution, shows
live progress (work items done/failed of the plan, objects/s) from the worker reports in
S3, waits, then downloads the run into `<out>/<run_id>/` with its catalog (when its listed
size is within --catalog-download-limit; else it says how to query it in S3), plots and
report.md (cosmicai.report) and prints the results table.

With --resume RUN_ID it re-runs only the shards of that run without a successful result, in the
same output prefix (the payload from --payload, else from <out>/<RUN_ID>/run.json), and reports
the whole run; on a run whose summary says SUCCEEDED it starts nothing and says so.

With --dry-run it plans the run as Init would (reading S3, writing nothing), prints work
items, shards, objects, the projected cost and wall time (cosmicai.costs) and the Lambda
concurrency the run needs against the account's, and starts nothing.

Exit codes: 0 SUCCEEDED (dry run: it would run); 3 PARTIAL (some shards failed; listed);
1 FAILED, ABORTED or TIMED_OUT (error and cause printed); 2 bad arguments or payload
(nothing started); 4 still running when --timeout ran out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# used when bench/results.json is absent (costs.py is plain Python: `--help` stays quick)
from cosmicai.costs import BYTES_PER_OBJECT, MEASURED_INIT_S, MEASURED_OBJECTS_PER_S, MEASURED_SOURCE

if TYPE_CHECKING:  # typing only: the command's imports stay lazy so `cosmicai --help` is quick
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef
    from rich.console import Console

    from cosmicai.payload import RunPayload
    from cosmicai.plan import RunPlan, ShardInfo
    from cosmicai.report import CatalogInPlace
    from cosmicai.runstore import RunLocation

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_WAITING = 0, 1, 2, 3, 4
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
ARN_ENV = "COSMICAI_TF_STATE_MACHINE_ARN"
DEFAULT_CATALOG_LIMIT = 2 * 1000**3  # = report.DEFAULT_CATALOG_LIMIT_BYTES (not imported: keeps `--help` light)
BENCH_RESULTS = Path("bench/results.json")


class InvokeError(ValueError):
    """The invoke arguments cannot start a run; the message says which and why."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
NO_LIMIT = ("none", "unlimited", "inf")


def parse_size(text: str) -> int | None:
    """'2GB' -> 2_000_000_000 (kB/MB/GB/TB decimal, KiB/MiB/GiB/TiB binary, bare number = bytes);
    'none' / 'unlimited' -> None (no limit). argparse.ArgumentTypeError otherwise (exit 2)."""
    if text.strip().lower() in NO_LIMIT:
        return None
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 2GB, 500MB, 1.5GiB, 0 or 'none'")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the invoke parser."""
    p = subparsers.add_parser(
        "invoke",
        help="run the pipeline on a payload, follow it and write the run's report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--state-machine-arn",
        default=os.environ.get(ARN_ENV),
        metavar="ARN",
        help=f"the pipeline state machine (default: ${ARN_ENV}, set by `make invoke`)",
    )
    p.add_argument("--payload", metavar="JSON_OR_FILE", help="inline JSON or a path to a JSON file")
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        default=None,
        help="re-run only the shards of run RUN_ID without a successful result (payload: --payload, "
        "else <out>/RUN_ID/run.json); nothing to do on a SUCCEEDED run",
    )
    p.add_argument("--out", default="runs", type=Path, metavar="DIR", help="where runs/<run_id>/ goes (default runs)")
    p.add_argument("--run-id", default=None, metavar="ID", help="run id (overrides the payload's; default: a new one)")
    p.add_argument("--poll", type=float, default=2.0, metavar="S", help="seconds between progress polls (default 2)")
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="stop waiting after S seconds, leaving the run going (default 3600; 0 waits forever)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="plan the run as Init would and print work items, objects, projected cost and wall time and the "
        "Lambda concurrency it needs; start nothing, write nothing (exit 0 if it would run, 2 if not)",
    )
    p.add_argument(
        "--catalog-download-limit",
        type=parse_size,
        default=DEFAULT_CATALOG_LIMIT,
        metavar="SIZE",
        help="download the merged catalog only when the run's prediction objects add up to at most SIZE "
        "(default 2GB; 'none' always downloads); above it, print how to query it in S3",
    )
    p.add_argument(
        "--bench-results",
        type=Path,
        default=BENCH_RESULTS,
        metavar="JSON",
        help=f"throughput figures for --dry-run (default {BENCH_RESULTS}; built-in figures when absent)",
    )
    p.set_defaults(run=run)


def load_payload(text: str) -> dict[str, Any]:
    """Inline JSON (starts with '{') or the path of a JSON file -> dict; InvokeError otherwise."""
    stripped = text.strip()
    source = "--payload"
    if not stripped.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise InvokeError(f"--payload {text!r} is neither inline JSON nor an existing file")
        stripped, source = path.read_text(), str(path)
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise InvokeError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvokeError(f"{source}: the payload must be a JSON object, got {type(doc).__name__}")
    return doc


def prepare_payload(raw: dict[str, Any], run_id: str | None = None) -> tuple[dict[str, Any], RunPayload]:
    """(body to send, validated RunPayload): the raw payload with its run id fixed, so the
    local run folder and the execution agree. Raises PayloadError like Init would."""
    from cosmicai.payload import RunPayload

    body = dict(raw)
    if run_id is not None:
        body["run_id"] = run_id
    payload = RunPayload.parse(body).with_run_id()
    body["run_id"] = payload.run_id
    return body, payload


def run_id_of(payload: RunPayload) -> str:
    """The run id prepare_payload gave the payload."""
    if payload.run_id is None:
        raise InvokeError("the payload has no run_id (prepare_payload gives it one)")
    return payload.run_id


def resume_body(run_id: str, out_dir: Path, payload_text: str | None) -> dict[str, Any]:
    """The payload of a resumed run: the run's own (from --payload or the run folder's run.json),
    with its run id and `resume` set. InvokeError when neither gives one."""
    if payload_text:
        raw = load_payload(payload_text)
    else:
        run_file = out_dir / run_id / "run.json"
        if not run_file.is_file():
            raise InvokeError(f"--resume {run_id}: no {run_file} (pass the run's payload with --payload)")
        raw = dict(json.loads(run_file.read_text()).get("payload") or {})
    return raw | {"run_id": run_id, "resume": True}


def already_succeeded(s3: S3Client, loc: RunLocation, run_id: str) -> bool:
    """Whether the run's summary in S3 says SUCCEEDED (then a resume has nothing to do)."""
    from cosmicai.runstore import SUMMARY_FILE, get_json_if_exists

    summary = get_json_if_exists(s3, loc.bucket, loc.key(SUMMARY_FILE))
    return isinstance(summary, dict) and summary.get("run_id") == run_id and summary.get("status") == "SUCCEEDED"


def execution_name(run_id: str, now: float | None = None) -> str:
    """A unique execution name starting with the run id (names are unique per state machine
    for 90 days, and a run id may be re-run)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{run_id[:58]}-{stamp}-{os.urandom(2).hex()}"


def exit_code(execution_status: str, summary_status: str | None) -> int:
    """Exit code for the execution's status and the summary's status (None if no summary)."""
    if execution_status not in TERMINAL:
        return EXIT_WAITING
    if execution_status != "SUCCEEDED" or summary_status == "FAILED":
        return EXIT_FAILED
    if summary_status == "PARTIAL":
        return EXIT_PARTIAL
    return EXIT_OK if summary_status == "SUCCEEDED" else EXIT_FAILED


def sfn_client() -> SFNClient:
    """A Step Functions client with standard retries (AWS_ENDPOINT_URL honoured by boto3)."""
    from cosmicai.runstore import aws_client

    return aws_client("stepfunctions")


@dataclass
class Tracker:
    """Progress of one run read from S3: the plan size (run.json) and worker reports so far."""

    run_id: str
    since: datetime
    items: int | None = None
    objects_planned: int | None = None
    reports: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def _fresh(self, obj: ObjectTypeDef) -> bool:
        # Reports of earlier runs under the same prefix are older than this execution.
        return bool(obj["LastModified"].timestamp() >= self.since.timestamp() - 1.0)

    def poll(self, s3: S3Client, loc: RunLocation) -> None:
        """Read run.json until it is ours, then any new or changed worker report."""
        from cosmicai.runstore import RUN_FILE, WORKERS_DIR, get_json, list_objects

        if self.items is None:
            try:
                head = s3.head_object(Bucket=loc.bucket, Key=loc.key(RUN_FILE))
                if head["LastModified"].timestamp() >= self.since.timestamp() - 1.0:
                    doc = get_json(s3, loc.bucket, loc.key(RUN_FILE))
                    if doc.get("run_id") == self.run_id:
                        self.items, self.objects_planned = doc.get("items"), doc.get("objects_planned")
            except Exception:  # noqa: BLE001 - progress is best effort; the summary is the authority
                return
        for obj in list_objects(s3, loc.bucket, loc.key(WORKERS_DIR)):
            key, etag = obj["Key"], obj.get("ETag", "")
            if not key.endswith(".json") or not self._fresh(obj) or self.reports.get(key, ("",))[0] == etag:
                continue
            doc = get_json(s3, loc.bucket, key)
            if isinstance(doc, dict) and doc.get("run_id") == self.run_id:
                self.reports[key] = (etag, doc)

    @property
    def done(self) -> int:
        return sum(1 for _, d in self.reports.values() if d.get("status") != "failed")

    @property
    def failed(self) -> int:
        return sum(1 for _, d in self.reports.values() if d.get("status") == "failed")

    @property
    def objects(self) -> int:
        return sum(int(d.get("objects") or 0) for _, d in self.reports.values())


def wait_for(
    sfn: SFNClient,
    s3: S3Client,
    execution_arn: str,
    tracker: Tracker,
    loc: RunLocation,
    console: Console,
    poll: float,
    timeout: float,
) -> DescribeExecutionOutputTypeDef:
    """Poll until the execution ends (or `timeout`), drawing a progress bar; returns describe_execution."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("planning", total=None, detail="")
        while True:
            desc = sfn.describe_execution(executionArn=execution_arn)
            try:
                tracker.poll(s3, loc)
            except Exception as exc:  # noqa: BLE001 - a slow or flaky listing must not stop the wait
                bar.console.log(f"progress read failed (will retry): {exc}")
            elapsed = time.monotonic() - t0
            rate = tracker.objects / elapsed if elapsed > 0 else 0.0
            bar.update(
                task,
                description="work items" if tracker.items is not None else "planning",
                total=tracker.items,
                completed=tracker.done + tracker.failed,
                detail=f"{tracker.failed} failed, {tracker.objects} objects, {rate:.0f} obj/s",
            )
            if desc["status"] in TERMINAL:
                return desc
            if timeout and elapsed > timeout:
                return desc
            time.sleep(poll)


def execution_error(sfn: SFNClient, desc: DescribeExecutionOutputTypeDef) -> tuple[str, str]:
    """(error, cause) of an ended execution, from describe_execution or else its history."""
    from cosmicai.summary import parse_cause

    if desc.get("error") or desc.get("cause"):
        return parse_cause({"Error": desc.get("error"), "Cause": desc.get("cause")})
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=desc["executionArn"], reverseOrder=True)
    for page in pages:
        for ev in page.get("events", []):
            for key in ("executionFailedEventDetails", "executionTimedOutEventDetails", "executionAbortedEventDetails"):
                if key in ev:
                    d = ev[key]
                    return parse_cause({"Error": d.get("error"), "Cause": d.get("cause")})
        break  # the terminal event is on the first page of a reversed history
    return desc.get("status", "unknown"), "no error details in the execution history"


def print_results(
    console: Console,
    summary: dict[str, Any],
    run_dir: Path,
    plots: list[Path],
    catalog: Path | None,
    in_place: CatalogInPlace | None = None,
) -> None:
    """The results table, failures and where the files are (or where the catalog stays in S3)."""
    from rich.table import Table

    from cosmicai.report import REPORT_FILE, summary_rows

    table = Table(title=f"cosmic-ai run {summary.get('run_id')}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in summary_rows(summary):
        table.add_row(k, v)
    console.print(table)
    shards = summary.get("shards", {})
    failures = shards.get("failures", [])  # the first ones; summary/failures.jsonl and report.md list all
    for f in failures[:20]:
        console.print(f"[red]failed[/] {f['shard']}: {f['error']}: {f.get('message', '')}")
    failed = shards.get("failed", len(failures))
    if failed > 20:
        console.print(f"... and {failed - 20} more failed shards (see {run_dir / REPORT_FILE})")
    console.print(f"report: {run_dir / REPORT_FILE}")
    if catalog is not None:
        console.print(f"catalog: {catalog}")
    if in_place is not None:
        print_in_place(console, in_place)
    if plots:
        console.print(f"plots: {', '.join(str(p) for p in plots)}")


def print_in_place(console: Console, in_place: CatalogInPlace) -> None:
    """Where the catalog that was not downloaded is, and the Python that queries it there."""
    from cosmicai.report import client_endpoint, format_bytes, in_place_snippet

    console.print(
        f"catalog: not downloaded ({format_bytes(in_place.bytes)} in {in_place.files} files > "
        f"--catalog-download-limit {format_bytes(in_place.limit)}); query it in place at {in_place.uri}",
        markup=False,
    )
    console.print(in_place_snippet(in_place.uri, *client_endpoint()), markup=False, highlight=False, soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    """Validate, start, follow, download and report; see the module doc for exit codes."""
    if args.dry_run:
        return dry_run(args)
    from rich.console import Console

    from cosmicai.payload import PayloadError
    from cosmicai.report import ReportError, build_report
    from cosmicai.runstore import RunLocation, s3_client

    console = Console()
    try:
        if not args.state_machine_arn:
            raise InvokeError(f"no state machine: pass --state-machine-arn or set ${ARN_ENV} (make invoke does)")
        if args.resume:
            raw = resume_body(args.resume, Path(args.out), args.payload)
        elif args.payload:
            raw = load_payload(args.payload)
        else:
            raise InvokeError("--payload is required (or --resume RUN_ID)")
        body, payload = prepare_payload(raw, args.resume or args.run_id)
    except (InvokeError, PayloadError) as exc:
        console.print(f"[red]invoke: {exc}[/]  (nothing was started)")
        return EXIT_USAGE
    for w in payload.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    run_id = run_id_of(payload)
    loc = RunLocation(*payload.output_location)
    sfn, s3 = sfn_client(), s3_client()
    if payload.resume and already_succeeded(s3, loc, run_id):
        console.print(
            f"run [bold]{run_id}[/] already SUCCEEDED ({loc.uri}summary.json): nothing to resume, nothing started"
        )
        return EXIT_OK
    started = sfn.start_execution(
        stateMachineArn=args.state_machine_arn, name=execution_name(run_id), input=json.dumps(body)
    )
    arn = started["executionArn"]
    console.print(f"run [bold]{run_id}[/]: execution {arn}")
    tracker = Tracker(run_id=run_id, since=started["startDate"])
    desc = wait_for(sfn, s3, arn, tracker, loc, console, args.poll, args.timeout)
    status = desc["status"]
    if status not in TERMINAL:
        console.print(
            f"[yellow]still {status} after {args.timeout:.0f} s[/]; follow it with: "
            f"aws stepfunctions describe-execution --execution-arn {arn}"
        )
        return EXIT_WAITING
    if status != "SUCCEEDED":
        error, cause = execution_error(sfn, desc)
        console.print(f"[red]execution {status}: {error}: {cause}[/]")
    run_dir = Path(args.out) / run_id
    try:
        files, plots, _ = build_report(s3, loc, run_dir, run_id=run_id, catalog_limit=args.catalog_download_limit)
    except ReportError as exc:
        console.print(f"[red]no report: {exc}[/]")
        return exit_code(status, None)
    print_results(console, files.summary, run_dir, plots, files.catalog_path, files.in_place)
    return exit_code(status, files.summary.get("status"))


# --- the dry run: plan, projected cost and wall time, concurrency; nothing started or written ---

# The stack's defaults (terraform/variables.tf) when its outputs are not in the environment.
DEFAULT_MEMORY_MB, DEFAULT_ARCH = 1769, "x86_64"
STACK_ENV = {
    "data": "COSMICAI_TF_DATA_URI",
    "results": "COSMICAI_TF_RESULTS_URI",
    "memory": "COSMICAI_TF_INFER_MEMORY_MB",
    "arch": "COSMICAI_TF_ARCHITECTURE",
    "functions": "COSMICAI_TF_FUNCTION_NAMES",
}


@dataclass(frozen=True)
class Throughput:
    """Objects/s per Lambda worker by thread count (one thread per vCPU), billed init, and where from."""

    rates_by_threads: dict[int, float]
    init_s: float
    source: str


@dataclass(frozen=True)
class Concurrency:
    """Lambda concurrency the run needs and what the account (and the infer function) allow; None = unknown."""

    needed: int
    items: int
    max_concurrency: int
    account_limit: int | None = None
    unreserved: int | None = None
    function_reserved: int | None = None
    unknown_reason: str | None = None


def bench_throughput(results: Mapping[str, Any], precision: str, batch_size: int, source: str) -> Throughput | None:
    """The payload's precision at the measured batch size nearest its own, from bench results:
    objects per CPU-second at one thread (bench's projection basis), the two-thread efficiency
    when measured, and the cold start of that precision. None when nothing fits."""
    rows = [
        r
        for r in (results.get("worker_path") or {}).get("rows") or []
        if r.get("runner") == precision and r.get("threads") == 1 and r.get("objects_per_cpu_s")
    ]
    if not rows:
        return None
    row = min(rows, key=lambda r: (abs(math.log(r["batch_size"] / batch_size)), r["batch_size"]))
    rate1 = float(row["objects_per_cpu_s"])
    eff = ((results["worker_path"].get("thread_scaling") or {}).get(precision) or {}).get("efficiency_t2")
    rates = {1: rate1} | ({2: 2 * rate1 * float(eff)} if eff else {})
    probes = (results.get("cold_start") or {}).get("probe") or []
    init = next(
        (p["first_prediction_s"] for p in probes if p.get("precision") == precision),
        probes[0]["first_prediction_s"] if probes else MEASURED_INIT_S,
    )
    when = str(results.get("created_at") or "")[:16]
    return Throughput(rates, float(init), f"{source}, {when}, {precision} at batch {row['batch_size']}")


def load_throughput(path: Path, precision: str, batch_size: int) -> Throughput:
    """Throughput from the bench results at `path` when present and readable, else the built-in figures."""
    reason = f"{path} absent"
    if path.is_file():
        try:
            found = bench_throughput(json.loads(path.read_text()), precision, batch_size, str(path))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
            found, reason = None, f"{path} unreadable ({exc})"
        else:
            reason = f"{path} has no {precision} measurement"
        if found is not None:
            return found
    return Throughput({1: MEASURED_OBJECTS_PER_S[precision]}, MEASURED_INIT_S, f"{MEASURED_SOURCE} ({reason})")


def stack_function(env: Mapping[str, str]) -> tuple[float, str, str]:
    """(memory MB, arch, where from) of the infer function: the deployed stack's outputs
    (`make invoke` exports them), else the stack's defaults."""
    memory, arch = env.get(STACK_ENV["memory"]), env.get(STACK_ENV["arch"])
    if memory and arch:
        return float(memory), arch, "the deployed stack's outputs"
    return (
        float(memory or DEFAULT_MEMORY_MB),
        arch or DEFAULT_ARCH,
        "the stack's defaults: no deployed stack outputs in the environment",
    )


def check_stack_locations(payload: RunPayload, env: Mapping[str, str]) -> None:
    """PayloadError when the deployed stack's functions may not reach the payload's locations:
    they read only below data_uri and write only below results_uri (the user may reach more)."""
    from cosmicai.payload import PayloadError

    for field_, uri, key in (("input", payload.input, "data"), ("output", payload.output, "results")):
        allowed = env.get(STACK_ENV[key])
        if allowed and not uri.startswith(allowed.rstrip("/") + "/"):
            raise PayloadError(
                field_,
                f"{uri} is outside the stack's {key}_uri {allowed}; its functions may not "
                "reach it (Init would fail with AccessDenied)",
            )


def estimate_objects(shards: Sequence[ShardInfo]) -> tuple[int, int]:
    """(objects counted, objects estimated for shards of unknown count from their size)."""
    known = [s for s in shards if s.count is not None]
    unknown = [s for s in shards if s.count is None]
    counted = sum(s.count or 0 for s in known)
    known_bytes = sum(s.bytes for s in known)
    per_byte = counted / known_bytes if counted and known_bytes else 1 / BYTES_PER_OBJECT
    return counted, sum(round(s.bytes * per_byte) for s in unknown)


def project(
    objects: int,
    items: int,
    shards: int,
    concurrency: int,
    throughput: Throughput,
    memory_mb: float,
    arch: str,
    shard_bytes: int = 0,
) -> dict[str, Any]:
    """Projected bill (run and per million objects) and worker wall time of this plan: costs.run_bill
    over its items and shards, INIT once per worker, every item a mean one, Init reading each shard's
    header (an upper bound: a manifest replaces those GETs with one)."""
    from cosmicai.costs import (
        Deployment,
        Rates,
        RunShape,
        item_seconds,
        lambda_usage,
        project_seconds,
        run_bill,
        throughput_at_memory,
    )

    rate = throughput_at_memory(throughput.rates_by_threads, memory_mb)
    rates = Rates(
        objects_per_s=rate,
        init_s=throughput.init_s,
        bytes_per_object=shard_bytes / objects if shard_bytes and objects else BYTES_PER_OBJECT,
    )
    one = item_seconds(objects / items, shards / items, rates)
    waves = math.ceil(items / concurrency)
    wall = throughput.init_s + waves * one.total_s
    shape = RunShape(
        objects=objects, shards=shards, items=items, cold_starts=min(items, concurrency), manifest=False, wall_s=wall
    )
    deployment = Deployment(infer_memory_mb=memory_mb, arch=arch)
    bill = run_bill(shape, lambda_usage(shape, project_seconds(shape, rates), deployment, "projected"), deployment)
    return {
        "objects_per_s": rate,
        "objects_per_item": max(1, math.ceil(objects / items)),
        "usd_per_million_objects": bill.usd_per_million_objects,
        "run_usd": bill.usd,
        "components": bill.components,
        "wall_s": wall,
        "waves": waves,
    }


def lambda_concurrency(
    make_client: Callable[[], Any], needed: int, items: int, max_concurrency: int, infer_function: str | None
) -> Concurrency:
    """The account's concurrency (GetAccountSettings) and the infer function's reserved
    concurrency when set; unknown (with the reason) when Lambda cannot be asked."""
    from botocore.exceptions import BotoCoreError, ClientError

    base = Concurrency(needed=needed, items=items, max_concurrency=max_concurrency)
    try:
        lam = make_client()  # inside the try: no region or credentials is an answer too
        limits = lam.get_account_settings()["AccountLimit"]
    except (BotoCoreError, ClientError) as exc:
        return replace(base, unknown_reason=f"Lambda GetAccountSettings failed: {exc}")
    reserved = None
    if infer_function:
        try:
            reserved = lam.get_function_concurrency(FunctionName=infer_function).get("ReservedConcurrentExecutions")
        except (BotoCoreError, ClientError):
            reserved = None  # not deployed or not allowed: the account figures still stand
    return replace(
        base,
        account_limit=limits.get("ConcurrentExecutions"),
        unreserved=limits.get("UnreservedConcurrentExecutions"),
        function_reserved=reserved,
    )


def concurrency_text(c: Concurrency) -> str:
    """'needs 4 = min(4 work items, max_concurrency 100); account 1000 (unreserved 1000)' and a warning when short."""
    need = f"needs {c.needed} = min({c.items} work items, max_concurrency {c.max_concurrency})"
    if c.account_limit is None:
        return f"{need}; the account's is unknown ({c.unknown_reason})"
    text = f"{need}; account limit {c.account_limit} (unreserved {c.unreserved})"
    if c.function_reserved is not None:
        text += f", infer function reserved {c.function_reserved}"
    cap = min(x for x in (c.unreserved, c.function_reserved, c.account_limit) if x is not None)
    if c.needed > cap:
        text += (
            f": at most {cap} run at once; Lambda throttles the rest and the Map retries them with backoff "
            "(longer wall time, and items fail when the retries run out): lower max_concurrency"
        )
    return text


def dry_run_rows(
    planned: RunPlan, throughput: Throughput, memory: tuple[float, str, str], concurrency: Concurrency
) -> list[tuple[str, str]]:
    """(label, value) rows the dry run prints: the plan, its objects, cost, wall time and concurrency.
    With uncertainty tta8 the throughput is divided by its measured compute factor (~8x), said in a row."""
    from cosmicai.costs import throughput_at_memory
    from cosmicai.uncertainty import cost_factor

    p = planned.payload
    counted, estimated = estimate_objects(planned.shards)
    objects = counted + estimated
    factor, factor_source = cost_factor(p.uncertainty)
    if factor != 1.0:
        throughput = replace(
            throughput,
            rates_by_threads={k: v / factor for k, v in throughput.rates_by_threads.items()},
            source=f"{throughput.source}, / {factor:.2f} for uncertainty {p.uncertainty}",
        )
    rows = [
        ("run", p.run_id or "(a new id when the run starts)"),
        ("input", p.input),
        ("output", p.output),
        ("work items", str(len(planned.items))),
        ("shards", f"{len(planned.shards)} ({planned.shards_without_count} of unknown count)"),
        (
            "objects",
            f"{counted}"
            + (
                f" counted + ~{estimated} estimated from the size of the "
                f"{planned.shards_without_count} shards of unknown count"
                if planned.shards_without_count
                else ""
            ),
        ),
        ("precision, batch", f"{p.precision}, {p.batch_size}"),
        (
            "uncertainty",
            p.uncertainty
            if factor == 1.0
            else f"{p.uncertainty}: {factor:.2f}x the compute of none ({factor_source}); "
            "throughput, cost and wall time below include it",
        ),
        ("infer function", f"{memory[0]:.0f} MB {memory[1]}: {memory[2]}"),
        (
            "throughput",
            f"{throughput_at_memory(throughput.rates_by_threads, memory[0]):.0f} objects/s per worker, "
            f"init {throughput.init_s:.2f} s: {throughput.source}",
        ),
    ]
    if objects:
        pr = project(
            objects,
            len(planned.items),
            len(planned.shards),
            max(1, concurrency.needed),
            throughput,
            memory[0],
            memory[1],
            shard_bytes=sum(s.bytes for s in planned.shards),
        )
        c = pr["components"]
        rows += [
            ("projected USD (run)", f"{pr['run_usd']:.6f}"),
            (
                "projected USD by charge",
                f"Lambda {c['lambda_compute']:.6f} + requests {c['lambda_requests']:.6f} + "
                f"Step Functions {c['step_functions']:.6f} + S3 {c['s3_requests']:.6f} + "
                f"logs {c['cloudwatch_logs']:.6f} (costs.run_bill)",
            ),
            ("projected USD / 1M objects", f"{pr['usd_per_million_objects']:.4f}"),
            (
                "projected wall s",
                f"{pr['wall_s']:.1f} of workers: {pr['waves']} wave(s) of {concurrency.needed}, "
                f"~{pr['objects_per_item']} objects per item (Init, Map start and Summarize not included)",
            ),
        ]
    else:
        rows.append(("projection", "none: no object counted or estimated (empty shards?)"))
    rows.append(("concurrency", concurrency_text(concurrency)))
    return rows


def dry_run(args: argparse.Namespace) -> int:
    """Validate and plan like Init (reads only), print the plan, projected cost and wall time and
    the concurrency the run needs; start nothing. 0 if it would run, 2 if not, 1 if S3 cannot be read."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from cosmicai.payload import PayloadError
    from cosmicai.plan import PlanError, plan_run
    from cosmicai.runstore import aws_client, s3_client

    console = Console()
    env = dict(os.environ)
    try:
        if args.resume or not args.payload:
            raise InvokeError("--dry-run plans a new run from --payload (a resume re-plans on the cloud)")
        _, payload = prepare_payload(load_payload(args.payload), args.run_id)
        check_stack_locations(payload, env)
        planned = plan_run(s3_client(), payload)
    except (InvokeError, PayloadError, PlanError) as exc:
        console.print(Text(f"dry run: {exc}  (it would not run; nothing was started)", style="red"))
        return EXIT_USAGE
    except (BotoCoreError, ClientError) as exc:
        console.print(Text(f"dry run: cannot read the input or output: {exc}", style="red"))
        return EXIT_FAILED
    infer = json.loads(env.get(STACK_ENV["functions"]) or "{}").get("infer")
    needed = min(len(planned.items), planned.payload.max_concurrency)
    # A quick answer or none: the account figures are advice, not worth 8 retries of a dead endpoint.
    quick = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10)
    concurrency = lambda_concurrency(
        lambda: aws_client("lambda", quick), needed, len(planned.items), planned.payload.max_concurrency, infer
    )
    rows = dry_run_rows(
        planned,
        load_throughput(args.bench_results, payload.precision, payload.batch_size),
        stack_function(env),
        concurrency,
    )
    table = Table(title="cosmic-ai dry run: nothing started, nothing written", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, Text(value))  # values are data (URIs, error text), never markup
    console.print(table)
    for w in planned.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), w))
    return EXIT_OK
