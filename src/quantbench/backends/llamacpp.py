"""llama.cpp backend through llama-cpp-python.

Timed paths (prefill/decode) call the C API directly (llama_batch_get_one, llama_decode,
llama_get_logits_ith) on the context that ``Llama`` created: no sampler chain, no Python-side
copy of the logits beyond one row, so the per-token overhead stays close to llama.cpp's own.
Full-window logits for perplexity go through ``Llama.eval`` with ``logits_all``.
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np

from quantbench.precisions import Precision


class LlamaCppBackend:
    def __init__(self, precision: Precision, gguf_path, *, device: str, threads: int,
                 n_ctx: int, all_logits: bool = False):
        self.precision = precision
        self.device = device
        self.llm = llama_cpp.Llama(
            model_path=str(gguf_path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=-1 if device == "cuda" else 0,
            flash_attn=device == "cuda",
            logits_all=all_logits,
            seed=0,
            verbose=False,
        )
        self.ctx = self.llm._ctx.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_vocab = self.llm.n_vocab()
        self._one = (llama_cpp.llama_token * 1)()

    def sync(self) -> None:
        llama_cpp.llama_synchronize(self.ctx)

    def _decode(self, tokens, n: int) -> int:
        rc = llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(tokens, n))
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        row = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        return int(np.ctypeslib.as_array(row, shape=(self.n_vocab,)).argmax())

    def prefill(self, ids) -> int:
        llama_cpp.llama_memory_clear(self.memory, True)
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        return self._decode(arr, len(ids))

    def decode(self, token: int) -> int:
        self._one[0] = token
        return self._decode(self._one, 1)

    def logits(self, ids) -> np.ndarray:
        llama_cpp.llama_memory_clear(self.memory, True)
        self.llm.reset()
        self.llm.eval(list(ids))
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def info(self) -> dict:
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.llm.model, desc, ctypes.sizeof(desc))
        return {
            "engine": "llama.cpp",
            "kv_elem_bytes": 2,  # the KV cache is F16 unless type_k/type_v say otherwise
            "model_desc": desc.value.decode(errors="replace"),
            "device": self.device,
            "gpu_offload": llama_cpp.llama_supports_gpu_offload(),
            "n_params": llama_cpp.llama_model_n_params(self.llm.model),
            "model_size_mib": llama_cpp.llama_model_size(self.llm.model) / 2**20,
        }
