"""Importance matrices with llama.cpp's own tools, built once per machine from the installed
library's sdist (tools/build-llama-tools.sh, cached): a real llama-imatrix run on a tiny GGUF
and the quantizer's use of it, against llama-quantize --imatrix of the same build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from quantbench.artifacts import imatrix as qb_imatrix
from quantbench.artifacts.gguf import quantize

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_imatrix(tmp_path_factory, tiny_gguf, tail_calibration, llama_tools):
    out = tmp_path_factory.mktemp("imatrix") / "tail.gguf"
    info = qb_imatrix.compute(tiny_gguf["f16"], tail_calibration["text"], out, tools=llama_tools,
                              context_length=32, threads=2,
                              calibration=tail_calibration["record"])
    return {"path": out, "info": info}


def test_llama_imatrix_computes_a_real_matrix_on_the_calibration(tiny_imatrix):
    info = json.loads(tiny_imatrix["path"].with_suffix(".json").read_text())
    assert info["chunks"] >= 1 and info["calibration"]["source"] == "tail"
    assert info["calibration"]["scored_ids"][1] == info["calibration"]["calibration_ids"][0]
    matrix = qb_imatrix.load(tiny_imatrix["path"])
    assert "blk.0.attn_q.weight" in matrix and "blk.1.ffn_down.weight" in matrix
    assert matrix["blk.0.attn_q.weight"].size == 256  # one value a column of the weight
    assert matrix["blk.1.ffn_down.weight"].size == 512
    for values in matrix.values():
        assert np.isfinite(values).all() and (values >= 0).all()
        assert np.ptp(values) > 0  # measured activations, not the placeholder 1s


def _tensors(path) -> dict[str, bytes]:
    from gguf import GGUFReader

    return {t.name: bytes(np.asarray(t.data).tobytes()) for t in GGUFReader(str(path)).tensors}


@pytest.mark.parametrize("gguf_type", ["Q4_K_M", "IQ2_XS"])
def test_imatrix_quantization_is_llama_quantizes(tmp_path, tiny_gguf, tiny_imatrix, llama_tools,
                                                 gguf_type):
    ours = tmp_path / "ours.gguf"
    info = quantize(tiny_gguf["f16"], ours, gguf_type=gguf_type, threads=2,
                    imatrix=tiny_imatrix["path"])
    assert info["imatrix"]["sha256"] == tiny_imatrix["info"]["sha256"]
    theirs = tmp_path / "theirs.gguf"
    subprocess.run([str(llama_tools / "llama-quantize"), "--imatrix", str(tiny_imatrix["path"]),
                    str(tiny_gguf["f16"]), str(theirs), gguf_type, "2"], check=True,
                   capture_output=True)
    assert _tensors(ours) == _tensors(theirs)


def test_the_imat_gguf_differs_from_the_plain_one(tmp_path, tiny_gguf, tiny_imatrix):
    imat = tmp_path / "q4_k_m-imat-tail.gguf"
    quantize(tiny_gguf["f16"], imat, gguf_type="Q4_K_M", threads=2, imatrix=tiny_imatrix["path"])
    plain, weighted = _tensors(tiny_gguf["q4_k_m"]), _tensors(imat)
    assert plain.keys() == weighted.keys()
    assert plain["blk.0.attn_q.weight"] != weighted["blk.0.attn_q.weight"]
