"""Compare the results of several runs (machines, configs) in one markdown report.

    quantbench compare RESULTS_DIR_A RESULTS_DIR_B ... --out DIR [--html]

Each folder holds a run's ``summary.csv`` and, when there is one, its ``machine.json``. Rows are
labelled by run id: the summary's ``run_id`` column when all its rows share one, else (no run
id, or a folder whose rows come from several runs) the folder's name and the machine (GPU name,
or ``cpu``). The first folder is the base run: the other runs' decode
speeds are given as a ratio to it, precision by precision. Runs of one model each are compared
precision by precision even when the models differ (the report then says so); runs with
several models are compared by model and precision.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from quantbench.records import Status, atomic_write_text
from quantbench.report.numbers import fmt, md_escape

METRICS = (("decode_tok_s", "decode tok/s", 1), ("prefill_ms", "prefill ms", 1),
           ("peak_mem_mib", "peak memory MiB", 0), ("ppl_delta_pct", "Δ perplexity %", 2))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-")


def _machine(folder: Path) -> dict:
    path = folder / "machine.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def machine_label(machine: dict, summary: pd.DataFrame) -> str:
    """The GPU's name, else the device kind, from machine.json or the summary's own columns."""
    for value in (machine.get("gpu_name"), _first(summary, "gpu_name"), machine.get("device"),
                  _first(summary, "device")):
        if isinstance(value, str) and value:
            return value
    return "unknown machine"


def _first(df: pd.DataFrame, column: str):
    if column not in df or df[column].dropna().empty:
        return None
    return df[column].dropna().iloc[0]


def derive_run_id(folder: Path, machine: dict, summary: pd.DataFrame) -> str:
    """Folder name (its parent's for a folder called ``results``) and the machine."""
    folder = folder.resolve()
    name = folder.parent.name if folder.name == "results" else folder.name
    label = _slug(machine_label(machine, summary))
    return name if label in _slug(name) else f"{name}-{label}"


def load_run(folder) -> pd.DataFrame:
    """One run's summary, with ``run_id``, ``machine`` and ``commit`` columns."""
    folder = Path(folder)
    path = folder / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no summary.csv (is it a quantbench results folder?)")
    df = pd.read_csv(path)
    machine = _machine(folder)
    # a folder is one side of the comparison, also where its rows' records come from several
    # runs (report.allow_mixed_runs)
    ids = df["run_id"].dropna().unique() if "run_id" in df else []
    df["run_id"] = str(ids[0]) if len(ids) == 1 else derive_run_id(folder, machine, df)
    cpu = (machine.get("provenance") or {}).get("cpu")
    label = machine_label(machine, df)
    df["machine"] = f"{label} ({cpu})" if cpu and label == "cpu" else label
    commit = (machine.get("provenance") or {}).get("git_commit")
    df["commit"] = commit if commit and len(commit) == 40 else None
    df["folder"] = str(folder)
    return df


def combine(folders) -> pd.DataFrame:
    """All runs in one long table; run ids made unique in the order the folders are given."""
    frames, seen = [], {}
    for folder in folders:
        df = load_run(folder)
        for run_id in df["run_id"].unique():
            if run_id in seen:
                seen[run_id] += 1
                df.loc[df["run_id"] == run_id, "run_id"] = f"{run_id}-{seen[run_id]}"
            else:
                seen[run_id] = 1
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _keys(df: pd.DataFrame) -> list[str]:
    one_model_each = (df.groupby("run_id")["model"].nunique() <= 1).all()
    return ["precision"] if one_model_each else ["model", "precision"]


def side_by_side(df: pd.DataFrame) -> pd.DataFrame:
    """One row per precision (or model and precision), one column per (metric, run), and the
    decode speed of each later run as a ratio to the first run's."""
    runs = list(dict.fromkeys(df["run_id"]))
    keys = _keys(df)
    ok = df[df["status"] == Status.OK]
    wide = ok.pivot_table(index=keys, columns="run_id",
                          values=[m for m, _, _ in METRICS], aggfunc="first")
    wide = wide.reindex(columns=pd.MultiIndex.from_product([[m for m, _, _ in METRICS], runs]))
    base = runs[0]
    for run in runs[1:]:
        wide[("speed_ratio", run)] = wide[("decode_tok_s", run)] / wide[("decode_tok_s", base)]
    order = list(dict.fromkeys(df.set_index(keys).index))
    wide = wide.reindex(order)
    # a precision that did not run shows its status instead of a number
    status = df.pivot_table(index=keys, columns="run_id", values="status", aggfunc="first")
    for run in runs:
        wide[("status", run)] = status[run].reindex(order)
    return wide


def comparison_findings(df: pd.DataFrame, wide: pd.DataFrame) -> list[str]:
    """Sentences computed from the combined table."""
    runs = list(dict.fromkeys(df["run_id"]))
    out = []
    models = df.groupby("run_id", sort=False)["model"].unique()
    if len({tuple(sorted(m)) for m in models}) > 1:
        out.append("The runs measure different models ("
                   + "; ".join(f"{r}: {', '.join(models[r])}" for r in runs)
                   + "): speed ratios compare model and machine together.")
    ok = df[df["status"] == Status.OK].dropna(subset=["decode_tok_s"])
    for run in runs:
        g = ok[ok["run_id"] == run]
        if g.empty:
            out.append(f"{run}: no precision ran successfully.")
            continue
        best = g.loc[g["decode_tok_s"].idxmax()]
        out.append(f"{run}: fastest decode is {best['precision']} at "
                   f"{fmt(best['decode_tok_s'], 1)} tok/s.")
    unrated = [r for r in runs if df.loc[df["run_id"] == r, "ppl"].isna().all()]
    if unrated:
        out.append(f"Quality was not measured in {', '.join(unrated)} (random weights or no "
                   "quality stage): Δ perplexity is compared only between the other runs.")
    for run in runs[1:]:
        ratio = wide[("speed_ratio", run)].dropna()
        if ratio.empty:
            out.append(f"{run} and {runs[0]} share no precision that ran in both.")
            continue
        lo, hi = ratio.idxmin(), ratio.idxmax()
        out.append(
            f"{run} against {runs[0]}: over the {len(ratio)} precisions that ran in both, decode "
            f"is {fmt(float(ratio.median()), 2)}× as fast in the median, from "
            f"{fmt(float(ratio.min()), 2)}× ({_label(lo)}) to {fmt(float(ratio.max()), 2)}× "
            f"({_label(hi)})."
        )
    return out


def _label(key) -> str:
    return " / ".join(key) if isinstance(key, tuple) else str(key)


def markdown(df: pd.DataFrame, wide: pd.DataFrame) -> str:
    runs = list(dict.fromkeys(df["run_id"]))
    lines = ["# quantbench comparison", "", "## Runs", "",
             "| run id | folder | models | machine | device | precisions ok / run | commit |",
             "|---|---|---|---|---|---:|---|"]
    for run in runs:
        g = df[df["run_id"] == run]
        device = _first(g, "device") or "?"
        models = md_escape(", ".join(g["model"].unique()))
        lines.append(f"| {md_escape(run)} | {md_escape(g['folder'].iloc[0])} | {models} | "
                     f"{md_escape(g['machine'].iloc[0])} | {md_escape(device)} | "
                     f"{(g['status'] == Status.OK).sum()} / {len(g)} | "
                     f"`{_first(g, 'commit') or 'unknown'}` |")
    shown = df.assign(run_id=df["run_id"].map(md_escape))  # run ids may hold markup
    said = comparison_findings(shown, wide.rename(columns=md_escape, level=1))
    lines += ["", "## Findings", ""] + [f"- {line}" for line in said]
    keys = wide.index.names
    for metric, title, digits in METRICS:
        cols = [(metric, r) for r in runs]
        if wide[cols].isna().all().all():
            continue
        lines += ["", f"## {title}", "",
                  "| " + " | ".join(keys) + " | " + " | ".join(map(md_escape, runs)) + " |",
                  "|" + "---|" * len(keys) + "---:|" * len(runs)]
        for key, row in wide.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            lines.append("| " + " | ".join(key) + " | "
                         + " | ".join(_cell(row, metric, r, digits) for r in runs) + " |")
    if len(runs) > 1:
        lines += ["", f"## Decode speed relative to {md_escape(runs[0])}", "",
                  "| " + " | ".join(keys) + " | " + " | ".join(map(md_escape, runs[1:])) + " |",
                  "|" + "---|" * len(keys) + "---:|" * (len(runs) - 1)]
        for key, row in wide.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            lines.append("| " + " | ".join(key) + " | " + " | ".join(
                fmt(_float(row[("speed_ratio", r)]), 2) + ("×" if pd.notna(
                    row[("speed_ratio", r)]) else "") for r in runs[1:]) + " |")
    return "\n".join(lines) + "\n"


def _float(v):
    return float(v) + 0.0 if pd.notna(v) else None  # + 0.0: no "-0.00"


def _cell(row: pd.Series, metric: str, run: str, digits: int) -> str:
    status = row[("status", run)]
    if isinstance(status, str) and status != Status.OK:
        return status
    return fmt(_float(row[(metric, run)]), digits)


def figure(wide: pd.DataFrame, runs: list[str]):
    """Decode tok/s per precision, one bar series per run (log scale: machines differ a lot)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = [_label(k) for k in wide.index]
    for run in runs:
        fig.add_bar(x=labels, y=wide[("decode_tok_s", run)].tolist(), name=run)
    fig.update_layout(title="Decode throughput by run", yaxis_title="tokens / s (log)",
                      yaxis_type="log", barmode="group", template="plotly_white",
                      width=1000, height=500, legend_title="run")
    return fig


def compare(folders, out, *, html: bool = False) -> str:
    """Write ``out``/comparison.md and combined.csv (every run's rows, keyed by ``run_id``),
    and comparison.html with ``html``; return the markdown."""
    df = combine(folders)
    wide = side_by_side(df)
    text = markdown(df, wide)
    out = Path(out)
    atomic_write_text(out / "comparison.md", text)
    atomic_write_text(out / "combined.csv", df.to_csv(index=False))
    if html:
        runs = list(dict.fromkeys(df["run_id"]))
        figure(wide, runs).write_html(out / "comparison.html", include_plotlyjs="directory")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantbench compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="results folders (each with summary.csv)")
    parser.add_argument("--out", required=True, help="folder for comparison.md")
    parser.add_argument("--html", action="store_true",
                        help="also write comparison.html (plotly, opens offline)")
    args = parser.parse_args(argv)
    compare(args.folders, args.out, html=args.html)
    print(Path(args.out) / "comparison.md")
    return 0
