"""The operating-point figures (results/points.csv): decode throughput and per-token latency
against the batch, each quantized precision against its baseline, memory against the batch,
the batch roofline. One panel per model and context (prompt, depth), memory one per model; at
most ``panels.MAX_SERIES`` precisions a panel, each line labelled at its end inside the panel.
A figure whose panels would have fewer than two batch sizes is not made."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quantbench import precisions
from quantbench.points import COLUMNS as POINT_COLUMNS
from quantbench.records import Status
from quantbench.report import point_table, scaling, serving
from quantbench.report.panels import (
    Grid,
    NotMade,
    Panel,
    along,
    end_labels,
    grid,
    panels,
    place_labels,
    room_right,
    span,
    with_two_x,
)
from quantbench.report.plot_style import (
    SYMBOLS,
    along_ceilings,
    axis,
    ceilings,
    colour,
    roof_ranges,
    short,
)

NO_POINTS = "no operating points (results/points.csv absent, or no point ran)"


ONE_BATCH = "fewer than two batch sizes measured"


BY_CONTEXT = ["model", *point_table.CONTEXT]


DEVICE_SCALE = 4.0  # the device's memory is drawn as a line up to this × the highest peak


def _points(points: pd.DataFrame) -> pd.DataFrame:
    """Ok points in the precision table's order, each with its label (its precision) and its
    marker (precisions of one family told apart)."""
    df = point_table.in_table_order(points)
    df = df[df["status"] == Status.OK].copy()
    df["label"] = df["precision"]
    rank = {label: i for _, g in df.groupby("backend", sort=False)
            for i, label in enumerate(dict.fromkeys(g["label"]))}
    df["symbol"] = [SYMBOLS[rank[label] % len(SYMBOLS)] for label in df["label"]]
    return df.reset_index(drop=True)


def _swept(df: pd.DataFrame, by=BY_CONTEXT) -> pd.DataFrame | NotMade:
    """The points of the panels (``by``) with at least two batch sizes, or why there are none."""
    if df.empty:
        return NotMade(NO_POINTS)
    d = with_two_x(df, "batch_size", by)
    return NotMade(ONE_BATCH) if d.empty else d


def _grid(found: list[Panel], title: str, labels, extra: int = 0, **kwargs) -> Grid:
    return grid(found, title=title, legend_entries=len(set(labels)) + extra,
                layout=dict(legend_title=""), **kwargs)


def _row_range(d: pd.DataFrame, panel: Panel, columns, axis_type: str) -> list[float]:
    """One y range for the panels of a row (a model and its part of the precisions), so that
    its contexts compare at a glance."""
    rows = d[(d["model"] == panel.model) & d["label"].isin(panel.names)]
    return span(pd.concat([rows[c] for c in columns]), axis_type, pad=0.08)


def _along(rows: pd.DataFrame, x: str, y: str, *, xlog: bool, ylog: bool):
    """Points along each precision's line (through its batch sizes), for labels to keep off."""
    parts = [along(c[x], c[y], xlog=xlog, ylog=ylog)
             for _, c in rows.sort_values("batch_size").groupby("label", sort=False)]
    return (np.concatenate([px for px, _ in parts]) if parts else np.array([]),
            np.concatenate([py for _, py in parts]) if parts else np.array([]))


def _batch_axis(g: Grid, panel: Panel, batches, labels) -> list[float]:
    """A logarithmic batch-size axis with a tick at each measured batch size and room on the
    right for the lines' labels; returns its range."""
    ticks = sorted({int(b) for b in pd.Series(batches).dropna()})
    xrange = room_right(span(ticks, "log", pad=0.05), labels, g.size(panel)[0])
    g.axes(panel, x=dict(type="log", tickvals=ticks, ticktext=[str(t) for t in ticks],
                         range=xrange))
    return xrange


def batch_throughput_figure(df: pd.DataFrame) -> go.Figure | NotMade:
    """Total decode throughput against the batch size (log x), one line per precision with
    the 95 % interval, one panel per model and context."""
    d = _swept(df)
    if isinstance(d, NotMade):
        return d
    found = panels(d, by_context=True)
    g = _grid(found, "Decode throughput against batch size", d["label"])
    y_type = axis(d["decode_tok_s"])
    for panel in found:
        row, col = g.cells[panel]
        ends = []
        for label, c in panel.rows(d).groupby("label", sort=False):
            c = c.sort_values("batch_size")
            family = c["backend"].iloc[0]
            known = c["decode_tok_s_ci_low"].notna() & c["decode_tok_s_ci_high"].notna()
            error = (dict(type="data", symmetric=False,
                          array=(c["decode_tok_s_ci_high"] - c["decode_tok_s"]).tolist(),
                          arrayminus=(c["decode_tok_s"] - c["decode_tok_s_ci_low"]).tolist())
                     if known.all() else None)
            g.fig.add_scatter(x=c["batch_size"], y=c["decode_tok_s"], mode="lines+markers",
                              name=label, legendgroup=label, showlegend=g.legend(label),
                              line=dict(color=colour(family)), error_y=error,
                              marker=dict(color=colour(family), size=8,
                                          symbol=c["symbol"].iloc[0]),
                              hovertemplate="batch %{x}: %{y:.4g} tok/s<extra>" + label
                                            + "</extra>", row=row, col=col)
            ends.append((c["batch_size"].iloc[-1], c["decode_tok_s"].iloc[-1], label,
                         colour(family)))
        xrange = _batch_axis(g, panel, panel.rows(d)["batch_size"], [e[2] for e in ends])
        yrange = _row_range(d, panel, ["decode_tok_s"], y_type["type"])
        g.axes(panel, y=dict(range=yrange, **y_type))
        end_labels(g, panel, *zip(*ends, strict=True), xrange=xrange, yrange=yrange, xlog=True,
                   ylog=y_type["type"] == "log")
    g.titles("batch size (sequences decoded together)", "decode tokens / s, all sequences")
    return g.fig


def latency_throughput_figure(df: pd.DataFrame) -> go.Figure | NotMade:
    """What one user sees (per-sequence tok/s) against what the device serves (total tok/s):
    each line goes through the batch sizes of one precision, from batch 1 (top left) on; one
    panel per model and context."""
    d = _swept(df)
    if isinstance(d, NotMade):
        return d
    found = panels(d, by_context=True)
    g = _grid(found, "Per-sequence against total decode throughput (lines: batch 1 → largest)",
              d["label"])
    x_type, y_type = axis(d["decode_tok_s"]), axis(d["decode_tok_s_per_seq"])
    for panel in found:
        row, col = g.cells[panel]
        rows = panel.rows(d)
        ends = []
        for label, c in rows.groupby("label", sort=False):
            c = c.sort_values("batch_size")
            family = c["backend"].iloc[0]
            g.fig.add_scatter(x=c["decode_tok_s"], y=c["decode_tok_s_per_seq"],
                              mode="lines+markers", name=label, legendgroup=label,
                              showlegend=g.legend(label), customdata=c["batch_size"],
                              line=dict(color=colour(family)),
                              marker=dict(color=colour(family), size=8,
                                          symbol=c["symbol"].iloc[0]),
                              hovertemplate="batch %{customdata}: %{x:.4g} tok/s in all, "
                                            "%{y:.4g} per sequence<extra>" + label + "</extra>",
                              row=row, col=col)
            ends.append(c.iloc[-1])
        ends = pd.DataFrame(ends)
        xrange = span(rows["decode_tok_s"], x_type["type"], pad=0.1)
        yrange = span(rows["decode_tok_s_per_seq"], y_type["type"], pad=0.1)
        g.axes(panel, x=dict(range=xrange, **x_type), y=dict(range=yrange, **y_type))
        xlog, ylog = x_type["type"] == "log", y_type["type"] == "log"
        place_labels(g, panel, ends["decode_tok_s"], ends["decode_tok_s_per_seq"],
                     ends["label"].tolist(), xrange=xrange, yrange=yrange, xlog=xlog, ylog=ylog,
                     avoid=_along(rows, "decode_tok_s", "decode_tok_s_per_seq", xlog=xlog,
                                  ylog=ylog),
                     colours=[colour(b) for b in ends["backend"]])
    g.titles("total decode tokens / s (more served →)", "tokens / s per sequence")
    return g.fig


STATE_SYMBOLS = {point_table.FASTER: "circle", point_table.SLOWER: "x",
                 point_table.UNCLEAR: "circle-open"}


def batch_speedup_figure(points: pd.DataFrame) -> go.Figure | NotMade:
    """Each quantized precision's decode speed-up over its baseline against the batch size,
    one panel per model and context; filled: faster with the 95 % intervals apart, cross:
    slower, open: a tie. A dotted line marks each crossover
    (``scaling.crossover``), named at the top of its panel."""
    if points.empty:
        return NotMade(NO_POINTS)
    cmp = scaling.against_baseline(points)
    if cmp.empty:
        return NotMade("no quantized precision measured beside its baseline")
    cmp = cmp.assign(label=cmp["precision"], backend=[precisions.get(n).backend
                                                      for n in cmp["precision"]])
    d = _swept(point_table.in_table_order(cmp))
    if isinstance(d, NotMade):
        return d
    found = panels(d, by_context=True)
    g = _grid(found, "Decode speed-up over the unquantized baseline, by batch size "
                     "(● faster, ✕ slower, ○ tie)", d["label"])
    y_type = axis(d["speedup"])
    for panel in found:
        row, col = g.cells[panel]
        xref, _ = g.refs(panel)
        ends, marks = [], 0
        for (name, base), c in panel.rows(d).groupby(["precision", "baseline"], sort=False):
            c = c.sort_values("batch_size")
            family = c["backend"].iloc[0]
            g.fig.add_scatter(x=c["batch_size"], y=c["speedup"], mode="lines+markers",
                              name=name, legendgroup=name, showlegend=g.legend(name),
                              line=dict(color=colour(family)),
                              marker=dict(color=colour(family), size=10,
                                          symbol=[STATE_SYMBOLS[s] for s in c["state"]]),
                              customdata=c["state"],
                              hovertemplate="batch %{x}: %{y:.3g}× (%{customdata})<extra>"
                                            + f"{name} vs {base}</extra>", row=row, col=col)
            ends.append((c["batch_size"].iloc[-1], c["speedup"].iloc[-1], f"{name} vs {base}",
                         colour(family)))
            kind, extra = scaling.crossover(c["state"].tolist(),
                                            [int(b) for b in c["batch_size"]])
            if kind == "crossover_switch":
                at = (extra["up_to"] * extra["from_batch"]) ** 0.5  # between the two, log x
                g.fig.add_vline(x=at, line_dash="dot", line_color=colour(family), row=row,
                                col=col)
                g.fig.add_annotation(x=np.log10(at), xref=xref, y=0.98 - 0.08 * marks,
                                     yref=f"{g.refs(panel)[1]} domain", yanchor="top",
                                     xanchor="left", xshift=3, text=f"crossover: {name}",
                                     showarrow=False, bgcolor="rgba(255,255,255,0.8)",
                                     font=dict(color=colour(family), size=11))
                marks += 1
        g.fig.add_hline(y=1, line_dash="dash", line_color="#444", row=row, col=col)
        xrange = _batch_axis(g, panel, panel.rows(d)["batch_size"], [e[2] for e in ends])
        yrange = _row_range(d.assign(one=1.0), panel, ["speedup", "one"], y_type["type"])
        g.axes(panel, y=dict(range=yrange, **y_type))
        end_labels(g, panel, *zip(*ends, strict=True), xrange=xrange, yrange=yrange, xlog=True,
                   ylog=y_type["type"] == "log")
    g.titles("batch size (sequences decoded together)", "decode tok/s ÷ baseline's (×)")
    return g.fig


def batch_memory_figure(df: pd.DataFrame, machine: dict | None, report: dict | None
                        ) -> go.Figure | NotMade:
    """Peak memory against the tokens held in the KV caches (batch x tokens per sequence),
    one panel per model: the points, each precision's least-squares line
    (``serving.fit_capacity``, dotted) and the device's memory (dashed; named at the top
    instead when it is more than ``DEVICE_SCALE`` times the highest peak, which it would
    squash)."""
    d = _swept(df.dropna(subset=["peak_mem_mib", "kv_tokens"]), by=["model"])
    if isinstance(d, NotMade):
        return d
    found = panels(d)
    device, what = serving.device_memory(machine)
    g = _grid(found, "Memory against batch × tokens per sequence (dotted: fitted line)",
              d["label"], extra=1)
    settings = point_table.Settings.from_config(report)
    fits = {(c.model, c.precision): c for c in serving.fit_capacity(d, settings, machine)}
    for panel in found:
        row, col = g.cells[panel]
        rows = panel.rows(d)
        lines = []
        for label, c in rows.groupby("label", sort=False):
            family = c["backend"].iloc[0]
            g.fig.add_scatter(x=c["kv_tokens"], y=c["peak_mem_mib"], mode="markers",
                              name=label, legendgroup=label, showlegend=g.legend(label),
                              marker=dict(color=colour(family), size=9,
                                          symbol=c["symbol"].iloc[0]),
                              customdata=np.stack([c["batch_size"], c["kv_tokens_per_seq"]],
                                                  axis=-1),
                              hovertemplate="batch %{customdata[0]} × %{customdata[1]} "
                                            "tokens: %{y:.4g} MiB<extra>" + label + "</extra>",
                              row=row, col=col)
            fit = fits.get((panel.model, label))
            if fit is not None:
                # sampled along the range: on logarithmic axes a line is a curve
                x = np.geomspace(fit.tokens_min, fit.tokens_max, 40)
                y = fit.fixed_mib + fit.per_token_kib / 1024 * x
                g.fig.add_scatter(x=x, y=y, mode="lines", name=f"fit: {label}",
                                  legendgroup=label, showlegend=False, hoverinfo="skip",
                                  line=dict(color=colour(family), width=1, dash="dot"),
                                  row=row, col=col)
                lines.append(pd.DataFrame({"kv_tokens": x[::4], "peak_mem_mib": y[::4]}))
        shown = device is not None and device <= DEVICE_SCALE * rows["peak_mem_mib"].max()
        x_type = axis(rows["kv_tokens"])
        y_values = pd.concat([rows["peak_mem_mib"], pd.Series([device if shown else None],
                                                               dtype=float)])
        y_type = axis(y_values)
        xrange = span(rows["kv_tokens"], x_type["type"], pad=0.08)
        yrange = span(y_values, y_type["type"], pad=0.1)
        g.axes(panel, x=dict(range=xrange, **x_type), y=dict(range=yrange, **y_type))
        xref, yref = g.refs(panel)
        if shown:
            g.fig.add_hline(y=device, line_dash="dash", line_color="#444", row=row, col=col)
            g.fig.add_annotation(x=0.01, xref=f"{xref} domain", xanchor="left", yref=yref,
                                 y=np.log10(device) if y_type["type"] == "log" else device,
                                 yanchor="bottom", showarrow=False,
                                 text=f"{what}: {short(device)} MiB", font=dict(size=11))
        elif device is not None:
            g.fig.add_annotation(x=0.01, xref=f"{xref} domain", xanchor="left", y=0.99,
                                 yref=f"{yref} domain", yanchor="top", showarrow=False,
                                 text=f"{what}: {short(device)} MiB, above the scale",
                                 font=dict(size=11))
        last = rows.sort_values("kv_tokens").groupby("label", sort=False).tail(1)
        drawn = pd.concat([rows[["kv_tokens", "peak_mem_mib"]], *lines])
        place_labels(g, panel, last["kv_tokens"], last["peak_mem_mib"], last["label"].tolist(),
                     xrange=xrange, yrange=yrange, xlog=x_type["type"] == "log",
                     ylog=y_type["type"] == "log",
                     avoid=(drawn["kv_tokens"], drawn["peak_mem_mib"]),
                     colours=[colour(b) for b in last["backend"]])
    g.titles("tokens in the KV caches (batch × tokens per sequence)", "peak memory (MiB)")
    return g.fig


def batch_roofline_figure(df: pd.DataFrame, machine: dict | None) -> go.Figure | NotMade:
    """Decode of each operating point on the roofline: FLOP/s against FLOP per byte read per
    step (``point_table.prepare``), one panel per model and context; each precision's line
    runs from batch 1 (left) to its largest batch, where it is labelled: a larger batch moves
    a precision right, toward the ridge."""
    machine = machine or {}
    d = _swept(df)
    if isinstance(d, NotMade):
        return d
    d = d.dropna(subset=["decode_flop_per_byte", "decode_tflops"])
    d = _swept(d[(d["decode_flop_per_byte"] > 0) & (d["decode_tflops"] > 0)])
    if isinstance(d, NotMade):
        return NotMade("no roofline data (needs the model's shape and results/machine.json)")
    found = panels(d, by_context=True)
    g = _grid(found, "Roofline: decode at each batch size (lines: batch 1 → largest)",
              d["label"], extra=3, row_height=400)
    for panel in found:
        row, col = g.cells[panel]
        rows = panel.rows(d)
        for label, c in rows.groupby("label", sort=False):
            c = c.sort_values("batch_size")
            family = c["backend"].iloc[0]
            g.fig.add_scatter(x=c["decode_flop_per_byte"], y=c["decode_tflops"],
                              mode="lines+markers", name=label, legendgroup=label,
                              showlegend=g.legend(label), customdata=c["batch_size"],
                              line=dict(color=colour(family), width=1.5),
                              marker=dict(color=colour(family), size=9,
                                          symbol=c["symbol"].iloc[0]),
                              hovertemplate="batch %{customdata}: %{x:.3g} FLOP/byte, "
                                            "%{y:.3g} TFLOP/s<extra>" + label + "</extra>",
                              row=row, col=col)
        xs = rows["decode_flop_per_byte"].tolist()
        ceilings(g, panel, machine, xs)
        xrange, yrange = roof_ranges(machine, xs, rows["decode_tflops"].tolist())
        g.axes(panel, x=dict(type="log", dtick=1, range=xrange),
               y=dict(type="log", dtick=1, range=yrange))
        last = rows.sort_values("batch_size").groupby("label", sort=False).tail(1)
        place_labels(g, panel, last["decode_flop_per_byte"], last["decode_tflops"],
                     last["label"].tolist(), xrange=xrange, yrange=yrange, xlog=True,
                     ylog=True, avoid=[np.concatenate(pair) for pair in zip(
                         _along(rows, "decode_flop_per_byte", "decode_tflops", xlog=True,
                                ylog=True), along_ceilings(machine, xs), strict=True)],
                     colours=[colour(b) for b in last["backend"]])
    g.titles("arithmetic intensity (FLOP/byte)", "achieved (TFLOP/s)")
    return g.fig


def operating_figures(points: pd.DataFrame | None, summary: pd.DataFrame | None = None, *,
                      machine: dict | None = None, shapes: dict | None = None,
                      report: dict | None = None) -> dict[str, go.Figure | NotMade]:
    """The operating points' figures, or why each is not made."""
    empty = pd.DataFrame(columns=[*POINT_COLUMNS, "label", "symbol", "kv_tokens",
                                  "kv_tokens_per_seq", "decode_flop_per_byte", "decode_tflops"])
    if points is not None and not points.empty:
        df = _points(point_table.prepare(points, summary, machine, shapes))
        raw = points
    else:
        df, raw = empty, empty
    return {"batch_throughput": batch_throughput_figure(df),
            "latency_throughput": latency_throughput_figure(df),
            "batch_speedup": batch_speedup_figure(raw),
            "batch_memory": batch_memory_figure(df, machine, report),
            "batch_roofline": batch_roofline_figure(df, machine)}
