"""The contention tracker: other processes' CPU time over a region, the job's own excluded."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantbench.scenarios.contention import ContentionTracker, contended, processes

pytestmark = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc")
BUSY = "while True: pass"
IDLE = "import sys; sys.stdin.read()"  # waits, using no CPU, until its stdin closes


def _cpu_ticks(pid: int) -> int:
    return processes()[pid][1]


def _spend(pid: int, ticks: int) -> None:
    """Return once process ``pid`` has used ``ticks`` more clock ticks of CPU (a condition on
    the process, not a guess at how long it takes)."""
    start = _cpu_ticks(pid)
    while _cpu_ticks(pid) - start < ticks:
        time.sleep(0.01)


@pytest.fixture()
def competitor():
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    yield proc
    proc.kill()
    proc.wait()


def test_a_busy_process_outside_the_job_counts_as_other_work(competitor):
    job = subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE)
    try:
        with ContentionTracker(root_pid=job.pid) as tracker:
            _spend(competitor.pid, 20)
    finally:
        job.communicate()
    assert tracker.metrics["other_cpu_share"] > 0
    assert tracker.other_ticks[competitor.pid] >= 20
    assert job.pid not in tracker.other_ticks
    assert 0 <= tracker.metrics["steal_share"] <= 1 and tracker.metrics["loadavg"] >= 0


def test_the_jobs_own_children_are_not_other_work(competitor):
    # the competitor is this process's child: part of the job when the job is this process
    with ContentionTracker() as tracker:
        _spend(competitor.pid, 20)
    assert competitor.pid not in tracker.other_ticks
    assert all(t["pid"] != competitor.pid for t in tracker.top)


def test_contended_compares_the_shares_with_the_thresholds():
    assert contended(0.4, 0.0) and contended(0.0, 0.1) and contended(0.4, None)
    assert not contended(0.01, 0.0) and not contended(None, None)
    assert not contended(float("nan"), float("nan"))


def test_a_latency_record_says_what_else_used_the_machine(tiny_model, tiny_tokens):
    from quantbench.scenarios.latency import run_latency

    rec = run_latency("tiny", "fp32", tiny_model, tiny_tokens["ids"], prompt_tokens=[16],
                      new_tokens=4, warmup_runs=1, measured_runs=2, device="cpu", threads=1)
    assert rec.status == "ok", rec.reason
    # a region shorter than one clock tick of the machine has no shares (None), else fractions
    shares = [rec.metrics[k] for k in ("other_cpu_share", "steal_share")]
    assert all(s is None for s in shares) or all(0 <= s <= 1 for s in shares), shares
    assert isinstance(rec.details["other_processes"], list)


RENAMING = (
    "import ctypes, os, sys\n"
    "renamed = False\n"
    "while True:\n"
    "    if not renamed and os.path.exists(sys.argv[1]):\n"
    "        ctypes.CDLL(None).prctl(15, b'renamed', 0, 0, 0)  # PR_SET_NAME\n"
    "        renamed = True\n"
)


def test_a_process_renamed_in_the_region_counts_only_its_time_in_it(tmp_path):
    """A process that changes its name (setproctitle, a browser's helpers) is still the same
    process: only the CPU time it used inside the region counts, not its whole life's."""
    flag = tmp_path / "rename"
    proc = subprocess.Popen([sys.executable, "-c", RENAMING, str(flag)])
    job = subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE)
    try:
        _spend(proc.pid, 30)  # before the region
        tracker = ContentionTracker(root_pid=job.pid).start()
        flag.touch()
        while processes()[proc.pid][2] != "renamed":
            time.sleep(0.01)
        _spend(proc.pid, 5)
        tracker.stop()
        assert 0 < tracker.other_ticks[proc.pid] < _cpu_ticks(proc.pid) - 25
    finally:
        job.communicate()
        proc.kill()
        proc.wait()
