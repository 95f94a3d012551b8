"""Write one calibration text and its split against the scored windows."""

from quantbench import logs
from quantbench.artifacts.imatrix import calibration_text


def main(smk) -> None:
    logs.to_file(smk.log[0])
    calibration_text(smk.params.spec, text_path=smk.input.text, ids_path=smk.input.ids,
                     meta_path=smk.input.meta, model_dir=smk.input.model,
                     protocol=smk.params.protocol, held_out_share=smk.params.held_out_share,
                     out_text=smk.output.text,
                     out_json=smk.output.split)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
