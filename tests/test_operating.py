"""The operating-point analysis on small synthetic sweeps: baselines, crossovers, the ridge
batch, the latency budget, the capacity fit, costs, recommendations and the report section."""

import math

import pandas as pd
import pytest

from quantbench import precisions, roofline
from quantbench.report import operating, point_table, scaling, serving
from quantbench.report.aggregate import SUMMARY_COLUMNS, TEXT_COLUMNS
from quantbench.report.findings import Budgets
from quantbench.report.markdown import report_text
from quantbench.report.point_table import Settings

SHAPE = roofline.Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128, vocab=256)
# ridge = 2 TFLOP/s / 1000 GB/s = 2 FLOP/byte
MACHINE = {"device": "cuda", "peak_bw_gb_s": 1000.0, "matmul_tflops": {"bfloat16": 2.0},
           "gpu_memory_total_mib": 8000.0}


def point(precision, batch, tok_s, *, prompt=16, depth=0, spread=0.01, status="ok", **extra):
    """One row of results/points.csv (the columns aggregate writes)."""
    p = precisions.get(precision)
    row = {"model": "m", "precision": precision, "backend": p.backend,
           "status": status, "reason": None if status == "ok" else "out of memory",
           "prompt_tokens": prompt, "batch_size": batch, "context_depth": depth,
           "prefill_ms": 5.0, "prefill_tok_s": batch * prompt / 5e-3,
           "decode_tok_s": tok_s, "decode_tok_s_ci_low": tok_s * (1 - spread),
           "decode_tok_s_ci_high": tok_s * (1 + spread),
           "decode_tok_s_per_seq": tok_s / batch, "decode_steady_tok_s": tok_s,
           "token_ms_p50": 1e3 * batch / tok_s, "token_ms_p90": 1.1e3 * batch / tok_s,
           "token_ms_p99": 1.2e3 * batch / tok_s, "first_step_ms": 2.0,
           "decode_ctx_mean": depth + prompt + 8, "peak_mem_mib": 1000.0, "kv_cache_mib": None,
           "weights_mib": 0.1, "prefill_j_per_tok": None, "decode_j_per_tok": None,
           "device": "cuda", "gpu_name": "g",
           "run_id": "r", "kv_elem_bytes": 2.0}
    if status != "ok":
        for k in ("decode_tok_s", "decode_tok_s_ci_low", "decode_tok_s_ci_high",
                  "decode_tok_s_per_seq", "token_ms_p50", "token_ms_p90", "token_ms_p99"):
            row[k] = None
    row.update(extra)
    return row


def table(*rows):
    return pd.DataFrame(list(rows))


def summary(*rows, reference="bf16"):
    """A summary from (precision, ppl)."""
    df = pd.DataFrame([{"model": "m", "precision": p, "status": "ok", "decode_tok_s": 1.0,
                        "ppl": ppl, "kld_mean": None, "kv_elem_bytes": 2.0, "size_mib": 100.0,
                        "peak_mem_mib": 1000.0} for p, ppl in rows])
    df["backend"] = [precisions.get(p).backend for p in df["precision"]]
    df = df.reindex(columns=SUMMARY_COLUMNS)
    numeric = [c for c in SUMMARY_COLUMNS if c not in TEXT_COLUMNS]
    df[numeric] = df[numeric].astype(float)
    ref = df.loc[df["precision"] == reference, "ppl"].iloc[0]
    df["ppl_delta_pct"] = (df["ppl"] / ref - 1) * 100
    return df


def curve(precision, speeds, batches=(1, 4, 16, 64), **kw):
    return [point(precision, b, s, **kw) for b, s in zip(batches, speeds, strict=True)]


# -- baselines ------------------------------------------------------------------------------------




# -- crossover ------------------------------------------------------------------------------------

def _crossovers(q_speeds, base_speeds=(100, 200, 400, 800)):
    pts = table(*curve("gguf-f16", base_speeds), *curve("gguf-q4_k_m", q_speeds))
    return scaling.crossover_findings(pts)


def test_faster_at_every_batch_size_only_when_every_interval_is_apart():
    [f] = _crossovers((200, 400, 800, 1600))
    assert f.kind == "crossover_everywhere" and f.names["baseline"] == "gguf-f16"
    assert "faster than gguf-f16 at every measured batch size (1 to 64, 4 sizes" in f.text
    assert "2.00× at batch 1" in f.text
    [f] = _crossovers((200, 400, 800, 802))  # the last intervals overlap
    assert f.kind == "crossover_switch"
    assert "faster up to batch 16, a tie from batch 64" in f.text


def test_never_faster_counts_the_slower_and_unclear_sizes():
    [f] = _crossovers((50, 201, 300, 400))
    assert f.kind == "crossover_never"
    assert "never clearly faster than gguf-f16" in f.text
    assert "slower at 3 and a tie (95 % intervals overlap) at 1 of 4" in f.text
    [f] = _crossovers((50, 100, 300, 900))
    assert f.kind != "crossover_never"
    [f] = _crossovers((50, 100, 200, 400))  # slower at every size: no "a tie at 0"
    assert f.kind == "crossover_never"
    assert "slower at 4 of 4 sizes" in f.text and "a tie" not in f.text


def test_the_switch_names_where_the_quantized_format_stops_or_starts_being_faster():
    [down] = _crossovers((200, 400, 300, 400))  # the 4-bit format loses at large batches
    assert down.kind == "crossover_switch"
    assert "faster up to batch 4, slower from batch 16" in down.text
    [first] = _crossovers((200, 150, 300, 400))  # faster at the first size only
    assert "faster at batch 1, slower from batch 4" in first.text
    [up] = _crossovers((50, 100, 800, 1600))
    assert "slower up to batch 4, faster from batch 16" in up.text
    [mixed] = _crossovers((200, 100, 800, 400))
    assert mixed.kind == "crossover_mixed"
    assert ("no single crossover over batch 1 to 64: faster at batch 1 (2.00×) and 16 (2.00×); "
            "slower at batch 4 (0.50×) and 64 (0.50×)") in mixed.text


def test_a_loss_at_some_batch_size_is_never_hidden_behind_not_clearly_faster_or_only():
    # faster at 1 and 4, a tie at 16, clearly slower at 64 (0.92x)
    [f] = _crossovers((200, 400, 400, 736))
    assert f.kind == "crossover_switch" and f.names["other"] == "mixed"
    assert ("faster up to batch 4, then tie at batch 16 (1.00×); slower at "
            "batch 64 (0.92×)") in f.text
    assert "not clearly faster" not in f.text
    [f] = _crossovers((200, 400, 400, 800))  # no loss anywhere: the short form
    assert "faster up to batch 4, a tie from batch 16" in f.text
    # faster at batch 4 only, a 27 % loss at 64: named with its speed-up
    [f] = _crossovers((100, 400, 396, 584))
    assert f.kind == "crossover_mixed" and "only" not in f.text
    assert ("tie at batch 1 (1.00×) and 16 (0.99×); faster at batch 4 "
            "(2.00×); slower at batch 64 (0.73×) (95 % intervals).") in f.text
    # slower, then not told apart, then faster: both named before the switch
    [f] = _crossovers((50, 201, 800, 1600))
    assert ("slower at batch 1 (0.50×); tie at batch 4 (1.00×); faster from "
            "batch 16") in f.text


def test_without_intervals_no_batch_size_counts_as_faster():
    pts = table(*curve("gguf-f16", (100, 200, 400, 800)),
                *curve("gguf-q4_k_m", (200, 400, 800, 1600), decode_tok_s_ci_low=None,
                       decode_tok_s_ci_high=None))
    [f] = scaling.crossover_findings(pts)
    assert f.kind == "crossover_never"
    assert "a tie (95 % intervals overlap or are unavailable) at 4 of 4" in f.text


def test_the_crossover_takes_its_verdicts_from_the_intervals_over_processes():
    """The same intervals as every other verdict: a speed-up of 1.2x is a tie where the two
    points' intervals over processes overlap, faster where they are apart."""
    base = curve("gguf-f16", (100, 200), batches=(1, 4))
    wide = table(*base, *curve("gguf-q4_k_m", (120, 240), batches=(1, 4), spread=0.2))
    narrow = table(*base, *curve("gguf-q4_k_m", (120, 240), batches=(1, 4), spread=0.01))
    assert set(scaling.against_baseline(wide)["state"]) == {point_table.UNCLEAR} == {"tie"}
    assert set(scaling.against_baseline(narrow)["state"]) == {point_table.FASTER}
    assert scaling.against_baseline(narrow)["intervals"].all()


def test_a_single_batch_size_or_no_baseline_gives_no_crossover_statement():
    assert scaling.crossover_findings(table(point("gguf-f16", 1, 100),
                                              point("gguf-q4_k_m", 1, 200))) == []
    assert scaling.crossover_findings(table(*curve("gguf-q4_k_m", (1, 2, 3, 4)))) == []


# -- MBU, MFU and the ridge -----------------------------------------------------------------------

def test_mbu_and_mfu_of_each_point_count_weights_kv_and_flops_per_step():
    pts = point_table.prepare(table(point("gguf-q4_k_m", 4, 1000.0, depth=100, prompt=16)),
                            machine=MACHINE, shapes={"m": SHAPE})
    row = pts.iloc[0]
    ctx = 100 + 16 + 8
    kv_per_token = 2 * 2 * 2 * 16 * 2  # K and V, layers, KV heads, head dim, bytes
    step_bytes = 0.1 * 2**20 + 4 * ctx * kv_per_token
    step_s = 4 / 1000.0
    assert row["decode_step_mib"] == pytest.approx(step_bytes / 2**20)
    assert row["mbu_pct"] == pytest.approx(100 * step_bytes / step_s / 1000e9)
    flops = 2 * SHAPE.matmul_params * 4
    assert row["decode_mfu_pct"] == pytest.approx(100 * flops / step_s / 2e12)
    assert row["decode_flop_per_byte"] == pytest.approx(flops / step_bytes)


def test_decode_turns_compute_bound_at_the_batch_where_intensity_crosses_the_ridge():
    # weights 0.1 MiB, 100 tokens of context: 2 P B = 2 (W + B c k) at B = 2 W / (2 P - 2 c k)
    pts = point_table.prepare(table(*curve("gguf-q4_k_m", (10, 20, 40, 80), batches=(1, 2, 4, 8),
                                         prompt=92)),
                            machine=MACHINE, shapes={"m": SHAPE})
    expected = 2 * 0.1 * 2**20 / (2 * SHAPE.matmul_params - 2 * 100 * 256)
    assert 1 < expected < 2
    [f] = scaling.compute_bound_findings(pts, MACHINE)
    assert f.kind == "compute_bound_reached"
    assert f.numbers["batch"] == 2 and f.numbers["ridge_batch"] == pytest.approx(expected)
    assert "turns compute-bound from about batch 1.6" in f.text and "ridge point of 2" in f.text


def test_compute_bound_is_not_reached_below_the_ridge_and_never_when_kv_dominates():
    short = point_table.prepare(table(point("gguf-q4_k_m", 1, 10.0, prompt=92)),
                              machine=MACHINE, shapes={"m": SHAPE})
    [f] = scaling.compute_bound_findings(short, MACHINE)
    assert f.kind == "compute_bound_not_reached" and not f.names["never"]
    assert "stays memory-bound in the measured range" in f.text
    assert "it would take batch 1.6 (largest measured: 1)" in f.text
    # 1000 tokens of context: each sequence's KV reads outgrow its FLOPs at this ridge
    deep = point_table.prepare(table(*curve("gguf-q4_k_m", (10, 20, 40, 80), depth=984)),
                             machine=MACHINE, shapes={"m": SHAPE})
    [f] = scaling.compute_bound_findings(deep, MACHINE)
    assert f.names["never"] and "no batch size reaches it at this context" in f.text
    assert scaling.compute_bound_findings(deep, {}) == []  # no ceilings: nothing said


# -- the latency budget ---------------------------------------------------------------------------

def test_the_budget_table_gives_each_precision_its_highest_throughput_within_it():
    pts = table(point("gguf-q4_k_m", 1, 100, token_ms_p90=10.0),
                point("gguf-q4_k_m", 8, 700, token_ms_p90=45.0),
                point("gguf-q4_k_m", 32, 2000, token_ms_p90=60.0),   # over the budget
                point("gguf-f16", 8, 650, token_ms_p90=50.0))
    rows = {r["precision"]: r for r in serving.budget_table(pts, Settings())}
    assert rows["gguf-q4_k_m"]["within"] and rows["gguf-q4_k_m"]["batch_size"] == 8
    assert rows["gguf-f16"]["within"] and rows["gguf-f16"]["batch_size"] == 8
    rows = {r["precision"]: r for r in serving.budget_table(pts, Settings(
        token_latency_budget_ms=70))}
    assert rows["gguf-q4_k_m"]["batch_size"] == 32
    rows = serving.budget_table(pts, Settings(token_latency_budget_ms=5))
    assert not any(r["within"] for r in rows)  # nothing within: the lowest p90 each
    assert {r["precision"]: r["batch_size"] for r in rows} == {"gguf-q4_k_m": 1, "gguf-f16": 8}


def test_serving_within_the_budget_has_one_answer_in_its_section():
    """The serving question is answered once (the recommendation, within the quality budget);
    the table beside it gives each precision's point without a second pick. Before, a second
    sentence named gguf-q2_k, the fastest of all, outside the quality budget."""
    s = summary(("bf16", 10.0), ("gguf-q4_k_m", 10.1), ("gguf-q2_k", 13.0))
    pts = table(*[r for r in _sweep().to_dict("records") if r["status"] == "ok"],
                point("gguf-q2_k", 64, 3000.0, token_ms_p90=40.0, peak_mem_mib=1500.0))
    text = _report(pts)
    section = text.split("## Operating points")[1].split("## Figures")[0]
    answers = [line for line in section.splitlines()
               if line.startswith("- ") and "within a per-token latency of 50 ms" in line]
    assert answers == ["- m, serving within a per-token latency of 50 ms (p90): gguf-q4_k_m at "
                       "batch 64 (prompt 16, depth 0) — 1,500.0 tok/s in all, 23.4 per "
                       "sequence, p90 48.0 ms; within +2 % perplexity of bf16."]
    assert "| m | gguf-q2_k | yes | 16 | 64 | 0 | 3,000.0 |" in section  # the table keeps it
    got = _recommend(pts, s, settings=Settings(token_latency_budget_ms=5))
    assert got["serving"].precision == "gguf-q4_k_m"  # the nearest, not a pick
    assert ("none within the quality budget has a p90 per-token latency within 5 ms; the lowest "
            "measured is gguf-q4_k_m's 9.0 ms at batch 1 (prompt 16, depth 0)") in \
        got["serving"].text


# -- capacity -------------------------------------------------------------------------------------

def _memory_points(fixed=500.0, mib_per_token=0.25, **extra):
    rows = []
    for batch in (1, 2, 4):
        for per_seq in (100, 200):
            rows.append(point("gguf-q4_k_m", batch, 100.0 * batch, kv_tokens_per_seq=per_seq,
                              peak_mem_mib=fixed + mib_per_token * batch * per_seq, **extra))
    return table(*rows)


def test_the_capacity_fit_recovers_fixed_memory_and_kv_bytes_per_token_and_flags_extrapolation():
    [c] = serving.fit_capacity(_memory_points(), Settings(capacity_context_tokens=4096),
                                 MACHINE, {"m": SHAPE})
    assert c.fixed_mib == pytest.approx(500.0) and c.per_token_kib == pytest.approx(256.0)
    assert c.expected_kib == pytest.approx(256 / 1024)  # the toy shape's own KV per token
    assert (c.tokens_min, c.tokens_max) == (100, 800)
    assert c.max_sequences == math.floor(7500 / (0.25 * 4096)) and c.extrapolated
    [f] = serving.capacity_findings([c], MACHINE)
    assert "7 sequences of 4,096 tokens fit in the 8,000 MiB of GPU memory" in f.text
    assert "(extrapolated beyond the measured range)" in f.text


def test_a_capacity_inside_the_measured_range_is_not_called_extrapolated():
    machine = {**MACHINE, "gpu_memory_total_mib": 650.0}  # 150 MiB for 600 tokens
    [c] = serving.fit_capacity(_memory_points(), Settings(capacity_context_tokens=100),
                                 machine)
    assert c.max_sequences == 6 and not c.extrapolated
    assert "extrapolated" not in serving.capacity_findings([c], machine)[0].text


def test_capacity_on_a_cpu_uses_the_hosts_memory_and_says_when_it_is_unknown():
    cpu = {"device": "cpu", "peak_bw_gb_s": 10.0, "host_memory_total_mib": 16000.0}
    [c] = serving.fit_capacity(_memory_points(), Settings(), cpu)
    assert c.device_mib == 16000.0
    assert "MiB of host memory" in serving.capacity_findings([c], cpu)[0].text
    bare = {"device": "cpu"}
    [c] = serving.fit_capacity(_memory_points(), Settings(), bare)
    assert c.device_mib is None and c.max_sequences is None
    [f] = serving.capacity_findings([c], bare)
    assert f.kind == "capacity_no_device" and "unavailable" in f.text


def test_memory_that_does_not_grow_with_the_kv_cache_gives_no_capacity():
    [c] = serving.fit_capacity(_memory_points(mib_per_token=0.0), Settings(), MACHINE)
    assert not c.grows and c.max_sequences is None
    [f] = serving.capacity_findings([c], MACHINE)
    assert f.kind == "capacity_no_slope" and "does not grow measurably" in f.text
    assert "fit in the" not in f.text


def test_the_kv_length_falls_back_to_the_mean_decode_context():
    pts = table(point("gguf-q4_k_m", 1, 10.0, prompt=16, depth=100, decode_ctx_mean=132.0))
    assert point_table.kv_tokens_per_seq(pts).iloc[0] == 2 * 132 - 16 - 100


def test_host_memory_is_read_from_meminfo(tmp_path):
    from quantbench.device import host_memory_mib

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:         1000 kB\n")
    assert host_memory_mib(meminfo) == pytest.approx(16384000 / 1024)
    assert host_memory_mib(tmp_path / "absent") is None


# -- energy and cost ------------------------------------------------------------------------------

def test_costs_are_given_only_with_prices_and_the_prices_are_stated():
    pts = table(point("gguf-q4_k_m", 1, 100.0, decode_j_per_tok=0.36),
                point("gguf-q4_k_m", 8, 400.0, decode_j_per_tok=0.18))
    unpriced = serving.costs(pts, Settings())
    assert unpriced["cost_per_mtok"].isna().all()
    texts = [f.text for f in serving.cost_findings(pts, Settings())]
    assert texts[0].startswith("Not priced") and not any("cheapest" in t for t in texts)
    assert any("least energy per decoded token (the decode steps alone) is gguf-q4_k_m's "
               "0.180 J at batch 8" in t for t in texts)
    priced = Settings(gpu_hour_cost=3.6, energy_cost_per_kwh=0.1)
    c = serving.costs(pts, priced)
    # 3.6 per hour at 100 tok/s: 1e6 tokens take 1e4 s = 10 per million; 0.36 J/tok: 0.1 kWh
    assert c["device_cost_per_mtok"].iloc[0] == pytest.approx(10.0)
    assert c["energy_cost_per_mtok"].iloc[0] == pytest.approx(0.01)
    found = serving.cost_findings(pts, priced)
    assert "3.6 per device-hour" in found[0].text and "0.1 per kWh" in found[0].text
    cheapest = next(f for f in found if f.kind == "cheapest_point")
    assert cheapest.numbers["batch_size"] == 8 and "2.5050" in cheapest.text


def test_the_energy_findings_name_the_precisions_without_a_figure_and_the_points_left_out():
    """On a GPU every precision has its energy per decoded token, or is named with why not: no
    energy per phase in its record, or every figure above the card's power limit (left out by
    the aggregate, with a note). Without it the finding would be true of a subset unsaid."""
    note = "decode J/token × tok/s = 5280 W, above the card's power limit of 700 W: …"
    pts = table(point("gguf-q4_k_m", 1, 100.0, decode_j_per_tok=0.36),
                point("gguf-q4_k_m", 8, 400.0, decode_j_per_tok=0.18),
                point("gguf-q8_0", 1, 90.0),  # a record made before the phases were apart
                point("bf16", 1, 50.0, energy_note=note, power_limit_w=700.0),
                point("bnb-nf4", 1, 30.0, decode_j_per_tok=0.9),
                point("bnb-nf4", 8, 200.0, energy_note=note, power_limit_w=700.0))
    texts = [f.text for f in serving.cost_findings(pts, Settings())]
    assert any("least energy per decoded token (the decode steps alone) is gguf-q4_k_m's" in t
               for t in texts)
    missing = next(t for t in texts if "no energy per decoded token" in t)
    assert missing.startswith("m: no energy per decoded token at any point for gguf-q8_0 (no "
                              "energy per phase in its latency record")
    assert "nor bf16 (J/token × tok/s above the card's power limit" in missing
    assert "bnb-nf4" not in missing  # it has a figure at batch 1
    over = next(t for t in texts if t.startswith("m: energy left out"))
    assert "at 2 points" in over and "power limit of 700 W" in over
    assert "bf16 at batch 1, depth 0, prompt 16" in over and "bnb-nf4 at batch 8" in over
    # every precision with a figure: nothing to name; on a CPU: nothing about energy at all
    measured = table(point("gguf-q4_k_m", 1, 100.0, decode_j_per_tok=0.36))
    assert not any("no energy" in f.text for f in serving.cost_findings(measured, Settings()))
    cpu = table(point("gguf-q4_k_m", 1, 100.0, device="cpu"))
    assert [f.kind for f in serving.cost_findings(cpu, Settings())] == ["unpriced"]


def test_the_energy_basis_states_the_idle_draw_and_the_power_limit():
    df = summary(("bf16", 10.0), ("gguf-q4_k_m", 10.2))
    df["device"], df["power_limit_w"] = "cuda", 700.0
    df["idle_w"], df["decode_j_per_tok"] = [70.0, 74.0], [1.0, 0.5]
    text = serving.energy_basis(df)[0].text
    assert "it draws 72 W idle with the model loaded (the median of 2 GPU traces, 70 to 74 W)" \
        in text and "its power limit is 700 W" in text
    df["idle_w"] = float("nan")
    assert "its idle draw was not measured (no GPU trace of this model)" in \
        serving.energy_basis(df)[0].text
    df["decode_j_per_tok"] = float("nan")  # no energy figure: nothing to say of one
    assert serving.energy_basis(df) == []


# -- recommendations ------------------------------------------------------------------------------

def _sweep():
    return table(
        point("bf16", 1, 50.0, token_ms_p90=22.0, peak_mem_mib=3000.0),
        point("bf16", 16, 600.0, token_ms_p90=30.0, peak_mem_mib=3500.0),
        point("gguf-q4_k_m", 1, 120.0, token_ms_p90=9.0, peak_mem_mib=900.0),
        point("gguf-q4_k_m", 16, 900.0, token_ms_p90=20.0, peak_mem_mib=1200.0),
        point("gguf-q4_k_m", 64, 1500.0, token_ms_p90=48.0, peak_mem_mib=2000.0),
        point("gguf-q2_k", 1, 200.0, token_ms_p90=5.0, peak_mem_mib=700.0),  # poor quality
        point("gguf-q2_k", 256, 5000.0, token_ms_p90=60.0, peak_mem_mib=9000.0, status="oom"),
    )


def _recommend(pts, s, budgets=None, settings=None, machine=MACHINE):
    budgets, settings = budgets or Budgets(), settings or Settings()
    return {f.names["scenario"] if f.kind == "ops_none" else f.kind: f
            for f in serving.recommendation_findings(pts, s, reference="bf16", budgets=budgets,
                                                       settings=settings, machine=machine)}


def test_each_scenario_picks_within_the_quality_budget():
    s = summary(("bf16", 10.0), ("gguf-q4_k_m", 10.1), ("gguf-q2_k", 13.0))
    got = _recommend(_sweep(), s)
    assert got["ops_single_user"].precision == "gguf-q4_k_m"  # q2_k is faster but +30 %
    assert "120.0 tok/s, the fastest within +2 % perplexity of bf16" in \
        got["ops_single_user"].text
    assert got["ops_serving"].numbers["batch_size"] == 64
    assert got["ops_max_throughput"].numbers["batch_size"] == 64
    assert "within the device's 8,000 MiB" in got["ops_max_throughput"].text
    tight = _recommend(_sweep(), s, budgets=Budgets(memory_budget_mib=1500),
                       settings=Settings(token_latency_budget_ms=25))
    assert tight["ops_serving"].numbers["batch_size"] == 16
    assert tight["ops_max_throughput"].numbers["batch_size"] == 16
    assert "(report.memory_budget_mib)" in tight["ops_max_throughput"].text


def test_a_scenario_nothing_qualifies_for_says_why_and_names_no_precision():
    s = summary(("bf16", 10.0), ("gguf-q4_k_m", 10.1), ("gguf-q2_k", 13.0))
    got = _recommend(_sweep(), s, budgets=Budgets(memory_budget_mib=500),
                     settings=Settings(token_latency_budget_ms=5))
    assert "ops_serving" not in got and "ops_max_throughput" not in got
    assert "p90 per-token latency within 5 ms" in got["serving"].text
    assert "fits the memory limit" in got["maximum throughput"].text
    strict = _recommend(_sweep(), s, budgets=Budgets(quality_budget_pct=0.5))
    assert strict["ops_single_user"].precision == "bf16"  # the only one within 0.5 %
    # without bf16's points nothing measured is within the budget
    no_ref = _sweep()[lambda d: d["precision"] != "bf16"]
    got = _recommend(no_ref, s, budgets=Budgets(quality_budget_pct=0.5))
    assert "no precision is within +0.5 % perplexity of bf16" in got["single user"].text


def test_without_quality_the_scenarios_rank_by_speed_and_say_so():
    got = _recommend(_sweep(), None)
    assert got["ops_single_user"].precision == "gguf-q2_k"
    assert "by speed alone (quality was not measured)" in got["ops_single_user"].text


# -- the report section ---------------------------------------------------------------------------

CONFIG = {"latency": {"prompt_tokens": [16], "new_tokens": 16, "warmup_runs": 1,
                      "measured_runs": 3},
          "perplexity": {"mode": "llama.cpp", "context_length": 64, "max_windows": 2},
          "dataset": {"name": "x"}, "report": {}}


def _report(points, **kw):
    s = summary(("bf16", 10.0), ("gguf-q4_k_m", 10.1), ("gguf-q2_k", 13.0))
    return report_text(s, reference="bf16", config=CONFIG, machine=MACHINE, points=points,
                       shapes={"m": SHAPE}, **kw)


def test_the_report_says_in_one_line_when_there_is_nothing_to_sweep():
    text = _report(None)
    section = text.split("## Operating points")[1].split("## Figures")[0]
    assert section.strip().rstrip("#").strip() == operating.nothing_to_sweep(None)
    one = table(point("bf16", 1, 50.0), point("gguf-q4_k_m", 1, 100.0))
    section = _report(one).split("## Operating points")[1].split("## Figures")[0]
    assert section.strip().startswith("One operating point per precision: nothing to sweep")
    assert "###" not in section


def test_the_report_section_lists_every_measured_point_and_the_findings(tmp_path):
    pts = _sweep()
    text = _report(pts, points_out=tmp_path / "points.md")
    section = text.split("## Operating points")[1].split("## Figures")[0]
    assert "Every measured point's figures: [points.md](points.md)" in text
    every = (tmp_path / "points.md").read_text()
    assert every.startswith("# quantbench report: every measured point") and "\n## m\n" in every
    section += every
    rows = [line for line in section.splitlines()
            if line.startswith("| bf16 |") or line.startswith("| gguf-")]
    assert len(rows) == len(pts)  # nothing dropped, the out-of-memory point included
    assert "| oom: out of memory |" in section
    assert "m, single user (batch 1, prompt 16, depth 0): gguf-q4_k_m" in section
    assert "cost per M tokens" not in section and "Not priced" in section
    config = {**CONFIG, "report": {"gpu_hour_cost": 3.6}}
    s = summary(("bf16", 10.0), ("gguf-q4_k_m", 10.1), ("gguf-q2_k", 13.0))
    priced = report_text(s, reference="bf16", config=config, machine=MACHINE, points=pts,
                         shapes={"m": SHAPE}, points_out=tmp_path / "priced.md")
    assert "| cost per M tokens |" in (tmp_path / "priced.md").read_text()
    assert "3.6 per device-hour" in priced
    assert "Not priced" not in priced


def test_the_references_cite_the_roofline_and_the_formats_present():
    text = _report(None)
    refs = text.split("## References")[1].split("## Reproduce")[0]
    assert "Williams, A. Waterman, D. Patterson" in refs
    assert "pull/1684" in refs and "gguf.md" in refs  # gguf-q4_k_m is a K-quant
    assert "LLM.int8()" not in refs and "QLoRA" not in refs
    assert any("LLM.int8()" in r for r in operating.references(["bnb-int8"]))
    assert any("QLoRA" in r for r in operating.references(["bnb-nf4"]))
    assert not any("1684" in r for r in operating.references(["gguf-q8_0"]))


# -- decode step time against the batch -------------------------------------------------------

def test_a_step_that_got_cheaper_with_the_batch_is_named_with_its_strongest_pair():
    """Step time = batch / decode tok/s: 10 ms at batch 1, 5 ms at batch 4 (0.50×), the
    intervals apart, at one of two depths; a step that grows with the batch says nothing."""
    pts = table(*curve("bf16", (100, 800, 1600, 3200)),  # 10, 5, 10, 20 ms
                *curve("bf16", (100, 200, 400, 800), depth=64),  # 10, 20, 40, 80 ms
                *curve("gguf-f16", (100, 200, 400, 800)))
    [f] = scaling.step_time_findings(pts)
    assert (f.kind, f.precision) == ("step_time_falls", "bf16")
    assert f.numbers["batch_small"] == 1 and f.numbers["batch_large"] == 4
    assert f.numbers["ms_small"] == pytest.approx(10.0) and f.numbers["ratio"] == pytest.approx(0.5)
    assert (f.numbers["n_contexts"], f.numbers["contexts"]) == (1, 2)
    assert "step took less time at batch 4 than at batch 1 (5.0 against 10.0 ms, 0.50×" in f.text
    assert "prompt 16, depth 0), the 95 % intervals apart." in f.text
    assert "of its 2 contexts" not in f.text  # one context: the named pair is all there is
    [f] = scaling.step_time_findings(table(*curve("bf16", (100, 800, 1600, 3200)),
                                             *curve("bf16", (100, 800, 400, 800), depth=64)))
    assert "at 2 of its 2 contexts" in f.text


@pytest.mark.parametrize(("speeds", "spread"), [
    ((100, 210, 400, 800), 0.01),   # 10 then 9.5 ms: less than a tenth cheaper
    ((100, 500, 1000, 2000), 0.3),  # 10 then 8 ms, but the intervals overlap
    ((100, 200, 400, 800), 0.01),   # 10, 20, 40, 80 ms
])
def test_no_step_statement_without_a_clear_drop(speeds, spread):
    assert scaling.step_time_findings(table(*curve("bf16", speeds, spread=spread))) == []


def test_the_step_statement_reaches_the_report_section():
    pts = table(*curve("bf16", (100, 800, 1600, 3200)))
    ops = operating.section(pts, None, reference="bf16", config={}, machine=MACHINE)
    assert len(ops["step_times"]) == 1 and "bf16's decode step took less time" in \
        ops["step_times"][0]


def test_a_cv_over_the_threshold_is_flagged_at_every_operating_point():
    """Not only at the headline point (the summary's row): every point of the sweep whose decode
    CV across runs is above report.cv_threshold_pct is named; a sweep where none is, none."""
    from quantbench.report.anomalies import anomalies

    pts = table(point("gguf-q8_0", 1, 100.0, decode_cv=0.02),  # the headline point: quiet
                point("gguf-q8_0", 4, 300.0, decode_cv=0.14),
                point("gguf-q8_0", 4, 280.0, depth=512, decode_cv=0.12),
                point("gguf-f16", 1, 80.0, decode_cv=0.03),
                point("gguf-f16", 4, 250.0, decode_cv=0.05))
    head = summary(("gguf-f16", 10.0), ("gguf-q8_0", 10.1), reference="gguf-f16")
    head["decode_cv"] = 0.02
    text = " ".join(anomalies(head, "gguf-f16", Budgets(), pts))
    assert ("gguf-q8_0's decode timings are noisy at 2 of its 3 operating points: coefficient "
            "of variation across runs p16 b4 d0 (14.0 %), p16 b4 d512 (12.0 %) (above 10 %)"
            in text)
    assert "gguf-f16's decode timings" not in text
    assert "noisy" not in " ".join(anomalies(head, "gguf-f16", Budgets(), pts.assign(
        decode_cv=0.05)))
    assert "noisy" not in " ".join(anomalies(head, "gguf-f16", Budgets(cv_threshold_pct=15.0),
                                             pts))
    # no points table (a run before it existed): the summary's rows, as before
    head.loc[head["precision"] == "gguf-q8_0", "decode_cv"] = 0.25
    assert "gguf-q8_0's decode timings are noisy: coefficient of variation 25.0 %" in " ".join(
        anomalies(head, "gguf-f16", Budgets()))
