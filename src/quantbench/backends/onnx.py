"""ONNX Runtime backend: one exported graph with a KV cache (quantbench.artifacts.onnx), run by
ONNX Runtime's CPU provider.

The graph is a forward with a cache: ``input_ids`` after the cached tokens, the cache's keys
and values in, the grown cache and the logits of the positions ``logits_to_keep`` names out.
ONNX graphs are functional, so the cache a run returns is new tensors: the cache of a filled
depth stays as it was, and rewinding to it is using it again. Runs go through
``run_with_ort_values``: the cache stays in ONNX Runtime's own tensors from one run to the
next (never copied to numpy), only the kept logits come back as an array, and the greedy
token is their argmax on the host. Timed paths build a few small index arrays per step.

Memory parts: the weights are the graph's files (its initialisers); the KV cache is computed
from the model's config (2 x layers x KV heads x head size x fp32 x n_ctx x batch, as the
transformers backend does); ONNX Runtime's arena has no call that reports its size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from quantbench.artifacts.manifest import read_manifest
from quantbench.artifacts.onnx import GRAPH
from quantbench.backends.base import BackendBase
from quantbench.errors import UnsupportedError
from quantbench.precisions import Precision
from quantbench.records import Status

# ONNX element types of the graph's inputs, as numpy dtypes
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
           "tensor(float16)": np.float16}
# inputs the backend knows how to fill, besides the cache
_PLAIN = ("input_ids", "attention_mask", "position_ids", "cache_position", "logits_to_keep")


class OnnxBackend(BackendBase):
    def __init__(self, precision: Precision, folder, *, device: str, threads: int,
                 n_ctx: int, batch_size: int = 1, **_):
        self.precision, self.folder = precision, Path(folder)
        self.manifest = read_manifest(folder)
        if self.manifest.get("status") != Status.OK:
            raise UnsupportedError(f"{precision.name}: {self.manifest.get('reason')}")
        if device != "cpu":
            raise UnsupportedError(f"{precision.name} on {device}: the ONNX Runtime backend runs "
                                   "on the CPU provider only")
        self.device, self.threads = device, threads
        options = ort.SessionOptions()
        # ONNX Runtime sizes its pool from every core of the machine otherwise
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.folder / GRAPH), options,
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        self._cache_in = [n for n in self._inputs if n.removeprefix("input.").startswith("cache.")]
        unknown = [n for n in self._inputs if n not in _PLAIN and n not in self._cache_in]
        if unknown or "input_ids" not in self._inputs or "logits" not in outputs:
            raise RuntimeError(f"{self.folder / GRAPH}: inputs {list(self._inputs)} and outputs "
                               f"{outputs} are not those of a causal LM step with a cache")
        self._cache_out = [f"output.{n.removeprefix('input.')}" if n.startswith("input.")
                           else n for n in self._cache_in]
        self._outputs = ["logits", *self._cache_out]
        config = json.loads((self.folder / "config.json").read_text())
        self.config = config.get("text_config", config)
        self.batch_size, self.shape, self.depth = batch_size, None, 0
        self.configure(batch_size, n_ctx)

    def _fixed_batch(self) -> int | None:
        dim = self._inputs["input_ids"].shape[0]  # a dynamic axis is named, e.g. 's10'
        return int(dim) if isinstance(dim, int) or str(dim).isdigit() else None

    def configure(self, batch_size: int, n_ctx: int) -> None:
        """``batch_size`` sequences of up to ``n_ctx`` tokens each from now on (the cache grows as
        tokens are added: nothing is reserved), with an empty depth."""
        fixed = self._fixed_batch()
        if fixed is not None and fixed != batch_size:
            raise UnsupportedError(f"{self.precision.name}: the graph was exported for batch "
                                   f"{fixed} only, not {batch_size}")
        self.batch_size, self.n_ctx, self.shape = batch_size, n_ctx, (batch_size, n_ctx)
        self._depth_cache = self._empty_cache(batch_size)
        self.depth, self._cache, self.pos = 0, self._depth_cache, 0

    def _kv_shape(self) -> tuple[int, int, int]:
        """(layers, KV heads, head size) from the model's config."""
        c = self.config
        heads = c["num_attention_heads"]
        return (c["num_hidden_layers"], c.get("num_key_value_heads") or heads,
                c.get("head_dim") or c["hidden_size"] // heads)

    def _empty_cache(self, batch: int) -> list:
        """Zero tokens of cache for ``batch`` sequences: [batch, KV heads, 0, head size]."""
        _, kv_heads, head_dim = self._kv_shape()
        return [ort.OrtValue.ortvalue_from_numpy(np.zeros(
                    (batch, kv_heads, 0, head_dim), dtype=_DTYPES[self._inputs[name].type]))
                for name in self._cache_in]

    def _forward(self, rows: np.ndarray, cache: list, past: int, keep: np.ndarray):
        """Logits [batch, len(keep), vocab] of ``rows`` (token ids [batch, q]) after ``past``
        cached tokens, and the grown cache."""
        b, q = rows.shape
        arrays = {"input_ids": rows,
                  "attention_mask": np.ones((b, past + q)),
                  "position_ids": np.broadcast_to(np.arange(past, past + q), (b, q)),
                  "cache_position": np.arange(past, past + q),
                  "logits_to_keep": keep}
        feed = {name: ort.OrtValue.ortvalue_from_numpy(
                    np.ascontiguousarray(arrays[name], dtype=_DTYPES[self._inputs[name].type]))
                for name in self._inputs if name in arrays}
        feed.update(zip(self._cache_in, cache, strict=True))
        out = self.session.run_with_ort_values(self._outputs, feed)
        return out[0].numpy(), list(out[1:])

    def sync(self) -> None:
        """ONNX Runtime's run returns when its work is done."""

    def _rows(self, ids) -> np.ndarray:
        return np.tile(np.asarray(list(ids), dtype=np.int64), (self.batch_size, 1))

    def fill(self, ids) -> None:
        """Fill every sequence's cache with ``ids`` (untimed); each prefill starts from it."""
        ids = list(ids)
        self._depth_cache = self._empty_cache(self.batch_size)
        if ids:
            _, self._depth_cache = self._forward(self._rows(ids), self._depth_cache, 0,
                                                 np.array([len(ids) - 1]))
        self.depth = len(ids)

    def prefill_batch(self, ids) -> list[int]:
        """The same prompt in each sequence, after the depth; the next token of each."""
        n = len(ids)
        logits, self._cache = self._forward(self._rows(ids), self._depth_cache, self.depth,
                                            np.array([n - 1]))
        self.pos = self.depth + n
        return logits[:, -1].argmax(-1).tolist()

    def decode_batch(self, tokens: list[int]) -> list[int]:
        rows = np.asarray(tokens, dtype=np.int64)[:, None]
        logits, self._cache = self._forward(rows, self._cache, self.pos, np.array([0]))
        self.pos += 1
        return logits[:, -1].argmax(-1).tolist()

    def prefill(self, ids) -> int:
        return self.prefill_batch(ids)[0]

    def decode(self, token: int) -> int:
        return self.decode_batch([token] * self.batch_size)[0]

    def logits(self, ids, last: int | None = None) -> np.ndarray:
        """Float32 logits [len(ids), vocab] of one fresh window (a cache of its own); ``last``:
        of its last positions only (the exported graph computes every row)."""
        n = len(ids)
        logits, _ = self._forward(np.asarray([list(ids)], dtype=np.int64),
                                  self._empty_cache(1), 0, np.arange(n))
        return logits[0, n - min(last or n, n):].astype(np.float32, copy=False)

    def _weights_bytes(self) -> int:
        return sum(w["size_bytes"] for w in self.manifest.get("weights", {}).values())

    def memory_parts(self) -> dict:
        layers, kv_heads, head_dim = self._kv_shape()
        kv = 2 * layers * kv_heads * head_dim * 4 * self.n_ctx * self.batch_size
        return {"weights_mib": self._weights_bytes() / 2**20, "kv_cache_mib": kv / 2**20}

    def info(self) -> dict:
        return {
            "engine": "onnxruntime",
            "onnxruntime": ort.__version__,
            "providers": self.session.get_providers(),
            "device": self.device,
            "threads": self.threads,
            "onnx_type": self.manifest["onnx_type"],
            "quantizer": self.manifest.get("quantizer"),
            "exporter": self.manifest.get("exporter"),
            "export_versions": self.manifest.get("versions"),
            "kv_elem_bytes": 4,  # the exported graph's cache is fp32
            "model_size_mib": self._weights_bytes() / 2**20,
            "fixed_batch": self._fixed_batch(),
        }

    def close(self) -> None:
        self.session = None
