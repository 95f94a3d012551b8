"""NVML trace (power, energy, utilisation, clocks) of one model at one precision."""

from quantbench.scenarios.jobs import run_job

if __name__ == "__main__":
    run_job(snakemake, "gpu")  # noqa: F821  (injected by Snakemake)
