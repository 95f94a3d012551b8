"""Figures of several panels: one per model, and per context (prompt, depth) where a figure has
one, with at most ``MAX_SERIES`` labelled series in a panel (a model's precisions are split over
more rows when there are more); every label inside its panel; a figure that has no data, or
fewer than two values on its x axis, is not made (``NotMade`` says why)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_SERIES = 8  # labelled series in one panel; beyond it labels and legends pile up


LABEL_FONT = 11


# the figure's frame around the panels (pixels): the title and the panels' titles above; below,
# the last row's axis title and the shared legend (``grid``)
MARGIN = dict(l=80, r=30, t=100)


LEGEND_ROW_PX = 24  # one line of a horizontal legend


@dataclass(frozen=True)
class NotMade:
    """A figure that is not drawn, and why: no data, or fewer than two values on its x axis."""

    reason: str


def chunked(names: Sequence, limit: int = MAX_SERIES) -> list[list]:
    """``names`` in consecutive groups of at most ``limit``, as even as can be (21 → 7, 7, 7)."""
    names = list(names)
    if not names:
        return []
    parts = -(-len(names) // limit)
    size = -(-len(names) // parts)
    return [names[i:i + size] for i in range(0, len(names), size)]


@dataclass(frozen=True)
class Panel:
    """One panel: a model; its column, a context (prompt tokens, depth), a name (what the
    column shows) or None; the series it draws; which part of the model's series they are
    (1 of 1 when all fit)."""

    model: str
    context: tuple[float, float] | str | None
    names: tuple[str, ...]
    part: tuple[int, int] = (1, 1)

    @property
    def title(self) -> str:
        text = self.model
        if isinstance(self.context, tuple):
            prompt, depth = self.context
            text += f" · prompt {prompt:g}, depth {depth:g}"
        elif self.context:
            text += f" · {self.context}"
        if self.part[1] > 1:
            text += f" ({self.part[0]}/{self.part[1]})"
        return text

    def rows(self, df: pd.DataFrame, series: str = "precision") -> pd.DataFrame:
        """The rows of ``df`` this panel draws."""
        keep = (df["model"] == self.model) & df[series].isin(self.names)
        if isinstance(self.context, tuple):
            keep &= (df["prompt_tokens"] == self.context[0]) & (
                df["context_depth"] == self.context[1])
        return df[keep]


def with_two_x(df: pd.DataFrame, x: str, by: Sequence[str]) -> pd.DataFrame:
    """The rows of the groups (``by``) that have at least two values of ``x``: a panel with one
    value on its x axis is not drawn."""
    if df.empty:
        return df
    counts = df.groupby(list(by))[x].transform("nunique")
    return df[counts >= 2]


def panels(df: pd.DataFrame, *, by_context: bool = False, series: str = "precision"
           ) -> list[Panel]:
    """The panels of ``df`` (rows in the precision table's order): per model, its series in
    groups of at most ``MAX_SERIES``, each group once per context when ``by_context``."""
    out = []
    for model, g in df.groupby("model", sort=False):
        names = list(dict.fromkeys(g[series]))
        contexts = (sorted(set(zip(g["prompt_tokens"], g["context_depth"], strict=True)))
                    if by_context else [None])
        parts = chunked(names)
        for i, part in enumerate(parts, start=1):
            for ctx in contexts:
                panel = Panel(model, ctx, tuple(part), (i, len(parts)))
                if not panel.rows(g, series).empty:
                    out.append(panel)
    return out


@dataclass
class Grid:
    """A figure of panels in rows (model and part) and columns (context), and where each is."""

    fig: go.Figure
    cells: dict[Panel, tuple[int, int]]
    shown: set  # legend entries already given: each series gets one, whichever panel it is in

    def refs(self, panel: Panel) -> tuple[str, str]:
        """The panel's axis references for annotations and shapes ("x2", "y2")."""
        sub = self.fig.get_subplot(*self.cells[panel])
        return sub.xaxis.plotly_name.replace("axis", ""), sub.yaxis.plotly_name.replace("axis", "")

    def size(self, panel: Panel) -> tuple[float, float]:
        """The panel's plot area in pixels (width, height)."""
        sub = self.fig.get_subplot(*self.cells[panel])
        lay = self.fig.layout
        m = lay.margin
        w = (lay.width - m.l - m.r) * (sub.xaxis.domain[1] - sub.xaxis.domain[0])
        h = (lay.height - m.t - m.b) * (sub.yaxis.domain[1] - sub.yaxis.domain[0])
        return w, h

    def legend(self, key: str) -> bool:
        """Whether a trace of ``key`` shows in the legend (the first one does)."""
        first = key not in self.shown
        self.shown.add(key)
        return first

    def axes(self, panel: Panel, *, x: dict | None = None, y: dict | None = None) -> None:
        row, col = self.cells[panel]
        if x:
            self.fig.update_xaxes(row=row, col=col, **x)
        if y:
            self.fig.update_yaxes(row=row, col=col, **y)

    def titles(self, x: str, y: str) -> None:
        """Axis titles on the bottom panel of each column and the left panel of each row."""
        rows = {}
        for r, c in self.cells.values():
            rows.setdefault(c, []).append(r)
        for c, rs in rows.items():
            self.fig.update_xaxes(title_text=x, row=max(rs), col=c)
        for r in {r for r, _ in self.cells.values()}:
            self.fig.update_yaxes(title_text=y, row=r, col=min(
                c for rr, c in self.cells.values() if rr == r))


def grid(found: list[Panel], *, title: str, row_height: int = 380, col_width: int = 560,
         gap_px: int = 80, below_px: int = 60, legend_entries: int = 0, legend_text: int = 14,
         layout: dict | None = None) -> Grid:
    """The figure for ``found``: one row per model and part, one column per context, ``gap_px``
    between rows; ``below_px`` under the last row (its ticks and axis title), then a
    horizontal legend with room for ``legend_entries`` entries of about ``legend_text``
    characters."""
    rows = list(dict.fromkeys((p.model, p.part) for p in found))
    cols = list(dict.fromkeys(p.context for p in found))
    cols = sorted(cols) if all(isinstance(c, tuple) for c in cols) else cols
    cells = {p: (rows.index((p.model, p.part)) + 1, cols.index(p.context) + 1) for p in found}
    by_cell = {cell: p for p, cell in cells.items()}
    order = [(r, c) for r in range(1, len(rows) + 1) for c in range(1, len(cols) + 1)]
    width = MARGIN["l"] + MARGIN["r"] + col_width * len(cols)
    per_line = max(1, int((width - MARGIN["l"]) // (legend_text * 7 + 50)))
    bottom = below_px + 10 + -(-legend_entries // per_line) * LEGEND_ROW_PX
    plot_h = (row_height + gap_px) * len(rows) - gap_px
    fig = make_subplots(
        rows=len(rows), cols=len(cols),
        specs=[[{} if (r, c) in by_cell else None for c in range(1, len(cols) + 1)]
               for r in range(1, len(rows) + 1)],
        subplot_titles=[by_cell[cell].title for cell in order if cell in by_cell],
        horizontal_spacing=min(0.1, 0.5 / len(cols)), vertical_spacing=gap_px / plot_h)
    fig.update_layout(
        title=title, template="plotly_white", width=width,
        height=MARGIN["t"] + plot_h + bottom, font=dict(size=13),
        margin={**MARGIN, "b": bottom},
        legend=dict(orientation="h", x=0, xanchor="left", y=-below_px / plot_h, yanchor="top",
                    font=dict(size=12)),
        **(layout or {}))
    fig.update_annotations(font_size=14)  # the panels' titles
    return Grid(fig, cells, set())


def span(values, axis_type: str, pad: float = 0.06) -> list[float]:
    """The axis range (plotly's units: log10 on a log axis) with ``pad`` of it on each side."""
    v = pd.Series(values, dtype=float).dropna()
    v = np.log10(v[v > 0]) if axis_type == "log" else v
    lo, hi = float(v.min()), float(v.max())
    extra = (hi - lo) * pad or 0.5
    return [lo - extra, hi + extra]


def text_px(text: str, size: int = LABEL_FONT) -> float:
    """A label's width in pixels, roughly (Arial's mean advance)."""
    return 0.58 * size * len(text) + 4


def room_right(xrange: list[float], texts, width_px: float) -> list[float]:
    """``xrange`` widened on the right so that the longest of ``texts`` fits after the last
    point inside a panel ``width_px`` wide."""
    need = max(text_px(t) for t in texts) + 14
    lo, hi = xrange
    extra = (hi - lo) * need / max(width_px - need, 1)
    return [lo, hi + extra]


def spread(wanted: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """Positions as near ``wanted`` as can be, at least ``gap`` apart, within [lo, hi]: pushed
    up where they crowd, then back down from ``hi``."""
    order = np.argsort(wanted, kind="stable")
    pos = [float(wanted[i]) for i in order]
    for i in range(len(pos)):
        pos[i] = max(pos[i], lo if i == 0 else pos[i - 1] + gap)
    for i in reversed(range(len(pos))):
        pos[i] = min(pos[i], hi if i == len(pos) - 1 else pos[i + 1] - gap)
    out = [0.0] * len(pos)
    for rank, i in enumerate(order):
        out[i] = pos[rank]
    return out


def along(xs, ys, *, xlog: bool, ylog: bool, steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Points along the polyline through (``xs``, ``ys``), straight on the axes' scales: for
    labels to keep off a line as well as its markers (``place_labels``' ``avoid``)."""
    fx = np.log10(np.asarray(xs, float)) if xlog else np.asarray(xs, float)
    fy = np.log10(np.asarray(ys, float)) if ylog else np.asarray(ys, float)
    t = np.linspace(0, 1, steps)
    px = [fx[i] + t * (fx[i + 1] - fx[i]) for i in range(len(fx) - 1)]
    py = [fy[i] + t * (fy[i + 1] - fy[i]) for i in range(len(fy) - 1)]
    px = np.concatenate(px) if px else np.array([])
    py = np.concatenate(py) if py else np.array([])
    return (10**px if xlog else px), (10**py if ylog else py)


def end_labels(g: Grid, panel: Panel, xs, ys, texts, colours, *, xrange, yrange,
               xlog: bool, ylog: bool) -> None:
    """Each line's label to the right of its last point (``xs``, ``ys``), moved up or down
    only as far as it takes for no two to overlap, inside the panel."""
    if not texts:
        return
    xref, yref = g.refs(panel)
    _, height = g.size(panel)
    fx = np.log10(np.asarray(xs, float)) if xlog else np.asarray(xs, float)
    fy = np.log10(np.asarray(ys, float)) if ylog else np.asarray(ys, float)
    scale = height / (yrange[1] - yrange[0])
    wanted = (fy - yrange[0]) * scale
    half = LABEL_FONT * 0.65
    placed = spread(list(wanted), LABEL_FONT * 1.3, half, height - half)
    for x, y, text, colour in zip(fx, placed, texts, colours, strict=True):
        g.fig.add_annotation(x=x, y=yrange[0] + y / scale, xref=xref, yref=yref, text=text,
                             showarrow=False, xanchor="left", xshift=8,
                             font=dict(size=LABEL_FONT, color=colour))


def place_labels(g: Grid, panel: Panel, x, y, texts, *, xrange, yrange, xlog: bool,
                 ylog: bool, avoid=((), ()), colours=None) -> None:
    """Label every point without overlaps where one can: each label, in turn, takes the first
    offset (nearest first, eight directions) whose box touches no label, labelled point or
    point of ``avoid`` (xs, ys) placed so far and stays inside the panel; a label away from
    its point gets a thin leader line; ``colours``: each label's (default: the font's)."""
    width, height = g.size(panel)
    xref, yref = g.refs(panel)

    def pixels(xs, ys):
        fx = np.log10(np.asarray(xs, float)) if xlog else np.asarray(xs, float)
        fy = np.log10(np.asarray(ys, float)) if ylog else np.asarray(ys, float)
        return (fx, fy, (fx - xrange[0]) / (xrange[1] - xrange[0]) * width,
                (fy - yrange[0]) / (yrange[1] - yrange[0]) * height)  # upwards

    fx, fy, px, py = pixels(x, y)
    _, _, ox, oy = pixels(*avoid)
    boxes = [(a - 7, b - 7, a + 7, b + 7)
             for a, b in zip([*px, *ox], [*py, *oy], strict=True)]
    directions = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    candidates = [(dx * r, dy * r) for r in (14, 30, 50, 75, 105) for dx, dy in directions]

    def cost(box) -> float:
        out = 0.0
        for b in boxes:
            w = min(box[2], b[2]) - max(box[0], b[0])
            h = min(box[3], b[3]) - max(box[1], b[1])
            out += max(w, 0) * max(h, 0)
        outside = box[0] < 0 or box[2] > width or box[1] < 0 or box[3] > height
        return out + (1e6 if outside else 0)

    for i in np.argsort(px, kind="stable"):
        half_w, half_h = text_px(texts[i]) / 2, LABEL_FONT * 0.7
        best, best_cost, best_box = candidates[0], float("inf"), None
        for dx, dy in candidates:
            cx = px[i] + (dx / abs(dx)) * (abs(dx) + half_w - 6) if dx else px[i]
            cy = py[i] + dy
            box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            c = cost(box)
            if c < best_cost:
                best, best_cost, best_box = (cx - px[i], cy - py[i]), c, box
            if c == 0:
                break
        boxes.append(best_box)
        far = abs(best[0]) > half_w + 16 or abs(best[1]) > 20
        g.fig.add_annotation(x=fx[i], y=fy[i], xref=xref, yref=yref, text=texts[i], ax=best[0],
                             ay=-best[1], axref="pixel", ayref="pixel", showarrow=True,
                             arrowhead=0, arrowwidth=0.7,
                             arrowcolor="#999" if far else "rgba(0,0,0,0)",
                             font=dict(size=LABEL_FONT,
                                       color=None if colours is None else list(colours)[i]),
                             standoff=6)
