"""Snakemake's working-directory locks, left behind when Snakemake is killed (kill -9, OOM
killer, a closed terminal).

Snakemake's lock files name no process, so after such a kill every later run stops with
"Directory cannot be locked" until someone runs --unlock. This module removes them, and only
where that is safe to decide from this machine:

- only in the main Snakemake process of a run (never in a job: a cluster job parses the
  Snakefile on a compute node, where the run that holds the locks is not visible);
- only on a local file system (on a shared one, a run on another machine cannot be seen);
- only when no Snakemake process, and no job of one, runs in the working folder. A Snakemake
  process is one that runs Snakemake itself (``snakemake ...``, ``python -m snakemake ...``), not
  any command line that contains the word (``tail -f .snakemake/log/...``); a job is a process
  that runs one of the folder's ``.snakemake/scripts``.

Where the locks stay, the message says why and what to run. Kept free of heavy imports: the
Snakefile calls it while building the DAG.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# File systems on which another machine may hold the folder's locks.
SHARED_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs",
                       "glusterfs", "ceph", "cephfs", "afs", "9p", "panfs", "wekafs", "fuse")
UNLOCK_HINT = "if no Snakemake run uses this folder, remove them with `snakemake --unlock`"


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


def is_snakemake_command(argv: list[str]) -> bool:
    """Whether a command line runs Snakemake itself: its program (or the script a Python
    interpreter runs) is named snakemake, or Python runs the module (``-m snakemake``)."""
    if not argv:
        return False
    if Path(argv[0]).name == "snakemake":
        return True
    if not Path(argv[0]).name.startswith("python"):
        return False
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m":
            return argv[i + 1:i + 2] == ["snakemake"]
        if arg.startswith("-m"):
            return arg == "-msnakemake"
        if arg == "-c":  # the rest are the code's arguments
            return False
        if not arg.startswith("-"):  # the script Python runs
            return Path(arg).name == "snakemake"
    return False


def runs_a_job_of(argv: list[str], workdir: Path) -> bool:
    """Whether a command line runs one of the scripts Snakemake writes for a job in
    ``workdir``."""
    scripts = workdir / ".snakemake" / "scripts"
    return any(arg.startswith(f"{scripts}{os.sep}") or arg.startswith(".snakemake/scripts/")
               for arg in argv)


def snakemake_processes(workdir: str | Path) -> list[int]:
    """Other processes of this machine running Snakemake, or one of its jobs, in ``workdir``."""
    workdir = Path(workdir).resolve()
    mine = _ancestors()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            argv = [a.decode(errors="replace")
                    for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
            if Path(os.readlink(proc / "cwd")) != workdir:
                continue
        except OSError:  # gone, or not ours to inspect
            continue
        if is_snakemake_command(argv) or runs_a_job_of(argv, workdir):
            found.append(int(proc.name))
    return found


def file_system_type(path: str | Path) -> str | None:
    """The type of the file system ``path`` lies on (from /proc/mounts), or None."""
    path = str(Path(path).resolve())
    best, fstype = "", None
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, fstype = point, fields[2]
    return fstype


def is_shared_file_system(fstype: str | None) -> bool:
    return fstype is not None and fstype.split(".")[0] in SHARED_FILE_SYSTEMS


def clear_stale_locks(workdir: str | Path, *, main_process: bool = True) -> list[Path]:
    """Remove the locks of a killed run; return what was removed. Nothing is removed in a job
    (``main_process`` False), on a shared file system, where /proc cannot tell, or while a
    Snakemake run is alive in the folder."""
    locks = sorted((Path(workdir) / ".snakemake" / "locks").glob("*.lock"))
    if not locks or not main_process:
        return []
    fstype = file_system_type(workdir)
    if not Path("/proc/self").exists() or fstype is None:
        why = "this system does not show whether a Snakemake run is alive"
    elif is_shared_file_system(fstype):
        why = (f"the folder is on a shared file system ({fstype}), where a run on another "
               "machine cannot be seen")
    elif alive := snakemake_processes(workdir):
        why = f"Snakemake process(es) {', '.join(map(str, alive))} run in this folder"
    else:
        for lock in locks:
            lock.unlink(missing_ok=True)
        print(f"quantbench: removed {len(locks)} lock(s) left by a Snakemake run that was "
              "killed; its unfinished jobs will be redone", file=sys.stderr)
        return locks
    print(f"quantbench: kept {len(locks)} lock(s) in {Path(workdir) / '.snakemake' / 'locks'}: "
          f"{why}; {UNLOCK_HINT}", file=sys.stderr)
    return []
