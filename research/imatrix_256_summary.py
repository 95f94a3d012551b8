"""quality.csv and importance-matrix.md of this example, from the run's results:

    python -m research.imatrix_256_summary docs/examples/imatrix-256

- quality.csv: per precision, the figures of its quality record
  (results/shakespeare-256/quality/<precision>.json), as the job wrote them.
- importance-matrix.md: the report's "Importance matrix" section, rendered by
  quantbench.report from the quality records and results/imatrix.csv (the timed stages, which
  the full report also needs, were not run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from quantbench.report.aggregate import summary_table
from quantbench.report.markdown import report_text

CONFIG = Path("config/imatrix-256.yaml")
RECORDS = Path("results/shakespeare-256/quality")
REFERENCE = "gguf-f16"


def quality_rows(records: list[dict]) -> list[dict]:
    rows = []
    for d in records:
        m, backend = d["metrics"], d["details"]["backend"]
        ppl_ci = m.get("ppl_delta_pct_ci95") or [None, None]
        kld_ci = m.get("kld_mean_ci95") or [None, None]
        rows.append({
            "precision": d["precision"], "status": d["status"], "ppl": m.get("ppl"),
            "ppl_delta_pct": m.get("ppl_delta_pct"), "ppl_delta_pct_ci_low": ppl_ci[0],
            "ppl_delta_pct_ci_high": ppl_ci[1], "kld_mean": m.get("kld_mean"),
            "kld_mean_ci_low": kld_ci[0], "kld_mean_ci_high": kld_ci[1],
            "top1_agreement_pct": m.get("top1_agreement_pct"), "n_tokens": m.get("n_tokens"),
            "n_windows": m.get("n_windows"), "model_size_mib": backend.get("model_size_mib"),
            "tensor_types_pct": json.dumps(
                {k: round(v, 2) for k, v in backend.get("tensor_types_pct", {}).items()})})
    return rows


def main(out: Path) -> None:
    order = yaml.safe_load(CONFIG.read_text())["precisions"]
    records = [json.loads((RECORDS / f"{p}.json").read_text()) for p in order]
    pd.DataFrame(quality_rows(records)).to_csv(out / "quality.csv", index=False)
    text = report_text(summary_table(records, REFERENCE), reference=REFERENCE,
                       config=yaml.safe_load(CONFIG.read_text()),
                       imatrix=pd.read_csv("results/imatrix.csv"))
    section = text.split("## Importance matrix", 1)[1].split("\n## ", 1)[0]
    (out / "importance-matrix.md").write_text("## Importance matrix" + section.rstrip() + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
