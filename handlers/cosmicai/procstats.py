"""Process resource figures shared by the engine, the worker and the benchmarks (no torch import)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mb(status: Path = Path("/proc/self/status")) -> float:
    """Peak resident set size of this process so far, in MiB."""
    # VmHWM first: Linux carries ru_maxrss across execve, so a process spawned by a big one
    # (a probe by the benchmark, a function by the local executor) would report its parent's
    # peak; VmHWM belongs to this process's own address space.
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
