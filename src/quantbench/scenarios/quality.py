"""Quality of one precision: perplexity on the evaluation text and greedy sanity generations;
against the reference, KL divergence and the paired change in perplexity with intervals from a
block bootstrap over the windows (``details.interval_method`` says how many); the reference
records its KL divergence noise floor (``kld_floor_self``, see quantbench.kld).

Every backend gets the same token ids (tokenised once by the model's own tokenizer) and the
same windows (quantbench.perplexity); llama.cpp is fed ids, never text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from quantbench import perplexity as ppl_mod
from quantbench.kld import Comparison, ReferenceWriter, save_npz
from quantbench.metrics import QualityMetrics
from quantbench.perplexity import windows_for
from quantbench.records import Status
from quantbench.scenarios.common import Job


def greedy(backend, prompt: list[int], max_new_tokens: int, eos_ids: set[int]) -> list[int]:
    out = [backend.prefill(prompt)]
    while len(out) < max_new_tokens and out[-1] not in eos_ids:
        out.append(backend.decode(out[-1]))
    return out


def run_quality(model: str, precision: str, artifact, tokens_path, prompts_path, tokenizer, *,
                mode: str, context_length: int, stride: int | None, max_windows: int,
                max_new_tokens: int, logprobs_out, reference=None, kv_reference=None,
                applicable: bool = True,
                device: str = "auto", threads: int = 0,
                overrides: dict | None = None, time_limit_s: float | None = None):
    """Perplexity and generations; with ``reference`` (the reference's stored log-probabilities)
    also KL divergence and agreement; the reference itself writes them to ``logprobs_out``.
    With ``kv_reference`` (the stored log-probabilities of the same weights with an f16 KV
    cache, for a precision whose KV cache is quantized) the same comparison with those, under
    ``kv_``-prefixed metrics: what the KV cache's type alone changes."""
    settings = dict(mode=mode, context_length=context_length, stride=stride,
                    max_windows=max_windows, max_new_tokens=max_new_tokens)
    job = Job("quality", model, precision, device=device, threads=threads, settings=settings,
              overrides=overrides, time_limit_s=time_limit_s)
    rec = job.record
    if not applicable:
        rec.status = Status.NOT_APPLICABLE
        rec.reason = "random weights: perplexity and generations carry no information"
        save_npz(logprobs_out, generations=np.zeros((0, 0), dtype=np.int64))
        return rec
    ids = np.load(tokens_path)
    meta = json.loads(Path(tokens_path).with_suffix(".json").read_text())
    prompts = json.loads(Path(prompts_path).read_text())
    windows = windows_for(ids, meta, mode=mode, context_length=context_length, stride=stride,
                          max_windows=max_windows)
    longest_prompt = max(len(p["ids"]) for p in prompts)
    with job.failures_recorded():
        backend = job.load(artifact, n_ctx=max(context_length, longest_prompt + max_new_tokens))
        writer = ReferenceWriter()
        comparison = Comparison.open(reference) if reference is not None else None
        kv_comparison = Comparison.open(kv_reference) if kv_reference is not None else None
        nll = []
        for w in windows:
            lp = ppl_mod.scored_logprobs(backend.logits(w.ids), w)
            nll.append(-lp[np.arange(len(w.targets)), w.targets])
            for acc in (writer, comparison, kv_comparison):
                if acc is not None:
                    acc.add(lp, w.targets)
        parts = {"perplexity": ppl_mod.perplexity(np.concatenate(nll)), "n_windows": len(windows)}
        rec.metrics.update(QualityMetrics.measured(**parts).to_metrics())
        eos = set(meta.get("eos_ids", []))
        # a compiled step refused here as miscompiled: the generations decode eagerly (the
        # perplexity above came from the eager forward, as for every precision)
        refused = backend.eager_if_refused()
        if refused:
            rec.details["generations_eager"] = refused
        decoder = Tokenizer.from_file(str(tokenizer))
        generations = []
        for p in prompts:
            out = greedy(backend, p["ids"], max_new_tokens, eos)
            text = decoder.decode(out, skip_special_tokens=True)
            generations.append({"prompt": p["text"], "token_ids": out, "text": text})
        rec.details["generations"] = generations
        outputs = [g["token_ids"] for g in generations]
        writer.save(logprobs_out, outputs,
                    **(comparison.per_position() if comparison is not None else {}))
        rec.details["is_reference"] = reference is None
        if reference is None:
            parts["floor"] = writer.floor()
        if comparison is not None:
            parts["divergence"] = comparison.metrics()
            parts["agreement"] = comparison.generation_agreement(outputs)
            rec.details["interval_method"] = comparison.interval_method()
        elif reference is not None:
            rec.details["comparison"] = "the reference precision produced no log-probabilities"
        if kv_comparison is not None:
            parts["kv_divergence"] = kv_comparison.metrics()
            rec.details["kv_twin"] = Path(kv_reference).stem
        rec.metrics.update(QualityMetrics.measured(**parts).to_metrics())
    if not Path(logprobs_out).exists():  # a failure record still completes the job's outputs
        save_npz(logprobs_out, generations=np.zeros((0, 0), dtype=np.int64))
        rec.details["perplexity_protocol"] = {**settings, "add_bos": bool(meta.get("add_bos"))}
    return rec
