"""Plot the summary, the operating points, the machine's ceilings and the NVML samples:
interactive HTML and PNG of every figure that has data, and the folder's index."""

from quantbench import logs
from quantbench.report.plots import plot_all


def main(smk) -> None:
    logs.to_file(smk.log[0])
    plot_all(smk.input.summary, smk.output.figures, machine_path=smk.input.machine,
             gpu_trace_paths=smk.input.gpu, reference=smk.params.reference,
             points_path=smk.input.points, model_dirs=smk.input.models,
             report=smk.params.report)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
