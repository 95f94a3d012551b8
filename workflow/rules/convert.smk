rule fetch_converter:
    input:
        files=get_converter_files,
    output:
        folder=directory("resources/converter"),
    log:
        "logs/fetch_converter.log",
    conda:
        "../../envs/llamacpp.yaml"
    params:
        source=config["converter"]["source"],
    script:
        "../scripts/fetch_converter.py"


rule convert_gguf:
    input:
        model=model_dir("{model}"),
        converter=rules.fetch_converter.output.folder,
    output:
        gguf="resources/models/{model}/gguf/{outtype}.gguf",
        info="resources/models/{model}/gguf/{outtype}.json",
    log:
        "logs/convert_gguf/{model}/{outtype}.log",
    benchmark:
        "benchmarks/convert_gguf/{model}/{outtype}.tsv"
    conda:
        "../../envs/llamacpp.yaml"
    resources:
        mem_mb=8000,
    script:
        "../scripts/convert_gguf.py"
