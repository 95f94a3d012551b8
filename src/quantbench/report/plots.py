"""Figures from the summary table, the machine and the GPU trace records (plotly): interactive HTML
that opens offline, and PNG.

One colour per backend family in every figure (its engine's, ``quantbench.engines``); precisions
are in the order of the precision table. An axis is logarithmic when its values span more than a
decade (``WIDE``). A figure without data (no perplexity for a random-weights model, no GPU for
the NVML time series) is still written, with a note saying why it is empty: the outputs of a run
do not depend on what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from quantbench import precisions, roofline
from quantbench.figures import SUMMARY_FIGURES, timeseries_name
from quantbench.metrics import RENAMED_PHASES
from quantbench.records import Status
from quantbench.report.aggregate import pareto_front, read_summary
from quantbench.report.plot_style import (
    LAYOUT,
    OTHER,
    PARETO_SIZE,
    PHASE_COLOURS,
    axis,
    bar_traces,
    ceilings,
    colour,
    note,
    ordered,
    place_labels,
    span,
    wrap,
)
from quantbench.report.point_plots import operating_figures
from quantbench.stats import Z95


def _bars(df: pd.DataFrame, column: str, title: str, yaxis: str, *, error=None,
          empty: str = "no data") -> go.Figure:
    df = df.dropna(subset=[column])
    fig = go.Figure()
    fig.update_layout(title=title, **LAYOUT)
    if df.empty:
        return note(fig, empty)
    bar_traces(fig, df, column, error=error)
    fig.update_layout(yaxis_title=yaxis, xaxis_title="precision")
    fig.update_xaxes(categoryorder="array", categoryarray=df["label"].tolist())
    fig.update_yaxes(**axis(df[column]))
    return fig


def quality_figure(df: pd.DataFrame, reference: str | None = None) -> go.Figure:
    """Perplexity change (with its paired 95 % interval) and KL divergence against the
    reference, one above the other."""
    ref = f" vs {reference}" if reference else " vs reference"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"Δ perplexity{ref} (lower is better)",
                                        f"mean KL divergence{ref} (lower is better)"))
    fig.update_layout(title="Quality against the reference precision",
                      **{**LAYOUT, "height": 750})
    ppl = df.dropna(subset=["ppl_delta_pct"])
    kld = df.dropna(subset=["kld_mean"])
    if ppl.empty and kld.empty:
        return note(fig, "no quality measured (random-weights models have no perplexity)")
    order = df["label"].tolist()
    bar_traces(fig, ppl, "ppl_delta_pct", row=1, col=1,
                error=("ppl_delta_pct_ci_low", "ppl_delta_pct_ci_high"))
    bar_traces(fig, kld, "kld_mean", row=2, col=1, showlegend=ppl.empty)
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_xaxes(title_text="precision", row=2, col=1)
    fig.update_yaxes(title_text="Δ perplexity (%; paired 95 % CI)", row=1, col=1)
    fig.update_yaxes(title_text="KL divergence (nats)", exponentformat="power",
                     **axis(kld["kld_mean"]), row=2, col=1)
    return fig


def speedup_figure(df: pd.DataFrame, reference: str | None = None) -> go.Figure:
    ref = reference or "reference"
    fig = _bars(df, "speedup_vs_ref", f"Decode speed-up over {ref}",
                f"decode tok/s ÷ {ref} decode tok/s (×)", empty=f"no {ref} run to compare with")
    if df["speedup_vs_ref"].notna().any():
        fig.add_hline(y=1, line_dash="dash", line_color="#444")
        # annotations on a log axis take log10 of the value
        fig.add_annotation(text=f"{ref} = 1×", x=0, xref="paper", xanchor="left",
                           y=0 if fig.layout.yaxis.type == "log" else 1, yanchor="bottom",
                           showarrow=False, bgcolor="white")
    return fig


def memory_figure(df: pd.DataFrame) -> go.Figure:
    """Peak memory (bars) with the weights' own size (markers) for each precision."""
    fig = _bars(df, "peak_mem_mib", "Peak memory during the latency run and size of the weights",
                "MiB (peak: GPU if used, else host RSS)")
    w = df.dropna(subset=["size_mib", "peak_mem_mib"])
    if not w.empty:
        fig.add_scatter(x=w["label"], y=w["size_mib"], mode="markers", name="weights",
                        marker=dict(symbol="diamond", size=10, color="#222"),
                        hovertemplate="%{x}: weights %{y:.4g} MiB<extra></extra>")
        fig.update_yaxes(**axis(pd.concat([w["size_mib"], w["peak_mem_mib"]])))
    return fig


def pareto_figure(df: pd.DataFrame, cost: str, front: str, *, title: str, xaxis: str,
                  maximize_cost: bool = False, reference: str | None = None) -> go.Figure:
    """Quality (Δ perplexity, lower is better) against a cost, points labelled by precision and
    the Pareto front (``front`` column of the summary) drawn as a line through its points."""

    fig = go.Figure()
    fig.update_layout(title=title, **{**LAYOUT, **PARETO_SIZE})
    quality = "ppl_delta_pct" if df["ppl_delta_pct"].notna().any() else "ppl"
    ok = df[(df["status"] == Status.OK)].dropna(subset=[cost, quality]).copy()
    if ok.empty:
        return note(fig, "no precision has both a perplexity and this measurement<br>"
                          "(random-weights models have no perplexity)")
    if front not in ok or ok[front].isna().all():
        ok[front] = False
        for _, g in ok.groupby("model"):
            ok.loc[g.index, front] = pareto_front(g, cost, quality, maximize_cost=maximize_cost)
    ok[front] = ok[front].astype(bool)
    for family, g in ok.groupby("backend", sort=False):
        fig.add_scatter(x=g[cost], y=g[quality], mode="markers", name=family, text=g["label"],
                        marker=dict(color=colour(family), size=11,
                                    line=dict(width=1, color="#222")),
                        hovertemplate="%{text}: %{x:.4g}, %{y:.4g}<extra>" + family + "</extra>")
    for model, g in ok[ok[front]].groupby("model"):
        g = g.sort_values(cost)
        name = "Pareto front" + (f" ({model})" if ok["model"].nunique() > 1 else "")
        fig.add_scatter(x=g[cost], y=g[quality], mode="lines", name=name,
                        line=dict(color="#222", dash="dash", width=1.5), hoverinfo="skip")
    ref = reference or "reference"
    ytitle = (f"Δ perplexity vs {ref} (%, lower is better)" if quality == "ppl_delta_pct"
              else "perplexity (lower is better)")
    fig.update_layout(xaxis_title=xaxis, yaxis_title=ytitle, legend_title="",
                      legend=dict(orientation="h", x=0, y=-0.15, yanchor="top"))
    xaxis_kw = axis(ok[cost])
    yaxis_kw = axis(ok[quality]) if (ok[quality] > 0).all() else {"type": "linear"}
    xrange, yrange = span(ok[cost], xaxis_kw["type"]), span(ok[quality], yaxis_kw["type"])
    fig.update_xaxes(range=xrange, **xaxis_kw)
    fig.update_yaxes(range=yrange, **yaxis_kw)
    place_labels(fig, ok[cost], ok[quality], ok["label"].tolist(), xrange=xrange,
                  yrange=yrange, xlog=xaxis_kw["type"] == "log",
                  ylog=yaxis_kw["type"] == "log")
    return fig


def roofline_figure(df: pd.DataFrame, machine: dict | None) -> go.Figure:
    """Achieved FLOP/s against arithmetic intensity, under the machine's bandwidth slope and
    compute roofs (log-log). Decode: bytes are the weights + KV cache read per token (see
    quantbench.roofline); prefill: the weights read once per prompt."""
    machine = machine or {}
    fig = go.Figure()
    fig.update_layout(title="Roofline: decode and prefill against the machine's ceilings",
                      **LAYOUT)
    ok = df[df["status"] == Status.OK].copy()
    ok["decode_ai"] = ok["decode_flop_per_byte"]
    ok["decode_tflops"] = ok["decode_gb_s"] * ok["decode_ai"] / 1e3
    ok["prefill_ai"] = roofline.prefill_flop_per_byte(ok["prefill_tflops"], ok["prefill_ms"],
                                                      ok["size_mib"])
    points = {"decode": ("decode_ai", "decode_tflops", "circle"),
              "prefill": ("prefill_ai", "prefill_tflops", "triangle-up-open")}
    xs, ys = [], []
    for phase, (x, y, symbol) in points.items():
        d = ok.dropna(subset=[x, y])
        d = d[(d[x] > 0) & (d[y] > 0)]
        xs += d[x].tolist()
        ys += d[y].tolist()
        for family, g in d.groupby("backend", sort=False):
            fig.add_scatter(x=g[x], y=g[y], mode="markers", name=f"{family} · {phase}",
                            legendgroup=family, text=g["label"],
                            marker=dict(color=colour(family), symbol=symbol, size=10,
                                        line=dict(width=1.5, color=colour(family))),
                            hovertemplate="%{text} " + phase + ": %{x:.3g} FLOP/byte, "
                                          "%{y:.3g} TFLOP/s<extra></extra>")
    if not xs:
        return note(fig, "no roofline data (needs the model's shape and results/machine.json)")
    return ceilings(fig, machine, xs)


def timeseries_figure(record: dict) -> go.Figure:
    """One precision's NVML samples over time: power, utilisation and clocks, with the trace's
    windows shaded (idle; generate: whole runs, a prefill then decode steps; prefill alone; a
    trace made before the idle window named its generate window "decode"). A record without
    samples (no GPU, a failed run) gives a figure that says so."""
    model, precision = record["model"], record["precision"]
    family = precisions.get(precision).backend if precision in precisions.table() else "other"
    samples = record.get("details", {}).get("samples") or []
    phases = record.get("details", {}).get("phases") or []
    title = f"GPU over time (NVML), phases shaded: {model} / {precision}"
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    fig.update_layout(title=title, **{**LAYOUT, "height": 700, "legend_title": ""})
    if not samples:
        fig.update_layout(height=350)
        why = record.get("reason") or "the GPU trace record holds no samples"
        return note(fig, f"no GPU samples (status {record.get('status')}):<br>" + wrap(why))
    s = pd.DataFrame(samples)
    t0 = min([s["t"].min(), *(p["start"] for p in phases)])
    s["time_s"] = s["t"] - t0
    c = colour(family)
    series = [(1, "power_w", "power", "solid"), (2, "gpu_util_pct", "GPU utilisation", "solid"),
              (2, "mem_util_pct", "memory utilisation", "dash"),
              (3, "sm_clock_mhz", "SM clock", "solid"), (3, "mem_clock_mhz", "memory clock",
                                                          "dash")]
    for row, column, name, dash in series:
        if column in s:
            fig.add_scatter(x=s["time_s"], y=s[column], mode="lines", name=name, row=row, col=1,
                            line=dict(color=c, dash=dash, width=1.5))
    for ph in phases:
        x0, x1 = ph["start"] - t0, ph["end"] - t0
        phase = RENAMED_PHASES.get(ph["phase"], ph["phase"])
        shade = PHASE_COLOURS.get(phase, OTHER)
        fig.add_vrect(x0=x0, x1=x1, fillcolor=shade, opacity=0.15, line_width=0, layer="below",
                      row="all", col=1)
        fig.add_annotation(x=(x0 + x1) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom",
                           text=f"{phase} ({ph['tokens']} tokens)" if ph["tokens"] else phase,
                           showarrow=False,
                           font=dict(color=shade))
    fig.update_yaxes(title_text="power (W)", row=1, col=1)
    fig.update_yaxes(title_text="utilisation (%)", range=[0, 105], row=2, col=1)
    fig.update_yaxes(title_text="clock (MHz)", row=3, col=1)
    fig.update_xaxes(title_text="time since the first sample (s)", row=3, col=1)
    return fig


def _prefill_title(df: pd.DataFrame) -> str:
    lengths = sorted(df["prompt_tokens"].dropna().astype(int).unique())
    what = f"prompts of {', '.join(map(str, lengths))} tokens" if lengths else "prompt processing"
    return f"Prefill throughput ({what})"


def figures(summary: pd.DataFrame, *, machine: dict | None = None, gpu_traces=(),
            reference: str | None = None, points: pd.DataFrame | None = None,
            shapes: dict | None = None, report: dict | None = None) -> dict[str, go.Figure]:
    """Every figure, by file stem: the summary's figures, the operating points' (``points``:
    results/points.csv, None when the run wrote none) and one NVML time series per GPU trace
    record (results/<model>/gpu/)."""
    df = ordered(summary)
    # normal 95 % interval from the standard error over the evaluated tokens; none (not a
    # zero-width bar) where there is no standard error
    df["ppl_ci_low"] = df["ppl"] - Z95 * df["ppl_stderr"]
    df["ppl_ci_high"] = df["ppl"] + Z95 * df["ppl_stderr"]
    ok = df[df["status"] == Status.OK]
    no_ppl = "no perplexity measured (random-weights models have none)"
    built = {
        "perplexity": _bars(df, "ppl", "Perplexity by precision",
                            "perplexity (lower is better; 95 % CI)",
                            error=("ppl_ci_low", "ppl_ci_high"), empty=no_ppl),
        "quality": quality_figure(df, reference),
        "decode_throughput": _bars(ok, "decode_tok_s", "Decode throughput (batch 1)",
                                   "decode tokens / s (95 % CI)",
                                   error=("decode_tok_s_ci_low", "decode_tok_s_ci_high")),
        "prefill_throughput": _bars(ok, "prefill_tok_s", _prefill_title(ok), "prompt tokens / s"),
        "speedup": speedup_figure(ok, reference),
        "memory": memory_figure(ok),
        "pareto_speed": pareto_figure(df, "decode_tok_s", "pareto_quality_speed",
                                      title="Quality against decode speed (Pareto front)",
                                      xaxis="decode tokens / s (higher is better)",
                                      maximize_cost=True, reference=reference),
        "pareto_memory": pareto_figure(df, "peak_mem_mib", "pareto_quality_memory",
                                       title="Quality against peak memory (Pareto front)",
                                       xaxis="peak memory (MiB, lower is better)",
                                       reference=reference),
        "roofline": roofline_figure(df, machine),
        **operating_figures(points, summary, machine=machine, shapes=shapes, report=report),
    }
    if set(built) != set(SUMMARY_FIGURES):
        raise RuntimeError(f"figures drawn ({', '.join(built)}) are not the list of "
                           f"quantbench.figures ({', '.join(SUMMARY_FIGURES)})")
    figs = {name: built[name] for name in SUMMARY_FIGURES}
    for rec in gpu_traces:
        figs[timeseries_name(rec["model"], rec["precision"])] = timeseries_figure(rec)
    return figs


# -- operating points ---------------------------------------------------------------------------


def write_pngs(figs: list[go.Figure], paths: list, scale: float = 2) -> None:
    """Static images through one browser session (one per image is seconds each), each at its
    layout's size. kaleido's batch export has been seen to return without writing one of a
    couple of dozen images (the first), so every path is checked and a missing one is written
    again on its own."""
    pio.write_images(figs, [str(p) for p in paths], scale=scale,
                     width=[f.layout.width for f in figs], height=[f.layout.height for f in figs])
    for fig, path in zip(figs, paths, strict=True):
        if not Path(path).is_file():
            pio.write_image(fig, str(path), scale=scale, width=fig.layout.width,
                            height=fig.layout.height)
        if not Path(path).is_file():
            raise RuntimeError(f"kaleido wrote no {path}")


def plot_all(summary_path, *, html, png, machine_path=None, gpu_trace_paths=(),
             reference: str | None = None, points_path=None, model_dirs=(),
             report: dict | None = None) -> None:
    summary = read_summary(summary_path)
    machine = json.loads(Path(machine_path).read_text()) if machine_path else None
    gpu_traces = [json.loads(Path(p).read_text()) for p in gpu_trace_paths]
    points = (pd.read_csv(points_path) if points_path and Path(points_path).is_file()
              else None)
    figs = figures(summary, machine=machine, gpu_traces=gpu_traces, reference=reference,
                   points=points, shapes=roofline.shapes(model_dirs), report=report)
    for out in list(html) + list(png):
        name = Path(out).stem
        if name not in figs:
            raise ValueError(f"no figure named {name!r}; have {', '.join(figs)}")
    for out in html:
        fig = figs[Path(out).stem]
        # plotly.js is written once beside the pages, so they open without a network.
        fig.write_html(out, include_plotlyjs="directory", full_html=True)
    png = list(png)
    try:
        write_pngs([figs[Path(out).stem] for out in png], png)
    except Exception as exc:  # kaleido raises its own types when no browser is found
        for out in png:
            Path(out).unlink(missing_ok=True)
        raise RuntimeError(
            f"static export of the PNG figures failed ({exc}); PNG figures need Chromium for "
            "kaleido (Debian: apt-get install chromium). The HTML figures were written."
        ) from exc
