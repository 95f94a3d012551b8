"""The precision table: names mapped to a backend and its settings (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import yaml

BACKENDS = ("transformers", "bitsandbytes", "torchao", "llama.cpp", "onnxruntime")
# the backends that load an HF folder through transformers (quantised on load or not)
TRANSFORMERS_SIDE = ("transformers", "bitsandbytes", "torchao")


@dataclass(frozen=True)
class Precision:
    name: str
    backend: str
    settings: dict = field(default_factory=dict)

    @property
    def is_gguf(self) -> bool:
        return self.backend == "llama.cpp"

    @property
    def is_onnx(self) -> bool:
        return self.backend == "onnxruntime"


@cache
def table() -> dict[str, Precision]:
    raw = yaml.safe_load(resources.files("quantbench").joinpath("precisions.yaml").read_text())
    out = {}
    for name, spec in raw.items():
        spec = dict(spec)
        backend = spec.pop("backend")
        if backend not in BACKENDS:
            raise ValueError(f"precision {name!r}: unknown backend {backend!r}")
        out[name] = Precision(name, backend, spec)
    return out


def get(name: str, overrides: dict | None = None) -> Precision:
    """The precision ``name``, its settings updated with ``overrides`` (from the config)."""
    try:
        base = table()[name]
    except KeyError:
        raise KeyError(f"unknown precision {name!r}; allowed: {', '.join(table())}") from None
    if not overrides:
        return base
    return Precision(base.name, base.backend, {**base.settings, **overrides})


# llama.cpp refuses these without an importance matrix (IQ2_XXS, IQ2_XS, IQ1_*) or degrades
# them (the other IQ types fall back to other types for some tensors): quantbench makes every
# IQ type with one
NEEDS_IMATRIX_PREFIX = "IQ"



def needs_imatrix(gguf_type: str) -> bool:
    return gguf_type.upper().startswith(NEEDS_IMATRIX_PREFIX)



def pairs(precisions, table, calibration_of) -> list[tuple[str, str, str]]:
    """(with matrix, without, calibration) for each precision run with an importance matrix
    whose type is also run without one; an IQ type has no plain twin and no pair."""
    plain = {table[p].settings["gguf_type"].upper(): p for p in precisions
             if table[p].is_gguf and calibration_of(p) is None}
    out = []
    for p in precisions:
        cal = calibration_of(p) if table[p].is_gguf else None
        twin = plain.get(table[p].settings["gguf_type"].upper()) if cal else None
        if twin:
            out.append((p, twin, cal))
    return out
