"""What every scenario does around its measurement: resolve the device, load the backend,
and turn a failure into a record with a status instead of a crash."""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from quantbench import precisions
from quantbench.backends import load_backend
from quantbench.device import resolve_device, resolve_threads
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.models import verify_artifact
from quantbench.records import Record, provenance
from quantbench.trackers import gpu_description, nvml_handle

log = logging.getLogger(__name__)


class Job:
    """One scenario run for one (model, precision): device, backend, record."""

    def __init__(self, kind: str, model: str, precision: str, *, device: str, threads: int,
                 settings: dict, overrides: dict | None = None):
        self.precision = precisions.get(precision, overrides)
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

    def load(self, artifact, *, n_ctx: int, batch_size: int = 1):
        self.record.details["artifact"] = verify_artifact(artifact)
        start = time.perf_counter()
        backend = load_backend(self.precision, artifact, device=self.device,
                               threads=self.threads, n_ctx=n_ctx, batch_size=batch_size)
        backend.sync()
        self.record.metrics["load_s"] = time.perf_counter() - start
        self.record.details["backend"] = backend.info()
        if self.device == "cuda":
            self.handle = nvml_handle()
            self.record.provenance["device"].update(gpu_description(self.handle))
        return backend

    @contextmanager
    def failures_recorded(self):
        """Unsupported precisions, out-of-memory and errors become the record's status."""
        try:
            yield
        except UnsupportedError as exc:
            self._fail("unsupported", exc)
        except MemoryError as exc:
            self._fail("oom", exc)
        except QuantbenchError:
            raise  # bad input: the user must fix it, not read it in a table
        except Exception as exc:  # noqa: BLE001 - every other failure is data for the report
            kind = "oom" if "out of memory" in str(exc).lower() else "error"
            self._fail(kind, exc)

    def _fail(self, status: str, exc: BaseException) -> None:
        log.error("%s %s failed: %s", self.record.kind, self.precision.name, exc)
        self.record.status = status
        self.record.reason = f"{type(exc).__name__}: {exc}"[:2000]
        self.record.details["traceback"] = traceback.format_exc(limit=8)


def artifact_size_mib(artifact) -> float:
    p = Path(artifact)
    files = [p] if p.is_file() else [f for f in p.iterdir() if f.suffix == ".safetensors"]
    return sum(f.stat().st_size for f in files) / 2**20
