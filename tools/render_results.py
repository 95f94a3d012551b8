"""Draw the figures and the report again from a finished results folder (e.g. one brought back
from the GPU machine, which has no browser for PNG export).

    python tools/render_results.py RESULTS_DIR --config CONFIG [--out OUT_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from quantbench.config import reference_precision  # noqa: E402
from quantbench.plots import plot_all  # noqa: E402
from quantbench.report import render_report  # noqa: E402

FIGURES = ("perplexity", "decode_throughput", "memory")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    out = a.out or a.results
    (out / "figures").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(a.config.read_text())
    for key, default in (("dataset", {"name": "britannica"}),
                         ("perplexity", {"mode": "llama.cpp", "context_length": 512,
                                         "max_windows": 8})):
        config.setdefault(key, default)
    summary = a.results / "summary.csv"
    html = [out / "figures" / f"{f}.html" for f in FIGURES]
    png = [out / "figures" / f"{f}.png" for f in FIGURES]
    plot_all(summary, html=html, png=png)
    quality = sorted(a.results.glob("*/quality/*.json"))
    render_report(summary, png, quality, [], reference=reference_precision(config),
                  config=config, out=out / "report.md", machine_path=a.results / "machine.json")
    print(f"wrote {out / 'report.md'} and {len(png)} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
