rule evaluate_tasks:
    input:
        model=get_model_artifact,
        tokenizer=model_dir("{model}"),
        tasks=get_task_folders,
    output:
        json="results/{model}/accuracy/{precision}.json",
        answers="results/{model}/accuracy/{precision}.items.jsonl",
    log:
        "logs/evaluate_tasks/{model}/{precision}.log",
    benchmark:
        "benchmarks/evaluate_tasks/{model}/{precision}.tsv"
    conda:
        get_conda_env
    threads: MEASURE_THREADS
    resources:
        gpu=needs_gpu,
        mem_mb=8000,
    params:
        **measuring_params(config["accuracy"]),
        tasks=config["tasks"],
        derived=DERIVED_TASKS,
        random_weights=lambda wc: not quality_applicable(wc),
    script:
        "../scripts/evaluate_tasks.py"
