"""LocalStack Lambda runtime executor `cosmicai`: each execution environment is a local sandbox.

Mode `process` (default) runs `python -m awslambdaric <handler>` in the project's venv with the
project tree as code; mode `docker` runs the function's image from the local Docker engine.
Chosen by COSMICAI_EXECUTOR_MODE; LocalStack picks the executor by LAMBDA_RUNTIME_EXECUTOR=cosmicai.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
import threading
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from . import process_env as penv
from .docker_mode import Container, docker_environ, docker_spec
from .lambda_format import error_payload
from .lambda_limits import MAX_SYNC_PAYLOAD_BYTES
from .sandbox import Sandbox, SandboxSpec

LOG = logging.getLogger(__name__)
LOCAL_HOST = "127.0.0.1"
# leave LocalStack's startup timer (LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT) a margin; a slower init goes on inside invoke
START_MARGIN_S = 3.0

_checked_pythons: set[str] = set()
_image_cmds: dict[str, list[str] | None] = {}
_names = itertools.count(1)
_names_lock = threading.Lock()


def _image_config(fv: FunctionVersion) -> tuple[list[str] | None, list[str] | None, str | None]:
    ic = fv.config.image_config
    if ic is None:
        return None, None, None
    return ic.command or None, ic.entrypoint or None, ic.working_directory or None


def _handler_for(fv: FunctionVersion) -> str:
    """The handler string: Zip functions' Handler, Image functions' ImageConfig.Command or image CMD."""
    command, _, _ = _image_config(fv)
    image_cmd = None
    if not fv.config.handler and not command and fv.config.image:
        tag = penv.local_image_tag(fv.config.image.image_uri)
        if tag not in _image_cmds:
            _image_cmds[tag] = penv.docker_image_cmd(tag, environ=docker_environ())
        image_cmd = _image_cmds[tag]
    return penv.resolve_handler(fv.id.function_name, fv.config.handler, command, image_cmd)


def _code_dir(fv: FunctionVersion) -> Path:
    """Zip functions run from their unzipped code; Image functions from the project tree they are built from."""
    if fv.config.code is not None:
        return Path(fv.config.code.get_unzipped_code_location())
    return penv.project_root()


class CosmicaiExecutor(RuntimeExecutor):
    """One execution environment backed by a `Sandbox` (a local process or a container)."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:  # noqa: A002 - LocalStack's signature
        super().__init__(id, function_version)
        self.mode = penv.executor_mode()
        self.sandbox: Sandbox | None = None

    # lifecycle

    def start(self, env_vars: dict[str, str]) -> None:
        """Spawn the runtime and wait (bounded by LocalStack's startup timeout) until it asks for an event."""
        fv = self.function_version
        spec = self._docker_spec(env_vars) if self.mode == "docker" else self._process_spec(env_vars)
        self.sandbox = Sandbox(spec)
        wait_s = max(1.0, float(config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT) - START_MARGIN_S)
        LOG.debug("starting %s environment %s for %s", self.mode, self.id, fv.qualified_arn)
        self.sandbox.start(wait_s=wait_s)

    def _process_spec(self, env_vars: dict[str, str]) -> SandboxSpec:
        fv = self.function_version
        code_dir = _code_dir(fv)
        handler = _handler_for(fv)
        env = penv.process_spec_env(env_vars, code_dir)
        env["_HANDLER"] = handler
        return SandboxSpec(
            argv=penv.process_argv(penv.function_python(), handler),
            env=env,
            memory_mb=int(fv.config.memory_size),
            timeout_s=float(fv.config.timeout),
            cwd=str(code_dir),
            version=fv.id.qualifier,
        )

    def _docker_spec(self, env_vars: dict[str, str]) -> SandboxSpec:
        fv = self.function_version
        if fv.config.image is None:
            raise LambdaRuntimeException(f"function {fv.id.function_name}: docker mode runs Image functions only")
        command, entrypoint, workdir = _image_config(fv)
        with _names_lock:
            container = Container(f"cosmicai-lambda-{self.id[:12]}-{next(_names)}")
        return docker_spec(
            container,
            penv.local_image_tag(fv.config.image.image_uri),
            env_vars,
            int(fv.config.memory_size),
            float(fv.config.timeout),
            command=command,
            entrypoint=entrypoint,
            working_dir=workdir,
            version=fv.id.qualifier,
        )

    def stop(self) -> None:
        """Kill the environment's process group (and container)."""
        if self.sandbox is not None:
            self.sandbox.stop()

    # addresses: everything is on this host

    def get_address(self) -> str:
        """The environment's address as LocalStack sees it."""
        return LOCAL_HOST

    def get_endpoint_from_executor(self) -> str:
        """LocalStack's address as the function sees it (AWS_ENDPOINT_URL's host)."""
        return LOCAL_HOST

    def get_runtime_endpoint(self) -> str:
        """LocalStack's executor callback URL (unused: our sandboxes answer through their own Runtime API)."""
        return f"http://{LOCAL_HOST}:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    # work

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        """Run one event; Lambda errors (timeouts and crashes included) come back as error results."""
        if self.sandbox is None:
            raise LambdaRuntimeException(f"environment {self.id} got an invoke before start")
        body = payload.get("payload") or ""
        out = self.sandbox.invoke(
            request_id=payload["invoke-id"],
            payload=body.encode() if isinstance(body, str) else body,
            function_arn=payload.get("invoked-function-arn") or self.function_version.qualified_arn,
            trace_id=payload.get("trace-id") or "",
        )
        if len(out.payload) > MAX_SYNC_PAYLOAD_BYTES:  # Lambda's 6 MB response quota, as AWS reports it
            message = f"Response payload size exceeded maximum allowed payload size ({MAX_SYNC_PAYLOAD_BYTES} bytes)."
            return InvocationResult(
                request_id=out.request_id,
                payload=error_payload("Function.ResponseSizeTooLarge", message),
                is_error=True,
                logs=out.logs,
            )
        return InvocationResult(request_id=out.request_id, payload=out.payload, is_error=out.is_error, logs=out.logs)

    def get_logs(self) -> str:
        """Recent output of the environment's runtime."""
        return self.sandbox.history() if self.sandbox else ""

    # per version

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Check that the version can run here; raising marks the function Failed with our message."""
        try:
            mode = penv.executor_mode()
            if function_version.config.code is not None:
                runtime = str(function_version.config.runtime or "")
                if mode == "process" and not runtime.startswith("python"):
                    raise penv.ExecutorConfigError(f"runtime {runtime!r}: process mode runs Python functions only")
                function_version.config.code.prepare_for_execution()
            if mode == "docker":
                cls._check_docker_image(function_version)
            else:
                python = penv.function_python()
                if python not in _checked_pythons:
                    penv.check_function_python(python)
                    _checked_pythons.add(python)
                _handler_for(function_version)
        except penv.ExecutorConfigError as e:
            raise LambdaRuntimeException(f"function {function_version.id.function_name}: {e}") from e

    @staticmethod
    def _check_docker_image(fv: FunctionVersion) -> None:
        if fv.config.image is None:
            raise penv.ExecutorConfigError("docker mode runs Image functions only")
        if not shutil.which("docker"):
            raise penv.ExecutorConfigError("COSMICAI_EXECUTOR_MODE=docker but no docker CLI on PATH")
        tag = penv.local_image_tag(fv.config.image.image_uri)
        probe = subprocess.run(
            ["docker", "image", "inspect", tag], env=docker_environ(), capture_output=True, text=True, timeout=60
        )
        if probe.returncode != 0:
            raise penv.ExecutorConfigError(
                f"image {tag} (from {fv.config.image.image_uri}) is not in the local Docker engine; "
                "build it with `make images`"
            )

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing is cached per version (environments clean up in stop())."""

    @classmethod
    def validate_environment(cls) -> bool:
        """Warn (without failing LocalStack's start) when the selected mode cannot run functions."""
        try:
            if penv.executor_mode() == "docker":
                if not shutil.which("docker"):
                    LOG.warning("cosmicai executor: docker mode but no docker CLI on PATH")
                    return False
            else:
                penv.check_function_python(penv.function_python())
        except penv.ExecutorConfigError as e:
            LOG.warning("cosmicai executor: %s", e)
            return False
        return True
