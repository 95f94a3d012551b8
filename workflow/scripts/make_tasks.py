"""Derive the offline tasks from the evaluation text's held-out part."""

from quantbench import logs
from quantbench.artifacts.tasks import make_tasks


def main(smk) -> None:
    logs.to_file(smk.log[0])
    make_tasks(smk.input.text, smk.params.folder, dataset=smk.params.dataset,
               **smk.params.protocol)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
