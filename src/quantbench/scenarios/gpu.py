"""GPU behaviour of one precision under load, observed by NVML.

A dedicated run (not the latency run, so sampling never perturbs those timings): the model is
loaded, warmed up, then a prefill phase (repeated prompts) and a decode phase (repeated
prompt + new_tokens generations) run while a background thread samples utilisation, power,
clocks, temperature and memory at ``hz``. Energy per phase is read from the GPU's total-energy
counter at the phase boundaries. The power samples are the fallback where the GPU has no counter,
and where the counter did not move during the phase: it is updated at intervals of its own, and a
phase shorter than one (a few prefills of a small model) would otherwise read as 0 J.
``{phase}_energy_method`` says which one a figure comes from.
On a machine without an NVIDIA GPU the record says so (status no_gpu) and nothing runs.
"""

from __future__ import annotations

import time

import numpy as np

from quantbench.config import check_prompt_in_text
from quantbench.metrics import GpuMetrics
from quantbench.records import Status
from quantbench.scenarios.common import Job
from quantbench.scenarios.latency import timed_run
from quantbench.scenarios.trackers import NvmlSampler


def run_gpu(model: str, precision: str, artifact, tokens_path, *, prompt_tokens: int,
                new_tokens: int, repeats: int, hz: float, device: str = "auto", threads: int = 0,
                overrides: dict | None = None, time_limit_s: float | None = None):
    settings = dict(prompt_tokens=prompt_tokens, new_tokens=new_tokens, repeats=repeats, hz=hz)
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
        timed_run(backend, prompt, new_tokens)  # warm-up
        with NvmlSampler(job.handle, hz=hz) as sampler:
            foreign = sampler.foreign_processes()
            _phase(sampler, "prefill", repeats * prompt_tokens,
                   lambda: [backend.prefill(prompt) for _ in range(repeats)], backend)
            _phase(sampler, "decode", repeats * new_tokens,
                   lambda: [timed_run(backend, prompt, new_tokens) for _ in range(repeats)],
                   backend)
        rec.metrics.update(phase_metrics(sampler))
        rec.details["foreign_pids"] = foreign
        rec.details["phases"] = sampler.phases
        rec.details["samples"] = sampler.samples
    return rec


def _phase(sampler: NvmlSampler, name: str, tokens: int, work, backend) -> None:
    backend.sync()
    e0, t0 = sampler.energy_mj(), time.perf_counter()
    work()
    backend.sync()
    e1, t1 = sampler.energy_mj(), time.perf_counter()
    sampler.phase(name, t0, t1, tokens)
    if e0 is not None and e1 is not None and e1 > e0:
        sampler.phases[-1]["energy_j"] = (e1 - e0) / 1000


def phase_metrics(sampler: NvmlSampler) -> dict:
    """The record's metrics: each phase's figures from its samples and energy readings."""
    phases = {}
    for ph in sampler.phases:
        rows = [s for s in sampler.samples if ph["start"] <= s["t"] <= ph["end"]]
        secs = ph["end"] - ph["start"]
        power = _mean(rows, "power_w")
        if "energy_j" in ph:
            energy, method = ph["energy_j"], "counter"
        elif rows:
            energy, method = power * secs, "power samples"
        else:
            energy, method = None, None
        phases[ph["phase"]] = {
            "s": secs, "power_w": power, "energy_j": energy,
            "energy_j_per_tok": None if energy is None else energy / ph["tokens"],
            "energy_method": method, "gpu_util_pct": _mean(rows, "gpu_util_pct"),
            "mem_util_pct": _mean(rows, "mem_util_pct"),
            "sm_clock_mhz": _mean(rows, "sm_clock_mhz"), "samples": len(rows),
        }
    return GpuMetrics.from_phases(phases).to_metrics()


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")
