"""Name the folder with llama-imatrix: the configured one, or the cached build of
tools/build-llama-tools.sh (built here on first use)."""

import json
import sys
from pathlib import Path

from quantbench import logs
from quantbench.artifacts.imatrix import locate_tools
from quantbench.records import atomic_write_text


def main(smk) -> None:
    logs.to_file(smk.log[0])
    folder = locate_tools(smk.params.folder, venv_python=sys.executable,
                          repo=Path(smk.params.repo))
    atomic_write_text(smk.output.json, json.dumps({"folder": str(folder)}, indent=2) + "\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
