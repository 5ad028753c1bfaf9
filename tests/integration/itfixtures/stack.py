"""Fixture `deployed_stack`: the real stack deployed by the project's deploy code.

Runs `python -m deploy.stack` (what `make deploy` runs) against the session's
`localstack` fixture with Terraform state under a tmp folder, and returns the
Terraform outputs. The stack gets a per-session name prefix (so a reused LocalStack
never collides with `make deploy` or an earlier session) and is destroyed at the end
of the session, checking that nothing is left. `StackCli` drives further deploys and plans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

__all__ = ["StackCli", "deployed_stack", "stack_cli"]

ROOT = Path(__file__).resolve().parents[3]
LOCAL_TFVARS = ROOT / "terraform/examples/local.tfvars"


def plugin_mirror() -> str:
    """The Makefile's provider mirror (TF_PLUGIN_MIRROR, default /opt/tf-plugins) when present."""
    mirror = os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins")
    return mirror if Path(mirror).is_dir() else ""


def executor_mode() -> str:
    """The session LocalStack's executor mode (the `localstack` fixture's COSMICAI_TEST_EXECUTOR)."""
    return os.environ.get("COSMICAI_TEST_EXECUTOR", "process")


@dataclass
class StackCli:
    """`python -m deploy.stack` for one stack: an endpoint, a state dir and tfvars."""

    endpoint: str
    state_dir: Path
    var_file: Path = LOCAL_TFVARS
    region: str = "us-east-1"
    timeout_s: float = 600
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run one deploy.stack command; output is captured and shown on failure."""
        cmd = [
            sys.executable,
            "-m",
            "deploy.stack",
            "--target",
            "local",
            "--region",
            self.region,
            "--endpoint",
            self.endpoint,
            "--state-dir",
            str(self.state_dir),
            "--var-file",
            str(self.var_file),
            "--plugin-mirror",
            plugin_mirror(),
            *args,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), **self.env}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, timeout=self.timeout_s)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"deploy.stack {' '.join(args)} failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def make(self, target: str, port: int, *variables: str, timeout_s: float = 400) -> subprocess.CompletedProcess:
        """`make -s <target> VAR=...` against this stack on the LocalStack at `port`, as a user runs it
        (output captured; a wide terminal so rich does not wrap the lines tests read)."""
        return subprocess.run(
            ["make", "-s", target, *variables, f"STATE_DIR={self.state_dir}", f"LOCALSTACK_PORT={port}"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout_s,
            env={**os.environ, "COLUMNS": "250"},
        )

    def deploy(self) -> subprocess.CompletedProcess:
        return self.run("deploy")

    def outputs(self) -> dict:
        return json.loads(self.run("output").stdout)

    def destroy(self) -> subprocess.CompletedProcess:
        return self.run("destroy")


def stack_with_prefix(endpoint: str, state_dir: Path, name_prefix: str) -> StackCli:
    """A stack with its own resource names (tfvars = the local example + name_prefix)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tfvars = state_dir / f"{name_prefix}.tfvars"
    tfvars.write_text(LOCAL_TFVARS.read_text() + f'\nname_prefix = "{name_prefix}"\n')
    return StackCli(endpoint=endpoint, state_dir=state_dir, var_file=tfvars)


def leftovers(endpoint: str, outputs: dict) -> list[str]:
    """Resources of a destroyed stack that still exist (empty when the destroy was complete)."""
    kw = {"endpoint_url": endpoint, "region_name": outputs.get("region", "us-east-1")}
    lam, s3, sfn = boto3.client("lambda", **kw), boto3.client("s3", **kw), boto3.client("stepfunctions", **kw)
    iam, logs, ecr = boto3.client("iam", **kw), boto3.client("logs", **kw), boto3.client("ecr", **kw)
    left = [
        f"function {f['FunctionName']}"
        for f in lam.list_functions()["Functions"]
        if f["FunctionName"] in outputs["function_names"].values()
    ]
    left += [
        f"bucket {b['Name']}"
        for b in s3.list_buckets()["Buckets"]
        if b["Name"] in (outputs["data_bucket"], outputs["results_bucket"])
    ]
    left += [
        f"state machine {m['name']}"
        for m in sfn.list_state_machines()["stateMachines"]
        if m["stateMachineArn"] == outputs["state_machine_arn"]
    ]
    prefix = outputs["state_machine_name"].removesuffix("-pipeline")
    left += [f"role {r['RoleName']}" for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{prefix}-")]
    groups = set(outputs["log_group_names"].values())
    left += [
        f"log group {g['logGroupName']}" for g in logs.describe_log_groups()["logGroups"] if g["logGroupName"] in groups
    ]
    repos = {url.split("/", 1)[1] for url in outputs["ecr_repository_urls"].values()}
    left += [
        f"repository {r['repositoryName']}"
        for r in ecr.describe_repositories()["repositories"]
        if r["repositoryName"] in repos
    ]
    return left


@pytest.fixture(scope="session")
def stack_cli(localstack, tmp_path_factory: pytest.TempPathFactory) -> StackCli:
    """The deploy CLI for the session's stack (state and tfvars under a session tmp dir)."""
    prefix = f"cosmicai-t{os.getpid() % 100000}"
    stack = stack_with_prefix(localstack.endpoint, tmp_path_factory.mktemp("stack-state"), prefix)
    # The executor mode of the session's LocalStack decides whether real images are deployed.
    stack.env["COSMICAI_EXECUTOR_MODE"] = executor_mode()
    return stack


@pytest.fixture(scope="session")
def deployed_stack(stack_cli: StackCli) -> Iterator[dict]:
    """Deploy once per session and yield the Terraform outputs; `make destroy` at the end
    must leave nothing behind (a teardown error names what is left)."""
    started = time.monotonic()
    stack_cli.deploy()
    outputs = stack_cli.outputs()
    print(f"deployed_stack: deploy took {time.monotonic() - started:.1f} s")
    yield outputs
    stack_cli.destroy()
    left = leftovers(stack_cli.endpoint, outputs)
    assert not left, f"`make destroy` left {left}"
