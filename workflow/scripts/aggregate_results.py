"""Collect every record into results/summary.csv (wide, the headline point),
results/points.csv (every operating point), results/kernels.csv (the kernel traces),
results/metrics.{csv,parquet} (long) and results/accuracy.csv (accuracy by task); records of
several runs are refused unless the config allows them (report.allow_mixed_runs)."""

from quantbench import logs
from quantbench.report.aggregate import aggregate


def main(smk) -> None:
    logs.to_file(smk.log[0])
    aggregate([*smk.input.latency, *smk.input.quality, *smk.input.gpu, *smk.input.kernels,
               *smk.input.accuracy],
              reference=smk.params.reference, summary_path=smk.output.summary,
              metrics_path=smk.output.metrics,
              parquet_path=smk.output.metrics_parquet, points_path=smk.output.points,
              kernels_path=smk.output.kernels, model_dirs=smk.input.models,
              machine_path=smk.input.machine, limit_paths=smk.input.limits,
              allow_mixed_runs=smk.params.allow_mixed_runs, accuracy_path=smk.output.accuracy)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
