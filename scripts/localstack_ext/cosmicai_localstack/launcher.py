"""Start, stop and inspect a host-mode LocalStack with the cosmic-ai extension.

`python -m cosmicai_localstack.launcher up|down|status|logs --port P --state-dir D`.
Runs in LocalStack's own venv (Python >= 3.13) and uses only the standard library.
State (pid, log, LocalStack's filesystem root) lives under the state folder, so
several instances on different ports never share anything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# events: Step Functions publishes execution status changes to it (errors in the log otherwise)
SERVICES = "s3,iam,sts,logs,cloudwatch,events,stepfunctions,lambda,ecr"
EXECUTOR_MODES = ("process", "docker")
# Marks every process started for one instance, so `down` finds function processes too.
INSTANCE_ENV = "COSMICAI_LOCALSTACK_STATE"


class LauncherError(RuntimeError):
    """LocalStack could not be started or stopped; the message says why and where to look."""


@dataclass(frozen=True)
class Instance:
    """One LocalStack instance: where it listens and where its state lives."""

    port: int
    state_dir: Path
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "localstack.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "localstack.log"

    def recorded_pid(self) -> int | None:
        """The pid in the pid file when that process is still alive, else None (stale files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _is_localstack(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """LocalStack's health document, or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_localstack/health", timeout=timeout) as resp:
                doc: dict[str, Any] = json.load(resp)
                return doc
        except (urllib.error.URLError, OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_localstack(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"localstack.runtime.main" in cmdline


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def localstack_env(
    instance: Instance,
    mode: str,
    project_root: Path,
    function_python: Path,
    enforce_iam: bool = True,
    account_concurrency: int | None = None,
) -> dict[str, str]:
    """The environment LocalStack runs with: host mode, offline, our executor, ECR and IAM enforcement."""
    state = instance.state_dir.resolve()
    env = dict(os.environ)
    env.update(
        GATEWAY_LISTEN=f"{instance.host}:{instance.port}",
        # URLs LocalStack hands out (ECR repository URIs, AWS_ENDPOINT_URL in functions) use this port.
        LOCALSTACK_HOST=f"localhost.localstack.cloud:{instance.port}",
        SERVICES=SERVICES,
        EAGER_SERVICE_LOADING="0",
        PERSISTENCE="0",
        DNS_ADDRESS="0",
        SKIP_SSL_CERT_DOWNLOAD="1",
        DISABLE_EVENTS="1",
        LOCALSTACK_TELEMETRY="0",
        DISABLE_CORS_CHECKS="1",
        FILESYSTEM_ROOT=str(state / "fs"),
        # LocalStack keeps S3 objects under $TMPDIR/localstack and clears that folder on start
        # and stop: a shared /tmp lets one instance wipe another's buckets.
        TMPDIR=str(state / "tmp"),
        LAMBDA_RUNTIME_EXECUTOR="cosmicai",
        COSMICAI_EXECUTOR_MODE=mode,
        COSMICAI_PROJECT_ROOT=str(project_root.resolve()),
        COSMICAI_FUNCTION_PYTHON=str(function_python.absolute()),
        # iam_enforcement: role calls authorized as AWS would (0 only to debug a policy)
        COSMICAI_ENFORCE_IAM="1" if enforce_iam else "0",
        **{INSTANCE_ENV: str(state)},
    )
    if account_concurrency is not None:
        # LocalStack's Lambda applies it like AWS's account limit (TooManyRequestsException beyond it)
        env["LAMBDA_LIMITS_CONCURRENT_EXECUTIONS"] = str(account_concurrency)
    # A client-side endpoint in the caller's shell must not leak into LocalStack's own clients.
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def up(
    instance: Instance,
    mode: str,
    project_root: Path,
    function_python: Path,
    wait_s: float,
    enforce_iam: bool = True,
    account_concurrency: int | None = None,
) -> str:
    """Start LocalStack unless this instance already runs; wait until it is healthy."""
    pid = instance.recorded_pid()
    if pid is not None and instance.health():
        running = iam_enforced(instance)
        if running is not None and running != enforce_iam:
            raise LauncherError(
                f"localstack at {instance.endpoint} runs with IAM enforcement {'on' if running else 'off'}; "
                f"stop it (make localstack-down) to start it with ENFORCE_IAM={int(enforce_iam)}"
            )
        return f"localstack already up at {instance.endpoint} (pid {pid})"
    if pid is None and _port_in_use(instance.host, instance.port):
        raise LauncherError(
            f"port {instance.port} is in use by a process this launcher did not start; "
            f"stop it or choose another LOCALSTACK_PORT"
        )
    if not function_python.exists():
        raise LauncherError(f"function python {function_python} does not exist; run `make setup` first")
    instance.state_dir.mkdir(parents=True, exist_ok=True)
    (instance.state_dir / "fs").mkdir(exist_ok=True)
    (instance.state_dir / "tmp").mkdir(exist_ok=True)
    if pid is None:
        with open(instance.log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "localstack.runtime.main"],
                env=localstack_env(instance, mode, project_root, function_python, enforce_iam, account_concurrency),
                cwd=instance.state_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: `down` stops it and its children together
            )
        instance.pid_file.write_text(f"{proc.pid}\n")
        pid = proc.pid
    _wait_healthy(instance, pid, wait_s)
    iam = "IAM enforced" if enforce_iam else "IAM NOT enforced"
    return f"localstack up at {instance.endpoint} (pid {pid}, executor {mode}, {iam}, state {instance.state_dir})"


def iam_enforced(instance: Instance) -> bool | None:
    """Whether the running instance enforces IAM (GET /_cosmicai/iam), None if it cannot say."""
    try:
        with urllib.request.urlopen(f"{instance.endpoint}/_cosmicai/iam", timeout=2) as resp:
            return bool(json.load(resp).get("enforced"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait_healthy(instance: Instance, pid: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            instance.pid_file.unlink(missing_ok=True)
            raise LauncherError(f"localstack exited during start-up; last log lines:\n{tail(instance, 30)}")
        health = instance.health()
        if health and health.get("services"):
            return
        time.sleep(0.25)
    raise LauncherError(f"localstack not healthy after {wait_s:.0f} s; log: {instance.log_file}\n{tail(instance, 30)}")


def instance_processes(state_dir: Path) -> list[int]:
    """Pids of every process started for this instance (LocalStack and function processes)."""
    marker = f"{INSTANCE_ENV}={state_dir.resolve()}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            pids.append(int(proc.name))
    return pids


def down(instance: Instance, wait_s: float = 15.0) -> str:
    """Stop this instance's LocalStack and its function processes; a no-op when it is not running."""
    pid = instance.recorded_pid()
    stray = [p for p in instance_processes(instance.state_dir) if p != pid]
    if pid is None and not stray:
        return f"localstack not running (state {instance.state_dir})"
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    for other in instance_processes(instance.state_dir):
        _signal_group(other, signal.SIGKILL)
    instance.pid_file.unlink(missing_ok=True)
    return f"localstack stopped (port {instance.port})"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(instance: Instance) -> tuple[bool, str]:
    """Whether this instance is up, and a line saying so with its services."""
    pid = instance.recorded_pid()
    health = instance.health() if pid is not None else None
    if pid is None or not health:
        return False, f"localstack down (port {instance.port}, state {instance.state_dir})"
    services = ", ".join(
        f"{name}={state}" for name, state in sorted(health.get("services", {}).items()) if state != "disabled"
    )
    iam = {True: "IAM enforced", False: "IAM NOT enforced", None: "IAM enforcement unknown"}[iam_enforced(instance)]
    return True, f"localstack up at {instance.endpoint} (pid {pid}, {iam}); {services}"


def tail(instance: Instance, lines: int) -> str:
    """The last lines of this instance's log."""
    try:
        text = instance.log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log yet at {instance.log_file})"
    return "\n".join(text[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cosmicai_localstack.launcher", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "logs"])
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--state-dir", type=Path, default=Path(".state/localstack"))
    parser.add_argument("--mode", choices=EXECUTOR_MODES, default="process", help="Lambda executor mode")
    parser.add_argument("--project-root", type=Path, default=Path.cwd())
    parser.add_argument("--function-python", type=Path, default=Path(".venv/bin/python"))
    parser.add_argument(
        "--enforce-iam",
        type=int,
        choices=(0, 1),
        default=1,
        help="authorize role calls as AWS would (1, default); 0 only to debug a policy",
    )
    parser.add_argument(
        "--account-concurrency",
        type=int,
        default=None,
        help="the account's Lambda concurrency limit (AWS's default quota: 1000)",
    )
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for health")
    parser.add_argument("--lines", type=int, default=100, help="log lines for `logs`")
    args = parser.parse_args(argv)
    instance = Instance(port=args.port, state_dir=args.state_dir)
    try:
        if args.action == "up":
            print(
                up(
                    instance,
                    args.mode,
                    args.project_root,
                    args.function_python,
                    args.wait,
                    enforce_iam=bool(args.enforce_iam),
                    account_concurrency=args.account_concurrency,
                )
            )
        elif args.action == "down":
            print(down(instance))
        elif args.action == "status":
            running, line = status(instance)
            print(line)
            return 0 if running else 3
        else:
            print(tail(instance, args.lines))
    except LauncherError as exc:
        print(f"localstack-{args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
