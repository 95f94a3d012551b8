rule measure_machine:
    output:
        json="results/machine.json",
    log:
        "logs/measure_machine.log",
    conda:
        "../../envs/hf.yaml"
    threads: get_timed_threads
    resources:
        gpu=needs_gpu,
    params:
        device=config["device"],
        threads=MEASURE_THREADS,
    script:
        "../scripts/measure_machine.py"


rule measure_decode_limit:
    input:
        model=model_dir("{model}"),
    output:
        json="results/{model}/limit.json",
    log:
        "logs/measure_decode_limit/{model}.log",
    conda:
        "../../envs/hf.yaml"
    threads: get_timed_threads
    resources:
        gpu=needs_gpu,
    params:
        device=config["device"],
        threads=MEASURE_THREADS,
        batch_sizes=config["latency"]["batch_sizes"],
        protocol=config["decode_limit"],
    script:
        "../scripts/measure_decode_limit.py"


# what of the aggregation's log an earlier run wrote: the end of the run says this run's refusal
AGGREGATE_LOG = "logs/aggregate_results.log"
AGGREGATE_LOG_START = qb_outcome.log_size(AGGREGATE_LOG)


rule aggregate_results:
    input:
        latency=results_of("latency"),
        quality=results_of("quality"),
        gpu=results_of("gpu"),
        kernels=traces(),
        accuracy=accuracy_records(),
        answers=accuracy_items(),
        models=expand("resources/models/{model}/hf", model=MODELS),
        machine=rules.measure_machine.output.json,
        limits=expand("results/{model}/limit.json", model=MODELS),
    output:
        summary="results/summary.csv",
        metrics="results/metrics.csv",
        metrics_parquet="results/metrics.parquet",
        points="results/points.csv",
        kernels="results/kernels.csv",
        accuracy="results/accuracy.csv",
    log:
        AGGREGATE_LOG,
    conda:
        "../../envs/report.yaml"
    params:
        reference=REFERENCE,
        allow_mixed_runs=config["report"]["allow_mixed_runs"],
    script:
        "../scripts/aggregate_results.py"
