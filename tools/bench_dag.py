"""How long building the DAG takes: a dry run of M models x P precisions, from a cold process.

    python tools/bench_dag.py [--models 3] [--precisions 15] [--repeats 3] [--model-sheet]

The workflow runs nothing; the time is Snakemake's start, config validation and DAG building
(the Snakefile and rules must not import torch, transformers or llama_cpp). Prints a table.
With --model-sheet the models come from a model sheet (config key model_sheet), which imports
pandas.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from quantbench import precisions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--precisions", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model-sheet", action="store_true", help="give the models in a sheet")
    a = ap.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
