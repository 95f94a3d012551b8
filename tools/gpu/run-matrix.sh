#!/bin/bash
# The GPU matrix on an offline GPU machine, from the project root:
#   bash tools/gpu/run-matrix.sh CONFIG SECONDS OUT WHEELS SRC_TGZ
#   (e.g. config/gpu-tinyllama.yaml 480; WHEELS and SRC_TGZ as for tools/gpu/setup.sh)
# 1) builds the model, its GGUFs and tokens with all cores; 2) runs the measurements one job at
# a time (--cores 1: nothing else competes with the job being measured); stops cleanly after
# SECONDS (a later call on the same warm machine continues the cached DAG); copies what exists
# to OUT. SECONDS includes the set-up, so a call ends within its limit on a fresh machine too.
# BUILD_TOOLS=1 also builds llama-bench/llama-perplexity (run-validation.sh tools) while the
# preparation runs, and waits for them before measuring (nothing builds meanwhile).
set -uo pipefail
[ $# -eq 5 ] || { echo "usage: run-matrix.sh CONFIG SECONDS OUT WHEELS SRC_TGZ" >&2; exit 2; }
CONFIG="$1"; LIMIT="$2"; OUTDIR="$3"; WHEELS="$4"; SRC_TGZ="$5"
start=$SECONDS  # SECONDS counts the set-up too: a fresh machine's first call spends ~5 min there
source tools/gpu/setup.sh "$WHEELS" "$SRC_TGZ"
if [ "${BUILD_TOOLS:-0}" = 1 ]; then
  bash tools/gpu/run-validation.sh tools "$OUTDIR" "$WHEELS" "$SRC_TGZ" >/tmp/tools.log 2>&1 &
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
mkdir -p "$OUTDIR"
cp results/summary.csv results/report.md "$OUTDIR/" 2>/dev/null
tar czf "$OUTDIR/results.tgz" --exclude='*.npz' results logs benchmarks 2>/dev/null
ls results/*/latency 2>/dev/null | tr '\n' ' '; echo
