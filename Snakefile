"""quantbench: one model, many precisions, one measurement harness."""

import sys
from pathlib import Path

from snakemake.utils import min_version, update_config, validate

min_version("9.0")

# The tested core lives in src/quantbench. Snakemake puts this folder on the path of the
# Snakefile, where the link quantbench points at it; jobs' scripts find it through the link
# workflow/scripts/quantbench (Snakemake puts the scripts' folder on their path). Either way
# this checkout's code builds the DAG and runs the jobs, whichever Python runs Snakemake.
from quantbench import modelsheet
from quantbench.config import check_config_files, check_keys, typed_config_args

# A config given with --configfile replaces the default one instead of being merged into it
# (merging would keep the default model next to the user's). Snakemake has read the files given
# with --configfile before this file runs; the default one is read here, after a check that
# names the line of a syntax error (Snakemake names neither file nor line).
default_config = Path(workflow.basedir) / "config" / "config.yaml"
check_config_files(workflow.overwrite_configfiles or [default_config])
if not workflow.overwrite_configfiles:
    workflow.configfile(str(default_config))
# Snakemake reads a nested --config value (latency={measured_runs: 1}) with YAML's base loader,
# which leaves every scalar a string: each is read again as a config file is.
for given in typed_config_args(workflow.config_settings.config_args):
    update_config(config, given)


check_keys(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
# The model sheet's rows join the config's models before the config is validated as a whole.
if config.get("model_sheet"):
    config["models"] = modelsheet.merge(
        config.get("models"),
        modelsheet.load(
            config["model_sheet"],
            Path(workflow.basedir) / "workflow" / "schemas" / "models.schema.yaml",
        ),
        config["model_sheet"],
    )
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/imatrix.smk"
include: "workflow/rules/onnx.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/accuracy.smk"
include: "workflow/rules/gpu.smk"
include: "workflow/rules/kernels.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report.md",


# The end of a run names every failed measurement, and fails on an error record when asked.
onsuccess:
    reason = qb_outcome.end_of_run(
        RECORDS, fatal=qb_outcome.fail_on_error(config["fail_on_error"])
    )
    if reason:
        raise WorkflowError(reason)


onerror:
    qb_outcome.end_of_run(RECORDS, fatal=False)  # the run fails already
    # an aggregation that refused records of several runs: its message, not only its log's name
    refused = qb_outcome.refusal(AGGREGATE_LOG, start=AGGREGATE_LOG_START)
    if refused:
        print(f"quantbench: {refused}", file=sys.stderr)


# after `all`, the default target; its rule names are checked against the rules above
include: "workflow/rules/targets.smk"
