"""A torch profiler trace of one model's decode at one precision, summarised."""

from quantbench import logs
from quantbench.gpuslots import claim_gpu


def main(smk) -> None:
    logs.to_file(smk.log[0])
    claim_gpu(smk.params.device)  # one card per job on a multi-GPU host, before CUDA starts
    from quantbench.scenarios.kernels import run_kernels

    record = run_kernels(smk.wildcards.model, smk.wildcards.precision, smk.input.model,
                         smk.input.tokens, device=smk.params.device,
                         threads=min(smk.params.threads, smk.threads),
                         overrides=smk.params.overrides, time_limit_s=smk.params.time_limit_s,
                         **smk.params.point, **smk.params.protocol)
    record.save(smk.output.json)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
