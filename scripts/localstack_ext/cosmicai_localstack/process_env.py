"""What a function's runtime process is: settings, handler, environment, command line (both modes).

Plain values in, plain values out (no LocalStack imports), so it is unit-testable from the project venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

MODES = ("process", "docker")
# host variables a runtime process inherits; everything else comes from Lambda's own environment
# (COSMICAI_LOCALSTACK_STATE marks our processes so `make localstack-down` finds and stops them)
INHERITED = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "AWS_CA_BUNDLE",
    "COSMICAI_LOCALSTACK_STATE",
)
# docker label on our containers: the LocalStack state dir that started them (for clean-up by the launcher)
STATE_LABEL = "cosmicai.localstack.state"


class ExecutorConfigError(ValueError):
    """A setting or function configuration the executor cannot run with; the message names it."""


def executor_mode(environ: dict[str, str] | None = None) -> str:
    """COSMICAI_EXECUTOR_MODE: `process` (default) or `docker`."""
    mode = (environ if environ is not None else os.environ).get(
        "COSMICAI_EXECUTOR_MODE", "process"
    ).strip().lower() or "process"
    if mode not in MODES:
        raise ExecutorConfigError(f"COSMICAI_EXECUTOR_MODE={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def project_root(environ: Mapping[str, str] | None = None) -> Path:
    """COSMICAI_PROJECT_ROOT (set by the launcher), else the repository holding this file."""
    value = (environ if environ is not None else os.environ).get("COSMICAI_PROJECT_ROOT")
    return Path(value) if value else Path(__file__).resolve().parents[3]


def function_python(environ: dict[str, str] | None = None) -> str:
    """COSMICAI_FUNCTION_PYTHON (the project venv's python with awslambdaric), else <root>/.venv/bin/python."""
    env = environ if environ is not None else os.environ
    return env.get("COSMICAI_FUNCTION_PYTHON") or str(project_root(env) / ".venv" / "bin" / "python")


def check_function_python(python: str) -> None:
    """Raise ExecutorConfigError unless `python` exists and can import awslambdaric."""
    if not Path(python).is_file():
        raise ExecutorConfigError(
            f"function python {python} (COSMICAI_FUNCTION_PYTHON) does not exist; run `make setup`"
        )
    probe = subprocess.run([python, "-c", "import awslambdaric"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise ExecutorConfigError(f"function python {python} cannot import awslambdaric: {probe.stderr.strip()[-300:]}")


def resolve_handler(
    function_name: str, handler: str | None, image_command: list[str] | None, image_cmd: list[str] | None = None
) -> str:
    """Zip: the function's handler; Image: ImageConfig.Command[0], else the image's CMD[0]."""
    if handler:
        return handler
    for source in (image_command, image_cmd):
        if source:
            return source[0]
    raise ExecutorConfigError(
        f"function {function_name}: no handler: set ImageConfig.Command (e.g. ['cosmicai.handlers.infer.handler']) "
        "or build the image with a CMD naming it"
    )


def docker_image_cmd(image: str, docker: str = "docker", environ: dict[str, str] | None = None) -> list[str] | None:
    """CMD of a local image via `docker image inspect`; None without docker or the image."""
    if not shutil.which(docker):
        return None
    out = subprocess.run(
        [docker, "image", "inspect", "--format", "{{json .Config.Cmd}}", image],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0:
        return None
    import json

    try:
        cmd = json.loads(out.stdout.strip() or "null")
    except ValueError:
        return None
    return list(cmd) if cmd else None


def local_image_tag(image_uri: str) -> str:
    """`<registry>/<repo>:<tag>` -> `<repo>:<tag>` (the tag `make images` gives the local build)."""
    first, sep, rest = image_uri.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return image_uri


def lambda_env(env_vars: Mapping[str, object], base: dict[str, str] | None = None) -> dict[str, str]:
    """Lambda's variables (values stringified, None dropped) over the few host ones a process needs."""
    host = base if base is not None else dict(os.environ)
    env = {k: host[k] for k in INHERITED if k in host}
    env.update({k: str(v) for k, v in env_vars.items() if v is not None})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def process_spec_env(
    env_vars: Mapping[str, object], code_dir: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment of a process-mode runtime: task root and import path are the code directory."""
    env = lambda_env(env_vars, base)
    env["LAMBDA_TASK_ROOT"] = str(code_dir)
    env["LAMBDA_RUNTIME_DIR"] = str(code_dir)
    extra = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(code_dir) + (os.pathsep + extra if extra else "")
    return env


def process_argv(python: str, handler: str) -> list[str]:
    """`<python> -m awslambdaric <handler>`."""
    return [python, "-m", "awslambdaric", handler]


def docker_argv(
    name: str,
    image: str,
    env_names: list[str],
    memory_mb: int,
    command: list[str] | None = None,
    entrypoint: list[str] | None = None,
    working_dir: str | None = None,
    docker: str = "docker",
    state_dir: str | None = None,
) -> list[str]:
    """`docker run` for one environment: host network (Runtime API and LocalStack on 127.0.0.1), memory capped.

    The cap is the kernel's: `--memory` and `--memory-swap` equal (no swap to spill into), so a function
    over its size is OOM-killed as on Lambda. No `--rm`: the sandbox reads the container's State.OOMKilled
    after it exits, then removes it. Values are not on the command line: `-e NAME` makes docker copy them
    from its own environment.
    """
    memory = f"{int(memory_mb)}m"
    argv = [docker, "run", "--name", name, "--network", "host", "--memory", memory, "--memory-swap", memory]
    if state_dir:
        argv += ["--label", f"{STATE_LABEL}={state_dir}"]
    for key in env_names:
        argv += ["-e", key]
    if working_dir:
        argv += ["--workdir", working_dir]
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
    argv.append(image)
    argv += list(entrypoint[1:]) if entrypoint else []
    argv += list(command or [])
    return argv
