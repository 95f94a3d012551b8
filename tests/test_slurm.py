"""The real Snakefile through SLURM (profiles/slurm) on a one-node cluster on localhost.

tools/slurm/start-cluster.sh installs and starts the cluster (root only); the tests skip only
where that is impossible (not root, or slurm-wlm/munge cannot be installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import allow_a_modified_checkout

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "slurm"
PRECISIONS = ["fp32", "gguf-q8_0"]
RUN_TIMEOUT_S = 900
# The default workflow profile (profiles/default, single machine) would override the SLURM
# profile's settings key by key, so it is turned off (as the README says).
SNAKEMAKE = [
    sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
    "--profile", str(REPO / "profiles" / "slurm"), "--workflow-profile", "none",
    # a tiny DAG: poll squeue every few seconds, and keep the SLURM logs to assert on
    "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
]
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")

pytestmark = pytest.mark.slurm


# The SLURM executor plugin is an optional extra (pyproject's `slurm`): installed into a folder
# of its own, put on PYTHONPATH only for these runs (and inherited by the SLURM jobs).
PLUGINS = ["snakemake-executor-plugin-slurm==2.8.0",
           "snakemake-executor-plugin-slurm-jobstep==0.6.1", "throttler==1.2.3"]
PLUGIN_DIR = Path.home() / ".cache" / "quantbench" / "slurm-plugin-2.8.0"


def plugin_path() -> Path:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401  (already in this environment)

        return REPO / "src"
    except ImportError:
        pass
    if not (PLUGIN_DIR / "snakemake_executor_plugin_slurm").is_dir():
        tmp = PLUGIN_DIR.with_name(PLUGIN_DIR.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(tmp), *PLUGINS], check=True, timeout=600)
        shutil.rmtree(PLUGIN_DIR, ignore_errors=True)
        tmp.rename(PLUGIN_DIR)
    return PLUGIN_DIR


def env(**extra: str) -> dict[str, str]:
    """SLURM jobs run `python -m snakemake` again: the venv's python must come first on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(plugin_path())]), **extra}


def command(workdir: Path, config: Path, *args: str) -> list[str]:
    return ["timeout", "-s", "KILL", str(RUN_TIMEOUT_S), *SNAKEMAKE, "-d", str(workdir),
            "--configfile", str(config), *args]


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(workdir, config, *args), capture_output=True, text=True,
                          env=env(), cwd=workdir)


def slurm_states(job_ids) -> dict[str, str]:
    """SLURM's view of jobs (finished ones stay listed for slurm.conf's MinJobAge)."""
    out = subprocess.run(["squeue", "-h", "--states=all", "-j", ",".join(job_ids),
                          "-o", "%i|%T"], capture_output=True, text=True, timeout=30).stdout
    return dict(line.split("|") for line in out.split())


def tiny_config(path: Path, tiny_model, converter, sample_text, **latency) -> Path:
    path.write_text(yaml.safe_dump(allow_a_modified_checkout({
        "models": {"tiny": {"source": "local", "path": str(tiny_model)}},
        "precisions": PRECISIONS,
        "dataset": {"name": "file", "path": str(sample_text)},
        "device": "cpu",
        "threads": 2,
        "latency": {"prompt_tokens": [32], "new_tokens": 8, "warmup_runs": 1,
                    "measured_runs": 3, **latency},
        "perplexity": {"context_length": 64, "max_windows": 4},
        "generation": {"max_new_tokens": 6, "prompts": ["The river", "Bread is"]},
        "converter": {"source": str(converter)},
    })))
    return path


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("starting a SLURM cluster needs root")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("no SLURM and no apt-get to install it")
    res = subprocess.run(["bash", str(TOOLS / "start-cluster.sh")], capture_output=True,
                         text=True, timeout=1500)
    if res.returncode == 3:
        pytest.skip(f"could not install slurm-wlm/munge: {res.stderr[-1000:]}")
    assert res.returncode == 0, res.stdout + res.stderr
    started_here = "already running" not in res.stderr
    yield
    if started_here:  # a cluster that was up before the tests stays up
        subprocess.run(["scancel", "--user", "root"], timeout=30)
        subprocess.run(["bash", str(TOOLS / "stop-cluster.sh")], timeout=120)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, tiny_model, converter, sample_text):
    work = tmp_path_factory.mktemp("slurm")
    cfg = tiny_config(work / "tiny.yaml", tiny_model, converter, sample_text)
    start = time.perf_counter()
    res = snakemake(work, cfg)
    print(f"SLURM run: {time.perf_counter() - start:.0f} s")
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-6000:]
    return work, cfg, output


def test_pipeline_runs_through_slurm(slurm_run):
    work, _, output = slurm_run
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert sorted(summary["precision"]) == sorted(PRECISIONS)
    assert (summary["status"] == "ok").all(), summary[["precision", "reason"]]
    assert (summary["decode_tok_s"] > 0).all() and (summary["ppl"] > 0).all()
    report = (work / "results" / "report.md").read_text()
    assert "## Findings" in report and all(p in report for p in PRECISIONS)

    # every job but the local `all` was an sbatch job, and SLURM saw each one complete
    submitted = dict(SUBMITTED.findall(output))
    steps = int(re.findall(r"(\d+) of \1 steps \(100%\) done", output)[-1])
    assert len(submitted) == steps - 1
    assert set(slurm_states(submitted).values()) == {"COMPLETED"}
    logs = work / ".snakemake" / "slurm_logs"
    rules = {Path(log).relative_to(logs).parts[0] for log in submitted.values()}
    assert {"rule_benchmark_latency", "rule_evaluate_quality", "rule_render_report"} <= rules
    for log in submitted.values():  # the job's own Snakemake ran under the jobstep executor
        assert "--executor slurm-jobstep" in Path(log).read_text()
    # sized from the rules: 8 GB for a measurement, the light default elsewhere; no GPU on CPU
    jobs = {Path(log).parent.relative_to(logs).as_posix(): job for job, log in submitted.items()}
    measure = scontrol_job(jobs["rule_benchmark_latency/tiny_fp32"])
    light = scontrol_job(jobs["rule_aggregate_results"])
    assert "mem=8000M" in measure and "mem=2000M" in light
    assert "gres" not in measure + light
    # threads -> --cpus-per-task (the config's 2); a timed job has its node to itself
    quality = scontrol_job(jobs["rule_evaluate_quality/tiny_fp32"])
    assert re.search(r"\bNumCPUs=2\b", quality), quality
    assert "OverSubscribe=NO" in measure and "OverSubscribe=NO" not in quality


def scontrol_job(job: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                          timeout=30).stdout


def test_cancelled_job_leaves_no_result_and_next_run_completes(
        slurm_run, tmp_path, tiny_model, converter, sample_text):
    done, _, _ = slurm_run
    work = tmp_path / "work"
    shutil.copytree(done, work, symlinks=True)  # copy2 keeps mtimes: only changed jobs rerun
    shutil.rmtree(work / ".snakemake" / "slurm_logs")
    target = work / "results" / "tiny" / "latency" / "fp32.json"
    old_hash = json.loads(target.read_text())["provenance"]["config_hash"]
    # another latency protocol: its params changed, so both latency jobs rerun
    cfg = tiny_config(work / "other.yaml", tiny_model, converter, sample_text,
                      new_tokens=12, measured_runs=4)

    # the fp32 job is held where it would publish its record (tests/hold/sitecustomize.py), so
    # the cancel lands while it runs, whatever the machine's speed
    flag = tmp_path / "held"
    held = env(PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "hold"), env()["PYTHONPATH"]]),
               QUANTBENCH_TEST_HOLD="latency/fp32.json", QUANTBENCH_TEST_HOLD_FLAG=str(flag))
    log = (work / "run1.log").open("w")
    proc = subprocess.Popen(command(work, cfg), stdout=log, stderr=subprocess.STDOUT, env=held,
                            cwd=work, start_new_session=True)
    try:
        job = wait_for_running_job("rule_benchmark_latency_wildcards_tiny_fp32", timeout_s=300)
        deadline = time.monotonic() + 600  # a guard against a hung test, not a timing
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        subprocess.run(["scancel", job], check=True, timeout=30)
        assert proc.wait(timeout=RUN_TIMEOUT_S) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        log.close()
    assert slurm_states([job]) == {job: "CANCELLED"}
    assert not target.exists()
    # the job was stopped where it would publish: at most its hidden temporary file is left,
    # which nothing reads as a result and the next write of that record removes
    assert all(p.name.startswith(".fp32.json.") and p.name.endswith(".tmp")
               for p in target.parent.glob("*fp32*"))
    dry = snakemake(work, cfg, "-n")
    assert "output: results/tiny/latency/fp32.json" in dry.stdout  # still to be made

    res = snakemake(work, cfg)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    record = json.loads(target.read_text())
    assert record["status"] == "ok" and record["provenance"]["config_hash"] != old_hash
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert (summary["status"] == "ok").all()
    assert not [p for p in work.rglob("*") if p.name.endswith((".partial", ".tmp"))]


def wait_for_running_job(comment: str, timeout_s: float) -> str:
    """The SLURM id of the running job whose comment (the plugin's rule+wildcards) matches."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"],
                             capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            job, _, job_comment = line.partition("|")
            if job_comment.strip() == comment:
                return job
        time.sleep(0.5)
    raise AssertionError(f"no running SLURM job {comment} after {timeout_s} s")
