#!/usr/bin/env bash
# The decode limit (quantbench.scenarios.limit) of every model of a config on this machine's GPU,
# without the rest of the pipeline (only torch and transformers are needed): one JSON per model
# and a table last.   usage: [DEVICE=cpu] bash tools/gpu/decode-limit.sh CONFIG OUT_DIR [BATCH ...]
set -euo pipefail
config=$1 out=$2
shift 2
batches="${*:-1 4 16 64}"
cd "$(dirname "$0")/../.."
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 python3 - "$config" "$out" \
  $batches <<'PY'
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from quantbench.artifacts.model import random_llama_config
from quantbench.scenarios.limit import measure_decode_limit

config, out, batches = sys.argv[1], Path(sys.argv[2]), [int(b) for b in sys.argv[3:]]
rows = []
for name, spec in yaml.safe_load(Path(config).read_text())["models"].items():
    if spec.get("source") != "random":
        continue  # a real model's folder is made by the pipeline; its shape is what counts
    with tempfile.TemporaryDirectory() as tmp:
        random_llama_config(spec).save_pretrained(tmp)
        result = measure_decode_limit(tmp, batch_sizes=batches,
                                      device=os.environ.get("DEVICE", "cuda"))
    (out / f"limit_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows += [(name, p) for p in result["points"]]
print(f"{'model':<24}{'batch':>6}{'step ms':>10}{'tok/s':>11}{'GB/s':>9}")
for name, p in rows:
    print(f"{name:<24}{p['batch_size']:>6}{p['step_ms']:>10.3f}{p['tok_s']:>11.1f}"
          f"{p['gb_s']:>9.1f}")
PY
