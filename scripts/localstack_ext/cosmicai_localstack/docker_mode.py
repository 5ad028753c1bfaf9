"""Docker mode: an execution environment is the function's image run by the local Docker engine.

Stdlib only. The container shares the host network, so the Runtime API and LocalStack are on 127.0.0.1.
Its memory size is the kernel's to enforce, as on Lambda: `docker run --memory N --memory-swap N` caps
the container's cgroup with no swap, and a container the kernel's OOM killer stopped (docker's
State.OOMKilled) is reported as `Runtime.OutOfMemory`. The sandbox's own sampling watchdog is off here
(it only measures Max Memory Used), so no kill comes from us first. Containers run without `--rm`: their
state is read after they exit, then `Container.remove` (the sandbox's kill hook) deletes them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping

from . import process_env as penv
from .sandbox import ExitInfo, SandboxSpec

# variables the docker CLI itself needs (never forwarded into the container)
DOCKER_CLIENT_VARS = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONTEXT")
# how long exit_info waits for the engine to record a container's end after its `docker run` returned
EXIT_STATE_WAIT_S = 1.0
# docker reports a container whose first process died of signal n as exit code 128 + n
SIGNAL_EXIT_BASE = 128


def docker_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, plus DOCKER_HOST from scripts/docker/engine.sh's state when none is set."""
    env = dict(environ if environ is not None else os.environ)
    if "DOCKER_HOST" not in env:
        state = env.get("DOCKER_STATE_DIR") or str(penv.project_root(env) / ".state" / "docker")
        try:
            with open(os.path.join(state, "env"), encoding="utf-8") as fh:
                for line in fh:
                    key, _, value = line.strip().partition("=")
                    if key == "DOCKER_HOST" and value:
                        env["DOCKER_HOST"] = value
        except OSError:
            pass  # no private engine: docker's default socket
    return env


class Container:
    """One named container: removal (the sandbox's kill hook) and its host pid (the measured tree's root)."""

    def __init__(self, name: str, docker: str = "docker", environ: dict[str, str] | None = None) -> None:
        self.name = name
        self.docker = docker
        self.environ = environ if environ is not None else docker_environ()  # the CLI's environment (DOCKER_HOST)
        self._pid: int | None = None

    def state(self) -> tuple[str, int, bool] | None:
        """(State.Status, State.ExitCode, State.OOMKilled) from `docker inspect`; None without the container."""
        out = subprocess.run(
            [
                self.docker,
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
                self.name,
            ],
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=30,
        )
        fields = out.stdout.split()
        if out.returncode != 0 or len(fields) != 3 or not fields[1].lstrip("-").isdigit():
            return None
        return fields[0], int(fields[1]), fields[2] == "true"

    def exit_info(self, cli_returncode: int | None) -> ExitInfo:
        """How the container ended, read before `remove`: its exit code (128 + n reported as signal n, as
        Lambda describes a killed runtime) and whether the kernel's OOM killer stopped it (State.OOMKilled).

        Falls back to the `docker run` CLI's own returncode when the container is gone or still running
        (the CLI died, not the container).
        """
        deadline = time.monotonic() + EXIT_STATE_WAIT_S
        while True:
            state = self.state()
            if state is None:
                return ExitInfo(cli_returncode)
            status, code, oom_killed = state
            ended = status in ("exited", "dead")
            # an OOM kill is a SIGKILL (137): give the engine's OOM event a moment if it is not recorded yet
            if (ended and (oom_killed or code != SIGNAL_EXIT_BASE + 9)) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if not ended:
            return ExitInfo(cli_returncode)
        if SIGNAL_EXIT_BASE < code < SIGNAL_EXIT_BASE + 65:
            code = -(code - SIGNAL_EXIT_BASE)
        return ExitInfo(code, oom_killed)

    def remove(self) -> None:
        """`docker rm -f`: stops the container even when the CLI that ran it is already dead."""
        subprocess.run([self.docker, "rm", "-f", self.name], env=self.environ, capture_output=True, timeout=60)
        self._pid = None

    def root_pid(self, _proc: subprocess.Popen[bytes] | None = None) -> int | None:
        """Host pid of the container's first process once it runs (None before, or on a remote engine)."""
        if self._pid is None:
            out = subprocess.run(
                [self.docker, "inspect", "--format", "{{.State.Pid}}", self.name],
                env=self.environ,
                capture_output=True,
                text=True,
                timeout=30,
            )
            text = out.stdout.strip()
            pid = int(text) if out.returncode == 0 and text.isdigit() else 0
            # a pid from another kernel (remote engine) would measure the wrong process
            self._pid = pid if pid and os.path.exists(f"/proc/{pid}") else None
        return self._pid


def docker_spec(
    container: Container,
    image: str,
    lambda_vars: Mapping[str, object],
    memory_mb: int,
    timeout_s: float,
    command: list[str] | None = None,
    entrypoint: list[str] | None = None,
    working_dir: str | None = None,
    version: str = "$LATEST",
    environ: dict[str, str] | None = None,
) -> SandboxSpec:
    """A sandbox spec running `image` with Lambda's variables (passed by name, values in the CLI's environment)."""
    host = environ if environ is not None else docker_environ()
    values = {k: str(v) for k, v in lambda_vars.items() if v is not None}
    names = sorted(set(values) | {"AWS_LAMBDA_RUNTIME_API"})
    client_env = {k: host[k] for k in penv.INHERITED + DOCKER_CLIENT_VARS if k in host}
    argv = penv.docker_argv(
        container.name,
        image,
        names,
        memory_mb,
        command=command,
        entrypoint=entrypoint,
        working_dir=working_dir,
        docker=container.docker,
        state_dir=host.get("COSMICAI_LOCALSTACK_STATE"),
    )
    return SandboxSpec(
        argv=argv,
        env={**client_env, **values},
        memory_mb=int(memory_mb),
        timeout_s=float(timeout_s),
        version=version,
        enforce_memory=False,  # the container's cgroup limit does (docker run --memory/--memory-swap)
        kill_hook=container.remove,
        measure_root=container.root_pid,
        exit_info=container.exit_info,
    )
