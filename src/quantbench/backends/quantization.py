"""How transformers loads a quantised format: bitsandbytes' config, torchao's (once torchao is
known to run the format on the device, else a refusal naming what is missing), and the bytes a
quantised weight holds."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass
from transformers import BitsAndBytesConfig

from quantbench.backends.fusion import fused_groups
from quantbench.errors import UnsupportedError
from quantbench.precisions import Precision

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def quantization_config(precision: Precision) -> BitsAndBytesConfig | None:
    """transformers' BitsAndBytesConfig of a bitsandbytes precision (None for another backend);
    refused (UnsupportedError, naming it) when the bitsandbytes package does not import."""
    s = precision.settings
    if precision.backend != "bitsandbytes":
        return None
    try:
        import bitsandbytes  # noqa: F401  (transformers would fail later, less plainly)
    except ImportError as exc:
        raise UnsupportedError(f"{precision.name}: needs the bitsandbytes package ({exc})") from exc
    if s["mode"] == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=s.get("threshold", 6.0))
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=s["mode"],
        bnb_4bit_use_double_quant=s.get("double_quant", False),
        bnb_4bit_compute_dtype=DTYPES[s.get("compute_dtype", "bfloat16")],
    )


# torchao's Float8 formats compute on FP8 tensor cores (Ada, Hopper and newer GPUs).
FP8_CAPABILITY = (8, 9)
# The layer a torchao format is tried on before loading: its input width is a multiple of every
# int4 group size and of the 1024 the tinygemm layout pads to.
PROBE_SHAPE = (256, 1024)


def torchao_config(precision: Precision, device: torch.device):
    """transformers' TorchAoConfig of a torchao precision on ``device`` (None for another
    backend), once torchao is known to run it there. Refused (UnsupportedError, naming what is
    missing) when torchao does not import, when a Float8 format meets a CUDA device below
    compute capability 8.9, or when no kernel path of the format quantises and runs one small
    layer on the device: torchao's own error, e.g. the mslk package int4's default path needs.
    (transformers reports a failed conversion only as "issues during automatic conversion".)"""
    if precision.backend != "torchao":
        return None
    try:
        import torchao.quantization as tq
    except ImportError as exc:
        raise UnsupportedError(f"{precision.name}: needs the torchao package ({exc})") from exc
    from transformers import TorchAoConfig

    s = precision.settings
    if s["config"].startswith("Float8") and device.type == "cuda":
        capability = tuple(torch.cuda.get_device_capability(device))
        if capability < FP8_CAPABILITY:
            raise UnsupportedError(
                f"{precision.name}: FP8 needs a CUDA device of compute capability >= "
                f"{FP8_CAPABILITY[0]}.{FP8_CAPABILITY[1]}; {device} is "
                f"{torch.cuda.get_device_name(device)}, compute capability "
                f"{capability[0]}.{capability[1]}"
            )
    dtype = DTYPES[s.get("dtype", "bfloat16")]
    problems = []
    for path, make in _torchao_paths(tq, s):
        problem = _torchao_problem(make, device, dtype)
        if problem is None:
            return TorchAoConfig(quant_type=make())
        problems.append(f"{path}: {problem}" if path else problem)
    raise UnsupportedError(f"{precision.name} on {device.type}: torchao cannot run "
                           f"{s['config']} here ({'; '.join(problems)})")


def _torchao_paths(tq, s: dict) -> list:
    """(kernel path, config factory) for each way torchao runs the format, in the order tried:
    one unnamed path, or one per int4 ``packing`` ("opaque" is the CPU's int4 layout, a
    prototype config of its own in torchao 0.18)."""
    # torchao's own Inductor settings (coordinate-descent tuning of every generated kernel,
    # set for the whole process) only where the precision asks for them: by default every
    # compiled precision compiles with the same Inductor settings as bf16-compiled
    kwargs = {"set_inductor_config": bool(s.get("inductor_tuning", False))}
    if "granularity" in s:
        kwargs["granularity"] = {"per_row": tq.PerRow, "per_tensor": tq.PerTensor}[
            s["granularity"]]()
    if "group_size" in s:
        kwargs["group_size"] = s["group_size"]
    if not s.get("packing"):
        return [(None, lambda: getattr(tq, s["config"])(**kwargs))]

    def opaque():
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

        return PrototypeInt4WeightOnlyConfig(**kwargs)

    return [(p, opaque if p == "opaque" else
             lambda p=p: getattr(tq, s["config"])(int4_packing_format=p, **kwargs))
            for p in s["packing"]]


def _torchao_problem(make, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why torchao cannot quantise and run one linear layer with ``make()``'s config on
    ``device``, or None when it can (the weight becomes torchao's tensor and a forward runs)."""
    from torchao.quantization import quantize_

    try:
        layer = torch.nn.Linear(PROBE_SHAPE[1], PROBE_SHAPE[0], bias=False, dtype=dtype,
                                device=device)
        quantize_(layer, make())
        with torch.inference_mode():
            layer(torch.ones(2, PROBE_SHAPE[1], dtype=dtype, device=device))
    except (ImportError, AssertionError, AttributeError, NotImplementedError, RuntimeError,
            TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not is_traceable_wrapper_subclass(layer.weight):
        return "torchao left the weight unquantised"
    return None


def quantised_linears(model) -> tuple[int, int]:
    """(linear layers whose weight torchao quantised, all linear layers): a fused projection
    (backends.fusion) counts as its group's quantised whole does."""
    grouped = {id(getattr(holder, name)): holder.fused_group.weight
               for holder, names in fused_groups(model) for name in names}
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return (sum(is_traceable_wrapper_subclass(grouped.get(id(m), m.weight)) for m in linears),
            len(linears))


def stored_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor holds: a tensor subclass (torchao's quantised weights) by its inner
    tensors, which transformers' get_memory_footprint does not see (it counts them at the
    compute dtype)."""
    if is_traceable_wrapper_subclass(t):
        return sum(stored_bytes(getattr(t, name)) for name in t.__tensor_flatten__()[0])
    return t.numel() * t.element_size()
