import llama_cpp
import numpy as np
import pytest

from quantbench import precisions
from quantbench.stats import summarize


def test_table_covers_every_backend_and_gguf_types_exist():
    table = precisions.table()
    assert {p.backend for p in table.values()} == set(precisions.BACKENDS)
    for p in table.values():
        if p.is_gguf and p.settings["made_by"] == "quantize":
            assert hasattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{p.settings['gguf_type'].upper()}")
        if p.is_gguf and p.settings["made_by"] == "convert":
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
    assert summarize([3.0])["ci95_low"] == 3.0
    with pytest.raises(ValueError):
        summarize([])


def test_readme_lists_every_precision_of_the_table():
    import re
    from pathlib import Path

    from quantbench import precisions

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"\(`src/quantbench/precisions.yaml`\): `([^`]+)`", readme)
    assert block, "README no longer lists the precisions"
    assert block.group(1).split() == list(precisions.table())
