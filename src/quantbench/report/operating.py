"""Operating points: how each precision's answer changes with the batch size and context depth.

Reads the sweep's table (``results/points.csv``: one row per model, precision, prompt tokens,
batch size and context depth, with its status, decode throughput and 95 % interval, per-token
latency percentiles, memory and energy), the summary (quality per precision, KV cache element
size), ``results/machine.json`` (the roofline ceilings and the device's memory) and the config's
``report:`` section. What it derives, every figure from those tables:

- MBU and MFU of decode at each point: the bytes one decode step reads (weights once, plus each
  sequence's KV cache at the mean decode context) and its model FLOPs (2 x matmul parameters x
  batch), over the step time (batch / total decode tok/s), against the peak bandwidth and the
  best measured matmul rate (``quantbench.roofline``);
- the batch at which decode's arithmetic intensity crosses the machine's ridge point, where it
  turns compute-bound (``roofline.ridge_batch``), and whether a measured point reached it;
- the crossover of each quantized precision with its unquantized baseline of the same engine:
  at which batch sizes it decodes faster, the 95 % intervals apart;
- where a decode step over more sequences took clearly less time than one over fewer (the work
  of a step does not shrink with the batch: something else set the step time, such as a kernel
  chosen for that shape or per-step host overhead, and comparisons across batch sizes carry it);
- each precision's highest total throughput among its points whose p90 per-token latency is
  within ``report.token_latency_budget_ms`` (a table: the serving recommendation is the one
  answer to that question);
- the memory of a served point as fixed + per-token x tokens held in the KV caches (least
  squares), and so how many sequences of ``report.capacity_context_tokens`` fit in the device;
- energy per decoded token (the decode steps alone), naming the precisions without one and
  the points left out for a power above the card's limit; only with configured prices, cost
  per million tokens;
- recommendations per deployment scenario, each only when some point qualifies.

Findings are ``findings.Finding`` (kind, model, precision, numbers) worded by
``quantbench.report.wording``. pandas and numpy only: no plotly, no torch.
"""

from __future__ import annotations

import pandas as pd

from quantbench import precisions
from quantbench.records import Status
from quantbench.report.findings import Budgets, Finding
from quantbench.report.point_table import Settings, in_table_order, prepare, swept
from quantbench.report.scaling import compute_bound_findings, crossover_findings, step_time_findings
from quantbench.report.serving import (
    budget_table,
    capacity_findings,
    cost_findings,
    costs,
    device_memory,
    fit_capacity,
    recommendation_findings,
)

# -- the table ----------------------------------------------------------------------------------


# -- crossover with the baseline ----------------------------------------------------------------


# -- decode step time against the batch ---------------------------------------------------------


# -- where decode turns compute-bound -----------------------------------------------------------


# -- throughput within a per-token latency budget -----------------------------------------------


# -- capacity -----------------------------------------------------------------------------------


# -- energy and cost ----------------------------------------------------------------------------


# -- recommendations ----------------------------------------------------------------------------


# -- references ---------------------------------------------------------------------------------

ROOFLINE_REF = ("S. Williams, A. Waterman, D. Patterson, \"Roofline: an insightful visual "
                "performance model for multicore architectures\", Communications of the ACM "
                "52(4), 2009, doi:10.1145/1498765.1498785 — the ceilings of the roofline figures "
                "and the ridge point.")
FORMAT_REFS = {
    "llm.int8": ("T. Dettmers, M. Lewis, Y. Belkada, L. Zettlemoyer, \"LLM.int8(): 8-bit "
                 "Matrix Multiplication for Transformers at Scale\", NeurIPS 2022, "
                 "arXiv:2208.07339 — bitsandbytes int8 with outlier decomposition"),
    "qlora": ("T. Dettmers, A. Pagnoni, A. Holtzman, L. Zettlemoyer, \"QLoRA: Efficient "
              "Finetuning of Quantized LLMs\", NeurIPS 2023, arXiv:2305.14314 — the NF4 data "
              "type and double quantization (bitsandbytes 4-bit)"),
    "k-quants": ("ggml-org/llama.cpp pull request #1684, \"k-quants\" "
                 "(https://github.com/ggml-org/llama.cpp/pull/1684) — the K-quant formats "
                 "(Q2_K … Q6_K and their _S/_M/_L mixes)"),
    "gguf": ("The GGUF file format specification, ggml documentation "
             "(https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) — the file that "
             "holds every llama.cpp precision"),
}


def format_refs(names) -> list[str]:
    """What to cite for the formats of the precisions ``names`` (in the order above)."""
    keys = set()
    for name in names:
        if name not in precisions.table():
            continue
        p = precisions.get(name)
        keys |= p.engine.format_refs(p.settings)
    return [FORMAT_REFS[k] for k in FORMAT_REFS if k in keys]


def references(names) -> list[str]:
    return [ROOFLINE_REF, *format_refs(names)]


# -- the report's section -----------------------------------------------------------------------


def _say(found: list[Finding]) -> list[str]:
    return [f.text for f in found]


def nothing_to_sweep(points: pd.DataFrame | None) -> str | None:
    """The section's one line when there is no sweep to analyse, else None."""
    if points is None:
        return ("No operating-point sweep: results/points.csv is absent, so nothing is said "
                "about batch sizes or context depths.")
    if not swept(points):
        return ("One operating point per precision: nothing to sweep (set more than one value "
                "in latency.batch_sizes or latency.context_depths to compare operating points).")
    return None


def section(points: pd.DataFrame | None, summary: pd.DataFrame | None, *, reference: str,
            config: dict, machine: dict | None = None, shapes: dict | None = None) -> dict:
    """What the report's "Operating points" section shows: a line when there is nothing to
    sweep, else the findings, the tables and every measured point (one table per model)."""
    report = config.get("report") or {}
    settings, budgets = Settings.from_config(report), Budgets.from_config(report)
    line = nothing_to_sweep(points)
    if points is None or points.empty:
        return {"swept": False, "line": line, "settings": settings, "tables": {}}
    df = costs(prepare(points, summary, machine, shapes), settings)
    tables = {model: in_table_order(g).to_dict("records") for model, g in df.groupby("model")}
    if line is not None:
        return {"swept": False, "line": line, "settings": settings, "tables": tables}
    fits = fit_capacity(df, settings, machine, shapes)
    device, what = device_memory(machine)
    return {
        "swept": True, "line": None, "settings": settings,
        "n_points": len(df), "n_ok": int((df["status"] == Status.OK).sum()),
        "batch_sizes": sorted(int(b) for b in df["batch_size"].dropna().unique()),
        "depths": sorted(int(d) for d in df["context_depth"].dropna().unique()),
        "prompts": sorted(int(p) for p in df["prompt_tokens"].dropna().unique()),
        "recommendations": _say(recommendation_findings(
            df, summary, reference=reference, budgets=budgets, settings=settings,
            machine=machine, config=config)),
        "crossovers": _say(crossover_findings(df)),
        "step_times": _say(step_time_findings(df)),
        "compute": _say(compute_bound_findings(df, machine)),
        "budget_rows": budget_table(in_table_order(df), settings),
        "capacity": _say(capacity_findings(fits, machine)),
        "capacity_rows": fits,
        "device_mib": device, "device_memory": what,
        "costs": _say(cost_findings(df, settings)),
        "tables": tables,
    }
