"""Send everything a job prints (Python logging and C libraries' stderr) to its log file."""

from __future__ import annotations

import logging
import os
import sys

from quantbench.errors import QuantbenchError


def to_file(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.excepthook = _excepthook


def _excepthook(exc_type, exc, tb) -> None:
    """A QuantbenchError explains itself: its one line, without the stack, ends the log."""
    if issubclass(exc_type, QuantbenchError):
        sys.stderr.write(f"{exc_type.__name__}: {exc}\n")
        sys.stderr.flush()
    else:
        sys.__excepthook__(exc_type, exc, tb)
