"""Which device a job runs on, decided without importing torch (NVML is enough)."""

from __future__ import annotations

import os


def gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: no GPU for us
        return 0
    try:
        return pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()


def resolve_device(requested: str) -> str:
    if requested == "auto":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return "cpu"
        return "cuda" if gpu_count() > 0 else "cpu"
    return requested


def resolve_threads(threads: int) -> int:
    return threads if threads > 0 else (len(os.sched_getaffinity(0)) or 1)
