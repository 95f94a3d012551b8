"""Print the result files of one precision and/or one model, for `snakemake --forcerun`.

    python tools/precision_targets.py [--precision gguf-q8_0] [--model smollm2-135m]
        [--config config/config.yaml]

At least one of --precision and --model: the records of that precision for every model, of every
precision for that model, or of that one pair (with the kernel traces where the config's
kernels.enabled asks for them, as the workflow does). The models are the config's and those of its
model sheet (config key model_sheet). An unknown name is refused with the configured ones.
"""

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from quantbench import modelsheet, precisions  # noqa: E402
from quantbench.targets import record_paths, traced_precisions, uses_gpu  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision")
    ap.add_argument("--model")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    a = ap.parse_args(argv)
    if not (a.precision or a.model):
        ap.error("name a --precision, a --model or both")
    config = yaml.safe_load(a.config.read_text())
    models = config.get("models") or {}
    if config.get("model_sheet"):
        sheet = modelsheet.read(config["model_sheet"],
                                REPO / "workflow" / "schemas" / "models.schema.yaml")
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
    print(" ".join(record_paths(chosen_models, chosen_precisions, traced)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
