"""GPU behaviour of one precision under load, observed by NVML.

A dedicated run (not the latency run, so sampling never perturbs those timings): the model is
loaded; the card idles for ``idle_s`` (its draw with the model loaded and nothing running:
``idle_w``; right after loading, a card still clocked up: on an H100 about 125 W against 70 W
after a longer rest); one untimed run warms up; then the windows of
quantbench.scenarios.energy: whole runs (``generate``: a prefill of ``prompt_tokens``, then
``new_tokens`` decode steps, at least ``repeats`` of them and ``energy_s`` seconds of decode
steps) and the prefill alone as many times, while a background thread samples utilisation,
power, clocks, temperature and memory at ``hz``. Each window's energy is the card's energy
counter's difference over it; the power samples are the fallback where the GPU has no counter or
it did not move. The decode steps' energy is the generate window's less one prefill's for each
of its runs, so that neither phase's figure holds the other's. ``<window>_energy_method`` says
where a figure comes from.
On a machine without an NVIDIA GPU the record says so (status no_gpu) and nothing runs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from quantbench.config import check_prompt_in_text
from quantbench.metrics import GpuMetrics
from quantbench.records import Status
from quantbench.scenarios.common import Job
from quantbench.scenarios.energy import PhaseEnergy, Window, idle, phase_windows
from quantbench.scenarios.latency import timed_run
from quantbench.scenarios.trackers import NvmlSampler


def run_gpu(model: str, precision: str, artifact, tokens_path, *, prompt_tokens: int,
            new_tokens: int, repeats: int, hz: float, energy_s: float = 1.0, idle_s: float = 2.0,
            device: str = "auto", threads: int = 0, overrides: dict | None = None,
            time_limit_s: float | None = None):
    settings = dict(prompt_tokens=prompt_tokens, new_tokens=new_tokens, repeats=repeats, hz=hz,
                    energy_s=energy_s, idle_s=idle_s)
    job = Job("gpu", model, precision, device=device, threads=threads, settings=settings,
              overrides=overrides, time_limit_s=time_limit_s)
    rec = job.record
    if job.device != "cuda":
        rec.status = Status.NO_GPU
        rec.reason = (f"device is {job.device}: no NVIDIA GPU visible to NVML, so power, energy "
                      "and utilisation were not measured")
        return rec
    ids = np.load(tokens_path)
    check_prompt_in_text("gpu_trace.prompt_tokens", prompt_tokens, len(ids), model)
    prompt = [int(i) for i in ids[:prompt_tokens]]
    with job.failures_recorded():
        backend = job.load(artifact, n_ctx=prompt_tokens + new_tokens + 1)
        if job.handle is None:
            raise RuntimeError("NVML is unavailable on this CUDA machine")
        with NvmlSampler(job.handle, hz=hz) as sampler:
            foreign = sampler.foreign_processes()
            rest = idle(sampler.energy_mj, idle_s)
            timed_run(backend, prompt, new_tokens)  # warm-up
            runs, prefills = phase_windows(
                sampler.energy_mj, min_s=energy_s, min_runs=repeats,
                run=lambda: sum(timed_run(backend, prompt, new_tokens)[1]),
                prefill=lambda: timed_run(backend, prompt, 0)[0])
        for w, tokens in ((rest, 0), (runs, runs.count * new_tokens),
                          (prefills, prefills.count * prompt_tokens)):
            sampler.phase(w.name, w.start, w.end, tokens)
        rec.metrics.update(trace_metrics(
            sampler, rest, runs, prefills, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
            power_limit_w=rec.provenance["device"].get("power_limit_w")))
        rec.details["foreign_pids"] = foreign
        rec.details["phases"] = sampler.phases
        rec.details["samples"] = sampler.samples
    return rec


def priced(sampler: NvmlSampler, w: Window) -> tuple[Window, str | None, list[dict]]:
    """The window with its energy (the counter's; else its mean sampled power x its length;
    else none), how that energy was found, and its samples."""
    rows = [s for s in sampler.samples if w.start <= s["t"] <= w.end]
    if w.energy_j is not None:
        return w, "counter", rows
    if rows:
        return replace(w, energy_j=_mean(rows, "power_w") * w.s), "power samples", rows
    return w, None, rows


def trace_metrics(sampler: NvmlSampler, rest: Window, runs: Window, prefills: Window, *,
                  prompt_tokens: int, new_tokens: int, power_limit_w: float | None) -> dict:
    """The record's metrics: each window's figures from its samples and energy, and the decode
    steps' alone (the generate window's less its prefills')."""
    figures = {"power_limit_w": power_limit_w}
    windows = {}
    for w in (rest, runs, prefills):
        w, method, rows = priced(sampler, w)
        windows[w.name] = w
        figures[f"{w.name}_energy_method"] = method
        if w.name == "idle":
            figures.update(idle_s=w.s, idle_w=_ratio(w.energy_j, w.s))
            continue
        figures.update({f"{w.name}_{k}": _mean(rows, k)
                        for k in ("gpu_util_pct", "mem_util_pct", "sm_clock_mhz")})
        figures.update({f"{w.name}_energy_j": w.energy_j, f"{w.name}_samples": len(rows),
                        f"{w.name}_power_w": _ratio(w.energy_j, w.s)})
    runs, prefills = windows["generate"], windows["prefill"]
    phase = PhaseEnergy.split(runs, prefills)
    decode_j = None if phase.decode_j is None else phase.decode_j * runs.count
    figures.update(generate_s=runs.s, generate_runs=runs.count, prefill_s=prefills.s,
                   prefills=prefills.count, decode_s=runs.busy_s, decode_energy_j=decode_j,
                   decode_power_w=_ratio(decode_j, runs.busy_s),
                   **phase.per_token(1, prompt_tokens, new_tokens))
    return GpuMetrics(**figures).to_metrics()


def _ratio(a: float | None, b: float) -> float | None:
    return None if a is None or not b else a / b


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")
