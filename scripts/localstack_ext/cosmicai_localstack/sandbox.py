"""One Lambda execution environment: a runtime process behind its own Runtime API server.

The runtime (`python -m awslambdaric <handler>`, or a container running it) talks to a
`RuntimeApiServer` on 127.0.0.1. The sandbox enforces the timeout, measures durations and peak
memory, and writes AWS-format START/END/REPORT lines. The memory size is enforced by whoever can:
a container's cgroup limit (the kernel kills it; `exit_info` says so), else, for a plain process,
this sandbox's watchdog (sampled peak RSS over the memory size).
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
from typing import IO

from . import lambda_format as fmt
from .proc_stats import tree_peak_rss_mb
from .runtime_api import Invocation, RuntimeApiServer

# how often an invoke checks the process, the deadline and memory while it waits (seconds)
POLL_S = 0.05
# output kept for get_logs() (LocalStack prints it when an environment fails to start)
HISTORY_BYTES = 256 * 1024


@dataclass(frozen=True)
class ExitInfo:
    """How a runtime ended: `returncode` as Popen gives it (negative: killed by that signal), and
    whether the kernel's out-of-memory killer did it (a container's cgroup limit)."""

    returncode: int | None
    oom_killed: bool = False


@dataclass
class SandboxSpec:
    """What to run and under which limits; `env` must not hold AWS_LAMBDA_RUNTIME_API (set per start)."""

    argv: list[str]
    env: dict[str, str]
    memory_mb: int
    timeout_s: float
    cwd: str | None = None
    version: str = "$LATEST"
    # kill the runtime when its sampled peak RSS passes memory_mb (process mode: nothing else limits it);
    # off where the kernel enforces the limit (docker mode's cgroup), so the kernel is the only authority
    enforce_memory: bool = True
    # extra clean-up after the process group is killed (docker mode: `docker rm -f`)
    kill_hook: Callable[[], None] | None = None
    # pid whose process tree is measured (docker mode: the container's init); default: the spawned process
    measure_root: Callable[[subprocess.Popen[bytes]], int | None] | None = None
    # how the runtime ended, given the spawned process's returncode; read before kill_hook runs
    # (docker mode: the container's State.ExitCode and State.OOMKilled); default: that returncode, no OOM
    exit_info: Callable[[int | None], ExitInfo] | None = None


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

    def __init__(self, stream: IO[bytes]) -> None:  # the child's stdout pipe
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


class _Runtime:
    """One runtime process with its Runtime API server and output; killed at most once."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.server = RuntimeApiServer()
        self.server.start()
        env = dict(spec.env)
        env["AWS_LAMBDA_RUNTIME_API"] = self.server.address
        self.spawned_at = time.monotonic()
        # a new session makes the runtime its own process group, so a kill reaches all its children
        self.proc = subprocess.Popen(
            spec.argv,
            env=env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.proc.stdout is None:  # never: stdout=PIPE
            raise RuntimeError("the runtime process has no stdout pipe")
        self.out = OutputCollector(self.proc.stdout)
        self.init_measured = False  # only the first invoke of a process reports Init Duration
        self.peak_mb = 0.0
        self._kill_lock = threading.Lock()
        self.killed = False

    def state(self) -> str | None:
        """'ready', 'init_error', 'exited' or None while still initialising."""
        if self.server.first_next.is_set():
            return "ready"
        if self.server.init_error_event.is_set():
            return "init_error"
        if self.proc.poll() is not None:
            return "exited"
        return None

    def sample_memory(self) -> float:
        """Peak memory of the runtime's process tree so far (MiB)."""
        if not self.killed:
            root = self.spec.measure_root(self.proc) if self.spec.measure_root else self.proc.pid
            if root:
                self.peak_mb = max(self.peak_mb, tree_peak_rss_mb(root))
        return self.peak_mb

    def exit_info(self) -> ExitInfo:
        """How the runtime ended (call once it has exited, before `kill` removes a container)."""
        returncode = self.proc.poll()
        if self.spec.exit_info is not None:
            return self.spec.exit_info(returncode)
        return ExitInfo(returncode)

    def kill(self) -> str:
        """Kill the process group (and container); returns output nobody has taken yet. Idempotent."""
        with self._kill_lock:
            if self.killed:
                return ""
            self.killed = True
            # the whole group even when the runtime itself already exited: children it left behind die too
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.spec.kill_hook:
                self.spec.kill_hook()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            rest = self.out.take()  # after the process died, so its last words are in the pipe
            self.out.close()
            self.server.stop()
            return rest


class Sandbox:
    """A restartable execution environment; one invoke at a time (LocalStack never overlaps them).

    `stop()` may come from another thread during an invoke: it kills the runtime, and the invoke
    then ends with an error instead of waiting for its timeout.
    """

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._rt: _Runtime | None = None
        self._pending_init_ms: float | None = None  # reported on the next invoke's REPORT line
        self._invoke_lock = threading.Lock()
        self._state_lock = threading.Lock()  # guards _rt and _stopped
        self._stopped = False

    # lifecycle

    def start(self, wait_s: float) -> None:
        """Spawn the runtime and wait until it asks for its first event, fails its init, exits, or wait_s passes."""
        with self._invoke_lock:
            rt = self._runtime()
            self._wait_ready(rt, time.monotonic() + wait_s)

    def stop(self) -> None:
        """Kill the runtime's process group and stop its Runtime API server (without waiting for an invoke)."""
        with self._state_lock:
            self._stopped = True
            rt = self._rt
        if rt is not None:
            rt.kill()

    def history(self) -> str:
        """Recent output of the runtime (current or last process)."""
        rt = self._rt
        return rt.out.history() if rt else ""

    @property
    def pid(self) -> int | None:
        """Pid of the live runtime process (its process group id), None when there is none."""
        rt = self._rt
        return rt.proc.pid if rt and not rt.killed else None

    def _runtime(self) -> _Runtime:
        """The live runtime, spawning one (first use, or re-init after a timeout or crash, as Lambda does)."""
        with self._state_lock:
            if self._stopped:
                raise RuntimeError("execution environment was stopped")
            if self._rt is None or self._rt.killed:
                self._rt = _Runtime(self.spec)
            return self._rt

    def _wait_ready(self, rt: _Runtime, deadline: float) -> str | None:
        while (state := rt.state()) is None and time.monotonic() < deadline and not rt.killed:
            rt.sample_memory()
            rt.server.first_next.wait(0.01)
        if state == "ready" and not rt.init_measured and rt.server.first_next_at is not None:
            rt.init_measured = True
            self._pending_init_ms = (rt.server.first_next_at - rt.spawned_at) * 1000.0
        return state

    # invoke

    def invoke(self, request_id: str, payload: bytes, function_arn: str, trace_id: str = "") -> InvokeOutcome:
        """Run one event; timeouts, crashes, init failures and memory overruns come back as Lambda errors."""
        with self._invoke_lock:
            try:
                rt = self._runtime()
            except RuntimeError as e:
                raise RuntimeError(f"{e}: {function_arn}") from None
            t0 = time.monotonic()
            deadline = t0 + self.spec.timeout_s
            state = self._wait_ready(rt, deadline)
            before = rt.out.take()
            init_ms, self._pending_init_ms = self._pending_init_ms, None
            if state != "ready":
                return self._init_failure(rt, request_id, state, before, t0)
            inv = Invocation(
                request_id=request_id,
                payload=payload,
                deadline_ms=int((time.time() + (deadline - time.monotonic())) * 1000),
                function_arn=function_arn,
                trace_id=trace_id,
            )
            rt.server.submit(inv)
            try:
                failure = self._wait_done(rt, inv, deadline)
            finally:
                rt.server.forget(request_id)
            if failure is None and self.spec.enforce_memory and rt.sample_memory() > self.spec.memory_mb:
                failure = "oom"  # a spike between samples: VmHWM still saw it, and Lambda would have killed it
            return self._finish(rt, inv, failure, before, init_ms, t0)

    def _wait_done(self, rt: _Runtime, inv: Invocation, deadline: float) -> str | None:
        """None when the runtime answered, else 'timeout', 'exit' or 'oom'."""
        next_memory_check = 0.0
        while not inv.done.wait(POLL_S):
            now = time.monotonic()
            if rt.proc.poll() is not None or rt.killed:
                return None if inv.done.is_set() else "exit"
            if now >= deadline:
                return None if inv.done.is_set() else "timeout"
            if now >= next_memory_check:  # sampled either way: Max Memory Used
                next_memory_check = now + 2 * POLL_S
                if rt.sample_memory() > self.spec.memory_mb and self.spec.enforce_memory:
                    return "oom"
        return None

    def _finish(
        self, rt: _Runtime, inv: Invocation, failure: str | None, before: str, init_ms: float | None, t0: float
    ) -> InvokeOutcome:
        rid = inv.request_id
        peak = rt.sample_memory()
        extra: list[str] = []
        status = None
        if failure is None:
            start = inv.started_at or t0
            duration_ms = ((inv.finished_at or time.monotonic()) - start) * 1000.0
            body, is_error = inv.result, inv.is_error
            during = rt.out.take()
        else:
            returncode = rt.proc.poll()
            if failure == "exit":
                # before kill(): a container is inspected, then removed
                info = rt.exit_info()
                returncode = info.returncode
                if info.oom_killed:
                    failure = "oom"  # the kernel's cgroup limit killed it
                    peak = self._at_the_limit()
            during = rt.kill()
            if returncode is None:
                returncode = rt.proc.returncode
            duration_ms = (time.monotonic() - t0) * 1000.0
            is_error = True
            if failure == "timeout":
                duration_ms = self.spec.timeout_s * 1000.0
                body, status = fmt.timeout_error(rid, self.spec.timeout_s), "timeout"
                extra.append(fmt.timeout_message(rid, self.spec.timeout_s))
            elif failure == "oom":
                body, status = fmt.oom_error(rid), "error"
                extra.append(f"RequestId: {rid} Error: Runtime exited with error: signal: killed")
                extra.append("Runtime.OutOfMemory")
            else:
                body, status = fmt.exit_error(rid, returncode), "error"
                extra.append(f"RequestId: {rid} Error: Runtime exited with error: {fmt.describe_exit(returncode)}")
                extra.append("Runtime.ExitError")
        logs = self._assemble(rid, before, during, extra, duration_ms, peak, init_ms, status)
        return InvokeOutcome(rid, body, is_error, logs, duration_ms, init_ms, peak, status)

    def _at_the_limit(self) -> float:
        """Max Memory Used of a runtime the kernel OOM-killed: the size, as AWS reports it. The cgroup's charge
        reached its limit; the sampled sum of VmHWM can read above it (file-backed pages the cgroup is not
        charged for) or below it (the last growth came between samples)."""
        return float(self.spec.memory_mb)

    def _init_failure(self, rt: _Runtime, rid: str, state: str | None, before: str, t0: float) -> InvokeOutcome:
        """The runtime failed (or ran out of time) before asking for the event."""
        init_ms = (time.monotonic() - rt.spawned_at) * 1000.0
        peak = rt.sample_memory()
        info = rt.exit_info() if state == "exited" and not rt.killed else ExitInfo(rt.proc.poll())
        returncode = info.returncode
        if state == "init_error" and rt.server.init_error is not None:
            body, status = rt.server.init_error.body, "error"
        elif info.oom_killed:  # the kernel's cgroup limit killed it during init
            body, status = fmt.oom_error(rid), "error"
            peak = self._at_the_limit()
        elif state == "exited" or rt.killed:
            body, status = fmt.exit_error(rid, returncode if returncode is not None else -9), "error"
        else:
            body, status = fmt.timeout_error(rid, self.spec.timeout_s), "timeout"
        during = rt.kill()
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
