import json

import pytest

from quantbench.errors import ConversionError
from quantbench.gguf import quantize, verify


def test_conversion_and_quantization_write_valid_smaller_files(tiny_gguf):
    sizes = {k: p.stat().st_size for k, p in tiny_gguf.items()}
    for path in tiny_gguf.values():
        verify(path)
        info = json.loads(path.with_suffix(".json").read_text())
        assert info["size_bytes"] == path.stat().st_size and len(info["sha256"]) == 64
        assert not path.with_name(path.name + ".partial").exists()
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_k_m"]


def test_corrupted_gguf_is_refused_and_leaves_nothing(tmp_path, tiny_gguf):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + tiny_gguf["f16"].read_bytes()[4:4096])
    with pytest.raises(ConversionError, match="not a GGUF"):
        quantize(bad, tmp_path / "q.gguf", gguf_type="q8_0", threads=1)
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(ConversionError, match="truncated"):
        verify(truncated)
    assert not (tmp_path / "q.gguf").exists()


def test_unknown_quant_type_is_refused(tmp_path, tiny_gguf):
    with pytest.raises(ConversionError, match="no file type"):
        quantize(tiny_gguf["f16"], tmp_path / "x.gguf", gguf_type="q9_z", threads=1)
