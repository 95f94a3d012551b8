"""Print the result files of one precision (every model), for `snakemake --forcerun`.

    python tools/precision_targets.py gguf-q8_0 [config/config.yaml]

The models are the config's and those of its model sheet (config key model_sheet).
"""

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from quantbench import modelsheet  # noqa: E402
from quantbench.targets import KINDS  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: precision_targets.py PRECISION [CONFIG]", file=sys.stderr)
        return 2
    precision = argv[0]
    config = yaml.safe_load(Path(argv[1] if len(argv) > 1 else "config/config.yaml").read_text())
    if precision not in config["precisions"]:
        print(f"precision {precision!r} is not in the config; configured: "
              f"{', '.join(config['precisions'])}", file=sys.stderr)
        return 2
    models = config.get("models") or {}
    if config.get("model_sheet"):
        sheet = modelsheet.read(config["model_sheet"],
                                REPO / "workflow" / "schemas" / "models.schema.yaml")
        models = modelsheet.merge(models, sheet, config["model_sheet"])
    print(" ".join(f"results/{m}/{k}/{precision}.json" for m in models for k in KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
