"""Pair each importance-matrix precision with its plain twin: results/imatrix.csv."""

from quantbench import logs
from quantbench.report.imatrix_ab import write_csv


def main(smk) -> None:
    logs.to_file(smk.log[0])
    write_csv(smk.params.entries, smk.output.csv)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
