"""Latency and throughput of one precision, greedy decoding, batch size configurable (default 1:
the same prompt in every sequence of a batch, tokens/s counting every sequence's tokens).

Protocol: the model is loaded (timed separately as load_s), then for each prompt length
``warmup_runs`` untimed runs and ``measured_runs`` timed runs. A run is one prefill of the
prompt (time to first token: the forward pass and the choice of the first token) followed by
``new_tokens`` decode steps, each timed on its own. The device is synchronised before every
clock read; the prompt ids are prepared before timing (tokenisation is not timed). The prompt is
the start of the evaluation text, so every backend sees the same token ids.

Decode throughput is given two ways: over every step (what a user waits for after the first
token) and in the steady state, without the first step after the prefill. That first step can
cost more (llama.cpp on a GPU rebuilds its graph for the new batch shape and runs a changed
graph without a CUDA graph; measured in docs/examples/h100/README.md), so it is also reported
on its own (``decode_first_step_ms``). llama-bench's token generation measures
the steady state.

Memory (``peak_mem_mib``) is what serving holds, on every device: the largest sample from the end
of loading on (on entry, after every run and on exit; GPU memory by NVML on a GPU, else the
current host RSS), never the process's high-water mark. What loading needed is its own figure,
``load_peak_mib``: the host RSS high-water mark from the start to the end of loading (a bf16
model made from fp32 files peaks above its fp32 twin while it loads, not while it serves);
``peak_rss_mib`` is that mark at the end of the job. Both count from the process's start where
the kernel cannot restart the mark (``details.load_peak_from`` says which). The serving figure is
split into the engine's parts (``weights_mib``, ``kv_cache_mib``, ``compute_mib``,
``output_mib``; see the backends) and ``runtime_mib``, the rest.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from quantbench.config import check_prompt_in_text
from quantbench.contention import ContentionTracker
from quantbench.scenarios.common import Job, artifact_size_mib
from quantbench.stats import summarize
from quantbench.trackers import (
    MemoryTracker,
    memory_breakdown,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
)


def timed_run(backend, prompt, new_tokens: int, batch_size: int = 1):
    """One prefill and ``new_tokens`` decode steps: (ttft seconds, per-step seconds).

    With batch_size > 1 every step decodes one token in each of the batch's sequences."""
    prefill, decode = ((backend.prefill, backend.decode) if batch_size == 1
                       else (backend.prefill_batch, backend.decode_batch))
    clock = time.perf_counter
    backend.sync()
    start = clock()
    token = prefill(prompt)
    backend.sync()
    ttft = clock() - start
    steps = []
    for _ in range(new_tokens):
        start = clock()
        token = decode(token)
        backend.sync()
        steps.append(clock() - start)
    return ttft, steps


def decode_rates(steps: list[float], batch_size: int = 1) -> tuple[float, float | None]:
    """Tokens/s of one run's decode steps (seconds): over every step, and without the first
    (None when there is only one step)."""
    every = batch_size * len(steps) / sum(steps)
    steady = batch_size * (len(steps) - 1) / sum(steps[1:]) if len(steps) > 1 else None
    return every, steady


def run_latency(model: str, precision: str, artifact, tokens_path, *, prompt_tokens: list[int],
                new_tokens: int, warmup_runs: int, measured_runs: int, batch_size: int = 1,
                device: str = "auto", threads: int = 0, overrides: dict | None = None,
                memory_sample_hz: float = 0.0, time_limit_s: float | None = None,
                llamacpp_greedy: str = "host"):
    settings = dict(prompt_tokens=prompt_tokens, new_tokens=new_tokens, batch_size=batch_size,
                    warmup_runs=warmup_runs, measured_runs=measured_runs,
                    memory_sample_hz=memory_sample_hz, llamacpp_greedy=llamacpp_greedy)
    job = Job("latency", model, precision, device=device, threads=threads, settings=settings,
              overrides=overrides, time_limit_s=time_limit_s)
    rec = job.record
    ids = np.load(tokens_path)
    check_prompt_in_text("latency.prompt_tokens", max(prompt_tokens), len(ids), model)
    with job.failures_recorded():
        rss_before = rss_mib()
        rec.details["load_peak_from"] = "load" if reset_peak_rss() else "process start"
        # one row of logits a sequence: latency never asks for a row per position
        backend = job.load(artifact, n_ctx=max(prompt_tokens) + new_tokens + 1,
                           batch_size=batch_size, greedy=llamacpp_greedy, all_logits=False)
        load_peak = peak_rss_mib()
        rec.metrics["size_mib"] = _weights_mib(rec.details["backend"])
        gc.collect()  # what loading left to the collector is not memory that serving holds
        # GPU memory is sampled from the end of loading on (see Job), for every backend alike
        # between runs (untimed), and in a background thread only if asked (it slows decode)
        period = 1 / memory_sample_hz if memory_sample_hz > 0 else None
        others = ContentionTracker().start()  # other work on the machine while measuring
        with MemoryTracker(job.handle, period_s=period) as mem:
            prefill, decode = {}, {}
            for n in prompt_tokens:
                prompt = [int(i) for i in ids[:n]]
                ttfts, per_token, run_tok_s, steady_tok_s, first_ms = [], [], [], [], []
                for run in range(warmup_runs + measured_runs):
                    ttft, steps = timed_run(backend, prompt, new_tokens, batch_size)
                    mem.tick()
                    if run >= warmup_runs:
                        ttfts.append(ttft * 1e3)
                        per_token.extend(s * 1e3 for s in steps)
                        every, steady = decode_rates(steps, batch_size)
                        run_tok_s.append(every)
                        first_ms.append(steps[0] * 1e3)
                        if steady is not None:
                            steady_tok_s.append(steady)
                prefill[n] = {
                    "ttft_ms": summarize(ttfts),
                    "prefill_tok_s": summarize([batch_size * n / (t / 1e3) for t in ttfts]),
                }
                decode[n] = {
                    "token_ms": summarize(per_token),
                    "decode_tok_s": summarize(run_tok_s),
                    "steady_tok_s": summarize(steady_tok_s) if steady_tok_s else None,
                    "first_step_ms": summarize(first_ms),
                }
        rec.metrics.update(others.stop())
        rec.details["other_processes"] = others.top
        first = prompt_tokens[0]
        rec.metrics.update(
            prompt_tokens=first,
            batch_size=batch_size,
            decode_ctx_mean=first + (new_tokens + 1) / 2,
            kv_elem_bytes=rec.details["backend"].get("kv_elem_bytes"),
            prefill_ms=prefill[first]["ttft_ms"]["p50"],
            prefill_tok_s=prefill[first]["prefill_tok_s"]["mean"],
            decode_tok_s=decode[first]["decode_tok_s"]["mean"],
            decode_tok_s_ci95=[decode[first]["decode_tok_s"]["ci95_low"],
                               decode[first]["decode_tok_s"]["ci95_high"]],
            decode_token_ms_p50=decode[first]["token_ms"]["p50"],
            decode_token_ms_p90=decode[first]["token_ms"]["p90"],
            decode_token_ms_p99=decode[first]["token_ms"]["p99"],
            decode_cv=decode[first]["decode_tok_s"]["cv"],
            decode_steady_tok_s=(decode[first]["steady_tok_s"] or {}).get("mean"),
            decode_first_step_ms=decode[first]["first_step_ms"]["p50"],
            peak_rss_mib=peak_rss_mib(),
            rss_before_load_mib=rss_before,
            load_peak_mib=load_peak,
            serving_rss_mib=mem.peak_rss_sampled_mib,
            peak_gpu_mib=mem.peak_gpu_mib if job.handle is not None else None,
            # one memory figure for every backend: the GPU's if the job ran there, else host
            # RSS; in both cases sampled while serving (loading is load_peak_mib)
            peak_mem_mib=mem.serving_mib,
        )
        rec.details["gpu_memory_method"] = mem.gpu_method
        rec.details["memory"] = memory_breakdown(mem.serving_mib, backend.memory_parts())
        rec.metrics.update(rec.details["memory"])
        if job.device == "cuda" and job.precision.backend != "llama.cpp":
            import torch

            rec.metrics["torch_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        rec.details.update(prefill={str(k): v for k, v in prefill.items()},
                           decode={str(k): v for k, v in decode.items()})
    rec.metrics["disk_mib"] = artifact_size_mib(artifact)
    return rec


def _weights_mib(info: dict) -> float | None:
    return info.get("footprint_mib") or info.get("model_size_mib")
