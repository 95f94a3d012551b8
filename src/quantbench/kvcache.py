"""llama.cpp's KV-cache types: which a precision asks for, what they cost per element, and the
combinations llama.cpp refuses.

A llama.cpp precision may set ``type_k`` and ``type_v`` (f16, q8_0, q4_0; f16 when unset, as
llama.cpp's own default). A quantized cache is stored in ggml's blocks: q8_0 keeps 32 values in
34 bytes, q4_0 in 18; the sizes are read from the GGUF library's table of ggml block sizes
(``gguf.constants.GGML_QUANT_SIZES``), not typed here. llama.cpp (as vendored in the installed
llama-cpp-python) refuses two combinations when it makes a context: a quantized V cache with
flash attention off (without flash attention V is stored transposed, which a block format cannot
be), and a quantized cache whose head size is not a multiple of the block size. Both are told
here before anything is loaded.

This module imports neither llama_cpp nor the GGUF library at import time: the config check
(run where the workflow's DAG is built) uses it too.
"""

from __future__ import annotations

KV_TYPES = ("f16", "q8_0", "q4_0")
DEFAULT = "f16"
# the ggml type number of each (llama_context_params.type_k / type_v take these)
GGML_TYPE = {"f16": 1, "q4_0": 2, "q8_0": 8}


def types(settings: dict) -> tuple[str, str]:
    """The (K, V) cache types a precision's settings ask for."""
    return settings.get("type_k", DEFAULT), settings.get("type_v", DEFAULT)


def quantized(settings: dict) -> bool:
    """Whether the precision stores its KV cache in a block format."""
    return any(t != DEFAULT for t in types(settings))


def block(kind: str) -> tuple[int, int]:
    """(values per block, bytes per block) of a cache type, from ggml's table."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType(GGML_TYPE[kind])]


def elem_bytes(settings: dict) -> float:
    """Bytes per cached value, K and V averaged (they hold as many values each)."""
    sizes = [block(t) for t in types(settings)]
    return sum(nbytes / values for values, nbytes in sizes) / len(sizes)


def problem(settings: dict, head_dim: int | None = None) -> str | None:
    """Why llama.cpp would refuse this precision's KV cache (None when it would not): an
    unknown type, a quantized V cache with flash attention off, or (given the model's head
    size) a head size that is not a multiple of the type's block."""
    k, v = types(settings)
    for which, kind in (("type_k", k), ("type_v", v)):
        if kind not in KV_TYPES:
            return f"{which} {kind!r} is not one of {', '.join(KV_TYPES)}"
    if v != DEFAULT and settings.get("flash_attn", "auto") == "off":
        return (f"a {v} V cache needs flash attention, and flash_attn is off (llama.cpp stores "
                "V transposed without it, which a block format cannot be)")
    if head_dim is not None:
        for which, kind in (("K", k), ("V", v)):
            if kind != DEFAULT and head_dim % _block_values(kind):
                return (f"a {kind} {which} cache needs a head size that is a multiple of "
                        f"{_block_values(kind)}; this model's is {head_dim}")
    return None


def _block_values(kind: str) -> int:
    return block(kind)[0]


