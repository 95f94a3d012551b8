"""The real Snakefile on a tiny config in a temporary folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import allow_a_modified_checkout

from quantbench.figures import SUMMARY_FIGURES, read_index

BATCH_FIGURES = ("batch_throughput", "latency_throughput", "batch_speedup", "batch_memory",
                 "batch_roofline")

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PRECISIONS = ["fp32", "bnb-int8", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m"]
RANDOM = {"source": "random", "hidden_size": 256, "num_layers": 2, "num_heads": 4,
          "num_kv_heads": 2, "intermediate_size": 512, "vocab_size": 512}

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
    path.write_text(yaml.safe_dump(allow_a_modified_checkout(overrides)))
    return path


def dry_run_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = []
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append((line.split()[1][:-1], {}))
        elif line.strip().startswith("wildcards:") and jobs:
            pairs = line.split(":", 1)[1].strip().split(", ")
            jobs[-1][1].update(pair.split("=", 1) for pair in pairs)
    return jobs


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model, converter, sample_text):
    import shutil

    work = tmp_path_factory.mktemp("wf")
    # the user's files lie in the working folder under relative paths, so that a copy of the
    # folder is the same run with files of its own (test_editing_a_user_file_reruns_...)
    shutil.copytree(tiny_model, work / "model")
    shutil.copy2(sample_text, work / "text.txt")
    shutil.copytree(converter, work / "converter-src")
    for task in ("qbt_choice", "qbt_lastword"):  # the accuracy stage on two local tasks
        shutil.copytree(REPO / "tests" / "data" / "tasks" / task, work / "tasks" / task)
    cfg = write_config(
        work / "tiny.yaml",
        models={"tiny": {"source": "local", "path": "model"}},
        precisions=PRECISIONS,
        dataset={"name": "file", "path": "text.txt"},
        device="cpu",
        threads=2,
        latency={"prompt_tokens": [32], "new_tokens": 8, "warmup_runs": 1, "measured_runs": 3},
        perplexity={"context_length": 64, "max_windows": 4},
        generation={"max_new_tokens": 6, "prompts": ["The river", "Bread is"]},
        converter={"source": "converter-src"},
        tasks=["tasks"],
        accuracy={"limit": 6, "max_length": 256},
    )
    res = snakemake(work, config=cfg)
    assert res.returncode == 0, res.stderr[-4000:]
    return work, cfg


def test_render_makes_the_run_s_accuracy_table_and_section_again(run_dir, tmp_path):
    """quantbench render from the run's results folder reads its accuracy records and items
    too: the same accuracy.csv and the same Task accuracy section as the workflow's."""
    from quantbench import cli

    work, cfg = run_dir
    assert cli.main(["render", str(work / "results"), "--config", str(cfg), "--out",
                     str(tmp_path)]) == 0
    mine, theirs = (pd.read_csv(d / "accuracy.csv") for d in (tmp_path, work / "results"))
    pd.testing.assert_frame_equal(mine, theirs)

    def section(folder):
        return (folder / "report.md").read_text().split("### Task accuracy")[1].split("###")[0]

    assert section(tmp_path) == section(work / "results")


def test_pipeline_writes_every_output(run_dir):
    work, _ = run_dir
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert sorted(summary["precision"]) == sorted(PRECISIONS)
    assert (summary["status"] == "ok").all(), summary[["precision", "reason"]]
    for col in ("size_mib", "load_s", "prefill_ms", "decode_tok_s", "peak_mem_mib", "ppl"):
        assert summary[col].notna().all() and (summary[col] > 0).all(), col
    ppl = summary.set_index("precision")["ppl"]
    assert abs(ppl["gguf-f16"] / ppl["fp32"] - 1) < 0.005
    # one batch size: no figure against the batch; a CPU: no GPU samples to draw
    nvml = [f"nvml_tiny_{p}" for p in PRECISIONS]
    index = read_index(work / "results" / "figures")
    assert index["made"] == [f for f in SUMMARY_FIGURES if f not in BATCH_FIGURES]
    assert index["not_made"] == {**{f: "fewer than two batch sizes measured"
                                    for f in BATCH_FIGURES},
                                 **{f: "no GPU samples (status no_gpu)" for f in nvml}}
    for fig in index["made"]:
        assert (work / "results" / "figures" / f"{fig}.html").stat().st_size > 1000
        assert (work / "results" / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
    for fig in index["not_made"]:
        assert not list((work / "results" / "figures").glob(f"{fig}.*"))
    report = (work / "results" / "report.md").read_text()
    assert "## Findings" in report and "gguf-q4_k_m" in report
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", report)
    assert links == [f"figures/{fig}.png" for fig in index["made"]]
    assert (f"- the GPU time series of {len(nvml)} precisions (tiny_fp32, tiny_bnb-int8, "
            "tiny_gguf-f16, tiny_gguf-q8_0, tiny_gguf-q4_k_m): no GPU samples (status no_gpu)"
            ) in report
    metrics = pd.read_parquet(work / "results" / "metrics.parquet")
    assert metrics["run_id"].nunique() == 1 and set(summary["run_id"]) == set(metrics["run_id"])
    assert set(metrics["precision"]) == set(PRECISIONS)
    trace = json.loads((work / "results" / "tiny" / "gpu" / "fp32.json").read_text())
    assert trace["status"] == "no_gpu"
    assert not list(work.rglob("*.partial"))
    # each record names the checked artefact it measured, and ran under its rule's time limit
    latency = json.loads((work / "results" / "tiny" / "latency" / "gguf-q8_0.json").read_text())
    gguf = json.loads((work / "resources" / "models" / "tiny" / "gguf" / "q8_0.json").read_text())
    assert latency["details"]["artifact"]["sha256"] == {"q8_0.gguf": gguf["sha256"]}
    assert latency["details"]["time_limit_s"] > 0
    # three fresh processes (latency.processes' default), the interval over them
    assert [p["status"] for p in latency["details"]["processes"]] == ["ok"] * 3
    low, high = latency["metrics"]["decode_tok_s_ci95"]
    assert low <= latency["metrics"]["decode_tok_s"] <= high
    # every precision's accuracy on both tasks, paired with the reference's answers
    assert (summary["accuracy_items"] == 12).all() and summary["accuracy"].between(0, 1).all()
    others = summary[summary["precision"] != "fp32"]
    assert others["acc_change_pp"].notna().all() and others["flip_rate_pct"].notna().all()
    tasks = pd.read_csv(work / "results" / "accuracy.csv")
    assert set(tasks["task"]) == {"qbt_choice", "qbt_lastword", "all tasks"}
    assert "## Task accuracy" in report
    items = (work / "results" / "tiny" / "accuracy" / "gguf-q8_0.items.jsonl").read_text()
    assert len(items.splitlines()) == 12


def job_intervals(work: Path) -> list[tuple[str, float, float]]:
    """(rule, start, end) of every job of a run, from Snakemake's own metadata records (one per
    output file; a job's outputs share its times)."""
    jobs = set()
    for path in (work / ".snakemake" / "metadata").iterdir():
        meta = json.loads(path.read_text())
        if meta.get("starttime") and meta.get("endtime"):
            jobs.add((meta["rule"], meta["starttime"], meta["endtime"]))
    return sorted(jobs, key=lambda job: job[1])


def test_nothing_runs_beside_a_timed_cpu_job(run_dir):
    """The run used --cores 2 with threads 2: a latency, machine-ceiling or decode-limit job
    had the CPU to itself, from its start to its end."""
    work, _ = run_dir
    jobs = job_intervals(work)
    timed = [job for job in jobs
             if job[0] in ("benchmark_latency", "measure_machine", "measure_decode_limit")]
    assert len(timed) == len(PRECISIONS) + 2  # one model: one decode limit
    assert {rule for rule, _, _ in jobs} >= {"quantize_gguf", "evaluate_quality", "convert_gguf"}
    for rule, start, end in timed:
        beside = [other for other in jobs if other[1] < end and other[2] > start
                  and other != (rule, start, end)]
        assert not beside, (rule, beside)
    # each latency record says how many threads it measured with: the configured 2
    latency = json.loads((work / "results/tiny/latency/fp32.json").read_text())
    assert latency["provenance"]["device"]["threads"] == 2


def test_a_timed_cpu_job_reserves_every_core_it_may_use(tmp_path, sample_text):
    """With more cores than threads, a timed CPU job still reserves all of them (so nothing runs
    beside it) and measures with the configured threads; other measuring jobs take `threads`."""
    cfg = write_config(tmp_path / "c.yaml", models={"m": {"source": "embedded"}},
                       precisions=["fp32"], device="cpu", threads=2,
                       dataset={"name": "file", "path": str(sample_text)})
    cmd = [*SNAKEMAKE, "-d", str(tmp_path), "--cores", "6", "-n", "--configfile", str(cfg)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert res.returncode == 0, res.stderr[-3000:]
    threads = {}
    for block in res.stdout.split("\n\n"):
        lines = [ln.strip() for ln in block.splitlines()]
        rule = next((ln.split()[1][:-1] for ln in lines
                     if ln.startswith(("rule ", "localrule "))), None)
        for ln in lines:
            if ln.startswith("threads:"):
                threads[rule] = int(ln.split()[1])
    assert threads["benchmark_latency"] == threads["measure_machine"] == 6
    assert threads["measure_decode_limit"] == 6
    assert threads["evaluate_quality"] == 2


@pytest.mark.parametrize(("edited", "redo"), [
    ("text.txt", {"fetch_dataset": 1, "tokenize_dataset": 1,
                  "evaluate_quality": len(PRECISIONS)}),
    ("model/config.json", {"prepare_model": 1, "convert_gguf": 1}),
    ("converter-src/convert_hf_to_gguf.py", {"fetch_converter": 1, "convert_gguf": 1}),
    ("tasks/qbt_choice/items.jsonl", {"evaluate_tasks": len(PRECISIONS),
                                      "evaluate_quality": None}),
], ids=["dataset", "model", "converter", "task"])
def test_editing_a_user_file_reruns_what_was_made_from_it(run_dir, tmp_path, edited, redo):
    """The same paths, new content: the jobs that read the file (and what depends on them)
    run again; the path alone, as a parameter, would have changed nothing."""
    import shutil

    done, cfg = run_dir
    work = tmp_path / "work"
    shutil.copytree(done, work, symlinks=True)  # copy2 keeps mtimes: nothing to do yet
    before = snakemake(work, "-n", config=cfg)
    assert "Nothing to be done" in before.stdout + before.stderr, before.stdout[-3000:]
    path = work / edited
    path.write_text(path.read_text() + "\n" if edited.endswith(".json") else
                    path.read_text() + "\n# edited\n")
    dry = snakemake(work, "-n", config=cfg)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout + dry.stderr)
    assert {rule: counts.get(rule) for rule in redo} == redo


def test_a_kernel_trace_runs_at_the_configured_point(run_dir, tmp_path):
    """kernels.point reaches the trace job as its point, not as a protocol key of its own."""
    import shutil

    done, cfg = run_dir
    work = tmp_path / "work"
    shutil.copytree(done, work, symlinks=True)
    config = yaml.safe_load(cfg.read_text())
    config["latency"]["batch_sizes"] = [1, 2]
    config["kernels"] = {"enabled": True, "steps": 2, "point": {"batch_size": 2}}
    traced = write_config(work / "traced.yaml", **config)
    res = snakemake(work, "-p", "results/tiny/kernels/fp32.json", config=traced)
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((work / "results/tiny/kernels/fp32.json").read_text())
    assert record["status"] == "ok", record["reason"]
    assert record["details"]["point"] == {"prompt_tokens": 32, "batch_size": 2,
                                          "context_depth": 0}


@pytest.mark.parametrize(("switch", "exit_nonzero"), [("False", False), ("True", True)])
def test_a_run_ends_by_naming_its_failed_measurements(run_dir, tmp_path, switch, exit_nonzero):
    """A run whose records include an error ends with one line per failed measurement; with
    fail_on_error it exits non-zero, without it the error stays data."""
    import shutil

    done, cfg = run_dir
    work = tmp_path / "work"
    shutil.copytree(done, work, symlinks=True)
    record = work / "results/tiny/quality/gguf-q4_k_m.json"
    stat = record.stat()
    data = json.loads(record.read_text())
    data.update(status="error", reason="RuntimeError: the kernel failed")
    record.write_text(json.dumps(data))
    os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # nothing downstream reruns
    target = "results/tiny/gpu/fp32.json"  # a quick job, so that the run has an end
    cmd = [*SNAKEMAKE, target, "-d", str(work), "--cores", "2", "--configfile", str(cfg),
           "--config", f"fail_on_error={switch}", "--forcerun", target]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert "1 measurement(s) did not succeed" in res.stderr, res.stderr[-3000:]
    assert "  tiny gguf-q4_k_m quality: error: RuntimeError: the kernel failed" in res.stderr
    assert "no_gpu" not in res.stderr.split("did not succeed")[1]  # by design, not a failure
    assert (res.returncode != 0) is exit_nonzero
    if exit_nonzero:
        assert "ended in an error record and fail_on_error is on" in res.stderr


def test_records_of_another_run_fail_the_run_naming_them_unless_allowed(run_dir, tmp_path):
    """A record of another commit among the run's: the aggregation fails before any table (none
    is left), and the run exits non-zero ending with the message that names the record; with
    report.allow_mixed_runs the tables are written and the row carries its commit. A job of a
    later invocation records that invocation's run id, the records it reused keep theirs."""
    import re
    import shutil

    done, cfg = run_dir
    work = tmp_path / "work"
    shutil.copytree(done, work, symlinks=True)
    made = {}
    for path in sorted((work / "results").glob("*/*/*.json")):
        data = json.loads(path.read_text())
        made[path.relative_to(work).as_posix()] = data["provenance"]["run_id"]
        data["provenance"]["git_dirty"] = False  # whatever this checkout's state
        if path.relative_to(work).as_posix() == "results/tiny/latency/gguf-q8_0.json":
            data["provenance"].update(git_commit="0" * 40, source_sha256="0" * 64,
                                      created_utc="2020-01-01T00:00:00+00:00")
        path.write_text(json.dumps(data))
    assert len(set(made.values())) == 1  # the records of one invocation share its id
    (first,) = set(made.values())
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", first)

    def run(allowed: str, *more: str):
        cmd = [*SNAKEMAKE, "results/summary.csv", *more, "-d", str(work), "--cores", "2",
               "--configfile", str(cfg), "--config", f"report={{allow_mixed_runs: {allowed}}}"]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})

    res = run("false")
    assert res.returncode != 0
    end = res.stderr[res.stderr.index("quantbench: MixedRunsError: the records are not of one "
                                      "run"):]
    assert ("another commit (commit 0000000, clean tree): 1 record(s): "
            "results/tiny/latency/gguf-q8_0.json\n") in end, res.stderr[-3000:]
    assert "report.allow_mixed_runs: true" in end
    tables = ("summary.csv", "points.csv", "metrics.csv", "metrics.parquet", "kernels.csv")
    assert not [t for t in tables if (work / "results" / t).exists()]
    assert not list((work / "results").glob(".*.tmp"))

    trace = "results/tiny/gpu/fp32.json"  # a quick job, measured again by this invocation
    res = run("true", trace, "--forcerun", trace)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = pd.read_csv(work / "results" / "summary.csv").set_index("precision")
    assert summary.loc["gguf-q8_0", "git_commit"] == "0" * 40
    assert summary.drop(index="gguf-q8_0")["git_commit"].nunique() == 1
    points = pd.read_csv(work / "results" / "points.csv").set_index("precision")
    assert points.loc["gguf-q8_0", "git_commit"] == "0" * 40
    again = json.loads((work / trace).read_text())["provenance"]["run_id"]
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", again) and again != first
    assert set(summary["run_id"]) == {first}  # the latency records were reused


def test_snakemake_report_shows_the_figures_with_their_captions(run_dir):
    work, cfg = run_dir
    res = snakemake(work, "--report", str(work / "snakemake-report.html"), config=cfg)
    assert res.returncode == 0, res.stderr[-4000:]
    html = (work / "snakemake-report.html").read_text()
    captions = REPO / "workflow" / "report"
    index = read_index(work / "results" / "figures")
    for name in index["made"]:  # each figure made, with its own caption
        first_words = " ".join((captions / f"{name}.rst").read_text().split()[:4])
        assert first_words in html and f"{name}.png" in html, name
    for name in index["not_made"]:  # no GPU samples, one batch size
        assert f"{name}.png" not in html, name
    assert "snakemake.params" not in html  # the reference named in the captions: fp32
    assert "one model, many precisions, one measurement harness" in html  # workflow.rst


def test_second_run_has_nothing_to_do(run_dir):
    work, cfg = run_dir
    res = snakemake(work, config=cfg)
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr  # its speed: make bench-pipeline


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
                                             "models, model_sheet, precisions"),
    ({"precisions": ["fp32"], "models": {"m": {"source": "local", "path": "/no/such/dir"}}},
     "config key 'models.m.path': model folder '/no/such/dir' does not exist"),
    ({"precisions": ["fp32"], "latency": {"new_tokens": 0}}, "0 is less than the minimum of 1"),
    ({"precisions": ["fp32"], "models": {"../x": {"source": "embedded"}}},
     "'../x' does not match"),
    ({"precisions": ["fp32"], "models": {"Tiny": {"source": "embedded"},
                                         "tiny": {"source": "embedded"}}},
     "config key 'models': 'Tiny' and 'tiny' differ only in case"),
    ({"precisions": ["fp32"], "report": {"quality_budget": 1}},
     "config key 'report.quality_budget' is not known; allowed here: quality_budget_pct"),
    ({"precisions": ["fp32"], "tasks": ["no_such_task"]},
     "tasks: 'no_such_task' is neither a folder nor a task of lm-eval's registry"),
    ({"precisions": ["fp32"], "tasks": ["tasks/none"]},
     "tasks: 'tasks/none' is not a folder"),
    ({"precisions": ["fp32"], "device": "cuda"},
     "config key 'device': cuda, but no CUDA device is usable on this machine"),
    ({"precisions": ["fp32"], "latency": {"prompt_tokens": [128, 9000]}},
     "config key 'latency.prompt_tokens': 9000 tokens exceed the context window of model m"),
    ({"precisions": ["fp32"], "models": {"r": {**RANDOM, "max_position_embeddings": 256}},
      "latency": {"prompt_tokens": [250], "new_tokens": 32}},
     "config keys 'latency.prompt_tokens' + 'latency.new_tokens': 250 + 32 = 282 tokens exceed "
     "the context window of model r: 256 tokens (models.r.max_position_embeddings)"),
    ({"precisions": ["fp32"], "models": {"r": {**RANDOM, "max_position_embeddings": 256}},
      "latency": {"prompt_tokens": [64]}, "perplexity": {"context_length": 512}},
     "config key 'perplexity.context_length': 512 tokens exceed the context window of model r"),
    ({"precisions": ["fp32"], "models": {"r": {**RANDOM, "num_kv_heads": 3}}},
     "config key 'models.r.num_kv_heads': 3 does not divide num_heads 4"),
    ({"precisions": ["fp32"], "models": {"r": {**RANDOM, "hidden_size": 260}}},
     "config key 'models.r.hidden_size': the head size hidden_size / num_heads = 260 / 4 = 65 "
     "is odd"),
    ({"precisions": ["bnb-nf4"], "precision_settings": {"bnb-nf4": {"compute_dtype": "fp8"}}},
     "config key 'precision_settings.bnb-nf4.compute_dtype': 'fp8' is not one of float32, "
     "float16, bfloat16"),
])
def test_bad_config_fails_before_any_job(tmp_path, monkeypatch, overrides, message):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # no GPU usable, whatever the machine has
    cfg = {"models": {"m": {"source": "embedded"}}, **overrides}
    res = snakemake(tmp_path, "-n", config=write_config(tmp_path / "bad.yaml", **cfg))
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_model_listed_twice_fails_before_any_job(tmp_path):
    cfg = tmp_path / "twice.yaml"
    cfg.write_text("models:\n  m: {source: embedded}\n  m: {source: embedded}\n"
                   "precisions: [fp32]\n")
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode != 0
    assert "key 'm' is given twice (lines 2 and 3)" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_unwritable_results_folder_fails_before_any_job(tmp_path):
    (tmp_path / "results").write_text("a file where the results folder should be")
    cfg = write_config(tmp_path / "c.yaml", models={"m": {"source": "embedded"}},
                       precisions=["fp32"])
    res = snakemake(tmp_path, config=cfg)
    assert res.returncode != 0
    assert "output folder" in res.stderr and "results cannot be created" in res.stderr
    assert (tmp_path / "results").is_file() and not (tmp_path / "resources").exists()
    assert not (tmp_path / "logs").exists()


def test_every_output_stays_in_the_output_folders(tmp_path, sample_text):
    """Odd but legal model names and a text file outside the project write nothing outside
    results/, resources/, logs/ and benchmarks/."""
    work = tmp_path / "project"
    work.mkdir()
    cfg = write_config(work / "c.yaml", models={"a..b": {"source": "embedded"},
                                                "x.-_y": {"source": "embedded"}},
                       precisions=["fp32", "gguf-q8_0"],
                       dataset={"name": "file", "path": str(sample_text)})
    res = snakemake(work, "--summary", config=cfg)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [ln.split("\t") for ln in res.stdout.splitlines()[1:] if "\t" in ln]
    paths = [r[0] for r in rows] + [f for r in rows for f in r[3].split(",") if f != "-"]
    assert len(rows) > 20 and any("a..b" in p for p in paths)
    for path in paths:
        inside = (work / path).resolve().relative_to(work.resolve())
        assert inside.parts[0] in ("results", "resources", "logs", "benchmarks"), path


HOLD = REPO / "tests" / "hold"  # sitecustomize.py: holds a job where it would publish an output


def hold_env(suffix: str, flag: Path) -> dict[str, str]:
    """The environment of a run whose job stops for good just before it renames its result onto
    a path ending in ``suffix`` (tests/hold/sitecustomize.py), having written ``flag``."""
    return {**os.environ, "PYTHONPATH": f"{HOLD}{os.pathsep}{REPO / 'src'}",
            "QUANTBENCH_TEST_HOLD": suffix, "QUANTBENCH_TEST_HOLD_FLAG": str(flag)}


def wait_for(path: Path, proc: subprocess.Popen, patience_s: float = 600) -> None:
    """Until ``path`` exists; a run that ends first, or a hang past ``patience_s`` (a guard
    against a hung test, not a timing), fails the test."""
    deadline = time.monotonic() + patience_s
    while not path.exists():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {path.name}"
        assert time.monotonic() < deadline, f"no {path.name} after {patience_s} s"
        time.sleep(0.05)


DOWNSTREAM = ["results/summary.csv", "results/metrics.csv", "results/figures/*",
              "results/report.md"]


@pytest.mark.parametrize(("held", "unfinished", "redo"), [
    ("latency/gguf-q8_0.json", ["results/tiny/latency/gguf-q8_0.json"],
     {"benchmark_latency": 1}),
    ("gguf/f16.gguf", ["resources/models/tiny/gguf/*", "results/tiny/*/gguf-*"],
     {"convert_gguf": 1, "quantize_gguf": 2, "benchmark_latency": 3, "evaluate_quality": 3,
      "evaluate_tasks": 3, "trace_gpu": 3}),
], ids=["benchmark", "conversion"])
def test_kill_9_mid_job_then_next_run_redoes_exactly_the_unfinished_work(
        run_dir, tmp_path, held, unfinished, redo):
    """A run is SIGKILLed (Snakemake and its jobs) while a benchmark or the GGUF conversion
    runs, at the last moment before the job publishes its output (the job is held there, so the
    kill never races the machine's speed): the next run schedules that job and what depends on
    it, nothing else."""
    import shutil
    import signal

    done, cfg = run_dir
    work = tmp_path / "work"
    shutil.copytree(done, work, symlinks=True)  # copy2 keeps mtimes: only changed jobs rerun
    for pattern in unfinished + DOWNSTREAM:  # where a run that reached this job stands
        for path in work.glob(pattern):
            path.unlink()
    kept = {p: p.read_bytes() for p in work.glob("results/tiny/*/*") if p.is_file()}
    cmd = [*SNAKEMAKE, "-d", str(work), "--cores", "2", "--configfile", str(cfg)]
    flag = tmp_path / "held"
    proc = subprocess.Popen(cmd, cwd=work, env=hold_env(held, flag), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(flag, proc)  # the job has measured (or converted) and not yet published
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for pattern in unfinished:  # nothing of the killed job looks finished
        assert not [p for p in work.glob(pattern) if not p.name.endswith(".partial")], pattern
    locks = sorted((work / ".snakemake" / "locks").glob("*.lock"))
    assert locks  # the killed run's
    # a cluster job parses the Snakefile on a node where the run holding the locks is not
    # visible: a job-mode parse never removes them
    job_mode = snakemake(work, "-n", "--mode", "remote", config=cfg)
    assert job_mode.returncode == 0, job_mode.stderr[-3000:]
    assert sorted((work / ".snakemake" / "locks").glob("*.lock")) == locks
    # a command that only names .snakemake does not pass for a live run
    log = next((work / ".snakemake" / "log").glob("*.snakemake.log"))
    tail = subprocess.Popen(["tail", "-f", str(log.relative_to(work))], cwd=work,
                            stdout=subprocess.DEVNULL)
    try:
        dry = snakemake(work, "-n", config=cfg)
    finally:
        tail.kill()
        tail.wait()
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "removed" in dry.stderr and not list((work / ".snakemake" / "locks").glob("*.lock"))
    assert job_counts(dry.stdout + dry.stderr) == {
        **redo, "aggregate_results": 1, "plot_results": 1, "render_report": 1, "all": 1,
    }
    if not held.startswith("latency/"):
        return  # the conversion's redo is the whole GGUF branch: its dry run is the proof
    res = snakemake(work, config=cfg)
    assert res.returncode == 0, res.stderr[-4000:]
    assert json.loads(work.joinpath(unfinished[0]).read_text())["status"] == "ok"
    assert {p: p.read_bytes() for p in kept} == kept  # finished records were reused as they were
    assert not [p for p in work.rglob("*") if p.name.endswith((".partial", ".tmp"))]


MEASURING = ("benchmark_latency", "evaluate_quality", "trace_gpu")
DOWNSTREAM_RULES = {"measure_machine", "aggregate_results", "plot_results", "render_report", "all"}


@pytest.fixture
def two_model_config(tmp_path) -> Path:
    return write_config(tmp_path / "c.yaml",
                        models={"m1": {"source": "embedded"}, "m2.x": {"source": "embedded"}},
                        precisions=PRECISIONS)


def test_the_plot_rule_writes_the_figures_folder(tmp_path, two_model_config):
    """Which figures have data is known only once measured: the rule's output is the folder,
    whose index says what is in it (the captions: test_snakemake_report_shows_the_figures_...)."""
    res = snakemake(tmp_path, "-n", "plot_results", config=two_model_config)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    rule = lines.index("rule plot_results:")
    outputs = next(ln for ln in lines[rule:] if ln.strip().startswith("output:"))
    assert outputs.split(":", 1)[1].strip() == "results/figures"


def test_a_precision_target_schedules_that_precision_only(tmp_path, two_model_config):
    res = snakemake(tmp_path, "-n", "gguf_q8_0", config=two_model_config)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = dry_run_jobs(res.stdout)
    measured = {(rule, wc["model"], wc["precision"]) for rule, wc in jobs if "precision" in wc}
    assert measured == {
        *((rule, model, "gguf-q8_0") for rule in MEASURING for model in ("m1", "m2.x")),
        # upstream: quality is measured against the reference's log-probabilities
        ("evaluate_quality", "m1", "fp32"), ("evaluate_quality", "m2.x", "fp32"),
    }
    ggufs = {(rule, wc.get("outtype") or wc.get("qtype")) for rule, wc in jobs
             if rule in ("convert_gguf", "quantize_gguf")}
    assert ggufs == {("convert_gguf", "f16"), ("quantize_gguf", "q8_0")}  # f16 is its input
    rules = {rule for rule, _ in jobs}
    assert "gguf_q8_0" in rules and not rules & DOWNSTREAM_RULES


@pytest.mark.parametrize("with_twin", [True, False])
def test_a_quantized_kv_precision_is_measured_against_its_f16_kv_twin(tmp_path, with_twin):
    """Its quality job also reads the log-probabilities of the same weights with an f16 KV
    cache (gguf-f16 for gguf-f16-kvq8), where that precision is configured."""
    names = ["fp32", *(["gguf-f16"] if with_twin else []), "gguf-f16-kvq8"]
    cfg = write_config(tmp_path / "c.yaml", models={"m1": {"source": "embedded"}},
                       precisions=names)
    res = snakemake(tmp_path, "-n", "gguf_f16_kvq8", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    quality = {wc["precision"] for rule, wc in dry_run_jobs(res.stdout)
               if rule == "evaluate_quality"}
    assert quality == {"gguf-f16-kvq8", "fp32", *(["gguf-f16"] if with_twin else [])}


def test_a_model_target_schedules_that_model_only(tmp_path, two_model_config):
    res = snakemake(tmp_path, "-n", "model_m2_x", config=two_model_config)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = dry_run_jobs(res.stdout)
    assert {wc["model"] for _, wc in jobs if "model" in wc} == {"m2.x"}
    measured = {(rule, wc["precision"]) for rule, wc in jobs if "precision" in wc}
    assert measured == {(rule, p) for rule in MEASURING for p in PRECISIONS}
    rules = {rule for rule, _ in jobs}
    assert "model_m2_x" in rules and not rules & DOWNSTREAM_RULES


def pretend_finished(workdir: Path, config: Path) -> None:
    """Create every output of the run, all with one mtime, the way a finished run leaves them
    (without Snakemake's metadata: then outputs newer than the rules' code count as current)."""
    res = snakemake(workdir, "--summary", config=config)
    assert res.returncode == 0, res.stderr[-3000:]
    stamp = time.time()
    for row in (ln.split("\t") for ln in res.stdout.splitlines()[1:] if "\t" in ln):
        path = workdir / row[0]
        if row[2] in ("prepare_model", "fetch_converter"):  # directory() outputs
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        os.utime(path, (stamp, stamp))


def test_forcing_a_precision_target_reruns_its_measurements_only(tmp_path, two_model_config):
    pretend_finished(tmp_path, two_model_config)
    assert "Nothing to be done" in snakemake(tmp_path, "-n", config=two_model_config).stdout
    done = precision_targets("--precision", "gguf-q8_0", "--config", str(two_model_config))
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    res = snakemake(tmp_path, "-n", "gguf_q8_0", "--forcerun", *files, config=two_model_config)
    assert res.returncode == 0, res.stderr[-3000:]
    assert job_counts(res.stdout) == {
        "benchmark_latency": 2, "evaluate_quality": 2, "trace_gpu": 2, "gguf_q8_0": 1}
    assert {wc["precision"] for _, wc in dry_run_jobs(res.stdout) if wc} == {"gguf-q8_0"}


@pytest.mark.parametrize("enabled", [None, True, False])
def test_kernel_traces_are_scheduled_only_when_enabled(tmp_path, enabled):
    """auto (unset) is off on the CPU; true traces every transformers-side precision (none of
    llama.cpp's), for the run, the precision targets and the rerun tool alike."""
    cfg = write_config(tmp_path / "c.yaml", models={"m1": {"source": "embedded"}},
                       precisions=PRECISIONS, device="cpu",
                       **({} if enabled is None else {"kernels": {"enabled": enabled}}))
    traced = {"fp32", "bnb-int8"} if enabled else set()
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = dry_run_jobs(res.stdout)
    assert {wc["precision"] for rule, wc in jobs if rule == "trace_kernels"} == traced
    res = snakemake(tmp_path, "-n", "bnb_int8", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {wc["precision"] for rule, wc in dry_run_jobs(res.stdout)
            if rule == "trace_kernels"} == traced & {"bnb-int8"}
    files = precision_targets("--precision", "bnb-int8", "--config", str(cfg)).stdout.split()
    assert ("results/m1/kernels/bnb-int8.json" in files) == bool(enabled)


def precision_targets(*args: str) -> subprocess.CompletedProcess:
    """``quantbench targets ARGS`` (what ``make rerun`` runs) with this checkout's code."""
    return subprocess.run([sys.executable, "-m", "quantbench", "targets", *args],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def test_rerun_targets_select_a_model_a_precision_or_both(two_model_config):
    cfg = ("--config", str(two_model_config))
    model = precision_targets("--model", "m2.x", *cfg).stdout.split()
    assert len(model) == 3 * len(PRECISIONS)
    assert all(f.startswith("results/m2.x/") for f in model)
    both = precision_targets("--model", "m1", "--precision", "gguf-q8_0", *cfg).stdout.split()
    assert both == [f"results/m1/{k}/gguf-q8_0.json" for k in ("latency", "quality", "gpu")]
    bad = precision_targets("--model", "m3", *cfg)
    assert bad.returncode == 2 and "model 'm3' is not in" in bad.stderr and "m1, m2.x" in bad.stderr
    assert precision_targets(*cfg).returncode == 2  # neither named


def test_model_names_with_the_same_target_fail_before_any_job(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", precisions=["fp32"],
                       models={"a.b": {"source": "embedded"}, "a-b": {"source": "embedded"}})
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode != 0
    assert "models 'a-b' and 'a.b' would both get the target rule 'model_a_b'" in (
        res.stdout + res.stderr)
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def write_sheet(path: Path, *rows: str) -> Path:
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


def test_a_model_sheet_adds_its_models_to_the_configs(tmp_path):
    sheet = write_sheet(tmp_path / "models.tsv",
                        "name\tsource\thidden_size\tnum_layers\tnum_heads\tnum_kv_heads"
                        "\tintermediate_size\tvocab_size\ttrust_remote_code",
                        "sheet-a\tembedded\t\t\t\t\t\t\tfalse",
                        "sheet-b\trandom\t64\t1\t4\t2\t128\t512\t")
    cfg = write_config(tmp_path / "c.yaml", models={"conf": {"source": "embedded"}},
                       model_sheet=str(sheet), precisions=["fp32", "gguf-q8_0"])
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = dry_run_jobs(res.stdout)
    measured = {(wc["model"], wc["precision"]) for rule, wc in jobs if rule == "benchmark_latency"}
    assert measured == {(m, p) for m in ("conf", "sheet-a", "sheet-b")
                        for p in ("fp32", "gguf-q8_0")}
    assert snakemake(tmp_path, "-n", "model_sheet_b", config=cfg).returncode == 0  # its target


def test_the_example_model_sheet_is_valid(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", model_sheet=str(REPO / "config/models.example.tsv"),
                       precisions=["fp32"])
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {wc["model"] for _, wc in dry_run_jobs(res.stdout) if "model" in wc} == {
        "smollm2-360m", "tinyllama-shape"}


@pytest.mark.parametrize(("rows", "models", "message"), [
    (["name\tsource", "a\tembedded", "b\tembedded", "a\tembedded"], {},
     "model 'a' is given twice (lines 2 and 4)"),
    (["name\tsource", "a\tembedded"], {"a": {"source": "embedded"}},
     "model 'a' is given twice: in the config's models and in the model sheet"),
    (["name\tsource\tcolour", "a\tembedded\tred"], {},
     "unknown column(s) 'colour'; allowed: name, source, path"),
    (["name\tsource", "a\tembeded"], {}, "'embeded' is not one of ['embedded'"),
    (["name\tsource\tseed", "a\tembedded\tzero"], {}, "'zero' is not of type 'integer'"),
    (None, {}, "config key 'model_sheet': file"),
], ids=["twice-in-sheet", "in-sheet-and-config", "unknown-column", "bad-source", "bad-int",
        "missing-file"])
def test_bad_model_sheet_fails_before_any_job(tmp_path, rows, models, message):
    sheet = tmp_path / "models.tsv"
    if rows is not None:
        write_sheet(sheet, *rows)
    cfg = write_config(tmp_path / "c.yaml", model_sheet=str(sheet), precisions=["fp32"],
                       **({"models": models} if models else {}))
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_imatrix_jobs_are_scheduled_only_for_imatrix_precisions(tmp_path):
    """One calibration and one matrix a model and calibration, one quantization a type that
    uses it, the A/B table only where a type runs with and without a matrix; none of it for a
    run without such a precision."""
    imat = ["gguf-f16", "gguf-q4_k_m", "gguf-q4_k_m-imat", "gguf-iq2_xs"]
    rules = {"locate_llama_tools", "make_calibration", "compute_imatrix",
             "quantize_gguf_imatrix", "compare_imatrix"}
    cfg = write_config(tmp_path / "c.yaml", models={"m1": {"source": "embedded"}},
                       precisions=imat, device="cpu")
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = [(rule, wc) for rule, wc in dry_run_jobs(res.stdout) if rule in rules]
    assert sorted((rule, wc.get("qtype"), wc.get("calibration")) for rule, wc in jobs) == [
        ("compare_imatrix", None, None), ("compute_imatrix", None, "tail"),
        ("locate_llama_tools", None, None), ("make_calibration", None, "tail"),
        ("quantize_gguf_imatrix", "iq2_xs", "tail"), ("quantize_gguf_imatrix", "q4_k_m", "tail")]
    cfg = write_config(tmp_path / "d.yaml", models={"m1": {"source": "embedded"}},
                       precisions=PRECISIONS, device="cpu")
    res = snakemake(tmp_path, "-n", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not rules & {rule for rule, _ in dry_run_jobs(res.stdout)}


def test_the_tools_rule_finds_the_build_script_from_any_working_folder(tmp_path):
    """With imatrix.tools null the rule runs tools/build-llama-tools.sh of the workflow (its
    cached build: tests/test_imatrix_tools.py builds it once) and names the folder holding
    llama-imatrix; the working folder is not the repository (it resolved the script under
    workflow/rules/ once)."""
    import json

    cfg = write_config(tmp_path / "c.yaml", models={"m1": {"source": "embedded"}},
                       precisions=["gguf-f16", "gguf-q4_k_m", "gguf-q4_k_m-imat"], device="cpu")
    # (-p ends --configfile's list, or the target would be read as a second config file)
    res = snakemake(tmp_path, "-p", "resources/llama-tools.json", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    folder = Path(json.loads((tmp_path / "resources/llama-tools.json").read_text())["folder"])
    assert (folder / "llama-imatrix").is_file()


def test_the_onnx_precisions_are_exported_once_and_quantised_from_it(tmp_path):
    """One fp32 export per model, one quantisation per ONNX type, each precision measured from
    its own folder; the default config exports nothing."""
    cfg = write_config(tmp_path / "c.yaml", models={"m": {"source": "embedded"}},
                       precisions=["fp32", "onnx-fp32", "onnx-int8", "onnx-int4"])
    res = snakemake(tmp_path, "-n", "-p", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout)
    assert counts["export_onnx"] == 1 and counts["quantize_onnx"] == 2
    jobs = dry_run_jobs(res.stdout)
    assert {wc["onnx_qtype"] for rule, wc in jobs if rule == "quantize_onnx"} == {"int8", "int4"}
    for kind in ("fp32", "int8", "int4"):
        assert f"resources/models/m/onnx/{kind}" in res.stdout
    (tmp_path / "default").mkdir()
    default = snakemake(tmp_path / "default", "-n")  # config/config.yaml
    assert default.returncode == 0, default.stderr[-3000:]
    assert "export_onnx" not in job_counts(default.stdout)
