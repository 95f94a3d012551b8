#!/bin/bash
# On an offline GPU machine, from the project root (WHEELS and SRC_TGZ as for
# tools/gpu/setup.sh):
#   bash tools/gpu/run-validation.sh prepare OUT WHEELS SRC_TGZ  # CUDA builds, model, GGUFs
#   bash tools/gpu/run-validation.sh tools OUT WHEELS SRC_TGZ    # only the CUDA llama.cpp tools
#   bash tools/gpu/run-validation.sh measure OUT WHEELS SRC_TGZ  # llama-bench / llama-perplexity
#                                       # fidelity and decode spread across 3 fresh processes
# Results (tables) go to OUT.
set -uo pipefail
CONFIG=config/gpu-tinyllama.yaml
MODEL=resources/models/tinyllama-1.1b-shape
[ $# -eq 4 ] || { echo "usage: run-validation.sh prepare|tools|measure OUT WHEELS SRC_TGZ" >&2; exit 2; }
OUTDIR="$2"
source tools/gpu/setup.sh "$3" "$4"
export EXTRA_CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
PY="$(dirname "$(command -v python3)")/.."
case "${1:-}" in
  prepare)
    # llama.cpp's tools build while the model and its GGUFs are made
    bash tools/build-llama-tools.sh "$PY" >/tmp/tools.out 2>/tmp/tools.log &
    snakemake --profile profiles/default --configfile "$CONFIG" --cores "$(nproc)" \
      --until convert_gguf quantize_gguf tokenize_dataset >/tmp/prep.log 2>&1
    echo "prepare: exit $?"; tail -2 /tmp/prep.log
    wait; tail -1 /tmp/tools.out ;;
  tools)
    bash tools/build-llama-tools.sh "$PY" ;;
  measure)
    tools="$(bash tools/build-llama-tools.sh "$PY" 2>/dev/null | tail -1)"
    mkdir -p "$OUTDIR"
    python3 -m quantbench fidelity --tools "$tools" --ngl 99 \
      --text resources/datasets/britannica.txt --n-prompt 512 --n-gen 64 --reps 5 --chunks 4 \
      --memory-hz 0 20 100 \
      --json "$OUTDIR/fidelity_gpu.json" "$MODEL"/gguf/{f16,q8_0,q4_k_m}.gguf 2>/dev/null \
      | tee "$OUTDIR/fidelity_gpu.txt"
    for p in gguf-q4_k_m:gguf/q4_k_m.gguf gguf-f16:gguf/f16.gguf bf16-compiled:hf bf16:hf; do
      python3 -m quantbench repeatability "${p%%:*}" "$MODEL/${p#*:}" \
        "$MODEL/tokens/file-britannica.npy" --processes 3 --device cuda 2>/dev/null
    done | tee "$OUTDIR/repeatability_gpu.txt" ;;
  *) echo "usage: run-validation.sh prepare|tools|measure OUT WHEELS SRC_TGZ" >&2; exit 2 ;;
esac
