"""Build the HF folder (safetensors + tokenizer) of one model source."""

from quantbench import logs
from quantbench.artifacts.model import prepare_model
from quantbench.gpuslots import claim_gpu


def main(smk) -> None:
    logs.to_file(smk.log[0])
    text = smk.input.text if smk.input.text else None
    # a GPU is held (resource gpu) only for a random-weights model on a run with one
    on_gpu = bool(smk.resources.get("gpu", 0))
    if on_gpu:
        claim_gpu(smk.config["device"])
    prepare_model(smk.params.spec, smk.output.folder, text_path=text,
                  hub_cache_dir=smk.params.hub_cache_dir,
                  init_device="cuda" if on_gpu else "cpu")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
