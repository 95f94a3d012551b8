"""How long the pipeline itself takes: a whole run, a no-op rerun and a dry run (``quantbench
bench-pipeline``), and building the DAG (``quantbench bench-dag``).

    quantbench bench-pipeline [--workdir DIR] [--configfile FILE] [--cores N]

The run goes into a fresh working folder (default: a new temporary one), so nothing is cached
but what lives outside the project (pip's and quantbench's wheel caches). Prints a table.

    quantbench bench-dag [--models 3] [--precisions 15] [--repeats 3] [--model-sheet]

A dry run of M models x P precisions, from a cold process. The workflow runs nothing; the time is
Snakemake's start, config validation and DAG building (the Snakefile and rules must not import
torch, transformers or llama_cpp). Prints a table. With --model-sheet the models come from a
model sheet (config key model_sheet), which imports pandas.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from quantbench import precisions
from quantbench.records import source_tree

REPO = source_tree()


def timed(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-3000:])
    return elapsed, res.returncode


def pipeline_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="quantbench bench-pipeline",
        description="Wall time of the default pipeline from nothing, of a no-op rerun and of a "
                    "dry run.")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--configfile", type=Path)
    ap.add_argument("--cores", type=int, default=1)
    args = ap.parse_args(argv)
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


def dag_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="quantbench bench-dag",
        description="How long building the DAG takes: a dry run of M models x P precisions, "
                    "from a cold process.")
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--precisions", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model-sheet", action="store_true", help="give the models in a sheet")
    a = ap.parse_args(argv)
    names = list(precisions.table())[: a.precisions]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "dag.yaml"
        models = [f"m{i}" for i in range(a.models)]
        config = {"precisions": names}
        if a.model_sheet:
            sheet = Path(tmp) / "models.tsv"
            sheet.write_text("name\tsource\n" + "".join(f"{m}\tembedded\n" for m in models))
            config["model_sheet"] = str(sheet)
        else:
            config["models"] = {m: {"source": "embedded"} for m in models}
        cfg.write_text(yaml.safe_dump(config))
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", tmp,
               "--configfile", str(cfg), "--cores", "1", "-n", "--quiet", "all"]
        times, jobs = [], None
        for _ in range(a.repeats):
            start = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if res.returncode != 0:
                sys.stderr.write(res.stderr[-2000:])
                return 1
            jobs = next((ln.split()[-1] for ln in res.stdout.splitlines()
                         if ln.startswith("total")), jobs)
    given = "sheet" if a.model_sheet else "config"
    print(f"{'models':>6} {'given in':>8} {'precisions':>10} {'jobs':>6} "
          f"{'dry run s (median)':>19} {'min':>6}")
    print(f"{a.models:>6} {given:>8} {len(names):>10} {jobs or '?':>6} "
          f"{statistics.median(times):>19.2f} {min(times):>6.2f}")
    return 0
