"""llama.cpp backend through llama-cpp-python's C API (no Llama class, no sampler chain).

The model and context are created with the C API so that every setting is ours (threads, batch
sizes, flash attention, one KV sequence per batch row). Timed paths call llama_decode on
prepared batches and read one row of logits per sequence: the per-token Python overhead is a few
ctypes calls and an argmax. Full-window logits for perplexity come from one batch whose every
token asks for its logits.

Memory: llama.cpp sizes its compute buffer for the worst batch it may be given, and that
includes the logits of every output the context allows (n_outputs_max x n_vocab x 4 bytes:
161 MiB for a 161-token window at a 262,144-token vocabulary). Only perplexity needs a row of
logits per position; a context made with ``all_logits=False`` (latency: one row per sequence)
allows one output per sequence. llama.cpp's C API has no call that returns its buffer sizes (its
C++ memory breakdown is not exported; ``llama_memory_breakdown_print`` only logs), so they are
read from the lines it logs as it allocates each buffer (model, KV, compute, output), through
``llama_log_set``. On the CPU the tensors llama.cpp repacks for its kernels (CPU_REPACK, e.g.
Q4_K) are held twice: the repacked copy and the file pages they were read from, which stay
mapped inside the CPU_Mapped range; both model buffers count as weights, as both are resident.

KV cache: f16 unless the precision sets ``type_k`` / ``type_v`` (q8_0, q4_0: see
quantbench.kvcache, which also refuses, before loading, what llama.cpp would refuse).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import llama_cpp
import llama_cpp._logger
import numpy as np

from quantbench import kvcache
from quantbench.artifacts.gguf import row_alignment, tensor_types
from quantbench.backends.base import BackendBase, DecodeRun
from quantbench.errors import UnsupportedError
from quantbench.precisions import Precision

_backend_ready = False
# llama_get_logits_ith returning a bare address (an int): cheaper than a float pointer, and the
# key under which a numpy view of that row is kept (the output buffer moves only if it grows)
_logits_ith_addr = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)(
    ("llama_get_logits_ith", llama_cpp.llama_cpp._lib))
# llama_get_logits as a bare address: every output's logits, contiguous in the batch's order
# (llama.h), so that a batched step's greedy tokens are one argmax over rows x vocabulary
_logits_addr = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(
    ("llama_get_logits", llama_cpp.llama_cpp._lib))
FLASH_ATTN = {"auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
              "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
              "off": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED}


# "load_tensors:   CPU_Mapped model buffer size =    28.03 MiB", "llama_kv_cache:        CPU KV
# buffer size =     0.03 MiB", "sched_reserve:        CPU compute buffer size =   161.08 MiB"
_BUFFER_LINE = re.compile(r"(?P<buffer>\S+)\s+(?P<kind>model|KV|RS|compute|output) buffer size"
                          r" =\s*(?P<mib>[0-9.]+) MiB")
_PART = {"model": "weights_mib", "KV": "kv_cache_mib", "RS": "kv_cache_mib",
         "compute": "compute_mib", "output": "output_mib"}


@contextmanager
def _buffer_log(buffers: list[dict], text: list[str] | None = None):
    """Collect the buffers llama.cpp logs while the block runs into ``buffers`` (and its messages
    into ``text``, when given); every message still goes to llama-cpp-python's own log
    callback."""
    text = [] if text is None else text

    @llama_cpp.llama_log_callback
    def collect(level, message, user_data):
        text.append(message.decode(errors="replace"))
        llama_cpp._logger.llama_log_callback(level, message, user_data)

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield
    finally:
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))
        for m in _BUFFER_LINE.finditer("".join(text)):
            buffers.append({"part": _PART[m["kind"]], "buffer": m["buffer"],
                            "mib": float(m["mib"])})


def buffer_parts(buffers: list[dict], device: str) -> dict:
    """The buffers' MiB by part, over those on ``device`` ("cpu": host buffers, CPU* and the
    pinned *_Host ones; "cuda": the rest)."""
    parts: dict[str, float] = {}
    for b in buffers:
        host = b["buffer"].startswith("CPU") or b["buffer"].endswith("_Host")
        if host == (device == "cpu"):
            parts[b["part"]] = parts.get(b["part"], 0.0) + b["mib"]
    return parts


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        llama_cpp.llama_backend_init()
        _backend_ready = True


# llama.cpp's default physical batch: a prompt longer than this is computed in slices of it
UBATCH = 512
# logits (rows x vocabulary floats) from which a step's greedy tokens are taken by several
# threads, each over its own rows (numpy's argmax releases the GIL): at batch 64 and a vocabulary
# of 128,256 one thread reads 33 MB a step, milliseconds against a GPU step of tens
ARGMAX_SPLIT = 1 << 20
ARGMAX_THREADS = min(8, os.cpu_count() or 1)


class LlamaCppBackend(BackendBase):
    def __init__(self, precision: Precision, gguf_path, *, device: str, threads: int,
                 n_ctx: int, batch_size: int = 1, greedy: str = "host", all_logits: bool = True):
        _init_backend()
        if device == "cuda" and not llama_cpp.llama_supports_gpu_offload():
            # such a build would run every layer on the CPU under a cuda label
            raise UnsupportedError(
                f"{precision.name} on cuda: this llama-cpp-python build has no GPU offload "
                "(reinstall it with CMAKE_ARGS=\"-DGGML_CUDA=on\")")
        if greedy not in ("host", "device"):
            raise ValueError(f"greedy must be 'host' or 'device', not {greedy!r}")
        self.greedy = greedy
        # a KV cache llama.cpp would refuse is refused before anything is loaded
        why = kvcache.problem(precision.settings)
        if why is not None:
            raise UnsupportedError(f"{precision.name}: {why}")
        self._chains = []
        self.precision = precision
        self.device = device
        self.threads = threads
        self.all_logits = all_logits
        self.path = str(gguf_path)
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = -1 if device == "cuda" else 0
        self.ctx = None
        self.buffers: list[dict] = []
        with _buffer_log(self.buffers):
            self.model = llama_cpp.llama_model_load_from_file(str(gguf_path).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {gguf_path}")
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        head_dim = (llama_cpp.llama_model_n_embd(self.model)
                    // llama_cpp.llama_model_n_head(self.model))
        why = kvcache.problem(precision.settings, head_dim)
        if why is not None:
            raise UnsupportedError(f"{precision.name}: {why}")
        # batch-1 decode: one token array and one batch view of it, reused for every token
        self._one = (llama_cpp.llama_token * 1)()
        self._one_batch = llama_cpp.llama_batch_get_one(self._one, 1)
        self._prepared: dict[tuple, llama_cpp.llama_batch] = {}
        self._step = None
        # views of logits, by address; "step": of the step batch's token and position arrays
        self._rows: dict = {}
        self._argmax_pool = None  # threads for a large batch's greedy tokens (ARGMAX_SPLIT)
        self.shape = None
        self.ubatch = UBATCH  # llama.cpp's n_ubatch of the next context (as its tools' -ub)
        self.configure(batch_size, n_ctx)

    def configure(self, batch_size: int, n_ctx: int) -> None:
        """A context for ``batch_size`` sequences of up to ``n_ctx`` tokens each, one KV
        sequence per batch row (the previous context is freed first, so that the memory measured
        at this batch size is this context's)."""
        if self.ctx and self.shape == (batch_size, n_ctx):
            return
        self._free_context()
        self.batch_size, self.shape = batch_size, (batch_size, n_ctx)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx * batch_size  # the KV cache is split evenly between sequences
        cparams.n_batch = n_ctx * batch_size  # a whole batch's prompt in one llama_decode call
        cparams.n_ubatch = min(cparams.n_batch, self.ubatch)
        cparams.n_seq_max = batch_size
        # outputs a ubatch may ask for (0: n_batch); the compute buffer holds their logits
        cparams.n_outputs_max = 0 if self.all_logits else batch_size
        cparams.n_threads = cparams.n_threads_batch = self.threads
        # llama.cpp's own default ("auto": on where the backend supports it); it changes results
        # (perplexity differs in the 4th digit on the CPU), so it is a precision setting
        cparams.flash_attn_type = FLASH_ATTN[self.precision.settings.get("flash_attn", "auto")]
        type_k, type_v = kvcache.types(self.precision.settings)
        cparams.type_k, cparams.type_v = kvcache.GGML_TYPE[type_k], kvcache.GGML_TYPE[type_v]
        if self.greedy == "device":
            # one greedy sampler chain per sequence, run by llama.cpp in the compute graph; the
            # chains must outlive the context (freed with it)
            self._seq_samplers = (llama_cpp.llama_sampler_seq_config * batch_size)()
            for s in range(batch_size):
                chain = llama_cpp.llama_sampler_chain_init(
                    llama_cpp.llama_sampler_chain_default_params())
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
                self._chains.append(chain)
                self._seq_samplers[s].seq_id = s
                self._seq_samplers[s].sampler = ctypes.cast(chain, ctypes.c_void_p)
            cparams.samplers = ctypes.cast(self._seq_samplers,
                                           ctypes.POINTER(llama_cpp.llama_sampler_seq_config))
            cparams.n_samplers = batch_size
        # the model's buffers stay; the context's are logged anew
        self.buffers = [b for b in self.buffers if b["part"] == "weights_mib"]
        log: list[str] = []
        with _buffer_log(self.buffers, log):
            self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx and "Flash Attention" in "".join(log):
            # flash_attn auto that this device could not turn on, under a quantized V cache
            raise UnsupportedError(f"{self.precision.name}: a {type_v} V cache needs flash "
                                   "attention, which llama.cpp could not enable on this device")
        if not self.ctx:
            raise MemoryError(f"llama.cpp could not create a context of {batch_size} x {n_ctx} "
                              "tokens (out of memory)")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.depth, self.pos = 0, 0

    def _free_context(self) -> None:
        for batch in getattr(self, "_prepared", {}).values():
            llama_cpp.llama_batch_free(batch)
        self._prepared = {}
        if getattr(self, "_step", None) is not None:
            llama_cpp.llama_batch_free(self._step)
            self._step = None
        self._rows = {}
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        for chain in getattr(self, "_chains", []):
            llama_cpp.llama_sampler_free(chain)
        self._chains = []

    def close(self) -> None:
        self._free_context()
        if getattr(self, "_argmax_pool", None) is not None:
            self._argmax_pool.shutdown()
            self._argmax_pool = None
        if getattr(self, "model", None):
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def __del__(self):
        self.close()

    def sync(self) -> None:
        llama_cpp.llama_synchronize(self.ctx)

    def run_batch(self, batch) -> None:
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def argmax(self, i: int) -> int:
        if self.greedy == "device":
            token = llama_cpp.llama_get_sampled_token_ith(self.ctx, i)
            if token < 0:
                raise RuntimeError(f"llama.cpp sampled no token for output {i}")
            return token
        addr = _logits_ith_addr(self.ctx, i)  # synchronises with the device, like the C API
        if not addr:
            raise RuntimeError(f"llama.cpp has no logits for output {i}")
        row = self._rows.get(addr)
        if row is None:
            row = np.ctypeslib.as_array((ctypes.c_float * self.n_vocab).from_address(addr))
            self._rows[addr] = row
        return int(row.argmax())

    def _batch(self, ids, n_seq: int, start: int = 0, logits: bool = True
               ) -> llama_cpp.llama_batch:
        """A batch holding ``ids`` once per sequence from position ``start`` on, asking for the
        logits of each sequence's last token (prepared once, reused across runs)."""
        key = (tuple(ids), n_seq, start, logits)
        if key not in self._prepared:
            n = len(ids)
            batch = llama_cpp.llama_batch_init(n * n_seq, 0, 1)
            batch.n_tokens = n * n_seq
            for s in range(n_seq):
                for j, tok in enumerate(ids):
                    k = s * n + j
                    batch.token[k], batch.pos[k] = tok, start + j
                    batch.n_seq_id[k], batch.seq_id[k][0] = 1, s
                    batch.logits[k] = logits and j == n - 1
            self._prepared[key] = batch
        return self._prepared[key]

    def fill(self, ids) -> None:
        """Fill every sequence's KV cache with ``ids``: the context depth of the runs that
        follow (untimed). Each prefill starts from that depth (``rewind``)."""
        llama_cpp.llama_memory_clear(self.memory, False)
        self.depth = len(ids)
        if ids:
            batch = llama_cpp.llama_batch_init(len(ids) * self.batch_size, 0, 1)
            try:
                batch.n_tokens = len(ids) * self.batch_size
                for s in range(self.batch_size):
                    for j, tok in enumerate(ids):
                        k = s * len(ids) + j
                        batch.token[k], batch.pos[k] = tok, j
                        batch.n_seq_id[k], batch.seq_id[k][0], batch.logits[k] = 1, s, False
                self.run_batch(batch)
            finally:
                llama_cpp.llama_batch_free(batch)

    def rewind(self) -> None:
        """Back to the filled depth: what earlier runs added to each sequence is dropped (cells
        marked free, as llama-bench does between its runs: no data is touched)."""
        if self.depth == 0:
            llama_cpp.llama_memory_clear(self.memory, False)
            return
        for s in range(self.batch_size):
            llama_cpp.llama_memory_seq_rm(self.memory, s, self.depth, -1)

    def prefill(self, ids) -> int:
        """Decode the prompt after the depth, from a rewound cache (positions follow it: llama.cpp
        numbers a batch without positions from each sequence's last one)."""
        self.rewind()
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        self.run_batch(llama_cpp.llama_batch_get_one(arr, len(ids)))
        return self.argmax(-1)

    def decode(self, token: int) -> int:
        self._one[0] = token
        self.run_batch(self._one_batch)
        return self.argmax(-1)

    def prefill_batch(self, ids) -> list[int]:
        """The same prompt in each of ``batch_size`` sequences, after the depth; the next token
        of each."""
        n = len(ids)
        self.rewind()
        self.run_batch(self._batch(ids, self.batch_size, start=self.depth))
        self.pos = self.depth + n
        if self._step is None:
            self._step = llama_cpp.llama_batch_init(self.batch_size, 0, 1)
            self._step.n_tokens = self.batch_size
            for s in range(self.batch_size):
                self._step.n_seq_id[s], self._step.seq_id[s][0] = 1, s
                self._step.logits[s] = True
        return self.next_tokens(lambda s: s * n + n - 1)

    def decode_batch(self, tokens: list[int]) -> list[int]:
        self.step_batch(tokens)
        return self.next_tokens(lambda s: s)

    def step_batch(self, tokens) -> None:
        """One decode step of every sequence (token s to sequence s), its next tokens not read:
        what llama-batched-bench times a step (it feeds random tokens and picks none). The
        step's batch is written through numpy views of its arrays: one call each, not two
        ctypes stores a sequence."""
        views = self._step_views()
        views[0][:] = tokens
        views[1].fill(self.pos)
        self.pos += 1
        self.run_batch(self._step)

    def _step_views(self) -> tuple[np.ndarray, np.ndarray]:
        """numpy views of the step batch's token and position arrays (made with the batch)."""
        views = self._rows.get("step")
        if views is None:
            views = tuple(np.ctypeslib.as_array(a, shape=(self.batch_size,))
                          for a in (self._step.token, self._step.pos))
            self._rows["step"] = views
        return views

    def decode_run(self, tokens: list[int], n: int) -> DecodeRun:
        """``n`` greedy steps: at batch 1 as ``decode``; at batch > 1 each step's greedy tokens
        (one argmax over the batch's logits, or the device sampler's) are written straight
        into the step batch, and turned into Python ints once, after the run."""
        if len(tokens) == 1:
            return super().decode_run(tokens, n)
        clock = time.perf_counter
        out, seconds = [], []
        nxt = tokens
        for _ in range(n):
            start = clock()
            self.step_batch(nxt)
            nxt = self.next_array()
            seconds.append(clock() - start)
            out.append(nxt)
        return DecodeRun([row.tolist() for row in out], seconds)

    def next_tokens(self, index) -> list[int]:
        """Each sequence's next token after a batch whose outputs are one per sequence, in
        order (``index(s)``: the batch position of sequence s's output). On the host, one
        argmax over the outputs x vocabulary array (a view of llama.cpp's buffer), not one
        Python call a row; on the device, the sampler's token of each output."""
        if self.greedy == "device":
            return [self.argmax(index(s)) for s in range(self.batch_size)]
        return self.next_array().tolist()

    def next_array(self) -> np.ndarray:
        """The next token of each sequence after a step (outputs in sequence order), as an
        array."""
        if self.greedy == "device":
            return np.fromiter((self.argmax(s) for s in range(self.batch_size)),
                               dtype=np.int64, count=self.batch_size)
        addr = _logits_addr(self.ctx)  # synchronises with the device, like the C API
        if not addr:
            raise RuntimeError("llama.cpp has no logits for the last batch")
        key = (addr, self.batch_size)
        rows = self._rows.get(key)
        if rows is None:
            flat = (ctypes.c_float * (self.batch_size * self.n_vocab)).from_address(addr)
            rows = np.ctypeslib.as_array(flat).reshape(self.batch_size, self.n_vocab)
            self._rows[key] = rows
        if rows.size < ARGMAX_SPLIT or ARGMAX_THREADS < 2 or self.batch_size < 2:
            return rows.argmax(axis=1)
        return self._split_argmax(rows)

    def _split_argmax(self, rows: np.ndarray) -> np.ndarray:
        """Each row's argmax, the rows split between ARGMAX_THREADS threads."""
        if self._argmax_pool is None:
            self._argmax_pool = ThreadPoolExecutor(ARGMAX_THREADS)
        out = np.empty(len(rows), dtype=np.intp)
        edges = np.linspace(0, len(rows), min(ARGMAX_THREADS, len(rows)) + 1).astype(int)

        def part(a: int, b: int) -> None:
            rows[a:b].argmax(axis=1, out=out[a:b])

        for f in [self._argmax_pool.submit(part, a, b) for a, b in zip(edges, edges[1:],
                                                                       strict=False)]:
            f.result()
        return out

    def logits(self, ids, last: int | None = None) -> np.ndarray:
        if self.greedy == "device":
            raise RuntimeError("a llama.cpp context with device-side greedy sampling has no logits")
        if not self.all_logits:
            raise RuntimeError("this llama.cpp context was made for one row of logits a sequence")
        llama_cpp.llama_memory_clear(self.memory, True)
        self.depth = 0
        batch = llama_cpp.llama_batch_init(len(ids), 0, 1)
        try:
            batch.n_tokens = len(ids)
            rows = min(last or len(ids), len(ids))  # a row of logits for the last positions only
            for j, tok in enumerate(ids):
                batch.token[j], batch.pos[j] = tok, j
                batch.n_seq_id[j], batch.seq_id[j][0] = 1, 0
                batch.logits[j] = j >= len(ids) - rows
            self.run_batch(batch)
            ptr = llama_cpp.llama_get_logits(self.ctx)
            flat = np.ctypeslib.as_array(ptr, shape=(rows * self.n_vocab,))
            return flat.reshape(rows, self.n_vocab).copy()
        finally:
            llama_cpp.llama_batch_free(batch)

    def info(self) -> dict:
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.model, desc, ctypes.sizeof(desc))
        return {
            "engine": "llama.cpp",
            # bytes per cached value (K and V averaged), from ggml's block sizes
            "kv_elem_bytes": kvcache.elem_bytes(self.precision.settings),
            "type_k": kvcache.types(self.precision.settings)[0],
            "type_v": kvcache.types(self.precision.settings)[1],
            "model_desc": desc.value.decode(errors="replace"),
            "flash_attn": self.precision.settings.get("flash_attn", "auto"),
            "greedy": self.greedy,
            "device": self.device,
            "gpu_offload": llama_cpp.llama_supports_gpu_offload(),
            "n_params": llama_cpp.llama_model_n_params(self.model),
            "model_size_mib": llama_cpp.llama_model_size(self.model) / 2**20,
            **self._file_layout(),
            "all_logits": self.all_logits,
            "n_ctx": llama_cpp.llama_n_ctx(self.ctx),  # KV cells (llama.cpp pads to 256)
            # the KV buffer llama.cpp allocated over its cells: bytes per token of context
            "kv_bytes_per_token": (self.memory_parts().get("kv_cache_mib", 0.0) * 2**20
                                   / llama_cpp.llama_n_ctx(self.ctx)),
            "buffers": self.buffers,
        }

    def memory_parts(self) -> dict:
        """MiB of llama.cpp's buffers on this backend's device, by part."""
        return buffer_parts(self.buffers, "cuda" if self.device == "cuda" else "cpu")

    def _file_layout(self) -> dict:
        """The file's tensor types and row alignment (``tensor_types_pct``, ``row_block``,
        ``misaligned_rows_pct``) from the manifest written beside it when it was made; read from
        the file only without one (gguf-py parses every metadata field, which for a large
        vocabulary costs more memory than the buffers and would set the job's memory peak)."""
        keys = ("tensor_types_pct", "row_block", "misaligned_rows_pct")
        manifest = Path(self.path).with_suffix(".json")
        if manifest.is_file():
            recorded = json.loads(manifest.read_text())
            if recorded.get("tensor_types_pct"):
                return {k: recorded[k] for k in keys if k in recorded}
        return {"tensor_types_pct": tensor_types(self.path),
                **row_alignment(self.path, self.precision.settings["gguf_type"])}
