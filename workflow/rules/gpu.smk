rule trace_gpu:
    input:
        model=get_model_artifact,
        tokens=f"resources/models/{{model}}/tokens/{DATASET}.npy",
    output:
        json="results/{model}/gpu/{precision}.json",
    log:
        "logs/trace_gpu/{model}/{precision}.log",
    conda:
        get_conda_env
    threads: MEASURE_THREADS
    resources:
        gpu=needs_gpu,
        mem_mb=8000,
    params:
        **measuring_params(config["gpu_trace"]),
    script:
        "../scripts/trace_gpu.py"
