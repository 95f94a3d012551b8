# Short targets: one rule per configured precision and per model, so that one of them can be
# (re)built with one command: `snakemake --cores 1 gguf_q8_0`, `snakemake --cores 1 model_smol`.
# Each asks for the latency, quality and GPU trace records, and the kernel traces and accuracy
# records where the config asks for them (and builds what they need upstream); the summary and
# the report are left to `all`.
EXISTING_RULES = {r.name for r in workflow.rules}
PRECISION_TARGETS = qb_targets.rule_names(PRECISIONS, what="precision", taken=EXISTING_RULES)
MODEL_TARGETS = qb_targets.rule_names(MODELS, prefix="model_", what="model", taken=EXISTING_RULES)


for _precision, _target in PRECISION_TARGETS.items():

    rule:
        name:
            _target
        input:
            qb_targets.record_paths(MODELS, [_precision], TRACED, ACCURACY),
        localrule: True


for _model, _target in MODEL_TARGETS.items():

    rule:
        name:
            _target
        input:
            qb_targets.record_paths([_model], PRECISIONS, TRACED, ACCURACY),
        localrule: True
