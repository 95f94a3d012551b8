from pathlib import Path

import numpy as np
import pytest

from quantbench.kld import Comparison, ReferenceWriter
from quantbench.perplexity import log_softmax


def _exact_kl(lp, lq):
    return (np.exp(lp) * (lp - lq)).sum(axis=1)


def _compare(tmp_path, lp_ref, lp_q, targets, k, windows=1):
    """The comparison of ``lp_q`` with ``lp_ref``, the positions cut into ``windows`` windows."""
    cuts = np.array_split(np.arange(len(targets)), windows)
    w = ReferenceWriter(k=k)
    for rows in cuts:
        w.add(lp_ref[rows], targets[rows])
    w.save(tmp_path / "ref.npz", [[1, 2, 3], [4, 5]])
    c = Comparison.open(tmp_path / "ref.npz")
    for rows in cuts:
        c.add(lp_q[rows], targets[rows])
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
    m = _compare(tmp_path, lp_ref, lp_q, targets, k=8, windows=5).metrics()
    rows = np.arange(len(targets))
    ppl_ref = np.exp(-lp_ref[rows, targets].mean())
    ppl_q = np.exp(-lp_q[rows, targets].mean())
    assert m["ln_ppl_ratio"] == pytest.approx(np.log(ppl_q / ppl_ref), abs=1e-6)
    low, high = m["ppl_delta_pct_ci95"]
    assert m["ppl_delta_pct"] == pytest.approx(100 * (ppl_q / ppl_ref - 1), abs=1e-4)
    assert low < m["ppl_delta_pct"] < high
    same = _compare(tmp_path, lp_ref, lp_ref, targets, k=8, windows=5).metrics()
    assert same["ppl_delta_pct_ci95"] == pytest.approx([0, 0], abs=1e-4)


def _window_effects(n_windows: int, per_window: int, spread: float, noise: float, seed=2):
    """Reference and quantized log-probabilities whose NLL differences share an offset within
    each window (drawn with ``spread``) on top of independent per-position ``noise``."""
    rng = np.random.default_rng(seed)
    n, vocab = n_windows * per_window, 40
    logits = rng.normal(size=(n, vocab)) * 3
    targets = rng.integers(0, vocab, size=n)
    shift = np.repeat(rng.normal(size=n_windows) * spread, per_window)
    shift += rng.normal(size=n) * noise
    bumped = logits.copy()
    bumped[np.arange(n), targets] -= shift  # lowers the target's log-probability by ~shift
    return log_softmax(logits), log_softmax(bumped), targets


def test_correlated_differences_in_a_window_widen_the_interval(tmp_path):
    """Positions of one window move together: the interval resamples windows, so it is wider
    than one that takes every position as independent (the old, too narrow interval)."""
    lp_ref, lp_q, targets = _window_effects(12, 40, spread=1.0, noise=0.05)
    m = _compare(tmp_path, lp_ref, lp_q, targets, k=8, windows=12).metrics()
    rows = np.arange(len(targets))
    d = lp_ref[rows, targets] - lp_q[rows, targets]
    independent_se = d.std(ddof=1) / np.sqrt(d.size)
    assert m["ln_ppl_ratio_stderr"] > 4 * independent_se
    low, high = np.log1p(np.asarray(m["ppl_delta_pct_ci95"]) / 100)
    assert high - low > 4 * 2 * 1.96 * independent_se
    assert low < m["ln_ppl_ratio"] < high
    # the KL divergence's interval resamples windows too
    k_low, k_high = m["kld_mean_ci95"]
    assert k_low < m["kld_mean"] < k_high


def test_the_interval_is_reproducible_and_the_record_says_how(tmp_path):
    lp_ref, lp_q, targets = _window_effects(6, 20, spread=0.5, noise=0.2)
    first = _compare(tmp_path / "a", lp_ref, lp_q, targets, k=8, windows=6)
    again = _compare(tmp_path / "b", lp_ref, lp_q, targets, k=8, windows=6)
    assert first.metrics()["ppl_delta_pct_ci95"] == again.metrics()["ppl_delta_pct_ci95"]
    assert first.interval_method() == (
        "block bootstrap over 6 windows, 2000 resamples (seed 0), percentile interval")


def test_fewer_than_three_windows_give_no_interval(tmp_path):
    lp_ref, lp_q, targets = _window_effects(2, 30, spread=0.5, noise=0.2)
    c = _compare(tmp_path, lp_ref, lp_q, targets, k=8, windows=2)
    m = c.metrics()
    assert m["ppl_delta_pct_ci95"] == [None, None]
    assert m["ln_ppl_ratio_stderr"] is None
    assert m["kld_mean_ci95"] == [None, None] and m["kld_stderr"] is None
    assert m["ppl_delta_pct"] == pytest.approx(100 * np.expm1(m["ln_ppl_ratio"]))
    assert c.interval_method().startswith("unavailable: 2 window(s)")


def test_the_reference_floor_is_its_divergence_from_its_own_stored_top_k(tmp_path, dists):
    """The floor is what comparing the reference with itself gives (float32 storage), far below
    a real divergence, and the reference writer computes it without a second pass."""
    lp_ref, lp_q, targets = dists
    w = ReferenceWriter(k=8)
    for rows in np.array_split(np.arange(len(targets)), 4):
        w.add(lp_ref[rows], targets[rows])
    floor = w.floor()["kld_floor_self"]
    itself = _compare(tmp_path, lp_ref, lp_ref, targets, k=8, windows=4).metrics()["kld_mean"]
    assert floor == pytest.approx(itself, rel=1e-9, abs=1e-15)
    assert abs(floor) < 1e-6
    real = _compare(tmp_path, lp_ref, lp_q, targets, k=8, windows=4).metrics()["kld_mean"]
    assert real > 1e4 * abs(floor)
    assert ReferenceWriter().floor() == {}



def _npz(out):
    from quantbench.kld import save_npz

    save_npz(out, x=np.arange(3))
    return np.load(out)["x"].tolist()


def _parquet(out):
    import pandas as pd

    from quantbench.report.aggregate import write_parquet

    write_parquet(pd.DataFrame({"x": [0, 1, 2]}), out)
    return pd.read_parquet(out)["x"].tolist()


@pytest.mark.parametrize(("write", "name"), [(_npz, "a.npz"), (_parquet, "a.parquet")])
def test_a_killed_array_writer_leaves_no_output_and_the_next_write_clears_its_temp(
        tmp_path, write, name):
    """A writer killed (SIGKILL) just before its rename leaves only its temporary file, which
    the next write of the same path removes (quantbench.records.write_atomic)."""
    import os
    import subprocess
    import sys

    out = tmp_path / name
    code = ("import os, signal, sys\n"
            "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"from test_kld import {write.__name__}\n"
            f"{write.__name__}(sys.argv[1])\n")
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": path})
    assert res.returncode == -9, res.stderr
    assert not out.exists() and len(list(tmp_path.iterdir())) == 1  # its temporary file only
    assert write(out) == [0, 1, 2]
    assert list(tmp_path.iterdir()) == [out]
