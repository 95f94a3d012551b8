"""One GPU per job on a multi-GPU host.

`snakemake --resources gpu=K` lets at most K GPU jobs run at once but does not say which card
each should use. Each GPU job claims a free card here before CUDA is initialised: an exclusive
lock on one file per card (held until the process ends, released by the kernel even on
kill -9), then CUDA_VISIBLE_DEVICES names that card alone. No two jobs share a card, so no
measurement is contaminated by another. Where a scheduler already chose the card
(CUDA_VISIBLE_DEVICES set, as SLURM does), that choice stands.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from quantbench.device import gpu_count

LOCK_DIR = Path(os.environ.get("QUANTBENCH_GPU_LOCKS", "/tmp/quantbench-gpu-slots"))
_held = []  # lock files stay open (and locked) for the life of the process


def claim_gpu(device: str = "auto", *, timeout_s: float = 3600,
              poll_s: float = 0.5) -> int | None:
    """Claim a card for this process; return its index, or None when there is nothing to do."""
    if device == "cpu" or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return None
    n = int(os.environ.get("QUANTBENCH_GPU_COUNT", 0)) or gpu_count()
    if n == 0:
        return None
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for i in range(n):
            fh = open(LOCK_DIR / f"gpu{i}.lock", "w")  # noqa: SIM115 - kept open on purpose
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _held.append(fh)
            os.environ["CUDA_VISIBLE_DEVICES"] = str(i)
            return i
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {n} after {timeout_s:.0f} s")
        time.sleep(poll_s)
