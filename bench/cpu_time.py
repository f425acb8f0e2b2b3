"""Where a benchmark's CPU went: seconds used by process trees, and by the whole machine (Linux /proc)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of its children it has waited for)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # After the command: state, ppid, ... utime (12th), stime, cutime, cstime.
        ticks = sum(int(f) for f in fields[11:15])
        found[int(name)] = (int(fields[1]), ticks * TICK_S)
    return found


def tree_seconds(groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of process trees (each root pid and its descendants)."""
    stats = _stats()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _) in stats.items():
        children[parent].append(pid)
    used = {}
    for group, roots in groups.items():
        total, todo = 0.0, list(roots)
        while todo:
            pid = todo.pop()
            if pid in stats:
                total += stats[pid][1]
                todo += children[pid]
        used[group] = total
    return used


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent not idle, since boot."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) * TICK_S
