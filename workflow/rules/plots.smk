rule plot_results:
    input:
        summary=rules.aggregate_results.output.summary,
    output:
        html=expand("results/figures/{figure}.html", figure=FIGURES),
        png=expand("results/figures/{figure}.png", figure=FIGURES),
    log:
        "logs/plot_results.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/plot_results.py"
