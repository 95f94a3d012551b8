"""The tidy long table (CSV and parquet) and each row's run."""

import json
import math

import pandas as pd
import pytest

from quantbench import runs
from quantbench.report.aggregate import LONG_COLUMNS, aggregate, long_table


def _rec(kind, precision, backend="transformers", status="ok", created="2026-11-26T12:00:00+00:00",
         config="abc", **metrics):
    return {"kind": kind, "model": "m", "precision": precision, "backend": backend,
            "status": status, "reason": None if status == "ok" else "boom", "metrics": metrics,
            "details": {}, "provenance": {"config_hash": config, "created_utc": created,
                                          "git_commit": "f" * 40, "git_dirty": False,
                                          "device": {"kind": "cpu"}}}


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


def test_records_without_a_run_id_get_one_per_code_and_machine(records):
    """Records made before run ids were recorded: one id for the records of one code on one
    machine (the first one's time), another for another commit; a recorded run id is kept."""
    ids = runs.run_ids(records)
    assert len(set(ids)) == 1 and ids[0].startswith("20261126T120000Z-legacy-")
    assert runs.run_ids(list(reversed(records))) == ids
    other = [*records, {**records[0], "provenance": {**records[0]["provenance"],
                                                      "git_commit": "e" * 40}}]
    assert len(set(runs.run_ids(other))) == 2
    named = [{**r, "provenance": {**r["provenance"], "run_id": "20261201T000000Z-abcdef"}}
             for r in records[:1]] + records[1:]
    assert runs.run_ids(named)[0] == "20261201T000000Z-abcdef"
    assert runs.run_ids(named)[1:] == ids[1:]


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
    assert set(pd.read_csv(tmp_path / "summary.csv")["run_id"]) == set(runs.run_ids(records))
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
    rec["provenance"]["run_id"] = "run1"
    pts = points_table([rec])
    assert len(pts) == 4 and (pts["run_id"] == "run1").all()
    assert (pts["git_commit"] == "f" * 40).all()
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


def test_each_point_and_the_headline_get_their_share_of_the_decode_limit_at_their_batch():
    from quantbench.report.aggregate import points_table, summary_table

    rec = _points_record()
    limit = {"points": [{"batch_size": 1, "tok_s": 80.0}, {"batch_size": 4, "tok_s": 200.0}]}
    pts = points_table([rec], {rec["model"]: limit}).set_index(
        ["batch_size", "context_depth"])
    assert pts.loc[(1, 0), ["decode_limit_tok_s", "limit_pct"]].tolist() == [80.0, 25.0]
    assert pts.loc[(4, 512), ["decode_limit_tok_s", "limit_pct"]].tolist() == [200.0, 20.0]
    assert pd.isna(pts.loc[(64, 512), "decode_limit_tok_s"])  # no limit at batch 64
    row = summary_table([rec], "fp32", limits={rec["model"]: limit}).iloc[0]
    assert (row["decode_limit_tok_s"], row["limit_pct"]) == (200.0, 20.0)
    assert pd.isna(summary_table([rec], "fp32").iloc[0]["limit_pct"])  # no limit measured


def _energy_record(limit_w=700.0):
    """A GPU latency record: at batch 64 a prefill of 3 s and 16 decode steps at 3300 tok/s;
    the headline point (batch 1) within the card's power limit, batch 64's decode not."""
    from quantbench.points import LatencyPoint

    pts = [LatencyPoint(512, 1, 512, decode_tok_s=250.0, prefill_tok_s=9000.0,
                        prefill_j_per_tok=0.02, decode_j_per_tok=1.2),   # 180 W, 300 W
           LatencyPoint(512, 64, 512, decode_tok_s=3300.0, prefill_tok_s=11000.0,
                        prefill_j_per_tok=0.05, decode_j_per_tok=1.6)]  # 550 W, 5280 W
    rec = _rec("latency", "gguf-q8_0", "llama.cpp", prompt_tokens=512, batch_size=1,
               context_depth=512, decode_tok_s=250.0, prefill_j_per_tok=0.02,
               decode_j_per_tok=1.2)
    rec["provenance"]["device"] = {"kind": "cuda", "gpu_name": "H200", "power_limit_w": limit_w}
    rec["details"]["points"] = [p.to_dict() for p in pts]
    return rec


def test_a_points_energy_above_the_cards_power_limit_is_flagged_not_given():
    """J/token x tok/s is a phase's mean power: above the card's limit the figure is a
    measurement error. The tables leave it out and say why; the phase within it stays."""
    from quantbench.report.aggregate import points_table, summary_table

    rec = _energy_record()
    pts = points_table([rec]).set_index("batch_size")
    assert pts.loc[1, "decode_w"] == pytest.approx(300.0) and pd.isna(pts.loc[1, "energy_note"])
    assert pts.loc[1, "power_limit_w"] == 700.0
    assert pd.isna(pts.loc[64, "decode_j_per_tok"]) and pd.isna(pts.loc[64, "decode_w"])
    assert pts.loc[64, "prefill_j_per_tok"] == 0.05  # 550 W: within the limit, kept
    assert pts.loc[64, "energy_note"] == ("decode J/token × tok/s = 5280 W, above the card's "
                                         "power limit of 700 W: a measurement error, not shown")
    long = long_table([rec])
    at64 = long[(long["scenario"] == "latency_point") & (long["batch_size"] == 64)]
    assert "decode_j_per_tok" not in set(at64["metric"])
    assert "prefill_j_per_tok" in set(at64["metric"])
    row = summary_table([rec], "gguf-q8_0").iloc[0]
    assert (row["decode_j_per_tok"], row["power_limit_w"]) == (1.2, 700.0)
    # the same record on a card of a lower limit: the headline's decode breaks it too, and
    # the summary and the long table's headline figure leave it out alike
    low = _energy_record(limit_w=250.0)
    row = summary_table([low], "gguf-q8_0").iloc[0]
    assert pd.isna(row["decode_j_per_tok"]) and "above the card's power limit" in row["energy_note"]
    headline = long_table([low])
    assert "decode_j_per_tok" not in set(headline[headline["scenario"] == "latency"]["metric"])


def test_an_old_records_energy_with_the_prefill_in_it_is_never_shown_as_decode():
    """A latency point and a GPU trace made before the phases were measured apart: their
    energy per decoded token held every prefill's. No table gives it under a decode name."""
    from test_metrics import OLD_TRACE

    from quantbench.report.aggregate import points_table, summary_table

    rec = _energy_record()
    for p in rec["details"]["points"]:
        p.pop("prefill_j_per_tok"), p.pop("decode_j_per_tok")
        p["energy_j_per_tok"] = 1.56  # the timed runs' energy over the decoded tokens
    for k in ("prefill_j_per_tok", "decode_j_per_tok"):
        rec["metrics"].pop(k)
    trace = _rec("gpu", "gguf-q8_0", "llama.cpp", **OLD_TRACE)
    pts = points_table([rec])
    assert pts["decode_j_per_tok"].isna().all() and "energy_j_per_tok" not in pts
    row = summary_table([rec, trace], "gguf-q8_0").iloc[0]
    assert pd.isna(row["decode_j_per_tok"]) and "tok_per_j" not in row.index
    long = long_table([rec, trace])
    names = set(long["metric"])
    assert not {"energy_j_per_tok", "tok_per_j", "decode_energy_j_per_tok"} & names
    gpu = long[long["scenario"] == "gpu"].set_index("metric")
    assert gpu.loc["generate_energy_j", "value"] == 221.6
    assert not [m for m in gpu.index if m.startswith("decode_")]


def test_the_summary_columns_are_the_types_each_once_in_todays_order():
    from quantbench.metrics import GpuMetrics, QualityMetrics
    from quantbench.points import LatencyPoint
    from quantbench.report.aggregate import SUMMARY_COLUMNS

    assert len(set(SUMMARY_COLUMNS)) == len(SUMMARY_COLUMNS)
    for kind in (LatencyPoint, QualityMetrics, GpuMetrics):  # every section has its place
        assert set(kind.summary_units()) <= set(SUMMARY_COLUMNS), kind.__name__
    # the order summaries were written in before the columns came from the types
    before = ["prefill_ms", "decode_tok_s", "decode_token_ms_p50", "decode_cv",
              "decode_steady_tok_s", "peak_mem_mib", "prefill_j_per_tok", "decode_j_per_tok",
              "ppl", "ppl_stderr", "ppl_delta_pct",
              "ppl_delta_pct_ci_low", "ppl_delta_pct_ci_high", "speedup_vs_ref", "kld_mean",
              "top1_agreement_pct", "gen_exact_match_pct", "kld_floor", "idle_w",
              "power_limit_w", "energy_note", "batch_size", "decode_ctx_mean", "kv_elem_bytes",
              "kv_twin",
              "kv_ppl_delta_pct", "kv_ppl_delta_pct_ci_high", "kv_kld_mean", "load_peak_mib"]
    assert sorted(before, key=SUMMARY_COLUMNS.index) == before


@pytest.mark.parametrize("kind", ["quality", "gpu"])
def test_a_figure_added_to_a_type_is_a_summary_column_and_has_its_unit(kind, monkeypatch):
    """A made-up figure in the quality (GPU) type: the summary takes it, in the type's place,
    and the long table gives it the type's unit (its name alone says none)."""
    from dataclasses import dataclass

    from quantbench.metrics import GpuMetrics, QualityMetrics, metric
    from quantbench.report import aggregate

    base = {"quality": QualityMetrics, "gpu": GpuMetrics}[kind]

    @dataclass
    class Extended(base):
        made_up_score: float | None = metric("bananas")

    monkeypatch.setattr(aggregate, base.__name__, Extended)
    columns = aggregate.summary_columns()
    assert "made_up_score" in columns and "made_up_score" not in aggregate.SUMMARY_COLUMNS
    # in the type's main section: after its other main columns, before the next owner's
    last = base.summary_columns()[-1]
    assert columns.index("made_up_score") == columns.index(last) + 1
    monkeypatch.setattr(aggregate, "SUMMARY_COLUMNS", columns)
    rec = _rec(kind, "fp32", made_up_score=0.75, ppl=10.0, tok_per_j=2.0)
    row = aggregate.summary_table([rec], "fp32").iloc[0]
    assert row["made_up_score"] == 0.75
    long = aggregate.long_table([rec]).set_index("metric")
    assert long.loc["made_up_score", "unit"] == "bananas"


def test_units_of_quality_gpu_and_kernel_figures_are_their_types():
    """Where the name's suffix would guess wrong or nothing: KL divergence in nats, joules per
    token (not joules), a kernel's busy milliseconds per step."""
    from quantbench.report.aggregate import unit_of

    records = [_rec("quality", "q8", kld_mean=0.01, n_tokens=512, ppl=10.0,
                    delta_p_p01_pct=-3.0),
               _rec("gpu", "q8", decode_j_per_tok=0.5, decode_power_w=300.0,
                    generate_samples=12),
               _rec("kernels", "q8", busy_ms_per_step=4.0),
               _rec("latency", "q8", decode_token_ms_p50=8.0, decode_ctx_mean=520.0)]
    units = long_table(records).set_index("metric")["unit"].to_dict()
    assert unit_of("kld_mean") == "" and units["kld_mean"] == "nats"
    assert unit_of("decode_j_per_tok") == "J/tok" == units["decode_j_per_tok"]
    assert unit_of("busy_ms_per_step") == "" and units["busy_ms_per_step"] == "ms"
    assert units["decode_token_ms_p50"] == "ms" and units["decode_ctx_mean"] == "tokens"
    assert units["n_tokens"] == "tokens" and units["delta_p_p01_pct"] == "%"
    assert units["decode_power_w"] == "W" and units["ppl"] == ""
    assert units["generate_samples"] == ""


def test_a_status_read_back_from_json_is_the_enum(tmp_path):
    from quantbench.points import LatencyPoint
    from quantbench.records import Record, Status

    rec = Record("latency", "m", "fp32", "transformers", status=Status.OOM)
    rec.details["points"] = [LatencyPoint(16, 1, 0, status=Status.OOM).to_dict()]
    rec.save(tmp_path / "r.json")
    stored = json.loads((tmp_path / "r.json").read_text())
    assert stored["status"] == "oom" and type(stored["status"]) is str  # the plain value
    assert '"status": "oom"' in (tmp_path / "r.json").read_text()
    back = Record.load(tmp_path / "r.json")
    assert back.status is Status.OOM and back.status == "oom"
    assert LatencyPoint.from_dict(back.details["points"][0]).status is Status.OOM
    assert Record("quality", "m", "fp32", "transformers", status="no_gpu").status is Status.NO_GPU
    with pytest.raises(ValueError):
        Record("quality", "m", "fp32", "transformers", status="fine")
    # tables read from JSON or CSV hold strings; they compare equal to the members
    summary = aggregate_from(tmp_path, [stored])
    assert (summary["status"] == Status.OOM).all()


def aggregate_from(tmp_path, records) -> pd.DataFrame:
    paths = []
    for i, rec in enumerate(records):
        paths.append(tmp_path / f"rec{i}.json")
        paths[-1].write_text(json.dumps(rec))
    aggregate(paths, reference="fp32", summary_path=tmp_path / "summary.csv",
              metrics_path=tmp_path / "metrics.csv")
    return pd.read_csv(tmp_path / "summary.csv")
