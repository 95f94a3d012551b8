import numpy as np
import pytest

from quantbench.kld import Comparison, ReferenceWriter
from quantbench.perplexity import log_softmax


def _exact_kl(lp, lq):
    return (np.exp(lp) * (lp - lq)).sum(axis=1)


def _compare(tmp_path, lp_ref, lp_q, targets, k):
    w = ReferenceWriter(k=k)
    w.add(lp_ref, targets)
    w.save(tmp_path / "ref.npz", [[1, 2, 3], [4, 5]])
    c = Comparison.open(tmp_path / "ref.npz")
    c.add(lp_q, targets)
    return c


@pytest.fixture()
def dists():
    rng = np.random.default_rng(1)
    lp_ref = log_softmax(rng.normal(size=(50, 40)) * 3)
    lp_q = log_softmax(np.log(np.exp(lp_ref)) + rng.normal(size=(50, 40)) * 0.3)
    return lp_ref, lp_q, rng.integers(0, 40, size=50)


def test_full_topk_gives_the_exact_kl(tmp_path, dists):
    lp_ref, lp_q, targets = dists
    m = _compare(tmp_path, lp_ref, lp_q, targets, k=40).metrics()
    assert m["kld_mean"] == pytest.approx(_exact_kl(lp_ref, lp_q).mean(), rel=1e-5)
    assert m["ref_tail_mass_mean"] < 1e-5


def test_topk_with_tail_bucket_is_a_tight_lower_bound(tmp_path, dists):
    lp_ref, lp_q, targets = dists
    exact = _exact_kl(lp_ref, lp_q).mean()
    approx = _compare(tmp_path, lp_ref, lp_q, targets, k=8).metrics()["kld_mean"]
    assert 0 < approx <= exact * (1 + 1e-6)
    assert approx > 0.5 * exact


def test_identical_distributions_agree_fully(tmp_path, dists):
    lp_ref, _, targets = dists
    c = _compare(tmp_path, lp_ref, lp_ref, targets, k=8)
    m = c.metrics()
    assert m["kld_mean"] == pytest.approx(0, abs=1e-6)
    assert m["top1_agreement_pct"] == 100
    assert m["delta_p_p01_pct"] == pytest.approx(0, abs=1e-4)
    assert c.generation_agreement([[1, 2, 3], [4, 5]]) == {
        "gen_exact_match_pct": 100.0, "gen_first_divergence_mean": 2.5}
    assert c.generation_agreement([[1, 9, 3], [4, 5, 6]])["gen_exact_match_pct"] == 0.0


def test_mismatched_protocols_are_refused(tmp_path, dists):
    lp_ref, lp_q, targets = dists
    c = _compare(tmp_path, lp_ref[:10], lp_q[:10], targets[:10], k=4)
    with pytest.raises(ValueError, match="protocols differ"):
        c.add(lp_q[:5], targets[:5])


def test_paired_perplexity_change_equals_the_ratio_of_perplexities(tmp_path, dists):
    lp_ref, lp_q, targets = dists
    m = _compare(tmp_path, lp_ref, lp_q, targets, k=8).metrics()
    rows = np.arange(len(targets))
    ppl_ref = np.exp(-lp_ref[rows, targets].mean())
    ppl_q = np.exp(-lp_q[rows, targets].mean())
    assert m["ln_ppl_ratio"] == pytest.approx(np.log(ppl_q / ppl_ref), abs=1e-6)
    low, high = m["ppl_delta_pct_ci95"]
    assert m["ppl_delta_pct"] == pytest.approx(100 * (ppl_q / ppl_ref - 1), abs=1e-4)
    assert low < m["ppl_delta_pct"] < high
    # the paired error is that of the per-position differences, not of either perplexity
    d = lp_ref[rows, targets] - lp_q[rows, targets]
    assert m["ln_ppl_ratio_stderr"] == pytest.approx(d.std(ddof=1) / np.sqrt(d.size), rel=1e-5)
    same = _compare(tmp_path, lp_ref, lp_ref, targets, k=8).metrics()
    assert same["ppl_delta_pct_ci95"] == pytest.approx([0, 0], abs=1e-4)
