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

from quantbench import roofline
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


def hardware_findings(model: str, g: pd.DataFrame, reference: str,
                      machine: dict | None) -> list[str]:
    """Why precisions are fast or slow, from the roofline columns and the table itself."""
    out = []
    ok = g[g["status"] == "ok"]
    ridge = roofline.ridge_flop_per_byte(machine or {})
    rated = ok.dropna(subset=["mbu_pct"]) if "mbu_pct" in ok else ok.iloc[0:0]
    if ridge and not rated.empty:
        best = rated.loc[rated["mbu_pct"].idxmax()]
        out.append(
            f"{model}: decoding one token does {fmt(best['decode_flop_per_byte'], 1)} FLOP per "
            f"byte read ({best['precision']}), far below this machine's ridge point of "
            f"{fmt(ridge, 0)} FLOP/byte: decode is memory-bound, so its speed follows the bytes "
            f"per token and how close a kernel gets to peak bandwidth. {best['precision']} gets "
            f"closest: {fmt(best['decode_gb_s'], 1)} GB/s, {fmt(best['mbu_pct'], 1)} % MBU."
        )
    by_name = ok.set_index("precision")
    for name in by_name.index:
        base = name.removesuffix("-compiled")
        if name.endswith("-compiled") and base in by_name.index:
            c, e = by_name.loc[name], by_name.loc[base]
            out.append(
                f"{model}: {name} decodes at {fmt(c['decode_tok_s'], 1)} tok/s, "
                f"{fmt(c['decode_tok_s'] / e['decode_tok_s'], 1)}× eager {base} "
                f"({fmt(e['decode_tok_s'], 1)} tok/s) with the same weights: eager decode "
                f"({fmt(e['mbu_pct'], 1)} % MBU against {fmt(c['mbu_pct'], 1)} %) is bound by "
                f"per-token Python and kernel-launch overhead, not by memory."
            )
    if reference in by_name.index:
        ref = by_name.loc[reference]
        for name, row in by_name.iterrows():
            if row["size_mib"] < ref["size_mib"] and row["decode_tok_s"] < ref["decode_tok_s"]:
                line = (f"{model}: anomaly — {name} decodes at {fmt(row['speedup_vs_ref'], 2)}× "
                        f"{reference} although its weights are "
                        f"{fmt(ref['size_mib'] / row['size_mib'], 1)}× smaller")
                t0 = f"{name}-t0"
                if row["backend"] == "bitsandbytes" and t0 in by_name.index:
                    t0_tok_s = by_name.loc[t0, "decode_tok_s"]
                    share = "part" if t0_tok_s < ref["decode_tok_s"] else "all"
                    line += (f"; without outlier decomposition ({t0}) it runs at "
                             f"{fmt(t0_tok_s, 1)} tok/s, so the LLM.int8 split into an int8 and "
                             f"an fp16 matmul explains {share} of the loss")
                out.append(line + ".")
    return out


def findings(df: pd.DataFrame, reference: str, machine: dict | None = None) -> list[str]:
    """Sentences whose every figure is read from ``df`` (and the measured machine)."""
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
        for column, what in (("pareto_quality_speed", "perplexity vs decode speed"),
                             ("pareto_quality_memory", "perplexity vs peak memory")):
            if column in g and g[column].astype(bool).any() and g["ppl"].notna().any():
                names = ", ".join(g.loc[g[column].astype(bool), "precision"])
                out.append(f"{model}: Pareto front of {what} (no other precision is better "
                           f"on both): {names}.")
        out.extend(hardware_findings(model, g, reference, machine))
        if "named_type_pct" in g:
            for _, row in g[g["named_type_pct"] < 50].iterrows():
                out.append(
                    f"{model}: {row['precision']} holds only {fmt(row['named_type_pct'], 1)} % of "
                    f"its weights in the type it is named after ({row['weight_types']}): "
                    "llama.cpp fell back to other types for tensors whose rows are not "
                    "multiples of 256, so its size and quality are not those of this type on "
                    "other models."
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
        prov = json.loads(Path(p).read_text())["provenance"]
        if len(prov.get("git_commit") or "") != 40:  # a copy of the tree without git history
            prov["git_commit"] = None
        return prov
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
        findings=findings(df, reference, machine),
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
