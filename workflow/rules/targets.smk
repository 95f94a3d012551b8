# Short targets: one rule per configured precision and per model, so that one of them can be
# (re)built with one command: `snakemake --cores 1 gguf_q8_0`, `snakemake --cores 1 model_smol`.
# Each asks for the latency, quality and profile records (and builds what they need upstream);
# the summary and the report are left to `all`.
from quantbench import targets as qb_targets

EXISTING_RULES = {r.name for r in workflow.rules}
PRECISION_TARGETS = qb_targets.rule_names(PRECISIONS, what="precision", taken=EXISTING_RULES)
MODEL_TARGETS = qb_targets.rule_names(MODELS, prefix="model_", what="model", taken=EXISTING_RULES)


for _precision, _target in PRECISION_TARGETS.items():

    rule:
        name:
            _target
        input:
            expand(
                "results/{model}/{kind}/{precision}.json",
                model=MODELS,
                kind=qb_targets.KINDS,
                precision=[_precision],
            ),
        localrule: True


for _model, _target in MODEL_TARGETS.items():

    rule:
        name:
            _target
        input:
            expand(
                "results/{model}/{kind}/{precision}.json",
                model=[_model],
                kind=qb_targets.KINDS,
                precision=PRECISIONS,
            ),
        localrule: True
