"""Backends: each knows how to load and run one engine. Scenarios only use this interface.

A backend exposes, for batch size 1 and greedy decoding:
- ``prefill(ids) -> int``: reset the KV cache, run the prompt, return the next token (argmax);
- ``decode(token) -> int``: feed one token, return the next one;
- ``prefill_batch(ids) -> list[int]`` / ``decode_batch(tokens) -> list[int]``: the same for
  ``batch_size`` sequences decoded together (the prompt repeated in each);
- ``logits(ids) -> np.ndarray``: float32 logits [len(ids), vocab] of one fresh window;
- ``sync()``: wait for queued device work (a no-op on the CPU);
- ``info() -> dict``: what was loaded (dtype, quantisation, device);
- ``memory_parts() -> dict``: MiB the engine holds on its device, by part (``weights_mib``,
  ``kv_cache_mib``, ``compute_mib``, ``output_mib``; a part it cannot tell is left out).
"""

from __future__ import annotations

from pathlib import Path

from quantbench import precisions
from quantbench.device import require_cuda
from quantbench.precisions import TRANSFORMERS_SIDE, Precision


def preload(precision_name: str) -> None:
    """Import the engine before anything imports numpy.

    With the CUDA build of llama-cpp-python on the GPU machine, loading a model segfaults in a
    process that imported numpy before llama_cpp (seen on an H200 with numpy 2.5); importing
    llama_cpp first avoids it. Job scripts call this first thing."""

    if precisions.get(precision_name).is_gguf:
        import llama_cpp  # noqa: F401


def load_backend(precision: Precision, artifact: str | Path, *, device: str, threads: int,
                 n_ctx: int, batch_size: int = 1, greedy: str = "host", all_logits: bool = True):
    """Load ``artifact`` (an HF folder, a GGUF file or an ONNX folder) for ``precision``.

    ``all_logits=False`` says only the last position of each sequence needs its logits (no
    ``logits()``): llama.cpp then reserves no compute memory for a row of logits per position.

    ``greedy`` says where llama.cpp picks the greedy token: "host" (argmax of the logits row
    copied back) or "device" (llama.cpp's backend sampler; only the token comes back, and no
    logits are produced, so ``logits()`` is refused). transformers always takes the argmax on
    the model's device."""
    if device == "cuda":
        require_cuda()  # else llama.cpp runs on the CPU and torch fails late
    if precision.backend in TRANSFORMERS_SIDE:
        from quantbench.backends.hf import HFBackend

        return HFBackend(precision, artifact, device=device, threads=threads, n_ctx=n_ctx,
                         batch_size=batch_size)
    if precision.is_onnx:
        from quantbench.backends.onnx import OnnxBackend

        return OnnxBackend(precision, artifact, device=device, threads=threads, n_ctx=n_ctx,
                           batch_size=batch_size)
    from quantbench.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(precision, artifact, device=device, threads=threads, n_ctx=n_ctx,
                           batch_size=batch_size, greedy=greedy, all_logits=all_logits)
