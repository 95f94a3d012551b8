#!/bin/bash
# On a device machine with several GPUs (kind nvidia-h100-x2), from the project root:
#   bash tools/gpu/run-multigpu.sh prepare   # CUDA build, the model, its GGUFs, the tokens
#   bash tools/gpu/run-multigpu.sh 1         # the GPU matrix with one card  (--resources gpu=1)
#   bash tools/gpu/run-multigpu.sh 2         # the same jobs with two cards  (--resources gpu=2)
# Each run times the whole snakemake call and lists, per job, the card it ran on (NVML UUID),
# other processes seen on that card, and decode tok/s; results go to $OUT/gpu<K>.txt.
set -uo pipefail
CONFIG="${CONFIG:-config/gpu-multi.yaml}"
source .gpu/setup-device.sh
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
    rm -rf results/*/latency results/*/profile
    start=$(date +%s.%N)
    "${smk[@]}" --cores "$k" --resources "gpu=$k" --until benchmark_latency profile_gpu \
      >"/tmp/gpu$k.log" 2>&1
    rc=$?
    wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    mkdir -p "$OUT"
    {
      echo "gpus=$k exit=$rc wall_s=$wall"
      python3 tools/gpu/multigpu_table.py results
    } | tee "$OUT/gpu$k.txt"
    grep -E "steps \(|Error in rule" "/tmp/gpu$k.log" | tail -3 ;;
  *) echo "usage: run-multigpu.sh prepare|1|2" >&2; exit 2 ;;
esac
