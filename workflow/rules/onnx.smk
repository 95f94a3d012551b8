rule export_onnx:
    input:
        model=model_dir("{model}"),
    output:
        folder=directory("resources/models/{model}/onnx/fp32"),
    log:
        "logs/export_onnx/{model}.log",
    benchmark:
        "benchmarks/export_onnx/{model}.tsv"
    conda:
        "../../envs/onnx.yaml"
    threads: MEASURE_THREADS
    resources:
        mem_mb=8000,
    script:
        "../scripts/export_onnx.py"


rule quantize_onnx:
    input:
        folder=rules.export_onnx.output.folder,
    output:
        folder=directory("resources/models/{model}/onnx/{onnx_qtype}"),
    log:
        "logs/quantize_onnx/{model}/{onnx_qtype}.log",
    benchmark:
        "benchmarks/quantize_onnx/{model}/{onnx_qtype}.tsv"
    conda:
        "../../envs/onnx.yaml"
    threads: MEASURE_THREADS
    resources:
        mem_mb=8000,
    params:
        settings=lambda wc: ONNX_QUANT_SETTINGS[wc.onnx_qtype],
    script:
        "../scripts/quantize_onnx.py"
