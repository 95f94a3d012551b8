import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoConfig

from quantbench import datasets
from quantbench.errors import DatasetError, ModelSourceError
from quantbench.models import embedded_gguf_path, prepare_model

RAW = """## Title line
### START: scan ###
p.772:0

Shakespeare, William (1564--1616), English poet,
and playwright.

p.772:1
A second paragraph
over two lines.
"""


def test_clean_britannica_drops_markers_and_reflows():
    text = datasets.clean_britannica(RAW)
    assert "p.772" not in text and "#" not in text
    assert text == ("Shakespeare, William (1564--1616), English poet, and playwright.\n\n"
                    "A second paragraph over two lines.\n")


def test_random_model_has_the_requested_shape(tiny_model):
    cfg = AutoConfig.from_pretrained(tiny_model)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads) == (256, 2, 2)
    info = json.loads((tiny_model / "quantbench_model.json").read_text())
    assert info["quality_applicable"] is False
    assert (tiny_model / "tokenizer.model").is_file()


def test_tokens_meta_records_bos_and_eos(tiny_tokens):
    meta = json.loads(tiny_tokens["meta"].read_text())
    assert meta["bos_id"] == 1 and 2 in meta["eos_ids"]
    assert meta["n_tokens"] == np.load(tiny_tokens["ids"]).size


def test_local_model_folder_must_exist(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        prepare_model({"source": "local", "path": str(tmp_path / "nope")}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_local_folder_without_config_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        prepare_model({"source": "local", "path": str(tmp_path / "m")}, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def _fake_hub_cache(cache: Path, repo: str, repo_type: str, files: dict[str, Path | bytes]) -> None:
    """Lay out a Hugging Face cache as huggingface_hub writes it (refs/main -> snapshot)."""
    folder = cache / f"{repo_type}s--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    for name, content in files.items():
        target = snap / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else Path(content).read_bytes())


def test_hub_model_comes_from_the_cache_when_offline(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/tiny", "model",
                    {f.name: f for f in tiny_model.iterdir() if f.is_file()})
    info = prepare_model({"source": "hub", "repo_id": "org/tiny", "revision": "main"},
                         tmp_path / "out", hub_cache_dir=str(cache))
    assert info["origin"].startswith("hub org/tiny@main")
    assert (tmp_path / "out" / "config.json").is_file()


def test_unreachable_uncached_hub_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match="neither reachable nor in the cache"):
        prepare_model({"source": "hub", "repo_id": "org/absent"}, tmp_path / "out",
                      hub_cache_dir=str(tmp_path / "hub"))


def test_wikitext2_reads_the_parquet_rows_back_into_raw_text(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = ["", " = Valkyria Chronicles = \n", "", " Senjō no Valkyria is a game . \n"] * 50
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"text": rows}).to_parquet(parquet)
    _fake_hub_cache(tmp_path / "hub", datasets.WIKITEXT_REPO, "dataset",
                    {datasets.WIKITEXT_FILE: parquet})
    text = datasets.load_text({"name": "wikitext2"}, hub_cache_dir=str(tmp_path / "hub"))
    assert text == "".join(rows)


def test_bad_text_files_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.load_text({"name": "file", "path": str(tmp_path / "none.txt")})
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(DatasetError, match="too short"):
        datasets.load_text({"name": "file", "path": str(short)})
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00" * 200)
    with pytest.raises(DatasetError, match="not UTF-8"):
        datasets.load_text({"name": "file", "path": str(binary)})


def test_embedded_model_file_is_found():
    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
