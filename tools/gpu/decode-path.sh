#!/usr/bin/env bash
# Each precision on its decode path against the measured decode limit, on one GPU:
#   bash tools/gpu/decode-path.sh OUT [BATCH ...]        (default batches: 1 16)
# For random weights of TinyLlama-1.1B's and Llama-3-8B's shapes (bf16): the decode limit
# (quantbench.scenarios.limit: the weight products alone, one CUDA graph), then per precision
# (PRECISIONS, default bf16-compiled) quantbench's latency job (prompt 512, 32 new tokens,
# 2 + 3 runs, every batch, GPU energy over decode), its kernel trace at batch 1 (8 decode
# steps and one prefill) and, for a compiled precision, a profiler trace of 8 decode steps at
# batch 1 read replay by replay (tools/gpu/decode_path.py). One process per part: one JSON per
# model and precision, and a table last, in OUT. A study: one process a point, no interval.
# Needs torch and transformers (the machine's own); where an import fails, the wheels in
# WHEELS (default .gpu/wheels: torchao's and bitsandbytes' for those precisions, for a machine
# without a package index) are installed into /tmp/site, without any llama.cpp build.
# DEVICE=cpu with MODELS=tiny-shape tries the script on a CPU.
# Time on an H100 (cold compile cache; a warm one, kept in /tmp/qb-compile-cache or passed as
# COMPILE_CACHE=archive, saves most of the compiles): per model, weights drawn on the GPU and
# saved to /dev/shm (1.1B: ~10 s, 8B: ~40 s; kept for a later run with KEEP_WEIGHTS=1), the
# limit (~5 s); per precision the latency job (load, one compile per batch size: bf16-compiled
# at 1.1B ~60 s, at 8B ~90 s cold), the kernel trace and the replay trace (each a load and a
# compile that finds the first one's graphs: ~20-40 s; the replay trace only for the precisions
# of REPLAYS, default bf16-compiled). Every part is under `timeout` (PART_S, default 300 s); a
# failed precision is reported and the next one runs. MODELS: the shapes. BUDGET_S: seconds
# the whole script may take; a part gets what is left of them, and none starts with less than
# MIN_S (default 90) left: it is reported as skipped.
set -euo pipefail
out=$1
shift
batches="${*:-1 16}"
cd "$(dirname "$0")/../.."
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export TORCHINDUCTOR_CACHE_DIR=/tmp/qb-compile-cache/inductor
export TRITON_CACHE_DIR=/tmp/qb-compile-cache/triton
mkdir -p /tmp/qb-compile-cache
if [ -n "${COMPILE_CACHE:-}" ] && [ -f "$COMPILE_CACHE" ] && [ ! -f /tmp/qb-compile-cache/.unpacked ]; then
  tar xzf "$COMPILE_CACHE" -C /tmp/qb-compile-cache && touch /tmp/qb-compile-cache/.unpacked
fi
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
precisions="${PRECISIONS:-bf16-compiled}"
check='import torch, transformers, yaml, numpy, pynvml, quantbench.scenarios.latency'
case "$precisions" in *torchao*) check="$check, torchao" ;; esac
case "$precisions" in *bnb*) check="$check, bitsandbytes" ;; esac
wheels="${WHEELS:-.gpu/wheels}"
if ! python3 -c "$check" 2>/dev/null; then
  [ -d "$wheels" ] || { echo "missing packages and no wheels in $wheels:"; python3 -c "$check"; exit 1; }
  python3 -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$wheels"/*.whl
  python3 -c "$check"
fi
[ "${DEVICE:-cuda}" != cuda ] || python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"'
start=$SECONDS
# weights where reading them back is fastest: /dev/shm if it has room for the 8B model
store=/dev/shm/qb-decode-path
if [ "$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -d ' ')" -lt 40 ] 2>/dev/null; then
  store=/tmp/qb-decode-path
fi
part() {  # part LOG ARGS...: one part in a process of its own, under its time limit
  local log=$1 t0=$SECONDS limit=${PART_S:-300}
  shift
  if [ -n "${BUDGET_S:-}" ]; then
    local left=$((BUDGET_S - (SECONDS - start)))
    if [ "$left" -lt "${MIN_S:-90}" ]; then echo "skipped (${left} s left): $*"; return 1; fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  if PART_S=$limit timeout -k 15 "$limit" python3 tools/gpu/decode_path.py "$@" >"$log" 2>&1; then
    echo "$*: $((SECONDS - t0)) s"
  else
    echo "FAILED ($?): $* after $((SECONDS - t0)) s; the end of its log:"
    tail -15 "$log"
    return 1
  fi
}
for model in ${MODELS:-tinyllama-1.1b-shape llama-3-8b-shape}; do
  part "$out/$model.prepare.log" prepare "$model" "$store" "$out" $batches || exit 1
  for precision in $precisions; do
    part "$out/$model.$precision.log" measure "$model" "$precision" "$store" "$out" $batches || true
  done
done
if [ -z "${KEEP_WEIGHTS:-}" ]; then rm -rf "$store"; fi
tar czf /tmp/compile-cache.tgz -C /tmp/qb-compile-cache inductor triton 2>/dev/null \
  && [ "$(stat -c %s /tmp/compile-cache.tgz)" -lt 16000000 ] \
  && cp /tmp/compile-cache.tgz "$out/compile-cache.tgz" || true
python3 tools/gpu/decode_path.py table "$out"
echo "total: $((SECONDS - start)) s"
