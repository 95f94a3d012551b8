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

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from quantbench import engines, precisions, roofline
from quantbench.figures import SUMMARY_FIGURES, timeseries_name
from quantbench.points import COLUMNS as POINT_COLUMNS
from quantbench.report import point_table, scaling, serving
from quantbench.stats import Z95

OTHER = "#7f7f7f"
PHASE_COLOURS = {"prefill": "#9467bd", "decode": "#8c564b"}  # no family colour: shading only
WIDE = 20.0  # max / min above which an axis is logarithmic (more than a decade and a bit)
LAYOUT = dict(template="plotly_white", width=900, height=500, legend_title="backend",
              font=dict(size=13))
# one curve per context (prompt tokens, depth): told apart by the line's dash
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
# precisions of one family (one colour) told apart by the marker
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "star", "hexagon")


def colour(family: str) -> str:
    """An engine's colour (its registry entry's), grey for anything else."""
    engine = engines.REGISTRY.get(family)
    return engine.colour if engine else OTHER


def _axis(values) -> dict:
    """A linear axis, or a logarithmic one when the values span more than ``WIDE``: ticks at
    the decades when they span more than three, else at 1, 2 and 5 of each decade, written out
    (plotly's own minor labels drop the leading "0.", so 0.5 would read 5)."""
    v = pd.Series(values, dtype=float).dropna()
    v = v[v > 0]
    if len(v) < 2 or v.max() / v.min() <= WIDE:
        return {"type": "linear"}
    if v.max() / v.min() > 1e3:
        return {"type": "log", "dtick": 1}
    lo, hi = int(np.floor(np.log10(v.min()))), int(np.ceil(np.log10(v.max())))
    ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5)]
    return {"type": "log", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _ordered(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows in the precision table's order, each with the label its bars and points get."""
    from quantbench.report.aggregate import SUMMARY_COLUMNS

    missing = [c for c in SUMMARY_COLUMNS if c not in summary]
    df = summary.reindex(columns=[*summary.columns, *missing])
    rank = {name: i for i, name in enumerate(precisions.table())}
    df["_rank"] = df["precision"].map(rank).fillna(len(rank))
    df = df.sort_values(["model", "_rank", "precision"], kind="stable").drop(columns="_rank")
    multi = df["model"].nunique() > 1
    df["label"] = (df["model"] + " / " + df["precision"]) if multi else df["precision"]
    return df.reset_index(drop=True)


def _note(fig: go.Figure, text: str) -> go.Figure:
    """An empty figure's explanation, in the middle of the plot."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=15, color="#444"), align="center")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _bar_traces(fig: go.Figure, df: pd.DataFrame, column: str, *, error=None, row=None,
                col=None, showlegend=True) -> None:
    """One bar trace per family; ``error`` names the interval's (low, high) columns. Bars whose
    interval is unavailable (NaN: too few runs or windows) go in a second trace of the family
    without error bars: plotly draws a missing error value as a zero-width bar."""
    for family, group in df.groupby("backend", sort=False):
        parts = [(group, False)]
        if error is not None:
            low, high = error
            known = group[low].notna() & group[high].notna()
            parts = [(group[known], True), (group[~known], False)]
        first = True
        for part, with_error in parts:
            if part.empty:
                continue
            kwargs = {}
            if with_error:
                kwargs["error_y"] = dict(type="data", symmetric=False,
                                         array=(part[high] - part[column]).tolist(),
                                         arrayminus=(part[column] - part[low]).tolist())
            fig.add_bar(x=part["label"], y=part[column], name=family, legendgroup=family,
                        offsetgroup=family, marker_color=colour(family),
                        showlegend=showlegend and first, row=row, col=col,
                        hovertemplate="%{x}: %{y:.4g}<extra>" + family + "</extra>", **kwargs)
            first = False


def _bars(df: pd.DataFrame, column: str, title: str, yaxis: str, *, error=None,
          empty: str = "no data") -> go.Figure:
    df = df.dropna(subset=[column])
    fig = go.Figure()
    fig.update_layout(title=title, **LAYOUT)
    if df.empty:
        return _note(fig, empty)
    _bar_traces(fig, df, column, error=error)
    fig.update_layout(yaxis_title=yaxis, xaxis_title="precision")
    fig.update_xaxes(categoryorder="array", categoryarray=df["label"].tolist())
    fig.update_yaxes(**_axis(df[column]))
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
        return _note(fig, "no quality measured (random-weights models have no perplexity)")
    order = df["label"].tolist()
    _bar_traces(fig, ppl, "ppl_delta_pct", row=1, col=1,
                error=("ppl_delta_pct_ci_low", "ppl_delta_pct_ci_high"))
    _bar_traces(fig, kld, "kld_mean", row=2, col=1, showlegend=ppl.empty)
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_xaxes(title_text="precision", row=2, col=1)
    fig.update_yaxes(title_text="Δ perplexity (%; paired 95 % CI)", row=1, col=1)
    fig.update_yaxes(title_text="KL divergence (nats)", exponentformat="power",
                     **_axis(kld["kld_mean"]), row=2, col=1)
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
        fig.update_yaxes(**_axis(pd.concat([w["size_mib"], w["peak_mem_mib"]])))
    return fig


PARETO_SIZE = dict(width=1000, height=600, margin=dict(l=80, r=30, t=70, b=115))
LABEL_FONT = 11


def _span(values, axis_type: str) -> list[float]:
    """The axis range (plotly's units: log10 on a log axis) with 6 % padding on each side."""
    v = pd.Series(values, dtype=float)
    v = np.log10(v) if axis_type == "log" else v
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * 0.06 or 0.5
    return [lo - pad, hi + pad]


def _place_labels(fig: go.Figure, x, y, texts, *, xrange, yrange, xlog, ylog) -> None:
    """Label every point without overlaps where one can: each label, in turn, takes the first
    offset (nearest first, eight directions) whose box touches no label or point placed so far;
    a label away from its point gets a thin leader line."""
    width = PARETO_SIZE["width"] - PARETO_SIZE["margin"]["l"] - PARETO_SIZE["margin"]["r"]
    height = PARETO_SIZE["height"] - PARETO_SIZE["margin"]["t"] - PARETO_SIZE["margin"]["b"]
    fx = np.log10(np.asarray(x, float)) if xlog else np.asarray(x, float)
    fy = np.log10(np.asarray(y, float)) if ylog else np.asarray(y, float)
    px = (fx - xrange[0]) / (xrange[1] - xrange[0]) * width
    py = (fy - yrange[0]) / (yrange[1] - yrange[0]) * height  # upwards
    boxes = [(a - 7, b - 7, a + 7, b + 7) for a, b in zip(px, py, strict=True)]
    directions = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    candidates = [(dx * r, dy * r) for r in (14, 30, 50, 75, 105) for dx, dy in directions]

    def overlap(box) -> float:
        out = 0.0
        for b in boxes:
            w = min(box[2], b[2]) - max(box[0], b[0])
            h = min(box[3], b[3]) - max(box[1], b[1])
            out += max(w, 0) * max(h, 0)
        outside = box[0] < -40 or box[2] > width + 20 or box[1] < 0 or box[3] > height + 30
        return out + (1e6 if outside else 0)

    for i in np.argsort(px, kind="stable"):
        half_w, half_h = 0.31 * LABEL_FONT * len(texts[i]) + 2, LABEL_FONT * 0.7
        best, best_cost = candidates[0], float("inf")
        for dx, dy in candidates:
            cx = px[i] + (dx / abs(dx)) * (abs(dx) + half_w - 6) if dx else px[i]
            cy = py[i] + dy
            box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            cost = overlap(box)
            if cost < best_cost:
                best, best_cost, best_box = (cx - px[i], cy - py[i]), cost, box
            if cost == 0:
                break
        boxes.append(best_box)
        far = abs(best[0]) > half_w + 16 or abs(best[1]) > 20
        fig.add_annotation(x=fx[i], y=fy[i], text=texts[i], ax=best[0], ay=-best[1],
                           axref="pixel", ayref="pixel", showarrow=True, arrowhead=0,
                           arrowwidth=0.7, arrowcolor="#999" if far else "rgba(0,0,0,0)",
                           font=dict(size=LABEL_FONT), standoff=6)


def pareto_figure(df: pd.DataFrame, cost: str, front: str, *, title: str, xaxis: str,
                  maximize_cost: bool = False, reference: str | None = None) -> go.Figure:
    """Quality (Δ perplexity, lower is better) against a cost, points labelled by precision and
    the Pareto front (``front`` column of the summary) drawn as a line through its points."""
    from quantbench.report.aggregate import pareto_front

    fig = go.Figure()
    fig.update_layout(title=title, **{**LAYOUT, **PARETO_SIZE})
    quality = "ppl_delta_pct" if df["ppl_delta_pct"].notna().any() else "ppl"
    ok = df[(df["status"] == "ok")].dropna(subset=[cost, quality]).copy()
    if ok.empty:
        return _note(fig, "no precision has both a perplexity and this measurement<br>"
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
    xaxis_kw = _axis(ok[cost])
    yaxis_kw = _axis(ok[quality]) if (ok[quality] > 0).all() else {"type": "linear"}
    xrange, yrange = _span(ok[cost], xaxis_kw["type"]), _span(ok[quality], yaxis_kw["type"])
    fig.update_xaxes(range=xrange, **xaxis_kw)
    fig.update_yaxes(range=yrange, **yaxis_kw)
    _place_labels(fig, ok[cost], ok[quality], ok["label"].tolist(), xrange=xrange,
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
    ok = df[df["status"] == "ok"].copy()
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
        return _note(fig, "no roofline data (needs the model's shape and results/machine.json)")
    return _ceilings(fig, machine, xs)


def _ceilings(fig: go.Figure, machine: dict, xs: list[float]) -> go.Figure:
    """The machine's bandwidth slope and compute roofs under points at intensities ``xs``,
    on log-log axes."""
    bw = machine.get("peak_bw_gb_s")
    roofs = {k: v for k, v in (machine.get("matmul_tflops") or {}).items() if v}
    peak = roofline.peak_tflops(machine)
    ridge = roofline.ridge_flop_per_byte(machine)
    lo = min(xs) / 3
    hi = max([*xs, ridge or 0]) * 3
    if bw:
        x_end = min(hi, ridge) if ridge else hi
        fig.add_scatter(x=[lo, x_end], y=[bw * lo / 1e3, bw * x_end / 1e3], mode="lines",
                        name=f"peak bandwidth {_short(bw)} GB/s", line=dict(color="#222", width=2),
                        hoverinfo="skip")
    for dtype, tflops in sorted(roofs.items(), key=lambda kv: -kv[1]):
        start = tflops * 1e12 / (bw * 1e9) if bw else lo
        best = tflops == peak
        fig.add_scatter(x=[start, hi], y=[tflops, tflops], mode="lines",
                        name=f"{dtype} matmul {_short(tflops)} TFLOP/s",
                        line=dict(color="#222" if best else "#888", width=2 if best else 1,
                                  dash="solid" if best else "dot"), hoverinfo="skip")
    if not (bw and roofs):
        fig.add_annotation(text="machine ceilings unknown (results/machine.json)", x=0.02,
                           y=0.98, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(type="log", dtick=1, title_text="arithmetic intensity (FLOP/byte)")
    fig.update_yaxes(type="log", dtick=1, title_text="achieved performance (TFLOP/s)")
    fig.update_layout(legend_title="", legend_tracegroupgap=2)
    return fig


def timeseries_figure(record: dict) -> go.Figure:
    """One precision's NVML samples over time: power, utilisation and clocks, with the prefill
    and decode phases shaded. A record without samples (no GPU, a failed run) gives a figure
    that says so."""
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
        return _note(fig, f"no GPU samples (status {record.get('status')}):<br>" + _wrap(why))
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
        shade = PHASE_COLOURS.get(ph["phase"], OTHER)
        fig.add_vrect(x0=x0, x1=x1, fillcolor=shade, opacity=0.15, line_width=0, layer="below",
                      row="all", col=1)
        fig.add_annotation(x=(x0 + x1) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom",
                           text=f"{ph['phase']} ({ph['tokens']} tokens)", showarrow=False,
                           font=dict(color=shade))
    fig.update_yaxes(title_text="power (W)", row=1, col=1)
    fig.update_yaxes(title_text="utilisation (%)", range=[0, 105], row=2, col=1)
    fig.update_yaxes(title_text="clock (MHz)", row=3, col=1)
    fig.update_xaxes(title_text="time since the first sample (s)", row=3, col=1)
    return fig


def _short(v: float) -> str:
    """A ceiling's value for a label: whole above 100, else three significant digits."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _wrap(text: str, width: int = 90) -> str:
    words, lines, line = str(text).split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "<br>".join([*lines, line])


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
    df = _ordered(summary)
    # normal 95 % interval from the standard error over the evaluated tokens; none (not a
    # zero-width bar) where there is no standard error
    df["ppl_ci_low"] = df["ppl"] - Z95 * df["ppl_stderr"]
    df["ppl_ci_high"] = df["ppl"] + Z95 * df["ppl_stderr"]
    ok = df[df["status"] == "ok"]
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

NO_SWEEP = "no operating-point sweep<br>(results/points.csv absent, or one point per precision)"


def _points(points: pd.DataFrame) -> pd.DataFrame:
    """Ok points in the precision table's order, each with its label (as ``_ordered``) and
    the index of its context (prompt, depth) for the line dash."""
    df = point_table.in_table_order(points)
    df = df[df["status"] == "ok"].copy()
    multi = df["model"].nunique() > 1
    df["label"] = (df["model"] + " / " + df["precision"]) if multi else df["precision"]
    contexts = sorted(set(zip(df["prompt_tokens"], df["context_depth"], strict=True)))
    df["context"] = [contexts.index(c) for c in zip(df["prompt_tokens"], df["context_depth"],
                                                     strict=True)]
    rank = {label: i for _, g in df.groupby("backend", sort=False)
            for i, label in enumerate(dict.fromkeys(g["label"]))}
    df["symbol"] = [SYMBOLS[rank[label] % len(SYMBOLS)] for label in df["label"]]
    return df.reset_index(drop=True)


def _curves(df: pd.DataFrame):
    """(label, family, prompt, depth, context index, rows by batch) of each curve."""
    for (label, prompt, depth), g in df.groupby(["label", "prompt_tokens", "context_depth"],
                                                sort=False):
        yield label, g["backend"].iloc[0], prompt, depth, g["context"].iloc[0], \
            g.sort_values("batch_size")


def _curve_name(label: str, prompt, depth) -> str:
    return f"{label} · prompt {prompt:g}, depth {depth:g}"


def _end_labels(texts: list[str]) -> list[str]:
    """A line's text: its label on the last point only."""
    return [""] * (len(texts) - 1) + texts[-1:]


def _batch_axis(fig: go.Figure, batches) -> None:
    """A logarithmic batch-size axis with a tick at each measured batch size."""
    ticks = sorted({int(b) for b in pd.Series(batches).dropna()})
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[str(t) for t in ticks],
                     title_text="batch size (sequences decoded together)")


def batch_throughput_figure(df: pd.DataFrame) -> go.Figure:
    """Total decode throughput against the batch size (log x), one line per precision and
    context, with the 95 % interval."""
    fig = go.Figure()
    fig.update_layout(title="Decode throughput against batch size", **{**LAYOUT, "height": 600})
    if df.empty:
        return _note(fig, NO_SWEEP)
    for label, family, prompt, depth, ctx, g in _curves(df):
        known = g["decode_tok_s_ci_low"].notna() & g["decode_tok_s_ci_high"].notna()
        error = (dict(type="data", symmetric=False,
                      array=(g["decode_tok_s_ci_high"] - g["decode_tok_s"]).fillna(0).tolist(),
                      arrayminus=(g["decode_tok_s"] - g["decode_tok_s_ci_low"]).fillna(0).tolist())
                 if known.all() else None)
        fig.add_scatter(x=g["batch_size"], y=g["decode_tok_s"], mode="lines+markers+text",
                        name=_curve_name(label, prompt, depth), legendgroup=family,
                        text=_end_labels([label] * len(g)), textposition="top center",
                        cliponaxis=False,
                        line=dict(color=colour(family), dash=DASHES[ctx % len(DASHES)]),
                        marker=dict(color=colour(family), size=8, symbol=g["symbol"].iloc[0]),
                        error_y=error,
                        hovertemplate="batch %{x}: %{y:.4g} tok/s<extra>" + label + "</extra>")
    _batch_axis(fig, df["batch_size"])
    fig.update_yaxes(title_text="decode tokens / s, all sequences (95 % CI)",
                     **_axis(df["decode_tok_s"]))
    fig.update_layout(legend_title="precision · context")
    return fig


def latency_throughput_figure(df: pd.DataFrame) -> go.Figure:
    """What one user sees (per-sequence tok/s) against what the device serves (total tok/s):
    each line goes through the batch sizes of one precision and context."""
    fig = go.Figure()
    fig.update_layout(title="Per-sequence against total decode throughput (over batch sizes)",
                      **{**LAYOUT, "height": 600})
    if df.empty:
        return _note(fig, NO_SWEEP)
    for label, family, prompt, depth, ctx, g in _curves(df):
        fig.add_scatter(x=g["decode_tok_s"], y=g["decode_tok_s_per_seq"],
                        mode="lines+markers+text", name=_curve_name(label, prompt, depth),
                        legendgroup=family, text=[label] * len(g), textposition="top center",
                        textfont=dict(size=LABEL_FONT), customdata=g["batch_size"],
                        line=dict(color=colour(family), dash=DASHES[ctx % len(DASHES)]),
                        marker=dict(color=colour(family), size=8, symbol=g["symbol"].iloc[0]),
                        hovertemplate="batch %{customdata}: %{x:.4g} tok/s in all, "
                                      "%{y:.4g} per sequence<extra>" + label + "</extra>")
    fig.update_xaxes(title_text="total decode tokens / s (higher: more served)",
                     **_axis(df["decode_tok_s"]))
    fig.update_yaxes(title_text="decode tokens / s per sequence (higher: faster for each user)",
                     **_axis(df["decode_tok_s_per_seq"]))
    fig.update_layout(legend_title="precision · context")
    return fig


STATE_SYMBOLS = {point_table.FASTER: "circle", point_table.SLOWER: "x",
                 point_table.UNCLEAR: "circle-open"}


def batch_speedup_figure(points: pd.DataFrame, labels: dict) -> go.Figure:
    """Each quantized precision's decode speed-up over its baseline against the batch size;
    filled: faster with the 95 % intervals apart, cross: slower, open: no clear difference.
    A dotted line marks each crossover (``scaling.crossover``)."""
    fig = go.Figure()
    fig.update_layout(title="Decode speed-up over the unquantized baseline, by batch size",
                      **{**LAYOUT, "height": 600})
    cmp = scaling.against_baseline(points)
    if cmp.empty:
        return _note(fig, NO_SWEEP + "<br>or no quantized precision beside its baseline")
    contexts = sorted(set(zip(cmp["prompt_tokens"], cmp["context_depth"], strict=True)))
    for (model, name, base, prompt, depth), g in cmp.groupby(
            ["model", "precision", "baseline", *point_table.CONTEXT], sort=False):
        g = g.sort_values("batch_size")
        label = labels.get((model, name), name)
        family = precisions.get(name).backend
        ctx = contexts.index((prompt, depth))
        fig.add_scatter(x=g["batch_size"], y=g["speedup"], mode="lines+markers+text",
                        name=f"{_curve_name(label, prompt, depth)} vs {base}",
                        legendgroup=family, text=_end_labels([label] * len(g)),
                        textposition="top center", cliponaxis=False,
                        line=dict(color=colour(family), dash=DASHES[ctx % len(DASHES)]),
                        marker=dict(color=colour(family), size=10,
                                    symbol=[STATE_SYMBOLS[s] for s in g["state"]]),
                        customdata=g["state"],
                        hovertemplate="batch %{x}: %{y:.3g}× (%{customdata})<extra>"
                                      + f"{label} vs {base}</extra>")
        if len(g) >= 2:
            kind, extra = scaling.crossover(g["state"].tolist(),
                                              [int(b) for b in g["batch_size"]])
            if kind == "crossover_switch":
                at = (extra["up_to"] * extra["from_batch"]) ** 0.5  # between the two, log x
                fig.add_vline(x=at, line_dash="dot", line_color=colour(family))
                fig.add_annotation(x=np.log10(at), y=1 + 0.05 * len(fig.layout.annotations),
                                   yref="paper", yanchor="bottom", text=f"crossover: {label}",
                                   showarrow=False, font=dict(color=colour(family),
                                                              size=LABEL_FONT))
    fig.add_hline(y=1, line_dash="dash", line_color="#444")
    _batch_axis(fig, cmp["batch_size"])
    fig.update_yaxes(title_text="decode tok/s ÷ baseline decode tok/s (×)",
                     **_axis(cmp["speedup"]))
    fig.update_layout(legend_title="precision · context vs baseline")
    return fig


def batch_memory_figure(df: pd.DataFrame, machine: dict | None, report: dict | None
                        ) -> go.Figure:
    """Peak memory against the tokens held in the KV caches (batch x tokens per sequence),
    the least-squares line of each precision (``serving.fit_capacity``) and the device's
    memory."""
    fig = go.Figure()
    fig.update_layout(title="Memory against batch × tokens per sequence",
                      **{**LAYOUT, "height": 600})
    d = df.dropna(subset=["peak_mem_mib", "kv_tokens"])
    if d.empty:
        return _note(fig, NO_SWEEP)
    for (label, family), g in d.groupby(["label", "backend"], sort=False):
        fig.add_scatter(x=g["kv_tokens"], y=g["peak_mem_mib"], mode="markers+text",
                        name=label, legendgroup=family, text=[label] * len(g),
                        textposition="top center", textfont=dict(size=LABEL_FONT),
                        marker=dict(color=colour(family), size=9, symbol=g["symbol"].iloc[0]),
                        customdata=np.stack([g["batch_size"], g["kv_tokens_per_seq"]], axis=-1),
                        hovertemplate="batch %{customdata[0]} × %{customdata[1]} tokens: "
                                      "%{y:.4g} MiB<extra>" + label + "</extra>")
    settings = point_table.Settings.from_config(report)
    labels = dict(zip(zip(d["model"], d["precision"], strict=True), d["label"], strict=True))
    for c in serving.fit_capacity(d, settings, machine):
        x = [c.tokens_min, c.tokens_max]
        fig.add_scatter(x=x, y=[c.fixed_mib + c.per_token_kib / 1024 * v for v in x],
                        mode="lines", name=f"fit: {labels[(c.model, c.precision)]}",
                        legendgroup=precisions.get(c.precision).backend,
                        line=dict(color=colour(precisions.get(c.precision).backend), width=1,
                                  dash="dot"), hoverinfo="skip")
    device, what = serving.device_memory(machine)
    if device is not None:
        fig.add_hline(y=device, line_dash="dash", line_color="#444",
                      annotation_text=f"{what}: {_short(device)} MiB",
                      annotation_position="top left")
    fig.update_xaxes(title_text="tokens in the KV caches (batch × tokens per sequence)",
                     **_axis(d["kv_tokens"]))
    fig.update_yaxes(title_text="peak memory while serving (MiB)")
    fig.update_layout(legend_title="precision")
    return fig


def batch_roofline_figure(df: pd.DataFrame, machine: dict | None) -> go.Figure:
    """Decode of each operating point on the roofline: FLOP/s against FLOP per byte read per
    step (``point_table.prepare``); a larger batch moves a precision right, toward the ridge."""
    machine = machine or {}
    fig = go.Figure()
    fig.update_layout(title="Roofline: decode at each batch size", **{**LAYOUT, "height": 600})
    d = df.dropna(subset=["decode_flop_per_byte", "decode_tflops"]) if not df.empty else df
    d = d[(d["decode_flop_per_byte"] > 0) & (d["decode_tflops"] > 0)] if not d.empty else d
    if d.empty:
        return _note(fig, NO_SWEEP + "<br>or no roofline data (the model's shape, machine.json)")
    for (label, family), g in d.groupby(["label", "backend"], sort=False):
        fig.add_scatter(x=g["decode_flop_per_byte"], y=g["decode_tflops"], mode="markers+text",
                        name=label, legendgroup=family, text=[label] * len(g),
                        textposition="top center", textfont=dict(size=LABEL_FONT),
                        marker=dict(color=colour(family), size=9, symbol=g["symbol"].iloc[0]),
                        customdata=g["batch_size"],
                        hovertemplate="batch %{customdata}: %{x:.3g} FLOP/byte, "
                                      "%{y:.3g} TFLOP/s<extra>" + label + "</extra>")
    return _ceilings(fig, machine, d["decode_flop_per_byte"].tolist())


def operating_figures(points: pd.DataFrame | None, summary: pd.DataFrame | None = None, *,
                      machine: dict | None = None, shapes: dict | None = None,
                      report: dict | None = None) -> dict[str, go.Figure]:
    """The operating points' figures; each says so when there is no sweep."""
    empty = pd.DataFrame(columns=[*POINT_COLUMNS, "label", "context", "symbol",
                                  "kv_tokens",
                                  "kv_tokens_per_seq", "decode_flop_per_byte", "decode_tflops"])
    if point_table.swept(points):
        df = _points(point_table.prepare(points, summary, machine, shapes))
        raw = points
    else:
        df, raw = empty, empty
    labels = dict(zip(zip(df["model"], df["precision"], strict=True), df["label"], strict=True))
    return {"batch_throughput": batch_throughput_figure(df),
            "latency_throughput": latency_throughput_figure(df),
            "batch_speedup": batch_speedup_figure(raw, labels),
            "batch_memory": batch_memory_figure(df, machine, report),
            "batch_roofline": batch_roofline_figure(df, machine)}


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
    summary = pd.read_csv(summary_path)
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
