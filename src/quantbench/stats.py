"""Summary statistics with spread: every figure that varies is reported with its spread."""

from __future__ import annotations

import numpy as np

Z95 = 1.959964  # two-sided 95 % quantile of the normal distribution


def summarize(samples, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean, std, CV, p50/p90/p99, min/max and a bootstrap 95 % CI of the mean."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarise")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    if x.size > 1:
        rng = np.random.default_rng(seed)
        boots = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
        ci_low, ci_high = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    else:
        ci_low = ci_high = mean
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
