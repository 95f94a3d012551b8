"""Perplexity and sanity generations for one model at one precision."""

from pathlib import Path

from quantbench import logs
from quantbench.backends import preload
from quantbench.gpuslots import claim_gpu


def main(smk) -> None:
    logs.to_file(smk.log[0])
    claim_gpu(smk.params.device)  # one card per job on a multi-GPU host, before CUDA starts
    preload(smk.wildcards.precision)
    from quantbench.scenarios.quality import run_quality

    record = run_quality(
        smk.wildcards.model, smk.wildcards.precision, smk.input.model, smk.input.tokens,
        smk.input.prompts, Path(smk.input.tokenizer) / "tokenizer.json",
        max_new_tokens=smk.params.max_new_tokens, applicable=smk.params.applicable,
        logprobs_out=smk.output.logprobs, reference=smk.input.reference or None,
        kv_reference=smk.input.kv_reference or None,
        device=smk.params.device, threads=min(smk.params.threads, smk.threads),
        overrides=smk.params.overrides, time_limit_s=smk.params.time_limit_s,
        **smk.params.protocol,
    )
    record.save(smk.output.json)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
