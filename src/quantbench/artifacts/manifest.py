"""The manifest that each prepared model folder carries (``quantbench_model.json``): what the
model stage, the ONNX export and the backends read back. A leaf of the artifacts layer: it
imports nothing heavy and no other artifact module."""

from __future__ import annotations

import json
from pathlib import Path

from quantbench.errors import ConversionError

MODEL_JSON = "quantbench_model.json"



def model_options(folder: str | Path) -> dict:
    """from_pretrained options the model's config allowed when it was prepared."""
    path = Path(folder) / MODEL_JSON
    info = json.loads(path.read_text()) if path.is_file() else {}
    return {"trust_remote_code": bool(info.get("trust_remote_code", False))}


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MODEL_JSON
    if not path.is_file():
        raise ConversionError(f"{folder} is not an ONNX folder made by quantbench "
                              f"(no {MODEL_JSON})")
    return json.loads(path.read_text())
