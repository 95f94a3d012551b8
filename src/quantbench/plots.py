"""Figures from the summary table (plotly): interactive HTML that opens offline, and PNG.

One colour per backend family in every figure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

COLOURS = {"transformers": "#1f77b4", "bitsandbytes": "#ff7f0e", "llama.cpp": "#2ca02c"}


def _bars(df: pd.DataFrame, column: str, title: str, yaxis: str, *, error=None) -> go.Figure:
    fig = go.Figure()
    for family, group in df.groupby("family", sort=False):
        kwargs = {}
        if error is not None:
            low, high = error
            kwargs["error_y"] = dict(type="data", symmetric=False,
                                     array=(group[high] - group[column]).tolist(),
                                     arrayminus=(group[column] - group[low]).tolist())
        fig.add_bar(x=group["label"], y=group[column], name=family,
                    marker_color=COLOURS.get(family, "#7f7f7f"), **kwargs)
    fig.update_layout(title=title, yaxis_title=yaxis, xaxis_title="precision",
                      template="plotly_white", width=900, height=500, legend_title="backend")
    return fig


def figures(summary: pd.DataFrame) -> dict[str, go.Figure]:
    df = summary.copy()
    multi = df["model"].nunique() > 1
    df["label"] = (df["model"] + " / " + df["precision"]) if multi else df["precision"]
    ok = df[df["status"] == "ok"]
    return {
        "perplexity": _bars(df.dropna(subset=["ppl"]), "ppl", "Perplexity by precision",
                            "perplexity (lower is better)", error=None),
        "decode_throughput": _bars(ok, "decode_tok_s", "Decode throughput (batch 1)",
                                   "tokens / s (95 % CI)",
                                   error=("decode_tok_s_ci_low", "decode_tok_s_ci_high")),
        "memory": _bars(ok, "peak_mem_mib", "Peak memory during the latency run",
                        "MiB (GPU if used, else host RSS)"),
    }


def plot_all(summary_path, *, html, png) -> None:
    summary = pd.read_csv(summary_path)
    figs = figures(summary)
    for out in list(html) + list(png):
        name = Path(out).stem
        if name not in figs:
            raise ValueError(f"no figure named {name!r}; have {', '.join(figs)}")
    for out in html:
        fig = figs[Path(out).stem]
        # plotly.js is written once beside the pages, so they open without a network.
        fig.write_html(out, include_plotlyjs="directory", full_html=True)
    for out in png:
        try:
            figs[Path(out).stem].write_image(out, scale=2)
        except Exception as exc:  # kaleido raises its own types when no browser is found
            Path(out).unlink(missing_ok=True)
            raise RuntimeError(
                f"static export of {out} failed ({exc}); PNG figures need Chromium for kaleido "
                "(Debian: apt-get install chromium). The HTML figures were written."
            ) from exc
