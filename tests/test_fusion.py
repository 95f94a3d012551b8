"""The compiled path's fused projections (backends.fusion): the same logits and tokens as the
unfused model, the same bytes (the modules' weights are views into the fused tensor), and a
projection called on another input computes its own slice."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from quantbench import precisions
from quantbench.backends import load_backend
from quantbench.backends.fusion import fuse_projections


@pytest.fixture
def models(tiny_model):
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()
    fused = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()
    return plain, fused


def _bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _storages(model) -> int:
    return len({p.untyped_storage().data_ptr() for p in model.parameters()})


def test_fused_projections_compute_the_same_logits_from_the_same_bytes(models):
    plain, fused = models
    layers = plain.config.num_hidden_layers
    before_bytes, before_storages = _bytes(fused), _storages(fused)
    assert fuse_projections(fused) == 2 * layers
    assert _bytes(fused) == before_bytes
    # q/k/v share one tensor, gate/up another: 3 + 2 - 2 fewer storages a layer
    assert _storages(fused) == before_storages - 3 * layers
    attn = fused.model.layers[0].self_attn
    assert attn.k_proj.weight.untyped_storage().data_ptr() == \
        attn.q_proj.weight.untyped_storage().data_ptr()
    ids = torch.arange(5, 30)[None]
    with torch.inference_mode():
        want, got = plain(ids).logits, fused(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert fuse_projections(fused) == 0  # fused already: its forwards are no longer plain


def test_a_projection_called_on_another_input_computes_its_own_slice(models):
    plain, fused = models
    fuse_projections(fused)
    attn, ref = fused.model.layers[0].self_attn, plain.model.layers[0].self_attn
    x, y = torch.randn(1, 3, attn.q_proj.in_features), torch.randn(1, 3, attn.q_proj.in_features)
    with torch.inference_mode():
        attn.q_proj(x)
        torch.testing.assert_close(attn.k_proj(y), F.linear(y, ref.k_proj.weight))
        torch.testing.assert_close(attn.v_proj(x), F.linear(x, ref.v_proj.weight))
        # the group's product is not kept once its last projection ran
        torch.testing.assert_close(attn.k_proj(x), F.linear(x, ref.k_proj.weight))


def test_only_the_compiled_unquantised_path_fuses(tiny_model, tiny_tokens):
    """bf16-compiled fuses every layer and decodes the eager bf16 path's tokens (its compile
    check compares them too); eager bf16 is transformers' own forward, unfused."""
    prompt = [int(i) for i in np.load(tiny_tokens["ids"])[:20]]
    tokens, fused = {}, {}
    for name in ("bf16", "bf16-compiled"):
        backend = load_backend(precisions.get(name), tiny_model, device="cpu", threads=2,
                               n_ctx=40)
        first = backend.prefill(prompt)
        tokens[name] = [first] + [row[0] for row in backend.decode_run([first], 5).tokens]
        fused[name] = backend.info()["fused_projections"]
        backend.close()
    layers = 2
    assert fused == {"bf16": 0, "bf16-compiled": 2 * layers}
    assert tokens["bf16-compiled"] == tokens["bf16"]


def test_the_compiled_graph_multiplies_each_group_once(models):
    """Under torch.compile(fullgraph=True), the graph Dynamo captures holds one linear a group:
    q/k/v, o, gate/up and down a layer (4), and the LM head, against 7 a layer unfused."""
    plain, fused = models
    fuse_projections(fused)
    counts = {}

    def counting(name):
        def backend(gm, example_inputs):
            counts[name] = sum(node.op == "call_function" and node.target is F.linear
                               for node in gm.graph.nodes)
            return gm.forward
        return backend

    ids = torch.arange(5, 12)[None]
    with torch.inference_mode():
        for name, model in (("plain", plain), ("fused", fused)):
            torch._dynamo.reset()
            torch.compile(model, backend=counting(name), fullgraph=True)(ids)
    layers = plain.config.num_hidden_layers
    assert counts == {"plain": 7 * layers + 1, "fused": 4 * layers + 1}


@pytest.fixture(scope="module")
def torchao_pair(tiny_model):
    """torchao-int8wo on its compiled path, fused (the default) and not."""
    pytest.importorskip("torchao")
    return {fuse: load_backend(precisions.get("torchao-int8wo", {"fuse": fuse}), tiny_model,
                               device="cpu", threads=2, n_ctx=40) for fuse in (True, False)}


def test_a_torchao_precision_quantises_each_fused_group_whole(torchao_pair):
    """Loaded unquantised, fused, then quantised: each group's quantised whole holds exactly
    the separate weights' quantised rows (per-row scales), the bytes and the quantised layers
    are those of the unfused load, and the logits agree."""
    fused, plain = torchao_pair[True], torchao_pair[False]
    layers = fused.model.config.num_hidden_layers
    assert fused.info()["fused_projections"] == 2 * layers
    assert plain.info()["fused_projections"] == 0
    for name in ("quantised_linears", "torchao_config"):
        assert fused.info()["quantization"][name] == plain.info()["quantization"][name]
    assert fused.memory_parts()["weights_mib"] == pytest.approx(
        plain.memory_parts()["weights_mib"], rel=1e-3)
    mine, theirs = fused.model.model.layers, plain.model.model.layers
    for got, want in ((mine[1].self_attn, theirs[1].self_attn), (mine[0].mlp, theirs[0].mlp)):
        names = [n for n in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
                 if hasattr(want, n)]
        separate = torch.cat([getattr(want, n).weight.dequantize() for n in names])
        torch.testing.assert_close(got.fused_weight.dequantize(), separate, rtol=0, atol=0)
        assert all(getattr(got, n).weight.numel() == 0 for n in names)  # no copy kept
    ids = list(range(5, 25))
    np.testing.assert_allclose(fused.logits(ids), plain.logits(ids), rtol=1e-3, atol=1e-3)


def test_a_quantised_fused_projection_on_another_input_takes_its_slice(torchao_pair):
    fused, plain = torchao_pair[True], torchao_pair[False]
    attn, ref = fused.model.model.layers[0].self_attn, plain.model.model.layers[0].self_attn
    width = ref.k_proj.in_features
    x, y = torch.randn(1, 3, width), torch.randn(1, 3, width)
    with torch.inference_mode():
        attn.q_proj(x)
        torch.testing.assert_close(attn.k_proj(y), ref.k_proj(y), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(attn.v_proj(x), ref.v_proj(x), rtol=1e-4, atol=1e-4)


def test_a_group_torchao_cannot_take_whole_leaves_the_format_unfused_and_says_why(
        tiny_model, monkeypatch):
    pytest.importorskip("torchao")
    from quantbench.backends import hf

    def refuse(model, config):
        raise NotImplementedError("no fused layout")

    monkeypatch.setattr(hf, "quantise_fused", refuse)
    backend = load_backend(precisions.get("torchao-int8wo"), tiny_model, device="cpu",
                           threads=2, n_ctx=40)
    info = backend.info()
    assert info["fused_projections"] == 0
    assert info["fusion_refused"] == "NotImplementedError: no fused layout"
    assert info["quantization"]["quantised_linears"] == "14 of 15"  # quantised as it loads
