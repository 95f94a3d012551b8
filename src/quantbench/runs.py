"""One run per report: which invocation of the workflow made a record, and whether a report's
records were measured by one code on one machine.

A run id names one invocation of the workflow. The Snakefile makes a new one when it starts
(``start``) and hands it to every job through the environment (``RUN_ID_VARIABLE``); each record
keeps, in its provenance, the run id of the invocation that made it. Records that a later
invocation reused keep theirs: the tables' ``run_id`` says which records were measured together.
A record made before run ids were recorded, or outside the workflow, gets one from its code and
machine (``run_ids``): records of one code on one machine share it.

A report compares the records of one run: one commit (a copy of the tree without git metadata:
one source hash), a clean tree, one machine. "The run" is the code and machine of the newest
record (the latest measurement is what the checkout measures now; older ones are the stale
ones); ``check_one_run`` refuses, naming them, the records of another commit, of a modified
tree or of another machine, unless mixing them is allowed (``report.allow_mixed_runs``).

A machine is its kind of hardware, as the records describe it: the host's CPU model and CPU
count, and the GPU's name where the record ran on one (a CPU job on a GPU host names none and
agrees with any). Not the host name (a container's or a cloud VM's is arbitrary, and a cluster
runs one invocation's jobs on several identical nodes) nor the card's UUID (one run measures on
several cards of a multi-GPU host).

Kept light (no pandas): the Snakefile imports it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from quantbench.errors import QuantbenchError

RUN_ID_VARIABLE = "QUANTBENCH_RUN_ID"
SETTING = "report.allow_mixed_runs"


class MixedRunsError(QuantbenchError):
    """Records of another commit, a modified tree or another machine than the run's."""


def new_run_id(now: datetime | None = None) -> str:
    """When the invocation started (UTC, to the second) and six random hex digits (two
    invocations started in the same second differ): ``20261204T005103Z-3fa9c2``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def start(environ: MutableMapping[str, str] | None = None, *, main_process: bool) -> str:
    """This invocation's run id, set in ``environ`` for its jobs: a new one in the workflow's
    main process (an id inherited from another invocation is not this one's), the one the
    environment holds in a job's own process (a cluster job reads the Snakefile again)."""
    environ = os.environ if environ is None else environ
    if main_process or not environ.get(RUN_ID_VARIABLE):
        environ[RUN_ID_VARIABLE] = new_run_id()
    return environ[RUN_ID_VARIABLE]


def current_run_id() -> str | None:
    """The run id of the invocation this process belongs to; None outside the workflow."""
    return os.environ.get(RUN_ID_VARIABLE) or None


def _commit(value) -> str | None:
    return value if isinstance(value, str) and len(value) == 40 else None


@dataclass(frozen=True)
class Origin:
    """Where a record was measured: its code (commit, modified or not, source hash) and its
    machine (CPU model and count, GPU name)."""

    commit: str | None
    dirty: bool | None
    source: str | None
    cpu: str | None
    cpu_count: int | None
    gpu: str | None

    @classmethod
    def of(cls, record: dict) -> Origin:
        prov = record.get("provenance") or {}
        device = prov.get("device") or {}
        return cls(_commit(prov.get("git_commit")), prov.get("git_dirty"),
                   prov.get("source_sha256"), prov.get("cpu"), prov.get("cpu_count"),
                   device.get("gpu_name"))

    def same_code(self, other: Origin) -> bool:
        """One commit (with or without modifications: a modified tree is refused on its own);
        where either has no commit, one source hash."""
        if self.commit and other.commit:
            return self.commit == other.commit
        return self.source == other.source

    def same_machine(self, other: Origin) -> bool:
        return (self.cpu, self.cpu_count) == (other.cpu, other.cpu_count) and (
            self.gpu is None or other.gpu is None or self.gpu == other.gpu)

    def code(self) -> str:
        if self.commit:
            return f"commit {self.commit[:7]}, " + ("modified tree" if self.dirty else "clean tree")
        if self.source:
            return f"no git metadata, source hash {self.source[:12]}"
        return "unknown code"

    def machine(self) -> str:
        cpu = f"{self.cpu or 'unknown CPU'} ({self.cpu_count or '?'} CPUs)"
        return f"{cpu}, {self.gpu}" if self.gpu else cpu


def _created(record: dict) -> str:
    return (record.get("provenance") or {}).get("created_utc") or ""


def run_origin(records: Sequence[dict]) -> tuple[int, Origin]:
    """The run the records are reported as: the index of the newest record, and its code and
    machine (the GPU of the newest record that names one, where the newest names none)."""
    newest = max(range(len(records)), key=lambda i: _created(records[i]))
    origin = Origin.of(records[newest])
    if origin.gpu is None:
        named = [r for r in records if Origin.of(r).gpu is not None]
        if named:
            gpu = Origin.of(max(named, key=_created)).gpu
            origin = Origin(origin.commit, origin.dirty, origin.source, origin.cpu,
                            origin.cpu_count, gpu)
    return newest, origin


def _label(record: dict, path) -> str:
    if path is not None:
        return str(path)
    return f"{record.get('model')} {record.get('kind')} {record.get('precision')}"


def departures(record: dict, run: Origin) -> list[str]:
    """How a record departs from the run: a modified tree, another commit (or source), another
    machine; none for a record of the run."""
    origin = Origin.of(record)
    out = []
    if origin.dirty:
        out.append("a modified tree")
    if not origin.same_code(run):
        out.append("another commit" if origin.commit and run.commit else "other code")
    if not origin.same_machine(run):
        out.append("another machine")
    return out


def mixed_runs_message(records: Sequence[dict], paths: Sequence | None = None) -> str | None:
    """Why the records are not of one run, naming each record that departs from the run and how
    (grouped by its code and machine); None where they are of one run."""
    if not records:
        return None
    paths = list(paths) if paths is not None else [None] * len(records)
    newest, run = run_origin(records)
    groups: dict[tuple, list[str]] = {}
    for record, path in zip(records, paths, strict=True):
        how = departures(record, run)
        if how:
            origin = Origin.of(record)
            where = (origin.machine(),) if "another machine" in how else ()
            groups.setdefault((tuple(how), origin.code(), *where), []).append(
                _label(record, path))
    if not groups:
        return None
    lines = [f"the records are not of one run (one commit, a clean tree, one machine). The run "
             f"is the newest record's, {_label(records[newest], paths[newest])} "
             f"({_created(records[newest]) or 'undated'}): {run.code()}, on {run.machine()}. "
             "Not of it:"]
    for (how, *where), names in groups.items():
        lines.append(f"  {' and '.join(how)} ({'; '.join(where)}): {len(names)} record(s): "
                     + ", ".join(names))
    lines.append("Measure them again in one run (delete them, or rerun their jobs with "
                 "snakemake --forcerun), commit the code first where the tree is modified; or "
                 f"set {SETTING}: true to report them together, each row with its commit and run "
                 "id.")
    return "\n".join(lines)


def check_one_run(records: Sequence[dict], paths: Sequence | None = None, *,
                  allow_mixed: bool = False) -> None:
    """Raise ``MixedRunsError`` naming the records of another commit, a modified tree or
    another machine than the run's (``mixed_runs_message``), unless ``allow_mixed``."""
    if allow_mixed:
        return
    message = mixed_runs_message(records, paths)
    if message:
        raise MixedRunsError(message)


def run_ids(records: Sequence[dict]) -> list[str | None]:
    """Each record's run id: the one its provenance keeps; for a record without one, the
    earliest time and a hash of the code and machine of the records without one that share
    them (``20261204T005103Z-legacy-1a2b3c4d``)."""
    out: list[str | None] = [(r.get("provenance") or {}).get("run_id") or None for r in records]
    unnamed: dict[Origin, list[int]] = {}
    for i, record in enumerate(records):
        if out[i] is None:
            unnamed.setdefault(Origin.of(record), []).append(i)
    for origin, members in unnamed.items():
        first = min((_created(records[i]) for i in members if _created(records[i])),
                    default="")
        when = (datetime.fromisoformat(first).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
                if first else "undated")
        digest = hashlib.sha256(repr(origin).encode()).hexdigest()[:8]
        for i in members:
            out[i] = f"{when}-legacy-{digest}"
    return out
