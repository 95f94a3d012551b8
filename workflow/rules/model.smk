rule prepare_model:
    input:
        text=get_tokenizer_text,
        files=get_model_files,
    output:
        folder=directory("resources/models/{model}/hf"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/llamacpp.yaml"
    resources:
        mem_mb=8000,
        # a random-weights model's weights are drawn on the GPU when the run has one
        gpu=random_on_gpu,
    params:
        spec=lambda wc: config["models"][wc.model],
        hub_cache_dir=config["hub"]["cache_dir"],
    script:
        "../scripts/prepare_model.py"


rule fetch_dataset:
    input:
        files=get_dataset_files,
    output:
        text=f"resources/datasets/{DATASET}.txt",
    log:
        f"logs/fetch_dataset/{DATASET}.log",
    conda:
        "../../envs/hf.yaml"
    params:
        spec=config["dataset"],
        hub_cache_dir=config["hub"]["cache_dir"],
    script:
        "../scripts/fetch_dataset.py"


rule tokenize_dataset:
    input:
        text=rules.fetch_dataset.output.text,
        model=model_dir("{model}"),
    output:
        ids=f"resources/models/{{model}}/tokens/{DATASET}.npy",
        meta=f"resources/models/{{model}}/tokens/{DATASET}.json",
        prompts="resources/models/{model}/tokens/prompts.json",
    log:
        "logs/tokenize_dataset/{model}.log",
    conda:
        "../../envs/hf.yaml"
    params:
        prompts=config["generation"]["prompts"],
        # only the scored part is tokenised: the rest is the derived tasks' (quantbench.evaltext)
        held_out_share=config["tasks_data"]["held_out_share"],
    script:
        "../scripts/tokenize_dataset.py"
