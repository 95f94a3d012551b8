import dataclasses
import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from quantbench.backends.base import BackendBase
from quantbench.errors import ConfigError, UnsupportedError
from quantbench.points import OperatingPoint
from quantbench.records import Record
from quantbench.scenarios import common
from quantbench.scenarios.gpu import run_gpu, trace_metrics
from quantbench.scenarios.latency import (
    Timings,
    decode_rates,
    point_figures,
    pool_processes,
    run_latency,
)
from quantbench.scenarios.quality import run_quality

LATENCY = dict(prompt_tokens=[16, 32], new_tokens=8, warmup_runs=1, measured_runs=3,
               device="cpu", threads=2)
QUALITY = dict(mode="llama.cpp", context_length=64, stride=None, max_windows=4,
               max_new_tokens=6, device="cpu", threads=2)


@pytest.fixture(scope="module")
def artifacts(tiny_model, tiny_gguf):
    return {"fp32": tiny_model, "bf16": tiny_model, "bf16-compiled": tiny_model,
            "bnb-nf4-compiled": tiny_model,
            "gguf-f16": tiny_gguf["f16"],
            "gguf-q8_0": tiny_gguf["q8_0"], "gguf-q4_k_m": tiny_gguf["q4_k_m"]}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "gguf-f16", "gguf-q4_k_m"])
def test_latency_record_has_every_figure_with_spread(precision, artifacts, tiny_tokens, tmp_path):
    rec = run_latency("tiny", precision, artifacts[precision], tiny_tokens["ids"], **LATENCY)
    assert rec.status == "ok", rec.reason
    m = rec.metrics
    assert m["decode_tok_s"] > 0 and m["prefill_ms"] > 0 and m["load_s"] > 0
    # one process: no interval, and the record says why
    assert m["decode_tok_s_ci95"] == [None, None]
    assert rec.details["interval"].startswith("unavailable: 1 process")
    assert [p["process"] for p in rec.details["processes"]] == [1]
    assert m["decode_token_ms_p50"] <= m["decode_token_ms_p90"] <= m["decode_token_ms_p99"]
    assert m["decode_steady_tok_s"] > 0 and m["decode_first_step_ms"] > 0
    assert m["peak_mem_mib"] >= m["rss_before_load_mib"] > 0
    assert m["size_mib"] > 0 and m["disk_mib"] > 0
    points = {p["prompt_tokens"]: p for p in rec.details["points"]}
    assert set(points) == {16, 32}  # every measured prompt length is kept
    assert all(p["runs"] == 3 and p["steps"] == 3 * 8 and p["status"] == "ok"
               and p["processes"] == 1 for p in points.values())
    assert points[16]["decode_tok_s"] == m["decode_tok_s"]  # the headline is the first prompt
    assert rec.provenance["config_hash"] and rec.provenance["packages"]["torch"]
    rec.save(tmp_path / "r.json")
    assert Record.load(tmp_path / "r.json").metrics["decode_tok_s"] == m["decode_tok_s"]


def test_latency_in_three_fresh_processes_pools_their_runs(artifacts, tiny_tokens):
    """latency.processes: each process a fresh load, warm-up and measured runs; a point's
    speed is the mean of the processes' means, with its Student t interval over them, and
    every process's own figures stay in the record."""
    rec = run_latency("tiny", "gguf-q8_0", artifacts["gguf-q8_0"], tiny_tokens["ids"],
                      **{**LATENCY, "processes": 3})
    assert rec.status == "ok", rec.reason
    procs = rec.details["processes"]
    assert [p["process"] for p in procs] == [1, 2, 3]
    assert all(p["status"] == "ok" and p["load_s"] > 0 for p in procs)
    pids = {p["pid"] for p in procs}
    assert len(pids) == 3 and os.getpid() not in pids  # three fresh processes
    point = next(p for p in rec.details["points"] if p["prompt_tokens"] == 16)
    own = [next(q for q in p["points"] if q["prompt_tokens"] == 16) for p in procs]
    means = [q["decode_tok_s"] for q in own]
    assert all(q["decode_tok_s_ci_low"] is None for q in own)  # one process has none
    assert point["processes"] == 3 and point["runs"] == 3 * 3 and point["steps"] == 9 * 8
    assert point["decode_tok_s"] == pytest.approx(np.mean(means))
    half = 4.302653 * np.std(means, ddof=1) / np.sqrt(3)
    low = max(np.mean(means) - half, 0.0)  # a speed's interval stops at 0 tok/s
    assert point["decode_tok_s_ci_low"] == pytest.approx(low)
    assert rec.metrics["decode_tok_s_ci95"] == pytest.approx([low, np.mean(means) + half])
    assert "Student t" in rec.details["interval"] and "3 processes" in rec.details["interval"]
    assert min(q["prefill_ms"] for q in own) <= point["prefill_ms"] <= max(
        q["prefill_ms"] for q in own)


def _timings(tok_s, *, steps_ms=(1.0, 2.0), energy=None):
    """One process's timings; ``energy``: its decode J/token (prefill: a tenth of it)."""
    return Timings(ttft_ms=[5.0] * len(tok_s), step_ms=list(steps_ms) * len(tok_s),
                   tok_s=list(tok_s), steady_tok_s=list(tok_s), first_step_ms=[1.0] * len(tok_s),
                   energy={} if energy is None else {"decode_j_per_tok": energy,
                                                     "prefill_j_per_tok": energy / 10},
                   peak_mem_mib=100.0)


def test_a_point_pooled_over_processes_takes_its_interval_over_their_means():
    pt = OperatingPoint(batch_size=2, context_depth=0, prompt_tokens=16)
    procs = [_timings([10.0, 12.0], energy=1.0), _timings([20.0, 22.0], energy=2.0),
             _timings([15.0, 15.0], energy=3.0)]
    p = point_figures(pt, procs, new_tokens=2)
    assert p.processes == 3 and p.runs == 6 and p.steps == 12
    assert p.decode_tok_s == pytest.approx(np.mean([11.0, 21.0, 15.0]))
    half = 4.302653 * np.std([11.0, 21.0, 15.0], ddof=1) / np.sqrt(3)
    assert (p.decode_tok_s_ci_low, p.decode_tok_s_ci_high) == pytest.approx(
        (p.decode_tok_s - half, p.decode_tok_s + half))
    runs = [10.0, 12.0, 20.0, 22.0, 15.0, 15.0]
    assert p.decode_cv == pytest.approx(np.std(runs, ddof=1) / np.mean(runs))  # every run's
    # each phase's J/token: the mean of the processes'
    assert (p.decode_j_per_tok, p.prefill_j_per_tok) == pytest.approx((2.0, 0.2))
    # a process without the energy counter: no energy figure, rather than a partial one
    partial = point_figures(pt, [*procs[:2], _timings([15.0])], 2)
    assert partial.decode_j_per_tok is None and partial.prefill_j_per_tok is None
    one = point_figures(pt, procs[:1], new_tokens=2)
    assert one.decode_tok_s == 11.0 and one.decode_tok_s_ci_low is None
    # processes far apart: the interval stops at 0 tok/s, not below
    apart = point_figures(pt, [_timings([1.0]), _timings([6.0]), _timings([7.0])], 2)
    assert apart.decode_tok_s_ci_low == 0.0 and apart.decode_tok_s_ci_high > 7.0


def _result(process_tok_s: float | None, *, status="ok"):
    """One process's result as measure_once returns it (one point, batch 1, prompt 16); None:
    a process that died before it made a record."""
    pt = OperatingPoint(batch_size=1, context_depth=0, prompt_tokens=16)
    if process_tok_s is None:
        return {"record": None, "status": "error", "reason": "process 2 of 3: exited with 1"}
    t = _timings([process_tok_s] * 2)
    point = point_figures(pt, [t], new_tokens=2)
    rec = Record("latency", "tiny", "gguf-f16", "llama.cpp", status=status,
                 metrics={"load_s": 0.1, "other_cpu_share": process_tok_s / 1000},
                 details={"points": [point.to_dict()]})
    return {"record": dataclasses.asdict(rec), "timings": {pt.label(): dataclasses.asdict(t)}}


def test_a_process_that_failed_is_kept_and_the_interval_is_over_those_that_measured():
    pt = OperatingPoint(batch_size=1, context_depth=0, prompt_tokens=16)
    rec = pool_processes([_result(10.0), _result(None), _result(14.0)], [pt], pt, 2)
    assert rec.status == "ok"
    assert [p["status"] for p in rec.details["processes"]] == ["ok", "error", "ok"]
    assert "exited with 1" in rec.details["processes"][1]["reason"]
    assert rec.metrics["decode_tok_s"] == 12.0
    assert rec.metrics["decode_tok_s_ci95"] == pytest.approx([0.0, 12 + 12.706205 * 2])
    assert "2 processes" in rec.details["interval"]
    assert rec.metrics["other_cpu_share"] == 0.014  # the most disturbed process's
    alone = pool_processes([_result(10.0), _result(None)], [pt], pt, 2)
    assert alone.metrics["decode_tok_s_ci95"] == [None, None]
    assert alone.details["interval"].startswith("unavailable: 1 process")


def test_a_first_process_that_measured_nothing_ends_the_series(monkeypatch, artifacts,
                                                               tiny_tokens):
    from quantbench.scenarios import latency

    calls = []

    def refused(target, precision, kwargs, *, timeout_s=None):
        calls.append(kwargs)
        rec = Record("latency", "tiny", precision, "llama.cpp", status="unsupported",
                     reason="UnsupportedError: not here")
        return {"record": dataclasses.asdict(rec), "timings": {}}

    monkeypatch.setattr(latency, "call_fresh", refused)
    rec = run_latency("tiny", "gguf-f16", artifacts["gguf-f16"], tiny_tokens["ids"],
                      **{**LATENCY, "processes": 3})
    assert len(calls) == 1 and calls[0]["processes"] == 3
    assert rec.status == "unsupported" and rec.reason == "UnsupportedError: not here"
    assert [p["status"] for p in rec.details["processes"]] == ["unsupported"]


def test_a_process_that_dies_is_an_error_record_naming_it(monkeypatch, artifacts, tiny_tokens):
    from quantbench.scenarios import latency

    def dies(target, precision, kwargs, *, timeout_s=None):
        raise latency.FreshProcessError("exited with status -11 (its output is in the log)")

    monkeypatch.setattr(latency, "call_fresh", dies)
    rec = run_latency("tiny", "gguf-f16", artifacts["gguf-f16"], tiny_tokens["ids"],
                      **{**LATENCY, "processes": 3})
    assert rec.status == "error" and rec.reason.startswith("process 1 of 3: exited with")
    assert rec.provenance["config_hash"] and "decode_tok_s" not in rec.metrics


def test_steady_decode_rate_leaves_out_the_first_step_after_the_prefill():
    # a first step of 10 ms (graph re-capture) and three of 1 ms, batch of two sequences
    every, steady = decode_rates([0.010, 0.001, 0.001, 0.001], batch_size=2)
    assert every == pytest.approx(2 * 4 / 0.013)
    assert steady == pytest.approx(2 * 3 / 0.003)
    assert decode_rates([0.002])[1] is None


def test_quantised_weights_are_smaller(artifacts, tiny_tokens):
    sizes = {p: run_latency("tiny", p, artifacts[p], tiny_tokens["ids"], **LATENCY)
             .metrics["size_mib"] for p in ("fp32", "gguf-f16", "gguf-q4_k_m")}
    assert sizes["fp32"] > sizes["gguf-f16"] > sizes["gguf-q4_k_m"]


def test_same_ids_same_windows_give_matching_perplexity(artifacts, tiny_tokens, tmp_path):
    ppl, kld = {}, {}
    for p in ("fp32", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m"):
        ref = None if p == "fp32" else tmp_path / "fp32.npz"
        rec = run_quality("tiny", p, artifacts[p], tiny_tokens["ids"], tiny_tokens["prompts"],
                          artifacts["fp32"] / "tokenizer.json", logprobs_out=tmp_path / f"{p}.npz",
                          reference=ref, **QUALITY)
        assert rec.status == "ok", rec.reason
        assert rec.details["is_reference"] == (p == "fp32")
        if ref is None:  # the reference's noise floor: itself through its stored top-k
            assert abs(rec.metrics["kld_floor_self"]) < 1e-6
        else:
            kld[p] = rec.metrics["kld_mean"]
            assert rec.details["interval_method"].startswith("block bootstrap over 4 windows")
            assert 0 <= rec.metrics["gen_exact_match_pct"] <= 100
            assert rec.metrics["delta_p_p01_pct"] <= rec.metrics["delta_p_p99_pct"]
            # the per-position arrays a paired A/B of two precisions reads (imatrix_ab)
            with np.load(tmp_path / f"{p}.npz") as stored:
                assert stored["window_len"].tolist() == [64 - 1 - 32] * 4
                assert stored["dnll"].mean() == pytest.approx(rec.metrics["ln_ppl_ratio"])
                assert stored["kld"].mean() == pytest.approx(rec.metrics["kld_mean"])
        assert rec.metrics["n_windows"] == 4
        assert rec.metrics["n_tokens"] == 4 * (64 - 1 - 32)
        assert len(rec.details["generations"]) == 2
        assert all(1 <= len(g["token_ids"]) <= 6 for g in rec.details["generations"])
        ppl[p] = rec.metrics["ppl"]
    # a random model predicts about uniformly over its 512 tokens
    assert 200 < ppl["fp32"] < 1500
    assert abs(ppl["gguf-f16"] / ppl["fp32"] - 1) < 0.005
    assert abs(ppl["gguf-q4_k_m"] / ppl["fp32"] - 1) >= abs(ppl["gguf-q8_0"] / ppl["fp32"] - 1)
    assert 0 <= kld["gguf-f16"] < kld["gguf-q8_0"] < kld["gguf-q4_k_m"]


def test_random_weights_quality_is_not_applicable(artifacts, tiny_tokens, tmp_path):
    rec = run_quality("tiny", "fp32", artifacts["fp32"], tiny_tokens["ids"],
                      tiny_tokens["prompts"], artifacts["fp32"] / "tokenizer.json",
                      logprobs_out=tmp_path / "x.npz", applicable=False, **QUALITY)
    assert rec.status == "not_applicable" and "random weights" in rec.reason
    assert (tmp_path / "x.npz").is_file()
    assert "ppl" not in rec.metrics


@pytest.mark.parametrize(("exc", "status"), [
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
    (UnsupportedError("bnb-fp4 on cpu: not implemented"), "unsupported"),
    (RuntimeError("kernel exploded"), "error"),
])
def test_failures_become_records(monkeypatch, artifacts, tiny_tokens, tmp_path, exc, status):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(common, "load_backend", boom)
    rec = run_latency("tiny", "fp32", artifacts["fp32"], tiny_tokens["ids"], **LATENCY)
    assert rec.status == status and str(exc) in rec.reason
    assert "decode_tok_s" not in rec.metrics
    rec.save(tmp_path / "fail.json")
    assert json.loads((tmp_path / "fail.json").read_text())["status"] == status


def test_gpu_trace_without_gpu_says_so(artifacts, tiny_tokens):
    rec = run_gpu("tiny", "fp32", artifacts["fp32"], tiny_tokens["ids"], prompt_tokens=16,
                  new_tokens=4, repeats=1, hz=50, device="cpu", threads=2)
    assert rec.status == "no_gpu" and "no NVIDIA GPU" in rec.reason


def _trace(counter: dict, power_w):
    """A GPU trace's windows: idle 2 s; generate 1.5 s, 3 runs with 0.9 s of decode steps in
    all (8 tokens each); prefill 0.6 s, 3 prefills of 100 tokens. ``counter``: the energy
    counter's joules over each (None: it gave none); a power sample of ``power_w`` in each
    (None: none)."""
    from quantbench.scenarios.energy import Window
    from quantbench.scenarios.trackers import NvmlSampler

    sampler = NvmlSampler(handle=None)
    windows = [Window("idle", 0.0, 2.0, 1, 2.0, counter["idle"]),
               Window("generate", 2.0, 3.5, 3, 0.9, counter["generate"]),
               Window("prefill", 3.5, 4.1, 3, 0.6, counter["prefill"])]
    if power_w is not None:
        sampler.samples = [{"t": (w.start + w.end) / 2, "power_w": power_w, "gpu_util_pct": 90,
                            "mem_util_pct": 50, "sm_clock_mhz": 1980} for w in windows]
    return trace_metrics(sampler, *windows, prompt_tokens=100, new_tokens=8,
                         power_limit_w=700.0)


def test_a_gpu_trace_gives_the_decode_steps_energy_without_the_prefills():
    """The generate window holds three prefills: the decode steps' energy is its energy less
    the prefill window's three prefills'; the idle draw is the idle window's energy over it."""
    out = _trace({"idle": 140.0, "generate": 600.0, "prefill": 180.0}, power_w=300.0)
    assert out["idle_w"] == 70.0 and out["power_limit_w"] == 700.0
    assert out["decode_energy_j"] == pytest.approx(420.0)
    assert out["decode_j_per_tok"] == pytest.approx(420.0 / 24)
    assert out["decode_power_w"] == pytest.approx(420.0 / 0.9)  # over the decode steps alone
    assert out["prefill_j_per_tok"] == pytest.approx(0.6) and out["prefills"] == 3
    assert out["generate_power_w"] == pytest.approx(400.0) and out["generate_runs"] == 3
    assert {out[f"{w}_energy_method"] for w in ("idle", "generate", "prefill")} == {"counter"}


def test_a_window_the_energy_counter_did_not_see_is_priced_from_power_samples():
    """The counter did not move over the prefills (it moves in steps): their energy is power x
    time from the samples, not 0 J, and the decode steps' is taken less that."""
    out = _trace({"idle": 140.0, "generate": 600.0, "prefill": None}, power_w=200.0)
    assert out["prefill_energy_method"] == "power samples"
    assert out["prefill_energy_j"] == pytest.approx(120.0)  # 200 W for 0.6 s
    assert out["decode_energy_j"] == pytest.approx(480.0)


def test_a_window_with_neither_counter_nor_samples_has_no_energy():
    out = _trace({"idle": None, "generate": None, "prefill": None}, power_w=None)
    assert out["prefill_energy_j"] is None and out["prefill_energy_method"] is None
    assert out["idle_w"] is None and out["decode_j_per_tok"] is None
    assert out["decode_energy_j"] is None


def test_prompt_longer_than_text_is_an_error_naming_the_key(artifacts, tiny_tokens):
    n = np.load(tiny_tokens["ids"]).size
    with pytest.raises(ConfigError) as err:
        run_latency("tiny", "fp32", artifacts["fp32"], tiny_tokens["ids"],
                    **{**LATENCY, "prompt_tokens": [16, n + 1]})
    assert str(err.value) == (f"config key 'latency.prompt_tokens': {n + 1} tokens, but the "
                              f"evaluation text is only {n} tokens long (model tiny's tokenizer)")


@pytest.mark.parametrize("precision", ["fp32", "gguf-q8_0"])
def test_cuda_job_without_a_usable_cuda_device_is_unsupported(precision, monkeypatch, artifacts,
                                                              tiny_tokens):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # whatever this machine has, none is usable
    rec = run_latency("tiny", precision, artifacts[precision], tiny_tokens["ids"],
                      **{**LATENCY, "device": "cuda"})
    assert rec.status == "unsupported"
    assert "device is cuda but no CUDA device is usable: CUDA_VISIBLE_DEVICES='-1'" in rec.reason
    assert "decode_tok_s" not in rec.metrics


def test_llamacpp_build_without_gpu_offload_is_unsupported_on_cuda(monkeypatch, artifacts,
                                                                   tiny_tokens):
    import llama_cpp

    from quantbench import device

    # as if a GPU were usable
    monkeypatch.setattr(device, "cuda_problem", lambda: None, raising=False)
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    rec = run_latency("tiny", "gguf-q8_0", artifacts["gguf-q8_0"], tiny_tokens["ids"],
                      **{**LATENCY, "device": "cuda"})
    assert rec.status == "unsupported"
    assert "gguf-q8_0 on cuda: this llama-cpp-python build has no GPU offload" in rec.reason
    assert "decode_tok_s" not in rec.metrics


def test_compiled_decode_matches_eager_greedy_tokens(artifacts, tiny_tokens):
    out = {}
    for name in ("bf16", "bf16-compiled"):
        out[name], info = _greedy_tokens(name, artifacts, tiny_tokens)
        assert (info["compile_s"] is not None) == (name == "bf16-compiled")
    assert out["bf16"] == out["bf16-compiled"]


def _greedy_tokens(name, artifacts, tiny_tokens, steps=6):
    """A precision's greedy tokens after a 24-token prompt of the tiny model, and its info."""
    from quantbench import precisions
    from quantbench.backends import load_backend

    prompt = [int(i) for i in np.load(tiny_tokens["ids"])[:24]]
    b = load_backend(precisions.get(name), artifacts["fp32"], device="cpu", threads=2, n_ctx=64)
    tokens = [b.prefill(prompt)]
    for _ in range(steps):
        tokens.append(b.decode(tokens[-1]))
    return tokens, b.info()


@pytest.mark.parametrize("mode", ["int8", "nf4", "fp4"])
def test_bitsandbytes_compiled_decode_matches_its_eager_twin(mode, artifacts, tiny_tokens):
    """bitsandbytes layers run under the static KV cache and torch.compile(fullgraph=True): the
    compiled precision decodes the greedy tokens of its eager twin, its compile time and
    options (one graph, no graph breaks allowed) recorded."""
    out = {}
    for name in (f"bnb-{mode}", f"bnb-{mode}-compiled"):
        out[name], info = _greedy_tokens(name, artifacts, tiny_tokens)
        assert info["compiled"] == name.endswith("-compiled")
        if info["compiled"]:
            assert info["compile_s"] > 0
            assert info["compile_options"] == {"mode": "default", "fullgraph": True,
                                               "dynamic": False}
    assert out[f"bnb-{mode}"] == out[f"bnb-{mode}-compiled"]


def test_a_decode_step_that_does_not_compile_in_one_graph_is_unsupported(
        monkeypatch, artifacts, tiny_tokens):
    """A graph break in a bitsandbytes layer (as a kernel dynamo cannot trace would make) makes
    the compiled precision an ``unsupported`` record whose reason says what failed and where,
    not a crash and not a silently slower eager fallback."""
    import bitsandbytes as bnb
    import torch

    real = bnb.nn.Linear4bit.forward

    def breaking(self, x):
        torch._dynamo.graph_break()
        return real(self, x)

    monkeypatch.setattr(bnb.nn.Linear4bit, "forward", breaking)
    # a job's process compiles afresh: here an earlier test's graph of the same shape would be
    # reused (dynamo does not guard on a layer class's forward)
    torch._dynamo.reset()
    rec = run_latency("tiny", "bnb-nf4-compiled", artifacts["bnb-nf4-compiled"],
                      tiny_tokens["ids"], **LATENCY)
    assert rec.status == "unsupported", rec.reason
    assert rec.reason.startswith(
        "UnsupportedError: bnb-nf4-compiled on cpu: torch.compile(mode='default', "
        "fullgraph=True) of the decode step failed: Unsupported: ")
    assert "in breaking)" in rec.reason  # the line of code that broke the graph
    assert "decode_tok_s" not in rec.metrics


def test_a_compiled_step_that_disagrees_with_eager_is_refused_for_its_shape(
        monkeypatch, artifacts, tiny_tokens):
    """A compiled decode step that decodes what the eager forward would not (a miscompile:
    here a batch of one picks the worst token) refuses that batch size's points, saying so; the
    sweep goes on at the other batch size, whose step agrees, and it is timed."""
    from quantbench.backends.hf import HFBackend

    def miscompiled(self, x, position):
        out = self.model(input_ids=x, cache_position=position, use_cache=True,
                         logits_to_keep=1, **{self._cache_kw: self.static})
        last = out.logits[:, -1]
        return last.argmin(-1) if tuple(x.shape) == (1, 1) else last.argmax(-1)

    monkeypatch.setattr(HFBackend, "_static_forward", miscompiled)
    rec = run_latency("tiny", "bf16-compiled", artifacts["bf16-compiled"], tiny_tokens["ids"],
                      **{**LATENCY, "prompt_tokens": [16], "batch_sizes": [1, 2]})
    points = {p["batch_size"]: p for p in rec.details["points"]}
    assert points[2]["status"] == "ok" and points[2]["decode_tok_s"] > 0
    assert points[1]["status"] == "unsupported"
    assert (
        "(MiscompiledError: bf16-compiled on cpu: the compiled decode step (batch 1) disagrees "
        "with the eager forward: at decode step 1 of row 0 it chose token ") in points[1]["reason"]
    assert rec.status == "unsupported" and "at the headline point" in rec.reason
    # batch 1 compiled (at load) before its check refused it: both compiles count
    assert set(rec.details["backend"]["compile_s_by_batch"]) == {"1", "2"}


def test_quality_of_a_compiled_precision_whose_step_is_refused_generates_eagerly(
        monkeypatch, artifacts, tiny_tokens, tmp_path):
    """A compiled step refused as miscompiled (here: a batch of one picks the worst token)
    costs a quality job nothing it measures: perplexity comes from the eager forward, the
    generations decode eagerly and are the eager precision's, and the record says why."""
    from quantbench.backends.hf import HFBackend

    def miscompiled(self, x, position):
        out = self.model(input_ids=x, cache_position=position, use_cache=True,
                         logits_to_keep=1, **{self._cache_kw: self.static})
        return out.logits[:, -1].argmin(-1)

    args = (tiny_tokens["ids"], tiny_tokens["prompts"], artifacts["bf16"] / "tokenizer.json")
    eager = run_quality("tiny", "bf16", artifacts["bf16"], *args,
                        logprobs_out=tmp_path / "bf16.npz", **QUALITY)
    monkeypatch.setattr(HFBackend, "_static_forward", miscompiled)
    rec = run_quality("tiny", "bf16-compiled", artifacts["bf16-compiled"], *args,
                      logprobs_out=tmp_path / "c.npz", **QUALITY)
    assert rec.status == "ok", rec.reason
    assert rec.details["generations_eager"].startswith(
        "bf16-compiled on cpu: the compiled decode step (batch 1) disagrees with the eager "
        "forward")
    assert rec.metrics["ppl"] == pytest.approx(eager.metrics["ppl"])
    assert ([g["token_ids"] for g in rec.details["generations"]]
            == [g["token_ids"] for g in eager.details["generations"]])
    # a compiled step that agrees: its own generations, and no note
    monkeypatch.undo()
    rec = run_quality("tiny", "bf16-compiled", artifacts["bf16-compiled"], *args,
                      logprobs_out=tmp_path / "c2.npz", **QUALITY)
    assert rec.status == "ok" and "generations_eager" not in rec.details


def test_a_compiled_backend_compiles_every_shape_it_is_configured_for(artifacts):
    """One compile per configured batch size and context, past dynamo's recompile limit (a
    sweep configures more shapes than its default of 8; here the limit is 1)."""
    import torch

    from quantbench import precisions
    from quantbench.backends import load_backend

    with torch._dynamo.config.patch(recompile_limit=1):
        backend = load_backend(precisions.get("bf16-compiled"), artifacts["bf16-compiled"],
                               device="cpu", threads=2, n_ctx=40)
        backend.configure(2, 40)
        backend.configure(1, 48)
    assert set(backend.compile_s_by_batch) == {1, 2}
    # batch 1 compiled twice (at load for 40 tokens, then for 48): both count, none is replaced
    assert [(b, n) for b, n, *_ in backend.compile_log] == [(1, 40), (2, 40), (1, 48)]
    by_batch = {b: sum(s for bb, _, s, *_ in backend.compile_log if bb == b) for b in (1, 2)}
    assert backend.compile_s_by_batch == pytest.approx(by_batch)
    assert backend.compile_s == pytest.approx(sum(s for _, _, s, *_ in backend.compile_log))


def test_a_compile_that_finds_its_graph_in_the_cache_says_so(artifacts):
    """The same decode step compiled again in a new dynamo state (as a later job on the same
    machine does) finds its graph in Inductor's on-disk cache: its compile_log entry counts the
    hit, and no miss."""
    import torch

    from quantbench import precisions
    from quantbench.backends import load_backend

    def compile_once():
        torch._dynamo.reset()
        backend = load_backend(precisions.get("bf16-compiled"), artifacts["bf16-compiled"],
                               device="cpu", threads=2, n_ctx=40)
        return backend.info()["compile_log"][0]

    first = compile_once()
    assert first["inductor_cache_hits"] + first["inductor_cache_misses"] >= 1
    again = compile_once()
    assert again["inductor_cache_hits"] >= 1 and again["inductor_cache_misses"] == 0


def test_only_a_refused_compile_is_unsupported():
    """Out of memory and other errors while compiling stay what they are."""
    import torch

    from quantbench.backends.hf import compile_failure

    options = {"mode": "default", "fullgraph": True}
    refused = torch._dynamo.exc.Unsupported("Call to `torch._dynamo.graph_break()`")
    assert isinstance(compile_failure(refused, "x", "cuda", options), UnsupportedError)
    capture = RuntimeError("CUDA error: operation not permitted when stream is capturing")
    assert isinstance(compile_failure(capture, "x", "cuda", options), UnsupportedError)
    oom = torch._dynamo.exc.BackendCompilerFailed.__new__(
        torch._dynamo.exc.BackendCompilerFailed)
    oom.__cause__ = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert compile_failure(oom, "x", "cuda", options) is None
    assert compile_failure(ValueError("a bug"), "x", "cuda", options) is None
    # too many compiles of the step is the harness's doing, not the format's
    limit = torch._dynamo.exc.FailOnRecompileLimitHit("Hard failure due to fullgraph=True")
    assert compile_failure(limit, "x", "cuda", options) is None


def test_config_overrides_precision_settings():
    from quantbench import precisions

    p = precisions.get("bnb-nf4", {"compute_dtype": "float16"})
    assert p.settings == {"mode": "nf4", "double_quant": False, "compute_dtype": "float16"}
    assert precisions.get("bnb-nf4").settings.get("compute_dtype") is None


@pytest.mark.parametrize("precision", ["fp32", "bf16-compiled", "gguf-f16"])
def test_batched_decoding_matches_batch_one(precision, artifacts, tiny_tokens):
    from quantbench import precisions
    from quantbench.backends import load_backend

    prompt = [int(i) for i in np.load(tiny_tokens["ids"])[:20]]
    p = precisions.get(precision)
    one = load_backend(p, artifacts[precision], device="cpu", threads=2, n_ctx=40)
    tokens = [one.prefill(prompt)]
    for _ in range(4):
        tokens.append(one.decode(tokens[-1]))
    three = load_backend(p, artifacts[precision], device="cpu", threads=2, n_ctx=40,
                         batch_size=3)
    rows = [three.prefill_batch(prompt)]
    for _ in range(4):
        rows.append(three.decode_batch(rows[-1]))
    assert all(len(set(r)) == 1 for r in rows)  # the same prompt in each sequence
    assert [r[0] for r in rows] == tokens
    one.configure(3, 40)  # the batch-1 backend, set up for 3 sequences, decodes the same
    again = [one.prefill_batch(prompt)]
    for _ in range(4):
        again.append(one.decode_batch(again[-1]))
    assert again == rows


def test_a_batched_llama_cpp_step_takes_each_rows_greedy_token_from_its_own_logits(
        artifacts, tiny_tokens):
    """The batched step's greedy tokens come from one argmax over llama.cpp's outputs x
    vocabulary buffer: each row of that view is the logits llama_get_logits_ith gives for its
    sequence, with sequences fed different tokens (so that their rows differ)."""
    import ctypes

    from quantbench import precisions
    from quantbench.backends import llamacpp, load_backend

    prompt = [int(i) for i in np.load(tiny_tokens["ids"])[:20]]
    backend = load_backend(precisions.get("gguf-f16"), artifacts["gguf-f16"], device="cpu",
                           threads=2, n_ctx=40, batch_size=3)
    backend.prefill_batch(prompt)
    for step in range(3):
        fed = [prompt[step], prompt[step + 5], prompt[step + 10]]
        got = backend.decode_batch(fed)
        per_row = []
        for s in range(3):
            addr = llamacpp._logits_ith_addr(backend.ctx, s)
            per_row.append(np.ctypeslib.as_array(
                (ctypes.c_float * backend.n_vocab).from_address(addr)).copy())
        assert got == [int(r.argmax()) for r in per_row]
        assert not np.array_equal(per_row[0], per_row[1])  # the rows are distinct sequences
        view = backend._rows[(llamacpp._logits_addr(backend.ctx), 3)]
        assert all(np.array_equal(view[s], per_row[s]) for s in range(3))


@pytest.mark.parametrize("precision", ["fp32", "bf16-compiled", "gguf-f16"])
def test_a_filled_depth_is_the_context_the_prompt_continues(precision, artifacts, tiny_tokens):
    """Filling the cache to a depth and prefilling the prompt after it gives the tokens of the
    whole text prefilled at once, at batch 1 and 2, and again after a rewind."""
    from quantbench import precisions
    from quantbench.backends import load_backend

    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:28]]
    backend = load_backend(precisions.get(precision), artifacts[precision], device="cpu",
                           threads=2, n_ctx=48)

    def generate(prefill, decode, prompt):
        out = [prefill(prompt)]
        for _ in range(4):
            out.append(decode(out[-1]))
        return out

    whole = generate(backend.prefill, backend.decode, ids)
    backend.fill(ids[:16])
    for _ in range(2):  # the second run starts from the depth again
        assert generate(backend.prefill, backend.decode, ids[16:]) == whole
    backend.configure(2, 48)
    backend.fill(ids[:16])
    rows = generate(backend.prefill_batch, backend.decode_batch, ids[16:])
    assert rows == [[t, t] for t in whole]


@pytest.mark.parametrize("precision", ["fp32", "bf16-compiled"])
def test_a_depth_filled_in_chunks_is_the_same_context(precision, artifacts, tiny_tokens,
                                                       monkeypatch):
    """The transformers fill runs at most FILL_ROWS rows per forward (a large batch × depth in
    one forward overflows bitsandbytes' int8 kernel); filled 5 rows at a time, 2 sequences × 16
    tokens continue exactly as the text prefilled at once."""
    from quantbench import precisions
    from quantbench.backends import hf, load_backend

    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:28]]
    backend = load_backend(precisions.get(precision), artifacts[precision], device="cpu",
                           threads=2, n_ctx=48)
    whole = [backend.prefill(ids)]
    for _ in range(4):
        whole.append(backend.decode(whole[-1]))
    forwards = []
    real = backend.model.forward
    monkeypatch.setattr(backend.model, "forward",
                        lambda *a, **k: forwards.append(k["input_ids"].shape) or real(*a, **k))
    monkeypatch.setattr(hf, "FILL_ROWS", 5)
    backend.configure(2, 48)  # (the compiled path's warm-up calls forward too)
    forwards.clear()
    backend.fill(ids[:16])
    assert forwards == [(2, 2)] * 8  # 5 // 2 = 2 tokens per sequence and forward
    rows = [backend.prefill_batch(ids[16:])]
    for _ in range(4):
        rows.append(backend.decode_batch(rows[-1]))
    assert rows == [[t, t] for t in whole]


class _Clock:
    """A clock that moves only when a fake backend works: timings are exact on any machine."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _FakeBackend(BackendBase):
    """A step of ``b`` sequences takes 4 + b ms of the fake clock, a prefill 5 ms: the scenario's
    arithmetic is exact. A context of more than ``max_tokens`` tokens does not fit (MemoryError,
    as a backend raises when it cannot allocate one)."""

    clock = None
    max_tokens = 10**9
    calls: list = []

    def __init__(self, *args, **kwargs):
        self.b = kwargs.get("batch_size", 1)

    def configure(self, batch_size, n_ctx):
        if batch_size * n_ctx > self.max_tokens:
            raise MemoryError(f"cannot allocate a context of {batch_size} x {n_ctx} tokens")
        self.b = batch_size
        self.calls.append(("configure", batch_size, n_ctx))

    def fill(self, ids):
        self.calls.append(("fill", self.b, list(ids)))

    def sync(self):
        pass

    def prefill(self, ids):
        self.calls.append(("prefill", self.b, list(ids)))
        self.clock.now += 0.005
        return 1

    def decode(self, token):
        self.clock.now += 0.004 + 0.001 * self.b
        return token

    def prefill_batch(self, ids):
        self.prefill(ids)
        return [1] * self.b

    def decode_batch(self, tokens):
        self.decode(tokens[0])
        return tokens

    def info(self):
        return {"kv_elem_bytes": 2}

    def memory_parts(self):
        return {"kv_cache_mib": 0.5 * self.b}


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(_FakeBackend, "clock", _Clock())
    monkeypatch.setattr(_FakeBackend, "calls", [])
    monkeypatch.setattr(time, "perf_counter", _FakeBackend.clock)
    monkeypatch.setattr(common, "load_backend", _FakeBackend)
    return _FakeBackend


def test_batched_latency_counts_every_sequence(fake, artifacts, tiny_tokens):
    rec = run_latency("tiny", "gguf-f16", artifacts["gguf-f16"], tiny_tokens["ids"],
                      **{**LATENCY, "batch_sizes": [4], "headline": {"batch_size": 4}})
    assert rec.status == "ok", rec.reason
    # 4 sequences per 8 ms step (1 sequence alone would be 200 tok/s)
    assert rec.metrics["decode_tok_s"] == pytest.approx(4 / 0.008)
    assert rec.metrics["prefill_tok_s"] == pytest.approx(4 * 16 / 0.005)
    assert rec.metrics["batch_size"] == 4


def test_a_sweep_measures_every_point_and_one_that_does_not_fit_is_an_oom_row(
        fake, monkeypatch, artifacts, tiny_tokens):
    monkeypatch.setattr(fake, "max_tokens", 4 * (16 + 32 + 8 + 1))  # batch 8 never fits
    rec = run_latency("tiny", "gguf-f16", artifacts["gguf-f16"], tiny_tokens["ids"],
                      **{**LATENCY, "batch_sizes": [1, 2, 8], "context_depths": [0, 16]})
    assert rec.status == "ok", rec.reason  # the headline point (b1 d0 p16) was measured
    pts = {(p["batch_size"], p["context_depth"], p["prompt_tokens"]): p
           for p in rec.details["points"]}
    assert len(pts) == 3 * 2 * 2  # every point has a row
    for (b, depth, prompt), p in pts.items():
        if b == 8:
            assert p["status"] == "oom" and "cannot allocate" in p["reason"]
            assert p["decode_tok_s"] is None
            continue
        assert p["status"] == "ok"
        assert p["decode_tok_s"] == pytest.approx(b / (0.004 + 0.001 * b))
        assert p["decode_tok_s_per_seq"] == pytest.approx(1 / (0.004 + 0.001 * b))
        assert p["prefill_ms"] == pytest.approx(5.0)
        assert p["decode_ctx_mean"] == depth + prompt + (8 + 1) / 2
        assert p["kv_tokens_per_seq"] == depth + prompt + 8
        assert p["kv_cache_mib"] == 0.5 * b and p["runs"] == 3
    # each batch size's context holds the deepest point of it; the cache is filled to the
    # depth from the text's start, and the prompt is the text that follows
    ids = [int(i) for i in np.load(tiny_tokens["ids"])]
    assert ("configure", 2, 16 + 32 + 8 + 1) in fake.calls
    assert ("fill", 2, ids[:16]) in fake.calls and ("fill", 1, []) in fake.calls
    assert ("prefill", 2, ids[16:16 + 32]) in fake.calls
    assert rec.metrics["decode_tok_s"] == pts[(1, 0, 16)]["decode_tok_s"]


def test_every_batch_sizes_compile_time_reaches_the_record_and_the_headline_ones_the_summary(
        fake, monkeypatch, artifacts, tiny_tokens, tmp_path):
    """A compiled path compiles once per batch size: the record keeps each one's compile time
    (not only the first's, compiled while loading) and the summary the headline batch's."""
    from quantbench.report.aggregate import load_records, summary_table

    compile_s = {}
    configure = fake.configure

    def compiling(self, batch_size, n_ctx):
        configure(self, batch_size, n_ctx)
        compile_s[str(batch_size)] = 10.0 * batch_size

    monkeypatch.setattr(fake, "configure", compiling)
    monkeypatch.setattr(fake, "info", lambda self: {
        "kv_elem_bytes": 2, "compile_s": sum(compile_s.values()),
        "quantization": {"quantised_linears": "3 of 15"},
        "compile_s_by_batch": dict(compile_s),
        "compile_log": [{"batch_size": int(b), "n_ctx": 0, "seconds": t,
                         "inductor_cache_hits": int(b) - 1, "inductor_cache_misses": 1}
                        for b, t in compile_s.items()]})
    rec = run_latency("tiny", "bf16-compiled", artifacts["bf16-compiled"], tiny_tokens["ids"],
                      **{**LATENCY, "batch_sizes": [1, 2], "headline": {"batch_size": 2}})
    assert rec.status == "ok", rec.reason
    assert rec.details["backend"]["compile_s_by_batch"] == {"1": 10.0, "2": 20.0}
    rec.save(tmp_path / "r.json")
    summary = summary_table(load_records([tmp_path / "r.json"]), "bf16-compiled")
    assert summary.loc[0, "compile_s"] == 20.0
    assert summary.loc[0, "compile_cache_hits"] == 1  # the headline batch's compile's
    assert (summary.loc[0, "quantised_linears"], summary.loc[0, "linears"]) == (3, 15)
    rec.details["backend"]["quantization"] = None  # an unquantised precision's
    rec.save(tmp_path / "r.json")
    summary = summary_table(load_records([tmp_path / "r.json"]), "bf16-compiled")
    assert pd.isna(summary.loc[0, "quantised_linears"])
    # a record written before compile_log existed kept only each batch size's last compile:
    # its compile time is not known, rather than a recompile's fraction of a second
    del rec.details["backend"]["compile_log"]
    rec.save(tmp_path / "old.json")
    summary = summary_table(load_records([tmp_path / "old.json"]), "bf16-compiled")
    assert pd.isna(summary.loc[0, "compile_s"]) and pd.isna(summary.loc[0, "compile_cache_hits"])


def test_the_headline_point_must_be_measured(fake, artifacts, tiny_tokens):
    from quantbench.errors import ConfigError

    with pytest.raises(ConfigError, match="latency.headline"):
        run_latency("tiny", "gguf-f16", artifacts["gguf-f16"], tiny_tokens["ids"],
                    **{**LATENCY, "batch_sizes": [2]})


def test_a_headline_point_that_does_not_fit_makes_the_record_say_so(
        fake, monkeypatch, artifacts, tiny_tokens):
    monkeypatch.setattr(fake, "max_tokens", 10)
    rec = run_latency("tiny", "gguf-f16", artifacts["gguf-f16"], tiny_tokens["ids"], **LATENCY)
    assert rec.status == "oom" and rec.reason.startswith("at the headline point")
    assert {p["status"] for p in rec.details["points"]} == {"oom"}


@pytest.mark.parametrize("precision", ["gguf-f16", "gguf-q4_k_m"])
def test_llamacpp_greedy_token_is_the_argmax_of_its_logits(precision, artifacts, tiny_tokens):
    """The decode path reads logits through a cached view of llama.cpp's output buffer; it must
    give the argmax of the full logits, also after a many-output batch has resized that buffer."""
    from quantbench import precisions
    from quantbench.backends import load_backend

    ids = [int(i) for i in np.load(tiny_tokens["ids"])[:48]]
    backend = load_backend(precisions.get(precision), artifacts[precision], device="cpu",
                           threads=2, n_ctx=64)
    for n in (8, 16):
        assert backend.prefill(ids[:n]) == int(backend.logits(ids[:n])[-1].argmax())
    got = [backend.prefill(ids[:30])]
    for _ in range(5):
        got.append(backend.decode(got[-1]))
    for k, token in enumerate(got):
        assert token == int(backend.logits(ids[:30] + got[:k])[-1].argmax())


class _HungBackend(_FakeBackend):
    """A backend whose prefill never finishes (within the test's patience)."""

    clock = staticmethod(time.perf_counter)

    def prefill(self, ids):
        time.sleep(60)
        return 1

    def decode(self, token):
        return token


def test_hung_job_is_stopped_by_its_time_limit_and_recorded(monkeypatch, artifacts, tiny_tokens,
                                                            tmp_path):
    import signal

    monkeypatch.setattr(common, "load_backend", _HungBackend)
    rec = run_latency("tiny", "fp32", artifacts["fp32"], tiny_tokens["ids"],
                      **{**LATENCY, "time_limit_s": 0.5})
    # had the limit not stopped it, the prefill would have returned after 60 s and the run
    # would have ended ok
    assert rec.status == "timeout" and "0.5 s, the job's time limit" in rec.reason
    assert rec.details["time_limit_s"] == 0.5 and "decode_tok_s" not in rec.metrics
    # the alarm is disarmed and the previous handler is back once the job is over
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    rec.save(tmp_path / "t.json")
    assert Record.load(tmp_path / "t.json").status == "timeout"


OOM_SCRIPT = """
import resource, sys
from pathlib import Path
import tokenizers, safetensors.torch, transformers.models.llama.modeling_llama  # noqa
import quantbench.backends.hf  # noqa: every library is mapped before the cap
from quantbench.points import OperatingPoint
from quantbench.scenarios.latency import (
    Timings,
    decode_rates,
    point_figures,
    pool_processes,
    run_latency,
)

model, tokens, out = sys.argv[1:]
vm = next(int(ln.split()[1]) * 1024 for ln in open("/proc/self/status")
          if ln.startswith("VmSize"))
# a cap leaving room for half the weights: loading them must fail
room = (Path(model) / "model.safetensors").stat().st_size // 2
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vm + room, hard))
rec = run_latency("tiny", "fp32", model, tokens, prompt_tokens=[16], new_tokens=2,
                  warmup_runs=0, measured_runs=1, device="cpu", threads=1)
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
rec.save(out)
"""


def test_memory_cap_becomes_an_oom_record(artifacts, tiny_tokens, tmp_path):
    """A real address-space cap (RLIMIT_AS) in a fresh process: the job ends normally with a
    record (so the DAG goes on), and the record says out of memory."""
    import os
    import subprocess
    import sys

    out = tmp_path / "oom.json"
    res = subprocess.run(
        [sys.executable, "-c", OOM_SCRIPT, str(artifacts["fp32"]), str(tiny_tokens["ids"]),
         str(out)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert res.returncode == 0, res.stderr[-2000:]
    rec = Record.load(out)
    assert rec.status == "oom", rec.reason
    assert "memory" in rec.reason.lower() and "decode_tok_s" not in rec.metrics


PPL_SCRIPT = """
import sys
from quantbench.scenarios.quality import run_quality

precision, artifact, ids, prompts, tokenizer, out = sys.argv[1:]
rec = run_quality("tiny", precision, artifact, ids, prompts, tokenizer, mode="llama.cpp",
                  context_length=64, stride=None, max_windows=4, max_new_tokens=4,
                  logprobs_out=out, device="cpu", threads=2)
assert rec.status == "ok", rec.reason
print(rec.metrics["ppl"].hex(), rec.metrics["nll_mean"].hex())
"""


@pytest.mark.parametrize("precision", ["fp32", "gguf-q8_0"])
def test_cpu_perplexity_is_bit_identical_across_reruns(precision, artifacts, tiny_tokens,
                                                       tmp_path):
    """Two fresh processes give the same perplexity to the last bit, and the same stored
    log-probabilities."""
    import os
    import subprocess
    import sys

    runs = []
    for k in range(2):
        out = tmp_path / f"{k}.npz"
        res = subprocess.run(
            [sys.executable, "-c", PPL_SCRIPT, precision, str(artifacts[precision]),
             str(tiny_tokens["ids"]), str(tiny_tokens["prompts"]),
             str(artifacts["fp32"] / "tokenizer.json"), str(out)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert res.returncode == 0, res.stderr[-2000:]
        runs.append((res.stdout.split(), np.load(out)))
    (bits_a, npz_a), (bits_b, npz_b) = runs
    assert len(bits_a) == 2 and bits_a == bits_b
    assert sorted(npz_a.files) == sorted(npz_b.files) and npz_a.files
    for name in npz_a.files:
        assert npz_a[name].tobytes() == npz_b[name].tobytes(), name


@pytest.mark.parametrize("precision", ["gguf-f16", "gguf-q4_k_m"])
def test_llamacpp_device_greedy_picks_the_same_tokens_as_host_argmax(precision, artifacts,
                                                                    tiny_tokens):
    from quantbench import precisions
    from quantbench.backends import load_backend

    prompt = [int(i) for i in np.load(tiny_tokens["ids"])[:20]]
    p = precisions.get(precision)
    runs = {}
    for greedy in ("host", "device"):
        one = load_backend(p, artifacts[precision], device="cpu", threads=2, n_ctx=40,
                           greedy=greedy)
        tokens = [one.prefill(prompt)]
        for _ in range(6):
            tokens.append(one.decode(tokens[-1]))
        three = load_backend(p, artifacts[precision], device="cpu", threads=2, n_ctx=40,
                             batch_size=3, greedy=greedy)
        rows = [three.prefill_batch(prompt)]
        for _ in range(3):
            rows.append(three.decode_batch(rows[-1]))
        runs[greedy] = (tokens, rows)
        if greedy == "device":
            assert one.info()["greedy"] == "device"
            with pytest.raises(RuntimeError, match="no logits"):
                one.logits(prompt)
    assert runs["device"] == runs["host"]
    assert [r[0] for r in runs["device"][1]] == runs["device"][0][:4]


def test_latency_with_device_greedy_is_recorded(artifacts, tiny_tokens):
    recs = {g: run_latency("tiny", "gguf-q8_0", artifacts["gguf-q8_0"], tiny_tokens["ids"],
                           llamacpp_greedy=g, **LATENCY) for g in ("host", "device")}
    assert all(r.status == "ok" for r in recs.values())
    assert recs["device"].details["backend"]["greedy"] == "device"
    assert recs["host"].details["backend"]["greedy"] == "host"
    assert recs["device"].provenance["config_hash"] != recs["host"].provenance["config_hash"]


class _LoadPeakBackend(_FakeBackend):
    """Loading touches a large buffer and frees it (a cast from fp32 files, say); serving holds
    nothing of it."""

    def __init__(self, *args, **kwargs):
        from quantbench.scenarios.trackers import peak_rss_mib, rss_mib

        super().__init__()
        self.step_s = 0.0
        # above any high-water mark the process reached before, so the load sets a new one
        self.load_mib = peak_rss_mib() - rss_mib() + 256
        block = np.ones(int(self.load_mib * 2**20 // 8))
        del block

    def memory_parts(self):
        return {}

    def prefill(self, ids):
        return 1

    def decode(self, token):
        return token


def test_serving_memory_leaves_out_what_loading_freed(monkeypatch, artifacts, tiny_tokens):
    monkeypatch.setattr(common, "load_backend", _LoadPeakBackend)
    rec = run_latency("tiny", "fp32", artifacts["fp32"], tiny_tokens["ids"], **LATENCY)
    assert rec.status == "ok", rec.reason
    m = rec.metrics
    assert m["load_peak_mib"] >= m["rss_before_load_mib"] + 240  # the load's buffer
    assert m["peak_mem_mib"] < m["load_peak_mib"] - 200  # serving holds none of it
    # the point's peak and the job's serving peak come from the same sampler; a sample taken
    # after the point's last run (the sampler's own timing) may differ by a few pages only
    assert m["peak_mem_mib"] == pytest.approx(m["serving_rss_mib"], abs=1.0)
    assert m["serving_rss_mib"] >= m["rss_before_load_mib"] - 16
    assert m["runtime_mib"] == m["peak_mem_mib"]  # the fake reports no parts


def _model_size_mib(gguf_path) -> float:
    from quantbench import precisions
    from quantbench.backends import load_backend

    backend = load_backend(precisions.get("gguf-f16"), gguf_path, device="cpu", threads=2,
                           n_ctx=16)
    return backend.info()["model_size_mib"]


@pytest.mark.parametrize("precision", ["gguf-f16", "gguf-q8_0"])
def test_llamacpp_memory_parts_are_its_buffers(precision, artifacts, tiny_tokens, tiny_model):
    """Weights, KV cache and output buffer agree with what they must hold, and the rest of the
    serving figure is the process before loading, not hidden buffers."""
    from quantbench.roofline import Shape

    rec = run_latency("tiny", precision, artifacts[precision], tiny_tokens["ids"], **LATENCY)
    assert rec.status == "ok", rec.reason
    m = rec.metrics
    shape = Shape.from_config(tiny_model / "config.json")
    n_ctx = rec.details["backend"]["n_ctx"]  # cells: the context asked for, padded
    assert n_ctx >= max(LATENCY["prompt_tokens"]) + LATENCY["new_tokens"] + 1
    assert m["weights_mib"] == pytest.approx(rec.details["backend"]["model_size_mib"], rel=0.02)
    assert m["kv_cache_mib"] == pytest.approx(shape.kv_bytes_per_token(2) * n_ctx / 2**20,
                                              abs=0.006)
    # llama.cpp logs its buffers in MiB to two decimals
    assert m["output_mib"] == pytest.approx(shape.vocab * 4 / 2**20, abs=0.006)
    assert 0 < m["compute_mib"] < 8
    parts = m["weights_mib"] + m["kv_cache_mib"] + m["compute_mib"] + m["output_mib"]
    assert m["runtime_mib"] == pytest.approx(m["peak_mem_mib"] - parts)
    # what loading added beyond the buffers: llama.cpp's libraries, threads and vocabulary
    assert -2 < m["peak_mem_mib"] - m["rss_before_load_mib"] - parts < 32
    assert rec.details["memory"]["weights_mib"] == m["weights_mib"]


@pytest.fixture(scope="module")
def large_vocab_gguf(tmp_path_factory, sample_text, converter):
    """A random Llama with a 262,144-token vocabulary (Gemma 3's) and a tiny body."""
    from quantbench.artifacts.gguf import convert
    from quantbench.artifacts.model import prepare_model

    spec = dict(source="random", architecture="llama", hidden_size=32, num_layers=1,
                num_heads=2, num_kv_heads=1, intermediate_size=64, vocab_size=262144,
                max_position_embeddings=512, seed=0)
    out = tmp_path_factory.mktemp("large_vocab")
    prepare_model(spec, out / "hf", text_path=sample_text)
    convert(out / "hf", out / "f16.gguf", outtype="f16", converter=converter)
    return out / "f16.gguf"


def test_large_vocabulary_costs_only_its_weights_and_one_row_of_logits(large_vocab_gguf,
                                                                       tiny_tokens):
    """At a 262,144-token vocabulary llama.cpp's compute buffer held logits for every position
    of the context (161 MiB at 161 tokens), and reading the file's tensor types with gguf-py
    took 700 MiB at the load peak. Latency asks for one row of logits; the types come from
    the file's manifest."""
    rec = run_latency("big", "gguf-f16", large_vocab_gguf, tiny_tokens["ids"], **LATENCY)
    assert rec.status == "ok", rec.reason
    m = rec.metrics
    vocab_row_mib = 262144 * 4 / 2**20  # 1 MiB of float32 logits
    assert m["output_mib"] == pytest.approx(vocab_row_mib, rel=0.05)
    assert m["compute_mib"] < 2 * vocab_row_mib  # not n_ctx rows
    assert m["weights_mib"] == pytest.approx(2 * 262144 * 32 * 2 / 2**20, rel=0.05)
    parts = m["weights_mib"] + m["kv_cache_mib"] + m["compute_mib"] + m["output_mib"]
    # the rest is llama.cpp's vocabulary tables (about 150 bytes a token) and libraries
    assert m["peak_mem_mib"] - m["rss_before_load_mib"] - parts < 64
    assert m["load_peak_mib"] - m["rss_before_load_mib"] < parts + 96


def test_transformers_memory_parts_are_its_weights_and_kv_cache(artifacts, tiny_tokens,
                                                                 tiny_model):
    from quantbench.roofline import Shape

    shape = Shape.from_config(tiny_model / "config.json")
    n_ctx = max(LATENCY["prompt_tokens"]) + LATENCY["new_tokens"] + 1
    weights = {}
    for precision, elem in (("fp32", 4), ("bf16", 2)):
        m = run_latency("tiny", precision, artifacts[precision], tiny_tokens["ids"],
                        **LATENCY).metrics
        weights[precision] = m["weights_mib"]
        assert m["weights_mib"] == pytest.approx(m["size_mib"], rel=0.01)
        assert m["kv_cache_mib"] == pytest.approx(shape.kv_bytes_per_token(elem) * n_ctx / 2**20)
        assert m["compute_mib"] is None and m["output_mib"] is None
        assert m["runtime_mib"] == pytest.approx(m["peak_mem_mib"] - m["weights_mib"]
                                                 - m["kv_cache_mib"])
    assert weights["bf16"] == pytest.approx(weights["fp32"] / 2, rel=0.01)


def test_time_to_first_token_gives_its_p90_over_every_run_and_its_interval_over_processes():
    """TTFT at a point (the prefill of the whole batch): p50 and p90 over every run of every
    process, the 95 % interval of its mean over the processes' means (none from one)."""
    pt = OperatingPoint(batch_size=4, context_depth=0, prompt_tokens=16)
    procs = [_timings([10.0, 10.0]), _timings([10.0, 10.0]), _timings([10.0, 10.0])]
    for proc, ttfts in zip(procs, ([10.0, 12.0], [20.0, 30.0], [14.0, 16.0]), strict=True):
        proc.ttft_ms = ttfts
    p = point_figures(pt, procs, new_tokens=2)
    every = [10.0, 12.0, 20.0, 30.0, 14.0, 16.0]
    assert p.prefill_ms == pytest.approx(np.percentile(every, 50))
    assert p.prefill_ms_p90 == pytest.approx(np.percentile(every, 90))
    means = [11.0, 25.0, 15.0]
    half = 4.302653 * np.std(means, ddof=1) / np.sqrt(3)
    assert (p.prefill_ms_ci_low, p.prefill_ms_ci_high) == pytest.approx(
        (max(np.mean(means) - half, 0.0), np.mean(means) + half))
    one = point_figures(pt, procs[:1], new_tokens=2)
    assert one.prefill_ms_p90 == pytest.approx(np.percentile([10.0, 12.0], 90))
    assert one.prefill_ms_ci_low is None and one.prefill_ms_ci_high is None
