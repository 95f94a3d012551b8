"""torchao precisions through transformers' TorchAoConfig on the tiny model (CPU), and the
records of those that cannot run: FP8 below compute capability 8.9, formats torchao cannot run
on the CPU, int4 without a kernel path, no torchao at all, no bitsandbytes."""

import sys

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from quantbench import precisions
from quantbench.backends.hf import MiscompiledError
from quantbench.errors import UnsupportedError
from quantbench.scenarios.latency import run_latency
from quantbench.scenarios.quality import run_quality

LATENCY = dict(prompt_tokens=[16], new_tokens=4, warmup_runs=1, measured_runs=2, device="cpu",
               threads=2)
QUALITY = dict(mode="llama.cpp", context_length=64, stride=None, max_windows=4,
               max_new_tokens=6, device="cpu", threads=2)
# what torchao runs on the CPU, and the config each loads with (int4: the CPU's opaque layout,
# mslk's default path and tinygemm's CUDA one being refused there)
ON_CPU = {"torchao-int8wo": "Int8WeightOnlyConfig(", "torchao-fp8wo": "Float8WeightOnlyConfig(",
          "torchao-int8dq": "Int8DynamicActivationInt8WeightConfig(",
          "torchao-int4wo": "PrototypeInt4WeightOnlyConfig("}


@pytest.fixture(autouse=True)
def fresh_compile_cache():
    """Each backend's compiled decode step is one more compiled version of the same function:
    torch keeps 8 per function and process (a job loads one backend), so a test starts afresh."""
    torch._dynamo.reset()


def _load(name, model, **kwargs):
    from quantbench.backends import load_backend

    return load_backend(precisions.get(name), model, device="cpu", threads=2, n_ctx=40, **kwargs)


def _relative_error(logits, reference):
    return np.linalg.norm(logits - reference) / np.linalg.norm(reference - reference.mean())


@pytest.fixture(scope="module")
def reference_logits(tiny_model, tiny_tokens):
    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:20]]
    return {name: _load(name, tiny_model).logits(ids) for name in ("fp32", "bf16")}


@pytest.mark.parametrize("precision", sorted(ON_CPU))
def test_torchao_precision_on_the_cpu_quantises_and_decodes_in_batches(
        precision, tiny_model, tiny_tokens, reference_logits):
    """Every linear layer but lm_head holds torchao's weights, counted at their stored size
    (transformers' footprint counts them at bf16); the logits stay near fp32's, further than
    bf16's rounding; the compiled static-cache decode of 3 sequences gives batch 1's tokens."""
    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:20]]
    one = _load(precision, tiny_model)
    info = one.info()
    assert info["compiled"] and info["compile_s"] > 0
    assert info["quantization"]["torchao_config"].startswith(ON_CPU[precision])
    assert info["quantization"]["quantised_linears"] == "14 of 15"
    bf16_mib = _load("bf16", tiny_model).info()["footprint_mib"]
    assert info["footprint_mib"] < (0.45 if "int4" in precision else 0.65) * bf16_mib
    assert one.memory_parts()["weights_mib"] == pytest.approx(info["footprint_mib"])

    logits = one.logits(ids)
    assert np.isfinite(logits).all()
    ref = reference_logits["fp32"]
    assert (_relative_error(reference_logits["bf16"], ref) < _relative_error(logits, ref)
            < 0.3)

    if one.refused:  # the compiled step of a batch of one disagreed with the eager forward
        assert list(one.refused) == [(1, 40)]
        assert _miscompiles_one_row(one)  # the refusal is torch's, not the check's
        with pytest.raises(MiscompiledError, match="disagrees with the eager forward"):
            one.prefill(ids)
        one.configure(3, 40)  # its own check passed
        rows = [one.prefill_batch(ids)]
        for _ in range(4):
            rows.append(one.decode_batch(rows[-1]))
        assert all(len(set(r)) == 1 for r in rows)
        return
    tokens = [one.prefill(ids)]
    for _ in range(4):
        tokens.append(one.decode(tokens[-1]))
    one.configure(3, 40)
    rows = [one.prefill_batch(ids)]
    for _ in range(4):
        rows.append(one.decode_batch(rows[-1]))
    assert rows == [[t] * 3 for t in tokens]


def _miscompiles_one_row(backend) -> bool:
    """Whether torch.compile of one of the model's quantised linear layers computes a single
    row (a batch of one decoding) far from the same layer run eagerly."""
    layer = next(m for m in backend.model.modules() if isinstance(m, torch.nn.Linear)
                 and is_traceable_wrapper_subclass(m.weight))
    x = torch.randn(1, 1, layer.in_features, dtype=torch.bfloat16,
                    generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        eager, compiled = layer(x).float(), torch.compile(layer)(x).float()
    return float((compiled - eager).norm() / eager.norm()) > 0.5


def test_torchao_quality_on_the_cpu(tiny_model, tiny_tokens, tmp_path):
    """Perplexity, KLD against fp32 and generations for each torchao precision the CPU runs;
    int4 weights lose more than int8 weights."""
    ref = run_quality("tiny", "fp32", tiny_model, tiny_tokens["ids"], tiny_tokens["prompts"],
                      tiny_model / "tokenizer.json", logprobs_out=tmp_path / "fp32.npz", **QUALITY)
    assert ref.status == "ok", ref.reason
    kld = {}
    for name in ON_CPU:
        rec = run_quality("tiny", name, tiny_model, tiny_tokens["ids"], tiny_tokens["prompts"],
                          tiny_model / "tokenizer.json", logprobs_out=tmp_path / f"{name}.npz",
                          reference=tmp_path / "fp32.npz", **QUALITY)
        assert rec.status == "ok", rec.reason
        if "generations_eager" in rec.details:
            # its compiled step was refused on this machine (the decode test above checks that
            # the refusal is genuine): its generations decoded eagerly
            assert name == "torchao-int8dq", rec.details["generations_eager"]
            assert "disagrees with the eager forward" in rec.details["generations_eager"]
        assert abs(rec.metrics["ppl"] / ref.metrics["ppl"] - 1) < 0.05
        assert len(rec.details["generations"]) == 2
        assert all(1 <= len(g["token_ids"]) <= 6 for g in rec.details["generations"])
        kld[name] = rec.metrics["kld_mean"]
    assert 0 < kld["torchao-int8wo"] < kld["torchao-int4wo"]
    assert 0 < kld["torchao-int8dq"] < kld["torchao-int4wo"]


def test_fp8_dynamic_activation_on_the_cpu_is_an_unsupported_record(tiny_model, tiny_tokens):
    rec = run_latency("tiny", "torchao-fp8dq", tiny_model, tiny_tokens["ids"], **LATENCY)
    assert rec.status == "unsupported"
    assert "torchao-fp8dq on cpu: torchao cannot run Float8DynamicActivationFloat8WeightConfig" \
        in rec.reason
    assert "requires CUDA compute capability ≥8.9" in rec.reason
    assert "decode_tok_s" not in rec.metrics


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device as the backend sees it, of the capability the test sets; loading a model
    fails loudly (a refusal must come before it)."""
    from quantbench import device
    from quantbench.backends import hf

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    capability = {"value": (8, 0)}
    monkeypatch.setattr(device, "cuda_problem", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability["value"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(hf.AutoModelForCausalLM, "from_pretrained", no_load)
    return capability


@pytest.mark.parametrize("precision", ["torchao-fp8wo", "torchao-fp8dq"])
def test_fp8_on_a_gpu_below_compute_capability_8_9_is_refused_before_loading(
        precision, fake_gpu, tiny_model, tiny_tokens):
    rec = run_latency("tiny", precision, tiny_model, tiny_tokens["ids"],
                      **{**LATENCY, "device": "cuda"})
    assert rec.status == "unsupported"
    assert (f"{precision}: FP8 needs a CUDA device of compute capability >= 8.9; cuda:0 is "
            "NVIDIA A100-SXM4-80GB, compute capability 8.0") in rec.reason


def test_fp8_on_a_gpu_of_compute_capability_8_9_passes_the_gate(fake_gpu, monkeypatch):
    from quantbench.backends import quantization

    fake_gpu["value"] = (8, 9)
    monkeypatch.setattr(quantization, "_torchao_problem", lambda make, device, dtype: None)
    config = quantization.torchao_config(precisions.get("torchao-fp8dq"), torch.device("cuda:0"))
    assert type(config.quant_type).__name__ == "Float8DynamicActivationFloat8WeightConfig"
    # per row for the activations and the weights
    assert [type(g).__name__ for g in config.quant_type.granularity] == ["PerRow", "PerRow"]


def test_int4_without_a_kernel_path_that_runs_names_what_is_missing():
    """Without the CPU's opaque layout no int4 path runs here: the default one needs mslk,
    tinygemm's needs a CUDA device."""
    from quantbench.backends import quantization

    p = precisions.get("torchao-int4wo", {"packing": ["plain", "tile_packed_to_4d"]})
    with pytest.raises(UnsupportedError) as err:
        quantization.torchao_config(p, torch.device("cpu"))
    message = str(err.value)
    assert message.startswith("torchao-int4wo on cpu: torchao cannot run Int4WeightOnlyConfig")
    assert "plain: ImportError: Requires mslk >= 1.0.0" in message
    assert "; tile_packed_to_4d: " in message


def test_without_torchao_a_torchao_precision_is_an_unsupported_record(
        monkeypatch, tiny_model, tiny_tokens):
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao fails
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    rec = run_latency("tiny", "torchao-int8wo", tiny_model, tiny_tokens["ids"], **LATENCY)
    assert rec.status == "unsupported"
    assert "torchao-int8wo: needs the torchao package" in rec.reason


@pytest.mark.parametrize("precision", ["bnb-int8-compiled", "bnb-nf4-compiled"])
def test_without_bitsandbytes_a_bitsandbytes_precision_is_an_unsupported_record(
        precision, monkeypatch, tiny_model, tiny_tokens):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes fails
    rec = run_latency("tiny", precision, tiny_model, tiny_tokens["ids"], **LATENCY)
    assert rec.status == "unsupported"
    assert f"{precision}: needs the bitsandbytes package" in rec.reason
    assert "decode_tok_s" not in rec.metrics


def test_a_format_that_quantises_no_layer_of_the_model_is_refused(tmp_path, sample_text):
    """int4 groups of 128 divide no input width of a model 192 wide with an FFN of 320: torchao
    leaves every weight in bf16, which must not be measured as int4."""
    from conftest import TINY

    from quantbench.artifacts.model import prepare_model
    from quantbench.backends import load_backend

    narrow = tmp_path / "hf"
    prepare_model({**TINY, "hidden_size": 192, "intermediate_size": 320}, narrow,
                  text_path=sample_text)
    with pytest.raises(UnsupportedError) as err:
        load_backend(precisions.get("torchao-int4wo"), narrow, device="cpu", threads=2, n_ctx=40)
    message = "torchao-int4wo: torchao quantised none of the model's 15 linear layers"
    assert message in str(err.value)


@pytest.mark.parametrize("tuning", [False, True])
def test_torchao_inductor_settings_only_where_the_precision_asks(tuning):
    """By default a torchao precision compiles with Inductor's settings as bf16-compiled does:
    torchao's recommended ones (coordinate-descent tuning of every kernel, set for the whole
    process) only with inductor_tuning, and then in the config it loads with."""
    from torch._inductor import config as inductor

    from quantbench.backends.quantization import torchao_config

    overrides = {"inductor_tuning": True} if tuning else None
    saved = inductor.save_config()  # every setting torchao's setter changes, restored after
    try:
        inductor.coordinate_descent_tuning = False
        config = torchao_config(precisions.get("torchao-int8wo", overrides), torch.device("cpu"))
        assert inductor.coordinate_descent_tuning is tuning  # the probe's quantize_ set it
    finally:
        inductor.load_config(saved)
    assert f"set_inductor_config={tuning}" in repr(config.quant_type)
