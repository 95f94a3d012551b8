"""The decode limit: a model's own weight products, timed (quantbench.scenarios.limit)."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM

from quantbench.scenarios.limit import measure_decode_limit, weight_shapes


def test_the_products_are_the_models_own_linear_layers(tiny_model):
    """The shapes timed are the model's linear weights, q/k/v and gate/up fused: the same
    parameter count as the model's nn.Linear layers (the LM head included)."""
    config = json.loads((tiny_model / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    shapes = weight_shapes(config)
    assert sum(o * i for o, i in shapes) == linear
    assert len(shapes) == 4 * config["num_hidden_layers"] + 1


def test_the_limit_is_measured_at_every_batch_size_on_the_cpu(tiny_model):
    out = measure_decode_limit(tiny_model, batch_sizes=[4, 1, 4], device="cpu", threads=1,
                               steps=2, repeats=2, warmup=1)
    assert out["device"] == "cpu" and out["dtype"] == "float32"
    assert [p["batch_size"] for p in out["points"]] == [1, 4]
    config = json.loads((tiny_model / "config.json").read_text())
    weight_bytes = 4 * sum(o * i for o, i in weight_shapes(config))
    for p in out["points"]:
        assert p["weight_bytes"] == weight_bytes
        assert p["step_ms"] > 0
        assert abs(p["tok_s"] - p["batch_size"] / (p["step_ms"] / 1e3)) < 1e-6 * p["tok_s"]
    assert "in a loop" in out["method"]
