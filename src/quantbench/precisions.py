"""The precision table (names mapped to an engine and its settings: data, not code), and every
relation between precisions, in one place: which are quantized, what each is compared with (its
baseline), its eager or compiled twin, the f16-KV-cache twin of a quantized KV cache, the pairs
with and without an importance matrix, and the order in which a run's reference is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import yaml

from quantbench import engines, kvcache
from quantbench.engines import Engine

# the reference of a run (what quality is measured against) when the config names none: the
# first of these it runs, else its first precision
REFERENCE_ORDER = ("fp32", "gguf-f32", "bf16", "fp16", "gguf-f16", "gguf-bf16")
# ``X-compiled`` is format X on its fast path (static KV cache + torch.compile)
COMPILED_SUFFIX = "-compiled"


@dataclass(frozen=True)
class Precision:
    name: str
    backend: str
    settings: dict = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return engines.get(self.backend)

    @property
    def quantized(self) -> bool:
        return self.engine.quantized(self.settings)

    @property
    def compiled(self) -> bool:
        return bool(self.settings.get("compile"))


@cache
def table() -> dict[str, Precision]:
    raw = yaml.safe_load(resources.files("quantbench").joinpath("precisions.yaml").read_text())
    out = {}
    for name, spec in raw.items():
        spec = dict(spec)
        backend = spec.pop("backend")
        if backend not in engines.REGISTRY:
            raise ValueError(f"precision {name!r}: unknown backend {backend!r}; known: "
                             f"{', '.join(engines.REGISTRY)}")
        out[name] = Precision(name, backend, spec)
    return out


def add(name: str, backend: str, **settings) -> Precision:
    """A precision of a registered engine added to the table (as a row of precisions.yaml
    would be), for an engine registered from outside the package."""
    engines.get(backend)
    table()[name] = Precision(name, backend, settings)
    return table()[name]


def get(name: str, overrides: dict | None = None) -> Precision:
    """The precision ``name``, its settings updated with ``overrides`` (from the config)."""
    try:
        base = table()[name]
    except KeyError:
        raise KeyError(f"unknown precision {name!r}; allowed: {', '.join(table())}") from None
    if not overrides:
        return base
    return Precision(base.name, base.backend, {**base.settings, **overrides})


# -- relations between precisions -------------------------------------------------------------

def baseline_of(name: str, available) -> str | None:
    """The unquantized precision of ``available`` that quantized ``name`` is compared with, or
    None (an unquantized precision, or none of its engine's baselines ran).

    The candidates are the unquantized precisions of the engine it is compared with (its own,
    or transformers for bitsandbytes and torchao, which compute through it), never another
    engine's: a GGUF is compared with gguf-f16, else gguf-bf16, else gguf-f32 (an f16 file with
    a quantized KV cache is no baseline); a transformers-side format with bf16, else fp16, else
    fp32, one on the compiled path with a compiled baseline first, so that what compiling
    removes is not credited to the format. bf16 comes first: it is the type models ship and are
    served in, and the one torchao and bitsandbytes' 4-bit formats compute in (see
    docs/architecture.md)."""
    p = table().get(name)
    if p is None or not p.quantized:
        return None
    engine = p.engine
    order, key = engine.baseline_order, engine.baseline_key
    ran = set(available)
    pool = [q for q in table().values()
            if q.name in ran and q.backend == engine.baseline_engine and not q.quantized
            and not kvcache.quantized(q.settings) and q.settings.get(key) in order]
    pool.sort(key=lambda q: (q.compiled != p.compiled, order.index(q.settings[key])))
    return pool[0].name if pool else None


def eager_twin(name: str) -> str | None:
    """The eager precision of the same weights as ``name``: ``X`` for ``X-compiled`` (the
    table's convention for every engine), None for a precision that is not the compiled one
    of a pair."""
    return name.removesuffix(COMPILED_SUFFIX) if name.endswith(COMPILED_SUFFIX) else None


def format_of(name: str) -> str:
    """The format a precision is a path of: its eager twin's name, or its own."""
    return eager_twin(name) or name


def f16_twin(name: str, available) -> str | None:
    """The precision of ``available`` with the same weights (engine and GGUF type) and an f16
    KV cache, that a quantized-KV precision is compared with; None for one whose cache is not
    quantized or when none ran."""
    p = table().get(name)
    if p is None or not p.engine.kv_cache_types or not kvcache.quantized(p.settings):
        return None
    ran = set(available)
    for q in table().values():
        if (q.name in ran and q.backend == p.backend and not kvcache.quantized(q.settings)
                and q.settings.get("gguf_type") == p.settings.get("gguf_type")):
            return q.name
    return None


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
             if table[p].engine.imatrix and calibration_of(p) is None}
    out = []
    for p in precisions:
        cal = calibration_of(p) if table[p].engine.imatrix else None
        twin = plain.get(table[p].settings["gguf_type"].upper()) if cal else None
        if twin:
            out.append((p, twin, cal))
    return out
