"""Plot the summary: interactive HTML and static PNG figures."""

from quantbench import logs
from quantbench.plots import plot_all


def main(smk) -> None:
    logs.to_file(smk.log[0])
    plot_all(smk.input.summary, html=smk.output.html, png=smk.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
