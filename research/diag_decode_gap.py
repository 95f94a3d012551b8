"""Where does quantbench's llama.cpp decode lose time against llama-bench? (GPU diagnostic)

    python -m research.diag_decode_gap MODEL.gguf --tools DIR [--ngl 99] [--rounds 6]

Decodes ``--n-gen`` tokens at depth ``--depth`` (llama-bench's ``tg N @ d D``) in several ways,
in one process, interleaved round by round so that clock and thermal drift fall on every variant
alike, and prints tokens/s (median over rounds) and the ratio to llama-bench, which is run before
and after the rounds:

  pipeline-host     quantbench's latency path (LlamaCppBackend + timed_run), host argmax
  pipeline-device   the same with llama.cpp's backend greedy sampler
  raw-ours          bare ctypes loop (llama_decode + llama_synchronize, no logits read) on the
                    context quantbench creates
  raw-bench         the same loop on a context made like llama-bench's (n_ctx = depth + gen,
                    n_batch 2048, n_ubatch 512)
  raw-bench-pool    raw-bench with a CPU threadpool attached (poll 50), as llama-bench does
  raw-bench-argmax  raw-bench plus reading the logits row and an argmax on the host
  raw-ours-t1       raw-ours with one CPU thread (all layers are on the GPU; the CPU only looks
                    up the token embedding)

The gaps between neighbouring rows tell the cost of each difference.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp  # noqa: F401  (before numpy: see quantbench.backends.preload)
import numpy as np

from quantbench import precisions
from quantbench.backends.llamacpp import LlamaCppBackend
from quantbench.scenarios.latency import timed_run


class ThreadpoolParams(ctypes.Structure):  # ggml.h: struct ggml_threadpool_params
    _fields_ = [("cpumask", ctypes.c_bool * 512), ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int), ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool),
                ("paused", ctypes.c_bool)]


def llama_bench(tools: Path, gguf: Path, a) -> float:
    cmd = [str(tools / "llama-bench"), "-m", str(gguf), "-p", "0", "-n", str(a.n_gen),
           "-d", str(a.depth), "-r", "5", "-t", str(a.threads), "-ngl", str(a.ngl), "-fa", "auto",
           "-o", "json"]
    rows = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return next(r["avg_ts"] for r in rows if r["n_gen"] == a.n_gen)


def make_pool(n_threads: int):
    """A ggml CPU threadpool like llama-bench's (poll 50), or None where it cannot be made."""
    lib_dir = os.environ.get("LLAMA_CPP_LIB_PATH")
    if not lib_dir:
        return None
    base = ctypes.CDLL(str(Path(lib_dir) / "libggml-base.so"))
    cpu = ctypes.CDLL(str(Path(lib_dir) / "libggml-cpu.so"))
    params = ThreadpoolParams()
    base.ggml_threadpool_params_init(ctypes.byref(params), n_threads)
    params.poll = 50
    cpu.ggml_threadpool_new.restype = ctypes.c_void_p
    return cpu.ggml_threadpool_new(ctypes.byref(params))


def raw_context(model, a, pool=None):
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = a.depth + a.n_gen
    cp.n_batch, cp.n_ubatch = 2048, 512
    cp.n_threads = cp.n_threads_batch = a.threads
    cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    ctx = llama_cpp.llama_init_from_model(model, cp)
    if pool:
        attach = llama_cpp.llama_cpp._lib.llama_attach_threadpool
        attach.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        attach(ctypes.cast(ctx, ctypes.c_void_p), pool, None)
    return ctx


def raw_gen(ctx, depth_ids, n_gen: int, n_vocab: int, argmax: bool) -> float:
    """llama-bench's test_gen from Python: tokens/s of n_gen single-token decodes at depth."""
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    arr = (llama_cpp.llama_token * len(depth_ids))(*depth_ids)
    llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(depth_ids)))
    llama_cpp.llama_synchronize(ctx)
    one = (llama_cpp.llama_token * 1)()
    batch = llama_cpp.llama_batch_get_one(one, 1)
    one[0] = random.randrange(n_vocab)
    start = time.perf_counter()
    for _ in range(n_gen):
        llama_cpp.llama_decode(ctx, batch)
        if argmax:
            row = llama_cpp.llama_get_logits_ith(ctx, -1)
            one[0] = int(np.ctypeslib.as_array(row, shape=(n_vocab,)).argmax())
        else:
            llama_cpp.llama_synchronize(ctx)
            one[0] = random.randrange(n_vocab)
    return n_gen / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("--tools", type=Path, required=True, help="folder with llama-bench")
    ap.add_argument("--ngl", type=int, default=99)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--depth", type=int, default=512)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=3, help="runs per variant and round")
    a = ap.parse_args()
    device = "cuda" if a.ngl else "cpu"
    random.seed(0)
    bench_before = llama_bench(a.tools, a.gguf, a)
    prec = precisions.get("gguf-f16")
    host = LlamaCppBackend(prec, a.gguf, device=device, threads=a.threads,
                           n_ctx=a.depth + a.n_gen + 1)
    dev = LlamaCppBackend(prec, a.gguf, device=device, threads=a.threads,
                          n_ctx=a.depth + a.n_gen + 1, greedy="device")
    n_vocab = host.n_vocab
    prompt = [random.randrange(n_vocab) for _ in range(a.depth)]
    bench_ctx = raw_context(host.model, a)
    pool = make_pool(a.threads)
    pool_ctx = raw_context(host.model, a, pool) if pool else None

    def pipeline(backend):
        _, steps = timed_run(backend, prompt, a.n_gen)
        return len(steps) / sum(steps)

    def ours_t1():
        llama_cpp.llama_set_n_threads(host.ctx, 1, 1)
        try:
            return raw_gen(host.ctx, prompt, a.n_gen, n_vocab, False)
        finally:
            llama_cpp.llama_set_n_threads(host.ctx, a.threads, a.threads)

    variants = {
        "pipeline-host": lambda: pipeline(host),
        "pipeline-device": lambda: pipeline(dev),
        "raw-ours": lambda: raw_gen(host.ctx, prompt, a.n_gen, n_vocab, False),
        "raw-bench": lambda: raw_gen(bench_ctx, prompt, a.n_gen, n_vocab, False),
        "raw-bench-argmax": lambda: raw_gen(bench_ctx, prompt, a.n_gen, n_vocab, True),
        "raw-ours-t1": ours_t1,
    }
    if pool_ctx:
        variants["raw-bench-pool"] = lambda: raw_gen(pool_ctx, prompt, a.n_gen, n_vocab, False)
    for fn in variants.values():  # warm-up: CUDA graphs, clocks
        for _ in range(3):
            fn()
    results = {name: [] for name in variants}
    for _ in range(a.rounds):
        for name, fn in variants.items():
            results[name].append(statistics.median(fn() for _ in range(a.reps)))
    bench_after = llama_bench(a.tools, a.gguf, a)
    bench = (bench_before + bench_after) / 2
    print(f"{a.gguf.name}: llama-bench tg{a.n_gen}@d{a.depth} {bench_before:.1f} before, "
          f"{bench_after:.1f} after; threads={a.threads}")
    print(f"{'variant':<18}{'tok/s':>9}{'ratio':>8}{'us/token vs bench':>19}{'round spread %':>16}")
    for name, vals in results.items():
        med = statistics.median(vals)
        spread = 100 * (max(vals) - min(vals)) / med
        print(f"{name:<18}{med:>9.1f}{med / bench:>8.3f}{1e6 / med - 1e6 / bench:>+19.1f}"
              f"{spread:>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
