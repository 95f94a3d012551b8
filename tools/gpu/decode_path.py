"""The parts of tools/gpu/decode-path.sh, each run as a process of its own:

  decode_path.py prepare MODEL STORE OUT BATCH...            random weights, tokens, the limit
  decode_path.py measure MODEL PRECISION STORE OUT BATCH...  one precision on its decode path
  decode_path.py table OUT                                   the summary table of OUT's records

``measure``: quantbench's latency job of the precision (one process: no interval over
processes), then its kernel trace at batch 1 (8 decode steps and one prefill, as the kernels
stage traces them), and for a compiled precision a torch profiler trace of 8 decode steps at
batch 1 read replay by replay (the GPU's gap between one CUDA graph replay and the next, the
kernels' busy time inside one; for the precisions of REPLAYS, default bf16-compiled). A study,
not an example."""

from __future__ import annotations

import faulthandler
import json
import os
import statistics
import sys
from itertools import pairwise
from pathlib import Path

SHAPES = {  # config/gpu-fastpath.yaml's, and a tiny one to try the script on the CPU
    "tiny-shape": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                       intermediate_size=128, vocab_size=1024),
    "tinyllama-1.1b-shape": dict(hidden_size=2048, num_layers=22, num_heads=32, num_kv_heads=4,
                                 intermediate_size=5632, vocab_size=32000),
    "llama-3-8b-shape": dict(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8,
                             intermediate_size=14336, vocab_size=128256),
}
PROMPT, NEW, PROFILED = 512, 32, 8
DEVICE = os.environ.get("DEVICE", "cuda")  # cpu: to try the script


def prepare(name: str, store: Path, out: Path, batches: list[int]) -> None:
    import numpy as np
    import torch

    from quantbench.artifacts.model import random_llama_config
    from quantbench.scenarios.limit import measure_decode_limit

    spec = {"source": "random", "architecture": "llama", "max_position_embeddings": 8192,
            **SHAPES[name]}
    folder = store / name
    if not any((folder / f).is_file()
               for f in ("model.safetensors.index.json", "model.safetensors")):
        from transformers import LlamaForCausalLM

        torch.manual_seed(0)
        torch.set_default_dtype(torch.bfloat16)  # drawn in bf16 on the GPU: no fp32 copy
        with torch.device(DEVICE):
            model = LlamaForCausalLM(random_llama_config(spec))
        torch.set_default_dtype(torch.float32)
        model.save_pretrained(folder)
        del model
        print(f"weights saved to {folder}", flush=True)
    np.save(folder / "tokens.npy",
            np.random.default_rng(0).integers(3, spec["vocab_size"], 4096))
    limit = measure_decode_limit(folder, batch_sizes=batches, device=DEVICE)
    print(json.dumps(limit["points"]), flush=True)
    (out / f"{name}.limit.json").write_text(json.dumps(limit, indent=2) + "\n")


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
    gaps = [b[0] - a[1] for a, b in pairwise(steps)]
    host = [b[0] - a[0] for a, b in pairwise(launches)]
    return {"replays": len(steps), "span_us": [s[1] - s[0] for s in steps],
            "busy_us": [s[2] for s in steps], "kernels": [s[3] for s in steps],
            "gap_us": gaps, "host_launch_interval_us": host,
            "host_launch_us": [d for _, d, _ in launches]}


def profile_replays(precision: str, folder: Path, tokens: Path, out_stem: Path) -> dict:
    """8 decode steps at batch 1 under the profiler, read replay by replay."""
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from quantbench import precisions
    from quantbench.backends import load_backend

    backend = load_backend(precisions.get(precision), folder, device=DEVICE, threads=4,
                           n_ctx=PROMPT + PROFILED + 1)
    prompt = [int(i) for i in np.load(tokens)[:PROMPT]]
    backend.decode_run([backend.prefill(prompt)], PROFILED)  # warm: the graph is captured
    first = backend.prefill(prompt)
    backend.sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run = backend.decode_run([first], PROFILED)
    trace_path = Path(f"{out_stem}.trace.json")
    prof.export_chrome_trace(str(trace_path))
    gaps = replays(json.loads(trace_path.read_text()))
    trace_path.unlink()  # large; the summary is kept
    return {**gaps, "profiled_step_ms": [s * 1e3 for s in run.step_s]}


def measure(name: str, precision: str, store: Path, out: Path, batches: list[int]) -> None:
    import torch

    from quantbench.scenarios.kernels import run_kernels
    from quantbench.scenarios.latency import run_latency

    folder, stem = store / name, out / f"{name}.{precision}"
    tokens = folder / "tokens.npy"
    result = {"model": name, "precision": precision, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"}
    rec = run_latency(name, precision, folder, tokens, prompt_tokens=[PROMPT], new_tokens=NEW,
                      warmup_runs=2, measured_runs=3, batch_sizes=batches, device=DEVICE,
                      threads=4, energy_s=0.5)
    result.update(status=str(rec.status), reason=rec.reason,
                  points={p["batch_size"]: p for p in rec.details.get("points", [])},
                  metrics=rec.metrics, backend=rec.details.get("backend", {}))
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"latency {precision}: {rec.status} {rec.reason or ''}", flush=True)
    if rec.status != "ok":
        return
    k = run_kernels(name, precision, folder, tokens, prompt_tokens=PROMPT, batch_size=1,
                    steps=PROFILED, top=10, warmup_runs=1, device=DEVICE, threads=4)
    result["kernels"] = {"status": str(k.status), "reason": k.reason, "metrics": k.metrics,
                         "top": k.details.get("top"), "prefill_top": k.details.get("prefill_top")}
    replayed = os.environ.get("REPLAYS", "bf16-compiled").split()
    if rec.details.get("backend", {}).get("compiled") and DEVICE == "cuda" and \
            precision in replayed:
        result["profile"] = profile_replays(precision, folder, tokens, stem)
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def table(out: Path) -> None:
    limits = {p.name.split(".")[0]: {q["batch_size"]: q
                                     for q in json.loads(p.read_text())["points"]}
              for p in out.glob("*.limit.json")}
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*-shape.*.json"))
            if not p.name.endswith(".limit.json")]
    print(f"{'model':<21}{'precision':<19}{'b':>3}{'tok/s':>8}{'steady':>8}{'fraction':>9}"
          f"{'prefill ms':>11}{'peak GiB':>9}{'J/tok':>7}{'compile s':>10}")
    for r in rows:
        if r["status"] != "ok":
            why = (r["reason"] or "")[:150]
            print(f"{r['model']:<21}{r['precision']:<19} {r['status']}: {why}")
            continue
        compile_s: dict = {}
        for c in r["backend"].get("compile_log") or []:
            compile_s[c["batch_size"]] = compile_s.get(c["batch_size"], 0) + c["seconds"]
        for b, p in sorted((int(b), p) for b, p in r["points"].items()):
            if p.get("status", "ok") != "ok":
                print(f"{r['model']:<21}{r['precision']:<19}{b:>3} {p['status']}: "
                      f"{(p.get('reason') or '')[:150]}")
                continue
            lim = limits.get(r["model"], {}).get(b)
            frac = p["decode_steady_tok_s"] / lim["tok_s"] if lim else float("nan")
            energy = p.get("energy_j_per_tok")
            print(f"{r['model']:<21}{r['precision']:<19}{b:>3}{p['decode_tok_s']:>8.1f}"
                  f"{p['decode_steady_tok_s']:>8.1f}{frac:>9.3f}{p['prefill_ms']:>11.1f}"
                  f"{p['peak_mem_mib'] / 1024:>9.2f}"
                  f"{energy if energy is not None else float('nan'):>7.3f}"
                  f"{compile_s.get(b, 0):>10.1f}")
    print("fraction: steady decode tok/s over the limit's (batch / one step of the weight "
          "products alone); J/tok: the GPU's energy over decode")
    print()
    print("batch 1, traced (8 decode steps; one prefill of 512): shares of the kernels' busy time")
    print(f"{'model':<21}{'precision':<19}{'step ms':>8}{'busy %':>7}{'gemm':>6}{'deq':>5}"
          f"{'attn':>5}{'elem':>5}{'copy':>5}{'oth':>5}{'k/tok':>6}{'gap us':>7}"
          f"{'pf ms':>7}{'pf gemm':>8}{'pf deq':>7}{'pf attn':>8}")
    for r in rows:
        k = (r.get("kernels") or {}).get("metrics") or {}
        if not k:
            continue
        gaps = (r.get("profile") or {}).get("gap_us") or []
        gap = statistics.median(gaps) if gaps else float("nan")

        def pct(key, k=k):
            v = k.get(key)
            return float("nan") if v is None else v
        print(f"{r['model']:<21}{r['precision']:<19}{pct('step_ms'):>8.2f}{pct('busy_pct'):>7.0f}"
              f"{pct('gemm_pct'):>6.0f}{pct('dequant_pct'):>5.0f}{pct('attention_pct'):>5.0f}"
              f"{pct('elementwise_pct'):>5.0f}{pct('copy_pct'):>5.0f}{pct('other_pct'):>5.0f}"
              f"{pct('kernels_per_token'):>6.0f}{gap:>7.1f}{pct('prefill_trace_ms'):>7.1f}"
              f"{pct('prefill_gemm_pct'):>8.0f}{pct('prefill_dequant_pct'):>7.0f}"
              f"{pct('prefill_attention_pct'):>8.0f}")
    if rows:
        print(f"gpu: {rows[0]['gpu']}, torch {rows[0]['torch']}")


if __name__ == "__main__":
    faulthandler.dump_traceback_later(int(os.environ.get("PART_S", "300")) - 10, exit=False)
    verb, args = sys.argv[1], sys.argv[2:]
    if verb == "prepare":
        prepare(args[0], Path(args[1]), Path(args[2]), [int(b) for b in args[3:]])
    elif verb == "measure":
        measure(args[0], args[1], Path(args[2]), Path(args[3]), [int(b) for b in args[4:]])
    elif verb == "table":
        table(Path(args[0]))
    else:
        sys.exit(f"unknown part {verb!r}: prepare, measure or table")
