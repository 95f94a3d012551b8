"""Roofline figures of a measured precision: bytes and FLOPs per token against the machine.

Decode (batch 1) reads every weight once per token plus the KV cache of the tokens so far and
does about two FLOPs per weight: it is memory-bound, so its figure of merit is the achieved
bandwidth and the memory-bandwidth utilisation (MBU = achieved / peak bandwidth). Prefill reuses
each weight across the prompt: its figure of merit is model-FLOPs utilisation (MFU = model FLOPs
per second / the device's best measured matmul rate, in any dtype).

Bytes per decode token = (weights at this precision, as loaded, + batch x KV cache read at the
mean context of the decode phase (K and V, every layer, KV heads x head dim, at the cache's
element size)) / batch, since one decode step reads the weights once for the whole batch.
FLOPs per token = 2 x matmul parameters (attention, MLP, LM head); prefill adds the causal
attention scores, 2 x layers x P^2 x (heads x head dim).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from quantbench.stats import known


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    tied_embeddings: bool = False

    @classmethod
    def from_config(cls, path) -> Shape:
        c = json.loads(Path(path).read_text())
        heads = c["num_attention_heads"]
        return cls(layers=c["num_hidden_layers"], hidden=c["hidden_size"], heads=heads,
                   kv_heads=c.get("num_key_value_heads", heads),
                   head_dim=c.get("head_dim") or c["hidden_size"] // heads,
                   ffn=c["intermediate_size"], vocab=c["vocab_size"],
                   tied_embeddings=bool(c.get("tie_word_embeddings", False)))

    @property
    def matmul_params(self) -> int:
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        mlp = 3 * self.hidden * self.ffn
        return self.layers * (attn + mlp) + self.hidden * self.vocab

    @property
    def n_params(self) -> int:
        """All weights: matmuls, the input embedding (unless tied to the LM head) and norms."""
        embedding = 0 if self.tied_embeddings else self.vocab * self.hidden
        return self.matmul_params + embedding + (2 * self.layers + 1) * self.hidden

    def kv_bytes_per_token(self, elem_bytes: float) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * elem_bytes


def shapes(model_dirs) -> dict[str, Shape]:
    """Each model's shape from its folder's config.json (``resources/models/<model>/hf``), for
    the folders that have one."""
    return {Path(d).parent.name: Shape.from_config(Path(d) / "config.json")
            for d in model_dirs if (Path(d) / "config.json").is_file()}


def prefill_flops(shape: Shape, prompt: int) -> float:
    attention = 2 * shape.layers * prompt**2 * shape.heads * shape.head_dim
    return 2 * shape.matmul_params * prompt + attention


def derive(row: dict, shape: Shape, machine: dict) -> dict:
    """MBU / MFU figures for one summary row (empty when the row has no measurement)."""
    out = {}
    tok_s, size = row.get("decode_tok_s"), row.get("size_mib")
    ctx, kv = row.get("decode_ctx_mean"), row.get("kv_elem_bytes")
    batch = row.get("batch_size") if known(row.get("batch_size")) else 1
    peak_bw = machine.get("peak_bw_gb_s")
    if all(known(v) for v in (tok_s, size, ctx, kv)):
        bytes_tok = decode_step_bytes(shape, size, batch, ctx, kv) / batch
        out["decode_bytes_per_tok_mib"] = bytes_tok / 2**20
        out["decode_gb_s"] = bytes_tok * tok_s / 1e9
        out["decode_flop_per_byte"] = decode_step_flops(shape, 1) / bytes_tok
        if known(peak_bw):
            out["mbu_pct"] = 100 * out["decode_gb_s"] / peak_bw
    prefill_ms, prompt = row.get("prefill_ms"), row.get("prompt_tokens")
    peak = peak_tflops(machine)
    if known(prefill_ms) and known(prompt):
        flops = batch * prefill_flops(shape, int(prompt))
        out["prefill_tflops"] = flops / (prefill_ms / 1e3) / 1e12
        if known(peak):
            out["mfu_pct"] = 100 * out["prefill_tflops"] / peak
    return out


def peak_tflops(machine: dict) -> float | None:
    """One ceiling per device: its best measured matmul rate, whatever dtype reached it."""
    return max((machine.get("matmul_tflops") or {}).values(), default=None)


def prefill_flop_per_byte(prefill_tflops, prefill_ms, weights_mib):
    """Prefill's arithmetic intensity against its weights: the FLOPs one prefill did (its
    achieved rate x its time) per byte of weights, read once (scalars or pandas Series)."""
    return prefill_tflops * 1e12 * prefill_ms / 1e3 / (weights_mib * 2**20)


def ridge_flop_per_byte(machine: dict) -> float | None:
    """Arithmetic intensity above which the machine is compute-bound (peak FLOP/s / peak B/s)."""
    peak = peak_tflops(machine)
    bw = machine.get("peak_bw_gb_s")
    return peak * 1e12 / (bw * 1e9) if known(peak) and known(bw) else None


def decode_step_bytes(shape: Shape, weights_mib: float, batch: float, ctx: float,
                      kv_elem_bytes: float) -> float:
    """Bytes one decode step reads: the weights once for the whole batch, and each sequence's
    KV cache at ``ctx`` tokens."""
    return weights_mib * 2**20 + batch * ctx * shape.kv_bytes_per_token(kv_elem_bytes)


def decode_step_flops(shape: Shape, batch: float) -> float:
    """Model FLOPs of one decode step: two per matmul weight for each sequence of the batch."""
    return 2 * shape.matmul_params * batch


def ridge_batch(shape: Shape, weights_mib: float, ctx: float, kv_elem_bytes: float,
                ridge: float) -> float | None:
    """The batch at which decode's arithmetic intensity (``decode_step_flops`` over
    ``decode_step_bytes``) reaches ``ridge``; None when no batch does (each sequence's KV cache
    then costs as many bytes as its FLOPs can use: the intensity tends to 2 x matmul params /
    KV bytes per sequence, below the ridge)."""
    # 2 P B = ridge (W + B ctx kv)  <=>  B = ridge W / (2 P - ridge ctx kv)
    per_seq = decode_step_flops(shape, 1) - ridge * (
        decode_step_bytes(shape, 0.0, 1, ctx, kv_elem_bytes))
    return ridge * weights_mib * 2**20 / per_seq if per_seq > 0 else None


def decode_limit(limit: dict | None, batch_size) -> float | None:
    """The decode limit in tokens/s at ``batch_size`` from a model's limit record
    (``quantbench.scenarios.limit``), None where that batch size was not measured."""
    if not limit or not known(batch_size):
        return None
    return next((p["tok_s"] for p in limit.get("points", ())
                 if p["batch_size"] == int(batch_size)), None)


def limit_figures(tok_s, batch_size, limit: dict | None) -> dict:
    """``decode_limit_tok_s`` at the batch size and ``limit_pct``, the decode speed's share of
    it (a quantized format, reading fewer bytes, may pass 100)."""
    cap = decode_limit(limit, batch_size)
    if cap is None:
        return {}
    return {"decode_limit_tok_s": cap, "limit_pct": 100 * tok_s / cap if known(tok_s) else None}
