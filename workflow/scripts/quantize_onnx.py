"""Quantise the fp32 ONNX export with ONNX Runtime's tools (int8 dynamic, int4 weight-only)."""

from quantbench import logs
from quantbench.artifacts.onnx import quantize_onnx


def main(smk) -> None:
    logs.to_file(smk.log[0])
    quantize_onnx(smk.input.folder, smk.output.folder, onnx_type=smk.wildcards.onnx_qtype,
                  **smk.params.settings)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)
