"""One GPU per job on a multi-GPU host.

`snakemake --resources gpu=K` lets at most K GPU jobs run at once but does not say which card
each should use. Each GPU job claims a free card here before CUDA is initialised: an exclusive
lock on one file per card (held until the process ends, released by the kernel even on
kill -9), then CUDA_VISIBLE_DEVICES names that card alone. No two jobs share a card, so no
measurement is contaminated by another. Where a scheduler already chose one card
(CUDA_VISIBLE_DEVICES naming one, as SLURM does), that choice stands; where it names several,
the job claims one of those.
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
              poll_s: float = 0.5) -> str | None:
    """Claim a card for this process; return its CUDA_VISIBLE_DEVICES entry, or None when there
    is nothing to choose (CPU job, no GPU, or one card already chosen)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device == "cpu":
        return None
    if visible is not None:
        cards = [c.strip() for c in visible.split(",") if c.strip()]
        if len(cards) <= 1:
            return None
    else:
        n = int(os.environ.get("QUANTBENCH_GPU_COUNT", 0)) or gpu_count()
        cards = [str(i) for i in range(n)]
    if not cards:
        return None
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for card in cards:
            fh = open(LOCK_DIR / f"gpu{card}.lock", "w")  # noqa: SIM115 - kept open on purpose
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _held.append(fh)
            os.environ["CUDA_VISIBLE_DEVICES"] = card
            return card
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {len(cards)} after {timeout_s:.0f} s")
        time.sleep(poll_s)
