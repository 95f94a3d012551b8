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
