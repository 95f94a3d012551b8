# Where decode time goes: a torch profiler trace of a few decode steps per transformers-side
# precision (config kernels; asked for by the aggregate only for the precisions in TRACED).
rule trace_kernels:
    input:
        model=get_model_artifact,
        tokens=f"resources/models/{{model}}/tokens/{DATASET}.npy",
    output:
        json="results/{model}/kernels/{precision}.json",
    log:
        "logs/trace_kernels/{model}/{precision}.log",
    conda:
        "../../envs/hf.yaml"  # torch-side precisions only (a gguf-* one is refused in the job)
    threads: get_timed_threads
    resources:
        gpu=needs_gpu,
        mem_mb=8000,
    params:
        # the protocol without the stage's switch and its point (the point goes whole, with the
        # headline's keys filled in)
        **measuring_params(
            {k: v for k, v in config["kernels"].items() if k not in ("enabled", "point")}
        ),
        point=vars(TRACED_POINT),
    script:
        "../scripts/trace_kernels.py"
