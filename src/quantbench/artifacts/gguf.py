"""Convert stage (HF folder -> GGUF with llama.cpp's own converter) and quantize stage.

The converter is the one vendored in the llama-cpp-python sdist of the installed version
(convert_hf_to_gguf.py with conversion/ and gguf-py/ beside it), so the GGUF it writes is one
the installed library reads. It is fetched from PyPI once, or taken from a local source tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from quantbench.artifacts import imatrix as qb_imatrix
from quantbench.errors import ConversionError
from quantbench.gguf_header import GGUF_MAGIC, GGUF_VERSIONS, metadata_value
from quantbench.inputs import CONVERTER, CONVERTER_PARTS, converter_root
from quantbench.precisions import needs_imatrix
from quantbench.records import atomic_dir, atomic_write_text, sha256


def installed_llama_cpp_version() -> str:
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError as exc:
        raise ConversionError("llama-cpp-python is not installed") from exc


def fetch_converter(dest: str | Path, *, source: str | None = None,
                    version: str | None = None) -> Path:
    """Place llama.cpp's converter (matching the installed library) in ``dest``."""
    with atomic_dir(dest) as tmp:
        if source:
            _copy_from_tree(Path(source), tmp)
        else:
            _extract_from_sdist(version or installed_llama_cpp_version(), tmp)
        if not (tmp / CONVERTER).is_file():
            raise ConversionError(f"no {CONVERTER} found in the llama-cpp-python source")
    return Path(dest)


def _copy_from_tree(source: Path, out: Path) -> None:
    root = converter_root(source)
    if root is None:
        raise ConversionError(f"converter.source {source} holds no {CONVERTER}")
    out.mkdir(parents=True)
    for part in CONVERTER_PARTS:
        src = root / part.rstrip("/")
        if src.is_dir():
            shutil.copytree(src, out / src.name)
        elif src.is_file():
            shutil.copy2(src, out / src.name)


def _extract_from_sdist(version: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
               ":all:", "--dest", tmp, f"llama-cpp-python=={version}"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if res.returncode != 0 or not sdists:
            raise ConversionError(
                f"could not fetch the llama-cpp-python=={version} sdist: {res.stderr[-500:]}"
                " (offline? set converter.source to an unpacked source tree)"
            )
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        out.mkdir(parents=True)
        with tarfile.open(sdists[0]) as tar:
            members = [
                m for m in tar.getmembers()
                if m.name.startswith(prefix)
                and m.name[len(prefix):].startswith(CONVERTER_PARTS)
                and (m.isfile() or m.isdir())
            ]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(out, members=members, filter="data")
    atomic_write_text(out / "VERSION", version + "\n")


def convert(hf_dir: str | Path, out: str | Path, *, outtype: str, converter: str | Path,
            log_path: str | Path | None = None) -> dict:
    """HF folder -> GGUF of ``outtype`` (f32, f16, bf16) with llama.cpp's converter."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    cmd = [sys.executable, str(Path(converter) / CONVERTER), str(hf_dir),
           "--outfile", str(tmp), "--outtype", outtype]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if log_path:
        Path(log_path).write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join(res.stderr.strip().splitlines()[-3:])
        unsupported = re.search(r"Model (\S+) is not supported", res.stderr)
        if unsupported:
            raise ConversionError(
                f"llama.cpp's converter does not support the {unsupported.group(1)} architecture "
                f"(model {hf_dir}): no GGUF precision can be made for this model"
            )
        if "not supported" in res.stderr:
            raise ConversionError(f"llama.cpp's converter does not support this model: {tail}")
        raise ConversionError(f"GGUF conversion failed ({outtype}): {tail}")
    return _finish(tmp, out, outtype)


def quantize(src: str | Path, out: str | Path, *, gguf_type: str, threads: int,
             imatrix: str | Path | None = None) -> dict:
    """GGUF -> quantised GGUF with llama_model_quantize (the library's own quantiser), with the
    importance matrix of a llama-imatrix file when ``imatrix`` names one
    (quantbench.artifacts.imatrix); an IQ type without one is refused."""
    import ctypes

    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{gguf_type.upper()}", None)
    if ftype is None:
        raise ConversionError(f"llama.cpp has no file type {gguf_type!r}")
    if imatrix is None and needs_imatrix(gguf_type):
        raise ConversionError(
            f"{gguf_type.upper()} needs an importance matrix: give the precision the setting "
            "imatrix (a calibration of config imatrix.calibrations)"
        )
    verify(src)
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    keep = []  # the arrays the C array points into stay alive until the call returns
    if imatrix is not None:
        matrix = qb_imatrix.load(imatrix)
        entries = (llama_cpp.llama_model_imatrix_data * (len(matrix) + 1))()  # NULL-terminated
        for entry, (name, values) in zip(entries, matrix.items(), strict=False):
            keep.append(values)
            entry.name = name.encode()
            entry.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entry.size = values.size
        keep.append(entries)
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"llama_model_quantize to {gguf_type} failed (code {rc})")
    extra = {"imatrix": {"path": str(imatrix), "sha256": sha256(imatrix)}} if imatrix else {}
    return _finish(tmp, out, gguf_type, extra)


def verify(path: str | Path) -> None:
    """Refuse a file that is not a whole GGUF: magic, version, and every tensor's data within
    the file (a truncated or damaged file fails here, before anything trusts it)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:4] != GGUF_MAGIC:
        raise ConversionError(f"{path} is not a GGUF file (bad magic)")
    if size < 1024:
        raise ConversionError(f"{path} is truncated ({size} bytes)")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in GGUF_VERSIONS:
        raise ConversionError(f"{path} has GGUF version {version}; readable: {GGUF_VERSIONS}")
    try:
        from gguf import GGUFReader
    except ImportError:  # the PyPI gguf package is optional where GGUFs are only read
        return
    try:
        end = max((t.data_offset + t.n_bytes for t in GGUFReader(str(path)).tensors), default=0)
    except (ValueError, IndexError, KeyError, struct.error) as exc:
        raise ConversionError(f"{path} is truncated or damaged: {exc}") from exc
    if end > size:
        raise ConversionError(f"{path} is truncated: its tensors need {end} bytes, it has {size}")


def tensor_types(path: str | Path) -> dict[str, float]:
    """Share of the weights (in %) stored in each GGUF tensor type, largest first.

    llama.cpp falls back to other types for tensors whose rows its K-quants cannot split (a row
    must be a multiple of 256): the file's name then overstates what it holds."""
    from collections import Counter

    try:
        from gguf import GGUFReader
    except ImportError:  # the PyPI gguf package is optional where GGUFs are only read
        return {}

    counts = Counter()
    for t in GGUFReader(str(path)).tensors:
        counts[t.tensor_type.name] += int(t.n_elements)
    total = sum(counts.values()) or 1
    return {name: 100 * n / total for name, n in counts.most_common()}


def row_alignment(path: str | Path, gguf_type: str) -> dict:
    """How many of the weights sit in matrices whose rows the named type cannot split.

    A type stores a row in blocks (256 weights for the K-quants, 32 for Q8_0, 1 for F16);
    llama.cpp stores a matrix whose row width (``ne[0]``) is not a multiple of the block in
    another type. Returns the block size (``row_block``) and the share (in %, of all weights,
    as ``tensor_types``) in such matrices (``misaligned_rows_pct``); empty without gguf-py or
    for a type it does not know."""
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader
    except ImportError:  # the PyPI gguf package is optional where GGUFs are only read
        return {}
    try:
        block = GGML_QUANT_SIZES[GGMLQuantizationType[base_type(gguf_type)]][0]
    except KeyError:
        return {}
    total = misaligned = 0
    for t in GGUFReader(str(path)).tensors:
        total += int(t.n_elements)
        if len(t.shape) >= 2 and int(t.shape[0]) % block:  # 1-D tensors are never quantized
            misaligned += int(t.n_elements)
    return {"row_block": int(block), "misaligned_rows_pct": 100 * misaligned / (total or 1)}


def base_type(gguf_type: str) -> str:
    """The tensor type a file type is named after: Q4_K_M -> Q4_K, q8_0 -> Q8_0, f16 -> F16."""
    name = gguf_type.upper()
    return name[:-2] if name.endswith(("_S", "_M", "_L")) and "_K" in name else name


def _finish(tmp: Path, out: Path, gguf_type: str, extra: dict | None = None) -> dict:
    verify(tmp)
    info = {"path": out.name, "size_bytes": tmp.stat().st_size, "sha256": sha256(tmp),
            "tensor_types_pct": tensor_types(tmp), **row_alignment(tmp, gguf_type),
            **(extra or {})}
    tmp.replace(out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return info


def file_type(path: str | Path) -> str:
    """The file type a GGUF says it is (general.file_type: Q4_1, F16, Q4_K_M...); else the type
    most of its weights are stored in."""
    from gguf import LlamaFileType

    value = metadata_value(path, "general.file_type")
    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return next(iter(tensor_types(path)), "unknown")


@contextmanager
def _llamacpp_vocab(path: str | Path):
    """llama.cpp's vocabulary of a GGUF file (its tensors are not loaded)."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ConversionError(f"llama.cpp cannot read the vocabulary of {path}")
    try:
        yield llama_cpp.llama_model_get_vocab(model)
    finally:
        llama_cpp.llama_model_free(model)


def llamacpp_bos(path: str | Path) -> dict:
    """How llama.cpp's tokenizer for the file treats BOS: whether it adds one (``add_bos``, its
    own answer, defaults included) and which (``bos_id``), beside the file's flag
    (tokenizer.ggml.add_bos_token; None where the file has none)."""
    import llama_cpp

    with _llamacpp_vocab(path) as vocab:
        add = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        bos = int(llama_cpp.llama_vocab_bos(vocab))
    return {"add_bos": add, "bos_id": None if bos < 0 else bos,
            "file_add_bos_token": metadata_value(path, "tokenizer.ggml.add_bos_token")}


def llamacpp_tokenize(path: str | Path, text: str) -> list[int]:
    """Token ids of ``text`` by llama.cpp's tokenizer for the file, special tokens (BOS) added
    as llama.cpp adds them."""
    import llama_cpp

    data = text.encode()
    with _llamacpp_vocab(path) as vocab:
        room = len(data) + 8
        ids = (llama_cpp.llama_token * room)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), ids, room, True, False)
        if n < 0:
            raise ConversionError(f"llama.cpp could not tokenise {len(data)} bytes")
        return list(ids[:n])
