"""Which device a job runs on, decided without importing torch (NVML is enough)."""

from __future__ import annotations

import os
from pathlib import Path

from quantbench.errors import UnsupportedError


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


def _hidden_by_env() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible is not None and visible.strip() in ("", "-1")


def cuda_problem() -> str | None:
    """Why no CUDA device is usable by this process, or None when one is (NVML sees a GPU and
    CUDA_VISIBLE_DEVICES does not hide every GPU)."""
    if _hidden_by_env():
        return f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} hides every GPU"
    if gpu_count() == 0:
        return "NVML finds no NVIDIA GPU (no driver, or no card on this machine)"
    return None


def require_cuda() -> None:
    """Refuse a cuda job on a machine where it would silently run elsewhere (or fail late)."""
    problem = cuda_problem()
    if problem is not None:
        raise UnsupportedError(f"device is cuda but no CUDA device is usable: {problem}")


def resolve_device(requested: str) -> str:
    if requested == "auto":
        if _hidden_by_env():
            return "cpu"
        return "cuda" if gpu_count() > 0 else "cpu"
    return requested


def resolve_threads(threads: int) -> int:
    return threads if threads > 0 else (len(os.sched_getaffinity(0)) or 1)


def host_memory_mib(meminfo="/proc/meminfo") -> float | None:
    """The machine's RAM (MemTotal of /proc/meminfo), MiB; None where it cannot be read."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None
