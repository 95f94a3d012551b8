"""Run-to-run spread: the latency scenario of one precision in N fresh processes.

    quantbench repeatability PRECISION ARTIFACT TOKENS.npy [--processes 3]
        [--prompt 512 --new 64 --warmup 2 --runs 8 --device auto]

The pipeline's latency jobs measure the same way (``latency.processes``,
``quantbench.scenarios.latency.run_latency``): each process loads the model anew. Prints every
process's decode and prefill throughput, the coefficient of variation across processes (target
for decode: <= 2 %) and the interval of decode speed over the processes.
"""

from __future__ import annotations

import argparse
import statistics

from quantbench.records import Status
from quantbench.scenarios.latency import run_latency


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
    rec = run_latency("repeat", a.precision, a.artifact, a.tokens, prompt_tokens=[a.prompt],
                      new_tokens=a.new, warmup_runs=a.warmup, measured_runs=a.runs,
                      processes=a.processes, device=a.device)
    decode = []
    for proc in rec.details["processes"]:
        point = next(iter(proc.get("points") or []), {})
        if proc["status"] != Status.OK or point.get("status") != Status.OK:
            print(f"process {proc['process']}: {proc['status']}: "
                  f"{proc['reason'] or point.get('reason')}")
            return 1
        decode.append(point["decode_tok_s"])
        print(f"process {proc['process']}: decode {point['decode_tok_s']:.2f} tok/s "
              f"(within-process CV {100 * point['decode_cv']:.2f} %), prefill "
              f"{point['prefill_tok_s']:.1f} tok/s")
    cv = statistics.stdev(decode) / statistics.mean(decode) if len(decode) > 1 else 0.0
    low, high = rec.metrics["decode_tok_s_ci95"]
    interval = "n/a" if low is None else f"[{low:.2f}, {high:.2f}]"
    print(f"{a.precision}: decode mean {statistics.mean(decode):.2f} tok/s, "
          f"CV across {len(decode)} processes {100 * cv:.2f} %, 95 % interval {interval} "
          f"({rec.details['interval']})")
    return 0
