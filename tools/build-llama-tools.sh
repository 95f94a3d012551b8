#!/bin/bash
# Build llama.cpp's own llama-bench, llama-perplexity, llama-batched-bench, llama-imatrix and
# llama-quantize from the llama-cpp-python sdist that matches the installed library, with the
# same CPU flags as the library (tools/llama-cmake-args.sh). The pipeline's importance matrices
# come from this llama-imatrix (config imatrix.tools); llama-quantize checks, in the tests, that
# quantbench quantizes with an imatrix as llama.cpp's own tool does.
#   bash tools/build-llama-tools.sh [VENV]     -> prints the folder holding the binaries
# The build (about 10 minutes on 2 cores) is kept in ~/.cache/quantbench/llama-tools/<key>.
# EXTRA_CMAKE_ARGS (e.g. "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90") selects a GPU build;
# LCP_SRC points to an unpacked llama-cpp-python source tree (offline machines).
set -euo pipefail
VENV="${1:-.venv}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("llama_cpp_python"))')"
if [ -n "${EXTRA_CMAKE_ARGS:-}" ]; then args="-DGGML_NATIVE=OFF $EXTRA_CMAKE_ARGS"; else args="$(sh "$HERE/tools/llama-cmake-args.sh")"; fi
key="$(echo "$version $args" | md5sum | cut -c1-12)"
OUT="${QUANTBENCH_TOOLS_CACHE:-$HOME/.cache/quantbench/llama-tools}/$key"
tools="llama-bench llama-perplexity llama-batched-bench llama-imatrix llama-quantize"
have=1; for t in $tools; do [ -x "$OUT/$t" ] || have=0; done
if [ "$have" = 1 ]; then echo "$OUT"; exit 0; fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
if [ -n "${LCP_SRC:-}" ]; then src="$LCP_SRC"; else
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version" >&2
  tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
  src="$(ls -d "$work"/llama_cpp_python-*/)"
fi
# shellcheck disable=SC2086
cmake -S "$src/vendor/llama.cpp" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DBUILD_SHARED_LIBS=OFF $args >&2
# shellcheck disable=SC2086
cmake --build "$work/build" -j "$(nproc)" --target $tools >&2
rm -rf "$OUT.partial" && mkdir -p "$OUT.partial"
for t in $tools; do cp "$work/build/bin/$t" "$OUT.partial/"; done
rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
echo "$OUT"
