"""Wall time of the default pipeline from nothing, of a no-op rerun and of a dry run.

    python tools/bench_pipeline.py [--workdir DIR] [--configfile FILE] [--cores N]

The run goes into a fresh working folder (default: a new temporary one), so nothing is cached
but what lives outside the project (pip's and quantbench's wheel caches). Prints a table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-3000:])
    return elapsed, res.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--configfile", type=Path)
    ap.add_argument("--cores", type=int, default=1)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="quantbench-bench-"))
    base = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
            "--profile", str(REPO / "profiles" / "default"), "--cores", str(args.cores)]
    if args.configfile:
        base += ["--configfile", str(args.configfile.resolve())]
    rows = [("full run", *timed(base)),
            ("no-op rerun", *timed(base)),
            ("dry run (no-op)", *timed(base + ["-n"]))]
    print(f"workdir: {work}")
    print(f"{'what':<18} {'wall s':>9} {'exit':>5}")
    for name, secs, rc in rows:
        print(f"{name:<18} {secs:>9.1f} {rc:>5}")
    return max(rc for _, _, rc in rows)


if __name__ == "__main__":
    sys.exit(main())
