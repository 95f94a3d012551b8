"""Result records: one JSON document per measurement, with a schema version and provenance.

Records are written atomically (temporary file, then rename) so that a killed job never leaves
a file that looks finished.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path

from quantbench.runs import current_run_id

SCHEMA_VERSION = 1
TRACKED_PACKAGES = ("torch", "transformers", "bitsandbytes", "torchao", "llama_cpp_python",
                    "numpy")


def write_atomic(path: str | os.PathLike, write: Callable, *, binary: bool = False) -> None:
    """Write ``path`` by calling ``write(fh)`` on a temporary file beside it (opened for text,
    or bytes when ``binary``), then rename it onto ``path``: the one way every record, table
    and array is written, so a writer killed half-way never leaves a file that looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a writer killed between writing and renaming left its temporary file: a path has one
    # writer at a time (its job), so any such file is stale
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    write_atomic(path, lambda fh: fh.write(text))


@contextmanager
def atomic_dir(dest: str | os.PathLike):
    """Build a folder under a temporary name; it becomes ``dest`` only if the block succeeds."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def config_hash(obj) -> str:
    """Stable short hash of the settings a result depends on."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _package_versions() -> dict[str, str | None]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# The workflow's own source: what a record's commit, dirty flag and source hash describe.
SOURCE_PATHS = ("src/quantbench", "workflow", "Snakefile")


def source_tree() -> Path:
    """The tree this code runs from: the project folder holding src/quantbench (where the
    package is installed elsewhere, the package folder itself)."""
    package = Path(__file__).resolve().parent
    root = package.parents[1]
    return root if (root / "src" / package.name).resolve() == package else package


def _git(tree: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def _source_files(tree: Path) -> list[Path]:
    paths = [tree / p for p in SOURCE_PATHS if (tree / p).exists()] or [tree]
    files = []
    for path in paths:
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            # links (workflow/scripts/quantbench -> src/quantbench) are not content of their own
            if f.is_file() and not f.is_symlink() and "__pycache__" not in f.parts \
                    and f.suffix != ".pyc":
                files.append(f)
    return files


def source_hash(tree: Path) -> str:
    """SHA-256 over the source files' paths and contents: two runs of the same code agree,
    whether or not their trees have git metadata."""
    h = hashlib.sha256()
    for f in sorted(_source_files(tree), key=lambda f: f.relative_to(tree).as_posix()):
        h.update(f.relative_to(tree).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def source_provenance(tree: str | os.PathLike | None = None) -> dict:
    """The code that ran: ``git_commit`` and ``git_dirty`` (modified or untracked source files)
    of ``tree`` itself, None where the tree has no git metadata of its own (a copy of the
    project: an enclosing repository's commit would describe another tree), and
    ``source_sha256`` of the source files either way."""
    tree = Path(tree) if tree is not None else source_tree()
    top = _git(tree, "rev-parse", "--show-toplevel")
    commit = dirty = None
    if top is not None and Path(top.strip()).resolve() == tree.resolve():
        head = (_git(tree, "rev-parse", "HEAD") or "").strip()
        status = _git(tree, "status", "--porcelain", "--untracked-files=all", "--",
                      *SOURCE_PATHS)
        if len(head) == 40 and status is not None:
            commit, dirty = head, bool(status.strip())
    return {"git_commit": commit, "git_dirty": dirty, "source_sha256": source_hash(tree)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(settings: dict | None = None, device: dict | None = None) -> dict:
    return {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": current_run_id(),  # the invocation of the workflow that made the record
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "packages": _package_versions(),
        **source_provenance(),
        "config_hash": config_hash(settings or {}),
        "device": device or {},
    }


class Status(StrEnum):
    """How a measurement ended. A string (``Status.OK == "ok"``): records hold the plain value,
    and a status read back from JSON or a table compares equal to its member."""

    OK = "ok"
    UNSUPPORTED = "unsupported"  # the precision or engine cannot run on this machine
    OOM = "oom"  # out of memory
    TIMEOUT = "timeout"  # stopped by the job's time limit
    ERROR = "error"  # anything else: a bug or a broken set-up
    NOT_APPLICABLE = "not_applicable"  # by design, e.g. the quality of random weights
    NO_GPU = "no_gpu"  # a GPU measurement on a machine without an NVIDIA GPU


@dataclass
class Record:
    """A measurement of one (model, precision) for one scenario."""

    kind: str  # latency | quality | gpu | model | ...
    model: str
    precision: str
    backend: str
    status: Status = Status.OK
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        self.status = Status(self.status)  # a record read back gets its member again

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2, default=_json_default) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Record:
        return cls(**json.loads(Path(path).read_text()))


def _json_default(obj):
    # numpy scalars and arrays end up in metrics; store them as plain numbers / lists
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
