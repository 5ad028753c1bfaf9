"""Test-only fault injection for the acceptance suite (crash, timeout, out-of-memory, transient).

Inert unless the function's environment sets COSMICAI_FAULT_INJECTION=1, which only the
test deploy does (Terraform `extra_environment` or the tests' function configuration);
a payload cannot switch it on. Then a shard whose name starts with `fault-<kind>` makes
the worker misbehave the way a real failure would, so the state machine's handling of
that failure can be tested end to end.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

ENV_FLAG = "COSMICAI_FAULT_INJECTION"
# fault-crash-*, fault-sleep-*, fault-oom-*, fault-transient<N>-* (fails the first N attempts)
_KIND = re.compile(r"^fault-(crash|sleep|oom|transient(\d+))(?:-|$)")
CRASH_EXIT_CODE = 3


class FaultInjectionError(RuntimeError):
    """An injected fault did not have the effect it should have (e.g. no memory limit enforced)."""


def enabled() -> bool:
    """Whether this function was deployed with fault injection on."""
    return os.environ.get(ENV_FLAG) == "1"


def inject(run_id: str, shard_names: list[str], context: Any = None) -> None:
    """Misbehave for the first `fault-*` shard of a work item; no-op unless enabled."""
    if not enabled():
        return
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
            _exhaust_memory(name)
        if m.group(2):
            _transient(run_id, name, int(m.group(2)))
        return


def _exhaust_memory(name: str) -> None:
    # Grow steadily (not all at once) so the executor's memory watchdog sees it; stop at
    # 1.5x the memory size so a missing limit fails the test instead of the machine.
    limit_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
    hoard: list[bytearray] = []
    for _ in range(int(limit_mb * 1.5) // 32 + 1):
        hoard.append(bytearray(b"\x01" * (32 << 20)))  # written, so the pages are resident
        time.sleep(0.02)
    raise FaultInjectionError(f"{name}: used {len(hoard) * 32} MiB > {limit_mb} MB but was not killed")


def _transient(run_id: str, name: str, failures: int) -> None:
    from cosmicai.worker import TransientStorageError

    # Attempts are counted on local disk: the local cloud's environments share /tmp.
    counter = Path(tempfile.gettempdir()) / "cosmicai-faults" / f"{run_id}-{name}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    attempt = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt <= failures:
        raise TransientStorageError(f"injected transient failure {attempt}/{failures} for shard {name} of run {run_id}")
