"""The tidy long table (CSV and parquet) and the run id."""

import json
import math

import pandas as pd
import pytest

from quantbench.report.aggregate import LONG_COLUMNS, aggregate, long_table, run_id


def _rec(kind, precision, backend="transformers", status="ok", created="2026-11-26T12:00:00+00:00",
         config="abc", **metrics):
    return {"kind": kind, "model": "m", "precision": precision, "backend": backend,
            "status": status, "reason": None if status == "ok" else "boom", "metrics": metrics,
            "details": {}, "provenance": {"config_hash": config, "created_utc": created,
                                          "git_commit": "f" * 40, "device": {"kind": "cpu"}}}


@pytest.fixture()
def records():
    return [
        _rec("latency", "fp32", decode_tok_s=20.0, decode_tok_s_ci95=[19.0, 21.5],
             peak_mem_mib=400.0, created="2026-11-26T12:05:00+00:00"),
        _rec("quality", "fp32", ppl=10.0, ppl_stderr=0.5, kld_mean=0.02, kld_stderr=0.001,
             created="2026-11-26T12:01:02+00:00"),
        _rec("latency", "bnb-int8", "bitsandbytes", status="oom"),
    ]


def test_long_table_is_tidy_with_intervals_units_and_provenance(records):
    assert list(long_table(records).columns) == LONG_COLUMNS
    long = long_table(records).set_index("metric")
    assert long.loc["decode_tok_s", ["ci_low", "ci_high"]].tolist() == [19.0, 21.5]
    assert long.loc["decode_tok_s", "unit"] == "tok/s"
    assert long.loc["ppl", "ci_low"] == pytest.approx(10.0 - 1.959964 * 0.5)
    assert long.loc["kld_mean", "ci_high"] == pytest.approx(0.02 + 1.959964 * 0.001)
    assert math.isnan(long.loc["peak_mem_mib", "ci_low"])
    assert "decode_tok_s_ci95" not in long.index  # a list, not a number
    assert json.loads(long.loc["ppl", "provenance"])["git_commit"] == "f" * 40
    assert long["run_id"].nunique() == 1


def test_run_id_is_stable_and_changes_with_the_run(records):
    rid = run_id(records)
    assert rid == run_id(list(reversed(records)))
    assert rid.startswith("20261126T120000Z-")  # the first record's time
    other = [{**r, "provenance": {**r["provenance"], "config_hash": "xyz"}} for r in records]
    assert run_id(other) != rid


def test_parquet_round_trips_the_long_table(tmp_path, records):
    paths = []
    for i, rec in enumerate(records):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(rec))
    summary = aggregate(paths, reference="fp32", summary_path=tmp_path / "summary.csv",
                        metrics_path=tmp_path / "metrics.csv",
                        parquet_path=tmp_path / "metrics.parquet")
    back = pd.read_parquet(tmp_path / "metrics.parquet")
    csv = pd.read_csv(tmp_path / "metrics.csv", keep_default_na=False, na_values=[""])
    csv["unit"] = csv["unit"].fillna("")
    pd.testing.assert_frame_equal(back, long_table(records))
    pd.testing.assert_frame_equal(back, csv, check_dtype=False)
    assert back["value"].dtype == float and back["ci_low"].dtype == float
    assert set(summary["run_id"]) == set(back["run_id"])
    assert set(pd.read_csv(tmp_path / "summary.csv")["run_id"]) == {run_id(records)}
    assert not list(tmp_path.glob(".*.tmp"))


def _points_record():
    from quantbench.points import LatencyPoint

    pts = [LatencyPoint(16, 1, 0, decode_tok_s=20.0, decode_tok_s_ci_low=19.0,
                        decode_tok_s_ci_high=21.0, token_ms_p50=50.0, peak_mem_mib=100.0),
           LatencyPoint(16, 4, 0, decode_tok_s=60.0, token_ms_p50=66.0, peak_mem_mib=120.0),
           LatencyPoint(16, 4, 512, decode_tok_s=40.0, token_ms_p50=99.0, peak_mem_mib=300.0),
           LatencyPoint(16, 64, 512, status="oom", reason="MemoryError: no room")]
    rec = _rec("latency", "gguf-q8_0", "llama.cpp", decode_tok_s=999.0, prompt_tokens=16,
               batch_size=4, context_depth=512, size_mib=8.0)  # the headline: b4 d512
    rec["details"]["points"] = [p.to_dict() for p in reversed(pts)]
    return rec


def test_every_point_is_a_keyed_row_of_the_points_and_long_tables():
    from quantbench.report.aggregate import points_table

    rec = _points_record()
    pts = points_table([rec], "run1")
    assert len(pts) == 4 and (pts["run_id"] == "run1").all()
    assert pts[["batch_size", "context_depth"]].values.tolist() == [[1, 0], [4, 0], [4, 512],
                                                                   [64, 512]]
    oom = pts.iloc[-1]
    assert oom["status"] == "oom" and oom["reason"] == "MemoryError: no room"
    assert pd.isna(oom["decode_tok_s"])
    long = long_table([rec])
    point_rows = long[long["scenario"] == "latency_point"]
    tok = point_rows[point_rows["metric"] == "decode_tok_s"].set_index(
        ["batch_size", "context_depth"])
    assert tok.loc[(1, 0), ["value", "ci_low", "ci_high"]].tolist() == [20.0, 19.0, 21.0]
    assert tok.loc[(4, 512), "value"] == 40.0 and tok.loc[(4, 512), "unit"] == "tok/s"
    assert (point_rows[point_rows["metric"] == "token_ms_p50"]["unit"] == "ms").all()
    failed = point_rows[point_rows["batch_size"] == 64]
    assert failed["status"].tolist() == ["oom"]  # one row, no value: it was not measured


def test_the_summary_reports_the_headline_point():
    from quantbench.report.aggregate import summary_table

    row = summary_table([_points_record()], "fp32").iloc[0]
    assert row["decode_tok_s"] == 40.0 and row["decode_token_ms_p50"] == 99.0
    assert row["peak_mem_mib"] == 300.0 and row["batch_size"] == 4
    assert row["context_depth"] == 512  # the point a kernel trace must match to give a cause
