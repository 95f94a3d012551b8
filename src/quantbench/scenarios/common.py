"""What every scenario does around its measurement: resolve the device, load the backend,
and turn a failure into a record with a status instead of a crash.

A job with a time limit is interrupted by SIGALRM when the limit passes, between two Python
steps (a single native call that never returns is left to the executor's own limit, e.g.
SLURM's, and then treated like a killed job)."""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from quantbench import precisions
from quantbench.artifacts.model import verify_artifact
from quantbench.backends import load_backend
from quantbench.device import resolve_device, resolve_threads
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.records import Record, Status, provenance
from quantbench.scenarios.trackers import gpu_description, nvml_handle

log = logging.getLogger(__name__)
OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def failure_status(exc: Exception) -> Status:
    """The record status of a failure: ``unsupported``, ``oom`` (a MemoryError, or an engine's
    out-of-memory message) or ``error``. Bad input (any other QuantbenchError) is raised again:
    the user must fix it, not read it in a table."""
    if isinstance(exc, UnsupportedError):
        return Status.UNSUPPORTED
    if isinstance(exc, QuantbenchError):
        raise exc
    if isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in OOM_MESSAGES):
        return Status.OOM
    return Status.ERROR


class JobTimeout(BaseException):
    """The job ran past its time limit (not an Exception: a library's ``except Exception``
    must not swallow it)."""


@contextmanager
def time_limit(seconds: float | None):
    """Raise JobTimeout in the main thread once ``seconds`` have passed (None or 0: no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise JobTimeout(f"stopped after {seconds:g} s, the job's time limit")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Job:
    """One scenario run for one (model, precision): device, backend, record."""

    def __init__(self, kind: str, model: str, precision: str, *, device: str, threads: int,
                 settings: dict, overrides: dict | None = None,
                 time_limit_s: float | None = None):
        self.precision = precisions.get(precision, overrides)
        self.time_limit_s = time_limit_s
        self.device = resolve_device(device)
        self.threads = resolve_threads(threads)
        # NVML is opened only once the backend is loaded: llama.cpp's CUDA model load crashed
        # (SIGSEGV) in processes that had queried NVML before it (seen on an H200).
        self.handle = None
        dev = {"kind": self.device, "threads": self.threads}
        self.record = Record(
            kind=kind, model=model, precision=precision, backend=self.precision.backend,
            provenance=provenance({**settings, "precision": self.precision.settings}, dev),
        )

    def load(self, artifact, *, n_ctx: int, batch_size: int = 1, greedy: str = "host",
             all_logits: bool = True):
        self.record.details["artifact"] = verify_artifact(artifact)
        start = time.perf_counter()
        backend = load_backend(self.precision, artifact, device=self.device,
                               threads=self.threads, n_ctx=n_ctx, batch_size=batch_size,
                               greedy=greedy, all_logits=all_logits)
        backend.sync()
        self.record.metrics["load_s"] = time.perf_counter() - start
        self.record.details["backend"] = backend.info()
        if self.device == "cuda":
            self.handle = nvml_handle()
            self.record.provenance["device"].update(gpu_description(self.handle))
        return backend

    @contextmanager
    def failures_recorded(self):
        """Unsupported precisions, out-of-memory, timeouts and errors become the record's
        status."""
        self.record.details["time_limit_s"] = self.time_limit_s
        try:
            with time_limit(self.time_limit_s):
                yield
        except JobTimeout as exc:
            self._fail(Status.TIMEOUT, exc)
        except Exception as exc:  # noqa: BLE001 - every other failure is data for the report
            self._fail(failure_status(exc), exc)

    def _fail(self, status: Status, exc: BaseException) -> None:
        log.error("%s %s failed: %s", self.record.kind, self.precision.name, exc)
        self.record.status = status
        self.record.reason = f"{type(exc).__name__}: {exc or 'no message'}"[:2000]
        self.record.details["traceback"] = traceback.format_exc(limit=8)


def artifact_size_mib(artifact) -> float:
    p = Path(artifact)
    # an HF folder's safetensors, an ONNX folder's graph and its external weights
    files = [p] if p.is_file() else [f for f in p.iterdir()
                                     if f.suffix in (".safetensors", ".onnx", ".data")]
    return sum(f.stat().st_size for f in files) / 2**20

