"""Measure prefill and decode latency for one model at one precision."""

from quantbench.scenarios.jobs import run_job

if __name__ == "__main__":
    run_job(snakemake, "latency")  # noqa: F821  (injected by Snakemake)
