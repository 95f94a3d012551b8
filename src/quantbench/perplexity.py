"""Perplexity with one protocol for every backend: the same token ids, the same windows.

Two modes:
- ``llama.cpp``: llama-perplexity's protocol. The ids are prefixed with BOS when the model's
  tokenizer adds one; the text is cut into non-overlapping windows of ``n_ctx`` tokens; when BOS
  is used, the first token of each window is replaced by BOS; only the second half of each window
  is scored (each scored token then has at least n_ctx/2 tokens of context).
- ``sliding``: overlapping windows advanced by ``stride``; every token after the first is scored
  exactly once, with up to n_ctx - 1 tokens of context. When the tokenizer adds BOS, every
  window is BOS followed by n_ctx - 1 tokens of the text, and the first token is scored too
  (predicted from BOS alone).

PPL = exp(mean NLL); its standard error comes from the spread of the per-token NLL (delta method,
as llama-perplexity reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    ids: list[int]  # tokens fed to the model
    first: int  # logits[first:first + len(targets)] predict targets
    targets: list[int]


def llamacpp_windows(ids, n_ctx: int, *, bos_id: int | None, max_windows: int = 0):
    tokens = ([bos_id] if bos_id is not None else []) + [int(i) for i in ids]
    n_windows = len(tokens) // n_ctx
    if n_windows == 0:
        raise ValueError(f"text has {len(tokens)} tokens, fewer than one window of {n_ctx}")
    if max_windows:
        n_windows = min(n_windows, max_windows)
    first = n_ctx // 2
    out = []
    for w in range(n_windows):
        chunk = tokens[w * n_ctx:(w + 1) * n_ctx]
        feed = list(chunk)
        if bos_id is not None:
            feed[0] = bos_id
        out.append(Window(feed, first, chunk[first + 1:]))
    return out


def sliding_windows(ids, n_ctx: int, *, stride: int, max_windows: int = 0,
                    bos_id: int | None = None):
    tokens = [int(i) for i in ids]
    lead = [] if bos_id is None else [bos_id]
    span = n_ctx - len(lead)  # tokens of the text in one window
    if len(tokens) < 2:
        raise ValueError("text is too short to score")
    if stride > n_ctx - 1:  # with or without BOS: one token before the first one scored
        raise ValueError(f"stride {stride} is larger than {n_ctx - 1}: a window of {n_ctx} "
                         "tokens keeps at least one token of context")
    out, prev_end, begin = [], 1 - len(lead), 0
    while prev_end < len(tokens):
        end = min(begin + span, len(tokens))
        chunk = lead + tokens[begin:end]
        n_new = end - prev_end  # tokens not scored by an earlier window
        first = len(chunk) - n_new - 1
        out.append(Window(chunk, first, chunk[first + 1:]))
        prev_end = end
        begin += stride
        if max_windows and len(out) == max_windows:
            break
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    peak = x.max(axis=1, keepdims=True)
    return x - (np.log(np.exp(x - peak).sum(axis=1, keepdims=True)) + peak)


def scored_logprobs(logits: np.ndarray, window: Window) -> np.ndarray:
    """Log-probabilities (float64) at the positions that predict the window's targets."""
    return log_softmax(logits[window.first:window.first + len(window.targets)])


def token_nll(logits: np.ndarray, window: Window) -> np.ndarray:
    """Negative log-likelihood of each target."""
    lp = scored_logprobs(logits, window)
    return -lp[np.arange(len(window.targets)), window.targets]


def perplexity(nll: np.ndarray) -> dict:
    nll = np.asarray(nll, dtype=np.float64)
    mean = float(nll.mean())
    ppl = float(np.exp(mean))
    stderr = float(nll.std(ddof=1) / np.sqrt(nll.size)) if nll.size > 1 else 0.0
    return {"ppl": ppl, "ppl_stderr": ppl * stderr, "nll_mean": mean, "n_tokens": int(nll.size)}


def windows_for(ids, meta: dict, *, mode: str, context_length: int, stride: int | None,
                max_windows: int):
    """Both modes start every window with BOS exactly when the model's tokenizer adds it."""
    bos = meta["bos_id"] if meta.get("add_bos") else None
    if mode == "llama.cpp":
        return llamacpp_windows(ids, context_length, bos_id=bos, max_windows=max_windows)
    return sliding_windows(ids, context_length, stride=stride or context_length // 2,
                                   max_windows=max_windows, bos_id=bos)
