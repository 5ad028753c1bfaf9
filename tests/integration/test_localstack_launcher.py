"""The launcher behind `make localstack-up/down/status`: idempotent, owns only what it started."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("COSMICAI_TEST_LAUNCHER_PORT", "4598"))


def make(target: str, state_dir: Path, port: int = PORT, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", target, f"LOCALSTACK_PORT={port}", f"LOCALSTACK_STATE={state_dir}", *extra],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=240,
    )


def assert_down(status: subprocess.CompletedProcess) -> None:
    # the launcher exits 3 for "down"; make reports any failing recipe as 2
    assert status.returncode != 0 and "localstack down" in status.stdout


@pytest.fixture
def state_dir(tmp_path: Path):
    state = tmp_path / "ls"
    yield state
    make("localstack-down", state)


def test_up_is_idempotent_and_down_stops_it(state_dir: Path) -> None:
    first = make("localstack-up", state_dir)
    assert first.returncode == 0, first.stderr
    pid = (state_dir / "localstack.pid").read_text().strip()
    second = make("localstack-up", state_dir)
    assert "already up" in second.stdout and pid in second.stdout
    status = make("localstack-status", state_dir)
    assert status.returncode == 0 and "stepfunctions" in status.stdout and "ecr" in status.stdout

    ecr = boto3.client(
        "ecr",
        endpoint_url=f"http://127.0.0.1:{PORT}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    uri = ecr.create_repository(repositoryName="launcher-test")["repository"]["repositoryUri"]
    assert uri.endswith("/launcher-test")

    stopped = make("localstack-down", state_dir)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (state_dir / "localstack.pid").exists()
    assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
    assert_down(make("localstack-status", state_dir))
    assert "not running" in make("localstack-down", state_dir).stdout


def test_stale_pid_file_is_replaced(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "localstack.pid").write_text("999999\n")
    assert_down(make("localstack-status", state_dir))
    started = make("localstack-up", state_dir)
    assert started.returncode == 0, started.stderr
    assert (state_dir / "localstack.pid").read_text().strip() != "999999"


def test_refuses_a_port_it_does_not_own(state_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = make("localstack-up", state_dir, port=port)
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr


def test_iam_enforcement_is_on_by_default_and_the_opt_out_is_kept(state_dir: Path) -> None:
    """ENFORCE_IAM=1 unless the user opts out; a running cloud keeps its mode and says so."""
    started = make("localstack-up", state_dir)
    assert started.returncode == 0 and "IAM enforced" in started.stdout, started.stdout + started.stderr
    refused = make("localstack-up", state_dir, PORT, "ENFORCE_IAM=0")
    assert refused.returncode != 0 and "runs with IAM enforcement on" in refused.stderr, refused.stderr
    make("localstack-down", state_dir)
    lax = make("localstack-up", state_dir, PORT, "ENFORCE_IAM=0")
    assert lax.returncode == 0 and "IAM NOT enforced" in lax.stdout, lax.stdout + lax.stderr
    assert "IAM NOT enforced" in make("localstack-status", state_dir, PORT, "ENFORCE_IAM=0").stdout
