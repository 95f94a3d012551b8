"""Measure the machine's memory bandwidth and matmul throughput (the roofline's ceilings)."""

import json

from quantbench import logs
from quantbench.gpuslots import claim_gpu
from quantbench.records import atomic_write_text
from quantbench.scenarios.machine import measure_machine


def main(smk) -> None:
    logs.to_file(smk.log[0])
    claim_gpu(smk.params.device)
    result = measure_machine(smk.params.device, min(smk.params.threads, smk.threads))
    atomic_write_text(smk.output.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
