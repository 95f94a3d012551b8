import json
import re

import pandas as pd
import pytest

from quantbench.report.aggregate import long_table, summary_table
from quantbench.report.anomalies import anomalies, limitations
from quantbench.report.findings import Budgets
from quantbench.report.markdown import headline_findings
from quantbench.report.numbers import md_escape


def _rec(kind, precision, backend, status="ok", **metrics):
    return {"kind": kind, "model": "m", "precision": precision, "backend": backend,
            "status": status, "reason": None if status == "ok" else "boom",
            "metrics": metrics, "details": {"backend": {"n_params": 1_000_000}},
            "provenance": {"config_hash": "abc", "device": {"kind": "cpu"}}}


@pytest.fixture()
def records():
    out = []
    rows = [("fp32", "transformers", 20.0, 4.0, 10.0), ("gguf-q8_0", "llama.cpp", 45.0, 1.1, 10.1),
            ("gguf-q4_k_m", "llama.cpp", 60.0, 0.6, 10.9)]
    for precision, backend, tok_s, size, ppl in rows:
        out.append(_rec("latency", precision, backend, decode_tok_s=tok_s, size_mib=size,
                        peak_mem_mib=100 * size, prefill_ms=5.0, decode_tok_s_ci95=[tok_s - 1,
                                                                                   tok_s + 1]))
        out.append(_rec("quality", precision, backend, ppl=ppl, ppl_stderr=0.1))
    out.append(_rec("latency", "bnb-int8", "bitsandbytes", status="oom"))
    return out


def test_summary_derives_comparisons_with_the_reference(records):
    df = summary_table(records, "fp32").set_index("precision")
    assert df.loc["gguf-q8_0", "speedup_vs_ref"] == pytest.approx(45 / 20)
    assert df.loc["gguf-q4_k_m", "ppl_delta_pct"] == pytest.approx(9.0)
    assert df.loc["fp32", "bits_per_weight"] == pytest.approx(4.0 * 2**20 * 8 / 1e6)
    assert df.loc["bnb-int8", "status"] == "oom"
    long = long_table(records)
    assert {"metric", "value", "unit", "run_id"} <= set(long.columns)
    assert long.query("metric == 'decode_tok_s'")["unit"].unique().tolist() == ["tok/s"]


def test_every_number_in_the_findings_comes_from_the_table(records):
    df = summary_table(records, "fp32")
    lines = headline_findings(df, "fp32")
    text = " ".join(lines)
    assert "gguf-q4_k_m at 60.0 tok/s" in text  # fastest
    assert "bnb-int8 did not run (oom)" in text
    table_numbers = set()
    for col in df.select_dtypes("number"):
        for v in df[col].dropna():
            table_numbers |= {f"{v:.{d}f}" for d in range(4)} | {f"{v:+.2f}"}
    sizes = df["size_mib"].dropna()
    table_numbers |= {f"{a / b:.1f}" for a in sizes for b in sizes}
    for number in re.findall(r"[+-]?\d+(?:\.\d+)?", text.replace("+2 %", "")):
        if number in ("4", "8", "0", "32"):  # model names / precision names
            continue
        assert number in table_numbers, f"{number} is not in the summary table"


def test_no_findings_claim_without_data():
    df = summary_table([_rec("latency", "fp32", "transformers", status="error")], "fp32")
    assert headline_findings(df, "fp32") == ["m: no precision ran successfully."]


def test_model_text_cannot_inject_markup():
    evil = "<script>alert(1)</script> | **bold** [x](http://e) `code`\nnext"
    out = md_escape(evil)
    assert "<script>" not in out and "|" not in out.replace("\\|", "")
    assert "**" not in out.replace("\\*", "") and "\n" not in out
    assert "](" not in out.replace("\\](", "")


def test_roofline_counts_weights_kv_and_flops(tmp_path):
    import json

    from quantbench import roofline

    cfg = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 256,
           "num_hidden_layers": 2, "intermediate_size": 512, "vocab_size": 1000}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    shape = roofline.Shape.from_config(tmp_path / "config.json")
    # attention 256*64*(8+4) + mlp 3*256*512, two layers, plus the LM head
    assert shape.matmul_params == 2 * (256 * 64 * 12 + 3 * 256 * 512) + 256 * 1000
    assert shape.kv_bytes_per_token(2) == 2 * 2 * 2 * 64 * 2
    row = {"decode_tok_s": 100.0, "size_mib": 1.0, "decode_ctx_mean": 10.0, "kv_elem_bytes": 2,
           "prefill_ms": 10.0, "prompt_tokens": 8}
    out = roofline.derive(row, shape, {"peak_bw_gb_s": 1.0, "matmul_tflops": {"f": 0.5}})
    bytes_tok = 2**20 + 10 * 1024
    assert out["decode_gb_s"] == pytest.approx(bytes_tok * 100 / 1e9)
    assert out["mbu_pct"] == pytest.approx(100 * bytes_tok * 100 / 1e9)
    flops = 2 * shape.matmul_params * 8 + 2 * 2 * 64 * 4 * 64
    assert out["prefill_tflops"] == pytest.approx(flops / 0.01 / 1e12)
    assert out["mfu_pct"] == pytest.approx(100 * flops / 0.01 / 1e12 / 0.5)
    assert roofline.derive({"decode_tok_s": float("nan")}, shape, {}) == {}


def test_pareto_front_keeps_only_undominated_precisions():
    from quantbench.report.aggregate import pareto_front

    df = pd.DataFrame({"mem": [10.0, 5.0, 6.0, 3.0], "tok_s": [1.0, 3.0, 2.0, 4.0],
                       "ppl": [10.0, 11.0, 12.0, 15.0]})
    # (6, 12) is beaten by (5, 11); the others each win on one axis
    assert pareto_front(df, "mem", "ppl").tolist() == [True, True, False, True]
    assert pareto_front(df, "tok_s", "ppl", maximize_cost=True).tolist() == [
        True, True, False, True]


def test_a_gguf_file_mostly_in_fallback_types_is_flagged():
    rec = _rec("latency", "gguf-q4_k_m", "llama.cpp", decode_tok_s=5.0, size_mib=1.0,
               peak_mem_mib=10.0)
    rec["details"]["backend"]["tensor_types_pct"] = {"Q5_0": 58.0, "Q8_0": 22.0, "Q4_K": 10.5,
                                                     "Q6_K": 9.5}
    df = summary_table([rec], "fp32")
    row = df.iloc[0]
    assert row["named_type_pct"] == pytest.approx(10.5)
    assert row["weight_types"] == "Q5_0 58%, Q8_0 22%, Q4_K 10%, Q6_K 10%"
    text = " ".join(anomalies(df, "fp32", Budgets()))
    assert "gguf-q4_k_m holds only 10.5 % of its weights in the type it is named after" in text
    assert "multiples of" not in text  # a record without row widths: no reason is given


def test_the_row_widths_of_a_gguf_reach_the_summary_and_the_anomaly():
    rec = _rec("latency", "gguf-q4_k_m", "llama.cpp", decode_tok_s=5.0, size_mib=1.0,
               peak_mem_mib=10.0)
    rec["details"]["backend"].update(tensor_types_pct={"Q5_0": 70.0, "Q4_K": 30.0},
                                     row_block=256, misaligned_rows_pct=68.5)
    df = summary_table([rec], "fp32")
    assert df.iloc[0][["row_block", "misaligned_rows_pct"]].tolist() == [256, 68.5]
    text = " ".join(anomalies(df, "fp32", Budgets()))
    assert ("68.5 % of its weights are in matrices whose rows are not multiples of 256, which "
            "llama.cpp cannot store in that type") in text


def test_other_work_during_the_timed_runs_reaches_the_summary_and_the_limitations(records):
    def shared(other_cpu_share):
        for r in records:
            if r["kind"] == "latency" and r["status"] == "ok":
                r["metrics"].update(other_cpu_share=other_cpu_share, steal_share=0.0,
                                    loadavg=1.25)
        df = summary_table(records, "fp32")
        assert df["other_cpu_share"].dropna().tolist() == [other_cpu_share] * 3
        return "shared with other work" in " ".join(limitations(df, {}, {}, {"device": "cpu"}))

    assert shared(0.5) and not shared(0.001)


def test_the_paired_interval_of_the_perplexity_change_reaches_both_tables(records):
    records.append(_rec("quality", "gguf-q6_k", "llama.cpp", ppl=10.3, ppl_stderr=0.1,
                        ppl_delta_pct=3.0, ppl_delta_pct_ci95=[2.5, 3.5]))
    df = summary_table(records, "fp32").set_index("precision")
    assert df.loc["gguf-q6_k", ["ppl_delta_pct_ci_low", "ppl_delta_pct_ci_high"]].tolist() == [
        2.5, 3.5]
    assert pd.isna(df.loc["gguf-q8_0", "ppl_delta_pct_ci_low"])  # no paired data
    long = long_table(records).set_index(["precision", "metric"])
    assert long.loc[("gguf-q6_k", "ppl_delta_pct"), ["ci_low", "ci_high"]].tolist() == [2.5, 3.5]


def _floor_records(*, bf16: bool, self_floor: float | None):
    out = [_rec("latency", p, b, decode_tok_s=10.0, size_mib=1.0, peak_mem_mib=10.0,
                decode_tok_s_ci95=[None, None] if p == "gguf-q4_k_m" else [9.0, 11.0])
           for p, b in (("fp32", "transformers"), ("bf16", "transformers"),
                        ("gguf-q4_k_m", "llama.cpp"))]
    ref = {} if self_floor is None else {"kld_floor_self": self_floor}
    out.append(_rec("quality", "fp32", "transformers", ppl=10.0, ppl_stderr=0.1, **ref))
    if bf16:
        out.append(_rec("quality", "bf16", "transformers", ppl=10.01, ppl_stderr=0.1,
                        kld_mean=2e-4, ppl_delta_pct_ci95=[0.05, 0.15]))
    out.append(_rec("quality", "gguf-q4_k_m", "llama.cpp", ppl=10.5, ppl_stderr=0.1,
                    kld_mean=0.05, ppl_delta_pct_ci95=[None, None]))
    return out


def test_the_kld_noise_floor_is_bf16_against_fp32_when_measured_else_the_reference_itself():
    df = summary_table(_floor_records(bf16=True, self_floor=3e-9), "fp32")
    assert df["kld_floor"].tolist() == [2e-4] * 3
    assert set(df["kld_floor_from"]) == {"bf16"}
    df = summary_table(_floor_records(bf16=False, self_floor=3e-9), "fp32")
    assert df["kld_floor"].tolist() == [3e-9] * 3
    assert set(df["kld_floor_from"]) == {"reference_self"}
    df = summary_table(_floor_records(bf16=False, self_floor=None), "fp32")
    assert df["kld_floor"].isna().all() and df["kld_floor_from"].isna().all()


CONFIG = {"dataset": {"name": "text"},
          "latency": {"prompt_tokens": [16], "new_tokens": 8, "warmup_runs": 1,
                      "measured_runs": 2},
          "perplexity": {"mode": "llama.cpp", "context_length": 64, "max_windows": 2},
          "report": {}}


def _tables(text: str) -> tuple[dict, dict]:
    """The results table's and the quality table's rows of model m, by precision."""
    results, quality = text.split("## Results")[1].split("### Quality")

    def rows(part):
        return {ln.split(" | ")[1]: ln for ln in part.splitlines() if ln.startswith("| m |")}

    return rows(results), rows(quality.split("## Hardware")[0])


def test_the_report_shows_the_kld_floor_and_n_a_for_intervals_it_does_not_have():
    from quantbench.report.markdown import report_text

    df = summary_table(_floor_records(bf16=True, self_floor=3e-9), "fp32")
    text = report_text(df, reference="fp32", config=CONFIG)
    results, quality = _tables(text)
    assert "| KL divergence (mean) | KLD noise floor |" in text
    assert quality["gguf-q4_k_m"].startswith("| m | gguf-q4_k_m | 5.00e-02 | 2.00e-04 |")
    assert ("m: KL divergence noise floor 2.00e-04, the divergence of `bf16` from `fp32` "
            "measured in this run") in text
    # fewer than 3 runs or windows: the interval is n/a, never [x, x]
    assert "| 10.0 [n/a] |" in results["gguf-q4_k_m"]
    assert results["gguf-q4_k_m"].endswith("| 5.00 [n/a] |")
    assert results["bf16"].endswith("| 0.10 [0.05, 0.15] |")
    assert "| 10.0 [9.0, 11.0] |" in results["fp32"]
    text = report_text(summary_table(_floor_records(bf16=False, self_floor=3e-9), "fp32"),
                       reference="fp32", config=CONFIG)
    assert _tables(text)[1]["gguf-q4_k_m"].startswith("| m | gguf-q4_k_m | 5.00e-02 | 3.00e-09 |")
    assert "the divergence of `fp32` from its own stored top-k log-probabilities" in text
    text = report_text(summary_table(_floor_records(bf16=False, self_floor=None), "fp32"),
                       reference="fp32", config=CONFIG)
    assert _tables(text)[1]["gguf-q4_k_m"].startswith("| m | gguf-q4_k_m | 5.00e-02 | n/a |")
    assert "m: KL divergence noise floor unavailable" in text


def test_the_methodology_states_how_the_speed_interval_is_made():
    """The interval of decode speed is over processes (Student t over their means); from one
    process the report says there is none, and why."""
    from quantbench.report.markdown import report_text

    df = summary_table(_floor_records(bf16=True, self_floor=3e-9), "fp32")
    methodology = report_text(df, reference="fp32", config=CONFIG).split(
        "## Methodology")[1].split("## Results")[0]
    assert "in one process, 1 warm-up and 2 measured runs" in methodology
    assert "without an interval (n/a): one process gives none" in methodology
    assert "Student t" not in methodology
    config = {**CONFIG, "latency": {**CONFIG["latency"], "processes": 3}}
    methodology = report_text(df, reference="fp32", config=config).split(
        "## Methodology")[1].split("## Results")[0]
    assert "in each of 3 fresh processes, one after another" in methodology
    assert ("the mean of the processes' mean speeds, with a Student t 95 % interval over those "
            "means (2 degrees of freedom") in methodology
    assert "bootstrap 95 % confidence interval over the measured runs" not in methodology


def test_the_load_peak_and_memory_parts_reach_the_summary_and_the_memory_table(records):
    from quantbench.report.markdown import report_text

    config = {"dataset": {"name": "text"},
              "latency": {"prompt_tokens": [128], "new_tokens": 32, "warmup_runs": 1,
                          "measured_runs": 3},
              "perplexity": {"mode": "llama.cpp", "context_length": 512, "max_windows": 8}}
    assert "### Memory" not in report_text(summary_table(records, "fp32"), reference="fp32",
                                           config=config)  # records without the figures
    records[0]["metrics"].update(load_peak_mib=912.0, weights_mib=4.0, kv_cache_mib=0.5,
                                 runtime_mib=395.5)
    records[2]["metrics"].update(load_peak_mib=131.0, weights_mib=1.1, kv_cache_mib=0.3,
                                 compute_mib=1.04, output_mib=0.98, runtime_mib=106.58)
    df = summary_table(records, "fp32").set_index("precision")
    assert df.loc["fp32", "load_peak_mib"] == 912.0 and df.loc["fp32", "peak_mem_mib"] == 400.0
    assert pd.isna(df.loc["fp32", "compute_mib"])  # transformers reports none
    assert df.loc["gguf-q8_0", "output_mib"] == 0.98
    text = report_text(df.reset_index(), reference="fp32", config=config)
    memory = text.split("### Memory")[1].split("###")[0]
    assert "| m | fp32 | cpu | 400 | 912 | 4.0 | 0.5 | – | – | 396 |" in memory
    assert "| m | gguf-q8_0 | cpu | 110 | 131 | 1.1 | 0.3 | 1.0 | 1.0 | 107 |" in memory
    assert "gguf-q4_k_m" not in memory  # no memory parts recorded


def test_kernel_traces_reach_their_table_and_the_long_table(records, tmp_path):
    from quantbench.report.aggregate import aggregate

    trace = _rec("kernels", "fp32", "transformers", steps=8, tokens=8, step_ms=4.0,
                 busy_ms_per_step=3.0, busy_pct=75.0, kernels_per_token=120.0, gemm_pct=60.0,
                 dequant_pct=0.0, graph_breaks=2, recompiles=0, graphs=3)
    trace["details"].update(top=[{"name": "aten::mm", "class": "gemm", "self_ms": 14.4,
                                  "share": 0.6, "calls": 96}],
                            compile={"graph_breaks": ["Call to graph_break()"], "recompiles": []},
                            point={"batch_size": 4, "context_depth": 64, "prompt_tokens": 16})
    skipped = _rec("kernels", "bnb-int8", "bitsandbytes", status="unsupported")
    skipped["details"]["point"] = {"batch_size": 2, "context_depth": 0, "prompt_tokens": 16}
    paths = []
    for i, rec in enumerate([*records, trace, skipped]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(rec))
    aggregate(paths, reference="fp32", summary_path=tmp_path / "s.csv",
              metrics_path=tmp_path / "m.csv", kernels_path=tmp_path / "k.csv")
    k = pd.read_csv(tmp_path / "k.csv").set_index("precision")
    assert k.loc["fp32", ["gemm_pct", "graph_breaks", "kernels_per_token", "top_kernel_pct"]
                 ].tolist() == [60.0, 2, 120.0, 60.0]
    assert k.loc["fp32", "top_kernel"] == "aten::mm"
    assert k.loc["fp32", "graph_break_reason"] == "Call to graph_break()"
    assert k.loc["bnb-int8", "status"] == "unsupported" and k.loc["bnb-int8", "reason"] == "boom"
    # the traced point, also of a trace that did not run
    assert k[["batch_size", "context_depth", "prompt_tokens"]].values.tolist() == [
        [2, 0, 16], [4, 64, 16]]
    long = pd.read_csv(tmp_path / "m.csv")
    rows = long[long["scenario"] == "kernels"].set_index("metric")
    assert rows.loc["busy_pct", "value"] == 75.0 and rows.loc["busy_pct", "unit"] == "%"
    assert pd.read_csv(tmp_path / "s.csv")["precision"].tolist().count("fp32") == 1


def test_the_decode_limit_is_described_and_shown_only_where_it_was_measured():
    from quantbench.report.markdown import report_text

    df = summary_table(_floor_records(bf16=True, self_floor=3e-9), "fp32")
    assert "Decode limit:" not in report_text(df, reference="fp32", config=CONFIG)
    df["decode_limit_tok_s"], df["limit_pct"] = 400.0, 12.5
    text = report_text(df, reference="fp32", config=CONFIG)
    assert "- Decode limit: each model's weight products of one decode step alone" in text
    assert "in float32, timed at every batch size (in a loop; the median of 5 blocks" in text
    _, quality = _tables(text)
    assert " | 12.5 | " in quality["gguf-q4_k_m"]


def _gpu_energy_records():
    """A GPU run: two precisions swept over batch 1 and 64 on a card of a 700 W limit, bf16's
    decode at batch 64 giving 5280 W (a measurement error); a GPU trace of gguf-q8_0 with its
    idle draw; gguf-f16's latency record from before the phases were measured apart."""
    from quantbench.points import LatencyPoint

    out = []
    speed = dict(decode_tok_s_per_seq=50.0, token_ms_p90=20.0, peak_mem_mib=200.0)
    for precision, backend, j in (("bf16", "transformers", 1.6), ("gguf-q8_0", "llama.cpp", 0.15),
                                  ("gguf-f16", "llama.cpp", None)):
        pts = [LatencyPoint(16, 1, 0, decode_tok_s=250.0, prefill_tok_s=9000.0, **speed,
                            prefill_j_per_tok=j and 0.02, decode_j_per_tok=j and 1.2),
               LatencyPoint(16, 64, 0, decode_tok_s=3300.0, prefill_tok_s=11000.0, **speed,
                            prefill_j_per_tok=j and 0.05, decode_j_per_tok=j)]
        rec = _rec("latency", precision, backend, prompt_tokens=16, batch_size=1,
                   context_depth=0, decode_tok_s=250.0, size_mib=100.0, peak_mem_mib=200.0)
        rec["provenance"]["device"] = {"kind": "cuda", "power_limit_w": 700.0}
        rec["details"]["points"] = [p.to_dict() for p in pts]
        if j is None:  # what a point held before: the timed runs' energy, prefills in it
            for point in rec["details"]["points"]:
                point["energy_j_per_tok"] = 1.9
        out.append(rec)
    out.append(_rec("gpu", "gguf-q8_0", "llama.cpp", idle_w=71.0, idle_s=2.0, power_limit_w=700.0))
    return out


def test_a_gpu_report_gives_energy_per_phase_states_the_idle_draw_and_flags_the_impossible(
        tmp_path):
    """Prefill and decode J/token in every table that shows energy, the idle draw and the power
    limit where energy is shown, the method in the Methodology, a point whose J/token x tok/s is
    above the card's limit flagged and not printed, the record without figures named."""
    import io

    from quantbench.report.aggregate import points_table
    from quantbench.report.markdown import report_text

    records = _gpu_energy_records()
    df = summary_table(records, "bf16")
    points = pd.read_csv(io.StringIO(points_table(records).to_csv(index=False)))
    points_md = tmp_path / "points.md"
    text = report_text(df, reference="bf16", config=CONFIG, points=points,
                       machine={"device": "cuda"}, points_out=points_md)
    assert "- Energy: from the card's energy counter (NVML), each phase apart, never inside " \
           "the timed runs." in text
    assert "| MFU % | prefill J/token | decode J/token |" in text
    assert _tables(text)[1]["gguf-q8_0"].endswith("| 0.020 | 1.200 |")
    assert ("m: every energy figure is the whole card's, from its energy counter, each phase "
            "apart; it draws 71 W idle with the model loaded, and that draw is in every figure; "
            "its power limit is 700 W.") in text
    every = points_md.read_text()
    assert "| decode MFU % | prefill J/token | decode J/token |" in every
    every = every.split("## m")[1]
    bf16_64 = next(ln for ln in every.splitlines() if ln.startswith("| bf16 | 16 | 64 |"))
    assert bf16_64.endswith("| 0.050 | – |") and "5280" not in every
    assert ("m: energy left out at 1 point whose J/token × tok/s is above the card's power "
            "limit of 700 W, a measurement error: bf16 at batch 64, depth 0, prompt 16.") in text
    # at the headline point bf16 and gguf-q8_0 both take 1.200 J: neither is named alone
    assert ("least energy per decoded token at the headline point (the decode steps alone): "
            "bf16, 1.200 J (as low as shown: gguf-q8_0).") in text
    assert "m: no energy per decoded token at any point for gguf-f16 (no energy per phase in " \
           "its latency record" in text
    assert "1.9" not in text  # the old record's figure, prefills in it, is not shown
    body, defined = _glossary(text)
    assert {"J/token (prefill, decode)", "idle draw, power limit"} <= set(defined)
    cpu = _render_example(*CPU_EXAMPLE)
    assert not [w for w in ("J/token", "power limit", "idle draw") if w in cpu]


# acronyms that are names (of devices, formats, libraries, units, sources), not terms to define
NAMES = {"GPU", "CPU", "CUDA", "NVML", "GGUF", "ONNX", "LLM", "NVIDIA", "AMD", "EPYC", "XPU",
         "ACM", "README", "FLOP", "TFLOP", "GB", "RSS", "NF4", "FP8", "BF16", "FP16", "FP32",
         "F16", "F32", "HTML", "UTF"}


def _glossary(text: str) -> tuple[str, list[str]]:
    """A report's text without its glossary, and the terms its glossary defines."""
    body, rest = text.split("\n### Glossary\n")
    glossary, tail = rest.split("\n### References")
    return body + tail, re.findall(r"^- \*\*(.+?)\*\*:", glossary, re.MULTILINE)


def _undefined(body: str, defined: list[str]) -> set[str]:
    """The glossary's terms and the acronyms the report's text uses but its glossary does not
    define (an acronym is defined as a word of a defined term's name)."""
    from quantbench.report import glossary

    words = {w for term in defined for w in re.findall(r"[A-Za-z0-9]+", term)}
    missing = {t.term for t in glossary.used(body)} - set(defined)
    acronyms = set(re.findall(r"\b[A-Z][A-Z0-9]*[A-Z]\b", body)) - NAMES - words
    return missing | acronyms


def _render_example(example: str, configfile: str) -> str:
    """An example's report made again from its tables (docs/examples/<example>) with this
    checkout's code, without figures."""
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from quantbench import config as qb_config
    from quantbench.report.aggregate import read_summary
    from quantbench.report.markdown import report_text

    root = Path(__file__).resolve().parents[1]
    folder = root / "docs" / "examples" / example
    config = yaml.safe_load((root / configfile).read_text())
    validate(config, str(root / "workflow" / "schemas" / "config.schema.yaml"))  # + defaults
    points, machine = folder / "points.csv", folder / "machine.json"
    return report_text(read_summary(folder / "summary.csv"),
                       reference=qb_config.reference_precision(config), config=config,
                       machine=json.loads(machine.read_text()) if machine.is_file() else None,
                       points=pd.read_csv(points) if points.is_file() else None)


CPU_EXAMPLE, GPU_EXAMPLE = ("cpu", "config/cpu-formats.yaml"), ("h200-sweep",
                                                                 "config/gpu-sweep.yaml")


@pytest.mark.parametrize(("example", "terms"), [
    (CPU_EXAMPLE, {"MBU", "MFU", "ridge point", "realised %", "twin"}),
    (GPU_EXAMPLE, {"TPOT", "headline point", "realised %", "MBU"}),
])
def test_every_term_a_rendered_report_uses_is_in_its_glossary_once(example, terms):
    """The examples' tables rendered again: each glossary term the text uses (TTFT, TPOT, MBU,
    MFU, ridge point, realised %, twin, headline point, ...) and each acronym that is not a name
    is defined, once; a term the text does not use is not listed."""
    from quantbench.report import glossary

    body, defined = _glossary(_render_example(*example))
    assert len(defined) == len(set(defined))
    assert terms <= set(defined)
    assert _undefined(body, defined) == set()
    assert defined == [t.term for t in glossary.used(body)]  # none the text does not use
    # the check fails on a term or an acronym left undefined
    assert _undefined(body + " Its TTFT and QPS.", [d for d in defined if d != "TTFT"]) == {
        "TTFT", "QPS"}


def test_a_report_names_nothing_of_another_kind_of_device():
    """A CPU run's report says nothing of kernel launches, CUDA graphs or NVML, nor a GPU run's
    of the resident set size it does not serve from (a record's own reason may, as data)."""
    cpu = _render_example(*CPU_EXAMPLE)
    for words in ("kernel-launch", "kernel launch", "CUDA graphs", "NVML", "GPU memory",
                  "on a GPU"):
        assert words not in cpu
    assert "resident set size" in cpu
    gpu = _render_example(*GPU_EXAMPLE)
    assert "resident set size" not in gpu and "On the CPU" not in gpu
    assert "GPU memory (NVML)" in gpu and "CUDA graphs" in gpu


def test_every_image_the_report_links_exists_and_a_figure_not_made_is_not_linked(records,
                                                                                 tmp_path):
    """Figures and report from the tables of a run at one batch size: each `](figures/...)`
    link resolves; the batch figures (one value on their x axis) are neither made nor linked,
    and the report says why."""
    from quantbench.points import COLUMNS as POINT_COLUMNS
    from quantbench.report.markdown import render_report
    from quantbench.report.plots import plot_all

    summary_table(records, "fp32").to_csv(tmp_path / "summary.csv", index=False)
    points = pd.DataFrame([
        {"model": "m", "precision": p, "backend": b, "status": "ok", "prompt_tokens": 16,
         "batch_size": 1, "context_depth": depth, "decode_tok_s": tok_s,
         "decode_tok_s_per_seq": tok_s, "peak_mem_mib": 100.0 + depth,
         "token_ms_p90": 1e3 / tok_s, "kv_tokens_per_seq": 24 + depth}
        for p, b, tok_s in (("fp32", "transformers", 20.0), ("gguf-q8_0", "llama.cpp", 45.0))
        for depth in (0, 64)])
    points.reindex(columns=POINT_COLUMNS).to_csv(tmp_path / "points.csv", index=False)
    plot_all(tmp_path / "summary.csv", tmp_path / "figures", points_path=tmp_path / "points.csv",
             reference="fp32")
    text = render_report(tmp_path / "summary.csv", tmp_path / "figures", [], [],
                         reference="fp32", config=CONFIG, out=tmp_path / "report.md",
                         points_path=tmp_path / "points.csv")
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert links and all((tmp_path / link).is_file() for link in links)
    assert "](figures/decode_throughput.png)" in text
    for name in ("batch_throughput", "latency_throughput", "batch_speedup", "batch_memory",
                 "batch_roofline"):
        assert f"](figures/{name}.png)" not in text and not (
            tmp_path / "figures" / f"{name}.png").exists()
    assert ("- `batch_throughput`, `latency_throughput`, `batch_memory`, `batch_roofline`: "
            "fewer than two batch sizes measured") in text
