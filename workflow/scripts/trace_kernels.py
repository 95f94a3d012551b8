"""A torch profiler trace of one model's decode at one precision, summarised."""

from quantbench.scenarios.jobs import run_job

if __name__ == "__main__":
    run_job(snakemake, "kernels")  # noqa: F821  (injected by Snakemake)
