# The offline tasks derived from the evaluation text's held-out part (quantbench.artifacts.tasks):
# lm-evaluation-harness task folders, the same for every model.


rule make_tasks:
    input:
        text=rules.fetch_dataset.output.text,
    output:
        **qb_evaltext.derived_task_files(DATASET),
    log:
        f"logs/make_tasks/{DATASET}.log",
    conda:
        "../../envs/hf.yaml"
    params:
        dataset=DATASET,
        folder=lambda wildcards, output: os.path.dirname(output.manifest),
        protocol=config["tasks_data"],
    script:
        "../scripts/make_tasks.py"
