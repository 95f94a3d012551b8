"""The decode limit of a model on this machine: how fast its weights can be read once per token.

A decode step at batch B multiplies B activations by every weight matrix of the model once: per
layer the attention's fused q/k/v projection, its output projection, the MLP's fused gate and up
projections and its down projection, then the LM head. Those products alone, on weights of the
model's own shapes in the given dtype (random values: a product's time does not depend on them),
are what no engine computing in that dtype can decode faster than. Everything else a real step
does (attention over the KV cache, norms, rotary embeddings, sampling, the host's bookkeeping)
only adds time.

On a GPU the products of one step are captured as one CUDA graph and the graph is replayed, so
no launch or host overhead is in the figure; the device is synchronised before each clock read.
On the CPU the products run in a plain loop. The figure is the median over ``repeats`` timed
blocks of ``steps`` steps each, after ``warmup`` untimed steps. A quantized format reads fewer
bytes and may decode faster than this limit: its decode figure's fraction of the limit says how
far its bytes carried it.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from quantbench.device import resolve_device, resolve_threads
from quantbench.records import provenance

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def weight_shapes(config: dict) -> list[tuple[int, int]]:
    """(out features, in features) of every weight product of one decode step of an HF
    Llama-like config: q/k/v fused, o, gate and up fused, down per layer, then the LM head."""
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    layer = [((heads + 2 * kv_heads) * head_dim, hidden), (hidden, heads * head_dim),
             (2 * ffn, hidden), (hidden, ffn)]
    return layer * config["num_hidden_layers"] + [(config["vocab_size"], hidden)]


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _step_fn(shapes, batch_size: int, dtype: torch.dtype, device: torch.device, seed: int):
    gen = torch.Generator(device=device).manual_seed(seed)  # drawn where they are used
    weights = [torch.randn(shape, generator=gen, dtype=dtype, device=device) for shape in shapes]
    inputs = {n: torch.randn(batch_size, n, generator=gen, dtype=dtype, device=device)
              for n in sorted({shape[1] for shape in shapes})}
    outputs = [torch.empty(batch_size, shape[0], dtype=dtype, device=device) for shape in shapes]

    def step() -> None:
        for w, out in zip(weights, outputs, strict=True):
            torch.matmul(inputs[w.shape[1]], w.t(), out=out)

    return step, sum(w.numel() * w.element_size() for w in weights)


def time_step(step, device: torch.device, *, steps: int, repeats: int, warmup: int) -> float:
    """Median seconds of one step: the steps of a block replayed as one CUDA graph on a GPU
    (captured once, after ``warmup`` eager steps), in a loop on the CPU."""
    sync = _sync(device)
    for _ in range(warmup):
        step()
    sync()
    run = step
    if device.type == "cuda":
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            step()  # the graph's memory is taken on a side stream, as torch.cuda.graphs asks
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            run()
        sync()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def measure_decode_limit(model_dir: str | Path, *, batch_sizes=(1,), dtype: str | None = None,
                         device: str = "auto", threads: int = 0, steps: int = 20,
                         repeats: int = 5, warmup: int = 3, seed: int = 0) -> dict:
    """The decode limit of the model in ``model_dir`` (its config.json) at each batch size:
    seconds per step, tokens/s (batch / step) and the bandwidth the weight reads achieved.
    ``dtype`` defaults to bfloat16 on a GPU and float32 on the CPU."""
    kind = resolve_device(device)
    n_threads = resolve_threads(threads)
    torch.set_num_threads(n_threads)
    dev = torch.device("cuda:0" if kind == "cuda" else "cpu")
    dtype = dtype or ("bfloat16" if kind == "cuda" else "float32")
    config = json.loads((Path(model_dir) / "config.json").read_text())
    shapes = weight_shapes(config)
    points = []
    for b in sorted(set(batch_sizes)):
        step, weight_bytes = _step_fn(shapes, b, DTYPES[dtype], dev, seed)
        seconds = time_step(step, dev, steps=steps, repeats=repeats, warmup=warmup)
        points.append({"batch_size": b, "step_ms": seconds * 1e3, "tok_s": b / seconds,
                       "weight_bytes": weight_bytes, "gb_s": weight_bytes / seconds / 1e9})
        del step
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    method = ("one decode step's weight products replayed as one CUDA graph" if kind == "cuda"
              else "one decode step's weight products in a loop")
    return {"device": kind, "dtype": dtype, "threads": n_threads, "products": len(shapes),
            "method": f"{method}; median of {repeats} blocks of {steps} steps after {warmup} "
                      "warm-up steps", "points": points,
            "provenance": provenance({"batch_sizes": sorted(set(batch_sizes)), "dtype": dtype,
                                      "device": device, "steps": steps, "repeats": repeats})}
