"""What every figure shares: one colour per engine, axes that turn logarithmic over a decade,
bars of a panel, the machine's ceilings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantbench import engines, precisions, roofline
from quantbench.report.aggregate import SUMMARY_COLUMNS
from quantbench.report.panels import Grid, Panel

OTHER = "#7f7f7f"


# the GPU trace's windows (no family colour: shading only)
PHASE_COLOURS = {"idle": "#7f7f7f", "prefill": "#9467bd", "generate": "#8c564b"}


WIDE = 20.0  # max / min above which an axis is logarithmic (more than a decade and a bit)


LAYOUT = dict(template="plotly_white", width=900, height=500, legend_title="backend",
              font=dict(size=13))


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
    """Rows in the precision table's order, each with the label its bars and points get (its
    precision: every figure draws one model a panel)."""
    missing = [c for c in SUMMARY_COLUMNS if c not in summary]
    df = summary.reindex(columns=[*summary.columns, *missing])
    rank = {name: i for i, name in enumerate(precisions.table())}
    df["_rank"] = df["precision"].map(rank).fillna(len(rank))
    df = df.sort_values(["model", "_rank", "precision"], kind="stable").drop(columns="_rank")
    df["label"] = df["precision"]
    return df.reset_index(drop=True)


def bar_traces(g: Grid, panel: Panel, df: pd.DataFrame, column: str, *, error=None) -> None:
    """One bar trace per family in ``panel``; ``error`` names the interval's (low, high)
    columns. Bars whose interval is unavailable (NaN: too few runs or windows) go in a second
    trace of the family without error bars: plotly draws a missing error value as a zero-width
    bar. A family has one legend entry in the whole figure; each precision has one bar, drawn
    over its name (the figure's ``barmode`` is "overlay")."""
    row, col = g.cells[panel]
    for family, group in df.groupby("backend", sort=False):
        parts = [(group, False)]
        if error is not None:
            low, high = error
            known = group[low].notna() & group[high].notna()
            parts = [(group[known], True), (group[~known], False)]
        for part, with_error in parts:
            if part.empty:
                continue
            kwargs = {}
            if with_error:
                kwargs["error_y"] = dict(type="data", symmetric=False,
                                         array=(part[high] - part[column]).tolist(),
                                         arrayminus=(part[column] - part[low]).tolist())
            g.fig.add_bar(x=part["label"], y=part[column], name=family, legendgroup=family,
                          marker_color=colour(family), width=0.6,
                          showlegend=g.legend(family), row=row, col=col,
                          hovertemplate="%{x}: %{y:.4g}<extra>" + family + "</extra>",
                          **kwargs)


def ceiling_lines(machine: dict, xs: list[float]) -> list[tuple[str, list, list, bool]]:
    """(name, x, y, the highest) of the machine's bandwidth slope and compute roofs drawn under
    points at intensities ``xs``."""
    bw = machine.get("peak_bw_gb_s")
    roofs = {k: v for k, v in (machine.get("matmul_tflops") or {}).items() if v}
    peak = roofline.peak_tflops(machine)
    ridge = roofline.ridge_flop_per_byte(machine)
    lo = min(xs) / 3
    hi = max([*xs, ridge or 0]) * 3
    lines = []
    if bw:
        x_end = min(hi, ridge) if ridge else hi
        lines.append((f"peak bandwidth {short(bw)} GB/s", [lo, x_end],
                      [bw * lo / 1e3, bw * x_end / 1e3], True))
    for dtype, tflops in sorted(roofs.items(), key=lambda kv: -kv[1]):
        start = tflops * 1e12 / (bw * 1e9) if bw else lo
        lines.append((f"{dtype} matmul {short(tflops)} TFLOP/s", [start, hi], [tflops, tflops],
                      tflops == peak))
    return lines


def along_ceilings(machine: dict, xs: list[float], steps: int = 40):
    """Points along the ceilings (log-log), for labels to keep off them."""
    px, py = [], []
    for _, x, y, _ in ceiling_lines(machine, xs):
        t = np.linspace(0, 1, steps)
        px.extend(10 ** (np.log10(x[0]) + t * (np.log10(x[1]) - np.log10(x[0]))))
        py.extend(10 ** (np.log10(y[0]) + t * (np.log10(y[1]) - np.log10(y[0]))))
    return px, py


def ceilings(g: Grid, panel: Panel, machine: dict, xs: list[float]) -> None:
    """The machine's bandwidth slope and compute roofs under points at intensities ``xs``,
    on log-log axes of ``panel``."""
    row, col = g.cells[panel]
    for name, x, y, best in ceiling_lines(machine, xs):
        g.fig.add_scatter(x=x, y=y, mode="lines", name=name, legendgroup=name,
                          showlegend=g.legend(name),
                          line=dict(color="#222" if best else "#888", width=2 if best else 1,
                                    dash="solid" if best else "dot"), hoverinfo="skip",
                          row=row, col=col)
    if not (machine.get("peak_bw_gb_s") and machine.get("matmul_tflops")):
        xref, yref = g.refs(panel)
        g.fig.add_annotation(text="machine ceilings unknown (results/machine.json)", x=0.02,
                             y=0.98, xref=f"{xref} domain", yref=f"{yref} domain",
                             showarrow=False, xanchor="left")


def roof_ranges(machine: dict, xs: list[float], ys: list[float]
                ) -> tuple[list[float], list[float]]:
    """Log10 ranges of a roofline panel that hold its points and the ceilings drawn under
    them (``ceilings``)."""
    ridge = roofline.ridge_flop_per_byte(machine) or 0
    peak = roofline.peak_tflops(machine) or 0
    bw = machine.get("peak_bw_gb_s") or 0
    lo_x, hi_x = min(xs) / 3, max([*xs, ridge]) * 3
    floor = [v for v in (*ys, bw * lo_x / 1e3) if v > 0]
    return ([float(np.log10(lo_x)), float(np.log10(hi_x))],
            [float(np.log10(min(floor) / 2)), float(np.log10(max([*ys, peak]) * 2.5))])


def short(v: float) -> str:
    """A ceiling's value for a label: whole above 100, else three significant digits."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
