"""The engines quantbench measures with, one registry entry each: the one place that knows what
an engine is. Everything else asks its entry (``engine_of(precision)``), never its name.

An entry says where its backend class is (``loader``, ``"module:Class"``, imported only when a
job loads a model, so that this module stays light for the DAG), which conda environment its
jobs run in, what file or folder its precisions load and how it is made, its colour in the
figures, which of its settings a config may override, which of its precisions are quantized and
what each is compared with, and what else it can do (kernel traces through torch, llama.cpp's
KV-cache types and importance matrices). Adding an engine is: its backend module, an entry here
(or ``register`` from a plug-in), its ``envs/<env>.yaml`` and its rows of ``precisions.yaml``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from quantbench.inputs import gguf_stem

DTYPES = ("float32", "float16", "bfloat16")


def _never(settings: dict) -> bool:
    return False


def _always(settings: dict) -> bool:
    return True


def _no_refs(settings: dict) -> set[str]:
    return set()


@dataclass(frozen=True)
class Engine:
    name: str  # the ``backend`` of its rows in precisions.yaml
    loader: str  # "module:Class" of its Backend
    env: str  # envs/<env>.yaml
    # what a precision of it loads, from the model's folder of resources/models/<model>/
    # and the precision's settings: "hf" (the prepared HF folder), "gguf/<stem>.gguf", ...
    artifact: Callable[[dict], str]
    # the rule that makes that artifact ("prepare_model" for the HF folder itself)
    made_by: str
    colour: str
    # settings a config's precision_settings may change: name -> allowed values (a tuple),
    # bool, float, or "calibration" (a name of imatrix.calibrations); per settings
    overridable: Callable[[dict], dict] = field(default=lambda settings: {})
    quantized: Callable[[dict], bool] = _never
    # the engine whose unquantized precisions this one's quantized ones are compared with,
    # the setting that tells them apart and its order of preference (see precisions.baseline_of)
    baseline_engine: str = ""
    baseline_key: str = ""
    baseline_order: tuple = ()
    # runs through torch: the torch profiler sees its kernels, torch's allocator its memory
    runs_in_torch: bool = False
    kv_cache_types: bool = False  # llama.cpp's type_k / type_v settings
    imatrix: bool = False  # quantized with llama.cpp's importance matrices
    # a library the job imports before anything else (see backends.preload)
    preload: str | None = None
    # what the report cites for a precision's format (keys of report.operating.FORMAT_REFS)
    format_refs: Callable[[dict], set[str]] = _no_refs

    def backend_class(self):
        module, _, cls = self.loader.partition(":")
        return getattr(importlib.import_module(module), cls)


def _gguf_artifact(settings: dict) -> str:
    return f"gguf/{gguf_stem(settings['gguf_type'], settings.get('imatrix'))}.gguf"


def _bnb_overridable(settings: dict) -> dict:
    if settings.get("mode") == "int8":
        return {"threshold": float}
    return {"double_quant": bool, "compute_dtype": DTYPES}


def _bnb_refs(settings: dict) -> set[str]:
    return {"llm.int8" if settings.get("mode") == "int8" else "qlora"}


def _gguf_refs(settings: dict) -> set[str]:
    return {"gguf"} | ({"k-quants"} if "_K" in str(settings.get("gguf_type", "")).upper()
                       else set())


_TRANSFORMERS_BASELINE = dict(baseline_engine="transformers", baseline_key="dtype",
                              baseline_order=("bfloat16", "float16", "float32"))

REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add (or replace) an engine: its precisions may then be named in precisions.yaml."""
    REGISTRY[engine.name] = engine
    return engine


for _engine in (
    Engine("transformers", "quantbench.backends.hf:HFBackend", "hf", lambda s: "hf",
           "prepare_model", "#1f77b4",
           overridable=lambda s: {"dtype": DTYPES, "compile": bool},
           runs_in_torch=True, **_TRANSFORMERS_BASELINE),
    Engine("bitsandbytes", "quantbench.backends.hf:HFBackend", "hf", lambda s: "hf",
           "prepare_model", "#ff7f0e", overridable=_bnb_overridable, quantized=_always,
           runs_in_torch=True, format_refs=_bnb_refs, **_TRANSFORMERS_BASELINE),
    Engine("torchao", "quantbench.backends.hf:HFBackend", "hf", lambda s: "hf",
           "prepare_model", "#d62728",
           overridable=lambda s: {"compile": bool, "inductor_tuning": bool},
           quantized=_always, runs_in_torch=True, **_TRANSFORMERS_BASELINE),
    Engine("llama.cpp", "quantbench.backends.llamacpp:LlamaCppBackend", "llamacpp",
           _gguf_artifact, "convert_gguf / quantize_gguf", "#2ca02c",
           overridable=lambda s: {"flash_attn": ("auto", "on", "off"),
                                  "imatrix": "calibration"},
           quantized=lambda s: s.get("made_by") == "quantize",
           baseline_engine="llama.cpp", baseline_key="gguf_type",
           baseline_order=("f16", "bf16", "f32"), kv_cache_types=True, imatrix=True,
           preload="llama_cpp", format_refs=_gguf_refs),
    Engine("onnxruntime", "quantbench.backends.onnx:OnnxBackend", "onnx",
           lambda s: f"onnx/{s['onnx_type']}", "export_onnx / quantize_onnx", "#17becf",
           quantized=lambda s: s.get("onnx_type") != "fp32",
           baseline_engine="onnxruntime", baseline_key="onnx_type", baseline_order=("fp32",)),
):
    register(_engine)


def get(name: str) -> Engine:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(REGISTRY)}") from None
