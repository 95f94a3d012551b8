rule quantize_gguf:
    input:
        gguf="resources/models/{model}/gguf/f16.gguf",
    output:
        gguf="resources/models/{model}/gguf/{qtype}.gguf",
        info="resources/models/{model}/gguf/{qtype}.json",
    log:
        "logs/quantize_gguf/{model}/{qtype}.log",
    benchmark:
        "benchmarks/quantize_gguf/{model}/{qtype}.tsv"
    conda:
        "../../envs/llamacpp.yaml"
    threads: MEASURE_THREADS
    script:
        "../scripts/quantize_gguf.py"
