"""`make logs` settings: durations, the function filter, the log groups from Terraform."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy.errors import DeployError  # noqa: E402
from deploy.logs import GROUPS_ENV, LogEvent, groups_from_environment, parse_since, select_groups  # noqa: E402

GROUPS = {
    "init": "/aws/lambda/c-init",
    "infer": "/aws/lambda/c-infer",
    "summarize": "/aws/lambda/c-summarize",
    "state_machine": "/aws/vendedlogs/states/c-pipeline",
}


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400)])
def test_since_durations(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "5w", "-1m", "0m", "ten minutes"])
def test_bad_since_is_named(text: str) -> None:
    with pytest.raises(DeployError, match="LOGS_SINCE"):
        parse_since(text)


def test_select_one_function_or_all() -> None:
    assert select_groups(GROUPS, "all") == GROUPS
    assert select_groups(GROUPS, "infer") == {"infer": "/aws/lambda/c-infer"}
    with pytest.raises(DeployError, match="LOGS_FUNCTION='worker' is not one of all, infer, init"):
        select_groups(GROUPS, "worker")


def test_groups_come_from_the_terraform_output() -> None:
    assert groups_from_environment({GROUPS_ENV: json.dumps(GROUPS)}) == GROUPS
    with pytest.raises(DeployError, match="make logs"):
        groups_from_environment({})
    with pytest.raises(DeployError, match="not JSON"):
        groups_from_environment({GROUPS_ENV: "{"})
    with pytest.raises(DeployError, match="must map roles"):
        groups_from_environment({GROUPS_ENV: "[1, 2]"})


def test_event_line_shows_utc_time_role_and_message() -> None:
    ev = LogEvent(
        timestamp_ms=1_700_000_000_123, role="infer", stream="s", message="REPORT Duration: 5 ms\n", event_id="1"
    )
    assert ev.render() == "22:13:20.123 infer         REPORT Duration: 5 ms"
