import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# A claimant prints its card, then holds it until its standard input is closed (never for a
# guessed time: the test decides when a card is released).
CLAIM = (
    "import sys\n"
    "from quantbench.gpuslots import claim_gpu\n"
    "print(claim_gpu(timeout_s={timeout}), flush=True)\n"
    "sys.stdin.read()\n"
)


def _start(tmp_path, env_extra, timeout=1):
    code = CLAIM.format(timeout=timeout)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "QUANTBENCH_GPU_COUNT": "2",
           "QUANTBENCH_GPU_LOCKS": str(tmp_path), **env_extra}
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _release(*procs):
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_concurrent_jobs_get_different_cards_and_a_third_waits(tmp_path):
    first, second = _start(tmp_path, {}), _start(tmp_path, {})
    a, b = first.stdout.readline().strip(), second.stdout.readline().strip()
    assert {a, b} == {"0", "1"}
    third = _start(tmp_path, {}, timeout=1)  # both cards stay held while it waits
    _, err = third.communicate(timeout=30)
    assert third.returncode != 0 and "no free GPU among 2" in err
    _release(first, second)
    fourth = _start(tmp_path, {})
    out, _ = fourth.communicate(timeout=30)  # the cards were released when the jobs ended
    assert out.strip() in {"0", "1"}


def test_a_scheduler_choice_stands(tmp_path):
    proc = _start(tmp_path, {"CUDA_VISIBLE_DEVICES": "3"})
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == "None"


def test_a_list_of_visible_cards_is_shared_out(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb"}
    first, second = _start(tmp_path, env), _start(tmp_path, env)
    got = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    assert got == {"GPU-aaa", "GPU-bbb"}
    _release(first, second)
