"""Task accuracy (lm-evaluation-harness) for one model at one precision."""

from quantbench import logs
from quantbench.backends import preload
from quantbench.gpuslots import claim_gpu


def main(smk) -> None:
    logs.to_file(smk.log[0])
    claim_gpu(smk.params.device)  # one card per job on a multi-GPU host, before CUDA starts
    preload(smk.wildcards.precision)
    from quantbench.scenarios.accuracy import run_accuracy

    protocol = {k: v for k, v in smk.params.protocol.items() if k != "enabled"}
    record = run_accuracy(
        smk.wildcards.model, smk.wildcards.precision, smk.input.model, smk.input.tokenizer,
        smk.params.tasks, items_out=smk.output.answers, random_weights=smk.params.random_weights,
        derived=smk.params.derived,
        device=smk.params.device, threads=min(smk.params.threads, smk.threads),
        overrides=smk.params.overrides, time_limit_s=smk.params.time_limit_s, **protocol,
    )
    record.save(smk.output.json)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
