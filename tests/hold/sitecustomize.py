"""Test aid: hold a process at the moment it would publish a chosen output.

On PYTHONPATH with ``QUANTBENCH_TEST_HOLD=<path suffix>`` and ``QUANTBENCH_TEST_HOLD_FLAG=<file>``
set, any process of the run (a Snakemake job, its script) that is about to rename a file onto a
path ending in the suffix writes its pid to the flag file and waits there until it is killed. A
test that kills the run once the flag exists kills the job at a point it provably has not
passed, whatever the machine's speed: its measurement is done, its result not yet written.
"""

import os
import time

_SUFFIX = os.environ.get("QUANTBENCH_TEST_HOLD")
_FLAG = os.environ.get("QUANTBENCH_TEST_HOLD_FLAG")


def _holding(publish):
    def wrapper(src, dst, *args, **kwargs):
        if os.fspath(dst).endswith(_SUFFIX):
            with open(_FLAG + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            publish(_FLAG + ".tmp", _FLAG)
            while True:
                time.sleep(3600)
        return publish(src, dst, *args, **kwargs)

    return wrapper


if _SUFFIX and _FLAG:
    os.replace = _holding(os.replace)
    os.rename = _holding(os.rename)
