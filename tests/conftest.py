"""Shared fixtures: a tiny random Llama (hidden 256, so K-quants are genuine), its GGUFs, text."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from quantbench.artifacts import imatrix as imatrix_tools
from quantbench.artifacts.dataset import save_tokens
from quantbench.artifacts.gguf import (
    convert,
    fetch_converter,
    installed_llama_cpp_version,
    quantize,
)
from quantbench.artifacts.imatrix import calibration_text
from quantbench.artifacts.model import prepare_model

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
TINY = dict(source="random", architecture="llama", hidden_size=256, num_layers=2, num_heads=4,
            num_kv_heads=2, intermediate_size=512, vocab_size=512, max_position_embeddings=512,
            seed=0)
PROMPTS = ["The river ran past", "Quantization stores"]
# the scored windows the importance-matrix tests calibrate beside (tests/test_imatrix*.py)
IMATRIX_PROTOCOL = {"mode": "llama.cpp", "context_length": 64, "stride": None, "max_windows": 2}


def allow_a_modified_checkout(config: dict) -> dict:
    """``config`` for a workflow test of this checkout: where its source has uncommitted edits
    (a developer's tree), every record it makes is of a modified tree, which the aggregation
    refuses unless allowed (quantbench.runs): then allow it. A clean checkout is checked."""
    from quantbench.records import source_provenance

    if source_provenance(REPO)["git_dirty"]:
        config.setdefault("report", {}).setdefault("allow_mixed_runs", True)
    return config


@pytest.fixture(scope="session")
def sample_text() -> Path:
    return DATA / "sample.txt"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, sample_text) -> Path:
    out = tmp_path_factory.mktemp("model") / "hf"
    prepare_model(TINY, out, text_path=sample_text)
    return out


@pytest.fixture(scope="session")
def converter() -> Path:
    """llama.cpp's converter, fetched once per machine (PyPI) and reused across test runs."""
    cache = Path(os.environ.get("QUANTBENCH_TEST_CACHE", Path.home() / ".cache" / "quantbench"))
    dest = cache / f"converter-{installed_llama_cpp_version()}"
    if not (dest / "convert_hf_to_gguf.py").is_file():
        fetch_converter(dest)
    return dest


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, tiny_model, converter) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gguf")
    files = {"f16": out / "f16.gguf"}
    convert(tiny_model, files["f16"], outtype="f16", converter=converter)
    for qtype in ("q8_0", "q4_k_m"):
        files[qtype] = out / f"{qtype}.gguf"
        quantize(files["f16"], files[qtype], gguf_type=qtype, threads=2)
    return files


@pytest.fixture(scope="session")
def onnx_dirs(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """The tiny model exported to ONNX (one graph with a KV cache) and ONNX Runtime's int8 and
    int4 quantisations of it, by precision name."""
    from quantbench.artifacts.onnx import export_onnx, quantize_onnx

    out = tmp_path_factory.mktemp("onnx")
    dirs = {"onnx-fp32": out / "fp32"}
    export_onnx(tiny_model, dirs["onnx-fp32"])
    for kind in ("int8", "int4"):
        dirs[f"onnx-{kind}"] = out / kind
        quantize_onnx(dirs["onnx-fp32"], dirs[f"onnx-{kind}"], onnx_type=kind,
                      **({"block_size": 32} if kind == "int4" else {}))
    return dirs


@pytest.fixture(scope="session")
def tiny_tokens(tmp_path_factory, tiny_model, sample_text) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("tokens")
    paths = {"ids": out / "text.npy", "meta": out / "text.json", "prompts": out / "prompts.json"}
    save_tokens(sample_text, tiny_model, PROMPTS, ids_path=paths["ids"],
                meta_path=paths["meta"], prompts_path=paths["prompts"])
    assert np.load(paths["ids"]).size > 300
    return paths


@pytest.fixture(scope="session")
def tail_calibration(tmp_path_factory, tiny_model, tiny_tokens, sample_text):
    """The tiny text beyond the windows of IMATRIX_PROTOCOL, and its split."""
    out = tmp_path_factory.mktemp("calibration")
    record = calibration_text(
        {"source": "tail"}, text_path=sample_text, ids_path=tiny_tokens["ids"],
        meta_path=tiny_tokens["meta"], model_dir=tiny_model, protocol=IMATRIX_PROTOCOL,
        out_text=out / "tail.txt", out_json=out / "tail.split.json")
    return {"text": out / "tail.txt", "split": out / "tail.split.json", "record": record}


@pytest.fixture(scope="session")
def llama_tools() -> Path:
    """llama.cpp's tools built from the installed library's sdist, once per machine (cached by
    tools/build-llama-tools.sh in ~/.cache/quantbench/llama-tools; QUANTBENCH_LLAMA_TOOLS names
    a folder that holds them already)."""
    if os.environ.get("QUANTBENCH_LLAMA_TOOLS"):
        return imatrix_tools.find_tool(os.environ["QUANTBENCH_LLAMA_TOOLS"]).parent
    return imatrix_tools.locate_tools(None, venv_python=sys.executable, repo=REPO)
