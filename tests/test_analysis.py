"""The report's analysis on small summary tables: recommendations, trade-offs, anomalies."""

import re

import pandas as pd
import pytest

from quantbench.report.aggregate import SUMMARY_COLUMNS
from quantbench.report.anomalies import anomalies, limitations, named_type_findings, timing_findings
from quantbench.report.findings import Budgets
from quantbench.report.hardware import (
    against_fast_baseline,
    bytes_to_speed,
    compiled_twins,
    eager_and_fast,
    hardware,
    speed_vs_bytes,
)
from quantbench.report.markdown import headline_findings, report_text
from quantbench.report.recommend import (
    best_quality_within_memory,
    fastest_within_quality,
    recommendations,
    smallest_within_quality,
    tradeoffs,
)

REF = "fp32"


def table(*rows, reference=REF) -> pd.DataFrame:
    """A summary table from (precision, backend, decode tok/s, weights MiB, peak MiB, ppl)."""
    recs = []
    for precision, backend, tok_s, size, peak, ppl, *extra in rows:
        rec = {"model": "m", "precision": precision, "backend": backend, "status": "ok",
               "decode_tok_s": tok_s, "decode_tok_s_ci_low": tok_s * 0.99,
               "decode_tok_s_ci_high": tok_s * 1.01, "size_mib": size, "peak_mem_mib": peak,
               "ppl": ppl, "ppl_stderr": None if ppl is None else 0.05, "decode_cv": 0.02}
        rec.update(extra[0] if extra else {})
        recs.append(rec)
    df = pd.DataFrame(recs).reindex(columns=SUMMARY_COLUMNS)
    numeric = ["decode_tok_s", "decode_tok_s_ci_low", "decode_tok_s_ci_high", "size_mib",
               "peak_mem_mib", "ppl", "ppl_stderr", "decode_cv", "kld_mean", "named_type_pct"]
    df[numeric] = df[numeric].astype(float)
    ref = df.loc[df["precision"] == reference]
    if not ref.empty:
        df["ppl_delta_pct"] = (df["ppl"] / ref["ppl"].iloc[0] - 1) * 100
        df["speedup_vs_ref"] = df["decode_tok_s"] / ref["decode_tok_s"].iloc[0]
        # the paired 95 % interval of each change (the reference's own is none)
        other = df["precision"] != reference
        df["ppl_delta_pct_ci_low"] = (df["ppl_delta_pct"] - 0.2).where(other)
        df["ppl_delta_pct_ci_high"] = (df["ppl_delta_pct"] + 0.2).where(other)
    return df


@pytest.fixture()
def measured():
    return table(
        ("fp32", "transformers", 20.0, 400.0, 900.0, 10.00),
        ("gguf-f16", "llama.cpp", 40.0, 200.0, 500.0, 10.00),
        ("gguf-q8_0", "llama.cpp", 60.0, 110.0, 400.0, 10.10),   # +1 %
        ("gguf-q4_k_m", "llama.cpp", 80.0, 60.0, 350.0, 10.50),  # +5 %
        ("bnb-nf4", "bitsandbytes", 10.0, 70.0, 600.0, 10.15),   # +1.5 %, slow
    )


def test_fastest_within_the_quality_budget_ignores_faster_precisions_outside_it(measured):
    pick = fastest_within_quality("m", measured, REF, Budgets(quality_budget_pct=2.0))
    assert pick.precision == "gguf-q8_0" and pick.quality_known
    wider = fastest_within_quality("m", measured, REF, Budgets(quality_budget_pct=6.0))
    assert wider.precision == "gguf-q4_k_m"


def test_smallest_within_the_quality_budget(measured):
    assert smallest_within_quality("m", measured, REF, Budgets()).precision == "bnb-nf4"
    assert smallest_within_quality("m", measured, REF,
                                   Budgets(quality_budget_pct=0.5)).precision == "gguf-f16"


def test_best_quality_within_the_memory_budget(measured):
    # 450 MiB: q8_0 (10.10) and q4_k_m (10.50) fit; f16 (500 MiB) does not
    pick = best_quality_within_memory("m", measured, REF, Budgets(memory_budget_mib=450))
    assert pick.precision == "gguf-q8_0"
    # default budget: half of fp32's 900 MiB -> 450 MiB, said in the text
    default = best_quality_within_memory("m", measured, REF, Budgets())
    assert default.precision == "gguf-q8_0"
    assert "450 MiB, half of fp32's peak memory" in default.text


def test_nothing_within_budget_names_no_precision_and_the_lowest_change(measured):
    tight = measured[measured["precision"].isin(["fp32", "gguf-q4_k_m"])].copy()
    tight = tight[tight["precision"] != "fp32"]  # the reference itself did not run
    pick = fastest_within_quality("m", tight, REF, Budgets())
    assert pick.precision is None
    assert ("no precision qualifies; the lowest change in perplexity is gguf-q4_k_m's "
            "(+5.00 %)") in pick.text
    assert smallest_within_quality("m", tight, REF, Budgets()).precision is None
    none_fit = best_quality_within_memory("m", measured, REF, Budgets(memory_budget_mib=100))
    assert none_fit.precision is None
    assert "nothing fits; the lowest peak memory is gguf-q4_k_m at 350 MiB" in none_fit.text


def test_the_kl_budget_excludes_precisions_beyond_it(measured):
    measured.loc[measured["precision"] == "gguf-q8_0", "kld_mean"] = 0.05
    measured.loc[measured["precision"] == "gguf-f16", "kld_mean"] = 0.001
    measured.loc[measured["precision"] == "bnb-nf4", "kld_mean"] = 0.03
    pick = fastest_within_quality("m", measured, REF, Budgets(kld_budget=0.01))
    assert pick.precision == "gguf-f16"
    assert "mean KL divergence of at most 0.01" in pick.text


def test_ties_are_broken_by_the_other_axis_and_reported():
    df = table(("fp32", "transformers", 20.0, 400.0, 900.0, 10.0),
               ("gguf-q8_0", "llama.cpp", 50.0, 110.0, 420.0, 10.05),
               ("gguf-q6_k", "llama.cpp", 50.0, 90.0, 400.0, 10.05))
    pick = fastest_within_quality("m", df, REF, Budgets())
    assert pick.precision == "gguf-q6_k"  # same speed, less memory
    assert "Tied with gguf-q8_0" in pick.text
    mem = best_quality_within_memory("m", df, REF, Budgets(memory_budget_mib=500))
    assert mem.precision == "gguf-q6_k" and "perplexity does not separate" in mem.text
    assert "(tied with gguf-q8_0 as shown; lower peak memory decides)" in mem.text


def test_overlapping_confidence_intervals_are_named():
    df = table(("fp32", "transformers", 20.0, 400.0, 900.0, 10.0),
               ("gguf-q8_0", "llama.cpp", 50.0, 110.0, 420.0, 10.05),
               ("gguf-q6_k", "llama.cpp", 50.4, 90.0, 400.0, 10.05))
    pick = fastest_within_quality("m", df, REF, Budgets())
    assert pick.precision == "gguf-q6_k"
    assert "runner-up gguf-q8_0 (50.0 tok/s) is within the 95 % confidence" in pick.text


def test_without_quality_every_scenario_says_so_and_ranks_by_speed_or_size():
    df = table(("bf16", "transformers", 70.0, 2000.0, 2800.0, None),
               ("gguf-q4_0", "llama.cpp", 870.0, 600.0, 1260.0, None),
               ("gguf-q2_k", "llama.cpp", 740.0, 410.0, 1080.0, None), reference="bf16")
    picks = recommendations(df, "bf16", Budgets())
    assert [p.precision for p in picks] == ["gguf-q4_0", "gguf-q2_k", "gguf-q4_0"]
    assert all(not p.quality_known and "quality" in p.text and "unknown" in p.text
               for p in picks)
    text = report_text(df, reference="bf16", config=_config(), models={})
    validity = text.split("## Validity")[1].split("## Results")[0]
    assert "- m: no quality was measured, so its picks rest on speed and memory alone." \
        in validity


def test_precisions_without_quality_are_not_ranked_but_named(measured):
    measured.loc[measured["precision"] == "gguf-q8_0", ["ppl", "ppl_delta_pct"]] = float("nan")
    pick = fastest_within_quality("m", measured, REF, Budgets())
    assert pick.precision == "gguf-f16"
    assert "Not ranked (quality not measured): gguf-q8_0" in pick.text


def test_trade_offs_name_the_fronts_and_what_dominates(measured):
    lines = tradeoffs(measured)
    speed = next(line for line in lines if "perplexity vs decode speed" in line)
    # nf4 (slower than q8_0, worse perplexity) is dominated by q8_0
    assert "bnb-nf4 by gguf-q8_0" in speed
    assert "gguf-q4_k_m (80.0 tok/s" in speed and "fp32 by gguf-f16" in speed
    memory = next(line for line in lines if "perplexity vs peak memory" in line)
    assert "bnb-nf4 by gguf-q8_0" in memory


def test_anomalies_are_computed_from_the_table(measured):
    measured.loc[measured["precision"] == "gguf-q4_k_m", "decode_cv"] = 0.25
    q4 = measured["precision"] == "gguf-q4_k_m"
    measured["weight_types"] = measured["weight_types"].astype(object)
    measured.loc[q4, "named_type_pct"] = 12.0
    measured.loc[q4, "weight_types"] = "Q5_0 60%, Q8_0 28%, Q4_K 12%"
    lines = anomalies(measured, REF, Budgets(ppl_jump_pct=3.0))
    text = " ".join(lines)
    # bnb-nf4 (10 tok/s) is compared with the unquantized transformers precision it stands
    # in for (fp32 here, at 20 tok/s, weights 5.7x larger); the GGUFs with gguf-f16
    assert "bnb-nf4 decodes slower than its baseline fp32 (10.0 against 20.0 tok/s, 0.50×)" in text
    assert "gguf-q4_k_m loses +5.00 % perplexity" in text
    assert "gguf-q4_k_m's decode timings are noisy: coefficient of variation 25.0 %" in text
    assert "gguf-q4_k_m holds only 12.0 %" in text
    assert not any("gguf-q8_0" in line for line in lines)  # faster than f16, +1 %, quiet
    assert anomalies(measured, REF, Budgets(ppl_jump_pct=3.0, cv_threshold_pct=30.0)) != lines


def test_limitations_follow_the_model_source_and_the_measurements(measured):
    models = {"m": {"source": "embedded", "quality_applicable": True},
              "r": {"source": "random", "quality_applicable": False}}
    lines = limitations(measured, models, _config(), {"device": "cpu"})
    text = " ".join(lines)
    assert "m's reference weights are a Q4_1 GGUF dequantized to FP32" in text
    assert "r has random weights" in text
    assert "Timings are from device `cpu`: the decode coefficient of variation is 2.0 % in " \
           "the median" in text
    assert "shared with other work" not in text  # nothing measured says so
    assert "20 measured runs after 3 warm-up run(s) in one process" in text
    assert "gives no interval of decode speed" in text
    config = _config()
    config["latency"]["processes"] = 3
    text = " ".join(limitations(measured, models, config, {"device": "cpu"}))
    assert ("3 fresh processes, one after another, each of 3 warm-up and 20 measured run(s); "
            "the 95 % intervals of decode speed are Student t intervals over the processes' "
            "means") in text
    assert "top-32" not in text  # no KL measured
    measured["kld_mean"] = 0.01
    assert "top-32" in " ".join(limitations(measured, {}, _config(), {}))


def _config() -> dict:
    return {"dataset": {"name": "britannica"},
            "latency": {"prompt_tokens": [128], "new_tokens": 32, "batch_size": 1,
                        "warmup_runs": 3, "measured_runs": 20},
            "perplexity": {"mode": "llama.cpp", "context_length": 512, "max_windows": 8},
            "report": {"quality_budget_pct": 2.0}}


def _allowed_numbers(df: pd.DataFrame, budgets: Budgets) -> set[str]:
    """The table's values as the report may print them, and the ratios between them."""
    out = set()
    numeric = df.select_dtypes("number")
    for col in numeric:
        values = numeric[col].dropna().tolist()
        for v in values:
            out |= {f"{v:.{d}f}" for d in range(4)} | {f"{v:+.2f}"}
        for a in values:  # ratios within a column (x smaller, x as fast), halves of a value
            out |= {f"{a / 2:.0f}"}
            for b in values:
                if b:
                    out |= {f"{a / b:.{d}f}" for d in (1, 2)}
    for v in vars(budgets).values():
        if v is not None:
            out |= {f"{v:g}", f"+{v:g}"}
    return out


def test_every_number_in_the_summary_and_findings_comes_from_the_table(measured):
    measured["device"] = "cuda"
    measured["decode_j_per_tok"] = [2.0, 0.8, 0.5, 0.25, None]
    budgets = Budgets.from_config(_config()["report"])
    text = report_text(measured, reference=REF, config=_config(), models={})
    body = (text.split("## Findings")[1].split("## Set-up")[0]
            + text.split("### Picks by one criterion")[1].split("### Methodology")[0])
    lines = [ln for ln in body.splitlines() if ln.startswith("- ")]
    assert len(lines) >= 8
    assert ("least energy per decoded token at the headline point (the decode steps alone): "
            "gguf-q4_k_m, 0.250 J, 8.0× less than fp32's 2.000 J.") in body
    assert "no energy per decoded token at the headline point for bnb-nf4 (" in body
    assert lines == [f"- {t}" for t in
                     headline_findings(measured, REF)
                     + [p.text for p in recommendations(measured, REF, budgets)]]
    allowed = _allowed_numbers(measured, budgets)
    names = r"(?:fp|bf|q|f|int|nf|top-)\d+(?:_\d+)?"  # numbers inside precision names
    for line in lines:
        for number in re.findall(r"[+-]?\d[\d,]*(?:\.\d+)?", re.sub(names, "", line)):
            assert number.replace(",", "") in allowed, f"{number!r} in {line!r}"



def test_a_number_not_in_the_table_is_caught(measured):
    allowed = _allowed_numbers(measured, Budgets())
    assert "80.0" in allowed and "81.3" not in allowed and "+7.00" not in allowed


def test_hardware_analysis_reads_the_roofline_columns():
    df = table(("fp16", "transformers", 60.0, 2000.0, 2800.0, None),
               ("bnb-int8", "bitsandbytes", 20.0, 1100.0, 2000.0, None),
               ("bnb-int8-t0", "bitsandbytes", 30.0, 1100.0, 2000.0, None), reference="fp16")
    df["mbu_pct"] = [3.0, 0.5, 0.8]
    df["decode_flop_per_byte"] = [0.9, 1.7, 1.7]
    df["decode_gb_s"] = [130.0, 24.0, 36.0]
    machine = {"peak_bw_gb_s": 4000.0, "matmul_tflops": {"bf16": 800.0}}
    text = " ".join(hardware(df, "fp16", machine))
    assert "at most 1.7 FLOP per byte read (bnb-int8), below this machine's ridge point of " \
           "200 FLOP/byte: by the roofline, the memory bandwidth" in text
    assert "0 of 2 quantized precisions" in text and "furthest off is bnb-int8" in text
    anomaly = " ".join(anomalies(df, "fp16", Budgets()))
    assert "without outlier decomposition (bnb-int8-t0) it runs at 30.0 tok/s" in anomaly
    assert "explains part of the loss" in anomaly
    alone = " ".join(anomalies(df[df["precision"] != "bnb-int8-t0"], "fp16", Budgets()))
    assert "run bnb-int8-t0 as well" in alone


def test_a_bandwidth_above_the_peak_is_not_called_memory_bound():
    df = table(("fp32", "transformers", 300.0, 5.5, 360.0, 10.0),
               ("gguf-f16", "llama.cpp", 2500.0, 1.4, 160.0, 10.0))
    df["mbu_pct"] = [30.0, 168.2]
    df["decode_flop_per_byte"] = [0.5, 1.0]
    df["decode_gb_s"] = [1.3, 7.3]
    text = " ".join(hardware(df, REF, {"peak_bw_gb_s": 4.4, "matmul_tflops": {"f32": 0.7}}))
    assert "gguf-f16 reads its weights and KV cache at 7.3 GB/s, 168.2 % of the measured" in text
    assert "memory-bound" not in text
    assert "MBU cannot be judged against this peak" in text


def test_a_gguf_source_is_named_as_the_reference_weights_in_the_limitations(measured):
    def text(kind):
        models = {"u": {"source": "gguf", "quality_applicable": True,
                        "dequantized_from": {"file": "user.gguf", "type": kind}}}
        return " ".join(limitations(measured, models, _config(), {"device": "cpu"}))

    said = "u's reference weights are user.gguf's Q4_K_M weights dequantized to FP32"
    assert said in text("Q4_K_M")
    assert "formats at or above Q4_K_M's precision re-quantize" in text("Q4_K_M")
    assert "user.gguf's F16 weights dequantized" in text("F16")
    assert "re-quantize" not in text("F16")  # an unquantized file puts the weights on no grid
    local = {"u": {"source": "local", "quality_applicable": True}}
    assert "reference weights are" not in " ".join(
        limitations(measured, local, _config(), {"device": "cpu"}))


def test_the_validity_box_says_once_when_the_reference_is_dequantized(measured):
    note = "Full-precision weights are the embedded Q4_1 GGUF dequantized to FP32"
    models = {"m": {"source": "embedded", "quality_applicable": True, "weights_note": note}}
    text = report_text(measured, reference=REF, config=_config(), models=models)
    validity = text.split("## Validity")[1].split("## Results")[0]
    assert "m's reference weights are a Q4_1 GGUF dequantized to FP32" in validity
    assert "quality was measured" not in validity
    assert text.count("dequantized to FP32") == 1


def test_without_the_reference_perplexity_no_budget_is_applied(measured):
    measured.loc[measured["precision"] == REF, "ppl"] = float("nan")
    measured["ppl_delta_pct"] = float("nan")  # aggregate derives it from the reference
    for scenario in (fastest_within_quality, smallest_within_quality):
        pick = scenario("m", measured, REF, Budgets())
        assert pick.precision is None and "fp32 has no measured perplexity" in pick.text
    # the memory scenario still ranks by the perplexities that exist
    assert best_quality_within_memory("m", measured, REF,
                                      Budgets(memory_budget_mib=450)).precision == "gguf-q8_0"


def test_precisions_without_kl_are_named_when_a_kl_budget_is_set(measured):
    measured.loc[measured["precision"] == "gguf-f16", "kld_mean"] = 0.001
    pick = fastest_within_quality("m", measured, REF, Budgets(kld_budget=0.01))
    assert pick.precision == "gguf-f16"
    assert "Not ranked (KL divergence not measured): gguf-q8_0, gguf-q4_k_m, bnb-nf4" in pick.text


def test_a_bigger_format_losing_more_than_a_smaller_one_is_flagged(measured):
    assert not any("out of line" in line for line in anomalies(measured, REF, Budgets()))
    measured.loc[measured["precision"] == "gguf-q8_0", "ppl_delta_pct"] = 4.0  # 110 MiB
    lines = [line for line in anomalies(measured, REF, Budgets()) if "out of line" in line]
    # nf4 (70 MiB, +1.5 %) is smaller and loses 2.5 points less: beyond the 2 % budget
    assert lines == ["m: gguf-q8_0 (110.0 MiB) loses +4.00 % perplexity, more than the smaller "
                     "bnb-nf4 (70.0 MiB, +1.50 %): a perplexity jump out of line with its size."]


def test_smaller_is_said_only_where_the_sizes_shown_differ(measured):
    # gguf-q8_0 loses 2.5 points more than bnb-nf4, which is smaller only in digits not shown
    measured.loc[measured["precision"] == "gguf-q8_0", ["size_mib", "ppl_delta_pct"]] = [
        70.04, 4.0]
    measured.loc[measured["precision"] == "bnb-nf4", "size_mib"] = 70.01
    assert not any("out of line" in line for line in anomalies(measured, REF, Budgets()))
    measured.loc[measured["precision"] == "bnb-nf4", "size_mib"] = 69.9  # shown: 69.9 < 70.0
    assert any("more than the smaller bnb-nf4 (69.9 MiB" in line
               for line in anomalies(measured, REF, Budgets()))
    # a baseline the same size as shown: its slower twin is not "1.0× smaller"
    df = table(("fp16", "transformers", 60.0, 2000.0, 2800.0, None),
               ("bnb-int8", "bitsandbytes", 20.0, 1990.0, 2000.0, None), reference="fp16")
    assert not any("smaller" in line for line in anomalies(df, "fp16", Budgets()))
    df.loc[df["precision"] == "bnb-int8", "size_mib"] = 1100.0
    assert any("although its weights are 1.8× smaller" in line
               for line in anomalies(df, "fp16", Budgets()))
    # the smallest precision is the reference itself, or as big as it shows: no "× smaller"
    same = table(("fp32", "transformers", 20.0, 400.0, 900.0, 10.0),
                 ("gguf-f32", "llama.cpp", 40.0, 400.2, 500.0, 10.0))
    assert "m: smallest weight tensors are fp32's at 400.0 MiB." in headline_findings(same, REF)


def test_the_closest_precision_is_the_one_nearest_the_reference_either_way():
    df = table(("fp32", "transformers", 20.0, 400.0, 900.0, 20.0),
               ("gguf-f16-kvq8", "llama.cpp", 40.0, 200.0, 500.0, 19.998),  # -0.01 %
               ("gguf-f16", "llama.cpp", 40.0, 200.0, 500.0, 20.0008),      # +0.004 %
               ("gguf-q4_k_m", "llama.cpp", 80.0, 60.0, 350.0, 19.0))       # -5 %
    [line] = [t for t in headline_findings(df, REF) if "closest" in t]
    assert ("the closest precision is gguf-f16 (+0.00 % perplexity [-0.20, +0.20]) and the "
            "furthest is gguf-q4_k_m (-5.00 % [-5.20, -4.80])") in line
    only = headline_findings(df[df["precision"].isin(["fp32", "gguf-f16"])], REF)
    assert any("the only other precision measured is gguf-f16" in t for t in only)


def _quality(*rows, budget=600):
    """Summary rows (precision, ppl change %, its paired interval, KLD, top-1 %) of 500 MiB
    peak each, fp32 the reference (900 MiB); the KL noise floor 1e-4."""
    df = table(("fp32", "transformers", 20.0, 400.0, 900.0, 10.0),
               *[(p, "llama.cpp", 30.0 + i, 100.0, 500.0, 10.0 * (1 + d / 100))
                 for i, (p, d, *_) in enumerate(rows)])
    for p, d, ci, kld, top1 in rows:
        at = df["precision"] == p
        df.loc[at, ["ppl_delta_pct", "ppl_delta_pct_ci_low", "ppl_delta_pct_ci_high"]] = [
            d, *(ci or (float("nan"), float("nan")))]
        df.loc[at, ["kld_mean", "top1_agreement_pct"]] = [kld, top1]
    df["kld_floor"] = 1e-4
    return best_quality_within_memory("m", df, REF, Budgets(memory_budget_mib=budget))


def test_a_pick_by_quality_rests_on_perplexity_only_where_its_interval_separates_it():
    apart = _quality(("gguf-q8_0", 0.2, (0.1, 0.3), 2e-3, 95.0),
                     ("gguf-q6_k", 0.5, (0.4, 0.6), 1e-3, 97.0))
    assert apart.precision == "gguf-q8_0"
    assert "gguf-q8_0 — perplexity 10.020, +0.20 % [+0.10, +0.30] against fp32" in apart.text
    # the same perplexities, intervals that overlap: the KL divergence decides, beyond its floor
    kl = _quality(("gguf-q8_0", 0.2, (0.0, 0.45), 2e-3, 95.0),
                  ("gguf-q6_k", 0.5, (0.4, 0.6), 1e-3, 97.0))
    assert kl.precision == "gguf-q6_k"
    assert ("perplexity does not separate gguf-q8_0 (+0.20 % [+0.00, +0.45]) and gguf-q6_k "
            "(+0.50 % [+0.40, +0.60])") in kl.text
    assert ("by KL divergence, gguf-q6_k: 1.00e-03 against 2.00e-03 for gguf-q8_0, apart by "
            "more than the noise floor of 1.00e-04") in kl.text
    # KL divergences within the floor: top-1 agreement decides
    top1 = _quality(("gguf-q8_0", 0.2, (0.0, 0.45), 1.05e-3, 97.5),
                    ("gguf-q6_k", 0.5, (0.4, 0.6), 1e-3, 96.0))
    assert top1.precision == "gguf-q8_0"
    assert ("their KL divergences are within the noise floor of 1.00e-04 of each other; by "
            "top-1 agreement, gguf-q8_0: 97.5 % against 96.0 % for gguf-q6_k") in top1.text
    # nothing separates them, nor a missing interval: said, and decode speed names one
    for rows in ((("gguf-q8_0", 0.2, (0.0, 0.45), 1.05e-3, 97.0),
                  ("gguf-q6_k", 0.5, (0.4, 0.6), 1e-3, 97.0)),
                 (("gguf-q8_0", 0.2, None, None, None), ("gguf-q6_k", 0.5, None, None, None))):
        tie = _quality(*rows)
        assert tie.precision == "gguf-q6_k"  # 31 tok/s against 30
        assert "no measure of quality separates them, so the higher decode tok/s names " \
               "gguf-q6_k" in tie.text
    assert "gguf-q8_0 (+0.20 % [n/a])" in tie.text
    # the reference itself fits: a change whose interval holds 0 does not rank below it
    ref = _quality(("gguf-q8_0", -0.1, (-0.3, 0.1), 2e-3, 95.0), budget=1000)
    ref_words = ("perplexity does not separate gguf-q8_0 (-0.10 % [-0.30, +0.10]) and fp32 "
                 "(0 %, the reference)")
    assert ref.precision == "fp32" and ref_words in ref.text
    assert _quality(("gguf-q8_0", -0.2, (-0.3, -0.1), 2e-3, 95.0),
                    budget=1000).precision == "gguf-q8_0"


def test_the_report_has_every_section_in_order(measured):
    text = report_text(measured, reference=REF, config=_config(), models={},
                       prov={"git_commit": "b" * 40}, configfiles=["config/my.yaml"])
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Decision", "## Validity", "## Results", "## Findings",
                        "## Set-up and provenance", "## Appendix"]
    appendix = [line for line in text.split("## Appendix")[1].splitlines()
                if line.startswith("### ")]
    assert appendix == ["### Picks by one criterion", "### Methodology",
                        "### Detail of the results", "### Hardware analysis",
                        "### Trade-offs", "### Anomalies", "### Operating points",
                        "### Figures", "### Sanity generations (greedy)", "### Glossary",
                        "### References", "### Reproduce"]
    reproduce = text.split("### Reproduce")[1]
    assert f"git checkout {'b' * 40}" in reproduce
    assert "snakemake --cores all --configfile config/my.yaml" in reproduce


def test_an_mfu_above_100_percent_is_called_an_underestimated_peak():
    df = table(("fp32", "transformers", 300.0, 5.5, 360.0, 10.0),
               ("bf16", "transformers", 150.0, 6.0, 200.0, 10.0))
    df["prompt_tokens"] = 128
    df["prefill_ms"] = [200.0, 90.0]
    df["prefill_tflops"] = [0.2, 0.4]
    df["mfu_pct"] = [55.0, 106.5]
    text = " ".join(hardware(df, REF, {"peak_bw_gb_s": 9.7, "matmul_tflops": {"f32": 0.361}}))
    assert "bf16's 106.5 %" in text and "the measured matmul peak is an underestimate" in text
    df["mfu_pct"] = [55.0, 96.0]
    text = " ".join(hardware(df, REF, {"peak_bw_gb_s": 9.7, "matmul_tflops": {"f32": 0.361}}))
    assert "underestimate" not in text


def test_the_report_links_the_figures_made_and_names_those_not_drawn(measured):
    figures = ["figures/quality.png", "figures/nvml_m_fp32.png"]
    not_made = {"pareto_speed": "no quality measured", "nvml_m_gguf-f16": "no GPU samples (status "
                "no_gpu)", "nvml_m_gguf-q8_0": "no GPU samples (status no_gpu)",
                "nvml_m_gguf-q4_k_m": "no GPU samples (status error)"}
    text = report_text(measured, reference=REF, config=_config(), models={}, figures=figures,
                       not_made=not_made)
    shown = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text.split("## Figures")[1])
    assert shown == figures
    assert ("Not drawn (no data, or fewer than two values on the x axis):\n\n"
            "- `pareto_speed`: no quality measured\n"
            "- the GPU time series of 2 precisions (m_gguf-f16, m_gguf-q8_0): no GPU samples "
            "(status no_gpu)\n"
            "- the GPU time series of 1 precision (m_gguf-q4_k_m): no GPU samples (status error)"
            ) in text
    assert "Not drawn" not in report_text(measured, reference=REF, config=_config(), models={},
                                          figures=figures)


def test_the_results_table_gives_the_paired_interval_of_the_perplexity_change(measured):
    measured["ppl_delta_pct_ci_low"] = [None, None, 0.91, 4.83, None]
    measured["ppl_delta_pct_ci_high"] = [None, None, 1.09, 5.17, None]
    text = report_text(measured, reference=REF, config=_config(), models={})
    results = text.split("## Results")[1].split("### ")[0]
    rows = {line.split(" | ")[1]: line for line in results.splitlines() if line.startswith("| m |")}
    assert rows["gguf-q8_0"].endswith("| 1.00 [0.91, 1.09] |")
    assert rows["gguf-q4_k_m"].endswith("| 5.00 [4.83, 5.17] |")
    assert rows["bnb-nf4"].endswith("| 1.50 [n/a] |")  # no paired data: no interval


def test_the_machine_is_called_shared_only_when_other_work_was_measured(measured):
    def said():
        return " ".join(limitations(measured, {}, _config(), {"device": "cpu"}))

    assert "other work" not in said().lower()  # not measured: nothing said about it
    measured["other_cpu_share"], measured["steal_share"], measured["loadavg"] = 0.01, 0.0, 1.5
    quiet = said()
    assert "shared with other work" not in quiet
    assert "at most 1.0 % of its CPU time went to other processes" in quiet
    q8 = measured["precision"] == "gguf-q8_0"
    measured.loc[q8, ["other_cpu_share", "loadavg"]] = [0.4, 2.5]
    busy = said()
    assert ("Timings are from a machine shared with other work: while gguf-q8_0 was measured, "
            "other processes used 40.0 % of the machine's CPU time, load average 2.50") in busy
    assert [f.kind for f in timing_findings(measured, "cpu")] == ["timing_spread",
                                                                  "machine_shared"]
    # every other precision above the thresholds is named too, the worst first
    measured.loc[measured["precision"] == "gguf-q4_k_m", ["other_cpu_share", "steal_share"]] = [
        0.06, 0.025]
    assert ("steal), and above those while gguf-q4_k_m (6.0 % other CPU, 2.5 % steal) was "
            "measured; such work") in said()
    measured.loc[measured["precision"] == "gguf-q4_k_m", ["other_cpu_share", "steal_share"]] = [
        0.01, 0.0]
    measured.loc[q8, ["other_cpu_share", "steal_share"]] = [0.01, 0.1]  # steal alone
    assert "the hypervisor took 10.0 % (steal)" in said()


# the operating point of the summary rows below, and of a trace taken there
AT = {"prompt_tokens": 512, "batch_size": 1, "context_depth": 0}


def _twins(compiled_tok_s, ci=0.01):
    df = table(("fp16", "transformers", 20.0, 200.0, 400.0, None),
               ("fp16-compiled", "transformers", compiled_tok_s, 200.0, 420.0, None),
               reference="fp16")
    df["decode_tok_s_ci_low"] = df["decode_tok_s"] * (1 - ci)
    df["decode_tok_s_ci_high"] = df["decode_tok_s"] * (1 + ci)
    df["mbu_pct"] = [1.0, 2.0]
    for key, value in AT.items():
        df[key] = value
    return df


def test_eager_decode_is_called_host_bound_only_where_a_trace_of_it_shows_it():
    def said(df, kernels=None):
        return " ".join(hardware(df, "fp16", {}, kernels))

    def trace(device="cuda", **overrides):
        return kernel_table(("fp16", device, {**AT, "busy_pct": 30.0, **overrides}))

    fast = said(_twins(40.0))  # clearly faster, no trace: the measurement without a cause
    assert ("fp16-compiled decodes at 40.0 tok/s, 2.00× eager fp16 (20.0 tok/s) with the same "
            "weights, their 95 % intervals apart: compiling removes 50 % of eager decode's time "
            "per token (1.0 % MBU eager, 2.0 % compiled).") in fast
    assert "bound by" not in fast and "overhead" not in fast and "launch" not in fast
    gpu = said(_twins(40.0), trace())
    assert ("A trace of fp16 at this point has the GPU busy only 30 % of a decode step: eager "
            "decode is bound by per-token Python, dispatch and kernel launches, not by "
            "memory.") in gpu
    cpu = said(_twins(40.0), trace("cpu"))  # the CPU's words: no kernels, no launches
    assert ("A trace of fp16 at this point spends only 30 % of a decode step in torch "
            "operators: eager decode is bound by per-token Python and dispatch, not by "
            "memory.") in cpu
    assert "kernel" not in cpu and "launch" not in cpu and "GPU" not in cpu
    for kernels in (trace(busy_pct=80.0),  # busy: the trace does not show host-bound work
                    trace(batch_size=64),  # another point
                    trace(status="error"),  # no trace
                    kernel_table(("fp16-compiled", "cuda", {**AT, "busy_pct": 30.0}))):
        assert "bound by" not in said(_twins(40.0), kernels)
        assert [f.kind for f in compiled_twins("m", _twins(40.0), kernels)] == [
            "compiled_faster"]
    for df in (_twins(21.0), _twins(15.0), _twins(30.0, ci=0.3)):  # small, slower, overlapping
        text = said(df, trace())
        assert "bound by" not in text and "compiling does not make decode clearly faster" in text
        assert [f.kind for f in compiled_twins("m", df[df["status"] == "ok"], trace())] == [
            "compiled_not_faster"]
    assert "0.75× eager fp16 (20.0 tok/s)" in said(_twins(15.0))


def _int8(int8_tok_s, ci=0.01):
    df = table(("fp16", "transformers", 60.0, 2000.0, 2800.0, None),
               ("bnb-int8", "bitsandbytes", int8_tok_s, 1100.0, 2000.0, None), reference="fp16")
    df["decode_tok_s_ci_low"] = df["decode_tok_s"] * (1 - ci)
    df["decode_tok_s_ci_high"] = df["decode_tok_s"] * (1 + ci)
    for key, value in AT.items():
        df[key] = value
    return df


def test_time_goes_to_dequantizing_only_where_a_trace_of_it_shows_it():
    def said(df, kernels=None):
        return " ".join(hardware(df, "fp16", {}, kernels))

    def trace(**overrides):
        return kernel_table(("bnb-int8", "cuda", {**AT, "dequant_pct": 35.0, **overrides}))

    slower = said(_int8(20.0))  # slower, no trace: called slower, no cause
    assert ("furthest off is bnb-int8, which reads 1.82× fewer bytes than fp16 yet decodes "
            "slower, 0.33× as fast (the 95 % intervals apart): none of its byte saving became "
            "speed.") in slower
    assert "dequantiz" not in slower and "overhead" not in slower
    traced = said(_int8(20.0), trace())
    assert ("its trace at this point shows where the time goes: 35 % of its GPU time to "
            "dequantization and quantization kernels.") in traced
    both = said(_int8(20.0), trace(busy_pct=30.0))
    assert ("35 % of its GPU time to dequantization and quantization kernels, and has the GPU "
            "busy only 30 % of a decode step, the rest going to per-token Python, dispatch and "
            "kernel launches.") in both
    for kernels in (trace(dequant_pct=5.0), trace(batch_size=64), trace(status="error")):
        assert bytes_to_speed("m", _int8(20.0), "fp16", kernels).kind == "bytes_to_speed_slower"
    faster = said(_int8(70.0), trace())  # faster, but far from 1.8x: no cause asked for
    assert "dequantiz" not in faster
    assert ("furthest off is bnb-int8, which reads 1.82× fewer bytes than fp16 and decodes "
            "1.17× as fast: 20 % of the speed-up its byte saving would give.") in faster
    overlapping = _int8(57.0, ci=0.1)  # slower, but within the intervals: not called slower
    assert ("yet decodes 0.95× as fast, not told apart from it (the 95 % intervals overlap): "
            "0 % of the speed-up") in said(overlapping, trace())
    assert bytes_to_speed("m", overlapping, "fp16", trace()).kind == "bytes_to_speed"


def test_a_slower_format_is_credited_no_share_of_its_byte_saving():
    [row] = speed_vs_bytes(_int8(35.0), "fp16")  # 0.58x: once "32 %", a share it never had
    assert row["speed_ratio"] == pytest.approx(35 / 60) and row["verdict"] == "slower"
    assert row["realised_pct"] == 0.0
    [row] = speed_vs_bytes(_int8(60.0), "fp16")  # as fast with fewer bytes: none realised
    assert row["realised_pct"] == 0.0 and row["verdict"] == "tie"
    [row] = speed_vs_bytes(_int8(60.0 * 2000 / 1100), "fp16")  # the whole saving
    assert row["realised_pct"] == pytest.approx(100.0)
    text = report_text(_int8(35.0), reference="fp16", config=_config())
    assert "| m | bnb-int8 | fp16 | 1.82 | 0.58 | slower | 0 |" in text
    same = _int8(35.0)
    same.loc[same["precision"] == "bnb-int8", "size_mib"] = 1999.0  # 1.00x: no saving shown
    assert speed_vs_bytes(same, "fp16")[0]["realised_pct"] is None
    assert bytes_to_speed("m", same, "fp16") is None
    assert "| slower | no byte saving |" in report_text(same, reference="fp16", config=_config())


def test_a_format_is_called_slower_than_its_baseline_only_with_the_intervals_apart():
    def anomaly(df):
        [line] = [t for t in anomalies(df, "fp16", Budgets()) if "its baseline" in t]
        return line

    assert anomaly(_int8(35.0)).startswith(
        "m: bnb-int8 decodes slower than its baseline fp16 (35.0 against 60.0 tok/s, 0.58×) "
        "although its weights are 1.8× smaller")
    tie = anomaly(_int8(57.0, ci=0.1))
    assert tie.startswith("m: bnb-int8 is no faster than its baseline fp16 (57.0 against 60.0 "
                          "tok/s, 0.95×, not told apart: the 95 % intervals overlap) although")
    assert "slower" not in tie


def test_speed_is_said_to_follow_the_bytes_only_where_every_format_realises_its_saving():
    machine = {"peak_bw_gb_s": 4000.0, "matmul_tflops": {"bf16": 800.0}}  # ridge 200

    def found(int8_tok_s):
        df = _int8(int8_tok_s)
        df["mbu_pct"], df["decode_gb_s"] = [3.0, 2.0], [130.0, 90.0]
        df["decode_flop_per_byte"] = [0.9, 1.7]
        text = " ".join(hardware(df, "fp16", machine))
        assert ("decoding one token does at most 1.7 FLOP per byte read (bnb-int8), below this "
                "machine's ridge point of 200 FLOP/byte: by the roofline, the memory bandwidth "
                "and not the compute rate caps decode here") in text
        assert "fp16 comes nearest" in text and "130.0 GB/s, 3.0 % MBU" in text
        return text

    assert "speed follows the bytes" not in found(20.0)  # 0 of 1 realises 80 %
    assert "speed follows the bytes" not in found(90.0)  # 1.5x of 1.82x: 61 %
    assert ("every quantized precision realises at least 80 % of the speed-up its byte saving "
            "would give, so speed follows the bytes per token") in found(105.0)  # 92 %


def test_a_low_named_type_share_is_blamed_on_row_widths_only_when_rows_do_not_split(measured):
    q4 = measured["precision"] == "gguf-q4_k_m"
    measured["weight_types"] = measured["weight_types"].astype(object)
    measured.loc[q4, ["named_type_pct", "row_block"]] = [12.0, 256.0]
    measured.loc[q4, "weight_types"] = "Q5_0 60%, Q8_0 28%, Q4_K 12%"

    def said():
        return " ".join(anomalies(measured, REF, Budgets()))

    blame = "rows are not multiples of 256, which llama.cpp cannot store in that type"
    assert "gguf-q4_k_m holds only 12.0 % of its weights" in said() and blame not in said()
    assert "row widths" not in said()  # not recorded: no reason given
    measured.loc[q4, "misaligned_rows_pct"] = 70.0
    assert ("gguf-q4_k_m holds only 12.0 % of its weights in the type it is named after (Q5_0 "
            "60%, Q8_0 28%, Q4_K 12%): 70.0 % of its weights are in matrices whose rows are not "
            "multiples of 256, which llama.cpp cannot store in that type") in said()
    measured.loc[q4, "misaligned_rows_pct"] = 0.0
    assert blame not in said()
    assert "every matrix's rows are multiples of 256, so row widths do not explain it" in said()
    [finding] = named_type_findings("m", measured)
    assert finding.kind == "named_type_low" and finding.numbers["misaligned_rows_pct"] == 0.0


def test_the_int8_split_is_said_to_explain_the_loss_only_as_far_as_the_t0_run_shows():
    df = table(("fp16", "transformers", 60.0, 2000.0, 2800.0, None),
               ("bnb-int8", "bitsandbytes", 20.0, 1100.0, 2000.0, None),
               ("bnb-int8-t0", "bitsandbytes", 30.0, 1100.0, 2000.0, None), reference="fp16")

    def said(t0_tok_s):
        df.loc[df["precision"] == "bnb-int8-t0", "decode_tok_s"] = t0_tok_s
        return " ".join(anomalies(df, "fp16", Budgets()))

    assert "matmul explains part of the loss" in said(30.0)
    assert "matmul explains all of the loss" in said(60.0)
    none = said(15.0)  # no faster without the split: the split is not the cause
    assert "explains" not in none and "runs at 15.0 tok/s, no faster" in none
    assert "matmul does not explain the loss" in none


def kernel_table(*rows) -> pd.DataFrame:
    """results/kernels.csv rows: (precision, device, overrides), the rest a plain GPU trace."""
    from quantbench.report.aggregate import KERNEL_COLUMNS

    base = {"model": "m", "backend": "transformers", "status": "ok", "batch_size": 64,
            "context_depth": 4096, "prompt_tokens": 512, "steps": 8, "tokens": 8, "step_ms": 4.0,
            "busy_ms_per_step": 3.2, "busy_pct": 80.0, "kernels_per_token": 300,
            "launches_per_token": 300, "gemm_pct": 70.0, "attention_pct": 10.0,
            "dequant_pct": 0.0, "elementwise_pct": 12.0, "copy_pct": 3.0, "other_pct": 5.0,
            "top_kernel": "nvjet_tst_64x8", "top_kernel_class": "gemm", "top_kernel_pct": 40.0}
    df = pd.DataFrame([{**base, "precision": p, "device": d, **o} for p, d, o in rows])
    return df.reindex(columns=KERNEL_COLUMNS)


def kernel_texts(df: pd.DataFrame, kind: str | None = None) -> list[str]:
    from quantbench.report.hardware import kernel_findings

    return [f.text for f in kernel_findings(df) if kind is None or f.kind == kind]


def test_the_largest_class_of_each_trace_is_said():
    df = kernel_table(("bf16", "cuda", {}), ("fp32", "cpu", {"attention_pct": 75.0,
                                                             "gemm_pct": 5.0}),
                      ("bnb-nf4", "cuda", {"status": "error"}))
    assert kernel_texts(df, "kernels_largest_class") == [
        "m: bf16 spends the largest share of its traced decode GPU time, 70 % of 3.20 ms a step, "
        "in matrix multiplication (gemm/gemv) kernels; the top one, nvjet\\_tst\\_64x8, takes "
        "40 %.",
        "m: fp32 spends the largest share of its traced decode CPU time, 75 % of 3.20 ms a step, "
        "in attention operators; the top one, nvjet\\_tst\\_64x8, takes 40 %."]


def test_dequantization_is_said_only_where_it_takes_a_notable_share():
    df = kernel_table(("bnb-nf4", "cuda", {"dequant_pct": 35.0, "gemm_pct": 40.0}),
                      ("bnb-int8", "cuda", {"dequant_pct": 9.0}))
    assert kernel_texts(df, "kernels_dequant") == [
        "m: bnb-nf4 spends 35 % of its decode GPU time in dequantization and quantization "
        "kernels."]


def test_the_prefill_is_described_only_from_a_trace_that_has_one():
    prefill = {"prefill_trace_ms": 261.0, "prefill_busy_ms": 250.0, "prefill_busy_pct": 95.8,
               "prefill_kernels": 900, "prefill_gemm_pct": 30.0, "prefill_attention_pct": 5.0,
               "prefill_dequant_pct": 55.0, "prefill_elementwise_pct": 5.0,
               "prefill_copy_pct": 3.0, "prefill_other_pct": 2.0}
    df = kernel_table(("torchao-int4wo", "cuda", prefill),
                      ("bf16-compiled", "cuda", {**prefill, "prefill_gemm_pct": 70.0,
                                                 "prefill_dequant_pct": 15.0}),
                      ("bf16", "cuda", {}))  # a trace without a prefill: nothing said
    assert kernel_texts(df, "kernels_prefill") == [
        "m: torchao-int4wo's traced prefill of 64 × 512 tokens at depth 4,096 takes 261.00 ms "
        "under the profiler, 250.00 ms of it in GPU kernels; the largest share, 55 %, in "
        "dequantization and quantization kernels.",
        "m: bf16-compiled's traced prefill of 64 × 512 tokens at depth 4,096 takes 261.00 ms "
        "under the profiler, 250.00 ms of it in GPU kernels; the largest share, 70 %, in "
        "matrix multiplication (gemm/gemv) kernels, 15 % in dequantization and quantization."]


def test_a_host_bound_step_is_said_only_for_a_gpu_idle_most_of_the_step():
    df = kernel_table(("bf16", "cuda", {"busy_pct": 30.0, "busy_ms_per_step": 1.2}),
                      ("bf16-compiled", "cuda", {"busy_pct": 92.0}),
                      ("fp32", "cpu", {"busy_pct": 30.0}))
    assert kernel_texts(df, "kernels_host_bound") == [
        "m: bf16's GPU is busy only 30 % of a traced decode step (1.20 of 4.00 ms; 300 kernels "
        "per token from 300 host launches): below 50 %, the step waits on the host's Python, "
        "dispatch and kernel launches more than on the GPU."]


def test_graph_breaks_and_recompiles_are_said_only_where_torch_counted_them():
    reason = "Call to `torch._dynamo.graph_break()`\n  Explanation: User-inserted graph break."
    df = kernel_table(
        ("bf16", "cuda", {}),  # eager: nothing counted, nothing said
        ("bf16-compiled", "cuda", {"graph_breaks": 0, "recompiles": 0, "graphs": 1,
                                   "cudagraph_skips": 0}),
        ("bnb-nf4-compiled", "cuda", {"graph_breaks": 3, "graphs": 4, "recompiles": 2,
                                      "compiles_in_trace": 1, "graph_break_reason": reason,
                                      "recompile_reason": "0/0: tensor 'x' size mismatch"}),
        ("fp16-compiled", "cuda", {"graph_breaks": 0, "recompiles": 0, "graphs": 1,
                                   "cudagraph_skips": 2}))
    assert kernel_texts(df, "kernels_graph_breaks") == [
        "m: bnb-nf4-compiled's compiled decode has 3 graph breaks (4 graphs): Python runs "
        "between the compiled pieces of each step (first: Call to \\`torch.\\_dynamo.graph"
        "\\_break()\\`)."]
    assert kernel_texts(df, "kernels_recompiles") == [
        "m: bnb-nf4-compiled's decode was recompiled 2 times, 1 of them during the traced steps "
        "(first: 0/0: tensor &#x27;x&#x27; size mismatch)."]
    assert kernel_texts(df, "kernels_cudagraph_skips") == [
        "m: fp16-compiled's compiled decode skipped CUDA graphs 2 times: those graphs launch "
        "their kernels one by one."]
    assert kernel_texts(df, "kernels_one_graph") == [
        "m: bf16-compiled's compiled decode has no graph breaks and was not recompiled "
        "(1 graph)."]


def test_where_decode_time_goes_is_a_section_only_when_traces_ran(measured):
    off = report_text(measured, reference=REF, config=_config(), models={})
    assert "## Where decode time goes" not in off
    empty = kernel_table(("fp32", "cuda", {})).iloc[0:0]
    assert "## Where decode time goes" not in report_text(
        measured, reference=REF, config=_config(), models={}, kernels=empty)
    on = report_text(measured, reference=REF, config=_config(), models={},
                     kernels=kernel_table(("fp32", "cuda", {"dequant_pct": 20.0})))
    section = on.split("## Where decode time goes")[1].split("## Trade-offs")[0]
    assert ("| m | fp32 | ok | cuda | 64 | 4096 | 512 | 4.00 | 3.20 (80) | 300 | 300 | 70.0 | 10.0 "
            "| 20.0 |") in section
    assert "- m: fp32 spends 20 % of its decode GPU time in dequantization" in section


def _paths(**tok_s):
    """bf16 on both paths and other formats, decode tok/s by precision (``_`` for ``-``), each
    with a ±1 % interval; the compiled ones with a compile time, the point prompt 16 batch 1."""
    rows = []
    for name, value in tok_s.items():
        name = name.replace("_", "-").replace("gguf-q4-k-m", "gguf-q4_k_m")
        backend = ("llama.cpp" if name.startswith("gguf") else "torchao"
                   if name.startswith("torchao") else "bitsandbytes"
                   if name.startswith("bnb") else "transformers")
        extra = {"prompt_tokens": 16.0, "batch_size": 1.0}
        if name.endswith("-compiled"):
            extra["compile_s"] = 30.0
        if value is None:
            rows.append((name, backend, float("nan"), 100.0, 200.0, None,
                         {**extra, "status": "unsupported"}))
        else:
            rows.append((name, backend, value, 100.0, 200.0, None, extra))
    return table(*rows, reference="bf16")


def test_the_eager_and_fast_table_pairs_each_format_with_its_compiled_twin():
    df = _paths(bf16=20.0, bf16_compiled=100.0, bnb_nf4=130.0, bnb_nf4_compiled=110.0,
                bnb_int8=5.0, bnb_int8_compiled=None, gguf_q4_k_m=120.0, torchao_int8wo=80.0)
    rows = {r["format"]: r for r in eager_and_fast(df)}
    assert set(rows) == {"bf16", "bnb-nf4"}  # measured on both paths (int8's fast one failed)
    assert rows["bf16"]["fast"] == "bf16-compiled" and rows["bf16"]["speedup"] == 5.0
    assert rows["bf16"]["compile_s"] == 30.0 and rows["bf16"]["fastest"] == "bf16-compiled"
    assert rows["bnb-nf4"]["fastest"] == "bnb-nf4"  # compiling made it slower here
    assert rows["bnb-nf4"]["speedup"] == pytest.approx(110 / 130)
    assert rows["bnb-nf4"]["resolved"]
    close = df.assign(decode_tok_s_ci_low=df["decode_tok_s"] * 0.8)
    assert not {r["format"]: r for r in eager_and_fast(close)}["bnb-nf4"]["resolved"]
    assert "| bnb-nf4 (95 % intervals overlap) |" in report_text(close, reference="bf16",
                                                                 config=_config(), models={})
    text = report_text(df, reference="bf16", config=_config(), models={})
    assert ("| m | bnb-nf4 | bnb-nf4 | 130.0 [128.7, 131.3] | bnb-nf4-compiled | "
            "110.0 [108.9, 111.1] | 0.85× | 30.0 | bnb-nf4 |") in text
    eager_only = df[~df["precision"].str.endswith("-compiled")]
    assert eager_and_fast(eager_only) == []
    assert "### Eager and fast paths" not in report_text(eager_only, reference="bf16",
                                                          config=_config(), models={})


def test_each_format_on_its_fastest_path_is_placed_against_the_unquantized_fast_path():
    def found(df, reference="bf16"):
        return {f.kind: f for f in against_fast_baseline("m", df, reference)}

    df = _paths(bf16=20.0, bf16_compiled=100.0, bnb_nf4=10.0, bnb_nf4_compiled=150.0,
                bnb_int8=5.0, bnb_int8_compiled=None, gguf_q4_k_m=120.0, fp16=99.5,
                torchao_int8wo=80.0)
    got = found(df)
    assert got["fast_path_faster"].text == (
        "m, each format on its fastest path: bnb-nf4 as bnb-nf4-compiled (150.0 tok/s, 1.50×), "
        "gguf-q4_k_m (120.0 tok/s, 1.20×) decode faster than bf16-compiled (100.0 tok/s at the "
        "headline point, prompt 16, batch 1), the 95 % intervals apart.")
    assert got["fast_path_slower"].text.startswith(
        "m, each format on its fastest path: torchao-int8wo (80.0 tok/s, 0.80×), bnb-int8 "
        "(5.0 tok/s, 0.05×) decode slower than bf16-compiled")
    assert got["fast_path_unclear"].text.startswith(
        "m, each format on its fastest path: fp16 (99.5 tok/s, 0.99×) is not told apart "
        "from bf16-compiled")
    # each sentence only when some format is in it
    slower_only = df[df["precision"].isin(["bf16", "bf16-compiled", "torchao-int8wo"])]
    assert set(found(slower_only)) == {"fast_path_slower"}
    df.loc[df["precision"] == "bnb-nf4-compiled", "decode_tok_s"] = 9.0  # now eager is faster
    assert "bnb-nf4 (10.0 tok/s, 0.10×)" in found(df)["fast_path_slower"].text
    # no unquantized fast path measured: nothing to place against; else the reference's twin
    assert found(df[df["precision"] != "bf16-compiled"]) == {}
    twin = _paths(fp16=20.0, fp16_compiled=100.0, gguf_q4_k_m=120.0)
    assert "faster than fp16-compiled" in found(twin, "fp16")["fast_path_faster"].text
    text = report_text(df, reference="bf16", config=_config(), models={})
    assert "| m | gguf-q4_k_m | gguf-q4_k_m | 120.0 | 1.20 | bf16-compiled | faster |" in text



def test_onnx_int8_is_placed_against_bnb_int8_and_gguf_q8_0_only_when_all_three_ran():
    from quantbench.report.hardware import int8_engines

    df = table(
        ("fp32", "transformers", 20.0, 400.0, 900.0, 10.00),
        ("onnx-int8", "onnxruntime", 50.0, 120.0, 300.0, 10.20, {"kld_mean": 0.012}),
        ("bnb-int8", "bitsandbytes", 8.0, 130.0, 700.0, 10.05, {"kld_mean": 0.004}),
        ("gguf-q8_0", "llama.cpp", 49.9, 110.0, 250.0, 10.01, {"kld_mean": 0.001}),
    )
    found = int8_engines("m", df, REF)
    assert found.text == (
        "m, int8 on three engines: onnx-int8 (ONNX Runtime, dynamic int8) decodes at 50.0 tok/s, "
        "6.25× bnb-int8 (8.0 tok/s: faster), 1.00× gguf-q8_0 (49.9 tok/s: not told apart); "
        "perplexity against fp32: onnx-int8 +2.00 % (KLD 0.0120), bnb-int8 +0.50 % "
        "(KLD 0.0040), gguf-q8_0 +0.10 % (KLD 0.0010) (faster or slower: the 95 % intervals "
        "apart).")
    assert found.text in hardware(df, REF, None)
    df.loc[df["precision"] == "gguf-q8_0", "decode_tok_s_ci_low"] = 60.0  # q8_0 clearly faster
    assert "gguf-q8_0 (49.9 tok/s: slower)" in int8_engines("m", df, REF).text
    df["ppl_delta_pct"] = df["ppl_delta_pct"].where(df["precision"] != "bnb-int8")
    assert "their quality was not measured" in int8_engines("m", df, REF).text
    # one of the three did not run (or failed): no sentence
    df.loc[df["precision"] == "bnb-int8", "status"] = "error"
    assert int8_engines("m", df, REF) is None
    assert not any("int8 on three engines" in line for line in hardware(df, REF, None))
    assert int8_engines("m", df[df["precision"] != "onnx-int8"], REF) is None


def test_a_torchao_format_that_quantised_few_layers_is_an_anomaly(measured):
    """Under half the model's linear layers in the format: named, with the count; most of them
    (all but lm_head, say) or a precision that does not count its layers: nothing."""
    def said(df):
        return [t for t in anomalies(df, REF, Budgets()) if "linear layers" in t]

    df = measured.assign(quantised_linears=None, linears=None)
    assert said(df) == []
    df.loc[df["precision"] == "bnb-nf4", ["quantised_linears", "linears"]] = [210, 211]
    assert said(df) == []
    df.loc[df["precision"] == "bnb-nf4", ["quantised_linears", "linears"]] = [30, 211]
    (text,) = said(df)
    assert text.startswith("m: bnb-nf4 quantised 30 of the model's 211 linear layers (14 %)")


def test_compile_times_from_a_warm_cache_are_named_in_the_limitations(measured):
    def said(df):
        return [t for t in limitations(df, {}, _config(), {"device": "cpu"})
                if "Inductor cache" in t]

    assert said(measured) == []
    df = measured.assign(compile_s=None, compile_cache_hits=None)
    df.loc[df["precision"] == "fp32", ["compile_s", "compile_cache_hits"]] = [30.0, 0]
    assert said(df) == []  # compiled afresh
    df.loc[df["precision"] == "bnb-nf4", ["compile_s", "compile_cache_hits"]] = [4.25, 3]
    (text,) = said(df)
    assert "compiled earlier on this machine): m bnb-nf4 (4.2 s); a first compile" in text


def test_generations_decoded_without_a_refused_compiled_graph_are_named_in_the_limitations(
        measured):
    def said(df):
        return [t for t in limitations(df, {}, _config(), {"device": "cpu"})
                if "sanity generations were decoded without" in t]

    assert said(measured) == []
    df = measured.assign(generations_eager=None)
    assert said(df) == []
    df.loc[df["precision"] == "bnb-nf4", "generations_eager"] = "the step disagrees (reason)"
    (text,) = said(df)
    assert text.startswith("m: bnb-nf4's sanity generations were decoded without its compiled "
                           "graph, which was refused here (the step disagrees (reason))")


def test_records_of_several_runs_are_named_in_the_limitations(measured):
    """Records put together from two runs (other code) get one sentence naming each run's
    precisions; the records of one run get none, also when its jobs measured on several cards."""
    def said(df):
        return [t for t in limitations(df, {}, _config(), {"device": "cuda"})
                if "latency records come from" in t]

    one = measured.assign(git_commit="a" * 40, source_sha256="s1", measured_utc="2026-12-02T01",
                          gpu_uuid=[f"GPU-{i}" for i in range(len(measured))])
    assert said(one) == []
    two = one.copy()
    two.loc[two["backend"] == "llama.cpp", ["git_commit", "source_sha256", "measured_utc"]] = [
        "b" * 40, "s2", "2026-12-01T15"]
    (text,) = said(two)
    assert text.startswith("The latency records come from 2 runs")
    assert "commit aaaaaaa, measured 2026-12-02: m fp32, m bnb-nf4" in text
    assert "commit bbbbbbb, measured 2026-12-01: m gguf-f16, m gguf-q8_0" in text
    dirty = one.copy()
    dirty.loc[dirty["precision"] == "fp32", "source_sha256"] = "s3"  # edited between jobs
    assert said(dirty)[0].startswith("The latency records come from 2 runs")
    modified = two.assign(git_dirty=two["backend"] == "llama.cpp")
    assert "commit bbbbbbb (modified tree), measured 2026-12-01: m gguf-f16" in said(modified)[0]
    assert "commit aaaaaaa, measured" in said(modified)[0]
    assert said(measured) == []  # summaries without the columns (older ones) say nothing
    no_latency = one.copy()
    no_latency.loc[no_latency["precision"] == "fp32", "git_commit"] = None
    assert said(no_latency) == []  # a row without a latency record is not another run


def test_same_layout_precisions_with_intervals_apart_say_the_intervals_are_too_narrow():
    """gguf-q3_k_m and gguf-q3_k_m-imat hold the same tensor types and sizes: decode intervals
    apart between them are the jobs' time, not the format; a file of another size, or a KV
    cache of another type, is not such a twin."""
    from quantbench.report.anomalies import layout_twins

    def row(precision, tok_s, low, high, size=87.5, types="q3_K 70%, q5_K 30%"):
        return {"model": "m", "precision": precision, "decode_tok_s": tok_s,
                "decode_tok_s_ci_low": low, "decode_tok_s_ci_high": high, "size_mib": size,
                "weight_types": types}

    df = pd.DataFrame([row("gguf-q3_k_m", 241.7, 230.6, 252.8),
                       row("gguf-q3_k_m-imat", 190.4, 188.6, 192.2),
                       row("gguf-q2_k", 150.0, 149.0, 151.0, size=70.0),
                       row("gguf-f16", 131.0, 127.0, 135.0, size=258.0, types="f16 100%"),
                       row("gguf-f16-kvq8", 100.0, 99.0, 101.0, size=258.0, types="f16 100%")])
    [twin] = layout_twins(df)
    assert twin.text == (
        "m: gguf-q3_k_m and gguf-q3_k_m-imat hold the same tensor types and sizes and run with "
        "the same settings (their values differ, not the work), yet decode at 241.7 [230.6, "
        "252.8] and 190.4 [188.6, 192.2] tok/s, intervals apart (1.27×): between jobs the "
        "speed moved more than the intervals over processes show, so a difference between "
        "precisions of that size may come from when each was measured, not from its format.")
    df.loc[1, ["decode_tok_s_ci_high"]] = 235.0  # intervals that meet: nothing to say
    assert layout_twins(df) == []
