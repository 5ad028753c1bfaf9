"""One Lambda execution environment: a runtime process behind its own Runtime API server.

The runtime (`python -m awslambdaric <handler>`, or a container running it) talks to a
`RuntimeApiServer` on 127.0.0.1. The sandbox enforces the timeout and the memory size,
measures durations and peak memory, and writes AWS-format START/END/REPORT lines.
Stdlib only, so it runs inside LocalStack's venv and in the project's unit tests.
"""

from __future__ import annotations

import collections
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import lambda_format as fmt
from .proc_stats import tree_peak_rss_mb
from .runtime_api import Invocation, RuntimeApiServer

# how often an invoke checks the process, the deadline and memory while it waits (seconds)
POLL_S = 0.05
# output kept for get_logs() (LocalStack prints it when an environment fails to start)
HISTORY_BYTES = 256 * 1024


@dataclass
class SandboxSpec:
    """What to run and under which limits; `env` must not hold AWS_LAMBDA_RUNTIME_API (set per start)."""

    argv: list[str]
    env: dict[str, str]
    memory_mb: int
    timeout_s: float
    cwd: str | None = None
    version: str = "$LATEST"
    enforce_memory: bool = True
    # extra clean-up after the process group is killed (docker mode: `docker kill`)
    kill_hook: Callable[[], None] | None = None
    # pid whose process tree is measured (docker mode: the container's init); default: the spawned process
    measure_root: Callable[[subprocess.Popen], int | None] | None = None


@dataclass
class InvokeOutcome:
    """What one invoke produced: the body, whether it is an error, and its log text."""

    request_id: str
    payload: bytes
    is_error: bool
    logs: str
    duration_ms: float
    init_duration_ms: float | None
    max_memory_mb: float
    status: str | None = None  # None when the sandbox itself did not fail: "timeout", "error"


class OutputCollector:
    """Reads a child's merged stdout/stderr without blocking it; `take()` returns what came since the last take."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - a binary file object from Popen
        self._stream = stream
        self._fd = stream.fileno()
        os.set_blocking(self._fd, False)
        self._pending = bytearray()
        self._history: collections.deque[bytes] = collections.deque()
        self._history_bytes = 0
        self._lock = threading.Lock()
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="lambda-output", daemon=True)
        self._thread.start()

    def _pump_locked(self) -> None:
        while not self._eof:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._eof = True
                return
            self._pending += chunk
            self._history.append(chunk)
            self._history_bytes += len(chunk)
            while self._history_bytes > HISTORY_BYTES and len(self._history) > 1:
                self._history_bytes -= len(self._history.popleft())

    def _run(self) -> None:
        while not self._eof:
            try:
                select.select([self._fd], [], [], 0.2)
            except (OSError, ValueError):
                return
            with self._lock:
                self._pump_locked()

    def take(self) -> str:
        """Everything written since the last call; reading under the lock means nothing written before is missed."""
        with self._lock:
            self._pump_locked()
            data = bytes(self._pending)
            self._pending.clear()
        return data.decode("utf-8", errors="replace")

    def history(self) -> str:
        """The last HISTORY_BYTES of output."""
        with self._lock:
            return b"".join(self._history).decode("utf-8", errors="replace")

    def close(self) -> None:
        """Stop reading and close the pipe."""
        with self._lock:
            self._eof = True
            try:
                self._stream.close()
            except OSError:
                pass


class Sandbox:
    """A restartable execution environment; one invoke at a time (LocalStack never overlaps them)."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._proc: subprocess.Popen | None = None
        self._server: RuntimeApiServer | None = None
        self._out: OutputCollector | None = None
        self._spawned_at = 0.0
        self._pending_init_ms: float | None = None  # reported on the next invoke's REPORT line
        self._init_measured = False  # per process: only its first invoke reports Init Duration
        self._peak_mb = 0.0
        self._lock = threading.Lock()
        self._history = ""
        self._stopped = False

    # lifecycle

    def start(self, wait_s: float) -> None:
        """Spawn the runtime and wait until it asks for its first event, fails its init, exits, or wait_s passes."""
        with self._lock:
            self._spawn()
            self._wait_ready(time.monotonic() + wait_s)

    def stop(self) -> None:
        """Kill the runtime's process group and stop its Runtime API server."""
        with self._lock:
            self._stopped = True
            self._kill()

    def history(self) -> str:
        """Recent output of the runtime (current or last process)."""
        return self._out.history() if self._out else self._history

    @property
    def pid(self) -> int | None:
        """Pid of the spawned runtime process (its process group id), None before start."""
        return self._proc.pid if self._proc else None

    def _spawn(self) -> None:
        self._server = RuntimeApiServer()
        self._server.start()
        env = dict(self.spec.env)
        env["AWS_LAMBDA_RUNTIME_API"] = self._server.address
        self._spawned_at = time.monotonic()
        self._peak_mb = 0.0
        self._init_measured = False
        # a new session makes the runtime its own process group, so a kill reaches all its children
        self._proc = subprocess.Popen(
            self.spec.argv,
            env=env,
            cwd=self.spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._out = OutputCollector(self._proc.stdout)

    def _kill(self) -> str:
        """Kill and clean up; returns the output the process wrote that nobody has taken yet."""
        proc, server, out = self._proc, self._server, self._out
        rest = ""
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if self.spec.kill_hook:
                self.spec.kill_hook()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if out is not None:
            rest = out.take()  # after the process died, so its last words are in the pipe
            self._history = out.history()
            out.close()
        if server is not None:
            server.stop()
        self._proc = self._server = self._out = None
        return rest

    def _ready_state(self) -> str | None:
        """'ready', 'init_error', 'exited' or None while still initialising."""
        assert self._server is not None and self._proc is not None
        if self._server.first_next.is_set():
            return "ready"
        if self._server.init_error_event.is_set():
            return "init_error"
        if self._proc.poll() is not None:
            return "exited"
        return None

    def _wait_ready(self, deadline: float) -> str | None:
        assert self._server is not None
        while (state := self._ready_state()) is None and time.monotonic() < deadline:
            self._sample_memory()
            self._server.first_next.wait(0.01)
        if state == "ready" and not self._init_measured and self._server.first_next_at is not None:
            self._init_measured = True
            self._pending_init_ms = (self._server.first_next_at - self._spawned_at) * 1000.0
        return state

    def _sample_memory(self) -> float:
        if self._proc is None:
            return self._peak_mb
        root = self.spec.measure_root(self._proc) if self.spec.measure_root else self._proc.pid
        if root:
            self._peak_mb = max(self._peak_mb, tree_peak_rss_mb(root))
        return self._peak_mb

    def _over_memory(self) -> bool:
        return self.spec.enforce_memory and self._sample_memory() > self.spec.memory_mb

    # invoke

    def invoke(self, request_id: str, payload: bytes, function_arn: str, trace_id: str = "") -> InvokeOutcome:
        """Run one event; timeouts, crashes, init failures and memory overruns come back as Lambda errors."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"execution environment for {function_arn} was stopped")
            t0 = time.monotonic()
            deadline = t0 + self.spec.timeout_s
            if self._proc is None:
                self._spawn()  # re-init after a timeout or crash, as Lambda does
            state = self._wait_ready(deadline)
            before = self._out.take() if self._out else ""
            init_ms, self._pending_init_ms = self._pending_init_ms, None
            if state != "ready":
                return self._init_failure(request_id, state, before, t0)
            inv = Invocation(
                request_id=request_id,
                payload=payload,
                deadline_ms=int((time.time() + (deadline - time.monotonic())) * 1000),
                function_arn=function_arn,
                trace_id=trace_id,
            )
            assert self._server is not None and self._proc is not None
            self._server.submit(inv)
            try:
                failure = self._wait_done(inv, deadline)
            finally:
                self._server.forget(request_id)
            return self._finish(inv, failure, before, init_ms, t0)

    def _wait_done(self, inv: Invocation, deadline: float) -> str | None:
        """None when the runtime answered, else 'timeout', 'exit' or 'oom'."""
        assert self._proc is not None
        next_memory_check = 0.0
        while not inv.done.wait(POLL_S):
            now = time.monotonic()
            if self._proc.poll() is not None:
                return None if inv.done.is_set() else "exit"
            if now >= deadline:
                return None if inv.done.is_set() else "timeout"
            if self.spec.enforce_memory and now >= next_memory_check:
                next_memory_check = now + 2 * POLL_S
                if self._over_memory():
                    return "oom"
        return None

    def _finish(self, inv: Invocation, failure: str | None, before: str, init_ms: float | None, t0: float) -> InvokeOutcome:
        rid = inv.request_id
        peak = self._sample_memory()
        extra: list[str] = []
        status = None
        if failure is None:
            start = inv.started_at or t0
            duration_ms = ((inv.finished_at or time.monotonic()) - start) * 1000.0
            body, is_error = inv.result, inv.is_error
            during = self._out.take() if self._out else ""
        else:
            returncode = self._proc.poll() if self._proc else None
            during = self._kill()
            duration_ms = (time.monotonic() - t0) * 1000.0
            is_error = True
            if failure == "timeout":
                duration_ms = self.spec.timeout_s * 1000.0
                body, status = fmt.timeout_error(rid, self.spec.timeout_s), "timeout"
                extra.append(fmt.timeout_message(rid, self.spec.timeout_s))
            elif failure == "oom":
                body, status = fmt.oom_error(rid, self.spec.memory_mb), "error"
                extra.append(f"RequestId: {rid} Error: Runtime exited with error: signal: killed")
                extra.append("Runtime.OutOfMemory")
            else:
                body, status = fmt.exit_error(rid, returncode), "error"
                extra.append(f"RequestId: {rid} Error: Runtime exited with error: {fmt.describe_exit(returncode)}")
                extra.append("Runtime.ExitError")
        logs = self._assemble(rid, before, during, extra, duration_ms, peak, init_ms, status)
        return InvokeOutcome(rid, body, is_error, logs, duration_ms, init_ms, peak, status)

    def _init_failure(self, rid: str, state: str | None, before: str, t0: float) -> InvokeOutcome:
        """The runtime failed (or ran out of time) before asking for the event."""
        assert self._server is not None
        init_ms = (time.monotonic() - self._spawned_at) * 1000.0
        peak = self._sample_memory()
        returncode = self._proc.poll() if self._proc else None
        if state == "init_error" and self._server.init_error is not None:
            body = self._server.init_error.body
            status = "error"
        elif state == "exited":
            body, status = fmt.exit_error(rid, returncode), "error"
        else:
            body, status = fmt.timeout_error(rid, self.spec.timeout_s), "timeout"
        during = self._kill()
        duration_ms = (time.monotonic() - t0) * 1000.0
        logs = self._assemble(rid, before, during, [], duration_ms, peak, init_ms, status)
        return InvokeOutcome(rid, body, True, logs, duration_ms, init_ms, peak, status)

    def _assemble(
        self,
        rid: str,
        before: str,
        during: str,
        extra: list[str],
        duration_ms: float,
        peak_mb: float,
        init_ms: float | None,
        status: str | None,
    ) -> str:
        lines = before.splitlines()
        lines.append(fmt.start_line(rid, self.spec.version))
        lines.extend(during.splitlines())
        lines.extend(extra)
        lines.append(fmt.end_line(rid))
        lines.append(fmt.report_line(rid, duration_ms, self.spec.memory_mb, peak_mb, init_ms, status))
        return "\n".join(lines) + "\n"
