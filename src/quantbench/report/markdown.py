"""The markdown report: every figure in it comes from the summary table or the records.

The headline findings are computed here (``findings``), the recommendations, trade-offs,
hardware analysis, anomalies and limitations in ``quantbench.report.findings``; a jinja2
template renders them. Model-generated text is escaped so that it cannot inject markdown or HTML
into the report.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import jinja2
import pandas as pd

from quantbench import roofline, stats
from quantbench.figures import timeseries_name
from quantbench.records import atomic_write_text
from quantbench.report import anomalies, hardware, operating, recommend, variants
from quantbench.report.aggregate import SELF_FLOOR, read_summary
from quantbench.report.findings import Budgets
from quantbench.report.numbers import fmt, md_escape, sci
from quantbench.stats import known as _known


def headline_findings(df: pd.DataFrame, reference: str) -> list[str]:
    """The headline figures per model, every one read from ``df``."""
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
        if "tok_per_j" in ok and ok["tok_per_j"].notna().any():
            frugal = ok.loc[ok["tok_per_j"].idxmax()]
            line = (f"{model}: most decoded tokens per joule: {frugal['precision']} "
                    f"({fmt(frugal['tok_per_j'], 2)} tok/J")
            if not ref.empty and not pd.isna(ref.iloc[0]["tok_per_j"]):
                line += f", {fmt(frugal['tok_per_j'] / ref.iloc[0]['tok_per_j'], 1)}× {reference}"
            out.append(line + ").")
        failed = g[g["status"] != "ok"]
        for _, row in failed.iterrows():
            out.append(f"{model}: {row['precision']} did not run ({row['status']}): "
                       f"{md_escape(row['reason'])}")
    return out


def interval(low, high, digits: int = 2) -> str:
    """A 95 % interval as ``[low, high]``, or ``[n/a]`` where it is unavailable (too few runs
    or windows): never a zero-width interval standing for one that was not measured."""
    if not (_known(low) and _known(high)):
        return "[n/a]"
    return f"[{fmt(float(low), digits)}, {fmt(float(high), digits)}]"


def kld_floors(df: pd.DataFrame, reference: str) -> list[str]:
    """Per model, what the KL divergence noise floor in the quality table is and where it comes
    from (``aggregate.kld_floor``), or that it is unavailable."""
    out = []
    for model, g in df.groupby("model"):
        row = g.iloc[0]
        floor, source = row.get("kld_floor"), row.get("kld_floor_from")
        if not _known(floor) or not isinstance(source, str):
            out.append(f"{model}: KL divergence noise floor unavailable (n/a): no quality "
                       f"record of this run gives one (the `{reference}` run stored no "
                       "log-probabilities, or none of its own divergence).")
        elif source == SELF_FLOOR:
            out.append(f"{model}: KL divergence noise floor {sci(floor)}, the divergence of "
                       f"`{reference}` from its own stored top-k log-probabilities (their "
                       "float32 rounding): the smallest divergence this measurement resolves.")
        else:
            out.append(f"{model}: KL divergence noise floor {sci(floor)}, the divergence of "
                       f"`{source}` from `{reference}` measured in this run: what rounding to "
                       f"`{source}` alone changes.")
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


def _provenance(quality_paths, machine: dict) -> dict:
    """The provenance of the measurements (the first quality record's, else the machine's)."""
    prov = {}
    for p in quality_paths:
        prov = json.loads(Path(p).read_text())["provenance"]
        break
    prov = dict(prov or machine.get("provenance") or {})
    if len(prov.get("git_commit") or "") != 40:  # a copy of the tree without git history
        prov["git_commit"] = None
    return prov


def _shown_figures(df: pd.DataFrame, figures) -> tuple[list[str], str | None]:
    """The figures the report embeds: a precision's NVML time series only where its GPU trace
    has samples; the others are named in one line instead of as empty figures."""

    no_samples = {timeseries_name(r["model"], r["precision"]): r["gpu_status"]
                  for r in df.to_dict("records")
                  if isinstance(r.get("gpu_status"), str) and r["gpu_status"] != "ok"}
    shown = [f for f in figures if Path(f).stem not in no_samples]
    left_out = Counter(no_samples[Path(f).stem] for f in figures if Path(f).stem in no_samples)
    if not left_out:
        return shown, None
    what = ", ".join(f"{n} with status `{status}`" for status, n in left_out.items())
    return shown, (f"NVML time series left out for {left_out.total()} precisions whose GPU "
                   f"trace has no samples ({what}).")


def report_text(df: pd.DataFrame, *, reference: str, config: dict, machine: dict | None = None,
                models: dict | None = None, figures=(), generations=(), prov: dict | None = None,
                configfiles=(), points: pd.DataFrame | None = None,
                shapes: dict | None = None, kernels: pd.DataFrame | None = None,
                imatrix: pd.DataFrame | None = None) -> str:
    """The report's markdown from the summary table, the operating points (``points``, None
    when the run wrote none), the kernel traces (``kernels``, None or empty when the stage was
    off: no section then) and what describes the run."""
    machine, models, prov = machine or {}, models or {}, prov or {}
    budgets = Budgets.from_config(config.get("report"))
    picks = recommend.recommendations(df, reference, budgets)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("quantbench", "templates"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["sci"] = sci
    env.filters["md"] = md_escape
    env.globals["interval"] = interval
    shown, figures_note = _shown_figures(df, figures)
    fast_paths = [f for model, g in df.groupby("model")
                  for f in hardware.against_fast_baseline(model, g, reference)]
    kv_rows = [r for _, g in df.groupby("model") for r in variants.kv_cache_rows(g, points)]
    return env.get_template("report.md.j2").render(
        summary=[p.text for p in picks],
        quality_unknown=sorted({p.model for p in picks if not p.quality_known}),
        findings=headline_findings(df, reference),
        kld_floors=kld_floors(df, reference),
        boot={"resamples": stats.BOOT_RESAMPLES, "seed": stats.BOOT_SEED,
              "min_samples": stats.MIN_CI_SAMPLES},
        hardware=hardware.hardware(df, reference, machine),
        speed_vs_bytes=[r for _, g in df.groupby("model")
                        for r in hardware.speed_vs_bytes(g, reference)],
        eager_fast=[r for _, g in df.groupby("model") for r in hardware.eager_and_fast(g)],
        fast_paths=fast_paths,
        fast_path_rows=[{"model": f.model, "baseline": f.names["baseline"],
                         "verdict": f.kind.removeprefix("fast_path_"), **r}
                        for f in fast_paths for r in f.names["formats"]],
        kv_cache={"rows": kv_rows,
                  "findings": [f.text for f in variants.kv_cache_findings(kv_rows)]},
        tradeoffs=recommend.tradeoffs(df),
        anomalies=anomalies.anomalies(df, reference, budgets, points),
        limitations=anomalies.limitations(df, models, config, machine),
        budgets=budgets,
        rows=df.to_dict("records"),
        reference=reference,
        models=models,
        figures=shown,
        figures_note=figures_note,
        generations=list(generations),
        prov=prov,
        config=config,
        machine=machine,
        peak_tflops=roofline.peak_tflops(machine),
        configfiles=list(configfiles) or ["config/config.yaml"],
        ops=operating.section(points, df, reference=reference, config=config, machine=machine,
                              shapes=shapes),
        references=operating.references(df["precision"]),
        kernels={"rows": [] if kernels is None else kernels.to_dict("records"),
                 "findings": [f.text for f in hardware.kernel_findings(kernels)]},
        imatrix={"rows": [] if imatrix is None else imatrix.to_dict("records"),
                 "findings": [f.text for f in variants.imatrix_findings(imatrix)]},
    )


def render_report(summary_path, figures, quality_paths, model_dirs, *, reference: str,
                  config: dict, out, machine_path=None, configfiles=(), points_path=None,
                  kernels_path=None, imatrix_path=None) -> str:
    df = read_summary(summary_path)
    machine = json.loads(Path(machine_path).read_text()) if machine_path else {}
    points = (pd.read_csv(points_path) if points_path and Path(points_path).is_file()
              else None)
    kernels = (pd.read_csv(kernels_path) if kernels_path and Path(kernels_path).is_file()
               else None)
    imatrix = (pd.read_csv(imatrix_path) if imatrix_path and Path(imatrix_path).is_file()
               else None)
    out_dir = Path(out).parent
    text = report_text(
        df, reference=reference, config=config, machine=machine,
        models=_models_info(model_dirs),
        figures=[os.path.relpath(f, out_dir) for f in figures],
        generations=_generations(quality_paths),
        prov=_provenance(quality_paths, machine),
        configfiles=configfiles,
        points=points,
        shapes=roofline.shapes(model_dirs),
        kernels=kernels,
        imatrix=imatrix,
    )
    atomic_write_text(out, text)
    return text
