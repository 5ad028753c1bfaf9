"""Lambda's platform log lines and error payloads, formatted as AWS writes them.

Stdlib only: used inside LocalStack's venv and by the project's unit tests.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime


def start_line(request_id: str, version: str = "$LATEST") -> str:
    """`START RequestId: <id> Version: <version>`."""
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    """`END RequestId: <id>`."""
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: float,
    init_duration_ms: float | None = None,
    status: str | None = None,
) -> str:
    """The tab-separated REPORT line; billed duration = duration + init (as AWS bills since 2025), up to 1 ms."""
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms + (init_duration_ms or 0.0)))} ms",
        f"Memory Size: {int(memory_size_mb)} MB",
        f"Max Memory Used: {max(1, math.ceil(max_memory_used_mb))} MB",
    ]
    if init_duration_ms is not None:
        fields.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status:
        # AWS adds `Status: timeout` / `Status: error` for sandbox-level failures
        fields.append(f"Status: {status}")
    return "\t".join(fields) + "\t"


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def timeout_message(request_id: str, timeout_s: float) -> str:
    """The line Lambda logs (and returns) when an invoke runs past the function's timeout."""
    return f"{_utc_stamp()} {request_id} Task timed out after {timeout_s:.2f} seconds"


def error_payload(error_type: str, message: str) -> bytes:
    """A Lambda error body: `{"errorType": ..., "errorMessage": ...}`."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def timeout_error(request_id: str, timeout_s: float) -> bytes:
    """`Sandbox.Timedout` with AWS's "Task timed out after N.NN seconds" message."""
    return error_payload("Sandbox.Timedout", timeout_message(request_id, timeout_s))


def exit_error(request_id: str, returncode: int | None) -> bytes:
    """`Runtime.ExitError` for a runtime process that died during an invoke."""
    return error_payload(
        "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: {describe_exit(returncode)}"
    )


def oom_error(request_id: str) -> bytes:
    """`Runtime.OutOfMemory` once the environment exceeded its memory size and was killed.

    AWS's body for it names the signal, not the size (the REPORT line shows Max Memory Used at the size).
    """
    return error_payload(
        "Runtime.OutOfMemory", f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    )


def describe_exit(returncode: int | None) -> str:
    """Go-style exit description as Lambda prints it: `exit status 3`, `signal: killed`."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        names = {9: "killed", 15: "terminated", 11: "segmentation fault", 6: "aborted"}
        return f"signal: {names.get(-returncode, str(-returncode))}"
    return f"exit status {returncode}"
