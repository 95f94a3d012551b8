"""One run per report: records of another commit, a modified tree or another machine are
refused before any table is written, naming them, unless the config allows them; then every row
carries its record's run id and commit, and the report marks comparisons across runs. Each
invocation of the workflow has its own run id."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from quantbench import outcome, records, runs
from quantbench.report.aggregate import aggregate, summary_table
from quantbench.runs import MixedRunsError

A, B = "a" * 40, "b" * 40
XEON, EPYC = "Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC 9654"


def _rec(precision, *, commit=A, dirty=False, source="s" * 64, cpu=XEON, cpu_count=16,
         gpu="NVIDIA H200", created="2026-12-04T01:00:00+00:00", run="20261204T005900Z-aaaaaa",
         kind="latency", decode_tok_s=100.0):
    device = {"kind": "cuda", "gpu_name": gpu} if gpu else {"kind": "cpu"}
    return {"kind": kind, "model": "m", "precision": precision, "backend": "transformers",
            "status": "ok", "reason": None,
            "metrics": {"decode_tok_s": decode_tok_s, "peak_mem_mib": 100.0, "size_mib": 10.0},
            "details": {"points": [{"prompt_tokens": 16, "batch_size": 1, "context_depth": 0,
                                    "decode_tok_s": decode_tok_s}]} if kind == "latency" else {},
            "provenance": {"created_utc": created, "run_id": run, "git_commit": commit,
                           "git_dirty": dirty, "source_sha256": source, "cpu": cpu,
                           "cpu_count": cpu_count, "device": device}}


def _write(tmp_path, recs) -> list:
    paths = []
    for rec in recs:
        path = tmp_path / "results" / rec["model"] / rec["kind"] / f"{rec['precision']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
        paths.append(path)
    return paths


def _aggregate(tmp_path, recs, **kwargs):
    out = tmp_path / "out"
    return aggregate(_write(tmp_path, recs), reference="bf16", summary_path=out / "summary.csv",
                     metrics_path=out / "metrics.csv", parquet_path=out / "metrics.parquet",
                     points_path=out / "points.csv", kernels_path=out / "kernels.csv", **kwargs)


NEWER = "2026-12-04T02:00:00+00:00"
# (what departs, the newest record (the run), the record of another run, what the message says)
DEPARTURES = [
    ("commit", _rec("bf16", created=NEWER), _rec("gguf-q8_0", commit=B),
     "another commit (commit bbbbbbb, clean tree): 1 record(s): "),
    ("modified tree", _rec("bf16", created=NEWER), _rec("gguf-q8_0", dirty=True),
     "a modified tree (commit aaaaaaa, modified tree): 1 record(s): "),
    ("modified tree of another commit", _rec("bf16", created=NEWER),
     _rec("gguf-q8_0", commit=B, dirty=True),
     "a modified tree and another commit (commit bbbbbbb, modified tree): 1 record(s): "),
    ("another GPU", _rec("bf16", created=NEWER), _rec("gguf-q8_0", gpu="NVIDIA H100 80GB HBM3"),
     "another machine (commit aaaaaaa, clean tree; Intel(R) Xeon(R) Platinum 8480+ (16 CPUs), "
     "NVIDIA H100 80GB HBM3): 1 record(s): "),
    ("another host CPU", _rec("bf16", created=NEWER), _rec("gguf-q8_0", cpu=EPYC, cpu_count=64),
     "another machine (commit aaaaaaa, clean tree; AMD EPYC 9654 (64 CPUs), NVIDIA H200): "),
    ("other code without git", _rec("bf16", commit=None, dirty=None, created=NEWER),
     _rec("gguf-q8_0", commit=None, dirty=None, source="t" * 64),
     "other code (no git metadata, source hash tttttttttttt): 1 record(s): "),
]


@pytest.mark.parametrize(("what", "run", "other", "says"), DEPARTURES,
                         ids=[d[0] for d in DEPARTURES])
def test_records_of_another_run_are_refused_naming_them_before_any_table(
        tmp_path, what, run, other, says):
    """A record of another commit, a modified tree or another machine than the newest
    record's: refused, naming the run, the record and how it departs; nothing is written."""
    with pytest.raises(MixedRunsError) as caught:
        _aggregate(tmp_path, [other, run])
    message = str(caught.value)
    assert message.startswith("the records are not of one run (one commit, a clean tree, one "
                              "machine). The run is the newest record's, ")
    assert f"results/m/latency/bf16.json ({NEWER})" in message
    line = next(x for x in message.splitlines() if x.startswith("  "))
    assert line.startswith(f"  {says}"), line
    assert line.endswith("results/m/latency/gguf-q8_0.json")
    assert "bf16.json" not in line  # the run's record is not named as another's
    assert "report.allow_mixed_runs: true" in message
    assert not (tmp_path / "out").exists()  # no table, half-written or whole


@pytest.mark.parametrize(("what", "other"), [
    ("same commit on another card of the same kind", _rec("gguf-q8_0", run="other-run")),
    ("a CPU job on the GPU host", _rec("gguf-q8_0", gpu=None)),
    ("an older invocation of the same code and machine", _rec(
        "gguf-q8_0", run="20261201T000000Z-bbbbbb", created="2026-12-01T00:00:00+00:00")),
    ("a copy without git of the same source", _rec("gguf-q8_0", commit=None, dirty=None)),
])
def test_records_of_one_code_and_machine_are_one_run(tmp_path, what, other):
    """What does not make another run: another invocation (records reused from an earlier
    one), a card of the same kind, a record without a GPU on the GPU host, a copy of the same
    source without git metadata."""
    assert runs.mixed_runs_message([_rec("bf16", created=NEWER), other]) is None
    assert len(_aggregate(tmp_path, [_rec("bf16", created=NEWER), other])) == 2


def test_the_run_is_the_newest_records_and_a_modified_newest_is_refused_too():
    """The run is the newest record's code and machine, whichever order the records come in;
    a modified tree is refused also when it is the newest record's."""
    old, new = _rec("bf16"), _rec("gguf-q8_0", commit=B, created=NEWER)
    for recs in ([old, new], [new, old]):
        message = runs.mixed_runs_message(recs)
        assert "The run is the newest record's, m latency gguf-q8_0" in message
        assert "another commit (commit aaaaaaa, clean tree): 1 record(s): m latency bf16" in message
    dirty = runs.mixed_runs_message([_rec("bf16", dirty=True, created=NEWER)])
    assert "commit aaaaaaa, modified tree, on" in dirty
    assert "a modified tree (commit aaaaaaa, modified tree): 1 record(s): m latency bf16" in dirty


def test_allowed_mixed_runs_give_every_row_its_commit_and_run(tmp_path):
    """With report.allow_mixed_runs the tables are written, and every row of the summary, the
    points and the long table carries its record's run id, commit and dirty flag."""
    recs = [_rec("bf16", created=NEWER, run="run-new"),
            _rec("gguf-q8_0", commit=B, dirty=True, run="run-old", decode_tok_s=150.0)]
    with pytest.raises(MixedRunsError):
        _aggregate(tmp_path, recs)
    _aggregate(tmp_path, recs, allow_mixed_runs=True)
    out = tmp_path / "out"
    expected = {("bf16", "run-new", A, False), ("gguf-q8_0", "run-old", B, True)}
    for table in ("summary", "points", "metrics"):
        df = pd.read_csv(out / f"{table}.csv")
        assert set(df[["precision", "run_id", "git_commit", "git_dirty"]].itertuples(
            index=False, name=None)) == expected, table
    long = pd.read_parquet(out / "metrics.parquet")
    assert set(long[["precision", "run_id", "git_commit"]].itertuples(
        index=False, name=None)) == {(p, r, c) for p, r, c, _ in expected}


def test_points_csv_has_a_commit_column(tmp_path):
    _aggregate(tmp_path, [_rec("bf16")])
    points = pd.read_csv(tmp_path / "out" / "points.csv")
    assert points["git_commit"].tolist() == [A] and points["git_dirty"].tolist() == [False]
    assert points["run_id"].tolist() == ["20261204T005900Z-aaaaaa"]


def test_each_invocation_gets_its_own_run_id_and_its_records_keep_it(monkeypatch):
    """The workflow's main process makes a new run id each time it starts (never the one its
    environment inherited); a job's own process keeps the one it was sent; a record's
    provenance keeps the run id of the invocation that made it, none outside the workflow."""
    env: dict[str, str] = {}
    first = runs.start(env, main_process=True)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", first)
    assert runs.start(env, main_process=False) == first  # a job of that invocation
    second = runs.start(env, main_process=True)  # the next invocation
    assert second != first and env[runs.RUN_ID_VARIABLE] == second
    assert runs.start({}, main_process=False)  # a job sent without one still gets one
    monkeypatch.setenv(runs.RUN_ID_VARIABLE, second)
    assert records.provenance()["run_id"] == second
    monkeypatch.delenv(runs.RUN_ID_VARIABLE)
    assert records.provenance()["run_id"] is None


def test_the_results_table_marks_rows_of_another_run_than_the_reference():
    """A row whose run id is not its reference's is marked (†) in the results table, with a
    note naming both runs and commits; rows of the reference's run are not marked."""
    from quantbench.report.markdown import report_text

    recs = [_rec("bf16", run="run-new", created=NEWER),
            _rec("gguf-q8_0", run="run-new", decode_tok_s=140.0),
            _rec("gguf-q4_k_m", commit=B, dirty=True, run="run-old", decode_tok_s=150.0)]
    config = {"dataset": {"name": "text"},
              "latency": {"prompt_tokens": [16], "new_tokens": 8, "warmup_runs": 1,
                          "measured_runs": 3},
              "perplexity": {"mode": "llama.cpp", "context_length": 64, "max_windows": 2},
              "report": {}}
    text = report_text(summary_table(recs, "bf16"), reference="bf16", config=config)
    results = text.split("## Results")[1].split("###")[0]
    assert "| m | gguf-q4_k_m † |" in results and "| m | gguf-q8_0 |" in results
    assert "| m | bf16 |" in results
    validity = text.split("## Validity")[1].split("## Results")[0]
    assert ("so comparisons with it cross runs: m: gguf-q4_k_m (run run-old, commit bbbbbbb "
            "modified), against bf16's run run-new, commit aaaaaaa.") in validity
    one = report_text(summary_table(recs[:2], "bf16"), reference="bf16", config=config)
    assert "†" not in one and "cross runs" not in one


def test_the_end_of_a_run_says_this_runs_refusal_only(tmp_path):
    """The refusal the aggregation wrote to its log during this run is said again at the end
    of the run; one left in the log by an earlier run is not."""
    log = tmp_path / "aggregate_results.log"
    log.write_text("MixedRunsError: the records are not of one run ... earlier\n")
    start = outcome.log_size(log)
    assert outcome.refusal(log, start=start) is None
    with log.open("a") as fh:
        fh.write("INFO something\nMixedRunsError: the records are not of one run\n  another "
                 "commit (commit bbbbbbb, clean tree): 1 record(s): x.json\n")
    assert outcome.refusal(log, start=start) == (
        "MixedRunsError: the records are not of one run\n  another commit (commit bbbbbbb, "
        "clean tree): 1 record(s): x.json")
    assert outcome.refusal(tmp_path / "absent.log", start=0) is None
    assert outcome.log_size(tmp_path / "absent.log") == 0
