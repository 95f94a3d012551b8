"""The summary's figures, by file stem (results/figures/<name>.png and .html), in the order the
report shows them; each has a caption in workflow/report/<name>.rst.

Kept free of heavy imports (no plotly): the workflow's rules read it while building the DAG, and
quantbench.report.plots draws one figure per name.
"""

SUMMARY_FIGURES = (
    "perplexity",
    "quality",
    "decode_throughput",
    "prefill_throughput",
    "speedup",
    "memory",
    "pareto_speed",
    "pareto_memory",
    "roofline",
    "batch_throughput",
    "latency_throughput",
    "batch_speedup",
    "batch_memory",
    "batch_roofline",
)


def timeseries_name(model: str, precision: str) -> str:
    """File stem of one precision's NVML time series (the rules ask for the same names)."""
    return f"nvml_{model}_{precision}"
