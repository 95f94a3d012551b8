"""The operating-point figures (results/points.csv): decode throughput and per-token latency
against the batch, each quantized precision against its baseline, memory against the batch,
the batch roofline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quantbench import precisions
from quantbench.points import COLUMNS as POINT_COLUMNS
from quantbench.records import Status
from quantbench.report import point_table, scaling, serving
from quantbench.report.plot_style import (
    DASHES,
    LABEL_FONT,
    LAYOUT,
    SYMBOLS,
    axis,
    ceilings,
    colour,
    note,
    short,
)

NO_SWEEP = "no operating-point sweep<br>(results/points.csv absent, or one point per precision)"


def _points(points: pd.DataFrame) -> pd.DataFrame:
    """Ok points in the precision table's order, each with its label (as ``ordered``) and
    the index of its context (prompt, depth) for the line dash."""
    df = point_table.in_table_order(points)
    df = df[df["status"] == Status.OK].copy()
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
        return note(fig, NO_SWEEP)
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
                     **axis(df["decode_tok_s"]))
    fig.update_layout(legend_title="precision · context")
    return fig


def latency_throughput_figure(df: pd.DataFrame) -> go.Figure:
    """What one user sees (per-sequence tok/s) against what the device serves (total tok/s):
    each line goes through the batch sizes of one precision and context."""
    fig = go.Figure()
    fig.update_layout(title="Per-sequence against total decode throughput (over batch sizes)",
                      **{**LAYOUT, "height": 600})
    if df.empty:
        return note(fig, NO_SWEEP)
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
                     **axis(df["decode_tok_s"]))
    fig.update_yaxes(title_text="decode tokens / s per sequence (higher: faster for each user)",
                     **axis(df["decode_tok_s_per_seq"]))
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
        return note(fig, NO_SWEEP + "<br>or no quantized precision beside its baseline")
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
                     **axis(cmp["speedup"]))
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
        return note(fig, NO_SWEEP)
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
                      annotation_text=f"{what}: {short(device)} MiB",
                      annotation_position="top left")
    fig.update_xaxes(title_text="tokens in the KV caches (batch × tokens per sequence)",
                     **axis(d["kv_tokens"]))
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
        return note(fig, NO_SWEEP + "<br>or no roofline data (the model's shape, machine.json)")
    for (label, family), g in d.groupby(["label", "backend"], sort=False):
        fig.add_scatter(x=g["decode_flop_per_byte"], y=g["decode_tflops"], mode="markers+text",
                        name=label, legendgroup=family, text=[label] * len(g),
                        textposition="top center", textfont=dict(size=LABEL_FONT),
                        marker=dict(color=colour(family), size=9, symbol=g["symbol"].iloc[0]),
                        customdata=g["batch_size"],
                        hovertemplate="batch %{customdata}: %{x:.3g} FLOP/byte, "
                                      "%{y:.3g} TFLOP/s<extra>" + label + "</extra>")
    return ceilings(fig, machine, d["decode_flop_per_byte"].tolist())


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
