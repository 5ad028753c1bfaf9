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


def _children_of(pid: int) -> list[int] | None:
    """Direct children from /proc/<pid>/task/*/children (cheap); None when the kernel lacks that file."""
    kids: list[int] = []
    try:
        tids = os.listdir(f"{_PROC}/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"{_PROC}/{pid}/task/{tid}/children", encoding="ascii") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"{_PROC}/{pid}/task/{tid}"):
                continue  # the thread just ended
            return None
        except (OSError, ValueError):
            continue
    return kids


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = _children_of(pid)
        if kids is None:
            return _process_tree_by_scan(root)
        found.append(pid)
        todo.extend(kids)
    return found


def _process_tree_by_scan(root: int) -> list[int]:
    """Fallback without /proc/<pid>/task/<tid>/children: scan every process's parent."""
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
