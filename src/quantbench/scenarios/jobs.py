"""The body of the measuring rules' scripts (benchmark_latency, trace_gpu, trace_kernels).

Light on purpose: nothing here imports numpy before ``preload`` has imported the engine (see
``quantbench.backends.preload``); the scenario is imported after it."""

from __future__ import annotations

import importlib

from quantbench import logs
from quantbench.backends import preload
from quantbench.gpuslots import claim_gpu


def run_job(smk, scenario: str) -> None:
    """Log to the rule's log, claim one card (on a multi-GPU host, before CUDA starts), import
    the engine first, run ``quantbench.scenarios.<scenario>.run_<scenario>`` with the rule's
    inputs, threads (what Snakemake granted, at most the configured number) and params
    (``point`` where the rule has one, then ``protocol``), and save its record."""
    logs.to_file(smk.log[0])
    claim_gpu(smk.params.device)
    preload(smk.wildcards.precision)
    run = getattr(importlib.import_module(f"quantbench.scenarios.{scenario}"), f"run_{scenario}")
    record = run(smk.wildcards.model, smk.wildcards.precision, smk.input.model,
                 smk.input.tokens, device=smk.params.device,
                 threads=min(smk.params.threads, smk.threads),
                 overrides=smk.params.overrides, time_limit_s=smk.params.time_limit_s,
                 **getattr(smk.params, "point", {}), **smk.params.protocol)
    record.save(smk.output.json)
