"""The user's files that the DAG depends on, listed as inputs so that an edit to one of them
(not only a change of its path) reruns what was made from it.

Kept light: the Snakefile calls these while it builds the DAG.
"""

from __future__ import annotations

import os
from pathlib import Path

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
