# The figures that have data go to one folder, with its index (quantbench.figures.INDEX): which
# figures were made and why each other one was not. Which those are is known only from the
# measurements, so the folder is the output; Snakemake's report shows each PNG in it with its
# caption (workflow/report/<name>.rst, looked up by the file's name).
rule plot_results:
    input:
        summary=rules.aggregate_results.output.summary,
        points=rules.aggregate_results.output.points,
        machine=rules.measure_machine.output.json,
        gpu=results_of("gpu"),
        models=expand("resources/models/{model}/hf", model=MODELS),
    output:
        figures=report(
            directory("results/figures"),
            patterns=["{name}.png"],
            caption="../report/figure.rst",
            category=figure_category,
        ),
    log:
        "logs/plot_results.log",
    conda:
        "../../envs/report.yaml"
    params:
        reference=REFERENCE,
        report=config["report"],
        captions=figure_captions(),
    script:
        "../scripts/plot_results.py"
