"""Export the HF folder to ONNX (fp32, with a KV cache) with transformers' ONNX exporter."""

from quantbench import logs
from quantbench.artifacts.onnx import export_onnx


def main(smk) -> None:
    logs.to_file(smk.log[0])
    import torch

    torch.set_num_threads(smk.threads)
    export_onnx(smk.input.model, smk.output.folder)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
