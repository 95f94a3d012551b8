#!/bin/bash
# On an offline machine with two GPUs or more, from the project root (WHEELS and SRC_TGZ as
# for tools/gpu/setup.sh; CONFIG=... in the environment, default config/gpu-multi.yaml):
#   bash tools/gpu/run-multigpu.sh prepare OUT WHEELS SRC_TGZ  # CUDA build, model, GGUFs, tokens
#   bash tools/gpu/run-multigpu.sh 1 OUT WHEELS SRC_TGZ  # the GPU matrix with one card (gpu=1)
#   bash tools/gpu/run-multigpu.sh 2 OUT WHEELS SRC_TGZ  # the same jobs with two cards (gpu=2)
# Each run times the whole snakemake call and lists, per job, the card it ran on (NVML UUID),
# other processes seen on that card, and decode tok/s; results go to OUT/gpu<K>.txt.
set -uo pipefail
CONFIG="${CONFIG:-config/gpu-multi.yaml}"
[ $# -eq 4 ] || { echo "usage: run-multigpu.sh prepare|1|2 OUT WHEELS SRC_TGZ" >&2; exit 2; }
OUTDIR="$2"
source tools/gpu/setup.sh "$3" "$4"
nvidia-smi --query-gpu=index,name,uuid --format=csv,noheader
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"
smk=(snakemake --profile profiles/default --configfile "$CONFIG")
case "${1:-}" in
  prepare)
    start=$SECONDS
    "${smk[@]}" --cores "$(nproc)" --until convert_gguf quantize_gguf tokenize_dataset \
      >/tmp/prep.log 2>&1
    echo "prepare: exit $? in $((SECONDS - start)) s"; tail -2 /tmp/prep.log ;;
  1|2)
    k="$1"
    rm -rf results/*/latency results/*/gpu
    start=$(date +%s.%N)
    "${smk[@]}" --cores "$k" --resources "gpu=$k" --until benchmark_latency trace_gpu \
      >"/tmp/gpu$k.log" 2>&1
    rc=$?
    wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    mkdir -p "$OUTDIR"
    {
      echo "gpus=$k exit=$rc wall_s=$wall"
      python3 tools/gpu/multigpu_table.py results
    } | tee "$OUTDIR/gpu$k.txt"
    grep -E "steps \(|Error in rule" "/tmp/gpu$k.log" | tail -3 ;;
  *) echo "usage: run-multigpu.sh prepare|1|2 OUT WHEELS SRC_TGZ" >&2; exit 2 ;;
esac
