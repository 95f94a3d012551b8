"""Aggregate, plot and report again from a finished results folder (e.g. one brought back from
the GPU machine, which has no browser for PNG export), with this checkout's code.

    quantbench render RESULTS_DIR --config CONFIG [--out OUT_DIR]

The records (RESULTS_DIR/<model>/{latency,quality,gpu,kernels,accuracy}/*.json, an accuracy
record's items beside it), RESULTS_DIR/machine.json and, where there is one,
RESULTS_DIR/imatrix.csv are read; summary.csv, points.csv, kernels.csv, accuracy.csv,
metrics.{csv,parquet}, the figures and report.md are written to OUT_DIR (default RESULTS_DIR),
in the workflow's order of precisions (the config's). The models' folders
(resources/models/<model>/hf) are used when they are here; a random-weights model's shape and
description are rebuilt from the config without weights.
Records of another commit, a modified tree or another machine than the newest record's are
refused, naming them, before anything is written, unless the config sets
report.allow_mixed_runs: true.

    quantbench render FOLDER --config CONFIG --tables

A folder that keeps the tables and not the records (an example under docs/examples): the figures
and report.md are made again from its summary.csv, points.csv, kernels.csv, imatrix.csv and
machine.json. What only the records hold is then not in the report (the generations, the
records' provenance); the GPU time series already in FOLDER/figures are kept (copied to
OUT_DIR/figures) and linked as they are.

Either way OUT_DIR/figures gets the figures that have data, and its index.json lists them and
why each other one was not drawn; report.md links those, and only those.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from quantbench import config as qb_config
from quantbench.artifacts.manifest import MODEL_JSON
from quantbench.artifacts.model import describe, random_llama_config, random_model_info
from quantbench.errors import ConfigError
from quantbench.figures import timeseries_name
from quantbench.records import source_tree
from quantbench.report.aggregate import aggregate
from quantbench.report.markdown import render_report
from quantbench.report.plots import plot_all
from quantbench.runs import MixedRunsError
from quantbench.targets import ACCURACY, KINDS

REPO = source_tree()


def model_dirs(config: dict, scratch: Path) -> list[Path]:
    dirs = []
    for name, spec in config["models"].items():
        here = REPO / "resources" / "models" / name / "hf"
        if (here / "config.json").is_file():
            dirs.append(here)
        elif spec.get("source") == "random":
            d = scratch / name / "hf"
            random_llama_config(spec).save_pretrained(d)
            info = {**random_model_info(spec), **describe(d), "source": "random"}
            (d / MODEL_JSON).write_text(json.dumps(info, indent=2))
            dirs.append(d)
    return dirs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="quantbench render", description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--tables", action="store_true",
                    help="plot and report from the folder's tables (it keeps no records)")
    a = ap.parse_args(argv)
    out = a.out or a.results
    try:
        qb_config.check_config_files([a.config])
    except ConfigError as exc:
        raise SystemExit(f"quantbench render: {exc}") from None
    config = yaml.safe_load(a.config.read_text())
    from snakemake.utils import validate

    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # + defaults
    reference = qb_config.reference_precision(config)
    if a.tables:
        return from_tables(a.results, out, config, reference, a.config)
    # in the workflow's order (each kind's records by model, then in the config's order of
    # precisions), so that the tables and the report list them as the run's own do
    order = {name: i for i, name in enumerate(config["precisions"])}
    records = [p for kind in (*KINDS, "kernels", ACCURACY)
               for p in sorted(a.results.glob(f"*/{kind}/*.json"),
                               key=lambda p: (p.parent.parent.name, order.get(p.stem, len(order)),
                                              p.stem))]
    gpu_traces = sorted(a.results.glob("*/gpu/*.json"))
    imatrix = a.results / "imatrix.csv"
    machine = a.results / "machine.json"
    with tempfile.TemporaryDirectory() as tmp:
        dirs = model_dirs(config, Path(tmp))
        try:  # records of several runs are refused before any table is written
            aggregate(records, reference=reference, summary_path=out / "summary.csv",
                      metrics_path=out / "metrics.csv", parquet_path=out / "metrics.parquet",
                      points_path=out / "points.csv", kernels_path=out / "kernels.csv",
                      model_dirs=dirs, machine_path=machine,
                      limit_paths=sorted(a.results.glob("*/limit.json")),
                      allow_mixed_runs=config["report"]["allow_mixed_runs"],
                      accuracy_path=out / "accuracy.csv")
        except MixedRunsError as exc:
            raise SystemExit(f"quantbench render: {exc}") from None
        index = plot_all(out / "summary.csv", out / "figures", machine_path=machine,
                         gpu_trace_paths=gpu_traces, reference=reference,
                         points_path=out / "points.csv", model_dirs=dirs,
                         report=config["report"])
        quality = sorted(a.results.glob("*/quality/*.json"))
        render_report(out / "summary.csv", out / "figures", quality, dirs, reference=reference,
                      config=config, out=out / "report.md", machine_path=machine,
                      configfiles=[str(a.config)], points_path=out / "points.csv",
                      kernels_path=out / "kernels.csv",
                      imatrix_path=imatrix if imatrix.is_file() else None,
                      points_out=out / "points.md")
    print(f"wrote {out / 'report.md'} and {len(index['made'])} figures "
          f"({len(index['not_made'])} not drawn: no data or one value on the x axis)")
    return 0


def from_tables(folder: Path, out: Path, config: dict, reference: str, configfile: Path) -> int:
    tables = {name: folder / f"{name}.csv" for name in ("summary", "points", "kernels", "imatrix")}
    if not tables["summary"].is_file():
        raise SystemExit(f"quantbench render --tables: {tables['summary']} does not exist")
    machine = folder / "machine.json"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = model_dirs(config, Path(tmp))
        kept = sorted((folder / "figures").glob(timeseries_name("*", "*") + ".png"))
        index = plot_all(tables["summary"], out / "figures",
                         machine_path=machine if machine.is_file() else None,
                         reference=reference, points_path=tables["points"], model_dirs=dirs,
                         report=config["report"], kept=kept)
        render_report(tables["summary"], out / "figures", [], dirs, reference=reference,
                      config=config, out=out / "report.md",
                      machine_path=machine if machine.is_file() else None,
                      configfiles=[str(configfile)], points_path=tables["points"],
                      kernels_path=tables["kernels"],
                      imatrix_path=tables["imatrix"] if tables["imatrix"].is_file() else None,
                      points_out=out / "points.md")
    print(f"wrote {out / 'report.md'} and {len(index['made'])} figures from the tables of "
          f"{folder} ({len(index['not_made'])} not drawn: no data or one value on the x axis)")
    return 0
