"""Finds a reachable Docker engine: $DOCKER_HOST, then ours (.state/docker), then /var/run/docker.sock."""

from __future__ import annotations

import os
from pathlib import Path

from docker.errors import DockerException

import docker

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_SOCKET = "unix:///var/run/docker.sock"


class EngineUnavailableError(RuntimeError):
    """No Docker engine answered at any of the candidate addresses."""


def state_dir() -> Path:
    """The project's docker state folder (`$STATE_DIR/docker`, default .state/docker)."""
    return Path(os.environ.get("STATE_DIR", REPO_ROOT / ".state")) / "docker"


def candidate_hosts() -> list[str]:
    """Engine addresses to try, in order of preference."""
    hosts: list[str] = []
    if os.environ.get("DOCKER_HOST"):
        hosts.append(os.environ["DOCKER_HOST"])
    env_file = state_dir() / "env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if line.startswith("DOCKER_HOST="):
                hosts.append(line.split("=", 1)[1].strip())
    hosts.append(f"unix://{state_dir().resolve() / 'docker.sock'}")
    hosts.append(SYSTEM_SOCKET)
    return list(dict.fromkeys(hosts))


def docker_client(timeout: int = 600) -> docker.DockerClient:
    """A client for the first engine that answers a ping; raises EngineUnavailableError."""
    tried = []
    for host in candidate_hosts():
        try:
            client = docker.DockerClient(base_url=host, timeout=timeout)
            client.ping()
            return client
        except (DockerException, OSError) as exc:
            tried.append(f"{host}: {exc.__class__.__name__}")
    raise EngineUnavailableError("no Docker engine answers (run `make docker-up`); tried " + "; ".join(tried))
