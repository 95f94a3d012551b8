# Importance matrices (quantbench.artifacts.imatrix): llama.cpp's llama-imatrix on the F16 GGUF over a
# calibration text that the scored windows never read; jobs only for the calibrations that the
# precisions run name (CALIBRATIONS).


rule locate_llama_tools:
    output:
        json="resources/llama-tools.json",
    log:
        "logs/locate_llama_tools.log",
    conda:
        "../../envs/llamacpp.yaml"
    params:
        folder=config["imatrix"]["tools"],
        repo=workflow.basedir,  # tools/build-llama-tools.sh is found from the Snakefile's folder
    script:
        "../scripts/locate_llama_tools.py"


rule make_calibration:
    input:
        text=rules.fetch_dataset.output.text,
        ids=rules.tokenize_dataset.output.ids,
        meta=rules.tokenize_dataset.output.meta,
        model=model_dir("{model}"),
        files=get_calibration_files,
    output:
        text="resources/models/{model}/imatrix/{calibration}.txt",
        split="resources/models/{model}/imatrix/{calibration}.split.json",
    log:
        "logs/make_calibration/{model}/{calibration}.log",
    conda:
        "../../envs/hf.yaml"
    params:
        spec=lambda wc: config["imatrix"]["calibrations"][wc.calibration],
        protocol=config["perplexity"],
        held_out_share=config["tasks_data"]["held_out_share"],
    script:
        "../scripts/make_calibration.py"


rule compute_imatrix:
    input:
        gguf="resources/models/{model}/gguf/f16.gguf",
        text=rules.make_calibration.output.text,
        split=rules.make_calibration.output.split,
        tools=rules.locate_llama_tools.output.json,
    output:
        imatrix="resources/models/{model}/imatrix/{calibration}.gguf",
        info="resources/models/{model}/imatrix/{calibration}.json",
    log:
        "logs/compute_imatrix/{model}/{calibration}.log",
    benchmark:
        "benchmarks/compute_imatrix/{model}/{calibration}.tsv"
    conda:
        "../../envs/llamacpp.yaml"
    threads: MEASURE_THREADS
    params:
        context_length=config["imatrix"]["context_length"],
        chunks=config["imatrix"]["chunks"],
    script:
        "../scripts/compute_imatrix.py"


rule quantize_gguf_imatrix:
    input:
        gguf="resources/models/{model}/gguf/f16.gguf",
        imatrix=rules.compute_imatrix.output.imatrix,
    output:
        gguf="resources/models/{model}/gguf/{qtype}-imat-{calibration}.gguf",
        info="resources/models/{model}/gguf/{qtype}-imat-{calibration}.json",
    log:
        "logs/quantize_gguf_imatrix/{model}/{qtype}-{calibration}.log",
    benchmark:
        "benchmarks/quantize_gguf_imatrix/{model}/{qtype}-{calibration}.tsv"
    conda:
        "../../envs/llamacpp.yaml"
    threads: MEASURE_THREADS
    script:
        "../scripts/quantize_gguf_imatrix.py"


rule compare_imatrix:
    input:
        files=[
            e[k]
            for e in imatrix_pairs()
            for k in ("imat_npz", "plain_npz", "imat_info", "plain_info", "split")
        ],
    output:
        csv="results/imatrix.csv",
    log:
        "logs/compare_imatrix.log",
    conda:
        "../../envs/report.yaml"
    params:
        entries=imatrix_pairs(),
    script:
        "../scripts/compare_imatrix.py"
