"""The decision table: each scenario answered only from its own workload's point, the pick and
runner-up with a margin that is a tie unless the intervals part, targets and quality budgets
that exclude, and what would change the pick, from measured data only."""

from __future__ import annotations

import pytest
from test_operating import point, summary, table

from quantbench.report import decision
from quantbench.report.decision import Scenario
from quantbench.report.findings import Budgets
from quantbench.report.markdown import report_text

SINGLE = Scenario("single", sequences=1, prompt_tokens=16, context_depth=0, ttft_p90_ms=100,
                  token_p90_ms=30)
CHAT = Scenario("chat", sequences=16, prompt_tokens=16, context_depth=4096, ttft_p90_ms=2000,
                token_p90_ms=100)
OFFLINE = Scenario("offline", sequences="max", prompt_tokens=16)


def pt(precision, batch, tok_s, *, ttft=50.0, depth=0, spread=0.01, **kw):
    return point(precision, batch, tok_s, depth=depth, spread=spread, prefill_ms_p90=ttft, **kw)


DEFAULT_BUDGETS = Budgets()


def answer(points, scenario, quality=None, budgets=DEFAULT_BUDGETS, **kw):
    q = quality if quality is not None else summary(("bf16", 10.0), ("gguf-q8_0", 10.05),
                                                   ("gguf-q4_k_m", 10.5), ("gguf-q2_k", 14.0))
    return decision.answer("m", scenario, points, q, reference="bf16", budgets=budgets, **kw)


def test_the_fastest_within_targets_and_budget_is_picked_with_its_margin_and_evidence():
    pts = table(pt("bf16", 1, 40.0), pt("gguf-q8_0", 1, 80.0), pt("gguf-q4_k_m", 1, 100.0),
                pt("gguf-q2_k", 1, 150.0))
    q = summary(("bf16", 10.0), ("gguf-q8_0", 10.05), ("gguf-q4_k_m", 10.1), ("gguf-q2_k", 14.0))
    a = answer(pts, SINGLE, quality=q)
    # gguf-q2_k is the fastest, but 40 % worse in perplexity: outside the 2 % budget
    assert a.status == "answered" and a.pick["precision"] == "gguf-q4_k_m"
    assert a.runner_up["precision"] == "gguf-q8_0"
    assert a.margin_pct == pytest.approx(25.0) and a.separated
    assert a.evidence == "Δppl +1.00 %"
    row = a.row()
    assert row["pick"] == "gguf-q4_k_m" and "beyond the 95 % intervals" in row["margin"]
    assert row["vs_unquantized"] == "2.50× bf16"
    assert row["ttft_p90"] == 50.0


def test_a_margin_within_the_intervals_is_a_tie_naming_both():
    pts = table(pt("gguf-q8_0", 1, 100.0, spread=0.05), pt("gguf-q4_k_m", 1, 104.0, spread=0.05))
    a = answer(pts, SINGLE, budgets=Budgets(quality_budget_pct=10))
    assert a.status == "tie" and not a.separated
    assert a.row()["pick"] == "tie: gguf-q4_k_m / gguf-q8_0"
    # the same speeds with narrow intervals are apart: a pick
    pts = table(pt("gguf-q8_0", 1, 100.0), pt("gguf-q4_k_m", 1, 104.0))
    assert answer(pts, SINGLE, budgets=Budgets(quality_budget_pct=10)).status == "answered"


def test_a_tie_names_every_precision_whose_interval_reaches_the_pick_s():
    """The runner-up is apart from the pick, a slower one with a wide interval is not: it is
    in the tie; the speed-up over an unquantized path that is tied is not told apart."""
    pts = table(pt("gguf-q8_0", 1, 160.0, spread=0.2), pt("gguf-f16-kvq8", 1, 141.0),
                pt("bf16", 1, 131.0, spread=0.02), pt("gguf-q4_k_m", 1, 100.0))
    q = summary(("bf16", 10.0), ("gguf-q8_0", 10.05), ("gguf-f16-kvq8", 10.0),
                ("gguf-q4_k_m", 10.1))
    a = answer(pts, SINGLE, quality=q)
    assert a.status == "tie"
    assert [t["precision"] for t in a.tied] == ["gguf-f16-kvq8", "bf16"]
    row = a.row()
    assert row["pick"] == "tie: gguf-q8_0 / gguf-f16-kvq8 / bf16"
    assert row["vs_unquantized"] == "1.22× bf16 (not told apart)"
    names = ["gguf-q8_0", "gguf-q6_k", "gguf-q5_k_m", "gguf-q5_k_s", "gguf-q4_k_m", "gguf-q4_0",
             "gguf-q3_k_m"]
    many = table(*(pt(n, 1, 110.0 - i, spread=0.1) for i, n in enumerate(names)))
    q = summary(("bf16", 10.0), *((n, 10.0) for n in names))
    assert answer(many, SINGLE, quality=q).row()["pick"] == (
        "tie: gguf-q8_0 / gguf-q6_k / gguf-q5_k_m / gguf-q5_k_s (+3 more)")


def test_a_target_excludes_the_fastest_and_none_within_says_so():
    pts = table(pt("gguf-q8_0", 1, 100.0, ttft=90.0), pt("gguf-q4_k_m", 1, 200.0, ttft=150.0))
    a = answer(pts, SINGLE, budgets=Budgets(quality_budget_pct=10))
    assert a.pick["precision"] == "gguf-q8_0"  # q4_k_m is faster, its TTFT p90 over 100 ms
    slow = table(pt("gguf-q8_0", 1, 100.0, ttft=190.0), pt("gguf-q4_k_m", 1, 200.0, ttft=150.0))
    a = answer(slow, SINGLE, budgets=Budgets(quality_budget_pct=10))
    assert a.status == "none_within" and a.pick is None
    assert a.row()["pick"] == "none meets TTFT p90 ≤ 100 ms, per-token p90 ≤ 30 ms"


def test_a_scenario_not_measured_names_the_nearest_point_and_never_answers_from_it():
    pts = table(pt("bf16", 1, 40.0), pt("bf16", 16, 300.0, depth=512),
                pt("gguf-q4_k_m", 16, 600.0, depth=512))
    a = answer(pts, CHAT)
    assert a.status == "not_measured" and a.pick is None
    assert a.nearest == "b16 d512 p16"
    assert a.row()["pick"] == "not measured (nearest measured point: b16 d512 p16)"


def test_a_target_whose_figure_was_not_recorded_is_not_checked():
    pts = table(point("gguf-q8_0", 1, 100.0), point("gguf-q4_k_m", 1, 200.0))
    assert "prefill_ms_p90" not in pts
    a = answer(pts, SINGLE, budgets=Budgets(quality_budget_pct=10))
    assert a.status == "unchecked" and a.pick is None
    assert a.row()["pick"].startswith("not checkable: TTFT p90 not recorded")


def test_offline_takes_each_precision_at_the_largest_batch_it_ran():
    pts = table(pt("bf16", 1, 40.0), pt("bf16", 64, 1000.0),
                pt("bf16", 256, 1.0, status="oom"),
                pt("gguf-q4_k_m", 1, 100.0), pt("gguf-q4_k_m", 256, 3000.0))
    a = answer(pts, OFFLINE, budgets=Budgets(quality_budget_pct=10))
    assert a.pick["precision"] == "gguf-q4_k_m" and a.pick["batch_size"] == 256
    assert a.runner_up["precision"] == "bf16" and a.runner_up["batch_size"] == 64
    assert a.note == "largest that ran; 1 larger point(s) failed"
    ran = table(pt("bf16", 1, 40.0), pt("bf16", 4, 100.0))
    assert answer(ran, OFFLINE).note == "largest measured: b4; none larger tried"


def test_random_weights_give_no_quality_evidence_and_no_budget():
    pts = table(pt("bf16", 1, 40.0), pt("gguf-q2_k", 1, 150.0))
    no_quality = summary(("bf16", 10.0), ("gguf-q2_k", 14.0))
    no_quality["ppl"] = no_quality["ppl_delta_pct"] = float("nan")
    a = answer(pts, SINGLE, quality=no_quality, weights_note="random weights")
    assert a.pick["precision"] == "gguf-q2_k" and a.evidence == "none: random weights"


def test_what_would_change_the_pick_comes_from_measured_points_only():
    pts = table(pt("bf16", 1, 40.0), pt("gguf-q8_0", 1, 80.0), pt("gguf-q4_k_m", 1, 100.0),
                pt("gguf-q8_0", 1, 60.0, depth=4096), pt("gguf-q4_k_m", 1, 50.0, depth=4096))
    a = answer(pts, SINGLE, budgets=Budgets(quality_budget_pct=10))
    assert a.changes == ["A quality budget below +5.00 % perplexity: gguf-q8_0.",
                         "At depth 4096: gguf-q8_0 (60.0 tok/s)."]
    same = table(pt("gguf-q8_0", 1, 80.0), pt("gguf-q4_k_m", 1, 100.0))
    assert answer(same, SINGLE, budgets=Budgets(quality_budget_pct=10)).changes == [
        "A quality budget below +5.00 % perplexity: gguf-q8_0."]
    # at depth, a fastest whose interval the next one reaches is a tie there, not "still"
    tied = table(pt("gguf-q8_0", 1, 80.0), pt("gguf-q4_k_m", 1, 100.0),
                 pt("gguf-q8_0", 1, 48.0, depth=4096), pt("gguf-q4_k_m", 1, 50.0, depth=4096,
                                                           spread=0.05))
    assert answer(tied, SINGLE, budgets=Budgets(quality_budget_pct=10)).changes[-1] == (
        "At depth 4096: a tie of gguf-q4_k_m / gguf-q8_0.")


def test_a_quantized_kv_cache_is_not_an_unquantized_path():
    assert not decision.is_quantized("gguf-f16") and not decision.is_quantized("bf16-compiled")
    assert decision.is_quantized("gguf-f16-kvq8") and decision.is_quantized("gguf-q8_0")


def test_speed_ups_are_against_the_fastest_unquantized_path_not_the_eager_reference():
    """A host-bound eager reference (bf16, 10 tok/s) made a 10x headline; against the fastest
    unquantized path (bf16-compiled, 50 tok/s) the same format is 2x, and against its own
    engine's (gguf-f16, 80 tok/s) 1.25x."""
    s = summary(("bf16", 10.0), ("bf16-compiled", 10.0), ("gguf-f16", 10.0), ("gguf-q4_k_m", 10.3))
    s["decode_tok_s"] = [10.0, 50.0, 40.0, 100.0]
    s["device"] = "cuda"
    text = report_text(s, reference="bf16", config={"latency": {"prompt_tokens": [16],
                       "new_tokens": 8, "warmup_runs": 1, "measured_runs": 2},
                       "dataset": {"name": "x"}, "perplexity": {"mode": "llama.cpp",
                       "context_length": 64, "max_windows": 2}, "report": {}})
    line = next(ln for ln in text.splitlines() if "fastest decode at the headline point" in ln)
    assert "(2.00× bf16-compiled, the fastest unquantized path measured; 2.50× gguf-f16, its " \
           "own engine's)" in line
    assert "10.00×" not in line


def test_the_fastest_is_said_tied_with_those_its_interval_reaches():
    """Intervals over processes that overlap: the fastest is "not told apart" from those, and
    its speed-up over an unquantized path it is not apart from says so; without intervals
    (one process) nothing is said either way."""
    from quantbench.report.markdown import headline_findings

    s = summary(("bf16", 10.0), ("gguf-f16", 10.0), ("gguf-q8_0", 10.05), ("gguf-q4_k_m", 10.3))
    s["decode_tok_s"] = [40.0, 131.0, 160.0, 150.0]
    s["device"] = "cpu"
    s["decode_tok_s_ci_low"] = [39.0, 127.0, 117.0, 149.0]
    s["decode_tok_s_ci_high"] = [41.0, 135.0, 203.0, 151.0]
    [line] = [x for x in headline_findings(s, "bf16") if "fastest" in x]
    assert line == ("m: the fastest decode at the headline point, gguf-q8_0 at 160.0 tok/s, is "
                    "not told apart from gguf-q4_k_m, gguf-f16: their 95 % intervals reach "
                    "its (1.22× gguf-f16, the fastest unquantized path measured, not told "
                    "apart).")
    s[["decode_tok_s_ci_low", "decode_tok_s_ci_high"]] = float("nan")
    [line] = [x for x in headline_findings(s, "bf16") if "fastest" in x]
    assert line == ("m: fastest decode at the headline point is gguf-q8_0 at 160.0 tok/s "
                    "(1.22× gguf-f16, the fastest unquantized path measured).")


def test_the_decision_comes_first_and_the_report_stays_short_before_its_appendix(tmp_path):
    pts = table(*[pt(p, b, s * b ** 0.5, depth=d, ttft=20.0 * b)
                  for p, s in (("bf16", 40.0), ("gguf-q8_0", 80.0), ("gguf-q4_k_m", 100.0))
                  for b in (1, 4, 16, 64) for d in (0, 512, 4096)])
    s = summary(("bf16", 10.0), ("gguf-q8_0", 10.05), ("gguf-q4_k_m", 10.5))
    config = {"latency": {"prompt_tokens": [16], "new_tokens": 8, "warmup_runs": 1,
                          "measured_runs": 2, "batch_sizes": [1, 4, 16, 64],
                          "context_depths": [0, 512, 4096]},
              "dataset": {"name": "x"},
              "perplexity": {"mode": "llama.cpp", "context_length": 64, "max_windows": 2},
              "report": {"quality_budget_pct": 10, "scenarios": [
                  SINGLE.__dict__, CHAT.__dict__, OFFLINE.__dict__]}}
    text = report_text(s, reference="bf16", config=config, points=pts,
                       points_out=tmp_path / "points.md")
    lines = text.splitlines()
    assert [ln for ln in lines if ln.startswith("## ")][0] == "## Decision"
    assert lines.index("## Appendix") < 200
    table_rows = [ln for ln in text.split("## Decision")[1].split("## Validity")[0].splitlines()
                  if ln.startswith("| m |")]
    assert [r.split(" | ")[1:3] for r in table_rows] == [
        ["single", "gguf-q4_k_m"], ["chat", "gguf-q4_k_m"], ["offline", "gguf-q4_k_m"]]
    assert (tmp_path / "points.md").is_file()


def test_a_pick_of_another_run_than_the_reference_is_marked_in_the_decision_table():
    from quantbench.report.markdown import decision_context

    pts = table(pt("bf16", 1, 40.0), pt("gguf-q8_0", 1, 80.0), pt("gguf-q4_k_m", 1, 100.0))
    s = summary(("bf16", 10.0), ("gguf-q8_0", 10.05), ("gguf-q4_k_m", 10.1))
    s["run_id"] = ["new", "new", "old"]
    config = {"report": {"scenarios": [SINGLE.__dict__]}}
    [row] = decision_context(s, pts, config, reference="bf16", budgets=Budgets(),
                             models={})["rows"]
    assert row["pick"] == "gguf-q4_k_m †" and row["runner_up"] == "gguf-q8_0"
    s["run_id"] = "new"
    [row] = decision_context(s, pts, config, reference="bf16", budgets=Budgets(),
                             models={})["rows"]
    assert "†" not in row["pick"]


def test_an_accuracy_budget_excludes_a_precision_that_lost_more_points_and_the_evidence_says():
    pts = table(pt("bf16", 1, 40.0), pt("gguf-q8_0", 1, 80.0), pt("gguf-q4_k_m", 1, 100.0))
    q = summary(("bf16", 10.0), ("gguf-q8_0", 10.05), ("gguf-q4_k_m", 10.1))
    q["acc_change_pp"] = [0.0, -1.0, -6.0]
    q["acc_change_lo_pp"], q["acc_change_hi_pp"] = q["acc_change_pp"] - 2, q["acc_change_pp"] + 2
    q["flips_lost"], q["flips_gained"] = [0, 3, 9], [0, 2, 3]
    # without an accuracy budget the faster gguf-q4_k_m; with a 5-point budget, gguf-q8_0
    assert answer(pts, SINGLE, quality=q).pick["precision"] == "gguf-q4_k_m"
    a = answer(pts, SINGLE, quality=q, budgets=Budgets(accuracy_drop_pp=5.0))
    assert a.pick["precision"] == "gguf-q8_0"
    assert a.evidence == ("Δppl +0.50 %, accuracy -1.0 pp [-3.0, +1.0] (3 right→wrong, "
                          "2 wrong→right)")
    tight = Scenario(**{**SINGLE.__dict__, "accuracy_drop_pp": 0.5})
    assert answer(pts, tight, quality=q, budgets=Budgets(accuracy_drop_pp=5.0)
                  ).pick["precision"] == "bf16"


def test_a_change_that_rounds_to_nothing_has_no_sign_of_its_own():
    assert decision.points(-0.04) == "+0.0" and decision.points(-0.0) == "+0.0"
    assert decision.points(-0.06) == "-0.1" and decision.points(2.25) == "+2.2"


def test_a_figure_that_rounds_to_nothing_is_printed_without_a_sign():
    from quantbench.report.numbers import fmt

    assert fmt(-0.004, 2) == "0.00" and fmt(-0.0, 1) == "0.0" and fmt(-0.006, 2) == "-0.01"
