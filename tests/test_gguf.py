import json

import pytest

from quantbench.artifacts.gguf import convert, quantize, verify
from quantbench.errors import ConversionError


def test_conversion_and_quantization_write_valid_smaller_files(tiny_gguf):
    sizes = {k: p.stat().st_size for k, p in tiny_gguf.items()}
    for path in tiny_gguf.values():
        verify(path)
        info = json.loads(path.with_suffix(".json").read_text())
        assert info["size_bytes"] == path.stat().st_size and len(info["sha256"]) == 64
        assert not path.with_name(path.name + ".partial").exists()
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_k_m"]


def test_tensor_types_tell_what_a_file_really_holds(tiny_gguf):
    from quantbench.artifacts.gguf import base_type, tensor_types

    assert base_type("Q4_K_M") == "Q4_K" and base_type("q8_0") == "Q8_0"
    assert base_type("f16") == "F16" and base_type("Q2_K") == "Q2_K"
    for name, path in tiny_gguf.items():
        types = tensor_types(path)
        assert abs(sum(types.values()) - 100) < 1e-6
        assert json.loads(path.with_suffix(".json").read_text())["tensor_types_pct"] == types
        # hidden 256: every matrix row splits into 256-blocks, so no fallback
        assert types[base_type(name)] > 50, types
        info = json.loads(path.with_suffix(".json").read_text())
        assert info["misaligned_rows_pct"] == 0.0
    assert json.loads(tiny_gguf["q4_k_m"].with_suffix(".json").read_text())["row_block"] == 256


def test_row_alignment_counts_the_weights_in_matrices_whose_rows_do_not_split(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    from quantbench.artifacts.gguf import row_alignment

    path = tmp_path / "shapes.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_tensor("narrow", np.zeros((4, 192), np.float32))  # rows of 192 weights
    writer.add_tensor("wide", np.zeros((2, 512), np.float32))
    writer.add_tensor("norm", np.zeros(192, np.float32))  # 1-D: never quantized
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    total = 4 * 192 + 2 * 512 + 192
    assert row_alignment(path, "q4_k_m") == {"row_block": 256,
                                             "misaligned_rows_pct": 100 * 4 * 192 / total}
    assert row_alignment(path, "q8_0") == {"row_block": 32, "misaligned_rows_pct": 0.0}
    assert row_alignment(path, "f16")["misaligned_rows_pct"] == 0.0


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


def test_truncated_gguf_with_a_valid_header_is_refused(tmp_path, tiny_gguf):
    whole = tiny_gguf["q8_0"].read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConversionError, match="truncated"):
        verify(cut)
    with pytest.raises(ConversionError, match="truncated"):
        quantize(cut, tmp_path / "q.gguf", gguf_type="q4_0", threads=1)
    assert not list(tmp_path.glob("q.gguf*"))


def test_unsupported_architecture_is_a_conversion_error_naming_it(tmp_path, tiny_model,
                                                                  converter):
    folder = tmp_path / "m"
    folder.mkdir()
    for f in tiny_model.iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "config.json").unlink()
    config = json.loads((tiny_model / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config,
                                                    "architectures": ["FooBarForCausalLM"]}))
    with pytest.raises(ConversionError, match="does not support the FooBarForCausalLM arch"):
        convert(folder, tmp_path / "f16.gguf", outtype="f16", converter=converter)
    assert not list(tmp_path.glob("f16.*"))


def test_each_gguf_precision_writes_the_llama_cpp_file_type_of_its_name(tmp_path, tiny_gguf):
    """gguf-q5_k_m must write a file that says LLAMA_FTYPE_MOSTLY_Q5_K_M (17), and so on: the
    name, the table's gguf_type, llama-cpp-python's constant, gguf-py's LlamaFileType (a second
    copy of llama.h's enum) and the written general.file_type all agree."""
    import llama_cpp
    from gguf import GGUFReader, LlamaFileType

    from quantbench import precisions
    from quantbench.precisions import needs_imatrix

    quantized = [p for p in precisions.table().values()
                 if "gguf_type" in p.settings and p.settings["made_by"] == "quantize"]
    assert {"gguf-q5_k_m", "gguf-q4_k_m", "gguf-q2_k"} <= {p.name for p in quantized}
    done = set()
    for p in quantized:
        gguf_type = p.settings["gguf_type"]
        # a variant of a type (its KV cache's types, an importance matrix) keeps the type's name
        # and adds a suffix of its own
        plain = f"gguf-{gguf_type.lower()}"
        assert p.name == plain or p.name.startswith(plain + "-"), p.name
        if gguf_type in done:
            continue
        done.add(gguf_type)
        expected = LlamaFileType[f"MOSTLY_{gguf_type.upper()}"].value
        assert getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{gguf_type.upper()}") == expected
        if needs_imatrix(gguf_type):  # written with a real matrix in tests/test_imatrix_tools.py
            continue
        out = tmp_path / f"{gguf_type}.gguf"
        quantize(tiny_gguf["f16"], out, gguf_type=gguf_type, threads=1)
        written = GGUFReader(str(out)).get_field("general.file_type").contents()
        assert written == expected, (p.name, written, expected)
