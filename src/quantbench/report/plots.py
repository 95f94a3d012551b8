"""Figures from the summary table, the machine and the GPU trace records (plotly): interactive HTML
that opens offline, and PNG.

One colour per backend family in every figure (its engine's, ``quantbench.engines``); precisions
are in the order of the precision table; one panel per model (``quantbench.report.panels``). An
axis is logarithmic when its values span more than a decade (``WIDE``). A figure without data
(no perplexity for a random-weights model, no GPU for the NVML time series) or with fewer than
two values on its x axis is not made: ``NotMade`` says why, and the figures' index
(``quantbench.figures.INDEX``) keeps it for the report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from quantbench import precisions, roofline
from quantbench.figures import SUMMARY_FIGURES, timeseries_name, write_index
from quantbench.metrics import RENAMED_PHASES
from quantbench.records import Status
from quantbench.report.aggregate import pareto_front, read_summary
from quantbench.report.panels import (
    Grid,
    NotMade,
    Panel,
    along,
    grid,
    panels,
    place_labels,
    span,
    text_px,
    with_two_x,
)
from quantbench.report.plot_style import (
    LAYOUT,
    OTHER,
    PHASE_COLOURS,
    along_ceilings,
    axis,
    bar_traces,
    ceilings,
    colour,
    ordered,
    roof_ranges,
)
from quantbench.report.point_plots import operating_figures
from quantbench.stats import Z95

Figure = go.Figure | NotMade


NO_QUALITY = "no quality measured (random-weights models have no perplexity)"


BARS_WIDTH = 820  # pixels of a bar figure's panels side by side


def _bar_grid(df: pd.DataFrame, title: str, *, columns=(None,)) -> Grid:
    """The grid of a bar figure: one row per model, one column per entry of ``columns``; room
    under each row for its precisions' names, drawn at the angle of ``_tick_angle``."""
    found = [Panel(model, column, tuple(dict.fromkeys(g["backend"])))
             for model, g in df.groupby("model", sort=False) for column in columns]
    angle = _tick_angle(df, len(columns))
    longest = max(text_px(label, 13) for label in df["label"])
    under = int(longest * np.sin(np.radians(angle))) + 30
    return grid(found, title=title, row_height=330, col_width=BARS_WIDTH // len(columns),
                gap_px=under + 40, below_px=under, legend_entries=df["backend"].nunique() + 1,
                layout=dict(legend_title="backend", barmode="overlay"))


def _tick_angle(df: pd.DataFrame, columns: int = 1) -> int:
    """The precisions' names under the bars at 35° where neighbours stay apart (their distance
    across the text, the bar spacing × sin 35°, above a line's height), else upright."""
    bars = df.groupby("model")["label"].nunique().max()
    spacing = BARS_WIDTH / columns / bars
    return 35 if spacing * np.sin(np.radians(35)) >= 17 else 90


def _bar_panels(df: pd.DataFrame, column: str, title: str, yaxis: str, *, error=None,
                empty: str | None = None) -> Grid | NotMade:
    """Bars of ``column``, one panel per model with two or more precisions that have it;
    ``empty``: why there is no figure when no precision has it."""
    have = df.dropna(subset=[column])
    if have.empty:
        return NotMade(empty or f"no {column} measured")
    have = with_two_x(have, "label", ["model"])
    if have.empty:
        return NotMade(f"fewer than two precisions with {column}")
    g = _bar_grid(have, title)
    for panel in g.cells:
        rows = have[have["model"] == panel.model]
        bar_traces(g, panel, rows, column, error=error)
        g.axes(panel, x=dict(categoryorder="array", categoryarray=rows["label"].tolist(),
                             tickangle=-_tick_angle(have)),
               y=axis(rows[column]))
    g.titles("", yaxis)
    return g


def _bars(df: pd.DataFrame, column: str, title: str, yaxis: str, *, error=None,
          empty: str | None = None) -> Figure:
    g = _bar_panels(df, column, title, yaxis, error=error, empty=empty)
    return g if isinstance(g, NotMade) else g.fig


def quality_figure(df: pd.DataFrame, reference: str | None = None) -> Figure:
    """Perplexity change (with its paired 95 % interval) and KL divergence against the
    reference, side by side, one row per model."""
    ref = f" vs {reference}" if reference else " vs reference"
    ppl = with_two_x(df.dropna(subset=["ppl_delta_pct"]), "label", ["model"])
    kld = with_two_x(df.dropna(subset=["kld_mean"]), "label", ["model"])
    if ppl.empty and kld.empty:
        return NotMade(NO_QUALITY)
    columns = tuple(name for name, part in ((f"Δ perplexity{ref}", ppl),
                                            (f"KL divergence{ref}", kld)) if not part.empty)
    both = pd.concat([ppl, kld])
    g = _bar_grid(both, "Quality against the reference precision (lower is better)",
                  columns=columns)
    for panel in list(g.cells):
        part, metric = (ppl, "ppl_delta_pct") if panel.context.startswith("Δ") else (
            kld, "kld_mean")
        rows = part[part["model"] == panel.model]
        if rows.empty:
            continue
        error = (("ppl_delta_pct_ci_low", "ppl_delta_pct_ci_high") if metric == "ppl_delta_pct"
                 else None)
        bar_traces(g, panel, rows, metric, error=error)
        g.axes(panel, x=dict(categoryorder="array", categoryarray=rows["label"].tolist(),
                             tickangle=-_tick_angle(both, len(columns))),
               y=dict(title_text=("Δ perplexity (%; paired 95 % CI)" if metric == "ppl_delta_pct"
                                  else "KL divergence (nats)"),
                      **(axis(rows[metric]) if metric == "kld_mean" else {}),
                      **({"exponentformat": "power"} if metric == "kld_mean" else {})))
    return g.fig


def speedup_figure(df: pd.DataFrame, reference: str | None = None) -> Figure:
    ref = reference or "reference"
    fig = _bars(df, "speedup_vs_ref", f"Decode speed-up over {ref} (dashed: {ref} = 1×)",
                f"decode tok/s ÷ {ref} (×)", empty=f"no {ref} run to compare with")
    if isinstance(fig, go.Figure):
        fig.add_hline(y=1, line_dash="dash", line_color="#444", row="all", col="all")
    return fig


def memory_figure(df: pd.DataFrame) -> Figure:
    """Peak memory (bars) with the weights' own size (markers) for each precision."""
    g = _bar_panels(df, "peak_mem_mib",
                    "Peak memory during the latency run (bars) and size of the weights (◆)",
                    "MiB (peak: GPU if used, else host RSS)")
    if isinstance(g, NotMade):
        return g
    w = df.dropna(subset=["size_mib", "peak_mem_mib"])
    for panel, (row, col) in g.cells.items():
        rows = w[w["model"] == panel.model]
        if rows.empty:
            continue
        g.fig.add_scatter(x=rows["label"], y=rows["size_mib"], mode="markers", name="weights",
                          legendgroup="weights", showlegend=g.legend("weights"), row=row,
                          col=col, marker=dict(symbol="diamond", size=10, color="#222"),
                          hovertemplate="%{x}: weights %{y:.4g} MiB<extra></extra>")
        g.axes(panel, y=axis(pd.concat([rows["size_mib"], rows["peak_mem_mib"]])))
    return g.fig


def pareto_figure(df: pd.DataFrame, cost: str, front: str, *, title: str, xaxis: str,
                  maximize_cost: bool = False, reference: str | None = None) -> Figure:
    """Quality (Δ perplexity, lower is better) against a cost, one panel per model, points
    labelled by precision and the Pareto front (``front`` column of the summary) drawn as a
    line through its points."""
    quality = "ppl_delta_pct" if df["ppl_delta_pct"].notna().any() else "ppl"
    ok = df[(df["status"] == Status.OK)].dropna(subset=[cost, quality]).copy()
    if ok.empty:
        return NotMade(NO_QUALITY if df[quality].isna().all()
                       else f"no precision has both a perplexity and {cost}")
    ok = with_two_x(ok, cost, ["model"])
    if ok.empty:
        return NotMade("fewer than two precisions with a perplexity and this measurement")
    if front not in ok or ok[front].isna().all():
        ok[front] = False
        for _, g in ok.groupby("model"):
            ok.loc[g.index, front] = pareto_front(g, cost, quality, maximize_cost=maximize_cost)
    ok[front] = ok[front].astype(bool)
    found = [Panel(model, None, tuple(dict.fromkeys(g["backend"])))
             for model, g in ok.groupby("model", sort=False)]
    g = grid(found, title=title, row_height=440, col_width=900, gap_px=110,
             legend_entries=ok["backend"].nunique() + 1, layout=dict(legend_title=""))
    ref = reference or "reference"
    ytitle = (f"Δ perplexity vs {ref} (%, lower is better)" if quality == "ppl_delta_pct"
              else "perplexity (lower is better)")
    for panel in found:
        rows = ok[ok["model"] == panel.model]
        row, col = g.cells[panel]
        for family, fam in rows.groupby("backend", sort=False):
            g.fig.add_scatter(x=fam[cost], y=fam[quality], mode="markers", name=family,
                              legendgroup=family, showlegend=g.legend(family), text=fam["label"],
                              marker=dict(color=colour(family), size=11,
                                          line=dict(width=1, color="#222")),
                              hovertemplate="%{text}: %{x:.4g}, %{y:.4g}<extra>" + family
                                            + "</extra>", row=row, col=col)
        line = rows[rows[front]].sort_values(cost)
        g.fig.add_scatter(x=line[cost], y=line[quality], mode="lines", name="Pareto front",
                          legendgroup="front", showlegend=g.legend("Pareto front"),
                          line=dict(color="#222", dash="dash", width=1.5), hoverinfo="skip",
                          row=row, col=col)
        xaxis_kw = axis(rows[cost])
        yaxis_kw = axis(rows[quality]) if (rows[quality] > 0).all() else {"type": "linear"}
        xrange, yrange = span(rows[cost], xaxis_kw["type"]), span(rows[quality], yaxis_kw["type"])
        g.axes(panel, x=dict(range=xrange, **xaxis_kw), y=dict(range=yrange, **yaxis_kw))
        xlog, ylog = xaxis_kw["type"] == "log", yaxis_kw["type"] == "log"
        place_labels(g, panel, rows[cost], rows[quality], rows["label"].tolist(),
                     xrange=xrange, yrange=yrange, xlog=xlog, ylog=ylog,
                     avoid=along(line[cost], line[quality], xlog=xlog, ylog=ylog, steps=20),
                     colours=[colour(b) for b in rows["backend"]])
    g.titles(xaxis, ytitle)
    return g.fig


def roofline_figure(df: pd.DataFrame, machine: dict | None) -> Figure:
    """Achieved FLOP/s against arithmetic intensity, under the machine's bandwidth slope and
    compute roofs (log-log), one panel per model (more where it has more than ``MAX_SERIES``
    precisions), each point labelled by its precision.
    Decode: bytes are the weights + KV cache read per token (see quantbench.roofline);
    prefill: the weights read once per prompt."""
    machine = machine or {}
    ok = df[df["status"] == Status.OK].copy()
    ok["decode_ai"] = ok["decode_flop_per_byte"]
    ok["decode_tflops"] = ok["decode_gb_s"] * ok["decode_ai"] / 1e3
    ok["prefill_ai"] = roofline.prefill_flop_per_byte(ok["prefill_tflops"], ok["prefill_ms"],
                                                      ok["size_mib"])
    phases = {"decode": ("decode_ai", "decode_tflops", "circle"),
              "prefill": ("prefill_ai", "prefill_tflops", "triangle-up-open")}
    parts = []
    for phase, (x, y, symbol) in phases.items():
        d = ok.dropna(subset=[x, y])
        d = d[(d[x] > 0) & (d[y] > 0)]
        parts.append(d.assign(phase=phase, ai=d[x], tflops=d[y], symbol=symbol))
    pts = pd.concat(parts)
    if pts.empty:
        return NotMade("no roofline data (needs the model's shape and results/machine.json)")
    pts = with_two_x(pts, "ai", ["model"])
    if pts.empty:
        return NotMade("fewer than two points on the roofline")
    found = panels(pts)  # a model's precisions in groups of at most MAX_SERIES
    g = grid(found, title="Roofline: decode (●) and prefill (△) against the machine's ceilings",
             row_height=460, col_width=900, gap_px=110,
             legend_entries=2 * pts["backend"].nunique() + 3, legend_text=20,
             layout=dict(legend_title=""))
    for panel in found:
        rows = panel.rows(pts)
        whole = pts[pts["model"] == panel.model]  # one scale for the model's panels
        row, col = g.cells[panel]
        for (family, phase), fam in rows.groupby(["backend", "phase"], sort=False):
            name = f"{family} · {phase}"
            g.fig.add_scatter(x=fam["ai"], y=fam["tflops"], mode="markers", name=name,
                              legendgroup=name, showlegend=g.legend(name), text=fam["label"],
                              marker=dict(color=colour(family), symbol=fam["symbol"].iloc[0],
                                          size=10, line=dict(width=1.5, color=colour(family))),
                              hovertemplate="%{text} " + phase + ": %{x:.3g} FLOP/byte, "
                                            "%{y:.3g} TFLOP/s<extra></extra>", row=row, col=col)
        xs = whole["ai"].tolist()
        ceilings(g, panel, machine, xs)
        xrange, yrange = roof_ranges(machine, xs, whole["tflops"].tolist())
        g.axes(panel, x=dict(type="log", dtick=1, range=xrange),
               y=dict(type="log", dtick=1, range=yrange))
        place_labels(g, panel, rows["ai"], rows["tflops"], rows["label"].tolist(),
                     xrange=xrange, yrange=yrange, xlog=True, ylog=True,
                     avoid=along_ceilings(machine, xs),
                     colours=[colour(b) for b in rows["backend"]])
    g.titles("arithmetic intensity (FLOP/byte)", "achieved performance (TFLOP/s)")
    return g.fig


def timeseries_figure(record: dict) -> Figure:
    """One precision's NVML samples over time: power, utilisation and clocks, with the trace's
    windows shaded (idle; generate: whole runs, a prefill then decode steps; prefill alone; a
    trace made before the idle window named its generate window "decode"). A record without
    samples (no GPU, a failed run) gives none."""
    model, precision = record["model"], record["precision"]
    family = precisions.get(precision).backend if precision in precisions.table() else "other"
    samples = record.get("details", {}).get("samples") or []
    phases = record.get("details", {}).get("phases") or []
    if not samples:
        return NotMade(f"no GPU samples (status {record.get('status')})")
    title = f"GPU over time (NVML), phases shaded: {model} / {precision}"
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    fig.update_layout(title=title, **{**LAYOUT, "height": 700, "legend_title": ""})
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


def accuracy_kld_figure(df: pd.DataFrame, reference: str | None = None) -> Figure:
    """Each precision's paired accuracy change against the reference (with its 95 % interval)
    against its KL divergence from the reference, one panel per model: whether the precisions
    that diverge more lose more answers."""
    cols = ["kld_mean", "acc_change_pp"]
    ok = df[df["precision"] != reference].dropna(subset=cols)
    ok = with_two_x(ok[ok["kld_mean"] > 0], "kld_mean", ["model"])
    if ok.empty:
        return NotMade("fewer than two precisions with both an accuracy change and a KL "
                       "divergence (needs tasks: and a reference run)")
    found = [Panel(model, None, tuple(dict.fromkeys(g["backend"])))
             for model, g in ok.groupby("model", sort=False)]
    g = grid(found, title="Accuracy change against KL divergence (each against the reference)",
             row_height=440, col_width=900, gap_px=110, legend_entries=ok["backend"].nunique(),
             layout=dict(legend_title=""))
    for panel in found:
        rows = ok[ok["model"] == panel.model]
        row, col = g.cells[panel]
        for family, fam in rows.groupby("backend", sort=False):
            g.fig.add_scatter(
                x=fam["kld_mean"], y=fam["acc_change_pp"], mode="markers", name=family,
                legendgroup=family, showlegend=g.legend(family), text=fam["label"],
                error_y=dict(type="data", symmetric=False,
                             array=fam["acc_change_hi_pp"] - fam["acc_change_pp"],
                             arrayminus=fam["acc_change_pp"] - fam["acc_change_lo_pp"]),
                marker=dict(color=colour(family), size=11, line=dict(width=1, color="#222")),
                hovertemplate="%{text}: KLD %{x:.3g}, %{y:.2f} points<extra></extra>",
                row=row, col=col)
        g.fig.add_hline(y=0, line_dash="dash", line_color="#444", row=row, col=col)
        xaxis_kw = axis(rows["kld_mean"])
        g.axes(panel, x=dict(range=span(rows["kld_mean"], xaxis_kw["type"]), **xaxis_kw,
                             exponentformat="power"))
    ref = reference or "the reference"
    g.titles(f"mean KL divergence from {ref} (nats)",
             f"accuracy change vs {ref} (points; paired 95 % CI)")
    return g.fig


def figures(summary: pd.DataFrame, *, machine: dict | None = None, gpu_traces=(),
            reference: str | None = None, points: pd.DataFrame | None = None,
            shapes: dict | None = None, report: dict | None = None) -> dict[str, Figure]:
    """Every figure, by file stem, or why it is not made: the summary's figures, the operating
    points' (``points``: results/points.csv, None when the run wrote none) and one NVML time
    series per GPU trace record (results/<model>/gpu/)."""
    df = ordered(summary)
    # normal 95 % interval from the standard error over the evaluated tokens; none (not a
    # zero-width bar) where there is no standard error
    df["ppl_ci_low"] = df["ppl"] - Z95 * df["ppl_stderr"]
    df["ppl_ci_high"] = df["ppl"] + Z95 * df["ppl_stderr"]
    ok = df[df["status"] == Status.OK]
    built = {
        "perplexity": _bars(df, "ppl", "Perplexity by precision",
                            "perplexity (lower is better; 95 % CI)",
                            error=("ppl_ci_low", "ppl_ci_high"), empty=NO_QUALITY),
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
        "accuracy_kld": accuracy_kld_figure(df, reference),
        **operating_figures(points, summary, machine=machine, shapes=shapes, report=report),
    }
    if set(built) != set(SUMMARY_FIGURES):
        raise RuntimeError(f"figures drawn ({', '.join(built)}) are not the list of "
                           f"quantbench.figures ({', '.join(SUMMARY_FIGURES)})")
    figs = {name: built[name] for name in SUMMARY_FIGURES}
    for rec in gpu_traces:
        figs[timeseries_name(rec["model"], rec["precision"])] = timeseries_figure(rec)
    return figs


def _empty_series(summary: pd.DataFrame, machine: dict | None) -> dict[str, str]:
    """Why the GPU time series of a precision holds no samples, by its file stem: its trace's
    status in the summary (``gpu_status``) where not ok; ``no_gpu`` for every precision of a
    run on the CPU (machine.json) whose summary does not say."""
    status = summary["gpu_status"] if "gpu_status" in summary else pd.Series(
        [None] * len(summary), index=summary.index)
    on_cpu = (machine or {}).get("device") == "cpu"
    out = {}
    for model, precision, state in zip(summary["model"], summary["precision"], status,
                                       strict=True):
        state = state if isinstance(state, str) else ("no_gpu" if on_cpu else "ok")
        if state != "ok":
            out[timeseries_name(model, precision)] = f"no GPU samples (status {state})"
    return out


def write_pngs(figs: list[go.Figure], paths: list, scale: float = 2) -> None:
    """Static images through one browser session (one per image is seconds each), each at its
    layout's size. kaleido's batch export has been seen to return without writing one of a
    couple of dozen images (the first), so every path is checked and a missing one is written
    again on its own."""
    if not figs:
        return
    pio.write_images(figs, [str(p) for p in paths], scale=scale,
                     width=[f.layout.width for f in figs], height=[f.layout.height for f in figs])
    for fig, path in zip(figs, paths, strict=True):
        if not Path(path).is_file():
            pio.write_image(fig, str(path), scale=scale, width=fig.layout.width,
                            height=fig.layout.height)
        if not Path(path).is_file():
            raise RuntimeError(f"kaleido wrote no {path}")


def plot_all(summary_path, folder, *, machine_path=None, gpu_trace_paths=(),
             reference: str | None = None, points_path=None, model_dirs=(),
             report: dict | None = None, kept=()) -> dict:
    """Write every figure that has data to ``folder`` (``<name>.html`` and ``.png``) and the
    folder's index (``quantbench.figures.INDEX``): the figures made, in order, and why each
    other one was not; the files of a figure not made are removed. ``kept``: PNGs drawn before
    (the GPU time series of a folder that keeps no records), copied in and listed as made,
    except those whose trace has no samples (``_empty_series``; without GPU trace records,
    every such series is listed as not made). Returns the index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = read_summary(summary_path)
    machine = json.loads(Path(machine_path).read_text()) if machine_path else None
    gpu_traces = [json.loads(Path(p).read_text()) for p in gpu_trace_paths]
    points = (pd.read_csv(points_path) if points_path and Path(points_path).is_file()
              else None)
    drawn = figures(summary, machine=machine, gpu_traces=gpu_traces, reference=reference,
                    points=points, shapes=roofline.shapes(model_dirs), report=report)
    made = {name: fig for name, fig in drawn.items() if isinstance(fig, go.Figure)}
    not_made = {name: fig.reason for name, fig in drawn.items() if isinstance(fig, NotMade)}
    for name in not_made:
        for suffix in (".png", ".html"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
    for name, fig in made.items():
        # plotly.js is written once beside the pages, so they open without a network.
        fig.write_html(folder / f"{name}.html", include_plotlyjs="directory", full_html=True)
    png = [folder / f"{name}.png" for name in made]
    try:
        write_pngs(list(made.values()), png)
    except Exception as exc:  # kaleido raises its own types when no browser is found
        for out in png:
            out.unlink(missing_ok=True)
        raise RuntimeError(
            f"static export of the PNG figures failed ({exc}); PNG figures need Chromium for "
            "kaleido (Debian: apt-get install chromium). The HTML figures were written."
        ) from exc
    names = list(made)
    empty = _empty_series(summary, machine)
    if not gpu_traces:  # a folder of tables: the summary says which series have no samples
        not_made.update(empty)
    for path in map(Path, kept):
        if path.stem in empty:
            not_made[path.stem] = empty[path.stem]
            (folder / path.name).unlink(missing_ok=True)
            continue
        if path.resolve() != (folder / path.name).resolve():
            shutil.copy2(path, folder / path.name)
        if path.stem not in names:
            names.append(path.stem)
    write_index(folder, names, not_made)
    return {"made": names, "not_made": not_made}
