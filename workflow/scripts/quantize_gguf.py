"""Quantise the F16 GGUF to one llama.cpp type."""

from quantbench import logs
from quantbench.artifacts.gguf import quantize


def main(smk) -> None:
    logs.to_file(smk.log[0])
    quantize(smk.input.gguf, smk.output.gguf, gguf_type=smk.wildcards.qtype,
             threads=smk.threads)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
