"""Run-to-run spread: the latency scenario of one precision in N fresh processes.

    quantbench repeatability PRECISION ARTIFACT TOKENS.npy [--processes 3]
        [--prompt 512 --new 64 --warmup 2 --runs 8 --device auto]

Each process loads the model anew (as each pipeline job does). Prints every process's decode and
prefill throughput and the coefficient of variation across processes (target for decode: <= 2 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from quantbench.records import Status

# The child imports this very quantbench: its folder's parent goes first on the child's path.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import json, sys
from quantbench.backends import preload
spec = json.loads(sys.argv[1])
preload(spec["precision"])
from quantbench.scenarios.latency import run_latency
r = run_latency(**spec)
print(json.dumps({"status": r.status, "reason": r.reason, **r.metrics,
                  "points": r.details.get("points", [])}))
"""


def fresh_latency(precision: str, artifact, tokens, **settings) -> dict:
    """quantbench's latency scenario in a fresh Python process, as each pipeline job runs: the
    record's status, reason and metrics, and under ``points`` every operating point measured
    (LatencyPoint dicts). ``settings`` are run_latency's keyword arguments."""
    spec = {"model": "repeat", "precision": precision, "artifact": str(artifact),
            "tokens_path": str(tokens), **settings}
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": path})
    if res.returncode != 0:
        raise RuntimeError(f"latency run of {precision} failed: {res.stderr.strip()[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="quantbench repeatability",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("precision")
    ap.add_argument("artifact")
    ap.add_argument("tokens")
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)
    rows = []
    for i in range(a.processes):
        m = fresh_latency(a.precision, a.artifact, a.tokens, prompt_tokens=[a.prompt],
                          new_tokens=a.new, warmup_runs=a.warmup, measured_runs=a.runs,
                          device=a.device)
        if m["status"] != Status.OK:
            print(f"process {i}: {m['status']}: {m['reason']}")
            return 1
        rows.append(m)
        print(f"process {i}: decode {m['decode_tok_s']:.2f} tok/s (within-process CV "
              f"{100 * m['decode_cv']:.2f} %), prefill {m['prefill_tok_s']:.1f} tok/s")
    decode = [m["decode_tok_s"] for m in rows]
    cv = statistics.stdev(decode) / statistics.mean(decode) if len(decode) > 1 else 0.0
    print(f"{a.precision}: decode mean {statistics.mean(decode):.2f} tok/s, "
          f"CV across {len(decode)} processes {100 * cv:.2f} %")
    return 0
