"""ONNX stage: export the HF folder to one ONNX graph with a KV cache, and quantise it.

Export: transformers' own ONNX exporter (``transformers.exporters.OnnxExporter``, the Hugging
Face exporter that took over from optimum's; optimum-onnx has no release for transformers 5).
Its ``decompose_for_generation`` runs ``generate()`` to capture the inputs of a decode step;
captured with two decode steps merged (``multi_token_decode``), the step's query length stays
dynamic, so one graph serves every forward the harness makes: a prompt on an empty cache, a
prompt after a filled depth and one token at a time. The batch axis stays dynamic too (captured
at batch 2). ``logits_to_keep`` is an input of the graph (the positions whose logits it
returns: the last one for decoding, every one for perplexity), as transformers takes it.

Quantisation, by ONNX Runtime's own tools on the fp32 graph:
- ``int8``: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights of every MatMul,
  activations quantised at run time, no calibration);
- ``int4``: ``MatMulNBitsQuantizer`` (4-bit weight-only blocks of ``block_size``, the
  MatMulNBits operator of ONNX Runtime's CPU provider).
A quantiser this ONNX Runtime lacks leaves a folder whose manifest says ``unsupported`` and
why; the backend turns it into an unsupported record (the pipeline goes on).

Each folder holds ``model.onnx`` (+ ``model.onnx.data``), the model's config and
``quantbench_model.json``: what made it, the graph's inputs and outputs, and the size and
SHA-256 of each weight file (checked before a measurement trusts it).
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path

from quantbench.artifacts.manifest import MODEL_JSON, model_options
from quantbench.errors import ConversionError
from quantbench.records import Status, atomic_dir, atomic_write_text, sha256

GRAPH = "model.onnx"
# the precisions' onnx_type: the fp32 export and what is quantised from it
ONNX_TYPES = ("fp32", "int8", "int4")
QUANTIZED_TYPES = ("int8", "int4")
# tokens of the prompt generate() is run on to capture the decode step (any in-vocabulary ids)
CAPTURE_TOKENS = 8
CAPTURE_BATCH = 2


def versions() -> dict:
    out = {}
    for name in ("torch", "transformers", "onnx", "onnxscript", "onnx-ir", "onnxruntime"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _weights(folder: Path) -> dict:
    files = [f for f in sorted(folder.iterdir()) if f.name.startswith(GRAPH)]
    return {f.name: {"size_bytes": f.stat().st_size, "sha256": sha256(f)} for f in files}


def _graph_io(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {"inputs": [i.name for i in graph.input], "outputs": [o.name for o in graph.output]}


def _write_manifest(folder: Path, info: dict) -> dict:
    if info.get("status", Status.OK) == Status.OK:
        info.update(_graph_io(folder / GRAPH), weights=_weights(folder))
    info["versions"] = versions()
    atomic_write_text(folder / MODEL_JSON, json.dumps(info, indent=2) + "\n")
    return info


def export_onnx(model_dir: str | Path, out_dir: str | Path) -> dict:
    """Export the HF folder ``model_dir`` in fp32 to ``out_dir`` (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.exporters import OnnxConfig, OnnxExporter
    from transformers.exporters.utils import decompose_for_generation

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 **model_options(model_dir)).eval()
    vocab = model.config.get_text_config().vocab_size
    ids = (torch.arange(CAPTURE_TOKENS * CAPTURE_BATCH) % vocab).reshape(CAPTURE_BATCH, -1)
    sample = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        step, inputs = decompose_for_generation(model, sample, multi_token_decode=True)["decode"]
    inputs["logits_to_keep"] = torch.arange(inputs["input_ids"].shape[1])
    with atomic_dir(out_dir) as tmp:
        exported = OnnxExporter().export(step, inputs, OnnxConfig(dynamic=True))
        exported.save_pretrained(tmp)  # model.onnx (+ .data), export.json, config.json
        if not (tmp / GRAPH).is_file():
            raise ConversionError(f"the exporter wrote no {GRAPH} in {tmp}")
        info = _write_manifest(tmp, {
            "status": Status.OK, "onnx_type": "fp32", "source": str(model_dir),
            "exporter": "transformers.exporters.OnnxExporter (torch.onnx dynamo, opset "
                        "from onnxscript)",
            "capture": {"batch": CAPTURE_BATCH, "tokens": CAPTURE_TOKENS,
                        "multi_token_decode": True, "dynamic": True}})
    return info


def _unsupported(out_dir: Path, onnx_type: str, src: Path, reason: str) -> dict:
    with atomic_dir(out_dir) as tmp:
        tmp.mkdir(parents=True)
        return _write_manifest(tmp, {"status": Status.UNSUPPORTED, "onnx_type": onnx_type,
                                     "source": str(src), "reason": reason})


def quantize_onnx(src_dir: str | Path, out_dir: str | Path, *, onnx_type: str,
                  block_size: int = 32, accuracy_level: int | None = None) -> dict:
    """Quantise the fp32 export ``src_dir`` to ``onnx_type`` (int8 or int4) in ``out_dir``."""
    src, out = Path(src_dir), Path(out_dir)
    if onnx_type not in QUANTIZED_TYPES:
        raise ConversionError(f"unknown ONNX quantisation {onnx_type!r}; allowed: "
                              f"{', '.join(QUANTIZED_TYPES)}")
    try:
        quantizer = _quantizer(onnx_type)
    except ImportError as exc:
        return _unsupported(out, onnx_type, src,
                            f"onnxruntime {versions()['onnxruntime']} has no {onnx_type} "
                            f"quantiser ({exc})")
    with atomic_dir(out) as tmp:
        tmp.mkdir(parents=True)
        settings = quantizer(src / GRAPH, tmp / GRAPH, block_size=block_size,
                             accuracy_level=accuracy_level)
        settings["quantized_matmuls"] = _count_ops(tmp / GRAPH, ("MatMulInteger", "MatMulNBits"))
        for f in src.iterdir():  # the model's config and the exporter's own manifest
            if f.suffix == ".json" and f.name != MODEL_JSON:
                shutil.copy2(f, tmp / f.name)
        return _write_manifest(tmp, {"status": Status.OK, "onnx_type": onnx_type,
                                     "source": str(src), "quantizer": settings})


def _count_ops(path: Path, op_types: tuple[str, ...]) -> int:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(node.op_type in op_types for node in graph.node)


def _quantizer(onnx_type: str):
    """The function that quantises one graph file to ``onnx_type``; ImportError when this
    ONNX Runtime does not have the tool."""
    if onnx_type == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        def int8(src: Path, dst: Path, **_) -> dict:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], use_external_data_format=True)
            return {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
                    "op_types": ["MatMul"], "per_channel": False,
                    "activations": "uint8, quantised at run time"}

        return int8
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    def int4(src: Path, dst: Path, *, block_size: int, accuracy_level: int | None) -> dict:
        import onnx

        q = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=block_size, is_symmetric=True,
                                 accuracy_level=accuracy_level)
        q.process()
        q.model.save_model_to_file(str(dst), use_external_data_format=True)
        return {"tool": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer",
                "bits": 4, "block_size": block_size, "symmetric": True,
                "accuracy_level": accuracy_level}

    return int4
