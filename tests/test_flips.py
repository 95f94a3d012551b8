"""Accuracy's interval, the paired change's interval (its coverage by simulation), McNemar's
exact test, flips and Spearman's correlation (quantbench.flips)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantbench import flips


def test_wilson_interval_is_scipys_and_stays_inside_0_1():
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((81, 263), (3, 10), (0, 10), (10, 10), (50, 100)):
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert flips.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert flips.wilson(0, 10)[0] == 0.0 and flips.wilson(10, 10)[1] == 1.0


def test_newcombe_paired_interval_is_the_two_wilson_intervals_combined():
    """With no correlation (phi = 0, as when a*d = b*c) the interval's half-widths are the
    square roots of the sums of the two Wilson intervals' squared arms (Newcombe's method 10
    then reduces to his method for independent proportions)."""
    both, lost, gained, neither = 4, 6, 2, 3  # a*d = 12 = b*c
    n = both + lost + gained + neither
    change, lo, hi = flips.newcombe_paired(both, lost, gained, neither)
    p1, p2 = (both + lost) / n, (both + gained) / n
    (l1, u1), (l2, u2) = flips.wilson(both + lost, n), flips.wilson(both + gained, n)
    assert change == pytest.approx(p2 - p1)
    assert lo == pytest.approx(p2 - p1 - ((u1 - p1) ** 2 + (p2 - l2) ** 2) ** 0.5)
    assert hi == pytest.approx(p2 - p1 + ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5)
    # a positive correlation (both answer the same items right) narrows it: the same flips
    # among more items both answered alike
    _, lo_corr, hi_corr = flips.newcombe_paired(40, 6, 2, 30)
    assert hi_corr - lo_corr < (hi - lo) / 2
    # Newcombe's correction of phi: a*d - b*c positive but at most n/2 counts as no correlation
    assert flips.newcombe_paired(4, 6, 2, 4)[1:] == pytest.approx(_independent(4, 6, 2, 4))


def _independent(a, b, c, d):
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    (l1, u1), (l2, u2) = flips.wilson(a + b, n), flips.wilson(a + c, n)
    return (p2 - p1 - ((u1 - p1) ** 2 + (p2 - l2) ** 2) ** 0.5,
            p2 - p1 + ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5)


def test_no_flip_still_leaves_an_interval_around_zero():
    """Identical answers: the change is 0 and its interval, with phi corrected by n/2, is wider
    than phi = 1 would make it (the plain Wilson arms' difference) and narrower than the
    independent combination's."""
    change, lo, hi = flips.newcombe_paired(27, 0, 0, 153)
    ind_lo, ind_hi = _independent(27, 0, 0, 153)
    (l1, u1) = flips.wilson(27, 180)
    p = 27 / 180
    assert change == 0 and lo < 0 < hi
    assert ind_lo < lo < -abs((u1 - p) - (p - l1)) and abs(u1 - p - (p - l1)) < hi < ind_hi


def test_paired_change_counts_the_flips_each_way():
    ref = [1, 1, 1, 0, 0, 1, 0, 1]
    new = [1, 0, 0, 1, 0, 1, 0, 1]
    c = flips.paired_change(ref, new)
    assert (c.both, c.lost, c.gained, c.neither) == (3, 2, 1, 2)
    assert c.change == pytest.approx(-1 / 8) and c.flip_rate == pytest.approx(3 / 8)
    assert c.change_lo < c.change < c.change_hi
    with pytest.raises(ValueError):
        flips.paired_change([1, 0], [1])


def test_mcnemar_exact_is_the_two_sided_binomial_test():
    assert flips.mcnemar_exact(0, 0) == 1.0
    assert flips.mcnemar_exact(10, 0) == pytest.approx(2 * 0.5 ** 10)
    assert flips.mcnemar_exact(5, 5) == 1.0
    # 8 of 10 flips one way: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * 56 / 1024
    assert flips.mcnemar_exact(2, 8) == pytest.approx(112 / 1024)


@pytest.mark.parametrize("n, p_ref, p_flip_lost, p_flip_gained", [
    (100, 0.6, 0.08, 0.04),  # a small real loss
    (300, 0.4, 0.03, 0.03),  # no change, few flips
    (60, 0.85, 0.10, 0.02),  # near the ceiling, few items
])
def test_the_paired_interval_covers_the_true_change_95_percent_of_the_time(
        n, p_ref, p_flip_lost, p_flip_gained):
    """Items answered right by the reference with probability p_ref; a right answer flips to
    wrong with p_flip_lost, a wrong one to right with p_flip_gained. Over 2,000 simulated
    tasks the interval holds the true change p_ref*(-lost) + (1-p_ref)*gained in 93-97.5 %
    of them (Newcombe's method 10 is slightly conservative)."""
    rng = np.random.default_rng(0)
    truth = (1 - p_ref) * p_flip_gained - p_ref * p_flip_lost
    hits, trials = 0, 2000
    for _ in range(trials):
        ref = rng.random(n) < p_ref
        flip = np.where(ref, rng.random(n) < p_flip_lost, rng.random(n) < p_flip_gained)
        c = flips.paired_change(ref, ref ^ flip)
        hits += c.change_lo <= truth <= c.change_hi
    assert 0.93 <= hits / trials <= 0.975, hits / trials


def test_spearman_ranks_with_ties_and_needs_three_pairs():
    assert flips.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert flips.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert flips.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)
    assert math.isnan(flips.spearman([1, 2], [1, 2]))
    assert math.isnan(flips.spearman([1, 2, float("nan"), 3], [1, 1, 2, 1]))


def test_the_report_ranks_accuracy_changes_and_flip_rates_with_kld_and_perplexity():
    """The section's correlation line: Spearman's ρ of the accuracy change and of the flip rate
    with KL divergence and Δ perplexity across the precisions (the reference left out); none
    below three precisions."""
    import pandas as pd

    from quantbench.report.accuracy import section

    df = pd.DataFrame({
        "model": "m", "precision": ["ref", "a", "b", "c", "d"],
        "acc_change_pp": [None, 0.0, -1.0, -3.0, -2.0],
        "acc_change_lo_pp": [None, -2.0, -3.0, -5.0, -4.0],
        "acc_change_hi_pp": [None, 2.0, 1.0, -1.0, 0.0],
        "acc_p_mcnemar": [None, 1.0, 0.5, 0.2, 0.3],
        "flips_lost": [None, 1, 2, 5, 3], "flips_gained": [None, 1, 1, 2, 1],
        "flip_rate_pct": [None, 2.0, 3.0, 7.0, 4.0],
        "kld_mean": [None, 0.01, 0.02, 0.05, 0.03], "ppl_delta_pct": [None, 0.5, 0.4, 3.0, 1.0]})
    table = pd.DataFrame([{"model": "m", "precision": "a", "task": "t", "status": "ok",
                           "n_items": 100, "accuracy": 0.5, "accuracy_lo": 0.4,
                           "accuracy_hi": 0.6, "acc_change_pp": 0.0, "acc_change_lo_pp": -2.0,
                           "acc_change_hi_pp": 2.0, "flips_lost": 1, "flips_gained": 1,
                           "flip_rate_pct": 2.0}])
    line = next(x for x in section(df, table, "ref") if "Spearman" in x)
    assert line == (
        "- m: across 4 precisions, the accuracy change ranks with KL divergence at Spearman "
        "ρ = -1.00 (p < 0.001) and with Δ perplexity at ρ = -0.80 (p = 0.200) (a falling "
        "accuracy gives a negative ρ); the flip rate ranks with KL divergence at ρ = 1.00 "
        "(p < 0.001) and with Δ perplexity at ρ = 0.80 (p = 0.200).")
    assert not [x for x in section(df.iloc[:3], table, "ref") if "Spearman" in x]
