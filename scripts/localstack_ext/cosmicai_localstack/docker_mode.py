"""Docker mode: an execution environment is the function's image run by the local Docker engine.

Stdlib only. The container shares the host network, so the Runtime API and LocalStack are on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from . import process_env as penv
from .sandbox import SandboxSpec

# variables the docker CLI itself needs (never forwarded into the container)
DOCKER_CLIENT_VARS = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONTEXT")


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
        kill_hook=container.remove,
        measure_root=container.root_pid,
    )
