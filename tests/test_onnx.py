"""The ONNX Runtime backend: a real export of the tiny model with a KV cache (transformers' ONNX
exporter), ONNX Runtime's int8 and int4 quantisers, and the scenarios run on them."""

import json
import sys

import numpy as np
import pytest

from quantbench import precisions
from quantbench.artifacts.onnx import GRAPH, quantize_onnx
from quantbench.backends import load_backend
from quantbench.scenarios.latency import run_latency
from quantbench.scenarios.quality import run_quality

LATENCY = dict(prompt_tokens=[8], new_tokens=4, warmup_runs=0, measured_runs=2,
               device="cpu", threads=2)
QUALITY = dict(mode="llama.cpp", context_length=64, stride=None, max_windows=4,
               max_new_tokens=6, device="cpu", threads=2)


def _load(name, artifact, **kw):
    return load_backend(precisions.get(name), artifact, device="cpu", threads=2,
                        n_ctx=kw.pop("n_ctx", 64), **kw)


def _greedy(prefill, decode, prompt, n=5):
    out = [prefill(prompt)]
    for _ in range(n - 1):
        out.append(decode(out[-1]))
    return out


def test_the_export_is_one_graph_with_a_kv_cache(onnx_dirs):
    import onnx

    manifest = json.loads((onnx_dirs["onnx-fp32"] / "quantbench_model.json").read_text())
    assert manifest["status"] == "ok" and manifest["exporter"].startswith("transformers.exporters")
    cache_in = [n for n in manifest["inputs"] if "cache." in n]
    cache_out = [n for n in manifest["outputs"] if "cache." in n]
    assert len(cache_in) == len(cache_out) == 2 * 2  # keys and values of the 2 layers
    assert {"input_ids", "logits_to_keep"} <= set(manifest["inputs"])
    graph = onnx.load(str(onnx_dirs["onnx-fp32"] / GRAPH), load_external_data=False).graph
    ids = next(i for i in graph.input if i.name == "input_ids").type.tensor_type.shape.dim
    assert all(d.dim_param for d in ids)  # batch and sequence stay dynamic
    assert set(manifest["weights"]) == {GRAPH, f"{GRAPH}.data"}


def test_onnx_fp32_decodes_the_greedy_tokens_of_transformers_fp32(onnx_dirs, tiny_model,
                                                                   tiny_tokens):
    """Prefill + decode on ONNX Runtime gives transformers' greedy tokens on the same weights;
    so does a prompt after a filled depth (twice: the depth is reused), and each row of a
    batch of 2."""
    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:28]]
    hf, ort = _load("fp32", tiny_model), _load("onnx-fp32", onnx_dirs["onnx-fp32"])
    want = _greedy(hf.prefill, hf.decode, ids)
    assert _greedy(ort.prefill, ort.decode, ids) == want
    ort.fill(ids[:16])
    for _ in range(2):
        assert _greedy(ort.prefill, ort.decode, ids[16:]) == want
    ort.configure(2, 64)
    ort.fill(ids[:16])
    assert _greedy(ort.prefill_batch, ort.decode_batch, ids[16:]) == [[t, t] for t in want]
    np.testing.assert_allclose(ort.logits(ids), hf.logits(ids), rtol=0, atol=1e-4)


def test_onnx_int8_logits_are_close_to_fp32_but_not_equal(onnx_dirs, tiny_tokens):
    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:48]]
    fp32 = _load("onnx-fp32", onnx_dirs["onnx-fp32"]).logits(ids)
    spread = fp32.max() - fp32.min()
    for name in ("onnx-int8", "onnx-int4"):
        q = _load(name, onnx_dirs[name]).logits(ids)
        diff = np.abs(q - fp32)
        assert diff.max() > 1e-3, name  # the weights were quantised
        assert diff.mean() < 0.05 * spread, name
        assert np.corrcoef(q.ravel(), fp32.ravel())[0, 1] > 0.95, name
    for name in ("onnx-int8", "onnx-int4"):  # the 7 linear layers of each of the 2 layers + lm_head
        manifest = json.loads((onnx_dirs[name] / "quantbench_model.json").read_text())
        assert manifest["quantizer"]["quantized_matmuls"] == 2 * 7 + 1
    sizes = {n: sum(f.stat().st_size for f in d.iterdir() if f.name.startswith(GRAPH))
             for n, d in onnx_dirs.items()}
    assert sizes["onnx-fp32"] > sizes["onnx-int8"] > sizes["onnx-int4"]


def test_the_quality_scenario_scores_onnx_against_the_reference(onnx_dirs, tiny_model,
                                                                 tiny_tokens, tmp_path):
    ppl = {}
    for p in ("fp32", "onnx-fp32", "onnx-int8"):
        artifact = tiny_model if p == "fp32" else onnx_dirs[p]
        rec = run_quality("tiny", p, artifact, tiny_tokens["ids"], tiny_tokens["prompts"],
                          tiny_model / "tokenizer.json", logprobs_out=tmp_path / f"{p}.npz",
                          reference=None if p == "fp32" else tmp_path / "fp32.npz", **QUALITY)
        assert rec.status == "ok", rec.reason
        assert rec.metrics["n_windows"] == 4 and len(rec.details["generations"]) == 2
        ppl[p] = rec.metrics["ppl"]
        if p == "onnx-fp32":
            assert rec.metrics["kld_mean"] < 1e-6
            assert rec.metrics["gen_exact_match_pct"] == 100
        elif p == "onnx-int8":
            assert rec.metrics["kld_mean"] > 1e-6
    assert abs(ppl["onnx-fp32"] / ppl["fp32"] - 1) < 1e-4
    assert ppl["onnx-int8"] != ppl["onnx-fp32"]


def test_the_latency_scenario_times_onnx_at_every_point(onnx_dirs, tiny_tokens):
    rec = run_latency("tiny", "onnx-int8", onnx_dirs["onnx-int8"], tiny_tokens["ids"],
                      batch_sizes=[1, 2], context_depths=[0, 16], **LATENCY)
    assert rec.status == "ok", rec.reason
    points = rec.details["points"]
    assert len(points) == 4 and all(p["status"] == "ok" for p in points)
    assert rec.metrics["decode_tok_s"] > 0 and rec.metrics["prefill_ms"] > 0
    assert rec.details["backend"]["engine"] == "onnxruntime"
    assert 0 < rec.metrics["weights_mib"] == rec.metrics["size_mib"]
    assert rec.metrics["disk_mib"] == pytest.approx(rec.metrics["size_mib"])
    assert rec.metrics["kv_cache_mib"] > 0


def test_a_quantiser_onnxruntime_lacks_gives_unsupported_records(onnx_dirs, tiny_model,
                                                                tiny_tokens, tmp_path,
                                                                monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization.matmul_nbits_quantizer", None)
    out = tmp_path / "int4"
    info = quantize_onnx(onnx_dirs["onnx-fp32"], out, onnx_type="int4")
    assert info["status"] == "unsupported" and "int4 quantiser" in info["reason"]
    assert not (out / GRAPH).exists()
    lat = run_latency("tiny", "onnx-int4", out, tiny_tokens["ids"], **LATENCY)
    qual = run_quality("tiny", "onnx-int4", out, tiny_tokens["ids"], tiny_tokens["prompts"],
                       tiny_model / "tokenizer.json", logprobs_out=tmp_path / "q.npz", **QUALITY)
    for rec in (lat, qual):
        assert rec.status == "unsupported" and "int4 quantiser" in rec.reason


def test_onnx_on_cuda_is_unsupported(onnx_dirs):
    from quantbench.backends.onnx import OnnxBackend
    from quantbench.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="CPU provider only"):
        OnnxBackend(precisions.get("onnx-fp32"), onnx_dirs["onnx-fp32"], device="cuda",
                    threads=1, n_ctx=16)
