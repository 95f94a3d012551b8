"""KL divergence and token agreement of a precision against the reference precision.

The reference's quality job stores, for every scored position, its top-k token ids with their
log-probabilities, the log-probability of the actual next token, and its greedy generations
(``save_reference``). Storing top-k instead of full logits keeps the reference data small
(positions x k x 8 bytes: about 0.5 MB for the default run, against 400 MB of full logits).

KL(P_ref || Q) is then computed per position over the reference's top-k tokens plus one bucket
for the remaining probability mass:

    sum_{v in topk} p(v) (log p(v) - log q(v))  +  r_p log(r_p / r_q)

where r_p and r_q are the mass P and Q leave outside those k tokens. By the log-sum inequality
this never overestimates the full-vocabulary KL; with k=32 the tail mass of a language model is
usually small and the bound is tight (the record stores the mean tail mass r_p to show it).

The change in perplexity is also measured paired: per position, the difference of the two
negative log-likelihoods of the actual next token. Its mean is ln(PPL / PPL_ref) exactly (same
positions). Its 95 % interval (and that of the mean KL divergence) comes from a block bootstrap
that resamples whole windows (``stats.block_bootstrap_mean``): positions inside a window share
their context and text, so taking them as independent (as llama-perplexity's KL-divergence mode
does) makes the interval too narrow. The paired interval is still far narrower than the two
perplexities' own errors, which mostly come from the text, not the precision.

Noise floor: the reference also scores itself against the top-k it stores
(``ReferenceWriter.floor``); that KL divergence is the rounding of the stored float32
log-probabilities, the smallest divergence this measurement resolves.
"""

from __future__ import annotations

import numpy as np

from quantbench.records import write_atomic
from quantbench.stats import block_bootstrap_mean, block_bootstrap_method

TOPK = 32
EPS = 1e-12


class ReferenceWriter:
    """Collects the reference's top-k log-probabilities window by window."""

    def __init__(self, k: int = TOPK):
        self.k = k
        self.ids, self.logprobs, self.target_logprob, self.self_kld = [], [], [], []

    def add(self, logprobs: np.ndarray, targets) -> None:
        top = np.argpartition(-logprobs, self.k - 1, axis=1)[:, :self.k]
        vals = np.take_along_axis(logprobs, top, axis=1)
        order = np.argsort(-vals, axis=1)
        self.ids.append(np.take_along_axis(top, order, axis=1).astype(np.int32))
        self.logprobs.append(np.take_along_axis(vals, order, axis=1).astype(np.float32))
        self.target_logprob.append(logprobs[np.arange(len(targets)), targets].astype(np.float32))
        self.self_kld.append(topk_kld(self.ids[-1], self.logprobs[-1], logprobs)[0])

    def floor(self) -> dict:
        """The mean KL divergence of these log-probabilities against their own stored top-k
        (float32): what the storage alone adds to every divergence measured against them."""
        if not self.self_kld:
            return {}
        return {"kld_floor_self": float(np.concatenate(self.self_kld).mean())}

    def save(self, path, generations: list[list[int]], **extra) -> None:
        gens = np.full((len(generations), max((len(g) for g in generations), default=0)), -1,
                       dtype=np.int64)
        for i, g in enumerate(generations):
            gens[i, :len(g)] = g
        arrays = {"generations": gens}
        if self.ids:
            arrays.update(topk_ids=np.concatenate(self.ids),
                          topk_logprobs=np.concatenate(self.logprobs),
                          target_logprob=np.concatenate(self.target_logprob))
        save_npz(path, **arrays, **extra)


def save_npz(path, **arrays) -> None:
    write_atomic(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True)


class Comparison:
    """Accumulates KL divergence, top-1 agreement and delta-p against a stored reference."""

    def __init__(self, ref: dict):
        self.ref = ref
        self.pos = 0
        self.kld, self.top1, self.dp, self.tail, self.dnll = [], [], [], [], []

    @classmethod
    def open(cls, reference_path) -> Comparison | None:
        """The comparison with a stored reference, or None if the reference run failed."""
        with np.load(reference_path) as ref:
            if "topk_ids" not in ref:
                return None
            return cls({k: ref[k] for k in ref.files})

    def add(self, logprobs: np.ndarray, targets) -> None:
        n = len(targets)
        ids = self.ref["topk_ids"][self.pos:self.pos + n]
        lp_ref = self.ref["topk_logprobs"][self.pos:self.pos + n]
        if len(ids) != n:
            raise ValueError("the reference was scored on fewer positions: protocols differ")
        self.pos += n
        kld, r_p = topk_kld(ids, lp_ref, logprobs)
        self.kld.append(kld)
        self.top1.append(logprobs.argmax(axis=1) == ids[:, 0])
        lq_target = logprobs[np.arange(n), targets].astype(np.float64)
        lp_target = self.ref["target_logprob"][self.pos - n:self.pos].astype(np.float64)
        self.dp.append(np.exp(lq_target) - np.exp(lp_target))
        self.dnll.append(lp_target - lq_target)
        self.tail.append(r_p)

    def metrics(self) -> dict:
        if self.pos != len(self.ref["topk_ids"]):
            raise ValueError("the reference was scored on more positions: protocols differ")
        kld = np.concatenate(self.kld)
        dp = np.concatenate(self.dp)
        boot = block_bootstrap_mean(self.kld)
        out = {
            "kld_mean": boot["mean"],
            "kld_stderr": boot["stderr"],
            "kld_mean_ci95": list(boot["ci95"] or (None, None)),
            "kld_median": float(np.median(kld)),
            "kld_p99": float(np.percentile(kld, 99)),
            "top1_agreement_pct": float(np.concatenate(self.top1).mean() * 100),
            "ref_tail_mass_mean": float(np.concatenate(self.tail).mean()),
        }
        for q in (1, 5, 50, 95, 99):
            out[f"delta_p_p{q:02d}_pct"] = float(np.percentile(dp, q) * 100)
        out.update(paired_ppl_change(self.dnll))
        return out

    def per_position(self) -> dict:
        """Per scored position, the difference of negative log-likelihoods from the reference
        (``dnll``) and the KL divergence (``kld``), with each window's length (``window_len``):
        what a paired comparison of two precisions scored on the same windows needs
        (quantbench.report.imatrix_ab)."""
        return {"dnll": np.concatenate(self.dnll), "kld": np.concatenate(self.kld),
                "window_len": np.array([len(w) for w in self.dnll], dtype=np.int64)}

    def interval_method(self) -> str:
        """How the intervals of ``metrics`` were computed, in words (for the record)."""
        return block_bootstrap_method(len(self.dnll))

    def generation_agreement(self, generations: list[list[int]]) -> dict:
        ref = [[t for t in row if t >= 0] for row in self.ref["generations"].tolist()]
        if len(ref) != len(generations):
            raise ValueError("the reference has a different number of sanity prompts")
        firsts = [_first_divergence(a, b) for a, b in zip(ref, generations, strict=True)]
        exact = [f is None for f in firsts]
        return {
            "gen_exact_match_pct": 100 * sum(exact) / len(exact),
            "gen_first_divergence_mean": float(np.mean(
                [f if f is not None else len(r) for f, r in zip(firsts, ref, strict=True)])),
        }


def paired_ppl_change(dnll_windows) -> dict:
    """ln(PPL / PPL_ref), its standard error and the 95 % interval of the change in perplexity
    (%), from per-position differences of negative log-likelihood (this minus the reference),
    one array a window; the interval resamples whole windows and is [None, None] with fewer
    than three."""
    boot = block_bootstrap_mean(dnll_windows)
    mean = boot["mean"]
    ci = [None, None] if boot["ci95"] is None else [100 * float(np.expm1(v)) for v in boot["ci95"]]
    return {"ln_ppl_ratio": mean, "ln_ppl_ratio_stderr": boot["stderr"],
            "ppl_delta_pct": 100 * float(np.expm1(mean)), "ppl_delta_pct_ci95": ci}


def topk_kld(ids: np.ndarray, lp_ref: np.ndarray, logprobs: np.ndarray):
    """Per position, KL(P_ref || Q) over the reference's top-k ``ids`` (log-probabilities
    ``lp_ref``) plus one bucket for the rest, and the reference's tail mass r_p."""
    lp_ref = lp_ref.astype(np.float64)
    lq = np.take_along_axis(logprobs, ids.astype(np.int64), axis=1)
    p = np.exp(lp_ref)
    r_p = np.clip(1 - p.sum(axis=1), EPS, 1)
    r_q = np.clip(1 - np.exp(lq).sum(axis=1), EPS, 1)
    return (p * (lp_ref - lq)).sum(axis=1) + r_p * np.log(r_p / r_q), r_p


def _first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
