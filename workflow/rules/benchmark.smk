rule benchmark_latency:
    input:
        model=get_model_artifact,
        tokens=f"resources/models/{{model}}/tokens/{DATASET}.npy",
    output:
        json="results/{model}/latency/{precision}.json",
    log:
        "logs/benchmark_latency/{model}/{precision}.log",
    benchmark:
        "benchmarks/benchmark_latency/{model}/{precision}.tsv"
    conda:
        get_conda_env
    threads: get_timed_threads
    resources:
        gpu=needs_gpu,
        mem_mb=8000,
    params:
        **measuring_params(config["latency"]),
    script:
        "../scripts/benchmark_latency.py"
