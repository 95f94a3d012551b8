"""Where the time of quantbench's llama.cpp prefill and batched decode step goes, part by part, in
one process (``quantbench fidelity --prefill-parts`` / ``--step-parts``).

--prefill-parts: where a batch-1 prefill's time goes, in one process (medians of --parts-reps
interleaved runs): llama_decode and synchronise alone (llama-bench's timed region), the same
after a decode step (as in our runs: llama.cpp then cannot reuse its last graph and builds the
prefill's anew), with the first token's argmax, our whole timed prefill (rewind, the prompt's
ctypes array, decode, argmax), the rewind, the argmax and the array alone, llama_decode at each
--ubatch (and llama-bench's pp at the same -ub), in a context of llama-bench's size (P cells,
where ours has P + G + 1), and llama-bench's pp with and without llama.cpp's graph reuse
(LLAMA_GRAPH_REUSE_DISABLE=0/1).
--step-parts: where one batched decode step's time goes, at each --batch-sizes value, in one
process: llama_decode and synchronise of the step alone (llama-batched-bench's timed region: it
asks for every sequence's logits and synchronises each step, but feeds random tokens and picks
none), our whole step, and picking the greedy tokens alone (on the host, one argmax over the
batch x vocabulary logits).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import llama_cpp  # before numpy: see quantbench.backends.preload
import numpy as np

from quantbench import precisions
from quantbench.backends import llamacpp
from quantbench.backends.llamacpp import LlamaCppBackend


def n_ctx_per_seq(a) -> int:
    """KV cells a sequence needs at depth 0: as run_latency's context (prompt + new + 1)."""
    return a.n_prompt + a.n_gen + 1


def prefill_parts(tools: Path, gguf: Path, ids: np.ndarray, a) -> list[dict]:
    """Where one batch-1 prefill's time goes (see the module's docstring): median ms of each
    part over --parts-reps interleaved runs, after warm-ups, in this process."""
    p = a.n_prompt
    prompt = [int(i) for i in ids[:p]]
    backend = LlamaCppBackend(precisions.get("gguf-f16"), gguf,
                              device="cuda" if a.ngl else "cpu", threads=a.threads,
                              n_ctx=n_ctx_per_seq(a), all_logits=False)
    arr = (llama_cpp.llama_token * p)(*prompt)
    batch = llama_cpp.llama_batch_get_one(arr, p)
    clock = time.perf_counter_ns

    def decode():
        backend.run_batch(batch)
        backend.sync()

    def timed(fn, rewind=True):
        if rewind:
            backend.rewind()
        backend.sync()
        t0 = clock()
        fn()
        backend.sync()
        return (clock() - t0) / 1e6

    def after_step():
        """As each of our runs: the prefill follows a decode step, so llama.cpp cannot reuse
        its last graph (one of another shape) and builds the prefill's anew."""
        backend.rewind()
        backend.decode(prompt[0])
        return timed(decode)

    parts = {
        "llama_decode + sync (llama-bench's region)": lambda: timed(decode),
        "the same after a decode step (graph rebuilt)": after_step,
        "+ first token's argmax": lambda: timed(lambda: (decode(), backend.argmax(-1))),
        "our timed prefill (rewind, array, decode, argmax)": lambda: timed(
            lambda: backend.prefill(prompt), rewind=False),
        "rewind alone": lambda: timed(backend.rewind, rewind=False),
        # after the prefill above: the logits row is there, nothing else is timed
        "first token's argmax alone": lambda: timed(lambda: backend.argmax(-1), rewind=False),
        "prompt's ctypes array alone": lambda: timed(
            lambda: llama_cpp.llama_batch_get_one((llama_cpp.llama_token * p)(*prompt), p),
            rewind=False),
    }
    out = [{"part": name, "ms": ms, "tok_s": p / (ms / 1e3)}
           for name, ms in interleaved_medians(parts, a.warmup, a.parts_reps).items()]
    def alone(label: str) -> None:
        v = [timed(decode) for _ in range(a.warmup + a.parts_reps)][a.warmup:]
        out.append({"part": label, "ms": statistics.median(v),
                    "tok_s": p / (statistics.median(v) / 1e3)})

    for u in a.ubatch:
        backend.ubatch = u  # a new context with this n_ubatch
        backend.discard_context()
        backend.configure(1, n_ctx_per_seq(a))
        alone(f"llama_decode + sync, n_ubatch {u}")
    backend.ubatch = llamacpp.UBATCH
    backend.discard_context()
    # llama-bench's pp context holds the prompt and no more (n_ctx = P): ours holds P + G + 1
    backend.configure(1, p)
    alone(f"llama_decode + sync, n_ctx {p} (llama-bench's)")
    backend.close()
    if a.ubatch:
        cmd = [str(tools / "llama-bench"), "-m", str(gguf), "-p", str(p), "-n", "0",
               "-ub", ",".join(map(str, a.ubatch)), "-r", str(a.bench_reps),
               "-t", str(a.threads), "-ngl", str(a.ngl), "-fa", "auto", "-o", "json"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        for r in json.loads(res.stdout):
            out.append({"part": f"llama-bench pp{p}, -ub {r['n_ubatch']}",
                        "ms": p / r["avg_ts"] * 1e3, "tok_s": r["avg_ts"]})
    # llama-bench's reps reuse the last prefill's graph; without reuse, each builds its own
    cmd = [str(tools / "llama-bench"), "-m", str(gguf), "-p", str(p), "-n", "0",
           "-r", str(a.bench_reps), "-t", str(a.threads), "-ngl", str(a.ngl), "-fa", "auto",
           "-o", "json"]
    for reuse in ("0", "1"):
        env = {**os.environ, "LLAMA_GRAPH_REUSE_DISABLE": reuse}
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        ts = json.loads(res.stdout)[0]["avg_ts"]
        out.append({"part": f"llama-bench pp{p}, LLAMA_GRAPH_REUSE_DISABLE={reuse}",
                    "ms": p / ts * 1e3, "tok_s": ts})
    return out


def step_parts(gguf: Path, ids: np.ndarray, a) -> list[dict]:
    """Where one batched decode step's time goes, at each --batch-sizes value, after a
    --n-prompt prefill of every sequence (median ms of --parts-reps interleaved steps, after
    --warmup, in this process): llama_decode and synchronise of the step alone (what
    llama-batched-bench times: it feeds random tokens and picks none), our whole step (the same
    and each sequence's greedy token, as --greedy's first value picks it), and the greedy tokens
    alone, read again after a step."""
    prompt = [int(i) for i in ids[:a.n_prompt]]
    return [{"batch_size": batch, "part": name, "ms": ms, "tok_s": batch / (ms / 1e3)}
            for batch in a.batch_sizes
            for name, ms in _step_parts_at(batch, gguf, prompt, a).items()]


def _step_parts_at(batch: int, gguf: Path, prompt: list[int], a) -> dict[str, float]:
    steps = 2 * (a.warmup + a.parts_reps) + 2  # the two timed parts that step advance the KV
    backend = LlamaCppBackend(precisions.get("gguf-f16"), gguf,
                              device="cuda" if a.ngl else "cpu", threads=a.threads,
                              n_ctx=len(prompt) + steps, batch_size=batch, greedy=a.greedy[0],
                              all_logits=False)
    tokens = backend.prefill_batch(prompt)
    clock = time.perf_counter_ns

    def timed(fn):
        backend.sync()
        t0 = clock()
        got = fn()
        backend.sync()
        return (clock() - t0) / 1e6, got

    def alone():
        return timed(lambda: (backend.step_batch(tokens), backend.sync()))[0]

    def ours():
        nonlocal tokens
        ms, tokens = timed(lambda: backend.decode_batch(tokens))
        return ms

    parts = {
        "llama_decode + sync (batched-bench's region)": alone,
        "our decode step (the same + greedy tokens)": ours,
        "the greedy tokens alone": lambda: timed(lambda: backend.next_tokens(lambda s: s))[0],
    }
    try:
        return interleaved_medians(parts, a.warmup, a.parts_reps)
    finally:
        backend.close()


def interleaved_medians(parts: dict, warmup: int, reps: int) -> dict[str, float]:
    """Each part's median time (each a function returning its ms) over ``reps`` rounds after
    ``warmup``, the parts taking turns within a round so that drift touches all alike."""
    times = {name: [] for name in parts}
    for run in range(warmup + reps):
        for name, fn in parts.items():
            t = fn()
            if run >= warmup:
                times[name].append(t)
    return {name: statistics.median(v) for name, v in times.items()}
