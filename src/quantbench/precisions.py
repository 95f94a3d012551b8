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
