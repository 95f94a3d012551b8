"""Engines come from the registry alone: a made-up engine, registered here and nowhere else,
runs through a latency job and a quality job like the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantbench import engines, precisions
from quantbench.backends.base import Backend, BackendBase
from quantbench.scenarios.latency import run_latency
from quantbench.scenarios.quality import run_quality

LATENCY = dict(prompt_tokens=[8], new_tokens=4, warmup_runs=1, measured_runs=2,
               batch_sizes=[1, 2], device="cpu", threads=1)
QUALITY = dict(mode="sliding", context_length=32, stride=16, max_windows=2, max_new_tokens=3,
               device="cpu", threads=1)


class FakeBackend(BackendBase):
    """A bigram table of random logits over the model's vocabulary: enough for every scenario,
    with nothing of any real engine in it."""

    def __init__(self, precision, artifact, *, device, threads, n_ctx, batch_size=1):
        vocab = json.loads((Path(artifact) / "config.json").read_text())["vocab_size"]
        self.table = np.random.default_rng(0).standard_normal((vocab, vocab)).astype(np.float32)
        self.loads = precision.settings["marker"]
        self.last: list[int] = []
        self.configure(batch_size, n_ctx)

    def configure(self, batch_size, n_ctx):
        self.batch_size, self.shape = batch_size, (batch_size, n_ctx)

    def fill(self, ids):
        self.context = list(ids)

    def _next(self, token):
        return int(self.table[token].argmax())

    def prefill(self, ids):
        return self._next(int(ids[-1]))

    def decode(self, token):
        return self._next(token)

    def prefill_batch(self, ids):
        return [self.prefill(ids)] * self.batch_size

    def decode_batch(self, tokens):
        return [self._next(t) for t in tokens]

    def logits(self, ids, last=None):
        return self.table[np.asarray(ids)][-(last or len(ids)):]

    def sync(self):
        pass

    def info(self):
        return {"engine": "fake", "marker": self.loads, "model_size_mib": self.table.nbytes / 2**20}

    def memory_parts(self):
        return {"weights_mib": self.table.nbytes / 2**20}


@pytest.fixture()
def fake_engine():
    engine = engines.register(engines.Engine(
        "fake", f"{__name__}:FakeBackend", "hf", lambda s: "hf", "prepare_model", "#000000",
        quantized=lambda s: s["marker"] != "full", baseline_engine="fake",
        baseline_key="marker", baseline_order=("full",)))
    names = [precisions.add("fake-full", "fake", marker="full").name,
             precisions.add("fake-q", "fake", marker="q").name]
    yield engine, names
    del engines.REGISTRY["fake"]
    for name in names:
        del precisions.table()[name]


def test_a_registered_engine_runs_a_latency_and_a_quality_job(fake_engine, tiny_model,
                                                               tiny_tokens, tmp_path):
    _, (full, quantized) = fake_engine
    assert precisions.baseline_of(quantized, [full, "bf16"]) == full
    rec = run_latency("tiny", quantized, tiny_model, tiny_tokens["ids"], **LATENCY)
    assert rec.status == "ok", rec.reason
    assert rec.backend == "fake" and rec.details["backend"]["marker"] == "q"
    assert rec.metrics["decode_tok_s"] > 0
    assert [p["batch_size"] for p in rec.details["points"]] == [1, 2]
    args = (tiny_tokens["ids"], tiny_tokens["prompts"], tiny_model / "tokenizer.json")
    ref = run_quality("tiny", full, tiny_model, *args, logprobs_out=tmp_path / "full.npz",
                      **QUALITY)
    rec = run_quality("tiny", quantized, tiny_model, *args, logprobs_out=tmp_path / "q.npz",
                      reference=tmp_path / "full.npz", **QUALITY)
    assert ref.status == rec.status == "ok", (ref.reason, rec.reason)
    # the same table: identical log-probabilities, so no divergence at all
    assert rec.metrics["kld_mean"] == pytest.approx(0, abs=1e-6)
    assert rec.metrics["ppl"] == pytest.approx(ref.metrics["ppl"])


def test_every_backend_of_the_registry_has_the_protocols_methods():
    for engine in engines.REGISTRY.values():
        cls = engine.backend_class()
        missing = [m for m in Backend.__dict__ if not m.startswith("_")
                   and m not in ("batch_size",) and not callable(getattr(cls, m, None))]
        assert missing == [], (engine.name, missing)


def test_an_unknown_engine_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="unknown engine 'nope'; known: transformers"):
        engines.get("nope")
