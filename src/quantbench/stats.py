"""Summary statistics with spread: every figure that varies is reported with its spread.

An interval needs at least ``MIN_CI_SAMPLES`` independent samples (runs, windows): from one
sample a bootstrap gives a zero-width interval and from two only three distinct means, which
would read as a precision the data do not have. With fewer the interval is unavailable (None).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959964  # two-sided 95 % quantile of the normal distribution
MIN_CI_SAMPLES = 3
BOOT_RESAMPLES = 2000  # resamples of the block bootstrap (fixed, as its seed: reproducible)
BOOT_SEED = 0


def summarize(samples, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean, std, CV, p50/p90/p99, min/max and a bootstrap 95 % CI of the mean (None with fewer
    than ``MIN_CI_SAMPLES`` samples)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarise")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    ci_low = ci_high = None
    if x.size >= MIN_CI_SAMPLES:
        rng = np.random.default_rng(seed)
        boots = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
        ci_low, ci_high = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    p50, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))
    return {
        "n": int(x.size),
        "mean": mean,
        "std": std,
        "cv": std / mean if mean else float("nan"),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "min": float(x.min()),
        "max": float(x.max()),
        "ci95_low": ci_low,
        "ci95_high": ci_high,
    }


def block_bootstrap_mean(blocks, *, n_boot: int = BOOT_RESAMPLES, seed: int = BOOT_SEED) -> dict:
    """The mean over every value of ``blocks`` (one array a window) with a percentile 95 %
    interval and standard error from resampling whole blocks with replacement.

    Values inside a block are not independent (a window's positions share their context and
    their stretch of text); blocks nearly are. Resampling blocks keeps that correlation in the
    interval, where treating every value as independent makes it too narrow. With fewer than
    ``MIN_CI_SAMPLES`` blocks the interval and error are None."""
    blocks = [np.asarray(b, dtype=np.float64).ravel() for b in blocks]
    blocks = [b for b in blocks if b.size]
    if not blocks:
        raise ValueError("no values to summarise")
    sums = np.array([b.sum() for b in blocks])
    counts = np.array([b.size for b in blocks], dtype=np.float64)
    n = len(blocks)
    out = {"mean": float(sums.sum() / counts.sum()), "stderr": None, "ci95": None,
           "n_blocks": n, "n_boot": n_boot, "seed": seed,
           "method": block_bootstrap_method(n, n_boot=n_boot, seed=seed)}
    if n < MIN_CI_SAMPLES:
        return out
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    out.update(stderr=float(means.std(ddof=1)), ci95=(float(low), float(high)))
    return out


def block_bootstrap_method(n_blocks: int, *, n_boot: int = BOOT_RESAMPLES,
                           seed: int = BOOT_SEED) -> str:
    """``block_bootstrap_mean``'s interval in words, as records state it."""
    if n_blocks < MIN_CI_SAMPLES:
        return (f"unavailable: {n_blocks} window(s), a block bootstrap needs at least "
                f"{MIN_CI_SAMPLES}")
    return (f"block bootstrap over {n_blocks} windows, {n_boot} resamples (seed {seed}), "
            "percentile interval")


def known(value) -> bool:
    """A figure that was measured: not None and not NaN (the tables' mark for "not measured")."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))
