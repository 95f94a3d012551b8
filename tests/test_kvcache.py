"""llama.cpp KV-cache types (type_k / type_v): the context, its memory, the refusals, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from snakemake.utils import validate

from quantbench import config as qb_config
from quantbench import kvcache, precisions
from quantbench.errors import ConfigError, UnsupportedError
from quantbench.precisions import Precision
from quantbench.report.aggregate import SUMMARY_COLUMNS, TEXT_COLUMNS
from quantbench.report.markdown import report_text
from quantbench.report.variants import kv_cache_findings, kv_cache_rows

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
RANDOM = {"source": "random", "architecture": "llama", "hidden_size": 256, "num_layers": 2,
          "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 512, "vocab_size": 512,
          "max_position_embeddings": 256, "seed": 0}


def _gguf(kv: str | None, flash_attn: str = "on") -> Precision:
    settings = {"gguf_type": "f16", "made_by": "convert", "flash_attn": flash_attn}
    if kv:
        settings.update(type_k=kv, type_v=kv)
    return Precision(f"gguf-f16-kv{kv or 'f16'}", "llama.cpp", settings)


def _backend(precision, path, n_ctx=128):
    from quantbench.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(precision, path, device="cpu", threads=2, n_ctx=n_ctx)


def _log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _kld(p, q):
    """Mean KL(p || q) per position of two log-softmax arrays."""
    return float((np.exp(p) * (p - q)).sum(axis=1).mean())


def test_a_quantized_kv_cache_decodes_with_logits_close_to_but_not_those_of_f16(
        tiny_gguf, tiny_tokens):
    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:96]]
    f16 = _log_softmax(_backend(_gguf(None), tiny_gguf["f16"]).logits(ids))
    # what a cache that lost its contents gives: each token scored alone (measured KLD ~0.1)
    alone = _backend(_gguf(None), tiny_gguf["f16"])
    lost = _kld(f16, _log_softmax(np.stack([alone.logits([t])[0] for t in ids])))
    kld = {}
    for kv in ("q8_0", "q4_0"):
        quant = _backend(_gguf(kv), tiny_gguf["f16"])
        got = _log_softmax(quant.logits(ids))
        # the cache's type reached the context: every position reads its K/V back from the cache
        # (measured max |difference| 8.5e-3 for q8_0, 0.11 for q4_0; f16 twice: exactly 0)
        assert np.abs(got - f16).max() > 1e-3
        kld[kv] = _kld(f16, got)
        token = quant.prefill(ids[:16])
        assert 0 <= quant.decode(token) < quant.n_vocab
        assert quant.info()["type_k"] == quant.info()["type_v"] == kv
    # close to f16 (measured 1.4e-6 and 3.9e-4), far below a lost cache, and the coarser
    # cache loses more
    assert kld["q8_0"] < 1e-5
    assert kld["q4_0"] < 4e-3 < lost / 10
    assert kld["q8_0"] < kld["q4_0"]


def test_memory_parts_report_the_kv_cache_bytes_of_its_type(tiny_gguf, tiny_model):
    from quantbench.roofline import Shape

    shape = Shape.from_config(tiny_model / "config.json")
    assert kvcache.elem_bytes({"type_k": "q8_0", "type_v": "q4_0"}) == (34 / 32 + 18 / 32) / 2
    per_token = {}
    for kv in (None, "q8_0", "q4_0"):
        backend = _backend(_gguf(kv), tiny_gguf["f16"], n_ctx=2048)
        info = backend.info()
        elem = kvcache.elem_bytes(_gguf(kv).settings)
        assert info["kv_elem_bytes"] == elem
        # llama.cpp logs its buffers in MiB to two decimals
        assert backend.memory_parts()["kv_cache_mib"] == pytest.approx(
            shape.kv_bytes_per_token(elem) * info["n_ctx"] / 2**20, abs=0.006)
        per_token[kv] = info["kv_bytes_per_token"]
        backend.close()
    assert per_token[None] > per_token["q8_0"] > per_token["q4_0"]
    assert per_token["q8_0"] == pytest.approx(shape.kv_bytes_per_token(34 / 32), rel=0.005)


def test_a_quantized_v_cache_without_flash_attention_is_refused_before_loading(tmp_path):
    with pytest.raises(UnsupportedError, match="q8_0 V cache needs flash attention"):
        _backend(_gguf("q8_0", flash_attn="off"), tmp_path / "absent.gguf")
    # a quantized K cache alone does not need it
    assert kvcache.problem({"type_k": "q8_0", "flash_attn": "off"}) is None
    assert "multiple of 32; this model's is 48" in kvcache.problem({"type_v": "q4_0"}, 48)
    assert kvcache.problem({"type_v": "q4_0"}, 64) is None
    assert "type_k 'q5_1' is not one of f16, q8_0, q4_0" in kvcache.problem({"type_k": "q5_1"})


def _config(**overrides) -> dict:
    cfg = {"models": {"r": dict(RANDOM)}, "precisions": ["gguf-f16-kvq8"], **overrides}
    validate(cfg, str(SCHEMA))
    return cfg


def test_the_config_check_refuses_a_kv_cache_llama_cpp_would_refuse():
    qb_config.check(_config())
    qb_config.check(_config(precision_settings={"gguf-f16-kvq8": {"flash_attn": "on"}}))
    with pytest.raises(ConfigError, match="gguf-f16-kvq8: a q8_0 V cache needs flash attention"):
        qb_config.check(_config(precision_settings={"gguf-f16-kvq8": {"flash_attn": "off"}}))
    with pytest.raises(ConfigError, match="model 'r': a q8_0 K cache needs a head size that is "
                                          "a multiple of 32; this model's is 16"):
        qb_config.check(_config(models={"r": {**RANDOM, "num_heads": 16, "num_kv_heads": 2}}))


def test_the_kv_precisions_of_the_table_have_a_quantized_cache():
    # their relations (f16 twin, no baseline) are tested in tests/test_precisions.py
    for name in ("gguf-f16-kvq8", "gguf-f16-kvq4", "gguf-q8_0-kvq8", "gguf-q8_0-kvq4"):
        assert kvcache.quantized(precisions.get(name).settings)


def _summary(q8_ci=(0.5, 1.5), q4_ci=(-0.2, 0.4), q4_bytes=12960.0) -> pd.DataFrame:
    rows = [
        {"precision": "gguf-f16", "kv_bytes_per_token": 23040.0},
        {"precision": "gguf-f16-kvq8", "kv_bytes_per_token": 12240.0, "kv_twin": "gguf-f16",
         "kv_ppl_delta_pct": 1.0, "kv_ppl_delta_pct_ci_low": q8_ci[0],
         "kv_ppl_delta_pct_ci_high": q8_ci[1], "kv_kld_mean": 2e-3},
        {"precision": "gguf-f16-kvq4", "kv_bytes_per_token": q4_bytes, "kv_twin": "gguf-f16",
         "kv_ppl_delta_pct": 0.1, "kv_ppl_delta_pct_ci_low": q4_ci[0],
         "kv_ppl_delta_pct_ci_high": q4_ci[1], "kv_kld_mean": 9e-3},
    ]
    df = pd.DataFrame([{"model": "m", "backend": "llama.cpp", "status": "ok",
                        "decode_tok_s": 50.0, "size_mib": 260.0, "peak_mem_mib": 400.0,
                        "ppl": 10.0, **r} for r in rows]).reindex(columns=SUMMARY_COLUMNS)
    numeric = [c for c in SUMMARY_COLUMNS if c not in TEXT_COLUMNS]
    df[numeric] = df[numeric].astype(float)
    return df


def _points() -> pd.DataFrame:
    """Points at depths 0 and 2048, batch 1 (the columns aggregate writes)."""
    rows = []
    for name, tok_s in (("gguf-f16", 40.0), ("gguf-f16-kvq8", 44.0), ("gguf-f16-kvq4", 43.0)):
        for depth, slow in ((0, 1.0), (2048, 2.0)):
            v = tok_s / slow
            rows.append({"model": "m", "precision": name, "backend": "llama.cpp",
                         "family": "llama.cpp", "status": "ok", "reason": None,
                         "prompt_tokens": 64, "batch_size": 1, "context_depth": depth,
                         "prefill_ms": 5.0, "prefill_tok_s": 64 / 5e-3, "decode_tok_s": v,
                         "decode_tok_s_ci_low": v * 0.99, "decode_tok_s_ci_high": v * 1.01,
                         "decode_tok_s_per_seq": v, "decode_steady_tok_s": v,
                         "token_ms_p50": 1e3 / v, "token_ms_p90": 1.1e3 / v,
                         "token_ms_p99": 1.2e3 / v, "first_step_ms": 2.0,
                         "decode_ctx_mean": depth + 72, "peak_mem_mib": 400.0 + depth / 100,
                         "kv_cache_mib": None, "weights_mib": 260.0, "energy_j_per_tok": None,
                         "device": "cpu", "gpu_name": None, "run_id": "r"})
    return pd.DataFrame(rows)


def test_the_kv_cache_table_and_sentences_hold_only_when_measured():
    rows = {r["precision"]: r for r in kv_cache_rows(_summary(), _points())}
    assert set(rows) == {"gguf-f16-kvq8", "gguf-f16-kvq4"}
    q8 = rows["gguf-f16-kvq8"]
    assert q8["saved_bytes_per_token"] == 23040.0 - 12240.0
    assert q8["depth"] == 2048 and q8["decode_tok_s"] == 22.0 and q8["twin_decode_tok_s"] == 20.0
    kinds = {f.precision: f for f in kv_cache_findings(list(rows.values()))}
    assert kinds["gguf-f16-kvq8"].kind == "kv_cache_tradeoff"  # interval above zero
    assert kinds["gguf-f16-kvq8"].text.startswith(
        "m: gguf-f16-kvq8 (q8_0/q8_0 KV cache) holds 12,240 bytes per token of context against "
        "23,040 for gguf-f16 (the same weights, f16 KV): 10,800 bytes (47 %) saved per token, "
        "10.55 MiB per 1,024 tokens; the quality lost: perplexity +1.00 % [95 % CI +0.50, "
        "+1.50] against gguf-f16")
    assert kinds["gguf-f16-kvq4"].kind == "kv_cache_no_clear_loss"  # interval holds zero
    # the conditions flipped: q8's interval now holds zero, q4 is measured no smaller
    flipped = kv_cache_rows(_summary(q8_ci=(-0.1, 1.5), q4_bytes=23040.0), _points())
    kinds = {f.precision: f.kind for f in kv_cache_findings(flipped)}
    assert kinds == {"gguf-f16-kvq8": "kv_cache_no_clear_loss",
                     "gguf-f16-kvq4": "kv_cache_no_saving"}
    # no f16 twin measured: no row, no sentence, no section
    alone = _summary()[lambda d: d["precision"] != "gguf-f16"]
    assert kv_cache_rows(alone, _points()) == []
    config = {"dataset": {"name": "britannica"},
              "latency": {"prompt_tokens": [64], "new_tokens": 32, "batch_size": 1,
                          "warmup_runs": 3, "measured_runs": 20},
              "perplexity": {"mode": "llama.cpp", "context_length": 2048, "max_windows": 8},
              "report": {"quality_budget_pct": 2.0}}
    assert "### KV-cache types" not in report_text(alone, reference="gguf-f16", config=config)
    text = report_text(_summary(), reference="gguf-f16", config=config, points=_points())
    assert "### KV-cache types (llama.cpp)" in text
    assert ("| m | gguf-f16-kvq8 | q8_0/q8_0 | gguf-f16 | 12,240 | 23,040 | 10,800 (47 %) | "
            "1.00 [0.50, 1.50] | 2.00e-03 | 2048 | 22.0 | 20.0 |") in text
