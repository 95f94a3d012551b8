#!/bin/bash
# On the device machine (see ../shared/gpu/README.md), from the project root:
#   bash tools/gpu/run-matrix.sh [CONFIG] [SECONDS]
# 1) builds the model, its GGUFs and tokens with all cores; 2) runs the measurements one job at
# a time (--cores 1: nothing else competes with the job being measured); stops cleanly after
# SECONDS (a later call on the same warm machine continues the cached DAG); copies what exists
# to $OUT. SECONDS includes the set-up, so a call ends within its limit on a fresh machine too.
# BUILD_TOOLS=1 also builds llama-bench/llama-perplexity (run-validation.sh tools) while the
# preparation runs, and waits for them before measuring (nothing builds meanwhile).
set -uo pipefail
CONFIG="${1:-config/gpu-tinyllama.yaml}"
LIMIT="${2:-480}"
start=$SECONDS  # SECONDS counts the set-up too: a fresh machine's first call spends ~5 min there
source .gpu/setup-device.sh
if [ "${BUILD_TOOLS:-0}" = 1 ]; then
  bash tools/gpu/run-validation.sh tools >/tmp/tools.log 2>&1 &
  tools_pid=$!
fi
# shellcheck disable=SC2206
smk=(snakemake --profile profiles/default --configfile "$CONFIG" --resources gpu=1 ${SMK_EXTRA:-})
prep_left=$((LIMIT - (SECONDS - start)))
[ "$prep_left" -ge 1 ] || prep_left=1  # (timeout 0 would mean no limit at all)
timeout -s INT "$prep_left" "${smk[@]}" --cores "$(nproc)" --until convert_gguf quantize_gguf tokenize_dataset measure_machine >/tmp/prep.log 2>&1
echo "preparation: $((SECONDS - start)) s (exit $?)"; tail -3 /tmp/prep.log
[ -n "${tools_pid:-}" ] && { wait "$tools_pid"; echo "llama tools: exit $? at $((SECONDS - start)) s"; }
left=$((LIMIT - (SECONDS - start)))
[ "$left" -gt 20 ] && timeout -s INT "$left" "${smk[@]}" --cores 1 >/tmp/run.log 2>&1
echo "measurements: exit $?"; grep -E "steps \(|Nothing to be done|Error in rule" /tmp/run.log | tail -5
mkdir -p "$OUT"
cp results/summary.csv results/report.md "$OUT/" 2>/dev/null
tar czf "$OUT/results.tgz" --exclude='*.npz' results logs benchmarks 2>/dev/null
ls results/*/latency 2>/dev/null | tr '\n' ' '; echo
