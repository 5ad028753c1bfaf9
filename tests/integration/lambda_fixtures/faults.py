"""Fault injection for the acceptance suite (crash, timeout, out-of-memory, transient errors).

Test code, never in the Lambda images or the cosmicai package: a test deploy points the infer
function's handler at `faulty_infer.handler`, which calls `inject` before the real handler.
A shard whose name starts with `fault-<kind>` then makes the worker misbehave the way a real
failure would, so the state machine's handling of that failure can be tested end to end.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

# fault-crash-*, fault-sleep-*, fault-oom-*, fault-transient<N>-* (fails the first N attempts)
_KIND = re.compile(r"^fault-(crash|sleep|oom|transient(\d+))(?:-|$)")
CRASH_EXIT_CODE = 3
# The hoard grows in steps this size: each step is written, so its pages are resident.
OOM_STEP_MIB = 32


class FaultInjectionError(RuntimeError):
    """An injected fault did not have the effect it should have (e.g. no memory limit enforced)."""


def inject(run_id: str, shard_names: list[str], context: Any = None) -> None:
    """Misbehave for the first `fault-*` shard of a work item; other names are untouched."""
    for name in shard_names:
        m = _KIND.match(name)
        if not m:
            continue
        kind = m.group(1)
        if kind == "crash":
            os._exit(CRASH_EXIT_CODE)  # a hard exit, as a segfaulting native library would
        if kind == "sleep":
            remaining = context.get_remaining_time_in_millis() / 1000.0 if context is not None else 3600.0
            time.sleep(remaining + 30.0)
            raise FaultInjectionError(f"{name}: slept past the timeout but was not stopped")
        if kind == "oom":
            exhaust_memory(name)
        if m.group(2):
            _transient(run_id, name, int(m.group(2)))
        return


def exhaust_memory(name: str) -> None:
    """Grow past the function's memory size; raises if nothing stopped the process.

    Steadily (not all at once) so a sampling watchdog sees it as well as a cgroup limit would;
    it stops at 1.5x the memory size so a missing limit fails the test instead of the machine.
    """
    limit_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
    hoard: list[bytearray] = []
    for _ in range(int(limit_mb * 1.5) // OOM_STEP_MIB + 1):
        hoard.append(bytearray(b"\x01" * (OOM_STEP_MIB << 20)))
        time.sleep(0.02)
    raise FaultInjectionError(f"{name}: used {len(hoard) * OOM_STEP_MIB} MiB > {limit_mb} MB but was not killed")


def _transient(run_id: str, name: str, failures: int) -> None:
    from cosmicai.worker import TransientStorageError

    # Attempts are counted on local disk: the local cloud's environments share /tmp.
    counter = Path(tempfile.gettempdir()) / "cosmicai-faults" / f"{run_id}-{name}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    attempt = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt <= failures:
        raise TransientStorageError(f"injected transient failure {attempt}/{failures} for shard {name} of run {run_id}")
