"""Convert the HF folder to a GGUF of one float type with llama.cpp's converter."""

from quantbench import logs
from quantbench.artifacts.gguf import convert


def main(smk) -> None:
    logs.to_file(smk.log[0])
    convert(smk.input.model, smk.output.gguf, outtype=smk.wildcards.outtype,
            converter=smk.input.converter, log_path=smk.log[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
