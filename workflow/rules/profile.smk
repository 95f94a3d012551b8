rule profile_gpu:
    input:
        model=get_model_artifact,
        tokens=f"resources/models/{{model}}/tokens/{DATASET}.npy",
    output:
        json="results/{model}/profile/{precision}.json",
    log:
        "logs/profile_gpu/{model}/{precision}.log",
    conda:
        get_conda_env
    threads: MEASURE_THREADS
    resources:
        gpu=needs_gpu,
        mem_mb=8000,
    params:
        protocol=config["profile"],
        overrides=get_precision_overrides,
        time_limit_s=get_time_limit,
        device=config["device"],
        threads=MEASURE_THREADS,
    script:
        "../scripts/profile_gpu.py"
