"""Build the HF folder (safetensors + tokenizer) of one model source."""

from quantbench import logs
from quantbench.models import prepare_model


def main(smk) -> None:
    logs.to_file(smk.log[0])
    text = smk.input.text if smk.input.text else None
    prepare_model(smk.params.spec, smk.output.folder, text_path=text,
                  hub_cache_dir=smk.params.hub_cache_dir)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
