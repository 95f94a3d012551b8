import llama_cpp
import numpy as np
import pytest

from quantbench import engines, precisions
from quantbench.stats import block_bootstrap_mean, summarize


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


def test_summarize_percentiles_and_ci():
    x = np.arange(1, 101, dtype=float)
    s = summarize(x)
    assert s["n"] == 100
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["mean"] == pytest.approx(50.5)
    assert s["ci95_low"] < s["mean"] < s["ci95_high"]
    assert s["ci95_high"] - s["ci95_low"] < 15  # about 4 standard errors of 2.9
    assert s["cv"] == pytest.approx(np.std(x, ddof=1) / 50.5)


def test_summarize_single_sample_and_empty():
    assert summarize([3.0])["mean"] == 3.0
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize("runs", [[3.0], [3.0, 4.0]])
def test_fewer_than_three_runs_give_no_interval(runs):
    """One or two measured runs give no interval (None), not a zero-width or two-point one."""
    s = summarize(runs)
    assert s["ci95_low"] is None and s["ci95_high"] is None
    assert summarize([*runs, 5.0, 6.0])["ci95_low"] is not None


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
