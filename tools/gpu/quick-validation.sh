#!/bin/bash
# On a fresh offline single-GPU machine, from the project root (about 9 minutes):
#   bash tools/gpu/quick-validation.sh OUT WHEELS SRC_TGZ  [env: ROUNDS=3 REPS=50 GREEDY=device DIAG=1]
# WHEELS: a folder of the Python wheels the machine lacks; SRC_TGZ: the llama-cpp-python source
# archive of the pinned version.
# The llama.cpp fidelity check (decode/prefill vs llama-bench, perplexity vs llama-perplexity)
# and the run-to-run spread (ROUNDS fresh processes) for gguf-f16 and gguf-q4_k_m, with ONE CUDA build
# of llama.cpp: the shared libraries and the two tools are built together, and llama-cpp-python's
# Python package is used from its source tree with LLAMA_CPP_LIB_PATH pointing at that build
# (tools/gpu/setup.sh, which the other scripts use, makes a second, separate build). Tables go
# to OUT; DIAG=1 adds research/diag_decode_gap.py's table (where the decode time goes).
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: quick-validation.sh OUT WHEELS SRC_TGZ" >&2; exit 2; }
OUTDIR="$1"; WHEELS="$2"; SRC_TGZ="$3"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS
mkdir -p /tmp/site "$OUTDIR"
python3 -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
rm -rf /tmp/lcp-src && mkdir -p /tmp/lcp-src && tar xzf "$SRC_TGZ" -C /tmp/lcp-src
SRC="$(ls -d /tmp/lcp-src/llama_cpp_python-*)"
version="${SRC##*-}"
mkdir -p "/tmp/site/llama_cpp_python-$version.dist-info"  # so that its version is known
cp "$SRC/PKG-INFO" "/tmp/site/llama_cpp_python-$version.dist-info/METADATA"
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
export PYTHONPATH="/tmp/site:$SRC:$PWD/src" PATH="/tmp/site/bin:$PATH"
M=resources/models/tinyllama-1.1b-shape
SMK=(snakemake --profile profiles/default --configfile config/gpu-tinyllama.yaml --cores 4)
# the model, its F16 GGUF and the token file need no llama.cpp library: made during the build
"${SMK[@]}" "$M/gguf/f16.gguf" "$M/tokens/file-britannica.npy" >/tmp/prep0.log 2>&1 &
prep=$!
cmake -S "$SRC/vendor/llama.cpp" -B /tmp/lb -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_CUDA=on \
  -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}" >/tmp/cmake.log 2>&1
cmake --build /tmp/lb -j "$(nproc)" --target llama llama-bench llama-perplexity >/tmp/build.log 2>&1 \
  || { tail -20 /tmp/build.log; exit 1; }
lib="$(dirname "$(find /tmp/lb -name 'libllama.so' | head -1)")"
tools="$(dirname "$(find /tmp/lb -name llama-bench -type f | head -1)")"
export LLAMA_CPP_LIB_PATH="$lib"
echo "CUDA build of llama.cpp: $((SECONDS - start)) s"
wait "$prep"; echo "model and F16 GGUF during the build: exit $?"
python3 -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, 'offload', llama_cpp.llama_supports_gpu_offload())"
"${SMK[@]}" "$M/gguf/q4_k_m.gguf" "$M/tokens/file-britannica.npy" >/tmp/prep.log 2>&1 \
  || { tail -20 /tmp/prep.log; exit 1; }
echo "GGUFs: $((SECONDS - start)) s"
# speed: llama-bench and ours (the pipeline's protocol, 10 + ${REPS:-50} runs) alternate in fresh
# processes, ROUNDS times; the CV of ours across those processes is the run-to-run spread
python3 -m quantbench fidelity "$M/gguf/q4_k_m.gguf" "$M/gguf/f16.gguf" \
  --tools "$tools" --ngl 99 --text resources/datasets/britannica.txt --n-prompt 512 --n-gen 64 \
  --warmup 10 --reps "${REPS:-50}" --rounds "${ROUNDS:-3}" --chunks 4 ${GREEDY:+--greedy host $GREEDY} \
  --json "$OUTDIR/fidelity_gpu.json" 2>/tmp/fidelity.err | tee "$OUTDIR/fidelity_gpu.txt"
[ -s "$OUTDIR/fidelity_gpu.json" ] || tail -20 /tmp/fidelity.err
if [ -n "${DIAG:-}" ]; then  # where the decode time goes (interleaved in-process variants)
  for f in q4_k_m f16; do
    python3 -m research.diag_decode_gap "$M/gguf/$f.gguf" --ngl 99 --tools "$tools" 2>/tmp/diag.err \
      || tail -5 /tmp/diag.err
  done | tee "$OUTDIR/decode_gap_gpu.txt"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUTDIR/fidelity_gpu.txt"
echo "total: $((SECONDS - start)) s"
