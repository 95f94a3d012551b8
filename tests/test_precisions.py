"""The relations between precisions, in one place (quantbench.precisions): baseline, twins."""

from __future__ import annotations

from quantbench import precisions

# Every precision of precisions.yaml with everything measured: its one baseline. bf16 first on
# the transformers side (eager against eager, compiled against compiled), gguf-f16 for llama.cpp,
# the fp32 export for ONNX; unquantized ones (a quantized KV cache alone included) have none.
BASELINE_WHEN_ALL_RAN = {
    "fp32": None, "fp16": None, "bf16": None, "fp16-compiled": None, "bf16-compiled": None,
    "bnb-int8": "bf16", "bnb-int8-t0": "bf16", "bnb-nf4": "bf16", "bnb-nf4-dq": "bf16",
    "bnb-fp4": "bf16", "bnb-fp4-dq": "bf16",
    "bnb-int8-compiled": "bf16-compiled", "bnb-nf4-compiled": "bf16-compiled",
    "bnb-fp4-compiled": "bf16-compiled",
    "torchao-int8wo": "bf16-compiled", "torchao-fp8wo": "bf16-compiled",
    "torchao-fp8dq": "bf16-compiled", "torchao-int8dq": "bf16-compiled",
    "torchao-int4wo": "bf16-compiled",
    "gguf-f32": None, "gguf-f16": None, "gguf-bf16": None,
    "gguf-q8_0": "gguf-f16", "gguf-q6_k": "gguf-f16", "gguf-q5_k_m": "gguf-f16",
    "gguf-q5_k_s": "gguf-f16", "gguf-q4_k_m": "gguf-f16", "gguf-q4_0": "gguf-f16",
    "gguf-q3_k_m": "gguf-f16", "gguf-q2_k": "gguf-f16",
    "gguf-f16-kvq8": None, "gguf-f16-kvq4": None,
    "gguf-q8_0-kvq8": "gguf-f16", "gguf-q8_0-kvq4": "gguf-f16",
    "gguf-q4_k_m-imat": "gguf-f16", "gguf-q3_k_m-imat": "gguf-f16", "gguf-q2_k-imat": "gguf-f16",
    "gguf-q4_k_m-imat-other": "gguf-f16",
    "gguf-iq4_xs": "gguf-f16", "gguf-iq3_xxs": "gguf-f16", "gguf-iq2_xs": "gguf-f16",
    "onnx-fp32": None, "onnx-int8": "onnx-fp32", "onnx-int4": "onnx-fp32",
}


def test_every_precision_of_the_table_has_one_baseline():
    everything = list(precisions.table())
    assert set(BASELINE_WHEN_ALL_RAN) == set(everything), "a precision without a row here"
    found = {name: precisions.baseline_of(name, everything) for name in everything}
    assert found == BASELINE_WHEN_ALL_RAN
    for name, base in found.items():
        p = precisions.get(name)
        assert (base is None) == (not p.quantized)


def test_the_baseline_is_the_next_measured_one_of_the_same_engine_never_another():
    assert precisions.baseline_of("gguf-q4_k_m", ["gguf-bf16", "gguf-f32", "bf16"]) == "gguf-bf16"
    assert precisions.baseline_of("gguf-q8_0", ["gguf-f32", "bf16"]) == "gguf-f32"
    assert precisions.baseline_of("bnb-int8", ["fp16", "fp32", "gguf-f16"]) == "fp16"
    assert precisions.baseline_of("bnb-int8", ["fp32"]) == "fp32"
    assert precisions.baseline_of("bnb-int8", ["gguf-f16"]) is None
    assert precisions.baseline_of("torchao-int8wo", ["gguf-f16"]) is None
    # bf16 before fp16, whichever the format computes in
    assert precisions.baseline_of("bnb-int8", ["fp16", "bf16", "fp32"]) == "bf16"
    assert precisions.baseline_of("torchao-int8wo", ["fp32", "fp16", "bf16"]) == "bf16"


def test_a_compiled_format_is_compared_with_a_compiled_baseline_first():
    assert precisions.baseline_of("bnb-nf4-compiled", ["fp16", "bf16-compiled"]) == \
        "bf16-compiled"
    assert precisions.baseline_of("torchao-int8wo", ["fp32", "fp16-compiled"]) == "fp16-compiled"
    assert precisions.baseline_of("bnb-nf4-compiled", ["fp16", "bf16"]) == "bf16"
    # an eager format against an eager baseline, where one ran
    assert precisions.baseline_of("bnb-nf4", ["fp16", "bf16-compiled"]) == "fp16"


def test_a_quantized_kv_cache_is_no_baseline_and_has_an_f16_twin():
    assert precisions.baseline_of("gguf-q4_0", ["gguf-f16-kvq8", "gguf-bf16"]) == "gguf-bf16"
    assert precisions.f16_twin("gguf-q8_0-kvq4", ["gguf-f16", "gguf-q8_0"]) == "gguf-q8_0"
    assert precisions.f16_twin("gguf-f16-kvq8", ["gguf-f16", "gguf-q8_0"]) == "gguf-f16"
    assert precisions.f16_twin("gguf-f16-kvq8", ["gguf-q8_0"]) is None
    assert precisions.f16_twin("gguf-f16", ["gguf-f16"]) is None


def test_a_compiled_precision_is_a_path_of_its_eager_twin():
    assert precisions.eager_twin("bnb-nf4-compiled") == "bnb-nf4"
    assert precisions.eager_twin("bnb-nf4") is None
    assert precisions.format_of("bf16-compiled") == "bf16"
    assert precisions.format_of("gguf-q8_0") == "gguf-q8_0"
