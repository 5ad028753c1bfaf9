"""Fixture `localstack`: a real LocalStack with the cosmic-ai extension, one per test session.

Started through the same launcher `make localstack-up` uses, on COSMICAI_TEST_PORT (default
4599) with state under .state/test-localstack-<port>; stopped at the end of the session. With
COSMICAI_TEST_ENDPOINT set, an already running instance is reused and left running.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[3]
LS_PYTHON = ROOT / ".venv-localstack/bin/python"
PROJECT_PYTHON = ROOT / ".venv/bin/python"

__all__ = ["LocalStack", "localstack"]


@dataclass(frozen=True)
class LocalStack:
    """A running LocalStack: where it answers and where its state and log are."""

    endpoint: str
    port: int
    state_dir: Path | None
    log_file: Path | None

    def aws_env(self) -> dict[str, str]:
        """The environment a client needs to reach this instance (what the Makefile exports)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }


def _launcher(*args: str) -> subprocess.CompletedProcess:
    if not LS_PYTHON.exists():
        subprocess.run(["make", "-s", "localstack-install"], cwd=ROOT, check=True)
    return subprocess.run(
        [str(LS_PYTHON), "-m", "cosmicai_localstack.launcher", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=180,
    )


@pytest.fixture(scope="session")
def localstack() -> Iterator[LocalStack]:
    """A LocalStack for the session (reused from COSMICAI_TEST_ENDPOINT when set)."""
    reuse = os.environ.get("COSMICAI_TEST_ENDPOINT")
    if reuse:
        instance = LocalStack(reuse.rstrip("/"), urlparse(reuse).port or 4566, None, None)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in instance.aws_env().items():
                mp.setenv(key, value)
            yield instance
        return
    port = int(os.environ.get("COSMICAI_TEST_PORT", "4599"))
    state_dir = ROOT / f".state/test-localstack-{port}"
    where = ["--port", str(port), "--state-dir", str(state_dir)]
    started = _launcher(
        "up",
        *where,
        "--mode",
        os.environ.get("COSMICAI_TEST_EXECUTOR", "process"),
        # the Makefile's opt-out, for debugging a policy only (test_aws_conformance fails without it)
        "--enforce-iam",
        os.environ.get("ENFORCE_IAM", "1"),
        "--project-root",
        str(ROOT),
        "--function-python",
        str(PROJECT_PYTHON),
    )
    if started.returncode != 0:
        pytest.fail(f"LocalStack did not start:\n{started.stdout}\n{started.stderr}", pytrace=False)
    instance = LocalStack(f"http://127.0.0.1:{port}", port, state_dir, state_dir / "localstack.log")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in instance.aws_env().items():
                mp.setenv(key, value)
            yield instance
    finally:
        _launcher("down", *where)
