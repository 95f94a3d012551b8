"""Where one precision's decode and prefill time go: a torch profiler trace of a few decode
steps, then of one prefill.

At the headline operating point (batch size, context depth, prompt; ``latency.headline``) the
backend is loaded and configured as the latency stage does it: a compiled precision compiles
there (and on a GPU records its CUDA graph), untimed. The KV caches are filled to the depth,
``warmup_runs`` untraced runs (a prefill and ``steps`` decode steps) follow, then one prefill,
untraced, and ``steps`` decode steps under ``torch.profiler``: with CUDA activity on a GPU (the
device's kernels, memory copies and sets, and the host's launch calls), with CPU activity
otherwise (the operators). The steps are one ``decode_run``, as the latency stage times them
(a backend that keeps its steps on the device synchronises once, at the end of the run, inside
the trace), so every kernel of the traced steps is in it. One more prefill of the batch's
prompts at the same depth is traced after them (``PrefillSummary``, its figures prefixed
``prefill_``): where the time to the first token goes. The summary
(``quantbench.kernel_summary``) ranks kernels by self time, classes them by name and counts
kernels and launches per decoded token.

For a compiled precision, torch._dynamo's state is reset before loading (a fresh process's
state) and its counters are read at the end: graph breaks, graphs, recompilations (compilations
with a recompile reason), CUDA graphs skipped, and compilations that happened during the traced
steps. The backend compiles with ``fullgraph=True``, so a decode step that would break its graph
fails to compile: the record is then an ``error`` naming the break, not a count of 0.

Only the transformers-side backends run through torch: a llama.cpp precision gets an
``unsupported`` record (the workflow asks no trace of them).
"""

from __future__ import annotations

import time

import numpy as np

from quantbench.config import check_prompt_in_text
from quantbench.kernel_summary import LAUNCH, TraceRow, summarise, summarise_prefill
from quantbench.records import Status
from quantbench.scenarios.common import Job
from quantbench.scenarios.latency import timed_run

REASONS_KEPT = 5  # reasons of each kind kept in the record (each cut to REASON_CHARS)
REASON_CHARS = 400


def run_kernels(model: str, precision: str, artifact, tokens_path, *, prompt_tokens: int,
                batch_size: int = 1, context_depth: int = 0, steps: int, top: int,
                warmup_runs: int, device: str = "auto", threads: int = 0,
                overrides: dict | None = None, time_limit_s: float | None = None):
    settings = dict(prompt_tokens=prompt_tokens, batch_size=batch_size,
                    context_depth=context_depth, steps=steps, top=top, warmup_runs=warmup_runs)
    job = Job("kernels", model, precision, device=device, threads=threads, settings=settings,
              overrides=overrides, time_limit_s=time_limit_s)
    rec = job.record
    rec.details["point"] = dict(prompt_tokens=prompt_tokens, batch_size=batch_size,
                                context_depth=context_depth)
    if not job.precision.engine.runs_in_torch:
        rec.status = Status.UNSUPPORTED
        rec.reason = (f"{job.precision.backend} runs outside torch: the torch profiler does not "
                      "see its kernels")
        return rec
    ids = np.load(tokens_path)
    check_prompt_in_text("latency.context_depths + latency.prompt_tokens" if context_depth
                         else "latency.prompt_tokens", context_depth + prompt_tokens, len(ids),
                         model)
    prompt = [int(i) for i in ids[context_depth:context_depth + prompt_tokens]]
    with job.failures_recorded():
        reset_compile_state()
        backend = job.load(artifact, n_ctx=context_depth + prompt_tokens + steps + 1,
                           batch_size=batch_size, all_logits=False)
        backend.fill([int(i) for i in ids[:context_depth]])
        for _ in range(warmup_runs):
            timed_run(backend, prompt, steps, batch_size)
        compiles_before = len(compilation_metrics())
        rows, launches, wall_s = trace_decode(backend, prompt, steps, batch_size, job.device)
        prefill_rows, prefill_s = trace_prefill(backend, prompt, batch_size, job.device)
        prefill = summarise_prefill(prefill_rows, wall_s=prefill_s, top=top)
        counts, reasons = (compile_counts(compiles_before, cudagraphs=job.device == "cuda")
                           if backend.info().get("compiled") else ({}, {}))
        summary = summarise(rows, device=job.device, steps=steps, batch_size=batch_size,
                            wall_s=wall_s, launches=launches, top=top, compile_counts=counts)
        rec.metrics.update(summary.metrics(), tokens=summary.tokens, steps=steps,
                           batch_size=batch_size, prompt_tokens=prompt_tokens,
                           context_depth=context_depth, **prefill.metrics())
        rec.details.update(top=summary.top, prefill_top=prefill.top, classes=summary.classes(),
                           compile=reasons,
                           traced="cuda kernels" if job.device == "cuda" else "cpu operators")
    return rec


def _prefill(backend, prompt: list[int], batch_size: int) -> list[int]:
    return [backend.prefill(prompt)] if batch_size == 1 else backend.prefill_batch(prompt)


def trace_prefill(backend, prompt: list[int], batch_size: int, device: str):
    """One prefill of the batch under the profiler: (rows of the trace, wall seconds)."""
    from torch.profiler import profile

    with profile(activities=_activities(device)) as prof:
        start = time.perf_counter()
        _prefill(backend, prompt, batch_size)
        backend.sync()
        wall_s = time.perf_counter() - start
    rows, _ = _rows(prof, device)
    return rows, wall_s


def _activities(device: str) -> list:
    from torch.profiler import ProfilerActivity

    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])


def trace_decode(backend, prompt: list[int], steps: int, batch_size: int, device: str):
    """One untraced prefill, then ``steps`` decode steps under the profiler: (rows of the trace,
    host launch calls (None on the CPU), wall seconds of the traced steps)."""
    from torch.profiler import profile

    tokens = _prefill(backend, prompt, batch_size)
    backend.sync()
    with profile(activities=_activities(device)) as prof:
        start = time.perf_counter()
        backend.decode_run(tokens, steps)
        backend.sync()
        wall_s = time.perf_counter() - start
    rows, launches = _rows(prof, device)
    return rows, launches, wall_s


def _rows(prof, device: str) -> tuple[list[TraceRow], int | None]:
    """A trace's rows (device kernels on a GPU, CPU operators otherwise) and the host's launch
    calls (None on the CPU)."""
    from torch.autograd import DeviceType

    cuda = device == "cuda"
    totals: dict[str, list] = {}
    launches = 0 if cuda else None
    for e in prof.events():
        if cuda and e.device_type == DeviceType.CUDA:
            us = e.time_range.elapsed_us()
        elif cuda:  # a host event: counted if it launches device work
            launches += bool(LAUNCH.match(e.name))
            continue
        elif e.device_type == DeviceType.CPU:
            us = e.self_cpu_time_total
        else:
            continue
        acc = totals.setdefault(e.name, [0.0, 0])
        acc[0] += us
        acc[1] += 1
    return [TraceRow(name, us, calls) for name, (us, calls) in totals.items()], launches


def reset_compile_state() -> None:
    """A fresh process's torch._dynamo: no compiled code, counters or compilation metrics
    (what an earlier job of the same process compiled is not this one's recompilation)."""
    import torch._dynamo
    from torch._dynamo import utils

    torch._dynamo.reset()
    utils.counters.clear()
    clear = getattr(utils, "clear_compilation_metrics", None)  # torch >= 2.3
    if clear is not None:
        clear()


def compilation_metrics() -> list:
    from torch._dynamo import utils

    get = getattr(utils, "get_compilation_metrics", None)
    return list(get()) if get is not None else []


def compile_counts(compiles_before: int, *, cudagraphs: bool) -> tuple[dict, dict]:
    """torch._dynamo's counts since ``reset_compile_state`` (KernelSummary's compile fields) and
    the first reasons of each kind. ``compiles_before``: compilations before the traced steps;
    ``cudagraphs``: whether the compiled step records CUDA graphs (on a GPU), else skips of them
    are not counted. A count torch does not expose in this version is left out, never taken
    as 0."""
    from torch._dynamo import utils

    c = utils.counters
    metrics = compilation_metrics()
    recompiles = [m.recompile_reason for m in metrics if getattr(m, "recompile_reason", None)]
    skips = [m.cudagraph_skip_reason for m in metrics
             if getattr(m, "cudagraph_skip_reason", None)]
    has_metrics = hasattr(utils, "get_compilation_metrics")
    counts = {
        "graph_breaks": int(sum(c["graph_break"].values())),
        "graphs": int(c["stats"]["unique_graphs"]),
        "recompiles": len(recompiles) if has_metrics else None,
        "cudagraph_skips": int(c["inductor"]["cudagraph_skips"]) if cudagraphs else None,
        "compiles_in_trace": len(metrics) - compiles_before if has_metrics else None,
    }

    def kept(reasons) -> list[str]:
        return [str(r)[:REASON_CHARS] for r in list(reasons)[:REASONS_KEPT]]

    reasons = {"graph_breaks": kept(c["graph_break"]), "recompiles": kept(recompiles),
               "cudagraph_skips": kept(skips) if cudagraphs else []}
    return {k: v for k, v in counts.items() if v is not None}, reasons
