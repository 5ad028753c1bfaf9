"""Memory of a process tree read from /proc (Linux): what REPORT's Max Memory Used needs."""

from __future__ import annotations

import os

_PROC = "/proc"


def _status_kib(pid: int, key: str) -> int:
    """One `kB` field of /proc/<pid>/status, 0 when the process is gone or the field absent."""
    try:
        with open(f"{_PROC}/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir(_PROC):
        if not name.isdigit():
            continue
        try:
            with open(f"{_PROC}/{name}/stat", encoding="ascii", errors="replace") as fh:
                # the comm field may hold spaces and parentheses: split after the last ')'
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_peak_rss_mb(root: int) -> float:
    """Sum of each live process's peak RSS (VmHWM) in the tree under `root`, in MiB."""
    return sum(_status_kib(pid, "VmHWM") for pid in process_tree(root)) / 1024.0


def tree_rss_mb(root: int) -> float:
    """Current RSS of the tree under `root`, in MiB."""
    return sum(_status_kib(pid, "VmRSS") for pid in process_tree(root)) / 1024.0
