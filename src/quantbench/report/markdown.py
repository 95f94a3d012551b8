"""The markdown report: every figure in it comes from the summary table or the records.

The headline findings are computed here (``findings``), the recommendations, trade-offs,
hardware analysis, anomalies and limitations in ``quantbench.report.findings``; a jinja2
template renders them. Model-generated text is escaped so that it cannot inject markdown or HTML
into the report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2
import pandas as pd

from quantbench import roofline, stats
from quantbench.figures import TIMESERIES_PREFIX, read_index
from quantbench.records import Status, atomic_write_text
from quantbench.report import (
    accuracy,
    anomalies,
    decision,
    glossary,
    hardware,
    operating,
    recommend,
    serving,
    variants,
)
from quantbench.report.aggregate import SELF_FLOOR, read_summary
from quantbench.report.findings import Budgets, Finding, apart
from quantbench.report.numbers import fmt, md_escape, sci
from quantbench.stats import known as _known


def headline_findings(df: pd.DataFrame, reference: str) -> list[str]:
    """The headline figures per model, every one read from ``df``."""
    out = []
    for model, g in df.groupby("model"):
        ok = g[g["status"] == Status.OK]
        ref = g[g["precision"] == reference]
        if ok.empty:
            out.append(f"{model}: no precision ran successfully.")
            continue
        fastest = ok.loc[ok["decode_tok_s"].idxmax()]
        tied = [r["precision"] for _, r in ok.sort_values("decode_tok_s", ascending=False)
                .iterrows() if r.name != fastest.name and not_told_apart(fastest, r)]
        if tied:
            out.append(f"{model}: the fastest decode at the headline point, "
                       f"{fastest['precision']} at {fmt(fastest['decode_tok_s'], 1)} tok/s, is not "
                       f"told apart from {', '.join(tied)}: their 95 % intervals reach its"
                       f"{against_unquantized(fastest, ok)}.")
        else:
            out.append(f"{model}: fastest decode at the headline point is {fastest['precision']} "
                       f"at {fmt(fastest['decode_tok_s'], 1)} tok/s"
                       f"{against_unquantized(fastest, ok)}.")
        smallest = ok.loc[ok["size_mib"].idxmin()]
        line = (f"{model}: smallest weight tensors are {smallest['precision']}'s at "
                f"{fmt(smallest['size_mib'], 1)} MiB")
        if not ref.empty and ref.iloc[0]["size_mib"]:
            ratio = ref.iloc[0]["size_mib"] / smallest["size_mib"]
            if round(ratio, 1) > 1:  # "smaller" only where the ratio shown says so
                line += f", {fmt(ratio, 1)}× smaller than {reference}"
        out.append(line + ".")
        q = g.dropna(subset=["ppl_delta_pct"])
        q = q[q["precision"] != reference]
        if not ref.empty and not q.empty:
            out.append(f"{model}: against {reference} (perplexity {fmt(ref.iloc[0]['ppl'], 3)}), "
                       + closest_and_furthest(q))
        out += [f.text for f in headline_energy(model, ok, reference)]
        failed = g[g["status"] != Status.OK]
        for _, row in failed.iterrows():
            out.append(f"{model}: {row['precision']} did not run ({row['status']}): "
                       f"{md_escape(row['reason'])}")
    return out


def not_told_apart(a, b) -> bool:
    """Whether two rows' decode intervals are both known and overlap (unknown intervals, as
    from a single process, are neither apart nor tied: nothing is said)."""
    keys = ("decode_tok_s_ci_low", "decode_tok_s_ci_high")
    if not all(_known(x.get(k)) for x in (a, b) for k in keys):
        return False
    return not (apart(a, b) or apart(b, a))


def against_unquantized(row, ok: pd.DataFrame) -> str:
    """A quantized precision's speed-up against the fastest unquantized path measured on the
    same device (any engine), and against its own engine's where that is another precision;
    nothing for an unquantized one (eager against compiled is the harness's overhead, shown
    as such, not a format's gain)."""
    if not decision.is_quantized(row["precision"]):
        return ""
    plain = ok[~ok["precision"].map(decision.is_quantized)]
    if "device" in ok:
        plain = plain[plain["device"] == row["device"]]
    if plain.empty:
        return " (no unquantized path measured to compare it with)"
    best = plain.loc[plain["decode_tok_s"].idxmax()]

    def tie_note(other) -> str:
        return ", not told apart" if not_told_apart(row, other) else ""

    said = [f"{fmt(row['decode_tok_s'] / best['decode_tok_s'])}× {best['precision']}, the "
            f"fastest unquantized path measured{tie_note(best)}"]
    own = plain[plain["backend"] == row["backend"]]
    if not own.empty and own["decode_tok_s"].idxmax() != best.name:
        mine = own.loc[own["decode_tok_s"].idxmax()]
        said.append(f"{fmt(row['decode_tok_s'] / mine['decode_tok_s'])}× {mine['precision']}, "
                    f"its own engine's{tie_note(mine)}")
    return f" ({'; '.join(said)})"


def headline_energy(model: str, ok: pd.DataFrame, reference: str) -> list[Finding]:
    """Where some precision ran on a GPU: the least energy per decoded token at the headline
    point (the decode steps alone; against the reference's where it has one and uses more),
    and the precisions with no such figure, by name and why (``serving.no_energy``)."""
    if not (ok.get("device", pd.Series(dtype=object)) == "cuda").any():
        return []
    out = []
    energy = ok[ok["decode_j_per_tok"].notna()]
    if not energy.empty:
        low = energy.loc[energy["decode_j_per_tok"].idxmin()]
        ref = energy[energy["precision"] == reference]
        ref_j = ref.iloc[0]["decode_j_per_tok"] if not ref.empty else None
        ratio = ref_j / low["decode_j_per_tok"] if ref_j is not None else None
        same = energy[(energy["decode_j_per_tok"].round(3) == round(low["decode_j_per_tok"], 3))
                      & (energy["precision"] != low["precision"])]
        out.append(Finding("least_energy_headline", model, low["precision"], numbers={
            "decode_j_per_tok": low["decode_j_per_tok"], "reference_j": ref_j,
            "ratio": ratio if ratio is not None and round(ratio, 1) > 1 else None},
            names={"reference": reference, "tied": ", ".join(same["precision"])}))
    missing = serving.no_energy(model, ok, where=" at the headline point")
    return out + ([missing] if missing else [])


def closest_and_furthest(q: pd.DataFrame) -> str:
    """The precisions of ``q`` whose perplexity is closest to and furthest from the
    reference's: by the absolute change (a change of -0.01 % is closer than one of +0.00 %
    only if it is smaller in size), each with its paired 95 % interval where measured."""
    size = q["ppl_delta_pct"].abs()
    best, worst = q.loc[size.idxmin()], q.loc[size.idxmax()]

    def change(row, words: str) -> str:
        low, high = row.get("ppl_delta_pct_ci_low"), row.get("ppl_delta_pct_ci_high")
        ci = f" [{low:+.2f}, {high:+.2f}]" if _known(low) and _known(high) else ""
        return f"{row['precision']} ({row['ppl_delta_pct']:+.2f} %{words}{ci})"

    if len(q) == 1:
        return f"the only other precision measured is {change(best, ' perplexity')}."
    return (f"the closest precision is {change(best, ' perplexity')} and the furthest is "
            f"{change(worst, '')}.")


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


SERIES_NAMED = 6  # GPU time series not drawn, named up to this many (beyond: counted only)


def figures_note(not_made: dict[str, str]) -> str | None:
    """The figures not drawn, grouped by why (the figures' index): a list under one line;
    the GPU time series counted, with their precisions up to ``SERIES_NAMED``."""
    by_reason: dict[str, list[str]] = {}
    for name, why in not_made.items():
        by_reason.setdefault(why, []).append(name)
    lines = []
    for why, names in by_reason.items():
        series = [n for n in names if n.startswith(TIMESERIES_PREFIX)]
        named = [f"`{n}`" for n in names if n not in series]
        if series:
            which = (f" ({', '.join(n.removeprefix(TIMESERIES_PREFIX) for n in series)})"
                     if len(series) <= SERIES_NAMED else "")
            named.append(f"the GPU time series of {len(series)} precision"
                         f"{'s' if len(series) > 1 else ''}{which}")
        lines.append(f"- {', '.join(named)}: {why}")
    if not lines:
        return None
    return "Not drawn (no data, or fewer than two values on the x axis):\n\n" + "\n".join(lines)


def limit_words(df: pd.DataFrame, config: dict) -> dict:
    """What the methodology says of the decode limit, where one was measured: its weights'
    type and how it was timed (the config's decode_limit, on the run's device)."""
    measured = "decode_limit_tok_s" in df and bool(df["decode_limit_tok_s"].notna().any())
    spec = config.get("decode_limit") or {}
    gpu = "cuda" in set(df.get("device", pd.Series(dtype=object)).dropna())
    how = "replayed as one CUDA graph" if gpu else "in a loop"
    return {"limit_measured": measured,
            "limit_dtype": spec.get("dtype") or ("bfloat16" if gpu else "float32"),
            "limit_method": f"{how}; the median of {spec.get('repeats', 5)} blocks of "
                            f"{spec.get('steps', 20)} steps"}


def report_text(df: pd.DataFrame, *, reference: str, config: dict, machine: dict | None = None,
                models: dict | None = None, figures=(), not_made: dict | None = None,
                generations=(), prov: dict | None = None,
                configfiles=(), points: pd.DataFrame | None = None,
                shapes: dict | None = None, kernels: pd.DataFrame | None = None,
                imatrix: pd.DataFrame | None = None, points_file: str = "points.md",
                points_out=None, tasks: pd.DataFrame | None = None) -> str:
    """The report's markdown from the summary table, the operating points (``points``, None
    when the run wrote none), the kernel traces (``kernels``, None or empty when the stage was
    off: no section then), the accuracy by task (``tasks``: results/accuracy.csv; None or empty:
    no section) and what describes the run. ``figures``: the images the report links
    (paths relative to it); ``not_made``: the figures not drawn, and why. Every measured
    point's table goes to ``points_out`` (linked as ``points_file``), not into the report."""
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
    fast_paths = [f for model, g in df.groupby("model")
                  for f in hardware.against_fast_baseline(model, g, reference)]
    kv_rows = [r for _, g in df.groupby("model") for r in variants.kv_cache_rows(g, points)]
    context = dict(
        **limit_words(df, config),
        summary=[p.text for p in picks],
        quality_unknown=sorted({p.model for p in picks if not p.quality_known}),
        findings=headline_findings(df, reference),
        kld_floors=kld_floors(df, reference),
        energy_basis=[f.text for f in serving.energy_basis(df)],
        boot={"resamples": stats.BOOT_RESAMPLES, "seed": stats.BOOT_SEED,
              "min_samples": stats.MIN_CI_SAMPLES},
        hardware=hardware.hardware(df, reference, machine, kernels),
        on_gpu=device_kind(df, machine) == "cuda",
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
        rows=df.assign(other_run=anomalies.other_run(df, reference)).to_dict("records"),
        other_run_note=anomalies.other_run_note(df, reference),
        reference=reference,
        models=models,
        figures=list(figures),
        figures_note=figures_note(not_made or {}),
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
        accuracy=accuracy.section(df, tasks, reference),
        imatrix={"rows": [] if imatrix is None else imatrix.to_dict("records"),
                 "findings": [f.text for f in variants.imatrix_findings(imatrix)]},
    )
    template = env.get_template("report.md.j2")
    context["decision"] = decision_context(df, points, config, reference=reference,
                                           budgets=budgets, models=models)
    context["points_file"] = points_file if points is not None else None
    context["run_id"] = run_id_of(df)
    if points_out is not None:
        atomic_write_text(points_out, env.get_template("points.md.j2").render(**context))
    # the glossary defines the terms the rest of the report uses, and no other
    return template.render(**context, glossary=glossary.used(template.render(**context,
                                                                             glossary=[])))


def run_id_of(df: pd.DataFrame) -> str:
    ids = sorted(set(df.get("run_id", pd.Series(dtype=object)).dropna()))
    return ", ".join(ids) or "unknown"


def decision_context(df: pd.DataFrame, points: pd.DataFrame | None, config: dict, *,
                     reference: str, budgets: Budgets, models: dict) -> dict:
    """The decision table's rows, its scenarios in words and what would change each pick."""
    scenarios = decision.scenarios_from_config(config.get("report"))
    notes = {name: "random weights" for name, m in models.items()
             if m.get("quality_applicable") is False}
    answers = decision.decision(points, df, scenarios, reference=reference, budgets=budgets,
                                weights_notes=notes)
    prompts = (sorted(points["prompt_tokens"].dropna().unique()) if points is not None
               and not points.empty else [])

    def budget(s):
        pct = s.quality_budget_pct if s.quality_budget_pct is not None else \
            budgets.quality_budget_pct
        kld = s.kld_budget if s.kld_budget is not None else budgets.kld_budget
        drop = s.accuracy_drop_pp if s.accuracy_drop_pp is not None else budgets.accuracy_drop_pp
        return (f"+{fmt(pct, 1)} % perplexity" + (f", KLD ≤ {kld}" if kld is not None else "")
                + (f", accuracy at most {fmt(drop, 1)} points lower" if drop is not None
                   else ""))

    crossed = set(df.loc[anomalies.other_run(df, reference), ["model", "precision"]]
                  .itertuples(index=False, name=None))
    rows = []
    for a in answers:
        row = a.row()
        for key, pick in (("pick", a.pick), ("runner_up", a.runner_up)):
            if pick and (a.model, pick["precision"]) in crossed:  # a comparison across runs
                row[key] = row[key].replace(pick["precision"], pick["precision"] + " †")
        rows.append(row)
    return {
        "rows": rows,
        "scenarios": [{"name": s.name, "workload": s.workload(s.prompt(prompts)),
                       "targets": s.targets(), "budget": budget(s), "note": s.note}
                      for s in scenarios],
        "changes": [f"{a.model}, {a.scenario.name}: what would change the pick: "
                    + " ".join(a.changes) for a in answers if a.changes],
        "cited": decision.MLPERF_SOURCE if any(s.note and "MLPerf" in s.note
                                               for s in scenarios) else None,
        "none": ("No scenario configured (report.scenarios)." if not scenarios else
                 "No operating point was measured: no scenario can be answered."),
    }


def device_kind(df: pd.DataFrame, machine: dict) -> str | None:
    """The kind of device the timings were taken on (cuda, cpu): the machine's, else the first
    measured row's."""
    if machine.get("device"):
        return machine["device"]
    known = df["device"].dropna() if "device" in df else pd.Series(dtype=object)
    return known.iloc[0] if not known.empty else None


def render_report(summary_path, figures_dir, quality_paths, model_dirs, *, reference: str,
                  config: dict, out, machine_path=None, configfiles=(), points_path=None,
                  kernels_path=None, imatrix_path=None, points_out=None) -> str:
    """The report from the tables and records; it links the figures that the index of
    ``figures_dir`` lists as made (``quantbench.figures.INDEX``), and only those."""
    df = read_summary(summary_path)
    index = read_index(figures_dir)
    machine = json.loads(Path(machine_path).read_text()) if machine_path else {}
    points = (pd.read_csv(points_path) if points_path and Path(points_path).is_file()
              else None)
    kernels = (pd.read_csv(kernels_path) if kernels_path and Path(kernels_path).is_file()
               else None)
    imatrix = (pd.read_csv(imatrix_path) if imatrix_path and Path(imatrix_path).is_file()
               else None)
    tasks_path = Path(summary_path).with_name("accuracy.csv")  # written beside the summary
    tasks = pd.read_csv(tasks_path) if tasks_path.is_file() else None
    out_dir = Path(out).parent
    text = report_text(
        df, reference=reference, config=config, machine=machine,
        models=_models_info(model_dirs),
        figures=[os.path.relpath(Path(figures_dir) / f"{name}.png", out_dir)
                 for name in index["made"]],
        not_made=index["not_made"],
        generations=_generations(quality_paths),
        prov=_provenance(quality_paths, machine),
        configfiles=configfiles,
        points=points,
        shapes=roofline.shapes(model_dirs),
        kernels=kernels,
        imatrix=imatrix,
        points_file=os.path.relpath(points_out, out_dir) if points_out else "points.md",
        points_out=points_out,
        tasks=tasks,
    )
    atomic_write_text(out, text)
    return text
