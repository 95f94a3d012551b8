#!/bin/bash
# An operating-point sweep on an offline GPU machine, from the project root:
#   bash tools/gpu/run-sweep.sh CONFIG SECONDS OUT WHEELS SRC_TGZ [TARGET ...]
# WHEELS: a folder of the Python wheels the machine lacks (snakemake, plotly, bitsandbytes, ...);
# SRC_TGZ: the llama-cpp-python source archive of the installed version (it holds llama.cpp and
# its converter; the config's converter.source must name where it is unpacked, /tmp/lcp-src).
# Once per machine, one CUDA build of llama.cpp makes the library llama-cpp-python loads and
# llama-bench / llama-batched-bench, while the models, their F16 GGUFs and tokens are prepared
# (those the TARGETs need, else all; an 8B shape takes minutes to make); targets of which none is
# a llama.cpp precision's record (gguf-*) skip that build. Then the other GGUFs
# are made with every core, and the measurements run one job at a time
# (nothing competes with the job being measured). The run stops cleanly after SECONDS, set-up
# included; a later call on the same machine continues the DAG. The records, the summary and the
# points table are copied to OUT (figures and the report are rendered elsewhere with
# quantbench render: the machine has no browser for PNG export).
set -uo pipefail
CONFIG="$1"; LIMIT="$2"; OUTDIR="$3"; WHEELS="$4"; SRC_TGZ="$5"; shift 5
start=$SECONDS
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p /tmp/site "$OUTDIR"
if [ ! -f /tmp/site/.quantbench-wheels ]; then
  python3 -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl && touch /tmp/site/.quantbench-wheels
  rm -rf /tmp/lcp-src && mkdir -p /tmp/lcp-src && tar xzf "$SRC_TGZ" -C /tmp/lcp-src
fi
SRC="$(ls -d /tmp/lcp-src/llama_cpp_python-*)"
version="${SRC##*-}"
mkdir -p "/tmp/site/llama_cpp_python-$version.dist-info"  # so that its version is known
cp "$SRC/PKG-INFO" "/tmp/site/llama_cpp_python-$version.dist-info/METADATA"
export PYTHONPATH="/tmp/site:$SRC:$PWD/src" PATH="/tmp/site/bin:$PATH"
SMK=(snakemake --profile profiles/default --configfile "$CONFIG" --resources gpu=1)
# the set-up makes what the targets need (and the machine's ceilings); without targets, all of it
PREP=()
[ "$#" -gt 0 ] && PREP=(results/machine.json "$@")
# the CUDA build of llama.cpp, unless no target is a llama.cpp precision's record
build=1
if [ "$#" -gt 0 ]; then build=0; for t in "$@"; do case "$t" in *gguf-*) build=1 ;; esac; done; fi
if [ "$build" = 0 ] && [ ! -x /tmp/lb/bin/llama-batched-bench ]; then
  timeout -s INT "$LIMIT" "${SMK[@]}" --cores "$(nproc)" "${PREP[@]}" \
    --until convert_gguf tokenize_dataset >/tmp/prep0.log 2>&1
  echo "models, F16 GGUFs, tokens (no llama.cpp build): exit $? at $((SECONDS - start)) s"
  tail -2 /tmp/prep0.log
elif [ ! -x /tmp/lb/bin/llama-batched-bench ]; then
  "${SMK[@]}" --cores "$(nproc)" "${PREP[@]}" --until convert_gguf tokenize_dataset \
    >/tmp/prep0.log 2>&1 &
  prep=$!
  arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
  cmake -S "$SRC/vendor/llama.cpp" -B /tmp/lb -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_CUDA=on \
    -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}" >/tmp/cmake.log 2>&1
  cmake --build /tmp/lb -j "$(nproc)" --target llama llama-bench llama-batched-bench \
    >/tmp/build.log 2>&1 || { tail -20 /tmp/build.log; exit 1; }
  echo "CUDA build of llama.cpp: $((SECONDS - start)) s"
  wait "$prep"; echo "models, F16 GGUFs, tokens: exit $? at $((SECONDS - start)) s"
  tail -2 /tmp/prep0.log
fi
lib="$(find /tmp/lb -name 'libllama.so' 2>/dev/null | head -1)"
[ -n "$lib" ] && export LLAMA_CPP_LIB_PATH="$(dirname "$lib")"
left=$((LIMIT - (SECONDS - start)))
[ "$left" -gt 10 ] && timeout -s INT "$left" "${SMK[@]}" --cores "$(nproc)" "${PREP[@]}" \
  --until quantize_gguf measure_machine >/tmp/prep.log 2>&1
echo "GGUFs and the machine's ceilings: exit $? at $((SECONDS - start)) s"
left=$((LIMIT - (SECONDS - start)))
[ "$left" -gt 20 ] && timeout -s KILL "$left" "${SMK[@]}" --cores 1 "$@" >/tmp/run.log 2>&1
echo "measurements: exit $? at $((SECONDS - start)) s"
grep -E "steps \(|Nothing to be done|Error in rule|did not succeed|^  " /tmp/run.log | tail -12
cp results/summary.csv results/points.csv "$OUTDIR/" 2>/dev/null
tar czf "$OUTDIR/results.tgz" --exclude='*.npz' results logs benchmarks 2>/dev/null
ls results/*/latency 2>/dev/null | tr '\n' ' '; echo
