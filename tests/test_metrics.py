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


# a GPU trace made before the decode steps' energy was apart from the prefills': its "decode"
# phase was whole runs (each with its prefill), and its per-token figures of it mixed the two
OLD_TRACE = {"load_s": 3.0, "prefill_s": 0.05, "prefill_power_w": 127.0, "prefill_energy_j": 6.8,
             "prefill_energy_j_per_tok": 0.0067, "prefill_energy_method": "power samples",
             "prefill_gpu_util_pct": 6.0, "prefill_mem_util_pct": 1.0,
             "prefill_sm_clock_mhz": 1980.0, "prefill_samples": 2, "decode_s": 1.54,
             "decode_power_w": 135.8, "decode_energy_j": 221.6, "decode_energy_j_per_tok": 3.46,
             "decode_energy_method": "counter", "decode_gpu_util_pct": 14.4,
             "decode_mem_util_pct": 1.9, "decode_sm_clock_mhz": 1980.0, "decode_samples": 62,
             "energy_j_per_tok": 3.46, "tok_per_j": 0.289}


def test_an_old_gpu_traces_mixed_figures_are_never_read_as_the_decode_steps():
    """Its window of whole runs reads as today's generate window; no figure of it is a decode
    figure, and its figures per decoded token (prefills in them) are not read at all."""
    m = GpuMetrics.upgraded(OLD_TRACE)
    assert m["generate_energy_j"] == 221.6 and m["generate_s"] == 1.54
    assert m["generate_energy_method"] == "counter" and m["generate_samples"] == 62
    assert not [k for k in m if k.startswith("decode_")]
    assert not {"energy_j_per_tok", "tok_per_j", "decode_energy_j_per_tok"} & set(m)
    assert m["prefill_j_per_tok"] == 0.0067  # its prefill phase was prefills alone
    assert m["load_s"] == 3.0
    trace = GpuMetrics.from_dict(m)
    assert trace.decode_j_per_tok is None and trace.decode_energy_j is None
    assert trace.summary_metrics() == {"idle_w": None}
    today = GpuMetrics(decode_s=1.0, decode_energy_j=4.0, decode_j_per_tok=0.5).to_metrics()
    assert GpuMetrics.upgraded(today) == today


def test_a_gpu_traces_summary_figure_is_its_idle_draw_and_each_phase_has_its_unit():
    assert GpuMetrics.summary_columns() == ["idle_w"]
    units = GpuMetrics.units()
    assert units["decode_j_per_tok"] == units["prefill_j_per_tok"] == "J/tok"
    assert units["idle_w"] == units["power_limit_w"] == units["decode_power_w"] == "W"
