"""Measure one model's decode limit on this machine: its weight products alone, timed."""

import json

from quantbench import logs
from quantbench.gpuslots import claim_gpu
from quantbench.records import atomic_write_text
from quantbench.scenarios.limit import measure_decode_limit


def main(smk) -> None:
    logs.to_file(smk.log[0])
    claim_gpu(smk.params.device)
    result = measure_decode_limit(smk.input.model, batch_sizes=smk.params.batch_sizes,
                                  device=smk.params.device,
                                  threads=min(smk.params.threads, smk.threads),
                                  **smk.params.protocol)
    atomic_write_text(smk.output.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
