"""The real Snakefile on a tiny config in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PRECISIONS = ["fp32", "bnb-int8", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m"]

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, config: Path | None = None):
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--cores", "2"]
    if config is not None:
        cmd += ["--configfile", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, cwd=workdir)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, without its total."""
    lines = output.splitlines()
    counts = {}
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("total", None)
    return counts


def write_config(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump(overrides))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model, converter, sample_text):
    work = tmp_path_factory.mktemp("wf")
    cfg = write_config(
        work / "tiny.yaml",
        models={"tiny": {"source": "local", "path": str(tiny_model)}},
        precisions=PRECISIONS,
        dataset={"name": "file", "path": str(sample_text)},
        device="cpu",
        threads=2,
        latency={"prompt_tokens": [32], "new_tokens": 8, "warmup_runs": 1, "measured_runs": 3},
        perplexity={"context_length": 64, "max_windows": 4},
        generation={"max_new_tokens": 6, "prompts": ["The river", "Bread is"]},
        converter={"source": str(converter)},
    )
    res = snakemake(work, config=cfg)
    assert res.returncode == 0, res.stderr[-4000:]
    return work, cfg


def test_pipeline_writes_every_output(run_dir):
    work, _ = run_dir
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert sorted(summary["precision"]) == sorted(PRECISIONS)
    assert (summary["status"] == "ok").all(), summary[["precision", "reason"]]
    for col in ("size_mib", "load_s", "prefill_ms", "decode_tok_s", "peak_mem_mib", "ppl"):
        assert summary[col].notna().all() and (summary[col] > 0).all(), col
    ppl = summary.set_index("precision")["ppl"]
    assert abs(ppl["gguf-f16"] / ppl["fp32"] - 1) < 0.005
    for fig in ("perplexity", "decode_throughput", "memory"):
        assert (work / "results" / "figures" / f"{fig}.html").stat().st_size > 1000
        assert (work / "results" / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
    report = (work / "results" / "report.md").read_text()
    assert "## Findings" in report and "gguf-q4_k_m" in report
    profile = json.loads((work / "results" / "tiny" / "profile" / "fp32.json").read_text())
    assert profile["status"] == "no_gpu"
    assert not list(work.rglob("*.partial"))


def test_second_run_has_nothing_to_do(run_dir):
    work, cfg = run_dir
    start = time.perf_counter()
    res = snakemake(work, config=cfg)
    elapsed = time.perf_counter() - start
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr
    assert elapsed < 30  # generous: a cold interpreter on a loaded 2-core machine


def test_forcing_one_precision_reruns_only_its_jobs(run_dir):
    work, cfg = run_dir
    target = "results/tiny/latency/gguf-q8_0.json"
    res = snakemake(work, "-n", "--forcerun", target, config=cfg)
    assert res.returncode == 0
    assert job_counts(res.stdout + res.stderr) == {
        "benchmark_latency": 1, "aggregate_results": 1, "plot_results": 1, "render_report": 1,
        "all": 1,
    }


@pytest.mark.parametrize(("overrides", "message"), [
    ({"precisions": ["fp32", "fp33"]}, "config key 'precisions': unknown precision(s) 'fp33'; "
                                       "allowed: fp32"),
    ({"precisions": ["fp32"], "latncy": {}}, "config key 'latncy' is not known; allowed here: "
                                             "models, precisions"),
    ({"precisions": ["fp32"], "models": {"m": {"source": "local", "path": "/no/such/dir"}}},
     "config key 'models.m.path': model folder '/no/such/dir' does not exist"),
    ({"precisions": ["fp32"], "latency": {"new_tokens": 0}}, "0 is less than the minimum of 1"),
    ({"precisions": ["fp32"], "report": {"quality_budget": 1}},
     "config key 'report.quality_budget' is not known; allowed here: quality_budget_pct"),
])
def test_bad_config_fails_before_any_job(tmp_path, overrides, message):
    cfg = {"models": {"m": {"source": "embedded"}}, **overrides}
    res = snakemake(tmp_path, "-n", config=write_config(tmp_path / "bad.yaml", **cfg))
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()
