#!/bin/bash
# An operating-point sweep on an offline GPU machine, from the project root:
#   bash tools/gpu/run-sweep.sh CONFIG SECONDS OUT WHEELS SRC_TGZ [TARGET ...]
# WHEELS: a folder of the Python wheels the machine lacks (snakemake, plotly, bitsandbytes, ...);
# SRC_TGZ: the llama-cpp-python source archive of the installed version (it holds llama.cpp, its
# converter and gguf-py; the config's converter.source must name where it is unpacked,
# /tmp/lcp-src).
# Once per machine, one CUDA build of llama.cpp makes the library llama-cpp-python loads and
# llama-bench / llama-batched-bench, while the models, their F16 GGUFs and tokens are prepared
# (those the TARGETs need, else all; an 8B shape takes minutes to make); targets of which none is
# a llama.cpp precision's record (gguf-*) skip that build. Then the other GGUFs are made with
# every core and the machine's ceilings are measured, and the measurements run one job at a time
# (nothing competes with the job being measured): without TARGETs, the whole DAG; with them, each
# TARGET alone, in the order given (a record already there is kept), each job's wall time and
# status written to OUT/times.txt. The run stops cleanly after SECONDS, set-up included (a job the
# limit cuts leaves no record; the TARGETs after it are not started); a later call on the same
# machine continues. The records, the summary and the points table are copied to OUT (figures and
# the report are rendered elsewhere with quantbench render: the machine has no browser for PNG
# export).
# BEFORE_MEASURE: a command run after the set-up, before the measurements, with the same
# environment (the CUDA build is made for it: the tools are in /tmp/lb/bin), e.g. quantbench
# fidelity on the GGUFs.
# SMK_EXTRA: more arguments for every snakemake call (e.g. --scheduler greedy where the wheels
# leave out pulp, which the default scheduler solves its problem with).
# SETUP_ONLY=1: stop after the set-up and the machine's ceilings (a later call on the same warm
# machine measures, when set-up and measurements together would not fit one call's time).
# COMPILE_CACHE: an archive of torch.compile's caches (Inductor's and Triton's) from an earlier
# run on the same kind of card and the same torch: unpacked before, written back to
# OUT/compile-cache.tgz after (if under 16 MiB). A compile that finds its graph there takes
# seconds instead of minutes: the record counts the cache's hits (compile_log) and the report
# names every compile time that came from a warm cache.
set -uo pipefail
CONFIG="$1"; LIMIT="$2"; OUTDIR="$3"; WHEELS="$4"; SRC_TGZ="$5"; shift 5
start=$SECONDS
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export TORCHINDUCTOR_CACHE_DIR=/tmp/qb-compile-cache/inductor TRITON_CACHE_DIR=/tmp/qb-compile-cache/triton
mkdir -p /tmp/site "$OUTDIR" /tmp/qb-compile-cache
if [ -n "${COMPILE_CACHE:-}" ] && [ -f "$COMPILE_CACHE" ] && [ ! -f /tmp/qb-compile-cache/.unpacked ]; then
  tar xzf "$COMPILE_CACHE" -C /tmp/qb-compile-cache && touch /tmp/qb-compile-cache/.unpacked
fi
if [ ! -f /tmp/site/.quantbench-wheels ]; then
  python3 -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl && touch /tmp/site/.quantbench-wheels
  rm -rf /tmp/lcp-src && mkdir -p /tmp/lcp-src && tar xzf "$SRC_TGZ" -C /tmp/lcp-src
fi
SRC="$(ls -d /tmp/lcp-src/llama_cpp_python-*)"
version="${SRC##*-}"
mkdir -p "/tmp/site/llama_cpp_python-$version.dist-info"  # so that its version is known
cp "$SRC/PKG-INFO" "/tmp/site/llama_cpp_python-$version.dist-info/METADATA"
# the source's llama_cpp package first, with the library built below: a llama_cpp left in
# /tmp/site by another set-up on this machine carries its own ggml, and mixing the two crashes
export PYTHONPATH="$SRC:/tmp/site:$SRC/vendor/llama.cpp/gguf-py:$PWD/src" PATH="/tmp/site/bin:$PATH"
SMK=(snakemake --profile profiles/default --configfile "$CONFIG" --resources gpu=1 ${SMK_EXTRA:-})
# the set-up makes what the targets need (and the machine's ceilings); without targets, all of it
PREP=()
[ "$#" -gt 0 ] && PREP=(results/machine.json "$@")
# the CUDA build of llama.cpp, unless no target is a llama.cpp precision's record and there is
# no BEFORE_MEASURE (which may run llama.cpp's tools or the library)
build=1
if [ "$#" -gt 0 ] && [ -z "${BEFORE_MEASURE:-}" ]; then
  build=0; for t in "$@"; do case "$t" in *gguf-*) build=1 ;; esac; done
fi
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
  --until quantize_gguf >/tmp/prep.log 2>&1
echo "GGUFs: exit $? at $((SECONDS - start)) s"
# the ceilings are timed: alone, after the GGUFs
left=$((LIMIT - (SECONDS - start)))
[ "$left" -gt 10 ] && timeout -s INT "$left" "${SMK[@]}" --cores 1 results/machine.json \
  >>/tmp/prep.log 2>&1
echo "the machine's ceilings: exit $? at $((SECONDS - start)) s"
if [ -n "${BEFORE_MEASURE:-}" ]; then
  left=$((LIMIT - (SECONDS - start)))
  [ "$left" -gt 10 ] && timeout -s KILL "$left" bash -c "$BEFORE_MEASURE"
  echo "BEFORE_MEASURE: exit $? at $((SECONDS - start)) s"
fi
if [ -n "${SETUP_ONLY:-}" ]; then
  echo "set-up only: $((SECONDS - start)) s"; ls resources/*/gguf 2>/dev/null | tr '\n' ' '; echo
  cp results/machine.json "$OUTDIR/" 2>/dev/null
  exit 0
fi
if [ "$#" -eq 0 ]; then
  left=$((LIMIT - (SECONDS - start)))
  [ "$left" -gt 20 ] && timeout -s KILL "$left" "${SMK[@]}" --cores 1 >/tmp/run.log 2>&1
  echo "measurements: exit $? at $((SECONDS - start)) s"
else
  for t in "$@"; do
    left=$((LIMIT - (SECONDS - start)))
    [ "$left" -gt 20 ] || { echo "$t: not started ($left s left)" | tee -a "$OUTDIR/times.txt"; continue; }
    t0=$SECONDS
    timeout -s INT "$left" "${SMK[@]}" --cores 1 "$t" >>/tmp/run.log 2>&1
    rc=$?
    status="$(python3 - "$t" <<'PY' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
print(d.get("status"), (d.get("reason") or "")[:200])
PY
)"
    echo "$t: exit $rc, $((SECONDS - t0)) s, ${status:-no record}" | tee -a "$OUTDIR/times.txt"
    case "$rc" in 124|130|137) break ;; esac  # cut by the limit: the rest would be too
  done
fi
grep -E "steps \(|Nothing to be done|Error in rule|did not succeed|^  " /tmp/run.log | tail -12
cp results/summary.csv results/points.csv "$OUTDIR/" 2>/dev/null
tar czf "$OUTDIR/results.tgz" --exclude='*.npz' results logs benchmarks 2>/dev/null
if [ -n "$(ls /tmp/qb-compile-cache 2>/dev/null)" ]; then
  tar czf /tmp/compile-cache.tgz --exclude=.unpacked -C /tmp/qb-compile-cache .
  if [ "$(stat -c %s /tmp/compile-cache.tgz)" -lt $((16 * 1024 * 1024)) ]; then
    cp /tmp/compile-cache.tgz "$OUTDIR/"
  else
    echo "compile cache: $(du -h /tmp/compile-cache.tgz | cut -f1), not copied"
  fi
fi
ls results/*/latency 2>/dev/null | tr '\n' ' '; echo
