"""Tokenise the evaluation text's scored part and the sanity prompts once."""

from quantbench import logs
from quantbench.artifacts.dataset import save_tokens


def main(smk) -> None:
    logs.to_file(smk.log[0])
    save_tokens(smk.input.text, smk.input.model, smk.params.prompts,
                ids_path=smk.output.ids, meta_path=smk.output.meta,
                prompts_path=smk.output.prompts,
                held_out_share=smk.params.held_out_share)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
