"""The summary's figures, by file stem (results/figures/<name>.png and .html), in the order the
report shows them; each has a caption in workflow/report/<name>.rst.

A figure is made only where it has data and at least two values on its x axis; the folder's
index (``INDEX``) lists the figures made, in order, and why each other one was not. The plot
rule's output is the folder; the report links what the index lists.

Kept free of heavy imports (no plotly): the workflow's rules read it while building the DAG, and
quantbench.report.plots draws one figure per name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from quantbench.records import atomic_write_text

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
    "accuracy_kld",
    "batch_throughput",
    "latency_throughput",
    "batch_speedup",
    "batch_memory",
    "batch_roofline",
)


INDEX = "index.json"  # in the figures' folder: {"made": [stem, ...], "not_made": {stem: why}}


TIMESERIES_PREFIX = "nvml_"


def timeseries_name(model: str, precision: str) -> str:
    """File stem of one precision's NVML time series (the rules ask for the same names)."""
    return f"{TIMESERIES_PREFIX}{model}_{precision}"


def write_index(folder: str | os.PathLike, made: list[str], not_made: dict[str, str]) -> None:
    atomic_write_text(Path(folder) / INDEX,
                      json.dumps({"made": list(made), "not_made": dict(not_made)}, indent=2))


def read_index(folder: str | os.PathLike) -> dict:
    """The index of a figures' folder: ``made`` (stems, in the report's order) and
    ``not_made`` (stem: why)."""
    index = json.loads((Path(folder) / INDEX).read_text())
    return {"made": list(index.get("made", [])), "not_made": dict(index.get("not_made", {}))}
