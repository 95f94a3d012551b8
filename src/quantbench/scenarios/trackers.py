"""Trackers observe a run without changing it: host memory and NVML (GPU) sampling.

Memory is measured the same way for every backend, and on every device from the end of loading
on (what serving the model holds, not what loading it needed):
- host: this process's current resident set size (/proc/self/statm), sampled on entry, after
  every run and on exit; the process's high-water mark (getrusage) is read separately at the end
  of loading (the load peak: loading can hold a second copy of the weights, e.g. fp32 files
  cast to bf16) and is never the serving figure;
- GPU: this process's memory as NVML reports it, sampled the same way (torch's allocator cannot
  see llama.cpp's allocations, NVML sees both).

``memory_breakdown`` splits the serving figure into what the engine says it holds (weights, KV
cache, compute and output buffers) and the rest (interpreter, libraries, engine bookkeeping).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field

MIB = 2**20


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def peak_rss_mib() -> float:
    """The process's resident high-water mark (VmHWM: since it started, or since the last
    ``reset_peak_rss``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak_rss() -> bool:
    """Restart the high-water mark at the current RSS (Linux >= 4.0: ``clear_refs`` 5), so that
    a later ``peak_rss_mib`` covers only what came after; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


MEMORY_PARTS = ("weights_mib", "kv_cache_mib", "compute_mib", "output_mib")


def memory_breakdown(total_mib: float, parts: dict) -> dict:
    """The engine's parts of ``total_mib`` (those it reports; None where it reports none) and
    ``runtime_mib``, the rest: the interpreter, the libraries, the engine's other allocations.

    On the CPU a buffer counts in the resident set only once its pages are touched, so a
    reserved buffer that is never filled makes the rest smaller (it can be negative)."""
    out = {k: parts.get(k) for k in MEMORY_PARTS}
    out["runtime_mib"] = total_mib - sum(v for v in out.values() if v is not None)
    return out


def nvml_handle():
    """NVML handle of the GPU this process sees as cuda:0, or None without a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.startswith("GPU-"):
        return pynvml.nvmlDeviceGetHandleByUUID(visible)
    index = int(visible) if visible.isdigit() else 0
    if pynvml.nvmlDeviceGetCount() <= index:
        return None
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def gpu_description(handle) -> dict:
    if handle is None:
        return {}
    import pynvml

    def _s(v):
        return v.decode() if isinstance(v, bytes) else v

    return {
        "gpu_name": _s(pynvml.nvmlDeviceGetName(handle)),
        "gpu_uuid": _s(pynvml.nvmlDeviceGetUUID(handle)),
        "driver": _s(pynvml.nvmlSystemGetDriverVersion()),
        "gpu_memory_total_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).total / MIB,
        "power_limit_w": power_limit_w(handle),
    }


def power_limit_w(handle) -> float | None:
    """The power limit the card enforces now (W; the management limit where the driver does not
    say which applies), or None: no phase's mean power can be above it."""
    import pynvml

    for read in (pynvml.nvmlDeviceGetEnforcedPowerLimit, pynvml.nvmlDeviceGetPowerManagementLimit):
        try:
            return read(handle) / 1000  # mW
        except pynvml.NVMLError:
            continue
    return None


def gpu_processes(handle) -> dict[int, float]:
    """PID -> MiB of the compute processes NVML lists on the GPU."""
    import pynvml

    return {p.pid: (p.usedGpuMemory or 0) / MIB
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)}


def total_energy_mj(handle) -> float | None:
    """The card's energy counter (mJ since the driver loaded; Volta and later), or None."""
    import pynvml

    try:
        return float(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except pynvml.NVMLError:
        return None


def own_gpu_mib(handle, pid: int) -> tuple[float, str]:
    """This process's GPU memory and how it was read.

    NVML lists processes by host PID; inside a container our PID differs. Then the lone process
    on the card is us; with several unknown processes, the card's used memory is an upper bound."""
    import pynvml

    procs = gpu_processes(handle)
    if pid in procs:
        return procs[pid], "nvml_process"
    if len(procs) == 1:
        return next(iter(procs.values())), "nvml_lone_process"
    return pynvml.nvmlDeviceGetMemoryInfo(handle).used / MIB, "nvml_device_used"


def foreign_gpu_processes(handle, pid: int) -> list[int]:
    """Other processes on our GPU (a lone unmatched PID is ourselves seen from the host)."""
    procs = gpu_processes(handle)
    if pid in procs or len(procs) > 1:
        return sorted(p for p in procs if p != pid)
    return []


class _Background:
    """Calls ``tick()`` on entry, on exit and, unless ``period_s`` is None, every ``period_s`` in
    a daemon thread while the context is open (a caller may also tick between measurements)."""

    period_s: float | None

    def tick(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.period_s)

    def __enter__(self):
        self.tick()  # one sample at the start and one at the end, whatever the period
        self._stop = threading.Event()
        self._thread = None
        if self.period_s is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.tick()


@dataclass
class MemoryTracker(_Background):
    """This process's GPU memory (NVML) and host RSS: sampled on entry, on exit, whenever the
    caller ticks (the latency scenario ticks after every run, outside the timed region) and, if
    ``period_s`` is set, in a background thread.

    NVML's process list is a slow driver query and sampling it during decode slows the decode
    being measured, the more the faster it samples (the fidelity command's ``--memory-hz``
    measures by how much; the GPU example runs in docs/examples give the figures). Sampling
    between runs loses no peak in practice:
    NVML reports what the process reserved (torch's caching allocator and llama.cpp's buffers
    keep it after a run), not a transient."""

    handle: object = None
    period_s: float | None = None
    peak_gpu_mib: float = 0.0
    peak_rss_sampled_mib: float = 0.0
    gpu_method: str | None = None

    @property
    def serving_mib(self) -> float:
        """The memory held while serving: the GPU's if there is a handle, else host RSS; the
        largest sample, never the process's high-water mark (which includes loading)."""
        return self.peak_gpu_mib if self.handle is not None else self.peak_rss_sampled_mib

    def tick(self) -> float:
        """Sample now; return the sample of the serving figure's device (GPU, else host)."""
        rss = rss_mib()
        self.peak_rss_sampled_mib = max(self.peak_rss_sampled_mib, rss)
        if self.handle is None:
            return rss
        mib, self.gpu_method = own_gpu_mib(self.handle, os.getpid())
        self.peak_gpu_mib = max(self.peak_gpu_mib, mib)
        return mib


@dataclass
class NvmlSampler(_Background):
    """Samples utilisation, power, clocks, temperature and memory at ``hz``; marks phases."""

    handle: object
    hz: float = 50.0
    samples: list[dict] = field(default_factory=list)
    phases: list[dict] = field(default_factory=list)

    def _read(self) -> dict:
        import pynvml

        h = self.handle
        util = pynvml.nvmlDeviceGetUtilizationRates(h)
        return {
            "t": time.perf_counter(),
            "gpu_util_pct": util.gpu,
            "mem_util_pct": util.memory,
            "power_w": pynvml.nvmlDeviceGetPowerUsage(h) / 1000,
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
            "temp_c": pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
            "mem_used_mib": pynvml.nvmlDeviceGetMemoryInfo(h).used / MIB,
            "energy_mj": self.energy_mj(),
        }

    def energy_mj(self) -> float | None:
        return total_energy_mj(self.handle)

    def foreign_processes(self) -> list[int]:
        return foreign_gpu_processes(self.handle, os.getpid())

    @property
    def period_s(self) -> float:
        return 1.0 / self.hz

    def tick(self) -> None:
        self.samples.append(self._read())

    def phase(self, name: str, start: float, end: float, tokens: int) -> None:
        self.phases.append({"phase": name, "start": start, "end": end, "tokens": tokens})

