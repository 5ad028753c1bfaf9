"""`cosmicai invoke`: run the pipeline state machine on a payload, follow it, report the run.

Validates the payload locally with the same model Init uses, starts the execution, shows
live progress (work items done/failed of the plan, objects/s) from the worker reports in
S3, waits, then downloads the run into `<out>/<run_id>/` with its catalog, plots and
report.md (cosmicai.report) and prints the results table.

Exit codes: 0 SUCCEEDED; 3 PARTIAL (some shards failed; listed); 1 FAILED, ABORTED or
TIMED_OUT (error and cause printed); 2 bad arguments or payload (nothing started);
4 still running when --timeout ran out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_WAITING = 0, 1, 2, 3, 4
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
ARN_ENV = "COSMICAI_TF_STATE_MACHINE_ARN"


class InvokeError(ValueError):
    """The invoke arguments cannot start a run; the message says which and why."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the invoke parser."""
    p = subparsers.add_parser(
        "invoke",
        help="run the pipeline on a payload, follow it and write the run's report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--state-machine-arn", default=os.environ.get(ARN_ENV), metavar="ARN",
                   help=f"the pipeline state machine (default: ${ARN_ENV}, set by `make invoke`)")
    p.add_argument("--payload", required=True, metavar="JSON_OR_FILE", help="inline JSON or a path to a JSON file")
    p.add_argument("--out", default="runs", type=Path, metavar="DIR", help="where runs/<run_id>/ goes (default runs)")
    p.add_argument("--run-id", default=None, metavar="ID", help="run id (overrides the payload's; default: a new one)")
    p.add_argument("--poll", type=float, default=2.0, metavar="S", help="seconds between progress polls (default 2)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                   help="stop waiting after S seconds, leaving the run going (default 3600; 0 waits forever)")
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


def prepare_payload(raw: dict[str, Any], run_id: str | None = None) -> tuple[dict[str, Any], Any]:
    """(body to send, validated RunPayload): the raw payload with its run id fixed, so the
    local run folder and the execution agree. Raises PayloadError like Init would."""
    from cosmicai.payload import RunPayload

    body = dict(raw)
    if run_id is not None:
        body["run_id"] = run_id
    payload = RunPayload.parse(body).with_run_id()
    body["run_id"] = payload.run_id
    return body, payload


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


def sfn_client() -> Any:
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

    def _fresh(self, obj: dict[str, Any]) -> bool:
        # Reports of earlier runs under the same prefix are older than this execution.
        return obj["LastModified"].timestamp() >= self.since.timestamp() - 1.0

    def poll(self, s3: Any, loc: Any) -> None:
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


def wait_for(sfn: Any, s3: Any, execution_arn: str, tracker: Tracker, loc: Any, console: Any,
             poll: float, timeout: float) -> dict[str, Any]:
    """Poll until the execution ends (or `timeout`), drawing a progress bar; returns describe_execution."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.monotonic()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
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
            bar.update(task, description="work items" if tracker.items is not None else "planning",
                       total=tracker.items, completed=tracker.done + tracker.failed,
                       detail=f"{tracker.failed} failed, {tracker.objects} objects, {rate:.0f} obj/s")
            if desc["status"] in TERMINAL:
                return desc
            if timeout and elapsed > timeout:
                return desc
            time.sleep(poll)


def execution_error(sfn: Any, desc: dict[str, Any]) -> tuple[str, str]:
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


def print_results(console: Any, summary: dict[str, Any], run_dir: Path, plots: list[Path], catalog: Path | None) -> None:
    """The results table, failures and where the files are."""
    from rich.table import Table

    from cosmicai.report import REPORT_FILE, summary_rows

    table = Table(title=f"cosmic-ai run {summary.get('run_id')}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in summary_rows(summary):
        table.add_row(k, v)
    console.print(table)
    failures = summary.get("shards", {}).get("failures", [])
    for f in failures[:20]:
        console.print(f"[red]failed[/] {f['shard']}: {f['error']}: {f.get('message', '')}")
    if len(failures) > 20:
        console.print(f"... and {len(failures) - 20} more failed shards (see {run_dir / REPORT_FILE})")
    console.print(f"report: {run_dir / REPORT_FILE}")
    if catalog is not None:
        console.print(f"catalog: {catalog}")
    if plots:
        console.print(f"plots: {', '.join(str(p) for p in plots)}")


def run(args: argparse.Namespace) -> int:
    """Validate, start, follow, download and report; see the module doc for exit codes."""
    from rich.console import Console

    from cosmicai.payload import PayloadError
    from cosmicai.report import ReportError, build_report
    from cosmicai.runstore import RunLocation, s3_client

    console = Console()
    try:
        if not args.state_machine_arn:
            raise InvokeError(f"no state machine: pass --state-machine-arn or set ${ARN_ENV} (make invoke does)")
        body, payload = prepare_payload(load_payload(args.payload), args.run_id)
    except (InvokeError, PayloadError) as exc:
        console.print(f"[red]invoke: {exc}[/]  (nothing was started)")
        return EXIT_USAGE
    for w in payload.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    run_id = payload.run_id
    loc = RunLocation(*payload.output_location)
    sfn, s3 = sfn_client(), s3_client()
    started = sfn.start_execution(stateMachineArn=args.state_machine_arn, name=execution_name(run_id), input=json.dumps(body))
    arn = started["executionArn"]
    console.print(f"run [bold]{run_id}[/]: execution {arn}")
    tracker = Tracker(run_id=run_id, since=started["startDate"])
    desc = wait_for(sfn, s3, arn, tracker, loc, console, args.poll, args.timeout)
    status = desc["status"]
    if status not in TERMINAL:
        console.print(f"[yellow]still {status} after {args.timeout:.0f} s[/]; follow it with: aws stepfunctions describe-execution --execution-arn {arn}")
        return EXIT_WAITING
    if status != "SUCCEEDED":
        error, cause = execution_error(sfn, desc)
        console.print(f"[red]execution {status}: {error}: {cause}[/]")
    run_dir = Path(args.out) / run_id
    try:
        files, plots, _ = build_report(s3, loc, run_dir, run_id=run_id)
    except ReportError as exc:
        console.print(f"[red]no report: {exc}[/]")
        return exit_code(status, None)
    print_results(console, files.summary, run_dir, plots, files.catalog_path)
    return exit_code(status, files.summary.get("status"))
