"""Backends: each knows how to load and run one engine (``base.Backend`` lists what the
scenarios use); the engine's registry entry (``quantbench.engines``) says which class that is."""

from __future__ import annotations

import importlib
from pathlib import Path

from quantbench import precisions
from quantbench.backends.base import construct
from quantbench.device import require_cuda
from quantbench.precisions import Precision


def preload(precision_name: str) -> None:
    """Import the engine's library before anything imports numpy, where its entry asks for it.

    With the CUDA build of llama-cpp-python on a GPU machine, loading a model segfaults in a
    process that imported numpy before llama_cpp (seen on an H200 with numpy 2.5); importing
    llama_cpp first avoids it. Job scripts call this first thing."""
    library = precisions.get(precision_name).engine.preload
    if library:
        importlib.import_module(library)


def load_backend(precision: Precision, artifact: str | Path, *, device: str, threads: int,
                 n_ctx: int, batch_size: int = 1, greedy: str = "host", all_logits: bool = True):
    """Load ``artifact`` (what the precision's engine loads: an HF folder, a GGUF file, an ONNX
    folder) for ``precision``.

    ``all_logits=False`` says only the last position of each sequence needs its logits (no
    ``logits()``): llama.cpp then reserves no compute memory for a row of logits per position.

    ``greedy`` says where llama.cpp picks the greedy token: "host" (argmax of the logits row
    copied back) or "device" (llama.cpp's backend sampler; only the token comes back, and no
    logits are produced, so ``logits()`` is refused). transformers always takes the argmax on
    the model's device."""
    if device == "cuda":
        require_cuda()  # else llama.cpp runs on the CPU and torch fails late
    return construct(precision.engine.backend_class(), precision, artifact, device=device,
                     threads=threads, n_ctx=n_ctx, batch_size=batch_size, greedy=greedy,
                     all_logits=all_logits)
