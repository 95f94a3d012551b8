"""The figures on small tables: traces, colours, Pareto fronts, ceilings, phases, panels, the
figures not made."""

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from quantbench import engines, precisions
from quantbench.figures import SUMMARY_FIGURES, read_index
from quantbench.report import panels, plot_style, plots, point_plots
from quantbench.report.aggregate import pareto_front
from quantbench.report.panels import MAX_SERIES, NotMade

# each engine's colour (its registry entry's)
COLOURS = {name: e.colour for name, e in engines.REGISTRY.items()}

REPO = Path(__file__).resolve().parents[1]
MACHINE = {"peak_bw_gb_s": 1000.0, "matmul_tflops": {"bfloat16": 100.0, "float32": 20.0}}


@pytest.fixture()
def summary():
    rows = [  # precision, backend, decode tok/s, peak MiB, Δppl %, kld
        ("fp32", "transformers", 10.0, 4000.0, 0.0, None),
        ("bf16", "transformers", 20.0, 2000.0, 0.1, 1e-4),
        ("bnb-nf4", "bitsandbytes", 15.0, 900.0, 4.0, 3e-2),
        ("torchao-int8wo", "torchao", 18.0, 1300.0, 0.3, 6e-4),  # beaten by q8_0
        ("gguf-q8_0", "llama.cpp", 300.0, 1200.0, 0.2, 5e-4),
        ("gguf-q4_k_m", "llama.cpp", 400.0, 800.0, 2.0, 1e-2),
        ("gguf-q2_k", "llama.cpp", 250.0, 700.0, 9.0, 1e-1),  # beaten on speed by q4_k_m
        ("onnx-int8", "onnxruntime", 12.0, 3000.0, 5.0, 4e-2),  # beaten by bf16 everywhere
    ]
    df = pd.DataFrame(rows, columns=["precision", "family", "decode_tok_s", "peak_mem_mib",
                                     "ppl_delta_pct", "kld_mean"])
    df["backend"] = df["family"]
    df["model"], df["status"] = "m", "ok"
    df["ppl"] = 10 * (1 + df["ppl_delta_pct"] / 100)
    df["size_mib"] = df["peak_mem_mib"] / 2
    df["decode_tok_s_ci_low"], df["decode_tok_s_ci_high"] = df["decode_tok_s"] * 0.9, \
        df["decode_tok_s"] * 1.1
    df["prefill_tok_s"] = df["decode_tok_s"] * 20
    df["speedup_vs_ref"] = df["decode_tok_s"] / 10
    df["decode_flop_per_byte"] = [0.5, 1.0, 3.0, 2.0, 1.8, 3.0, 5.0, 2.0]
    df["decode_gb_s"] = [40.0, 40.0, 10.0, 25.0, 360.0, 240.0, 100.0, 20.0]
    df["prefill_tflops"], df["prefill_ms"] = 5.0, 10.0
    df["acc_change_pp"] = -df["ppl_delta_pct"] / 2  # the reference (fp32) has none
    df.loc[df["precision"] == "fp32", "acc_change_pp"] = None
    df["acc_change_lo_pp"], df["acc_change_hi_pp"] = df["acc_change_pp"] - 1, \
        df["acc_change_pp"] + 1
    # the shuffled row order must not matter: figures follow the precision table
    return df.sample(frac=1, random_state=1).reset_index(drop=True)


def _gpu_trace(status="ok"):
    samples = [{"t": 100.0 + i / 10, "power_w": 100.0 + i, "gpu_util_pct": 50.0,
                "mem_util_pct": 20.0, "sm_clock_mhz": 1500.0, "mem_clock_mhz": 2600.0}
               for i in range(30)]
    phases = [{"phase": "idle", "start": 100.0, "end": 100.4, "tokens": 0},
              {"phase": "generate", "start": 101.2, "end": 102.5, "tokens": 32},
              {"phase": "prefill", "start": 102.5, "end": 102.9, "tokens": 64}]
    rec = {"kind": "gpu", "model": "m", "precision": "bf16", "backend": "transformers",
           "status": status, "reason": None, "metrics": {}, "provenance": {},
           "details": {"samples": samples, "phases": phases}}
    if status == "no_gpu":
        rec["reason"] = "device is cpu: no NVIDIA GPU visible to NVML"
        rec["details"] = {}
    return rec


def _family(trace) -> str | None:
    """The backend family a trace stands for: its legend group or name (a family, a
    "family · phase" or a precision of the table)."""
    for key in (trace.legendgroup, trace.name):
        if not key:
            continue
        key = key.split(" · ")[0]
        if key in COLOURS:
            return key
        if key in precisions.table():
            return precisions.get(key).backend
    return None


def _family_colours(fig):
    """(family, colour) of every trace that stands for a backend family."""
    out = set()
    for t in fig.data:
        family = _family(t)
        if family and t.marker is not None and isinstance(t.marker.color, str):
            out.add((family, t.marker.color))
    return out


def _labels(fig) -> list[str]:
    """The texts that label points or lines (annotations on data axes: not the panels' titles,
    not notes placed on a panel's frame, not crossover marks)."""
    return [a.text for a in fig.layout.annotations
            if a.xref != "paper" and "domain" not in (a.xref or "") + (a.yref or "")
            and not a.text.startswith("crossover")]


def _assert_labels_inside(fig) -> None:
    """Every label of a point or line lies inside its panel: the panel's pixels from the
    figure's size, margins and the axes' domains and ranges (log10 on a log axis, as the
    annotations' own coordinates)."""
    lay = fig.layout
    for a in fig.layout.annotations:
        if a.xref == "paper" or "domain" in (a.xref or "") + (a.yref or ""):
            continue
        xaxis, yaxis = lay["xaxis" + a.xref[1:]], lay["yaxis" + a.yref[1:]]
        w = (lay.width - lay.margin.l - lay.margin.r) * (xaxis.domain[1] - xaxis.domain[0])
        h = (lay.height - lay.margin.t - lay.margin.b) * (yaxis.domain[1] - yaxis.domain[0])
        px = (a.x - xaxis.range[0]) / (xaxis.range[1] - xaxis.range[0]) * w
        py = (a.y - yaxis.range[0]) / (yaxis.range[1] - yaxis.range[0]) * h
        size = panels.text_px(a.text)
        if a.showarrow:  # offset (ax, ay) in pixels, ay downwards
            left, right, mid = px + a.ax - size / 2, px + a.ax + size / 2, py - a.ay
        else:  # to the right of the point
            left, right, mid = px + (a.xshift or 0), px + (a.xshift or 0) + size, py
        assert left >= -2 and right <= w + 2 and 0 <= mid <= h, (a.text, left, right, w, mid, h)


def test_the_accuracy_figure_puts_each_precision_at_its_kld_and_change(summary):
    fig = plots.accuracy_kld_figure(plots.ordered(summary), reference="fp32")
    points = {t: (x, y) for tr in fig.data if tr.mode == "markers"
              for t, x, y in zip(tr.text, tr.x, tr.y, strict=True)}
    assert "fp32" not in points and len(points) == 7
    assert points["gguf-q2_k"] == (1e-1, -4.5)
    bars = next(tr for tr in fig.data if "gguf-q2_k" in tr.text).error_y
    assert list(bars.array) == list(bars.arrayminus) == [1.0] * len(bars.array)
    one = summary[summary["precision"].isin(["fp32", "bf16"])]
    assert isinstance(plots.accuracy_kld_figure(plots.ordered(one), reference="fp32"), NotMade)


def test_every_figure_colours_a_family_the_same_way(summary):
    figs = plots.figures(summary, machine=MACHINE, gpu_traces=[_gpu_trace()], reference="fp32")
    assert list(figs) == [*SUMMARY_FIGURES, "nvml_m_bf16"]
    seen = set()
    for name, fig in figs.items():
        if isinstance(fig, NotMade):
            assert name.startswith("batch_") or name == "latency_throughput"  # no points
            continue
        pairs = _family_colours(fig)
        assert all(c == COLOURS[f] for f, c in pairs), name
        seen |= {f for f, _ in pairs}
    assert seen == set(COLOURS)


def test_bars_follow_the_precision_table_and_spread_decades_on_a_log_axis(summary):
    fig = plots.figures(summary)["decode_throughput"]
    assert [t.name for t in fig.data] == ["transformers", "bitsandbytes", "torchao", "llama.cpp",
                                          "onnxruntime"]
    assert list(fig.layout.xaxis.categoryarray) == ["fp32", "bf16", "bnb-nf4", "torchao-int8wo",
                                                   "gguf-q8_0", "gguf-q4_k_m", "gguf-q2_k",
                                                   "onnx-int8"]
    assert fig.layout.yaxis.type == "log"  # 10 to 400 tok/s
    llama = fig.data[3]
    assert list(llama.error_y.array) == pytest.approx([30.0, 40.0, 25.0])
    assert "0.5" in plot_style.axis([0.3, 12.0])["ticktext"]  # not plotly's bare "5"
    assert plot_style.axis([800.0, 4000.0]) == {"type": "linear"}


def test_prefill_title_names_the_prompt_length(summary):
    summary["prompt_tokens"] = 512.0
    assert plots.figures(summary)["prefill_throughput"].layout.title.text == (
        "Prefill throughput (prompts of 512 tokens)")


def test_perplexity_bars_carry_their_confidence_interval(summary):
    summary["ppl_stderr"] = 0.5
    fig = plots.figures(summary)["perplexity"]
    assert list(fig.data[0].error_y.array) == pytest.approx([1.959964 * 0.5] * 2)


def test_a_bar_without_an_interval_gets_no_error_bar_not_a_zero_width_one(summary):
    """Fewer than 3 runs (NaN interval): no error bar, where plotly would draw a missing value
    as a zero-width one; the family keeps one legend entry and one colour."""
    one_run = summary["precision"].isin(["bnb-nf4", "gguf-q8_0"])
    summary.loc[one_run, ["decode_tok_s_ci_low", "decode_tok_s_ci_high"]] = float("nan")
    summary["ppl_stderr"] = 0.5
    summary.loc[summary["precision"] == "bf16", "ppl_stderr"] = float("nan")
    figs = plots.figures(summary)
    bars = {x: t for t in figs["decode_throughput"].data for x in t.x}
    assert bars["bnb-nf4"].error_y.array is None and bars["gguf-q8_0"].error_y.array is None
    assert list(bars["gguf-q4_k_m"].error_y.array) == pytest.approx([40.0, 25.0])
    assert [t.name for t in figs["decode_throughput"].data if t.showlegend is not False] == [
        "transformers", "bitsandbytes", "torchao", "llama.cpp", "onnxruntime"]
    ppl = {x: t for t in figs["perplexity"].data for x in t.x}
    assert ppl["bf16"].error_y.array is None
    assert list(ppl["fp32"].error_y.array) == pytest.approx([1.959964 * 0.5])


def test_the_perplexity_change_carries_its_paired_interval(summary):
    summary["ppl_delta_pct_ci_low"] = summary["ppl_delta_pct"] - 0.05
    summary["ppl_delta_pct_ci_high"] = summary["ppl_delta_pct"] + 0.1
    summary.loc[summary["precision"] == "fp32", ["ppl_delta_pct_ci_low",
                                                 "ppl_delta_pct_ci_high"]] = float("nan")
    fig = plots.figures(summary, reference="fp32")["quality"]
    top = {x: t for t in fig.data if t.yaxis == "y" for x in t.x}
    assert list(top["gguf-q8_0"].error_y.array) == pytest.approx([0.1] * 3)  # the 3 GGUFs
    assert list(top["gguf-q8_0"].error_y.arrayminus) == pytest.approx([0.05] * 3)
    assert top["fp32"].error_y.array is None  # the reference has no interval with itself


def test_quality_figure_has_ppl_and_kld_panels(summary):
    fig = plots.figures(summary, reference="fp32")["quality"]
    by_axis = {}
    for t in fig.data:
        by_axis.setdefault(t.yaxis, []).extend(t.x)
    assert sorted(by_axis["y"]) == sorted(summary["precision"])
    assert "fp32" not in by_axis["y2"]  # the reference has no KL divergence with itself
    assert fig.layout.yaxis2.type == "log"


@pytest.mark.parametrize("with_column", [True, False])
def test_pareto_front_is_drawn_through_the_undominated_points(summary, with_column):
    if with_column:
        summary["pareto_quality_speed"] = pareto_front(summary, "decode_tok_s", "ppl",
                                                       maximize_cost=True)
    fig = plots.figures(summary)["pareto_speed"]
    (line,) = [t for t in fig.data if t.name == "Pareto front"]
    # fastest first would be q4_k_m; sorted by speed: fp32 ... ; fp32 is the best quality
    assert list(line.x) == [10.0, 20.0, 300.0, 400.0]
    assert list(line.y) == [0.0, 0.1, 0.2, 2.0]
    assert sorted(_labels(fig)) == sorted(summary["precision"])  # every point is labelled
    memory = plots.figures(summary)["pareto_memory"]
    (line,) = [t for t in memory.data if t.name == "Pareto front"]
    assert list(line.x) == [700.0, 800.0, 1200.0, 2000.0, 4000.0]


def test_labels_of_coinciding_points_are_placed_apart(summary):
    same = summary.copy()
    same["decode_tok_s"], same["ppl_delta_pct"] = 100.0, 1.0
    same.loc[same["precision"] == "fp32", "decode_tok_s"] = 10.0  # a second x value
    fig = plots.pareto_figure(plot_style.ordered(same), "decode_tok_s", "none", title="t",
                              xaxis="x")
    labels = [a for a in fig.layout.annotations if a.showarrow]
    offsets = {(a.ax, a.ay) for a in labels if a.text != "fp32"}
    assert len(offsets) == len(same) - 1
    _assert_labels_inside(fig)


def test_pareto_without_perplexity_is_not_made(summary):
    summary["ppl"] = summary["ppl_delta_pct"] = float("nan")
    figs = plots.figures(summary)
    for name in ("perplexity", "pareto_speed", "pareto_memory"):
        assert isinstance(figs[name], NotMade), name
        assert "no quality measured" in figs[name].reason
    titles = [a.text for a in figs["quality"].layout.annotations if a.xref == "paper"]
    assert titles == ["m · KL divergence vs reference"]  # the divergence alone
    summary["kld_mean"] = float("nan")
    assert isinstance(plots.figures(summary)["quality"], NotMade)


def test_roofline_draws_points_under_the_machine_ceilings(summary):
    fig = plots.figures(summary, machine=MACHINE)["roofline"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    slope = next(t for t in fig.data if t.name.startswith("peak bandwidth"))
    x0, x1 = slope.x
    assert slope.y[0] == pytest.approx(1000.0 * x0 / 1e3)
    assert x1 == pytest.approx(100.0)  # ridge: 100 TFLOP/s / 1000 GB/s = 100 FLOP/byte
    roof = next(t for t in fig.data if t.name.startswith("bfloat16"))
    assert list(roof.y) == [100.0, 100.0] and roof.x[0] == pytest.approx(100.0)
    assert any(t.name.startswith("float32") for t in fig.data)
    decode = next(t for t in fig.data if t.name == "llama.cpp · decode")
    assert sorted(decode.x) == [1.8, 3.0, 5.0]
    assert sorted(decode.y) == pytest.approx(sorted([360 * 1.8 / 1e3, 240 * 3.0 / 1e3,
                                                     100 * 5.0 / 1e3]))


def test_the_figures_drawn_are_the_list_of_quantbench_figures(summary, monkeypatch):
    monkeypatch.setattr(plots, "SUMMARY_FIGURES", (*SUMMARY_FIGURES, "not_drawn"))
    with pytest.raises(RuntimeError, match="are not the list of quantbench.figures"):
        plots.figures(summary, machine=MACHINE)


def test_nvml_time_series_shades_the_phases():
    fig = plots.timeseries_figure(_gpu_trace())
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    spans = sorted({(round(s.x0, 6), round(s.x1, 6), s.fillcolor) for s in rects})
    assert spans == [(0.0, 0.4, plot_style.PHASE_COLOURS["idle"]),
                     (1.2, 2.5, plot_style.PHASE_COLOURS["generate"]),
                     (2.5, 2.9, plot_style.PHASE_COLOURS["prefill"])]
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["idle", "generate (32 tokens)", "prefill (64 tokens)"]
    assert {s.yref for s in rects} >= {"y domain", "y2 domain", "y3 domain"}  # every panel
    names = {t.name for t in fig.data}
    assert {"power", "GPU utilisation", "SM clock"} <= names
    assert {t.line.color for t in fig.data} == {COLOURS["transformers"]}
    power = next(t for t in fig.data if t.name == "power")
    assert power.x[0] == 0.0 and power.yaxis == "y"


def test_an_old_traces_window_of_whole_runs_is_not_labelled_decode():
    """A trace made before the decode steps' energy was apart called its window of whole runs
    (a prefill in each) "decode": it is shaded and labelled as what it was."""
    rec = _gpu_trace()
    rec["details"]["phases"][1]["phase"] = "decode"
    fig = plots.timeseries_figure(rec)
    assert "generate (32 tokens)" in [a.text for a in fig.layout.annotations]
    assert not [a.text for a in fig.layout.annotations if "decode" in a.text]


def test_a_gpu_trace_without_gpu_gives_no_figure():
    fig = plots.timeseries_figure(_gpu_trace("no_gpu"))
    assert fig == NotMade("no GPU samples (status no_gpu)")


def test_plot_all_writes_the_figures_with_data_and_an_index_of_the_others(tmp_path, summary):
    path = tmp_path / "summary.csv"
    summary.to_csv(path, index=False)
    traces = [tmp_path / "ok.json", tmp_path / "none.json"]
    traces[0].write_text(json.dumps(_gpu_trace()))
    traces[1].write_text(json.dumps({**_gpu_trace("no_gpu"), "precision": "fp32"}))
    (tmp_path / "machine.json").write_text(json.dumps(MACHINE))
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "batch_throughput.png").write_bytes(b"stale")  # from an earlier run
    index = plots.plot_all(path, folder, machine_path=tmp_path / "machine.json",
                           gpu_trace_paths=traces, reference="fp32")
    assert index == read_index(folder)
    made = [n for n in SUMMARY_FIGURES if not n.startswith("batch_")
            and n != "latency_throughput"]
    assert index["made"] == [*made, "nvml_m_bf16"]
    assert set(index["not_made"]) == {"batch_throughput", "latency_throughput",
                                      "batch_speedup", "batch_memory", "batch_roofline",
                                      "nvml_m_fp32"}
    assert index["not_made"]["nvml_m_fp32"] == "no GPU samples (status no_gpu)"
    for name in index["made"]:
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (folder / f"{name}.html").stat().st_size > 1000
    for name in index["not_made"]:
        assert not (folder / f"{name}.png").exists() and not (folder / f"{name}.html").exists()
    assert (folder / "plotly.min.js").is_file()


def test_every_summary_figure_has_a_caption():
    for name in [*SUMMARY_FIGURES, "nvml_timeseries", "workflow"]:
        assert (REPO / "workflow" / "report" / f"{name}.rst").stat().st_size > 100, name


def test_each_model_gets_its_own_panel(summary):
    other = summary.assign(model="n", decode_tok_s=summary["decode_tok_s"] * 2)
    figs = plots.figures(pd.concat([summary, other]), machine=MACHINE)
    for name in ("decode_throughput", "pareto_speed", "roofline", "memory"):
        fig = figs[name]
        titles = [a.text for a in fig.layout.annotations if a.xref == "paper"
                  and a.yref == "paper"]
        assert titles[:2] == ["m", "n"], name
        by_axis = {}
        for t in fig.data:
            by_axis.setdefault(t.xaxis, []).append(t)
        assert set(by_axis) == {"x", "x2"}, name
    decode = {t.xaxis: t for t in figs["decode_throughput"].data if t.name == "llama.cpp"}
    assert list(decode["x2"].y) == [2 * v for v in decode["x"].y]  # n's values in n's panel
    assert list(figs["decode_throughput"].layout.xaxis2.categoryarray) == list(
        figs["decode_throughput"].layout.xaxis.categoryarray)  # precisions, no model prefix
    fronts = [t.xaxis for t in figs["pareto_speed"].data if t.name == "Pareto front"]
    assert fronts == ["x", "x2"]


def test_a_bar_figure_with_one_precision_is_not_made(summary):
    one = summary[summary["precision"] == "gguf-q8_0"]
    figs = plots.figures(one, machine=MACHINE)
    assert figs["decode_throughput"] == NotMade("fewer than two precisions with decode_tok_s")
    assert isinstance(figs["pareto_speed"], NotMade)


def test_chunks_are_even_and_at_most_the_limit():
    assert [len(c) for c in panels.chunked(range(21))] == [7, 7, 7]
    assert [len(c) for c in panels.chunked(range(8))] == [8]
    assert [len(c) for c in panels.chunked(range(9))] == [5, 4]
    assert panels.chunked([]) == []
    assert panels.spread([10.0, 10.0, 10.0], 5, 0, 100) == [10.0, 15.0, 20.0]
    assert panels.spread([99.0, 98.0], 5, 0, 100) == [100.0, 95.0]


# -- operating points -----------------------------------------------------------------------------

OPS_SHAPE_MACHINE = {"device": "cuda", "peak_bw_gb_s": 1000.0, "matmul_tflops": {"bfloat16": 2.0},
                     "gpu_memory_total_mib": 8000.0}


def _sweep_points():
    from quantbench.roofline import Shape

    rows = []
    speeds = {"gguf-f16": (100, 200, 400, 800), "gguf-q4_k_m": (200, 400, 300, 400),
              "bnb-nf4": (20, 80, 800, 1600), "bf16": (50, 200, 700, 1500)}
    for precision, curve in speeds.items():
        family = "llama.cpp" if precision.startswith("gguf") else (
            "bitsandbytes" if precision.startswith("bnb") else "transformers")
        for batch, tok_s in zip((1, 4, 16, 64), curve, strict=True):
            rows.append({"model": "m", "precision": precision, "backend": family,
                         "family": family, "status": "ok", "reason": None,
                         "prompt_tokens": 16, "batch_size": batch, "context_depth": 0,
                         "decode_tok_s": float(tok_s), "decode_tok_s_ci_low": tok_s * 0.99,
                         "decode_tok_s_ci_high": tok_s * 1.01,
                         "decode_tok_s_per_seq": tok_s / batch, "token_ms_p90": 1e3 * batch / tok_s,
                         "decode_ctx_mean": 24.0, "kv_tokens_per_seq": 32,
                         "peak_mem_mib": 500.0 + 0.5 * batch * 32, "weights_mib": 0.1,
                         "kv_elem_bytes": 2.0})
    rows.append({**rows[-1], "batch_size": 256, "status": "oom", "decode_tok_s": None})
    shape = Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128, vocab=256)
    return pd.DataFrame(rows), {"m": shape}


def test_operating_figures_label_every_precision_and_colour_its_family(summary):
    points, shapes = _sweep_points()
    figs = plots.figures(summary, machine=OPS_SHAPE_MACHINE, reference="fp32", points=points,
                         shapes=shapes)
    names = ["gguf-f16", "gguf-q4_k_m", "bnb-nf4", "bf16"]
    for name in ("batch_throughput", "latency_throughput", "batch_memory", "batch_roofline"):
        assert sorted(_labels(figs[name])) == sorted(names), name  # each line once
        _assert_labels_inside(figs[name])
    assert sorted(_labels(figs["batch_speedup"])) == [  # the quantized ones
        "bnb-nf4 vs bf16", "gguf-q4_k_m vs gguf-f16"]
    _assert_labels_inside(figs["batch_speedup"])
    for name in SUMMARY_FIGURES[-5:]:
        pairs = _family_colours(figs[name])
        assert pairs and all(c == COLOURS[f] for f, c in pairs), name


def test_the_speedup_figure_marks_the_crossover_and_the_memory_figure_the_device():
    points, shapes = _sweep_points()
    figs = point_plots.operating_figures(points, machine=OPS_SHAPE_MACHINE, shapes=shapes)
    marks = [a.text for a in figs["batch_speedup"].layout.annotations
             if a.text.startswith("crossover")]
    # q4_k_m: faster at batch 1 and 4, slower from 16; nf4: slower, then faster from 16
    assert sorted(marks) == ["crossover: bnb-nf4", "crossover: gguf-q4_k_m"]
    lines = [s for s in figs["batch_speedup"].layout.shapes if s.line.dash == "dot"]
    assert sorted(round(s.x0, 3) for s in lines) == [8.0, 8.0]  # between batch 4 and 16
    assert figs["batch_throughput"].layout.xaxis.type == "log"
    memory = figs["batch_memory"]
    fit = next(t for t in memory.data if t.name == "fit: bf16")
    assert [fit.y[0], fit.y[-1]] == pytest.approx([500.0 + 0.5 * 32, 500.0 + 0.5 * 64 * 32])
    # 8,000 MiB is over 4 × the highest peak (1,524 MiB): named, not drawn, so as not to
    # squash the points
    assert not [s for s in memory.layout.shapes if s.y0 == 8000.0]
    assert any(a.text == "GPU memory: 8,000 MiB, above the scale" for a in
               memory.layout.annotations)
    near = point_plots.operating_figures(
        points, machine={**OPS_SHAPE_MACHINE, "gpu_memory_total_mib": 4000.0},
        shapes=shapes)["batch_memory"]
    assert [s for s in near.layout.shapes if s.y0 == 4000.0]
    assert any(a.text == "GPU memory: 4,000 MiB" for a in near.layout.annotations)
    roof = figs["batch_roofline"]
    assert roof.layout.xaxis.type == "log" and any(
        t.name.startswith("peak bandwidth") for t in roof.data)


def test_without_a_sweep_the_operating_figures_are_not_made(summary):
    points, _ = _sweep_points()
    one = points.groupby("precision").head(1)  # one point per precision
    for table, why in ((None, point_plots.NO_POINTS), (one, point_plots.ONE_BATCH)):
        figs = point_plots.operating_figures(table, machine=OPS_SHAPE_MACHINE)
        for name, fig in figs.items():
            assert fig == NotMade(why) or name == "batch_roofline", name
            assert isinstance(fig, NotMade), name


def _grid_points(names, models=("m",), contexts=((16, 0), (16, 256))):
    """Every precision of ``names`` at batch 1, 4 and 16 and each context, for each model;
    speeds that tell the precisions apart."""
    rows = []
    for model in models:
        for i, name in enumerate(names):
            for prompt, depth in contexts:
                for batch in (1, 4, 16):
                    tok_s = (10.0 + i) * batch ** 0.8 * (1 + (model != "m")) / (1 + depth / 256)
                    rows.append({"model": model, "precision": name, "status": "ok",
                                 "backend": precisions.get(name).backend, "reason": None,
                                 "prompt_tokens": prompt, "batch_size": batch,
                                 "context_depth": depth, "decode_tok_s": tok_s,
                                 "decode_tok_s_ci_low": tok_s * 0.98,
                                 "decode_tok_s_ci_high": tok_s * 1.02,
                                 "decode_tok_s_per_seq": tok_s / batch,
                                 "decode_ctx_mean": prompt + depth + 4.0,
                                 "kv_tokens_per_seq": prompt + depth + 8,
                                 "peak_mem_mib": 300.0 + i + 0.01 * batch * (prompt + depth),
                                 "weights_mib": 0.1, "kv_elem_bytes": 2.0})
    return pd.DataFrame(rows)


def _panels_of(fig) -> dict[str, list]:
    """The traces of each panel, by x axis."""
    out = {}
    for t in fig.data:
        out.setdefault(t.xaxis or "x", []).append(t)
    return out


def test_no_panel_carries_more_than_max_series_labelled_series():
    """30 precisions of four engines at two contexts: each model's precisions are split over
    panels of at most MAX_SERIES, each panel's lines labelled once, inside it."""
    from quantbench.roofline import Shape

    names = list(precisions.table())[:30]
    shape = Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128, vocab=256)
    figs = point_plots.operating_figures(_grid_points(names), machine=OPS_SHAPE_MACHINE,
                                         shapes={"m": shape})
    for name, fig in figs.items():
        assert isinstance(fig, go.Figure), name
        panel_traces = _panels_of(fig)
        labels = {}
        for a in fig.layout.annotations:
            if a.xref != "paper" and "domain" not in a.xref + a.yref and \
                    not a.text.startswith("crossover"):
                labels.setdefault(a.xref, []).append(a.text)
        drawn = set()
        for axis_name, traces in panel_traces.items():
            series = {t.name for t in traces if t.mode and "markers" in t.mode}
            assert 2 <= len(series) <= MAX_SERIES, (name, axis_name, len(series))
            assert len(labels[axis_name]) == len(series), (name, axis_name)
            drawn |= series
        # every precision (of the speed-up: every quantized one) is in some panel
        expected = set(names) if name != "batch_speedup" else {
            n for n in names if precisions.baseline_of(n, set(names))}
        assert drawn == expected, name
        _assert_labels_inside(fig)
    # 30 precisions: 4 rows of at most 8, each at the two contexts
    assert len(_panels_of(figs["batch_throughput"])) == 8
    assert len(_panels_of(figs["batch_memory"])) == 4  # memory: one column


def test_one_panel_per_model_and_context():
    points = _grid_points(["bf16", "bnb-nf4", "gguf-f16", "gguf-q4_k_m"], models=("m", "n"))
    fig = point_plots.operating_figures(points)["batch_throughput"]
    titles = [a.text for a in fig.layout.annotations if a.xref == "paper"]
    assert titles == ["m · prompt 16, depth 0", "m · prompt 16, depth 256",
                      "n · prompt 16, depth 0", "n · prompt 16, depth 256"]
    traces = _panels_of(fig)
    assert list(traces) == ["x", "x2", "x3", "x4"]
    for axis_name, (model, depth) in zip(traces, [("m", 0), ("m", 256), ("n", 0), ("n", 256)],
                                         strict=True):
        for t in traces[axis_name]:
            own = points[(points["model"] == model) & (points["context_depth"] == depth)
                         & (points["precision"] == t.name)]
            assert list(t.y) == pytest.approx(own.sort_values("batch_size")["decode_tok_s"])


def test_a_figure_with_one_x_value_is_not_made(tmp_path, summary):
    """A run of one batch size (two contexts): no batch figure, and no file of one; the
    figures' index says why (the report's test: tests/test_report.py)."""
    points = _grid_points(["bf16", "bnb-nf4", "gguf-f16", "gguf-q8_0"])
    one = points[points["batch_size"] == 1]
    figs = point_plots.operating_figures(one, machine=OPS_SHAPE_MACHINE)
    assert all(f == NotMade(point_plots.ONE_BATCH) for f in figs.values())
    summary.to_csv(tmp_path / "summary.csv", index=False)
    one.to_csv(tmp_path / "points.csv", index=False)
    folder = tmp_path / "figures"
    index = plots.plot_all(tmp_path / "summary.csv", folder, points_path=tmp_path / "points.csv")
    for name in ("batch_throughput", "latency_throughput", "batch_speedup", "batch_memory",
                 "batch_roofline"):
        assert index["not_made"][name] == point_plots.ONE_BATCH and name not in index["made"]
    assert not list(folder.glob("batch_*")) and not list(folder.glob("latency_*"))
    # the same run at two batch sizes has them
    two = points[points["batch_size"] <= 4]
    figs = point_plots.operating_figures(two, machine=OPS_SHAPE_MACHINE)
    assert isinstance(figs["batch_throughput"], go.Figure)


def test_an_image_the_batch_export_left_out_is_written_on_its_own(tmp_path, monkeypatch):
    import plotly.graph_objects as go
    import plotly.io as pio

    from quantbench.report import plots

    batch = pio.write_images

    def drops_the_first(figs, paths, **kwargs):
        batch(figs[1:], paths[1:], **{k: v[1:] if isinstance(v, list) else v
                                      for k, v in kwargs.items()})

    monkeypatch.setattr(pio, "write_images", drops_the_first)
    figs = [go.Figure(go.Bar(x=[1], y=[i]), layout={"width": 300, "height": 200})
            for i in range(2)]
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    plots.write_pngs(figs, paths, scale=1)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_the_summary_roofline_splits_a_model_of_many_precisions(summary):
    """21 precisions: three panels of 7, each point labelled with its precision, one scale."""
    names = list(precisions.table())[:21]
    many = pd.DataFrame({"model": "m", "precision": names, "status": "ok",
                         "backend": [precisions.get(n).backend for n in names],
                         "decode_flop_per_byte": [1.0 + i / 10 for i in range(21)],
                         "decode_gb_s": [10.0 + i for i in range(21)],
                         "prefill_tflops": 5.0, "prefill_ms": 10.0, "size_mib": 100.0})
    fig = plots.figures(many, machine=MACHINE)["roofline"]
    labels = {}
    for a in fig.layout.annotations:
        if a.xref != "paper" and "domain" not in a.xref:
            labels.setdefault(a.xref, []).append(a.text)
    assert [len(set(v)) for v in labels.values()] == [7, 7, 7]
    assert sorted(t for v in labels.values() for t in set(v)) == sorted(names)
    assert len({tuple(fig.layout[f"xaxis{n}"].range) for n in ("", "2", "3")}) == 1
    _assert_labels_inside(fig)
