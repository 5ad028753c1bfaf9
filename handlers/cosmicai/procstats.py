"""Process resource figures shared by the engine, the worker and the benchmarks (no torch import)."""

from __future__ import annotations

import functools
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


# The instruction sets that decide which precision can be fast on a CPU.
ISA_OF_INTEREST = frozenset(
    {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8"}
)
NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; ("?", empty) where there is none."""
    model, flags = "?", frozenset[str]()
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags
