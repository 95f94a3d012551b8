"""Call a function in a fresh Python process, as each pipeline job runs: the engine's library
imported first (``quantbench.backends.preload``), this very quantbench on the path, the result
back as JSON. The child's output and log lines go where the caller's go (a job's log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The child imports this very quantbench: its folder's parent goes first on the child's path.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import json, sys
from importlib import import_module
from quantbench.backends import preload
task = json.load(open(sys.argv[1]))
preload(task["precision"])
module, name = task["target"].split(":")
out = getattr(import_module(module), name)(**task["kwargs"])
def plain(obj):  # numpy scalars and arrays as plain numbers and lists
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
with open(sys.argv[2], "w") as fh:
    json.dump(out, fh, default=plain)
"""


class FreshProcessError(RuntimeError):
    """The fresh process died, or returned nothing."""


class FreshProcessTimeout(FreshProcessError):
    """The fresh process ran past its time and was killed."""


def call_fresh(target: str, precision: str, kwargs: dict, *,
               timeout_s: float | None = None) -> dict:
    """``target`` (``"module:function"``) called with ``kwargs`` in a fresh Python process that
    first imports ``precision``'s engine; its return value (JSON). Raises FreshProcessTimeout
    after ``timeout_s`` seconds (the process is killed) and FreshProcessError when it exits
    with an error."""
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="quantbench-fresh-") as tmp:
        task, result = Path(tmp, "task.json"), Path(tmp, "result.json")
        task.write_text(json.dumps({"target": target, "precision": precision,
                                    "kwargs": kwargs}))
        try:
            done = subprocess.run([sys.executable, "-c", CHILD, str(task), str(result)],
                                  env={**os.environ, "PYTHONPATH": path}, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise FreshProcessTimeout(f"killed after {timeout_s:g} s") from exc
        if done.returncode != 0 or not result.is_file():
            raise FreshProcessError(f"exited with status {done.returncode} (its output is in "
                                    "the log)")
        return json.loads(result.read_text())
