#!/usr/bin/env bash
# The compiled transformers decode path against the measured decode limit, on one GPU:
#   bash tools/gpu/decode-path.sh OUT [BATCH ...]        (default batches: 1 16)
# For random weights of TinyLlama-1.1B's and Llama-3-8B's shapes (bf16): the decode limit
# (quantbench.scenarios.limit: the weight products alone, one CUDA graph), quantbench's
# bf16-compiled latency job (run_latency: prompt 512, 64 new tokens, 2 + 5 runs, every batch)
# and a torch profiler trace of 8 decode steps at batch 1 (one decode_run): the gap on the GPU
# between one step's graph replay and the next, the kernels' busy time inside a replay and the
# host's time per replay. One JSON per model and a table last, in OUT.
# Needs only torch and transformers (the machine's own); where an import fails, the `.gpu`
# pack's wheels (../shared/gpu/pack.sh) are installed into /tmp/site, without the llama.cpp
# build of setup-device.sh.
# Time on an H100 (cold compile cache; a warm one, kept in /tmp/qb-compile-cache or passed as
# COMPILE_CACHE=archive, saves most of the compiles): per model, weights drawn on the GPU and
# saved to /dev/shm (1.1B: ~10 s, 8B: ~40 s), the limit (~5 s), the latency job (load, one
# compile per batch size: 1.1B ~60 s, 8B ~90 s cold; the timed runs take seconds), the profiled
# run (a second load; its compile finds the first one's graphs: ~20-40 s). About 4-5 minutes
# in all cold; every part is under `timeout` (PART_S, default 240 s a model) and a failure
# stops the script with the part's log tail. MODELS: the shapes to run (default both).
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
check='import torch, transformers, yaml, numpy, pynvml, quantbench.scenarios.latency'
if ! python3 -c "$check" 2>/dev/null; then
  [ -d .gpu/wheels ] || { echo "missing packages and no .gpu pack:"; python3 -c "$check"; exit 1; }
  python3 -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/wheels/*.whl
  python3 -c "$check"
fi
python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"'
# weights where reading them back is fastest: /dev/shm if it has room for the 8B model
store=/dev/shm/qb-decode-path
if [ "$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -d ' ')" -lt 40 ] 2>/dev/null; then
  store=/tmp/qb-decode-path
fi
start=$SECONDS
for model in ${MODELS:-tinyllama-1.1b-shape llama-3-8b-shape}; do
  t0=$SECONDS
  if ! timeout -k 15 "${PART_S:-240}" python3 - "$model" "$store" "$out" $batches \
      >"$out/$model.log" 2>&1 <<'PY'
import faulthandler
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from quantbench import precisions
from quantbench.artifacts.model import random_llama_config
from quantbench.backends import load_backend
from quantbench.scenarios.limit import measure_decode_limit
from quantbench.scenarios.latency import run_latency

faulthandler.dump_traceback_later(int(os.environ.get("PART_S", "240")) - 10, exit=False)
SHAPES = {  # config/gpu-hopper.yaml's
    "tinyllama-1.1b-shape": dict(hidden_size=2048, num_layers=22, num_heads=32, num_kv_heads=4,
                                 intermediate_size=5632, vocab_size=32000),
    "llama-3-8b-shape": dict(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8,
                             intermediate_size=14336, vocab_size=128256),
}
PROMPT, NEW, PROFILED = 512, 64, 8
name, store, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
batches = [int(b) for b in sys.argv[4:]]
spec = {"source": "random", "architecture": "llama", "max_position_embeddings": 8192,
        **SHAPES[name]}
folder = store / name
if not (folder / "model.safetensors.index.json").is_file() and not (
        folder / "model.safetensors").is_file():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # drawn in bf16 on the GPU: seconds, no fp32 copy
    with torch.device("cuda"):
        model = LlamaForCausalLM(random_llama_config(spec))
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    print(f"weights saved to {folder}", flush=True)
tokens = folder / "tokens.npy"
np.save(tokens, np.random.default_rng(0).integers(3, spec["vocab_size"], 4096))

limit = measure_decode_limit(folder, batch_sizes=batches, device="cuda")
print(json.dumps(limit["points"]), flush=True)
rec = run_latency(name, "bf16-compiled", folder, tokens, prompt_tokens=[PROMPT],
                  new_tokens=NEW, warmup_runs=2, measured_runs=5, batch_sizes=batches,
                  device="cuda", threads=4, energy_s=0)
if rec.status != "ok":
    sys.exit(f"bf16-compiled latency: {rec.status}: {rec.reason}")
points = {p["batch_size"]: p for p in rec.details["points"]}
print(json.dumps(rec.details["backend"].get("compile_log")), flush=True)


def replays(trace: dict) -> dict:
    """The GPU work of each graph replay (grouped by the launch's correlation id) and the
    host's graph launches, from a chrome trace."""
    events = trace["traceEvents"]
    launches = sorted((e["ts"], e.get("dur", 0), e["args"]["correlation"]) for e in events
                      if str(e.get("name", "")).startswith("cudaGraphLaunch") and "args" in e)
    ids = {c for _, _, c in launches}
    spans: dict[int, list] = {}
    for e in events:
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and \
                e.get("args", {}).get("correlation") in ids:
            s = spans.setdefault(e["args"]["correlation"], [float("inf"), 0.0, 0.0, 0])
            s[0] = min(s[0], e["ts"])
            s[1] = max(s[1], e["ts"] + e["dur"])
            s[2] += e["dur"]
            s[3] += 1
    steps = [spans[c] for _, _, c in launches if c in spans]
    gaps = [b[0] - a[1] for a, b in zip(steps, steps[1:])]
    host = [b[0] - a[0] for a, b in zip(launches, launches[1:])]
    return {"replays": len(steps), "span_us": [s[1] - s[0] for s in steps],
            "busy_us": [s[2] for s in steps], "kernels": [s[3] for s in steps],
            "gap_us": gaps, "host_launch_interval_us": host,
            "host_launch_us": [d for _, d, _ in launches]}


backend = load_backend(precisions.get("bf16-compiled"), folder, device="cuda", threads=4,
                       n_ctx=PROMPT + PROFILED + 1)
prompt = [int(i) for i in np.load(tokens)[:PROMPT]]
backend.decode_run([backend.prefill(prompt)], PROFILED)  # warm: the graph is captured
first = backend.prefill(prompt)
backend.sync()
from torch.profiler import ProfilerActivity, profile

with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    run = backend.decode_run([first], PROFILED)
trace_path = out / f"{name}.trace.json"
prof.export_chrome_trace(str(trace_path))
gaps = replays(json.loads(trace_path.read_text()))
trace_path.unlink()  # large; the summary is kept
try:
    top = prof.key_averages().table(sort_by="device_time_total", row_limit=12)
except (AttributeError, KeyError, ValueError):  # an older torch's name for it
    top = prof.key_averages().table(sort_by="cuda_time_total", row_limit=12)
result = {"model": name, "limit": limit, "points": points, "profile": gaps,
          "profiled_step_ms": [s * 1e3 for s in run.step_s],
          "compile_log": rec.details["backend"].get("compile_log"),
          "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
(out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
(out / f"{name}.kernels.txt").write_text(top + "\n")
print("done", flush=True)
PY
  then
    echo "FAILED: $model (exit status above, $((SECONDS - t0)) s); the end of its log:"
    tail -30 "$out/$model.log"
    exit 1
  fi
  echo "$model: $((SECONDS - t0)) s"
done
if [ -z "${KEEP_WEIGHTS:-}" ]; then rm -rf "$store"; fi
tar czf /tmp/compile-cache.tgz -C /tmp/qb-compile-cache inductor triton 2>/dev/null \
  && [ "$(stat -c %s /tmp/compile-cache.tgz)" -lt 16000000 ] \
  && cp /tmp/compile-cache.tgz "$out/compile-cache.tgz" || true
python3 - "$out" <<'PY'
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])
print(f"{'model':<22}{'batch':>6}{'tok/s':>9}{'steady':>9}{'ms/step':>9}{'limit ms':>10}"
      f"{'limit tok/s':>12}{'fraction':>9}{'compile s':>10}")
for path in sorted(out.glob("*-shape.json")):
    r = json.loads(path.read_text())
    limits = {p["batch_size"]: p for p in r["limit"]["points"]}
    compile_s = {}
    for c in r["compile_log"] or []:
        compile_s[c["batch_size"]] = compile_s.get(c["batch_size"], 0) + c["seconds"]
    for b, p in sorted((int(k), v) for k, v in r["points"].items()):
        lim = limits[b]
        steady = p["decode_steady_tok_s"]
        print(f"{r['model']:<22}{b:>6}{p['decode_tok_s']:>9.1f}{steady:>9.1f}"
              f"{p['token_ms_p50']:>9.3f}{lim['step_ms']:>10.3f}{lim['tok_s']:>12.1f}"
              f"{steady / lim['tok_s']:>9.3f}{compile_s.get(b, 0):>10.1f}")
print("fraction: steady-state decode tok/s over the limit's (batch / weight-products step)")
print()
print("one decode step at batch 1 under the profiler (8 steps of one decode_run; medians, us):")
print(f"{'model':<22}{'replay span':>12}{'kernels busy':>13}{'kernels':>8}{'gap to next':>12}"
      f"{'max gap':>9}{'host/replay':>12}")
for path in sorted(out.glob("*-shape.json")):
    r = json.loads(path.read_text())
    g = r["profile"]
    if not g["replays"]:
        print(f"{r['model']:<22} no graph replay in the trace: the step is not one CUDA graph")
        continue
    med = statistics.median
    print(f"{r['model']:<22}{med(g['span_us']):>12.0f}{med(g['busy_us']):>13.0f}"
          f"{med(g['kernels']):>8.0f}{med(g['gap_us'] or [0]):>12.1f}{max(g['gap_us'] or [0]):>9.1f}"
          f"{med(g['host_launch_interval_us'] or [0]):>12.0f}")
print(f"gpu: {r['gpu']}, torch {r['torch']}; top kernels: {out}/<model>.kernels.txt")
PY
echo "total: $((SECONDS - start)) s"
