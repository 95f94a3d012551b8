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
