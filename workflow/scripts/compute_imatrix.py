"""Compute one importance matrix with llama-imatrix on the F16 GGUF."""

import json
from pathlib import Path

from quantbench import logs
from quantbench.artifacts.imatrix import compute


def main(smk) -> None:
    logs.to_file(smk.log[0])
    compute(smk.input.gguf, smk.input.text, smk.output.imatrix,
            tools=json.loads(Path(smk.input.tools).read_text())["folder"],
            context_length=smk.params.context_length, chunks=smk.params.chunks,
            threads=smk.threads, calibration=json.loads(Path(smk.input.split).read_text()),
            log_path=smk.log[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
