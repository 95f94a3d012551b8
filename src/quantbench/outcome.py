"""How a run ended: the measurements that did not succeed, said at the end of the run.

A failed measurement is data (a record with a status, in the tables and the report), so the
DAG goes on; but a run that produced such records says so when it ends, one line each, and
with ``fail_on_error`` an ``error`` record (a bug or a broken set-up, unlike an ``oom``, an
``unsupported`` precision or a ``timeout``, which describe the machine) makes it exit non-zero.
An aggregation that refused records of several runs (``quantbench.runs``) fails its job; its
message, in the job's log, is said again at the end of the run (``refusal``).
Kept light: the Snakefile calls it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from quantbench.records import Status
from quantbench.runs import MixedRunsError

# not_applicable and no_gpu are by design
FAILED = (Status.ERROR, Status.OOM, Status.UNSUPPORTED, Status.TIMEOUT)
FATAL = (Status.ERROR,)


@dataclass(frozen=True)
class Failure:
    model: str
    precision: str
    scenario: str
    status: str
    reason: str

    def line(self) -> str:
        reason = " ".join((self.reason or "no reason given").split())
        return (f"  {self.model} {self.precision} {self.scenario}: {self.status}: "
                f"{reason[:300]}")


def failures(paths) -> list[Failure]:
    """The failed measurements among the records at ``paths`` (absent ones are skipped)."""
    found = []
    for path in paths:
        try:
            rec = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if rec.get("status") in FAILED:
            found.append(Failure(rec.get("model", "?"), rec.get("precision", "?"),
                                 rec.get("kind", "?"), rec["status"], rec.get("reason") or ""))
    return found


def fail_on_error(setting: bool | None, environ=os.environ) -> bool:
    """The config's switch; unset, it is on where the environment says CI (as CI services do)."""
    if setting is not None:
        return setting
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def end_of_run(paths, *, fatal: bool) -> str | None:
    """Print one line per failed measurement; return the reason the run must fail (an error
    record while ``fatal``), or None."""
    import sys

    failed = failures(paths)
    if not failed:
        return None
    print(f"quantbench: {len(failed)} measurement(s) did not succeed (their records say why; "
          "the tables and the report show them):", file=sys.stderr)
    for failure in failed:
        print(failure.line(), file=sys.stderr)
    errors = [f for f in failed if f.status in FATAL]
    if fatal and errors:
        return (f"{len(errors)} measurement(s) ended in an error record and fail_on_error is on "
                "(set fail_on_error: false to keep them as data)")
    return None


def log_size(path) -> int:
    """How much of a job's log is there now (0 for none): what an earlier run wrote."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def refusal(path, *, start: int = 0) -> str | None:
    """The refusal of records of several runs that a job wrote to its log ``path`` during this
    run (after byte ``start``, the log's size when the run began; from the beginning where the
    log is shorter now), or None."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(start if start <= size else 0)
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    at = text.rfind(f"{MixedRunsError.__name__}: ")
    return text[at:].strip() if at >= 0 else None
