"""The records a run makes and the names of the short target rules (one per configured
precision and per model).

Kept free of heavy imports: the workflow's rules call it while building the DAG, and
``quantbench targets`` (``main``, for ``make rerun``) prints the records to force.
"""

from __future__ import annotations

import keyword
import re
import shutil

from quantbench import modelsheet, precisions
from quantbench.config import ConfigError, check_config_files
from quantbench.records import source_tree

# The records of every configured precision: results/<model>/<kind>/<precision>.json
KINDS = ("latency", "quality", "gpu")
# The kernel trace (results/<model>/kernels/<precision>.json) of the precisions that run
# through torch (their engine's runs_in_torch), where the config's kernels.enabled asks for it.
# The accuracy record (results/<model>/accuracy/<precision>.json, its items beside it) of every
# precision, where the config names tasks and leaves accuracy.enabled on.
ACCURACY = "accuracy"


def evaluates_tasks(config: dict) -> bool:
    """Whether the run has an accuracy stage: tasks named, ``accuracy.enabled`` left on."""
    return bool(config.get("tasks")) and (config.get("accuracy") or {}).get("enabled", True)


def uses_gpu(device: str) -> bool:
    """Whether the run's jobs use a GPU: device cuda, or auto where nvidia-smi is on the path."""
    return device == "cuda" or (device == "auto" and shutil.which("nvidia-smi") is not None)


def traces_kernels(config: dict, gpu: bool) -> bool:
    """``kernels.enabled``: true, false, or auto (the default) = on where the jobs use a GPU."""
    enabled = (config.get("kernels") or {}).get("enabled", "auto")
    return gpu if enabled == "auto" else bool(enabled)


def traced_precisions(config: dict, table: dict, gpu: bool) -> list[str]:
    """The configured precisions that get a kernel trace (none when the stage is off)."""
    if not traces_kernels(config, gpu):
        return []
    return [p for p in config["precisions"] if table[p].engine.runs_in_torch]


def record_paths(models, precisions, traced=(), accuracy: bool = False) -> list[str]:
    """The records of ``models`` × ``precisions``: every kind of KINDS, the kernel trace of
    those in ``traced``, and the accuracy record where ``accuracy``."""
    return [f"results/{m}/{k}/{p}.json" for m in models for p in precisions
            for k in (*KINDS, *(["kernels"] if p in traced else []),
                      *([ACCURACY] if accuracy else []))]


def rule_names(names, prefix: str = "", what: str = "name", taken=()) -> dict[str, str]:
    """Map each name to a rule name: ``prefix`` + the name with every character that cannot be
    in an identifier ('-', '.') replaced by '_'. Two names that map to the same rule name, or a
    rule name that is already taken, are refused (a target must build one thing only)."""
    owners: dict[str, str] = {}
    for name in names:
        rule = prefix + re.sub(r"\W", "_", name, flags=re.ASCII)
        if not rule.isidentifier() or keyword.iskeyword(rule):
            raise ConfigError(f"{what} {name!r}: its target rule name {rule!r} is not valid")
        if rule in owners:
            raise ConfigError(
                f"{what}s {owners[rule]!r} and {name!r} would both get the target rule "
                f"{rule!r} ('-' and '.' become '_'); rename one"
            )
        if rule in taken:
            raise ConfigError(
                f"{what} {name!r}: its target rule name {rule!r} is already a rule of the workflow"
            )
        owners[rule] = name
    return {name: rule for rule, name in owners.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the result files of one precision and/or one model, for `snakemake --forcerun`.

        quantbench targets [--precision gguf-q8_0] [--model smollm2-135m]
            [--config config/config.yaml]

    At least one of --precision and --model: the records of that precision for every model, of
    every precision for that model, or of that one pair (with the kernel traces where the
    config's kernels.enabled asks for them, as the workflow does). The models are the config's
    and those of its model sheet (config key model_sheet). An unknown name is refused with the
    configured ones.
    """
    import argparse
    import sys
    from pathlib import Path

    import yaml

    repo = source_tree()
    ap = argparse.ArgumentParser(prog="quantbench targets",
                                 description=main.__doc__.splitlines()[0])
    ap.add_argument("--precision")
    ap.add_argument("--model")
    ap.add_argument("--config", type=Path, default=repo / "config" / "config.yaml")
    a = ap.parse_args(argv)
    if not (a.precision or a.model):
        ap.error("name a --precision, a --model or both")
    try:
        check_config_files([a.config])
    except ConfigError as exc:
        print(f"quantbench targets: {exc}", file=sys.stderr)
        return 2
    config = yaml.safe_load(a.config.read_text())
    models = config.get("models") or {}
    if config.get("model_sheet"):
        sheet = modelsheet.read(config["model_sheet"],
                                repo / "workflow" / "schemas" / "models.schema.yaml")
        models = modelsheet.merge(models, sheet, config["model_sheet"])
    for kind, name, known in (("precision", a.precision, config["precisions"]),
                              ("model", a.model, list(models))):
        if name is not None and name not in known:
            print(f"{kind} {name!r} is not in {a.config}; configured: {', '.join(known)}",
                  file=sys.stderr)
            return 2
    chosen_models = [a.model] if a.model else list(models)
    chosen_precisions = [a.precision] if a.precision else config["precisions"]
    traced = traced_precisions(config, precisions.table(),
                               uses_gpu(config.get("device", "auto")))
    print(" ".join(record_paths(chosen_models, chosen_precisions, traced,
                                evaluates_tasks(config))))
    return 0
