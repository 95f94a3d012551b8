"""Print the result files of one precision (every model), for `snakemake --forcerun`.

    python tools/precision_targets.py gguf-q8_0 [config/config.yaml]
"""

import sys
from pathlib import Path

import yaml

KINDS = ("latency", "quality", "profile")


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
    print(" ".join(f"results/{m}/{k}/{precision}.json" for m in config["models"] for k in KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
