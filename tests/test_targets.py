"""Names of the short target rules (workflow/rules/targets.smk)."""

import pytest

from quantbench.config import ConfigError
from quantbench.targets import rule_names


def test_names_become_identifiers():
    assert rule_names(["gguf-q8_0", "fp32", "bf16-compiled"]) == {
        "gguf-q8_0": "gguf_q8_0", "fp32": "fp32", "bf16-compiled": "bf16_compiled"}
    assert rule_names(["smollm2-135m", "7b.v2"], prefix="model_") == {
        "smollm2-135m": "model_smollm2_135m", "7b.v2": "model_7b_v2"}


def test_a_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(ConfigError, match="precision '7b': its target rule name '7b' is not valid"):
        rule_names(["7b"], what="precision")


def test_two_names_with_one_rule_name_are_refused():
    with pytest.raises(ConfigError, match="models 'a.b' and 'a-b' would both get the target "
                                          "rule 'model_a_b'"):
        rule_names(["a.b", "a-b"], prefix="model_", what="model")


def test_a_rule_name_already_taken_is_refused():
    with pytest.raises(ConfigError, match="target rule name 'all' is already a rule"):
        rule_names(["all"], what="precision", taken={"all", "render_report"})


def test_kernel_traces_are_asked_for_the_torch_precisions_where_enabled():
    from quantbench import precisions
    from quantbench.targets import record_paths, traced_precisions

    config = {"precisions": ["fp32", "bnb-nf4", "bf16-compiled", "gguf-q8_0"]}
    table = precisions.table()
    torch_side = ["fp32", "bnb-nf4", "bf16-compiled"]
    assert traced_precisions(config, table, gpu=False) == []  # auto, the default: GPU only
    assert traced_precisions(config, table, gpu=True) == torch_side
    assert traced_precisions({**config, "kernels": {"enabled": True}}, table, False) == torch_side
    assert traced_precisions({**config, "kernels": {"enabled": False}}, table, True) == []
    paths = record_paths(["m"], ["fp32", "gguf-q8_0"], traced=["fp32"])
    assert paths == ["results/m/latency/fp32.json", "results/m/quality/fp32.json",
                     "results/m/gpu/fp32.json", "results/m/kernels/fp32.json",
                     "results/m/latency/gguf-q8_0.json", "results/m/quality/gguf-q8_0.json",
                     "results/m/gpu/gguf-q8_0.json"]
