"""The figures on small tables: traces, colours, Pareto fronts, ceilings, phases, empty cases."""

import json
from pathlib import Path

import pandas as pd
import pytest

from quantbench import engines
from quantbench.figures import SUMMARY_FIGURES
from quantbench.report import plot_style, plots, point_plots
from quantbench.report.aggregate import pareto_front

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


def _family_colours(fig):
    """(family, colour) of every trace that stands for a backend family."""
    out = set()
    for t in fig.data:
        family = t.legendgroup or t.name
        if family in COLOURS and t.marker is not None and t.marker.color is not None:
            out.add((family, t.marker.color))
    return out


def test_every_figure_colours_a_family_the_same_way(summary):
    figs = plots.figures(summary, machine=MACHINE, gpu_traces=[_gpu_trace()], reference="fp32")
    assert list(figs) == [*SUMMARY_FIGURES, "nvml_m_bf16"]
    seen = set()
    for name, fig in figs.items():
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
    labels = {a.text for a in fig.layout.annotations}
    assert labels == set(summary["precision"])  # every point is labelled
    memory = plots.figures(summary)["pareto_memory"]
    (line,) = [t for t in memory.data if t.name == "Pareto front"]
    assert list(line.x) == [700.0, 800.0, 1200.0, 2000.0, 4000.0]


def test_labels_of_coinciding_points_are_placed_apart(summary):
    same = summary.copy()
    same["decode_tok_s"], same["ppl_delta_pct"] = 100.0, 1.0
    fig = plots.pareto_figure(plot_style.ordered(same), "decode_tok_s", "none", title="t",
                              xaxis="x")
    offsets = {(a.ax, a.ay) for a in fig.layout.annotations}
    assert len(offsets) == len(same)


def test_pareto_without_perplexity_says_why(summary):
    summary["ppl"] = summary["ppl_delta_pct"] = float("nan")
    fig = plots.figures(summary)["pareto_memory"]
    assert not fig.data
    assert "no perplexity" in fig.layout.annotations[0].text


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


def test_a_gpu_trace_without_gpu_gives_a_figure_that_says_so():
    fig = plots.timeseries_figure(_gpu_trace("no_gpu"))
    assert not fig.data and not fig.layout.shapes
    text = fig.layout.annotations[0].text
    assert "no GPU samples (status no_gpu)" in text and "NVIDIA" in text


def test_plot_all_writes_html_and_png_and_rejects_unknown_names(tmp_path, summary):
    path = tmp_path / "summary.csv"
    summary.to_csv(path, index=False)
    (tmp_path / "p.json").write_text(json.dumps(_gpu_trace("no_gpu")))
    html = [tmp_path / "roofline.html"]
    png = [tmp_path / "speedup.png", tmp_path / "nvml_m_bf16.png"]
    (tmp_path / "machine.json").write_text(json.dumps(MACHINE))
    plots.plot_all(path, html=html, png=png, machine_path=tmp_path / "machine.json",
                   gpu_trace_paths=[tmp_path / "p.json"], reference="fp32")
    assert html[0].stat().st_size > 1000 and (tmp_path / "plotly.min.js").is_file()
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in png)
    with pytest.raises(ValueError, match="no figure named 'nope'"):
        plots.plot_all(path, html=[tmp_path / "nope.html"], png=[])


def test_every_summary_figure_has_a_caption():
    for name in [*SUMMARY_FIGURES, "nvml_timeseries", "workflow"]:
        assert (REPO / "workflow" / "report" / f"{name}.rst").stat().st_size > 100, name


def test_two_models_get_one_front_each_and_labelled_bars(summary):
    other = summary.assign(model="n", decode_tok_s=summary["decode_tok_s"] * 2)
    figs = plots.figures(pd.concat([summary, other]), machine=MACHINE)
    fronts = [t.name for t in figs["pareto_speed"].data if t.name.startswith("Pareto front")]
    assert fronts == ["Pareto front (m)", "Pareto front (n)"]
    assert "n / gguf-q2_k" in figs["decode_throughput"].layout.xaxis.categoryarray


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


def _texts(fig):
    return {t for trace in fig.data for t in (trace.text or ()) if t}


def test_operating_figures_label_every_precision_and_colour_its_family(summary):
    points, shapes = _sweep_points()
    figs = plots.figures(summary, machine=OPS_SHAPE_MACHINE, reference="fp32", points=points,
                         shapes=shapes)
    names = {"gguf-f16", "gguf-q4_k_m", "bnb-nf4", "bf16"}
    for name in ("batch_throughput", "latency_throughput", "batch_memory", "batch_roofline"):
        assert _texts(figs[name]) == names, name
    assert _texts(figs["batch_speedup"]) == {"gguf-q4_k_m", "bnb-nf4"}  # the quantized ones
    for name in ("latency_throughput", "batch_memory", "batch_roofline"):  # every point
        for trace in figs[name].data:
            if trace.mode and "markers" in trace.mode:
                assert all(trace.text), name
    for name in SUMMARY_FIGURES[-5:]:
        pairs = _family_colours(figs[name])
        assert pairs and all(c == COLOURS[f] for f, c in pairs), name


def test_the_speedup_figure_marks_the_crossover_and_the_memory_figure_the_device():
    points, shapes = _sweep_points()
    figs = point_plots.operating_figures(points, machine=OPS_SHAPE_MACHINE, shapes=shapes)
    marks = [a.text for a in figs["batch_speedup"].layout.annotations]
    # q4_k_m: faster at batch 1 and 4, slower from 16; nf4: slower, then faster from 16
    assert sorted(marks) == ["crossover: bnb-nf4", "crossover: gguf-q4_k_m"]
    lines = [s for s in figs["batch_speedup"].layout.shapes if s.line.dash == "dot"]
    assert sorted(round(s.x0, 3) for s in lines) == [8.0, 8.0]  # between batch 4 and 16
    assert figs["batch_throughput"].layout.xaxis.type == "log"
    memory = figs["batch_memory"]
    device = [s for s in memory.layout.shapes if s.y0 == 8000.0]
    assert device and "GPU memory: 8,000 MiB" in memory.layout.annotations[0].text
    fit = next(t for t in memory.data if t.name == "fit: bf16")
    assert list(fit.y) == pytest.approx([500.0 + 0.5 * 32, 500.0 + 0.5 * 64 * 32])
    roof = figs["batch_roofline"]
    assert roof.layout.xaxis.type == "log" and any(
        t.name.startswith("peak bandwidth") for t in roof.data)


def test_without_a_sweep_the_operating_figures_say_so(summary):
    points, _ = _sweep_points()
    one = points.groupby("precision").head(1)  # one point per precision
    for table in (None, one):
        figs = point_plots.operating_figures(table, machine=OPS_SHAPE_MACHINE)
        for name, fig in figs.items():
            assert not fig.data, name
            assert "no operating-point sweep" in fig.layout.annotations[0].text, name


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
