"""Summary statistics with spread: every figure that varies is reported with its spread.

An interval needs enough independent samples: from one sample a bootstrap gives a zero-width
interval and from two only three distinct means, which would read as a precision the data do
not have. A block bootstrap needs ``MIN_CI_SAMPLES`` blocks, the interval over processes two
processes; with fewer the interval is unavailable (None) and the record says why.

The interval of a speed is taken over processes (``process_interval``): runs inside one process
share its load, its memory layout and the paths its engine chose, so they vary less than the
speed does from one process to the next, and an interval over one process's runs covers the
speed a fresh process measures far less often than it claims (``tests/test_precisions_stats.py``
simulates both).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959964  # two-sided 95 % quantile of the normal distribution
MIN_CI_SAMPLES = 3
BOOT_RESAMPLES = 2000  # resamples of the block bootstrap (fixed, as its seed: reproducible)
BOOT_SEED = 0
# the two-sided 95 % quantile of Student's t with 1, 2, ... 30 degrees of freedom
T95 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
       2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
       2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
       2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
MIN_PROCESSES = 2  # an interval over processes needs a spread between them


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom: the table up to
    30, beyond it the Cornish-Fisher expansion around the normal quantile (within 1e-5 there)."""
    if df < 1:
        raise ValueError("Student's t needs at least one degree of freedom")
    if df <= len(T95):
        return T95[df - 1]
    z = Z95
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def process_interval(means) -> dict:
    """The mean of per-process means with a Student t 95 % interval over them (n - 1 degrees of
    freedom; exact when process means scatter normally, whatever the spread between and within
    processes), and the method in words. With fewer than ``MIN_PROCESSES`` the interval is
    None and the method says why."""
    x = np.asarray(means, dtype=float)
    if x.size == 0:
        raise ValueError("no process means to summarise")
    mean, n = float(x.mean()), int(x.size)
    out = {"n": n, "mean": mean, "sd": float(x.std(ddof=1)) if n > 1 else None,
           "ci95": None, "method": process_interval_method(n)}
    if n >= MIN_PROCESSES:
        half = t95(n - 1) * out["sd"] / math.sqrt(n)
        out["ci95"] = (mean - half, mean + half)
    return out


def process_interval_method(n: int) -> str:
    """``process_interval``'s interval in words, as records state it."""
    if n < MIN_PROCESSES:
        return (f"unavailable: {n} process(es); an interval over processes needs at least "
                f"{MIN_PROCESSES} (latency.processes)")
    return (f"Student t 95 % interval over the means of {n} processes ({n - 1} degrees of "
            "freedom), each a fresh load, warm-up and measured runs")


def summarize(samples) -> dict:
    """Mean, std, CV, p50/p90/p99, min and max of ``samples`` (no interval: runs of one process
    do not give one that holds, see ``process_interval``)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarise")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
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
