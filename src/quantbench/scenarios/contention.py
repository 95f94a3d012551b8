"""Other work on the machine while a job measures: other processes' CPU time, steal time and the
load average over a region (Linux /proc; elsewhere nothing is measured and the figures are None).

The job is one process (by default this one) and its descendants (compile workers, helpers);
every other process that /proc shows is other work. A process's CPU time is utime + stime of
``/proc/<pid>/stat``; a process that starts and ends inside the region is not seen, so the
figure is a lower bound. Shares are of the machine's CPU time over the region, from the all-CPU
line of ``/proc/stat`` (user to steal, in clock ticks, as are the processes' times), so they
need no wall clock: on a 2-CPU machine a competitor that keeps one CPU busy is a share of 0.5.
Steal time is what a hypervisor gave to other guests. The load average is the 1-minute one at
the end of the region; it counts the job's own threads too.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
# Above either share the report says the timings come from a machine shared with other work.
OTHER_CPU_SHARE_MAX = 0.05
STEAL_SHARE_MAX = 0.02
TOP = 5  # busiest other processes named in the record


def cpu_ticks() -> tuple[int, int]:
    """(all CPU ticks, steal ticks) since boot, from the first line of /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal; guest time is already inside user/nice
    return sum(values[:8]), (values[7] if len(values) > 7 else 0)


def processes() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (parent pid, utime + stime in clock ticks, command name, start time in clock ticks
    since boot) of every process."""
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        # the command name may hold spaces and parentheses: the other fields follow the last ")"
        head, rest = stat.rsplit(")", 1)
        f = rest.split()  # f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, start 22
        out[int(entry.name)] = (int(f[1]), int(f[11]) + int(f[12]), head.split("(", 1)[1],
                                int(f[19]))
    return out


def uptime_ticks() -> int:
    """Clock ticks since boot (the unit of a process's start time)."""
    return int(float((PROC / "uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def process_tree(procs: dict[int, tuple[int, int, str]], root: int) -> set[int]:
    """``root`` and its descendants among ``procs``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in procs.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


class ContentionTracker:
    """Other processes' CPU time, steal time and load over a region (``with`` or start/stop).

    ``stop()`` returns the record's metrics: ``other_cpu_share``, ``steal_share`` (fractions of
    the machine's CPU time) and ``loadavg``; ``other_ticks`` holds each other process's CPU
    ticks over the region and ``top`` names the busiest."""

    def __init__(self, root_pid: int | None = None):
        self.root_pid = root_pid or os.getpid()
        self.available = (PROC / "stat").is_file()
        self.metrics: dict = {"other_cpu_share": None, "steal_share": None, "loadavg": None}
        self.top: list[dict] = []
        self.other_ticks: dict[int, int] = {}

    def start(self) -> ContentionTracker:
        if self.available:
            self._ticks, self._procs = cpu_ticks(), processes()
            self._since = uptime_ticks()
        return self

    def stop(self) -> dict:
        if not self.available:
            return self.metrics
        (total, steal), procs = cpu_ticks(), processes()
        own = process_tree(procs, self.root_pid) | process_tree(self._procs, self.root_pid)
        used: dict[int, tuple[str, int]] = {}
        for pid, (_, cpu, name, started) in procs.items():
            if pid in own:
                continue
            before = self._procs.get(pid)
            if before is not None and before[3] == started:  # the same process (a pid is reused)
                delta = cpu - before[1]
            elif started >= self._since - 1:  # started inside the region: all of its time
                delta = cpu
            else:  # older than the region but not seen at its start: its share is unknown
                continue
            if delta > 0:
                used[pid] = (name, delta)
        self.other_ticks = {pid: d for pid, (_, d) in used.items()}
        ticks = total - self._ticks[0]
        if ticks > 0:
            self.metrics = {
                "other_cpu_share": sum(d for _, d in used.values()) / ticks,
                "steal_share": (steal - self._ticks[1]) / ticks,
                "loadavg": os.getloadavg()[0],
            }
            busiest = sorted(used.items(), key=lambda kv: -kv[1][1])[:TOP]
            self.top = [{"pid": pid, "name": name, "cpu_share": d / ticks}
                        for pid, (name, d) in busiest]
        return self.metrics

    def __enter__(self) -> ContentionTracker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def contended(other_cpu_share, steal_share) -> bool:
    """Whether these shares say the machine was shared with other work (None: not measured)."""
    def above(value, limit):
        return value is not None and value == value and value > limit

    return above(other_cpu_share, OTHER_CPU_SHARE_MAX) or above(steal_share, STEAL_SHARE_MAX)
