"""Latency and throughput of one precision at every operating point of a sweep, greedy decoding.

An operating point (``quantbench.points``) is a prompt length, a batch size and a context depth:
``batch_size`` sequences (the same prompt in each; tokens/s count every sequence's tokens), each
with its KV cache filled to ``context_depth`` tokens before the timed runs, as llama-bench's
``-d``. The depth is the start of the evaluation text and the prompt the tokens that follow it,
so every backend sees the same token ids.

Protocol: the model is loaded once (timed separately as load_s). For each batch size and depth
the backend is configured (a context or static cache of that shape) and filled to the depth,
untimed; then for each prompt length ``warmup_runs`` untimed runs and ``measured_runs`` timed
runs. A run times one prefill of the prompt (time to first token: the forward pass and the
choice of the first token of each sequence; it starts by rewinding the cache to the depth,
bookkeeping that touches no data, whose cost ``quantbench fidelity --prefill-parts``
measures) and ``new_tokens`` decode steps, each on
its own: one ``decode_run`` of the backend, which feeds each step's greedy tokens to the next.
The device is synchronised before every host clock read; a backend that keeps the steps on a
GPU (transformers) times each step by CUDA events recorded between them and synchronises once
at the end of the run, so no step waits for the host. Tokenisation is not timed. A
point that runs out of memory (or fails otherwise) is a point with that status, and the sweep
goes on.

Decode throughput is given two ways: over every step (what a user waits for after the first
token) and in the steady state, without the first step after the prefill. That first step can
cost more (llama.cpp on a GPU rebuilds its graph for the new batch shape and runs a changed
graph without a CUDA graph; measured in docs/examples/h100/README.md), so it is also reported
on its own (``first_step_ms``). llama-bench's token generation measures the steady state.
On a GPU each phase's energy comes from the card's energy counter, read over windows of whole
runs and of prefills alone after a point's timed runs, never inside them (``energy_s``;
scenarios/energy.py): ``prefill_j_per_tok`` is one prefill's energy over the batch's prompt
tokens, ``decode_j_per_tok`` the decode steps' alone over the tokens they decoded.

The record keeps every point (``details.points``); its metrics are the headline point's
(``latency.headline``, default batch 1, depth 0, the first prompt), under the summary's names.

Processes: with ``processes`` > 1 the whole measurement (load, warm-up, timed runs at every
point) runs in that many fresh Python processes, one after another (never two at once: a timed
process measures alone), and the record pools them. A point's timings (percentiles, CV, energy)
are over every run of every process that measured it; its decode speed is the mean of the
processes' means, and ``decode_tok_s_ci_low`` / ``_high`` its Student t 95 % interval over
those means (``quantbench.stats.process_interval``): processes differ by more than runs of one
process do (a load's memory layout, the kernels and paths an engine picks), and an interval over
one process's runs leaves that out. One process gives no interval; the record says so
(``details.interval``). Memory, load time and the other figures are the first process's that
measured; each process's own record is kept in ``details.processes``.

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

import copy
import gc
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from itertools import groupby

import numpy as np

from quantbench import points
from quantbench.config import check_prompt_in_text
from quantbench.errors import ConfigError
from quantbench.points import LatencyPoint, OperatingPoint, sweep
from quantbench.records import Record, Status
from quantbench.scenarios.common import Job, artifact_size_mib, failure_status
from quantbench.scenarios.contention import ContentionTracker
from quantbench.scenarios.energy import PhaseEnergy, phase_windows
from quantbench.scenarios.fresh import FreshProcessError, FreshProcessTimeout, call_fresh
from quantbench.scenarios.trackers import (
    MemoryTracker,
    memory_breakdown,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    total_energy_mj,
)
from quantbench.stats import process_interval, process_interval_method, summarize

log = logging.getLogger(__name__)


def timed_run(backend, prompt, new_tokens: int, batch_size: int = 1):
    """One prefill and ``new_tokens`` decode steps: (ttft seconds, per-step seconds).

    With batch_size > 1 every step decodes one token in each of the batch's sequences. The
    steps are one ``decode_run`` of the backend: its step times are read from the device's
    clock where it keeps the steps there (CUDA events between them, one synchronisation at the
    end), else from the host's, synchronised each step."""
    clock = time.perf_counter
    backend.sync()
    start = clock()
    first = backend.prefill(prompt) if batch_size == 1 else backend.prefill_batch(prompt)
    backend.sync()
    ttft = clock() - start
    if not new_tokens:
        return ttft, []
    tokens = [first] if batch_size == 1 else first
    return ttft, backend.decode_run(tokens, new_tokens).step_s


def decode_rates(steps: list[float], batch_size: int = 1) -> tuple[float, float | None]:
    """Tokens/s of one run's decode steps (seconds): over every step, and without the first
    (None when there is only one step)."""
    every = batch_size * len(steps) / sum(steps)
    steady = batch_size * (len(steps) - 1) / sum(steps[1:]) if len(steps) > 1 else None
    return every, steady


def _point_failure(exc: Exception) -> tuple[Status, str]:
    """A failed point's status and reason (the sweep goes on after it)."""
    return failure_status(exc), f"{type(exc).__name__}: {exc or 'no message'}"[:2000]


@dataclass
class Timings:
    """One process's timed runs at one operating point: what its figures, and the figures
    pooled over processes, are computed from."""

    ttft_ms: list[float] = field(default_factory=list)  # each run's prefill
    step_ms: list[float] = field(default_factory=list)  # every decode step of every run
    tok_s: list[float] = field(default_factory=list)  # each run's decode rate over every step
    steady_tok_s: list[float] = field(default_factory=list)  # ... without its first step
    first_step_ms: list[float] = field(default_factory=list)
    # on a GPU, the point's J per token of each phase (point_energy; measured after its runs)
    energy: dict = field(default_factory=dict)
    peak_mem_mib: float | None = None


def measure_point(backend, mem, job, point: OperatingPoint, prompt: list[int], *,
                  new_tokens: int, warmup_runs: int, measured_runs: int,
                  energy_s: float = 0.0) -> Timings:
    """``warmup_runs`` untimed and ``measured_runs`` timed runs at one operating point (the
    backend configured for its batch and filled to its depth), then on a GPU its energy per
    phase (``energy_s`` > 0)."""
    b = point.batch_size
    out = Timings(peak_mem_mib=mem.tick())
    for run in range(warmup_runs + measured_runs):
        ttft, steps = timed_run(backend, prompt, new_tokens, b)
        out.peak_mem_mib = max(out.peak_mem_mib, mem.tick())
        if run >= warmup_runs:
            out.ttft_ms.append(ttft * 1e3)
            out.step_ms.extend(s * 1e3 for s in steps)
            every, steady = decode_rates(steps, b)
            out.tok_s.append(every)
            out.first_step_ms.append(steps[0] * 1e3)
            if steady is not None:
                out.steady_tok_s.append(steady)
    if job.handle is not None and energy_s > 0:
        out.energy = point_energy(backend, job.handle, prompt, new_tokens, b, energy_s)
    return out


def point_figures(point: OperatingPoint, timings: list[Timings], new_tokens: int) -> LatencyPoint:
    """A point's figures from the timings of each process that measured it: percentiles and CV
    over every run, decode speed as the mean of the processes' means with its interval over
    them (none from one process), each phase's energy the mean of the processes' (where every
    process has it), memory the first process's."""
    b, n = point.batch_size, point.prompt_tokens
    ttfts = [t for x in timings for t in x.ttft_ms]
    speed = process_interval([float(np.mean(x.tok_s)) for x in timings])
    low, high = speed["ci95"] or (None, None)
    if low is not None:  # a speed is not negative: cutting there only adds to the coverage
        low = max(low, 0.0)
    steady = [r for x in timings for r in x.steady_tok_s]
    ttft = summarize(ttfts)
    ttft_ci = process_interval([float(np.mean(x.ttft_ms)) for x in timings])["ci95"] or (None,
                                                                                        None)
    step = summarize([t for x in timings for t in x.step_ms])
    energy = {}
    for key in ("prefill_j_per_tok", "decode_j_per_tok"):
        values = [x.energy.get(key) for x in timings]
        energy[key] = float(np.mean(values)) if None not in values else None
    return LatencyPoint(
        prompt_tokens=n, batch_size=b, context_depth=point.context_depth,
        runs=len(ttfts), steps=step["n"], processes=len(timings),
        prefill_ms=ttft["p50"], prefill_ms_p90=ttft["p90"],
        prefill_ms_ci_low=None if ttft_ci[0] is None else max(ttft_ci[0], 0.0),
        prefill_ms_ci_high=ttft_ci[1],
        prefill_tok_s=summarize([b * n / (t / 1e3) for t in ttfts])["mean"],
        decode_tok_s=speed["mean"], decode_tok_s_ci_low=low, decode_tok_s_ci_high=high,
        decode_tok_s_per_seq=speed["mean"] / b,
        decode_steady_tok_s=summarize(steady)["mean"] if steady else None,
        decode_cv=summarize([r for x in timings for r in x.tok_s])["cv"],
        token_ms_p50=step["p50"], token_ms_p90=step["p90"], token_ms_p99=step["p99"],
        first_step_ms=summarize([t for x in timings for t in x.first_step_ms])["p50"],
        decode_ctx_mean=point.context_depth + n + (new_tokens + 1) / 2,
        kv_tokens_per_seq=point.context_depth + n + new_tokens,
        peak_mem_mib=timings[0].peak_mem_mib, **energy,
    )


def point_energy(backend, handle, prompt: list[int], new_tokens: int, batch_size: int,
                 min_s: float) -> dict:
    """A point's J per prompt token (prefill) and J per decoded token (decode steps alone), from
    the card's energy counter over windows of runs and of prefills (scenarios/energy.py)."""
    runs, prefills = phase_windows(
        lambda: total_energy_mj(handle), min_s=min_s,
        run=lambda: sum(timed_run(backend, prompt, new_tokens, batch_size)[1]),
        prefill=lambda: timed_run(backend, prompt, 0, batch_size)[0])
    return PhaseEnergy.split(runs, prefills).per_token(batch_size, len(prompt), new_tokens)


def check_protocol(model: str, tokens_path, *, prompt_tokens, batch_sizes, context_depths,
                   headline, pairs=None) -> tuple[list[OperatingPoint], OperatingPoint]:
    """The sweep's points and its headline point, refused before anything is loaded when the
    headline is not in the sweep or the deepest point does not fit in the text."""
    grid = sweep(prompt_tokens, batch_sizes, context_depths, pairs)
    head = points.headline(prompt_tokens, headline)
    if head not in grid:
        raise ConfigError(f"config key 'latency.headline': {head.label()} is not a measured "
                          "point (its batch size, depth and prompt must be in the sweep)")
    ids = np.load(tokens_path)
    deepest = max(pt.context_depth + pt.prompt_tokens for pt in grid)
    check_prompt_in_text("latency.context_depths + latency.prompt_tokens"
                         if max(context_depths) else "latency.prompt_tokens",
                         deepest, len(ids), model)
    return grid, head


def run_latency(model: str, precision: str, artifact, tokens_path, *, prompt_tokens: list[int],
                new_tokens: int, warmup_runs: int, measured_runs: int, processes: int = 1,
                batch_sizes: list[int] = (1,), context_depths: list[int] = (0,),
                headline: dict | None = None, time_limit_s: float | None = None,
                points: list[dict] | None = None, **options) -> Record:
    """The latency record of one precision, measured in ``processes`` processes: this one when
    it is 1, else that many fresh ones, one after another, each within what is left of
    ``time_limit_s`` (a first process that measured no point ends the series: the others
    would fail alike). ``options``: device, threads, overrides, memory_sample_hz,
    llamacpp_greedy (``measure_once``)."""
    protocol = dict(prompt_tokens=list(prompt_tokens), new_tokens=new_tokens,
                    warmup_runs=warmup_runs, measured_runs=measured_runs, processes=processes,
                    batch_sizes=list(batch_sizes), context_depths=list(context_depths),
                    headline=headline, points=points, **options)
    grid, head = check_protocol(model, tokens_path, prompt_tokens=prompt_tokens,
                                batch_sizes=batch_sizes, context_depths=context_depths,
                                headline=headline, pairs=points)
    if processes == 1:
        return pool_processes([measure_once(model, precision, artifact, tokens_path,
                                            time_limit_s=time_limit_s, **protocol)],
                              grid, head, new_tokens)
    deadline = None if not time_limit_s else time.monotonic() + time_limit_s
    kwargs = dict(model=model, precision=precision, artifact=str(artifact),
                  tokens_path=str(tokens_path), **protocol)
    results = []
    for i in range(processes):
        left = None if deadline is None else deadline - time.monotonic()
        log.info("latency %s: process %d of %d", precision, i + 1, processes)
        try:
            if left is not None and left <= 0:
                raise FreshProcessTimeout(f"no time left of the job's {time_limit_s:g} s")
            # the child stops itself at its limit; killed a minute later if it cannot
            results.append(call_fresh(f"{__name__}:measure_once", precision,
                                      {**kwargs, "time_limit_s": left},
                                      timeout_s=None if left is None else left + 60))
        except FreshProcessError as exc:
            status = "timeout" if isinstance(exc, FreshProcessTimeout) else "error"
            results.append({"record": None, "status": status,
                            "reason": f"process {i + 1} of {processes}: {exc}"})
        if i == 0 and not measured_any(results[0]):
            break  # the first process measured nothing: the next would fail as well
    if results[0]["record"] is None:  # no record at all: the job's, with the failure
        rec = Job("latency", model, precision, device=options.get("device", "auto"),
                  threads=options.get("threads", 0), settings=settings(head, **protocol),
                  overrides=options.get("overrides")).record
        rec.status, rec.reason = results[0]["status"], results[0]["reason"]
        results[0]["record"] = asdict(rec)
    return pool_processes(results, grid, head, new_tokens)


def pool_processes(results: list[dict], grid: list[OperatingPoint], head: OperatingPoint,
                   new_tokens: int) -> Record:
    """One record from each process's (``measure_once``'s dict, or a process that failed
    before it made one: its status and reason): the first ok process's record with every point
    pooled over the processes that measured it (``point_figures``), the headline's figures and
    interval in its metrics, the machine's contention the worst process's, and each process's
    own figures in ``details.processes``."""
    made = [r for r in results if r["record"] is not None]
    base = next((r for r in made if r["record"]["status"] == "ok"), made[0])
    rec = Record(**copy.deepcopy(base["record"]))
    own = [{LatencyPoint.from_dict(p).key: LatencyPoint.from_dict(p)
            for p in r["record"]["details"].get("points", [])} for r in made]
    rec.details["processes"] = [_process_summary(i, r) for i, r in enumerate(results)]
    if not any(own):  # nothing measured anywhere: the first process's failure
        rec.details["interval"] = process_interval_method(0)
        return rec
    pooled = []
    for pt in grid:
        ok = [(mine[pt], r["timings"][pt.label()]) for mine, r in zip(own, made, strict=True)
              if pt in mine and mine[pt].status == "ok"]
        if not ok:  # the first process's failure there
            pooled.append(next(mine[pt] for mine in own if pt in mine))
            continue
        figures = point_figures(pt, [Timings(**t) for _, t in ok], new_tokens)
        figures.kv_cache_mib = ok[0][0].kv_cache_mib
        pooled.append(figures)
    rec.details["points"] = [p.to_dict() for p in pooled]
    top = next(p for p in pooled if p.key == head)
    rec.details["interval"] = process_interval_method(top.processes)
    if top.status != "ok":
        rec.status, rec.reason = top.status, f"at the headline point: {top.reason}"
        return rec
    rec.metrics.update({k: v for k, v in top.summary_metrics().items() if v is not None},
                       decode_tok_s_ci95=[top.decode_tok_s_ci_low, top.decode_tok_s_ci_high])
    for k in ("decode_tok_s_ci_low", "decode_tok_s_ci_high"):
        rec.metrics.pop(k, None)  # the interval is decode_tok_s_ci95
    for k in ("other_cpu_share", "steal_share", "loadavg"):
        seen = [r["record"]["metrics"].get(k) for r in made]
        seen = [v for v in seen if v is not None]
        rec.metrics[k] = max(seen) if seen else None
    return rec


def measured_any(result: dict) -> bool:
    """Whether one process's result has a point it measured."""
    record = result["record"] or {}
    return any(p["status"] == "ok" for p in record.get("details", {}).get("points", []))


def settings(head: OperatingPoint, *, prompt_tokens, new_tokens, batch_sizes, context_depths,
             warmup_runs, measured_runs, processes, memory_sample_hz=0.0,
             llamacpp_greedy="host", energy_s=1.0, **_) -> dict:
    """What the record's provenance hashes of the protocol (the same in every process)."""
    return dict(prompt_tokens=list(prompt_tokens), new_tokens=new_tokens,
                batch_sizes=list(batch_sizes), context_depths=list(context_depths),
                headline=dict(head.__dict__), warmup_runs=warmup_runs,
                measured_runs=measured_runs, processes=processes,
                memory_sample_hz=memory_sample_hz, llamacpp_greedy=llamacpp_greedy,
                energy_s=energy_s)


def _process_summary(i: int, result: dict) -> dict:
    """What ``details.processes`` keeps of one process: its status, load time, the machine's
    contention while it ran and its own points (its figures alone, no interval)."""
    r = result["record"]
    if r is None:
        return {"process": i + 1, "status": result["status"], "reason": result["reason"]}
    kept = ("load_s", "other_cpu_share", "steal_share", "loadavg", "peak_rss_mib")
    return {"process": i + 1, "pid": r["details"].get("pid"), "status": r["status"],
            "reason": r["reason"], **{k: r["metrics"].get(k) for k in kept},
            "points": r["details"].get("points", [])}


def measure_once(model: str, precision: str, artifact, tokens_path, *, prompt_tokens: list[int],
                 new_tokens: int, warmup_runs: int, measured_runs: int, processes: int = 1,
                 batch_sizes: list[int] = (1,), context_depths: list[int] = (0,),
                 headline: dict | None = None, device: str = "auto", threads: int = 0,
                 overrides: dict | None = None, memory_sample_hz: float = 0.0,
                 time_limit_s: float | None = None, llamacpp_greedy: str = "host",
                 energy_s: float = 1.0, points: list[dict] | None = None) -> dict:
    """The whole measurement in this process: ``{"record": the record (a dict), "timings":
    each measured point's Timings (a dict, by its label)}``. ``processes`` is recorded in the
    settings only (it is the series this process is one of)."""
    grid, head = check_protocol(model, tokens_path, prompt_tokens=prompt_tokens,
                                batch_sizes=batch_sizes, context_depths=context_depths,
                                headline=headline, pairs=points)
    hashed = settings(head, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                      batch_sizes=batch_sizes, context_depths=context_depths,
                      **({"points": points} if points else {}),
                      warmup_runs=warmup_runs, measured_runs=measured_runs, processes=processes,
                      memory_sample_hz=memory_sample_hz, llamacpp_greedy=llamacpp_greedy,
                      energy_s=energy_s)
    job = Job("latency", model, precision, device=device, threads=threads, settings=hashed,
              overrides=overrides, time_limit_s=time_limit_s)
    rec = job.record
    rec.details["pid"] = os.getpid()
    ids = np.load(tokens_path)
    longest = max(prompt_tokens) + new_tokens + 1  # tokens a sequence adds to its depth

    def n_ctx(depth: int) -> int:
        return depth + longest

    measured: list[LatencyPoint] = []
    timings: dict[str, Timings] = {}
    with job.failures_recorded():
        rss_before = rss_mib()
        rec.details["load_peak_from"] = "load" if reset_peak_rss() else "process start"
        # one row of logits a sequence: latency never asks for a row per position
        backend = job.load(artifact, n_ctx=n_ctx(max(context_depths)),
                           batch_size=grid[0].batch_size, greedy=llamacpp_greedy,
                           all_logits=False)
        load_peak = peak_rss_mib()
        rec.metrics["size_mib"] = _weights_mib(rec.details["backend"])
        gc.collect()  # what loading left to the collector is not memory that serving holds
        # GPU memory is sampled from the end of loading on (see Job), for every backend alike
        # between runs (untimed), and in a background thread only if asked (it slows decode)
        period = 1 / memory_sample_hz if memory_sample_hz > 0 else None
        others = ContentionTracker().start()  # other work on the machine while measuring
        parts_by_batch = {}
        with MemoryTracker(job.handle, period_s=period) as mem:
            for (b, depth), group in groupby(grid, key=lambda pt: (pt.batch_size,
                                                                      pt.context_depth)):
                group = list(group)
                failed = None
                try:  # a context of this batch size, filled to this depth (untimed)
                    backend.configure(b, n_ctx(depth))
                    backend.fill([int(i) for i in ids[:depth]])
                    parts_by_batch[(b, depth)] = backend.memory_parts()
                except Exception as exc:  # noqa: BLE001 - the point's status, not the job's
                    failed = _point_failure(exc)
                for pt in group:
                    if failed is None:
                        prompt = [int(i) for i in ids[depth:depth + pt.prompt_tokens]]
                        try:
                            timings[pt.label()] = measure_point(
                                backend, mem, job, pt, prompt, new_tokens=new_tokens,
                                warmup_runs=warmup_runs, measured_runs=measured_runs,
                                energy_s=energy_s)
                            measured.append(point_figures(pt, [timings[pt.label()]],
                                                          new_tokens))
                            measured[-1].kv_cache_mib = parts_by_batch[(b, depth)].get(
                                "kv_cache_mib")
                            continue
                        except Exception as exc:  # noqa: BLE001 - as above
                            failed = _point_failure(exc)
                            backend.discard_context()  # the next point starts from a new context
                            reason = failed[1]
                    else:
                        reason = (f"not measured: this batch size and depth failed first "
                                  f"({failed[1]})")
                    log.warning("latency %s %s: %s", precision, pt.label(), reason)
                    measured.append(LatencyPoint(pt.prompt_tokens, b, depth, status=failed[0],
                                                 reason=reason))
        rec.metrics.update(others.stop())
        rec.details["other_processes"] = others.top
        rec.details["points"] = [p.to_dict() for p in measured]
        # the compile time of each batch size compiled after loading, too, and each compile's
        # entry in the log (an engine that compiles nothing has none)
        compiled = {k: v for k, v in backend.info().items()
                    if k.startswith(("compile_s", "compile_log"))}
        rec.details["backend"].update(compiled)
        top = next(p for p in measured if p.key == head)
        if top.status != Status.OK:
            rec.status, rec.reason = top.status, f"at the headline point: {top.reason}"
        rec.metrics.update(
            {k: v for k, v in top.summary_metrics().items() if v is not None},
            prompt_tokens=head.prompt_tokens, batch_size=head.batch_size,
            context_depth=head.context_depth,
            kv_elem_bytes=rec.details["backend"].get("kv_elem_bytes"),
            peak_rss_mib=peak_rss_mib(),
            rss_before_load_mib=rss_before,
            load_peak_mib=load_peak,
            serving_rss_mib=mem.peak_rss_sampled_mib,
            peak_gpu_mib=mem.peak_gpu_mib if job.handle is not None else None,
        )
        rec.details["gpu_memory_method"] = mem.gpu_method
        if top.status == Status.OK:
            # one memory figure for every backend: the GPU's if the job ran there, else host
            # RSS, at the headline point; sampled while serving (loading is load_peak_mib)
            parts = parts_by_batch.get((head.batch_size, head.context_depth), {})
            rec.details["memory"] = memory_breakdown(top.peak_mem_mib, parts)
            rec.metrics.update(rec.details["memory"])
        if job.device == "cuda" and job.precision.engine.runs_in_torch:
            import torch

            rec.metrics["torch_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    rec.metrics["disk_mib"] = artifact_size_mib(artifact)
    return {"record": asdict(rec), "timings": {k: asdict(v) for k, v in timings.items()}}


def fresh_latency(precision: str, artifact, tokens, **settings) -> dict:
    """The latency scenario in one fresh Python process, as each pipeline job's processes run:
    the record's status, reason and metrics, and under ``points`` every operating point
    measured (LatencyPoint dicts, that process's figures alone). ``settings`` are
    ``measure_once``'s keyword arguments."""
    out = call_fresh(f"{__name__}:measure_once", precision,
                     {"model": "repeat", "precision": precision, "artifact": str(artifact),
                      "tokens_path": str(tokens), **settings})["record"]
    return {"status": out["status"], "reason": out["reason"], **out["metrics"],
            "points": out["details"].get("points", [])}


def _weights_mib(info: dict) -> float | None:
    return info.get("footprint_mib") or info.get("model_size_mib")
