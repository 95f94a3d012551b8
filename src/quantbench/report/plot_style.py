"""What every figure shares: one colour per engine, axes that turn logarithmic over a decade,
labels placed inside the canvas, a note for an empty figure, the machine's ceilings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quantbench import engines, precisions, roofline
from quantbench.report.aggregate import SUMMARY_COLUMNS

OTHER = "#7f7f7f"


# the GPU trace's windows (no family colour: shading only)
PHASE_COLOURS = {"idle": "#7f7f7f", "prefill": "#9467bd", "generate": "#8c564b"}


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


def axis(values) -> dict:
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


def ordered(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows in the precision table's order, each with the label its bars and points get."""
    missing = [c for c in SUMMARY_COLUMNS if c not in summary]
    df = summary.reindex(columns=[*summary.columns, *missing])
    rank = {name: i for i, name in enumerate(precisions.table())}
    df["_rank"] = df["precision"].map(rank).fillna(len(rank))
    df = df.sort_values(["model", "_rank", "precision"], kind="stable").drop(columns="_rank")
    multi = df["model"].nunique() > 1
    df["label"] = (df["model"] + " / " + df["precision"]) if multi else df["precision"]
    return df.reset_index(drop=True)


def note(fig: go.Figure, text: str) -> go.Figure:
    """An empty figure's explanation, in the middle of the plot."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=15, color="#444"), align="center")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def bar_traces(fig: go.Figure, df: pd.DataFrame, column: str, *, error=None, row=None,
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


PARETO_SIZE = dict(width=1000, height=600, margin=dict(l=80, r=30, t=70, b=115))


LABEL_FONT = 11


def span(values, axis_type: str) -> list[float]:
    """The axis range (plotly's units: log10 on a log axis) with 6 % padding on each side."""
    v = pd.Series(values, dtype=float)
    v = np.log10(v) if axis_type == "log" else v
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * 0.06 or 0.5
    return [lo - pad, hi + pad]


def place_labels(fig: go.Figure, x, y, texts, *, xrange, yrange, xlog, ylog) -> None:
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


def ceilings(fig: go.Figure, machine: dict, xs: list[float]) -> go.Figure:
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
                        name=f"peak bandwidth {short(bw)} GB/s", line=dict(color="#222", width=2),
                        hoverinfo="skip")
    for dtype, tflops in sorted(roofs.items(), key=lambda kv: -kv[1]):
        start = tflops * 1e12 / (bw * 1e9) if bw else lo
        best = tflops == peak
        fig.add_scatter(x=[start, hi], y=[tflops, tflops], mode="lines",
                        name=f"{dtype} matmul {short(tflops)} TFLOP/s",
                        line=dict(color="#222" if best else "#888", width=2 if best else 1,
                                  dash="solid" if best else "dot"), hoverinfo="skip")
    if not (bw and roofs):
        fig.add_annotation(text="machine ceilings unknown (results/machine.json)", x=0.02,
                           y=0.98, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(type="log", dtick=1, title_text="arithmetic intensity (FLOP/byte)")
    fig.update_yaxes(type="log", dtick=1, title_text="achieved performance (TFLOP/s)")
    fig.update_layout(legend_title="", legend_tracegroupgap=2)
    return fig


def short(v: float) -> str:
    """A ceiling's value for a label: whole above 100, else three significant digits."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def wrap(text: str, width: int = 90) -> str:
    words, lines, line = str(text).split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "<br>".join([*lines, line])
