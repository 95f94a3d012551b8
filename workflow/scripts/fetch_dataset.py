"""Fetch and clean the evaluation text."""

from quantbench import logs
from quantbench.artifacts.dataset import load_text
from quantbench.records import atomic_write_text


def main(smk) -> None:
    logs.to_file(smk.log[0])
    atomic_write_text(smk.output.text, load_text(smk.params.spec,
                                                 hub_cache_dir=smk.params.hub_cache_dir))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
