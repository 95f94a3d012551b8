"""Render results/report.md from the summary, the operating points, the figures and the
generations."""

from quantbench import logs
from quantbench.report.markdown import render_report


def main(smk) -> None:
    logs.to_file(smk.log[0])
    render_report(smk.input.summary, smk.input.figures, smk.input.quality, smk.input.models,
                  reference=smk.params.reference, config=smk.params.config,
                  out=smk.output.report, machine_path=smk.input.machine,
                  configfiles=smk.params.configfiles,
                  points_path=smk.input.points, kernels_path=smk.input.kernels,
                  imatrix_path=smk.input.imatrix or None,
                  points_out=smk.output.points)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
