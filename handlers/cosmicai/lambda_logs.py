"""Lambda REPORT lines from CloudWatch Logs: parse them and turn them into a bill.

Lambda writes one REPORT line per invocation, either as text
(`REPORT RequestId: ... Duration: 12.3 ms Billed Duration: 13 ms Memory Size: 128 MB
Max Memory Used: 50 MB Init Duration: 300.1 ms`, tab-separated, optionally with
`Restore Duration` / `Billed Restore Duration` (SnapStart) and `Status` / `Error Type`)
or, with the JSON log format, as a `platform.report` record. Billed Duration already
includes billed init time (container images), so the bill is memory x billed time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cosmicai.costs import DEFAULT_PRICES, Prices

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_logs import CloudWatchLogsClient

REPORT_FILTER_PATTERN = '?"REPORT RequestId" ?"platform.report"'


class ReportLineError(ValueError):
    """A log line that claims to be a REPORT line but lacks a required field."""


@dataclass(frozen=True)
class ReportLine:
    """The billing facts of one invocation, as Lambda reported them."""

    request_id: str
    duration_ms: float
    billed_duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int | None = None
    init_duration_ms: float | None = None
    restore_duration_ms: float | None = None
    billed_restore_duration_ms: float | None = None
    status: str | None = None  # "timeout", "error", ... (absent on success in the text format)
    error_type: str | None = None
    timestamp_ms: int | None = None
    log_stream: str | None = None

    @property
    def billed_seconds(self) -> float:
        """Billed seconds of this invocation, init and SnapStart restore time included.

        AWS folds Init Duration into Billed Duration (container images; every runtime since
        August 2025); a runtime that does not (our local executor) gets it added here, so a
        cold start is billed alike on both clouds.
        """
        billed = self.billed_duration_ms
        if self.init_duration_ms is not None and self.status is None:
            billed = max(billed, float(math.ceil(self.duration_ms + self.init_duration_ms)))
        return (billed + (self.billed_restore_duration_ms or 0.0)) / 1000.0

    @property
    def billed_gb_seconds(self) -> float:
        """Configured memory in GB (MB / 1024, as Lambda bills) x billed seconds."""
        return self.memory_size_mb / 1024.0 * self.billed_seconds

    @property
    def cold(self) -> bool:
        """Whether this invocation started a new execution environment."""
        return self.init_duration_ms is not None or self.restore_duration_ms is not None


# Known keys, longest first so "Billed Duration" is never read as "Duration"; values
# are separated by tabs on AWS but by spaces when copied from a console, so match by key.
_FIELD = re.compile(
    r"\b(Billed Restore Duration|Restore Duration|Billed Duration|Init Duration|Max Memory Used"
    r"|Memory Size|Duration|RequestId|Error Type|Status):\s*(\S+)"
)
_TEXT_KEYS = {
    "RequestId": "request_id",
    "Duration": "duration_ms",
    "Billed Duration": "billed_duration_ms",
    "Memory Size": "memory_size_mb",
    "Max Memory Used": "max_memory_used_mb",
    "Init Duration": "init_duration_ms",
    "Restore Duration": "restore_duration_ms",
    "Billed Restore Duration": "billed_restore_duration_ms",
    "Status": "status",
    "Error Type": "error_type",
}
_JSON_METRICS = {
    "durationMs": "duration_ms",
    "billedDurationMs": "billed_duration_ms",
    "memorySizeMB": "memory_size_mb",
    "maxMemoryUsedMB": "max_memory_used_mb",
    "initDurationMs": "init_duration_ms",
    "restoreDurationMs": "restore_duration_ms",
    "billedRestoreDurationMs": "billed_restore_duration_ms",
}
_REQUIRED = ("request_id", "duration_ms", "billed_duration_ms", "memory_size_mb")
_INT_FIELDS = ("memory_size_mb", "max_memory_used_mb")
_FLOAT_FIELDS = (
    "duration_ms",
    "billed_duration_ms",
    "init_duration_ms",
    "restore_duration_ms",
    "billed_restore_duration_ms",
)


def _build(fields: dict[str, Any], line: str, where: str) -> ReportLine:
    missing = [k for k in _REQUIRED if fields.get(k) in (None, "")]
    if missing:
        raise ReportLineError(f"{where}: REPORT line lacks {', '.join(missing)}: {line[:200]!r}")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            if key in _INT_FIELDS:
                out[key] = int(round(float(value)))
            elif key in _FLOAT_FIELDS:
                out[key] = float(value)
            else:
                out[key] = str(value)
        except (TypeError, ValueError):
            raise ReportLineError(f"{where}: REPORT field {key} is not a number ({value!r}): {line[:200]!r}") from None
    if out["billed_duration_ms"] < 0 or out["memory_size_mb"] <= 0:
        raise ReportLineError(f"{where}: REPORT line has a negative duration or no memory size: {line[:200]!r}")
    return ReportLine(**out)


def _parse_json(line: str, where: str) -> ReportLine | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("type") != "platform.report":
        return None
    body = record.get("record") or {}
    metrics = body.get("metrics") or {}
    fields: dict[str, Any] = {"request_id": body.get("requestId")}
    fields |= {ours: metrics[theirs] for theirs, ours in _JSON_METRICS.items() if theirs in metrics}
    status = body.get("status")
    if status and status != "success":
        fields["status"] = status
    if body.get("errorType"):
        fields["error_type"] = body["errorType"]
    return _build(fields, line, where)


def parse_report_line(
    line: str, *, timestamp_ms: int | None = None, log_stream: str | None = None, where: str = "log"
) -> ReportLine | None:
    """The REPORT line's billing facts, None if `line` is not a REPORT line; malformed ones raise ReportLineError."""
    text = line.strip()
    if text.startswith("{"):
        report = _parse_json(text, where)
    elif text.startswith("REPORT RequestId:"):
        fields: dict[str, Any] = {}
        for m in _FIELD.finditer(text[len("REPORT ") :]):
            key = m.group(1)
            if key in _TEXT_KEYS:
                fields.setdefault(_TEXT_KEYS[key], m.group(2))
        report = _build(fields, text, where)
    else:
        return None
    if report is None:
        return None
    if timestamp_ms is not None or log_stream is not None:
        report = ReportLine(**(asdict(report) | {"timestamp_ms": timestamp_ms, "log_stream": log_stream}))
    return report


def parse_report_lines(lines: Iterable[str], where: str = "log") -> list[ReportLine]:
    """Every REPORT line among `lines` (other lines, XRAY and START/END included, are skipped)."""
    out = []
    for i, line in enumerate(lines, 1):
        report = parse_report_line(line, where=f"{where}:{i}")
        if report is not None:
            out.append(report)
    return out


def fetch_report_lines(
    logs: CloudWatchLogsClient,
    group: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    filter_pattern: str | None = REPORT_FILTER_PATTERN,
) -> Iterator[ReportLine]:
    """REPORT lines of one log group (all pages) via a boto3 `logs` client, in any order."""
    kwargs: dict[str, Any] = {"logGroupName": group}
    if start_ms is not None:
        kwargs["startTime"] = int(start_ms)
    if end_ms is not None:
        kwargs["endTime"] = int(end_ms)
    if filter_pattern:
        kwargs["filterPattern"] = filter_pattern
    for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
        for event in page.get("events", []):
            for text in str(event.get("message", "")).splitlines():
                report = parse_report_line(
                    text,
                    timestamp_ms=event.get("timestamp"),
                    log_stream=event.get("logStreamName"),
                    where=f"{group}/{event.get('logStreamName', '?')}",
                )
                if report is not None:
                    yield report


def dedupe(reports: Iterable[ReportLine]) -> list[ReportLine]:
    """One report per request id (a line fetched twice, e.g. overlapping windows, counts once)."""
    seen: dict[str, ReportLine] = {}
    for r in reports:
        seen.setdefault(r.request_id, r)
    return list(seen.values())


def bill(
    reports: Iterable[ReportLine], arch: str = "x86_64", prices: Prices = DEFAULT_PRICES, objects: int | None = None
) -> dict[str, Any]:
    """The Lambda charges these invocations incurred: billed GB-s, compute and request USD, cold starts.

    With `objects` (objects predicted by these invocations) it also gives USD per million objects.
    """
    reports = list(reports)
    gb_s = sum(r.billed_gb_seconds for r in reports)
    compute = gb_s * prices.gb_second(arch)
    requests = len(reports) * prices.lambda_per_request
    cold = [r for r in reports if r.cold]
    out: dict[str, Any] = {
        "arch": arch,
        "invocations": len(reports),
        "cold_starts": len(cold),
        "billed_seconds": sum(r.billed_seconds for r in reports),
        "duration_seconds": sum(r.duration_ms for r in reports) / 1000.0,
        "init_seconds": sum(r.init_duration_ms or 0.0 for r in reports) / 1000.0,
        "billed_gb_seconds": gb_s,
        "memory_sizes_mb": sorted({r.memory_size_mb for r in reports}),
        "max_memory_used_mb": max((r.max_memory_used_mb or 0 for r in reports), default=0) or None,
        "statuses": _count(r.status or "success" for r in reports),
        "usd": {"lambda_compute": compute, "lambda_requests": requests, "total": compute + requests},
        "gb_second_price": prices.gb_second(arch),
        "request_price": prices.lambda_per_request,
    }
    if objects:
        out["objects"] = objects
        out["usd_per_million_objects"] = (compute + requests) * 1_000_000 / objects
    return out


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


__all__ = [
    "REPORT_FILTER_PATTERN",
    "ReportLine",
    "ReportLineError",
    "bill",
    "dedupe",
    "fetch_report_lines",
    "parse_report_line",
    "parse_report_lines",
]
