"""A decode run (``Backend.decode_run``: n greedy steps, timed step by step, the tokens read
back once) decodes exactly the tokens of the same steps taken one call at a time, on every
engine's path: transformers eager and compiled (its in-place step on device buffers), llama.cpp,
at batch 1 and batch > 1; and the latency scenario times its decode steps through it."""

import numpy as np
import pytest

from quantbench import precisions
from quantbench.backends import load_backend
from quantbench.backends.base import BackendBase, DecodeRun
from quantbench.scenarios.latency import timed_run

STEPS = 6


@pytest.fixture(scope="module")
def prompt(tiny_tokens) -> list[int]:
    return [int(i) for i in np.load(tiny_tokens["ids"])[:20]]


def _artifact(precision, tiny_model, tiny_gguf):
    return tiny_gguf["f16"] if precision.startswith("gguf") else tiny_model


def _first(backend, prompt, batch_size) -> list[int]:
    return [backend.prefill(prompt)] if batch_size == 1 else backend.prefill_batch(prompt)


def _stepped(backend, row: list[int], n: int) -> list[list[int]]:
    out = []
    for _ in range(n):
        row = [backend.decode(row[0])] if len(row) == 1 else backend.decode_batch(row)
        out.append(row)
    return out


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("precision", ["bf16", "bf16-compiled", "gguf-f16"])
def test_a_decode_run_gives_the_tokens_of_repeated_steps(precision, batch_size, tiny_model,
                                                         tiny_gguf, prompt):
    backend = load_backend(precisions.get(precision),
                           _artifact(precision, tiny_model, tiny_gguf), device="cpu",
                           threads=2, n_ctx=40, batch_size=batch_size)
    first = _first(backend, prompt, batch_size)
    stepped = _stepped(backend, first, STEPS)
    assert _first(backend, prompt, batch_size) == first  # the prefill starts afresh
    run = backend.decode_run(first, STEPS)
    assert run.tokens == stepped
    assert len(run.step_s) == STEPS and all(s > 0 for s in run.step_s)
    # a run leaves the sequences where single steps continue them, and the other way round
    assert _first(backend, prompt, batch_size) == first
    half = backend.decode_run(first, STEPS // 2).tokens
    rest = _stepped(backend, half[-1], 1)
    rest += backend.decode_run(rest[-1], STEPS - STEPS // 2 - 1).tokens
    assert half + rest == stepped
    if batch_size > 1:
        assert all(len(set(row)) == 1 for row in stepped)  # the same prompt in each sequence
    backend.close()


def test_the_default_decode_run_times_each_synchronised_step():
    """The protocol's default (llama.cpp's batch 1, ONNX): one ``decode`` a step, the host clock
    read around it after the device is synchronised."""

    class Counting(BackendBase):
        def __init__(self):
            self.calls = []

        def decode(self, token):
            self.calls.append(("decode", token))
            return token + 1

        def decode_batch(self, tokens):
            self.calls.append(("decode_batch", list(tokens)))
            return [t + 1 for t in tokens]

        def sync(self):
            self.calls.append(("sync",))

    one = Counting()
    run = one.decode_run([5], 3)
    assert isinstance(run, DecodeRun) and run.tokens == [[6], [7], [8]]
    assert len(run.step_s) == 3 and all(s >= 0 for s in run.step_s)
    assert one.calls == [("decode", 5), ("sync",), ("decode", 6), ("sync",), ("decode", 7),
                         ("sync",)]
    two = Counting()
    assert two.decode_run([1, 2], 2).tokens == [[2, 3], [3, 4]]
    assert two.calls == [("decode_batch", [1, 2]), ("sync",), ("decode_batch", [2, 3]),
                         ("sync",)]


def test_a_timed_run_times_the_prefill_and_one_decode_run(tiny_model, prompt):
    backend = load_backend(precisions.get("bf16-compiled"), tiny_model, device="cpu",
                           threads=2, n_ctx=40, batch_size=2)
    ttft, steps = timed_run(backend, prompt, 5, batch_size=2)
    assert ttft > 0 and len(steps) == 5 and all(s > 0 for s in steps)
    assert timed_run(backend, prompt, 0, batch_size=2)[1] == []
