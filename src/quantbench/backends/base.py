"""What a backend is: the ``Backend`` protocol lists every method and attribute the scenarios
and tools use, and ``BackendBase`` gives the defaults an engine may keep. An engine's class is
found through its registry entry (``quantbench.engines``: ``loader``), never by its name."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np


class DecodeRun(NamedTuple):
    """``n`` greedy decode steps: each step's next token of every sequence, and each step's
    seconds (from the end of the step before it, so that the steps add up to the run)."""

    tokens: list[list[int]]
    step_s: list[float]


@runtime_checkable
class Backend(Protocol):
    """One loaded model of one precision, decoding greedily.

    - ``configure(batch_size, n_ctx)``: decode ``batch_size`` sequences of up to ``n_ctx``
      tokens each from now on (a no-op when that shape is configured already);
    - ``fill(ids)``: the untimed context every sequence starts from (a depth; empty for none);
    - ``prefill(ids) -> int``: the prompt after the filled context, the next token (argmax);
    - ``decode(token) -> int``: one token fed, the next one back;
    - ``prefill_batch(ids) -> list[int]`` / ``decode_batch(tokens) -> list[int]``: the same
      for ``batch_size`` sequences decoded together (the prompt repeated in each);
    - ``decode_run(tokens, n) -> DecodeRun``: ``n`` greedy steps from ``tokens`` (one a
      sequence), the tokens of ``decode``/``decode_batch`` fed back each time, with each step's
      time (what the latency scenario times: an engine may keep the steps on its device and
      synchronise once);
    - ``logits(ids, last=None) -> np.ndarray``: float32 logits [len(ids), vocab] of one fresh
      window; with ``last``, of its last ``last`` positions only (what a continuation's
      score needs: an engine can skip the LM head elsewhere);
    - ``sync()``: wait for queued device work (a no-op on the CPU);
    - ``info() -> dict``: what was loaded (dtype, quantisation, device);
    - ``memory_parts() -> dict``: MiB the engine holds on its device, by part
      (``weights_mib``, ``kv_cache_mib``, ``compute_mib``, ``output_mib``; a part it cannot
      tell is left out);
    - ``discard_context()``: the next ``configure`` makes a new context (after a failure);
    - ``eager_if_refused() -> str | None``: where a compiled path refused the configured
      shape, decode eagerly from now on and say why (None: nothing changed);
    - ``close()``: free what the engine holds outside Python's reach.
    """

    batch_size: int

    def configure(self, batch_size: int, n_ctx: int) -> None: ...
    def fill(self, ids) -> None: ...
    def prefill(self, ids) -> int: ...
    def decode(self, token: int) -> int: ...
    def prefill_batch(self, ids) -> list[int]: ...
    def decode_batch(self, tokens: list[int]) -> list[int]: ...
    def decode_run(self, tokens: list[int], n: int) -> DecodeRun: ...
    def logits(self, ids, last: int | None = None) -> np.ndarray: ...
    def sync(self) -> None: ...
    def info(self) -> dict: ...
    def memory_parts(self) -> dict: ...
    def discard_context(self) -> None: ...
    def eager_if_refused(self) -> str | None: ...
    def close(self) -> None: ...


class BackendBase:
    """Defaults: a backend keeps the configured ``shape`` (batch size, context) in
    ``self.shape``; one without a compiled path refuses nothing; one that holds nothing outside
    Python closes with nothing to do; a decode run is ``decode`` (one sequence) or
    ``decode_batch`` called once a step, the device synchronised before each clock read."""

    shape: tuple[int, int] | None = None

    def decode_run(self, tokens: list[int], n: int) -> DecodeRun:
        step = self.decode_batch if len(tokens) > 1 else lambda t: [self.decode(t[0])]
        clock = time.perf_counter
        out, seconds = [], []
        for _ in range(n):
            start = clock()
            tokens = step(tokens)
            self.sync()
            seconds.append(clock() - start)
            out.append(tokens)
        return DecodeRun(out, seconds)

    def discard_context(self) -> None:
        self.shape = None

    def eager_if_refused(self) -> str | None:
        return None

    def close(self) -> None:
        return None


def construct(cls, precision, artifact: str | Path, **options):
    """An engine's backend, given the load options its constructor takes (the others are the
    scenario's wishes that this engine has no use for, such as where llama.cpp picks its greedy
    token)."""
    accepted = inspect.signature(cls).parameters
    return cls(precision, artifact, **{k: v for k, v in options.items() if k in accepted})
