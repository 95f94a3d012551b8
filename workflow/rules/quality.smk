rule evaluate_quality:
    input:
        model=get_model_artifact,
        tokenizer=model_dir("{model}"),
        tokens=f"resources/models/{{model}}/tokens/{DATASET}.npy",
        prompts="resources/models/{model}/tokens/prompts.json",
        reference=get_reference_logprobs,
        kv_reference=get_kv_reference_logprobs,
    output:
        json="results/{model}/quality/{precision}.json",
        logprobs="results/{model}/logprobs/{precision}.npz",
    log:
        "logs/evaluate_quality/{model}/{precision}.log",
    benchmark:
        "benchmarks/evaluate_quality/{model}/{precision}.tsv"
    conda:
        get_conda_env
    threads: MEASURE_THREADS
    resources:
        gpu=needs_gpu,
        mem_mb=8000,
    params:
        **measuring_params(config["perplexity"]),
        max_new_tokens=config["generation"]["max_new_tokens"],
        applicable=quality_applicable,
    script:
        "../scripts/evaluate_quality.py"
