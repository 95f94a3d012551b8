rule render_report:
    input:
        summary=rules.aggregate_results.output.summary,
        points=rules.aggregate_results.output.points,
        kernels=rules.aggregate_results.output.kernels,
        tasks=rules.aggregate_results.output.accuracy,
        imatrix=rules.compare_imatrix.output.csv if imatrix_pairs() else [],
        figures=rules.plot_results.output.figures,
        quality=results_of("quality"),
        models=expand("resources/models/{model}/hf", model=MODELS),
        machine=rules.measure_machine.output.json,
    output:
        report="results/report.md",
        points="results/points.md",
    log:
        "logs/render_report.log",
    conda:
        "../../envs/report.yaml"
    params:
        reference=REFERENCE,
        config=config,
        configfiles=CONFIGFILES,
    script:
        "../scripts/render_report.py"
