"""The markdown report: every figure in it comes from the summary table or the records.

Findings are computed here (``findings``) and rendered by a jinja2 template; model-generated
text is escaped so that it cannot inject markdown or HTML into the report.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import jinja2
import pandas as pd

from quantbench.records import atomic_write_text

QUALITY_BUDGET_PCT = 2.0


MD_SPECIAL = "\\`*_[]|#~!"


def md_escape(text: str) -> str:
    """Make arbitrary text inert inside a markdown table cell (no markup, no HTML)."""
    text = "".join("\\" + c if c in MD_SPECIAL else c for c in str(text))
    text = html.escape(text, quote=True)
    return text.replace("\r", " ").replace("\n", " ⏎ ")


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def findings(df: pd.DataFrame, reference: str) -> list[str]:
    """Sentences whose every figure is read from ``df``."""
    out = []
    for model, g in df.groupby("model"):
        ok = g[g["status"] == "ok"]
        ref = g[g["precision"] == reference]
        if ok.empty:
            out.append(f"{model}: no precision ran successfully.")
            continue
        fastest = ok.loc[ok["decode_tok_s"].idxmax()]
        line = (f"{model}: fastest decode is {fastest['precision']} at "
                f"{fmt(fastest['decode_tok_s'], 1)} tok/s")
        if not ref.empty and not pd.isna(fastest["speedup_vs_ref"]):
            line += f" ({fmt(fastest['speedup_vs_ref'])}× {reference})"
        out.append(line + ".")
        smallest = ok.loc[ok["size_mib"].idxmin()]
        line = (f"{model}: smallest weights are {smallest['precision']} at "
                f"{fmt(smallest['size_mib'], 1)} MiB")
        if not ref.empty and ref.iloc[0]["size_mib"]:
            ratio = ref.iloc[0]["size_mib"] / smallest["size_mib"]
            line += f", {fmt(ratio, 1)}× smaller than {reference}"
        out.append(line + ".")
        q = g.dropna(subset=["ppl_delta_pct"])
        q = q[q["precision"] != reference]
        if not ref.empty and not q.empty:
            best, worst = q.loc[q["ppl_delta_pct"].idxmin()], q.loc[q["ppl_delta_pct"].idxmax()]
            out.append(
                f"{model}: against {reference} (perplexity {fmt(ref.iloc[0]['ppl'], 3)}), the "
                f"closest precision is {best['precision']} ({best['ppl_delta_pct']:+.2f} % "
                f"perplexity) and the furthest is {worst['precision']} "
                f"({worst['ppl_delta_pct']:+.2f} %)."
            )
            within = q[(q["ppl_delta_pct"] <= QUALITY_BUDGET_PCT) & (q["status"] == "ok")]
            if not within.empty:
                pick = within.loc[within["decode_tok_s"].idxmax()]
                out.append(
                    f"{model}: recommendation — within +{QUALITY_BUDGET_PCT:g} % perplexity of "
                    f"{reference}, the fastest precision is {pick['precision']} "
                    f"({fmt(pick['decode_tok_s'], 1)} tok/s, {pick['ppl_delta_pct']:+.2f} % "
                    f"perplexity, {fmt(pick['size_mib'], 1)} MiB of weights)."
                )
        failed = g[g["status"] != "ok"]
        for _, row in failed.iterrows():
            out.append(f"{model}: {row['precision']} did not run ({row['status']}): "
                       f"{md_escape(row['reason'])}")
    return out


def _models_info(model_dirs) -> dict:
    info = {}
    for d in model_dirs:
        p = Path(d) / "quantbench_model.json"
        info[Path(d).parent.name] = json.loads(p.read_text()) if p.is_file() else {}
    return info


def _generations(quality_paths) -> list[dict]:
    by_prompt: dict[str, list] = {}
    for p in quality_paths:
        rec = json.loads(Path(p).read_text())
        for g in rec["details"].get("generations", []):
            by_prompt.setdefault(g["prompt"], []).append(
                {"model": rec["model"], "precision": rec["precision"],
                 "text": md_escape(g["text"])})
    return [{"prompt": md_escape(k), "outputs": v} for k, v in by_prompt.items()]


def _provenance(quality_paths) -> dict:
    for p in quality_paths:
        return json.loads(Path(p).read_text())["provenance"]
    return {}


def render_report(summary_path, figures, quality_paths, model_dirs, *, reference: str,
                  config: dict, out, machine_path=None) -> str:
    df = pd.read_csv(summary_path)
    machine = json.loads(Path(machine_path).read_text()) if machine_path else {}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("quantbench", "templates"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    out_dir = Path(out).parent
    text = env.get_template("report.md.j2").render(
        findings=findings(df, reference),
        rows=df.to_dict("records"),
        reference=reference,
        models=_models_info(model_dirs),
        figures=[os.path.relpath(f, out_dir) for f in figures],
        generations=_generations(quality_paths),
        prov=_provenance(quality_paths),
        config=config,
        budget=QUALITY_BUDGET_PCT,
        machine=machine,
    )
    atomic_write_text(out, text)
    return text
