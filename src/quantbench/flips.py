"""Accuracy over items, and its paired change between two precisions answering the same items.

- Accuracy's 95 % interval: Wilson's score interval (Wilson 1927), which keeps its coverage near
  0 and 1 and for the few hundred items a task has here, where the normal approximation does not.
- The paired change (precision − reference, in accuracy points) from the 2×2 table of the items
  both answered: ``both`` right, ``lost`` (right → wrong), ``gained`` (wrong → right),
  ``neither``. Its 95 % interval is Newcombe's hybrid score interval for a difference of paired
  proportions (Newcombe 1998, Stat Med 17:2635, method 10): the two marginal Wilson intervals
  combined with the phi correlation of the table. Its coverage is checked by simulation in
  tests/test_flips.py. Significance: McNemar's exact test (two-sided binomial test of ``gained``
  among ``lost + gained`` flips at 1/2).
- Flips: ``lost`` and ``gained`` as counts, and their sum as a rate over the items (Dutta et al.
  2024, "Accuracy is Not All You Need": equal accuracy can hide many flips).
- Across precisions, Spearman's rank correlation (average ranks for ties).

The intervals, the test and the correlation are scipy.stats'; Newcombe's paired interval,
which scipy lacks, is built here from its Wilson intervals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``correct / n`` at the confidence ``z`` stands
    for (scipy.stats.binomtest's; nan, nan for no items)."""
    if n <= 0:
        return math.nan, math.nan
    level = 2 * stats.norm.cdf(z) - 1
    ci = stats.binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided p-value of McNemar's exact test: ``gained`` of the ``lost + gained`` discordant
    items under Binomial(n, 1/2) (scipy.stats.binomtest; 1.0 with no discordant item)."""
    n = lost + gained
    if n == 0:
        return 1.0
    return float(stats.binomtest(gained, n, 0.5).pvalue)


@dataclass(frozen=True)
class PairedChange:
    """The paired change of a precision against the reference over ``n`` shared items."""

    n: int
    both: int
    lost: int  # right with the reference, wrong with this precision
    gained: int  # wrong with the reference, right with this precision
    neither: int
    change: float  # accuracy − the reference's, as a fraction
    change_lo: float
    change_hi: float
    p_mcnemar: float

    @property
    def flips(self) -> int:
        return self.lost + self.gained

    @property
    def flip_rate(self) -> float:
        return self.flips / self.n if self.n else math.nan

    def to_dict(self) -> dict:
        return {**asdict(self), "flips": self.flips, "flip_rate": self.flip_rate}


def newcombe_paired(both: int, lost: int, gained: int, neither: int,
                    z: float = Z95) -> tuple[float, float, float]:
    """The change p2 − p1 (p1: the reference's accuracy, a+b over n; p2: this precision's, a+c
    over n) and its interval by Newcombe's method 10."""
    a, b, c, d = both, lost, gained, neither
    n = a + b + c + d
    if n == 0:
        return math.nan, math.nan, math.nan
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    # phi with Newcombe's correction (as Altman et al., "Statistics with Confidence", give
    # method 10): a positive a*d - b*c is lowered by n/2 (never below 0); a negative one is kept
    cross = a * d - b * c
    corrected = max(cross - n / 2, 0.0) if cross > 0 else cross
    phi = corrected / math.sqrt(denominator) if denominator else 0.0
    # Newcombe's interval of p1 − p2 (lower by delta, upper by epsilon), negated for p2 − p1
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
                            + (p2 - l2) ** 2))
    diff = p1 - p2
    return -diff, max(-1.0, -(diff + epsilon)), min(1.0, -(diff - delta))


def paired_change(reference, other) -> PairedChange:
    """The paired change of ``other`` against ``reference``: two arrays of 0/1 over the same
    items, in the same order."""
    ref = np.asarray(reference, dtype=bool)
    new = np.asarray(other, dtype=bool)
    if ref.shape != new.shape:
        raise ValueError(f"paired items differ in number: {ref.shape} and {new.shape}")
    both, lost = int((ref & new).sum()), int((ref & ~new).sum())
    gained, neither = int((~ref & new).sum()), int((~ref & ~new).sum())
    change, lo, hi = newcombe_paired(both, lost, gained, neither)
    return PairedChange(n=int(ref.size), both=both, lost=lost, gained=gained, neither=neither,
                        change=change, change_lo=lo, change_hi=hi,
                        p_mcnemar=mcnemar_exact(lost, gained))


def spearman(x, y) -> float:
    """Spearman's rank correlation (scipy.stats.spearmanr: average ranks for ties) of the pairs
    where both are known (nan below 3 pairs or when one side is constant)."""
    return spearman_test(x, y)[0]


def spearman_test(x, y) -> tuple[float, float]:
    """Spearman's ρ and its two-sided p-value (scipy.stats.spearmanr's, against no
    correlation) over the pairs where both are known; (nan, nan) where ``spearman`` is nan."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan, math.nan
    result = stats.spearmanr(x[keep], y[keep])
    return float(result.statistic), float(result.pvalue)
