rule aggregate_results:
    input:
        latency=results_of("latency"),
        quality=results_of("quality"),
        profile=results_of("profile"),
        models=expand("resources/models/{model}/hf", model=MODELS),
    output:
        summary="results/summary.csv",
        metrics="results/metrics.csv",
    log:
        "logs/aggregate_results.log",
    conda:
        "../../envs/report.yaml"
    params:
        reference=REFERENCE,
    script:
        "../scripts/aggregate_results.py"
