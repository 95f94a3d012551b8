"""The kernel traces: classification, the summary, and the stage on a tiny model on the CPU."""

import json

import pytest

from quantbench.kernel_summary import (
    CLASSES,
    KernelSummary,
    PrefillSummary,
    TraceRow,
    classify,
    summarise,
    summarise_prefill,
)
from quantbench.scenarios.kernels import run_kernels

TRACE = dict(prompt_tokens=16, steps=3, top=6, warmup_runs=1, device="cpu", threads=2)


@pytest.mark.parametrize(("name", "cls"), [
    ("aten::mm", "gemm"), ("aten::addmm", "gemm"), ("aten::linear", "gemm"),
    ("ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x4_tn", "gemm"),
    ("nvjet_tst_64x8_64x16_4x1_v_bz_TNT", "gemm"), ("kgemm_4bit_inference_naive", "gemm"),
    ("triton_tem_fused_mm_0", "gemm"), ("aten::_scaled_mm", "gemm"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
    ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "attention"),
    ("flash_fwd_splitkv_kernel", "attention"),
    ("void kDequantizeBlockwise<__nv_bfloat16, 512, 64, 8, 2>", "dequant"),
    ("kInt8VectorQuant", "dequant"), ("kdequant_mm_int32_fp16", "dequant"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add>",
     "elementwise"),
    ("triton_poi_fused__to_copy_mul_0", "elementwise"), ("aten::silu", "elementwise"),
    ("aten::mul", "elementwise"), ("aten::argmax", "elementwise"),
    ("Memcpy DtoH (Device -> Pinned)", "copy"), ("Memset (Device)", "copy"),
    ("aten::copy_", "copy"), ("aten::index_put_", "copy"), ("aten::cat", "copy"),
    ("TorchDynamo Cache Lookup", "other"), ("aten::empty_strided", "other"),
])
def test_kernels_are_classified_by_name(name, cls):
    assert classify(name) == cls


def test_the_summary_ranks_by_self_time_and_counts_per_token():
    rows = [TraceRow("aten::mm", 600.0, 12), TraceRow("kDequantizeBlockwise", 300.0, 12),
            TraceRow("aten::mul", 60.0, 30), TraceRow("aten::copy_", 40.0, 6)]
    s = summarise(rows, device="cuda", steps=3, batch_size=2, wall_s=0.002, launches=90, top=2)
    assert [t["name"] for t in s.top] == ["aten::mm", "kDequantizeBlockwise"]
    assert [t["share"] for t in s.top] == pytest.approx([0.6, 0.3])
    assert s.classes() == pytest.approx({"gemm": 0.6, "attention": 0.0, "dequant": 0.3,
                                         "elementwise": 0.06, "copy": 0.04, "other": 0.0})
    assert s.tokens == 6 and s.kernels_per_token == pytest.approx(60 / 6)
    assert s.launches_per_token == pytest.approx(15)
    assert s.busy_ms_per_step == pytest.approx(1000 / 1e3 / 3)
    assert s.busy_pct == pytest.approx(50.0)
    cpu = summarise(rows, device="cpu", steps=3, batch_size=1, wall_s=0.002)
    assert "launches_per_token" not in cpu.metrics()  # not measured on the CPU


def _checked_trace(rec):
    assert rec.status == "ok", rec.reason
    assert rec.details["top"] and len(rec.details["top"]) <= TRACE["top"]
    assert set(rec.details["classes"]) == set(CLASSES)
    assert sum(t["share"] for t in rec.details["top"]) <= 1 + 1e-9
    assert sum(rec.details["classes"].values()) == pytest.approx(1.0)
    assert all(0 <= v <= 1 for v in rec.details["classes"].values())
    assert rec.metrics["steps"] == TRACE["steps"] and rec.metrics["kernels_per_token"] > 0
    assert rec.metrics["busy_ms_per_step"] > 0 and rec.metrics["step_ms"] > 0
    assert len(json.dumps(rec.details) + json.dumps(rec.metrics)) < 100_000
    return rec


def test_a_cpu_trace_has_top_operators_and_classes(tiny_model, tiny_tokens, tmp_path):
    rec = _checked_trace(run_kernels("tiny", "fp32", tiny_model, tiny_tokens["ids"], **TRACE))
    assert rec.details["traced"] == "cpu operators"
    assert rec.metrics["gemm_pct"] > 0  # a Llama's decode multiplies matrices
    assert not set(rec.metrics) & {"graph_breaks", "recompiles"}  # eager: nothing compiled
    rec.save(tmp_path / "k.json")
    assert (tmp_path / "k.json").stat().st_size < 100_000


def test_a_trace_has_one_prefill_of_the_batch_too(tiny_model, tiny_tokens):
    """The prefill trace: its own figures beside the decode's, its operators (a prefill of
    2 x 16 tokens multiplies matrices), its classes summing to its busy time, its wall time
    longer than the time in its operators."""
    rec = _checked_trace(run_kernels("tiny", "fp32", tiny_model, tiny_tokens["ids"],
                                     **{**TRACE, "batch_size": 2}))
    m = rec.metrics
    assert set(PrefillSummary.metric_names()) <= set(m)
    assert 0 < m["prefill_busy_ms"] <= m["prefill_trace_ms"]
    assert m["prefill_gemm_pct"] > 0 and m["prefill_kernels"] > 0
    assert sum(m[f"prefill_{c}_pct"] for c in CLASSES) == pytest.approx(100.0)
    assert rec.details["prefill_top"] and rec.details["prefill_top"][0]["self_ms"] > 0


def test_the_prefill_summary_shares_the_decode_summary_s_classes():
    rows = [TraceRow("aten::mm", 600.0, 2), TraceRow("kDequantizeBlockwise", 300.0, 1),
            TraceRow("aten::copy_", 100.0, 4)]
    p = summarise_prefill(rows, wall_s=0.002, top=2)
    assert (p.prefill_trace_ms, p.prefill_busy_ms, p.prefill_busy_pct) == (2.0, 1.0, 50.0)
    assert (p.prefill_gemm_pct, p.prefill_dequant_pct, p.prefill_copy_pct) == (60.0, 30.0, 10.0)
    assert p.prefill_kernels == 7 and [t["name"] for t in p.top] == ["aten::mm",
                                                                      "kDequantizeBlockwise"]
    assert set(p.metrics()) <= set(PrefillSummary.metric_names())


def test_a_trace_at_a_batch_and_depth_decodes_every_sequence(tiny_model, tiny_tokens):
    rec = _checked_trace(run_kernels("tiny", "fp32", tiny_model, tiny_tokens["ids"],
                                     **{**TRACE, "batch_size": 2, "context_depth": 8}))
    assert rec.metrics["tokens"] == 2 * TRACE["steps"]
    assert rec.details["point"] == {"prompt_tokens": 16, "batch_size": 2, "context_depth": 8}


def test_a_clean_compiled_decode_counts_no_graph_breaks(tiny_model, tiny_tokens):
    rec = _checked_trace(run_kernels("tiny", "bf16-compiled", tiny_model, tiny_tokens["ids"],
                                     **TRACE))
    assert rec.metrics["graph_breaks"] == 0 and rec.metrics["recompiles"] == 0
    assert rec.metrics["graphs"] >= 1 and rec.metrics["compiles_in_trace"] == 0
    assert "cudagraph_skips" not in rec.metrics  # no CUDA graphs on the CPU: none counted


@pytest.fixture
def broken_mlp(monkeypatch):
    """Every Llama MLP forward breaks torch.compile's graph."""
    import torch
    from transformers.models.llama import modeling_llama

    forward = modeling_llama.LlamaMLP.forward

    def breaking(self, x):
        torch._dynamo.graph_break()
        return forward(self, x)

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", breaking)


def test_an_injected_graph_break_is_counted(broken_mlp, monkeypatch, tiny_model, tiny_tokens):
    import torch

    compile_ = torch.compile  # a compile that may break its graph, to count the breaks
    monkeypatch.setattr(torch, "compile",
                        lambda fn, **kw: compile_(fn, **{**kw, "fullgraph": False}))
    rec = _checked_trace(run_kernels("tiny", "bf16-compiled", tiny_model, tiny_tokens["ids"],
                                     **TRACE))
    assert rec.metrics["graph_breaks"] > 0
    assert rec.metrics["graphs"] > 1
    assert any("graph_break()" in r for r in rec.details["compile"]["graph_breaks"])


def test_a_graph_break_under_fullgraph_is_unsupported_not_a_count_of_zero(broken_mlp,
                                                                           tiny_model,
                                                                           tiny_tokens):
    """The backend compiles with fullgraph=True: a decode step with a graph break does not
    compile, an unsupported record naming the break (never a trace that counts 0)."""
    rec = run_kernels("tiny", "bf16-compiled", tiny_model, tiny_tokens["ids"], **TRACE)
    assert rec.status == "unsupported"
    assert "graph_break" in rec.reason and "graph_breaks" not in rec.metrics


def test_a_llamacpp_precision_is_not_traced(tiny_model, tiny_tokens):
    rec = run_kernels("tiny", "gguf-q8_0", tiny_model, tiny_tokens["ids"], **TRACE)
    assert rec.status == "unsupported" and "outside torch" in rec.reason


def test_every_summary_figure_reaches_the_metrics_by_name():
    s = summarise([TraceRow("aten::mm", 1.0, 1)], device="cpu", steps=1, batch_size=1,
                  wall_s=1e-5, compile_counts={"graph_breaks": 2, "recompiles": 0})
    assert s.metrics()["graph_breaks"] == 2 and s.metrics()["recompiles"] == 0
    assert set(s.metrics()) <= set(KernelSummary.metric_names())
