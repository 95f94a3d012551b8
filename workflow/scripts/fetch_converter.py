"""Place llama.cpp's HF->GGUF converter that matches the installed llama-cpp-python."""

from quantbench import logs
from quantbench.artifacts.gguf import fetch_converter


def main(smk) -> None:
    logs.to_file(smk.log[0])
    fetch_converter(smk.output.folder, source=smk.params.source)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
