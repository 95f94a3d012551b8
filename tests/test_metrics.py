"""The typed figures of quality and GPU trace records (quantbench.metrics)."""

import json

import pytest

from quantbench.metrics import GpuMetrics, QualityMetrics

PPL = {"ppl": 10.0, "ppl_stderr": 0.5, "nll_mean": 2.3, "n_tokens": 128}
DIVERGENCE = {"kld_mean": 0.02, "kld_stderr": None, "kld_mean_ci95": [None, None],
              "kld_median": 0.01, "kld_p99": 0.2, "top1_agreement_pct": 95.0,
              "ref_tail_mass_mean": 0.01, "delta_p_p01_pct": -5.0, "delta_p_p05_pct": -2.0,
              "delta_p_p50_pct": 0.0, "delta_p_p95_pct": 2.0, "delta_p_p99_pct": 5.0,
              "ln_ppl_ratio": 0.01, "ln_ppl_ratio_stderr": None, "ppl_delta_pct": 1.005,
              "ppl_delta_pct_ci95": [0.5, 1.5]}


def test_a_record_holds_each_part_whole_or_not_at_all():
    """Two windows: no bootstrap error (None, kept: the comparison ran); a reference: no
    comparison at all (no key)."""
    compared = QualityMetrics.measured(PPL, 2, divergence=DIVERGENCE,
                                       agreement={"gen_exact_match_pct": 50.0,
                                                  "gen_first_divergence_mean": 3.0})
    m = compared.to_metrics()
    assert m == {**PPL, "n_windows": 2, **DIVERGENCE, "gen_exact_match_pct": 50.0,
                 "gen_first_divergence_mean": 3.0}
    assert "kld_stderr" in m and m["kld_stderr"] is None
    reference = QualityMetrics.measured(PPL, 2, floor={"kld_floor_self": 1e-7}).to_metrics()
    assert reference == {**PPL, "n_windows": 2, "kld_floor_self": 1e-7}
    assert QualityMetrics.from_dict(json.loads(json.dumps(m))) == compared


def test_the_kv_twins_comparison_is_prefixed_and_a_figure_the_type_lacks_is_an_error():
    m = QualityMetrics.measured(PPL, 4, kv_divergence=DIVERGENCE).to_metrics()
    assert m["kv_kld_mean"] == 0.02 and "kld_mean" not in m
    assert set(m) == {*PPL, "n_windows", *(f"kv_{k}" for k in DIVERGENCE)}
    with pytest.raises(TypeError, match="unmeasurable"):
        QualityMetrics.measured(PPL, 4, divergence={**DIVERGENCE, "unmeasurable": 1.0})


def test_the_summary_takes_an_interval_as_two_columns():
    q = QualityMetrics.measured(PPL, 4, divergence=DIVERGENCE)
    s = q.summary_metrics()
    assert (s["ppl_delta_pct_ci_low"], s["ppl_delta_pct_ci_high"]) == (0.5, 1.5)
    assert "ppl_delta_pct" not in s  # the summary's is the ratio of the perplexities
    assert s["kv_ppl_delta_pct_ci_low"] is None and s["kv_kld_mean"] is None
    assert QualityMetrics.summary_columns("change") == ["ppl_delta_pct_ci_low",
                                                        "ppl_delta_pct_ci_high"]


def test_a_gpu_trace_gives_energy_per_token_only_where_decode_has_one():
    phase = {"s": 1.0, "power_w": 300.0, "energy_j": 4.0, "energy_j_per_tok": 0.5,
             "energy_method": "counter", "gpu_util_pct": 90.0, "mem_util_pct": 50.0,
             "sm_clock_mhz": 1980.0, "samples": 10}
    m = GpuMetrics.from_phases({"prefill": phase, "decode": phase}).to_metrics()
    assert m["energy_j_per_tok"] == 0.5 and m["tok_per_j"] == 2.0
    assert list(m)[:9] == [f"prefill_{k}" for k in phase]
    unknown = {**phase, "energy_j": None, "energy_j_per_tok": None, "energy_method": None}
    m = GpuMetrics.from_phases({"prefill": phase, "decode": unknown}).to_metrics()
    assert m["decode_energy_j"] is None and m["decode_energy_method"] is None  # kept
    assert "energy_j_per_tok" not in m and "tok_per_j" not in m
    assert GpuMetrics.summary_columns() == ["energy_j_per_tok", "tok_per_j"]
    assert GpuMetrics.units()["tok_per_j"] == "tok/J"
