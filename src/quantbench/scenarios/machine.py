"""What the machine can do: memory bandwidth and matrix-multiply throughput, measured.

These are the ceilings of the roofline. On a GPU the theoretical memory bandwidth is derived
from NVML (bus width x maximum memory clock x 2 for double data rate) and the achievable one is
measured with a device-to-device copy; on a CPU both come from a measured multi-threaded copy.
Matmul throughput is measured (best of several large matmuls), never taken from a datasheet.
"""

from __future__ import annotations

import time

import torch

from quantbench.device import host_memory_mib, resolve_device, resolve_threads
from quantbench.records import provenance
from quantbench.scenarios.trackers import gpu_description, nvml_handle

GB = 1e9


def _best_seconds(fn, repeats: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth_gb_s(device: torch.device, mib: int, repeats: int = 5) -> float:
    n = mib * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    secs = _best_seconds(lambda: dst.copy_(src), repeats, _sync(device))
    return 2 * src.numel() * 4 / secs / GB  # read + write


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    secs = _best_seconds(lambda: a @ b, repeats, _sync(device))
    return 2 * n**3 / secs / 1e12


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def measure_machine(device: str = "auto", threads: int = 0) -> dict:
    kind = resolve_device(device)
    n_threads = resolve_threads(threads)
    torch.set_num_threads(n_threads)
    handle = nvml_handle() if kind == "cuda" else None
    out = {"device": kind, "threads": n_threads, "host_memory_total_mib": host_memory_mib(),
           **gpu_description(handle)}
    if kind == "cuda":
        import pynvml

        dev = torch.device("cuda:0")
        bus_bits = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
        mem_mhz = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
        out["theoretical_bw_gb_s"] = bus_bits / 8 * mem_mhz * 1e6 * 2 / GB
        out["copy_bw_gb_s"] = copy_bandwidth_gb_s(dev, 1024)
        out["matmul_tflops"] = {"bfloat16": matmul_tflops(dev, torch.bfloat16, 8192),
                                "float16": matmul_tflops(dev, torch.float16, 8192),
                                "float32": matmul_tflops(dev, torch.float32, 8192)}
        out["peak_bw_gb_s"] = out["theoretical_bw_gb_s"]
    else:
        dev = torch.device("cpu")
        out["copy_bw_gb_s"] = copy_bandwidth_gb_s(dev, 512)
        out["matmul_tflops"] = {"float32": matmul_tflops(dev, torch.float32, 2048),
                                "bfloat16": matmul_tflops(dev, torch.bfloat16, 2048)}
        out["peak_bw_gb_s"] = out["copy_bw_gb_s"]
    out["provenance"] = provenance({"device": device, "threads": threads})
    return out
