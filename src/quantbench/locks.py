"""Snakemake's working-directory locks, left behind when Snakemake is killed (kill -9, OOM
killer, a closed terminal).

Snakemake's lock files name no process, so after such a kill every later run stops with
"Directory cannot be locked" until someone runs --unlock. This module removes them only when no
Snakemake process (nor a job it started) still runs in the working directory on this machine.
Kept free of heavy imports: the Snakefile calls it while building the DAG.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the command's name
    return pids


def snakemake_processes(workdir: str | Path) -> list[int]:
    """Other processes running Snakemake or one of its jobs with ``workdir`` as their folder."""
    workdir = Path(workdir).resolve()
    mine = _ancestors()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            if (b"snakemake" in (proc / "cmdline").read_bytes()
                    and Path(os.readlink(proc / "cwd")) == workdir):
                found.append(int(proc.name))
        except OSError:  # gone, or not ours to inspect
            continue
    return found


def clear_stale_locks(workdir: str | Path) -> list[Path]:
    """Remove the locks of a killed run; return what was removed (nothing if a run is alive,
    or where /proc cannot tell)."""
    locks = sorted((Path(workdir) / ".snakemake" / "locks").glob("*.lock"))
    if not locks or not Path("/proc/self").exists() or snakemake_processes(workdir):
        return []
    for lock in locks:
        lock.unlink(missing_ok=True)
    print(f"quantbench: removed {len(locks)} lock(s) left by a Snakemake run that was killed; "
          "its unfinished jobs will be redone", file=sys.stderr)
    return locks
