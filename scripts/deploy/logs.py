"""`python -m deploy.logs`: print recent CloudWatch log events of the stack's functions.

Run through `deploy.stack exec` (what `make logs` does), which aims boto3 at the target
and passes the Terraform output `log_group_names` as COSMICAI_TF_LOG_GROUP_NAMES.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import DeployError

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_logs import CloudWatchLogsClient

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
GROUPS_ENV = "COSMICAI_TF_LOG_GROUP_NAMES"


@dataclass(frozen=True)
class LogEvent:
    """One log line of one log group."""

    timestamp_ms: int
    role: str
    stream: str
    message: str
    event_id: str

    def render(self) -> str:
        when = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
        return f"{when} {self.role:<13} {self.message.rstrip()}"


def parse_since(text: str) -> int:
    """Seconds in a duration such as 30s, 10m, 2h or 1d."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise DeployError(f"LOGS_SINCE={text!r} is not a duration like 30s, 10m, 2h or 1d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def select_groups(groups: dict[str, str], which: str) -> dict[str, str]:
    """The log groups to read: all of them, or the one named by its role."""
    if which == "all":
        return dict(groups)
    if which not in groups:
        raise DeployError(f"LOGS_FUNCTION={which!r} is not one of all, {', '.join(sorted(groups))}")
    return {which: groups[which]}


def groups_from_environment(env: dict[str, str]) -> dict[str, str]:
    """Log group names by role from the Terraform output passed in by `deploy.stack exec`."""
    raw = env.get(GROUPS_ENV)
    if not raw:
        raise DeployError(f"{GROUPS_ENV} is not set: run through `make logs` after `make deploy`")
    try:
        groups = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeployError(f"{GROUPS_ENV} is not JSON ({exc})") from exc
    if not isinstance(groups, dict) or not all(isinstance(v, str) for v in groups.values()):
        raise DeployError(f"{GROUPS_ENV} must map roles to log group names, got {raw[:200]!r}")
    return groups


def fetch_events(logs_client: CloudWatchLogsClient, groups: dict[str, str], start_ms: int) -> list[LogEvent]:
    """Every event since start_ms in the given groups, oldest first (missing groups are skipped)."""
    events: list[LogEvent] = []
    for role, group in groups.items():
        events.extend(_group_events(logs_client, role, group, start_ms))
    return sorted(events, key=lambda e: (e.timestamp_ms, e.role, e.event_id))


def _group_events(logs_client: CloudWatchLogsClient, role: str, group: str, start_ms: int) -> Iterator[LogEvent]:
    paginator = logs_client.get_paginator("filter_log_events")
    try:
        for page in paginator.paginate(logGroupName=group, startTime=start_ms):
            for ev in page.get("events", []):
                yield LogEvent(
                    ev["timestamp"], role, ev.get("logStreamName", ""), ev.get("message", ""), ev.get("eventId", "")
                )
    except logs_client.exceptions.ResourceNotFoundException:
        # Terraform creates every group; one can only be missing if removed by hand.
        print(f"logs: log group {group} ({role}) does not exist; re-run `make deploy`", file=sys.stderr)


def tail(
    logs_client: CloudWatchLogsClient, groups: dict[str, str], since_s: int, follow: bool, poll_s: float = 2.0
) -> int:
    """Print events of the last since_s seconds; with follow, keep printing new ones."""
    start_ms = int((time.time() - since_s) * 1000)
    seen: set[tuple[str, str]] = set()
    printed = 0
    while True:
        for ev in fetch_events(logs_client, groups, start_ms):
            if (ev.role, ev.event_id) in seen:
                continue
            seen.add((ev.role, ev.event_id))
            print(ev.render(), flush=True)
            printed += 1
            start_ms = max(start_ms, ev.timestamp_ms)
        if not follow:
            return printed
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy.logs", description=__doc__)
    parser.add_argument("--since", default="10m", help="how far back: 30s, 10m, 2h, 1d")
    parser.add_argument("--function", default="all", help="all, init, infer, summarize or state_machine")
    parser.add_argument("--follow", action="store_true", help="keep polling for new events (Ctrl-C stops)")
    args = parser.parse_args(argv)
    try:
        import boto3

        groups = select_groups(groups_from_environment(dict(os.environ)), args.function)
        since_s = parse_since(args.since)
        printed = tail(boto3.client("logs"), groups, since_s, args.follow)
    except DeployError as exc:
        print(f"logs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    if printed == 0:
        print(f"logs: no events in the last {args.since} in {', '.join(groups.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
