rule plot_results:
    input:
        summary=rules.aggregate_results.output.summary,
        points=rules.aggregate_results.output.points,
        machine=rules.measure_machine.output.json,
        gpu=results_of("gpu"),
        models=expand("resources/models/{model}/hf", model=MODELS),
    output:
        **{name: figure_png(name) for name in FIGURES},
        nvml=report(
            expand("results/figures/{name}.png", name=NVML_FIGURES),
            caption="../report/nvml_timeseries.rst",
            category="GPU over time (NVML)",
        ),
        html=expand("results/figures/{name}.html", name=FIGURES + NVML_FIGURES),
    log:
        "logs/plot_results.log",
    conda:
        "../../envs/report.yaml"
    params:
        reference=REFERENCE,
        figures=FIGURES,
        report=config["report"],
    script:
        "../scripts/plot_results.py"
