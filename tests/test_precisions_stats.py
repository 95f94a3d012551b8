import llama_cpp
import numpy as np
import pytest

from quantbench import engines, precisions
from quantbench.stats import block_bootstrap_mean, process_interval, summarize, t95


def test_table_covers_every_backend_and_gguf_types_exist():
    table = precisions.table()
    assert {p.backend for p in table.values()} == set(engines.REGISTRY)
    for p in table.values():
        if "gguf_type" in p.settings and p.settings["made_by"] == "quantize":
            assert hasattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{p.settings['gguf_type'].upper()}")
        if "gguf_type" in p.settings and p.settings["made_by"] == "convert":
            assert p.settings["gguf_type"] in ("f32", "f16", "bf16")


def test_unknown_precision_names_the_allowed_ones():
    with pytest.raises(KeyError, match="allowed: .*gguf-q4_k_m"):
        precisions.get("gguf-q5")


def test_summarize_percentiles():
    x = np.arange(1, 101, dtype=float)
    s = summarize(x)
    assert s["n"] == 100
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["mean"] == pytest.approx(50.5)
    assert s["cv"] == pytest.approx(np.std(x, ddof=1) / 50.5)
    assert "ci95_low" not in s  # an interval over one process's runs does not hold


def test_summarize_single_sample_and_empty():
    assert summarize([3.0])["mean"] == 3.0
    with pytest.raises(ValueError):
        summarize([])


def test_student_t_quantiles_match_their_closed_forms_and_join_the_expansion():
    assert t95(1) == pytest.approx(np.tan(np.pi * 0.475), abs=1e-5)  # Cauchy
    assert t95(2) == pytest.approx(0.95 / np.sqrt(2 * 0.975 * 0.025), abs=1e-5)
    assert t95(30) > t95(31) > t95(1000) > 1.959964
    assert t95(31) == pytest.approx(2.039513, abs=1e-5)
    assert t95(120) == pytest.approx(1.979930, abs=1e-5)
    with pytest.raises(ValueError):
        t95(0)


def simulated_process_means(rng, trials: int, n: int, *, true=100.0, between=5.0, within=3.0,
                            runs=4) -> np.ndarray:
    """``trials`` series of ``n`` processes: each process's speed is the true speed plus its
    own offset (normal, sd ``between``), and its mean is over ``runs`` runs with noise of sd
    ``within`` each."""
    offsets = rng.normal(0.0, between, size=(trials, n))
    noise = rng.normal(0.0, within, size=(trials, n, runs)).mean(axis=2)
    return true + offsets + noise


@pytest.mark.parametrize("n", [3, 5])
def test_the_interval_over_processes_covers_the_true_speed_95_percent_of_the_time(n):
    """Coverage by simulation, fixed seed: the interval over n process means holds the true
    speed in 95 % of series (within the simulation's error)."""
    rng = np.random.default_rng(31 + n)
    series = simulated_process_means(rng, 20000, n)
    covered = [low <= 100.0 <= high
               for low, high in (process_interval(s)["ci95"] for s in series)]
    assert 0.94 <= np.mean(covered) <= 0.96


def test_a_bootstrap_over_one_processs_runs_covers_far_less():
    """The interval it replaces: a percentile bootstrap over the 5 runs of one process, with
    processes that differ, holds the true speed in far fewer than 95 % of series."""
    rng = np.random.default_rng(7)
    trials, runs = 4000, 5
    process = 100.0 + rng.normal(0.0, 5.0, size=(trials, 1))
    x = process + rng.normal(0.0, 3.0, size=(trials, runs))
    pick = rng.integers(0, runs, size=(trials, 1000, runs))
    boots = np.take_along_axis(x[:, None, :], pick, axis=2).mean(axis=2)
    low, high = np.percentile(boots, [2.5, 97.5], axis=1)
    assert np.mean((low <= 100.0) & (high >= 100.0)) < 0.5


def test_one_process_gives_no_interval_and_says_why():
    one = process_interval([42.0])
    assert one["mean"] == 42.0 and one["ci95"] is None
    assert one["method"].startswith("unavailable: 1 process")
    two = process_interval([40.0, 44.0])
    assert two["ci95"] == pytest.approx((42.0 - 12.706205 * 2.0, 42.0 + 12.706205 * 2.0))
    assert "Student t" in two["method"] and "2 processes" in two["method"]


def test_block_bootstrap_resamples_whole_blocks():
    rng = np.random.default_rng(3)
    blocks = [rng.normal(size=50) * 0.1 + rng.normal() for _ in range(10)]
    boot = block_bootstrap_mean(blocks)
    flat = np.concatenate(blocks)
    assert boot["mean"] == pytest.approx(flat.mean())
    independent_se = flat.std(ddof=1) / np.sqrt(flat.size)
    assert boot["stderr"] > 3 * independent_se  # the blocks' offsets dominate
    assert boot["ci95"] == block_bootstrap_mean(blocks)["ci95"]  # fixed seed
    assert boot["ci95"] != block_bootstrap_mean(blocks, seed=1)["ci95"]
    assert block_bootstrap_mean(blocks[:2])["ci95"] is None
    assert block_bootstrap_mean(blocks[:2])["stderr"] is None


def test_readme_lists_every_precision_of_the_table():
    import re
    from pathlib import Path

    from quantbench import precisions

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"\(`src/quantbench/precisions.yaml`\): `([^`]+)`", readme)
    assert block, "README no longer lists the precisions"
    assert block.group(1).split() == list(precisions.table())
